"""Questions about a video through Gemini ``generateContent``, against the loopback emulator on a real socket.

A small clip goes inline; a larger one through the Files API (resumable upload in chunks, a wait until the file
is ACTIVE, a delete once answered); a URL as ``file_data``. The evidence is what the emulator received
(``emu.requests``): bodies, offsets, commands, and where the key went.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from fusion_magic.calls.call import CallContext, prepare, run_call
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import AuthError, BadRequestError, ConfigError, ProviderError
from fusion_magic.providers._http import WireContext
from fusion_magic.providers.base import ChatRequest, Endpoint, Message, ProviderEvent, TextDelta, Usage
from fusion_magic.providers.chat.gemini import classifier
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.providers.video.base import VideoQuestion, VideoSource
from fusion_magic.providers.video.gemini_files import session_headers, upload_file, wait_active
from fusion_magic.providers.video.gemini_video import INLINE_LIMIT, GeminiVideoProvider, fits_inline
from fusion_magic.testing import Emulator, Fault, ModelScript, RecordedRequest, VideoScript
from fusion_magic.testing.families.gemini import FRAME_TOKENS
from fusion_magic.testing.families.gemini_files import GeminiFiles, upload_key
from fusion_magic.testing.media import make_clip

MODEL = "gemini-2.5-flash"
QUESTION = "What moves across the frame?"
ANSWER = "A white square slides from left to right over a red background."
CHUNK = 16 << 10


@dataclasses.dataclass
class Outcome:
    events: list[ProviderEvent]
    error: ProviderError | None
    key: str

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta))

    @property
    def input_tokens(self) -> int | None:
        usage = [e for e in self.events if isinstance(e, Usage)]
        return usage[-1].input_tokens if usage else None

    def assert_no_key(self) -> None:
        if self.error is not None:
            for text in (str(self.error), repr(self.error), repr(vars(self.error))):
                assert self.key not in text


def endpoint(emu: Emulator) -> Endpoint:
    return resolve_endpoint(BUILTIN["gemini"], environ=emu.env() | emu.test_keys())


def question(source: VideoSource) -> VideoQuestion:
    return VideoQuestion(model=MODEL, messages=(Message("system", "Be brief."), Message("user", QUESTION)),
                         video=source)


def ask(emu: Emulator, request: ChatRequest) -> Outcome:
    """One streamed question with a fresh client; the events, or the typed error."""

    async def go() -> Outcome:
        ep = endpoint(emu)
        events: list[ProviderEvent] = []
        async with httpx.AsyncClient(timeout=10) as client:
            provider = GeminiVideoProvider(ep, client)
            try:
                stream = cast(AsyncGenerator[ProviderEvent, None], provider.stream(request))
                async with aclosing(stream) as events_in:
                    async for event in events_in:
                        events.append(event)
            except ProviderError as err:
                return Outcome(events, err, ep.api_key or "")
        return Outcome(events, None, ep.api_key or "")

    return asyncio.run(go())


def of(emu: Emulator, method: str, path_end: str) -> list[RecordedRequest]:
    return [r for r in emu.requests if r.method == method and r.path.endswith(path_end)]


def chat_requests(emu: Emulator) -> list[RecordedRequest]:
    return of(emu, "POST", ":streamGenerateContent")


def last_user_parts(record: RecordedRequest) -> list[dict[str, Any]]:
    users = [c for c in record.body["contents"] if c["role"] == "user"]
    return cast(list[dict[str, Any]], users[-1]["parts"])


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s clip with audio (about 35 KB): made once, only read by the tests."""
    return cast(Path, make_clip(tmp_path_factory.mktemp("clips") / "small.mp4", seconds=2, audio=True))


@pytest.fixture(scope="module")
def large_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s clip with audio (about 75 KB), "large" once ``uploads`` lowers the inline limit."""
    return cast(Path, make_clip(tmp_path_factory.mktemp("clips") / "large.mp4", seconds=4, size=(640, 360),
                                audio=True))


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every local file is "large" (uploaded), in small chunks, and the wait for ACTIVE does not sleep."""
    monkeypatch.setattr(GeminiVideoProvider, "inline_limit", 1000)
    monkeypatch.setattr(GeminiVideoProvider, "upload_chunk", CHUNK)
    monkeypatch.setattr(GeminiVideoProvider, "active_interval", 0.0)


# ---- inline ---------------------------------------------------------------------------------------------


def test_small_clip_goes_inline_before_the_text_with_its_window(emulator: Emulator, small_clip: Path) -> None:
    emulator.script(MODEL, VideoScript(answer=ANSWER))
    out = ask(emulator, question(VideoSource(path=small_clip, start_s=0.5, end_s=1.5, fps=2)))
    assert out.error is None
    assert out.text == ANSWER
    [record] = chat_requests(emulator)
    assert not of(emulator, "POST", "/upload/v1beta/files")  # small: no upload
    video, text = last_user_parts(record)
    assert text == {"text": QUESTION}
    assert video["inline_data"]["mime_type"] == "video/mp4"
    assert base64.b64decode(video["inline_data"]["data"]) == small_clip.read_bytes()
    assert video["video_metadata"] == {"start_offset": "0.5s", "end_offset": "1.5s", "fps": 2}
    assert record.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


def test_video_tokens_are_counted_per_second_watched(emulator: Emulator, small_clip: Path) -> None:
    emulator.script(MODEL, VideoScript(answer=ANSWER))
    out = ask(emulator, question(VideoSource(path=small_clip, start_s=0.5, end_s=1.5, fps=2)))
    [record] = chat_requests(emulator)
    # The same body, unstreamed, shows the usage breakdown the stream's last chunk carried.
    answer = httpx.post(f"{emulator.url}/gemini/v1beta/models/{MODEL}:generateContent", json=record.body,
                        headers={"x-goog-api-key": out.key}).json()
    usage = answer["usageMetadata"]
    details = {d["modality"]: d["tokenCount"] for d in usage["promptTokensDetails"]}
    # One second watched at 2 fps: two frames, and one second of the clip's audio track.
    assert details["VIDEO"] == 2 * FRAME_TOKENS
    assert details["AUDIO"] == 32
    assert usage["promptTokenCount"] == details["TEXT"] + details["VIDEO"] + details["AUDIO"]
    assert out.input_tokens == usage["promptTokenCount"]
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == ANSWER


def test_an_unscripted_model_answers_as_a_chat_model_would(emulator: Emulator, small_clip: Path) -> None:
    emulator.script(MODEL, ModelScript(reply="Chat reply."))
    out = ask(emulator, question(VideoSource(path=small_clip)))
    assert out.error is None and out.text == "Chat reply."
    [video, _] = last_user_parts(chat_requests(emulator)[0])
    assert "video_metadata" not in video


def test_inline_limit_counts_the_base64_request_not_the_file() -> None:
    request = question(VideoSource(path=Path("x.mp4")))
    # Base64 takes 4 bytes for 3: a 15 MiB file is 20 MiB on the wire, too much with the text around it.
    assert fits_inline((15 << 20) - 8192, request, INLINE_LIMIT)
    assert not fits_inline(15 << 20, request, INLINE_LIMIT)


def test_emulator_refuses_a_request_over_20_mb(emulator: Emulator) -> None:
    key = emulator.test_keys()["GEMINI_API_KEY"]
    # Refused on its size alone, before the body is read as JSON.
    response = httpx.post(f"{emulator.url}/gemini/v1beta/models/{MODEL}:generateContent",
                          content=b"x" * ((20 << 20) + 1),
                          headers={"x-goog-api-key": key, "content-type": "application/json"}, timeout=30)
    assert response.status_code == 400
    assert "payload size exceeds the limit" in response.json()["error"]["message"]


# ---- the Files API --------------------------------------------------------------------------------------


def test_large_file_is_uploaded_in_chunks_waited_for_used_and_deleted(
        emulator: Emulator, large_clip: Path, uploads: None) -> None:
    data = large_clip.read_bytes()
    emulator.script(MODEL, VideoScript(answer=ANSWER))
    emulator.script(upload_key(large_clip.name), VideoScript(polls=2))
    out = ask(emulator, question(VideoSource(path=large_clip, start_s=1, fps=1)))
    assert out.error is None and out.text == ANSWER

    start, *chunks = of(emulator, "POST", "/gemini/upload/v1beta/files")
    assert start.headers["x-goog-upload-protocol"] == "resumable"
    assert start.headers["x-goog-upload-command"] == "start"
    assert start.headers["x-goog-upload-header-content-length"] == str(len(data))
    assert start.headers["x-goog-upload-header-content-type"] == "video/mp4"
    assert start.headers["x-goog-api-key"] == "<redacted>"
    assert start.body == {"file": {"display_name": "large.mp4"}}
    # Several chunks, each at the bytes sent so far; only the last finalizes.
    assert len(chunks) == -(-len(data) // CHUNK) >= 3
    assert [int(c.headers["x-goog-upload-offset"]) for c in chunks] == list(range(0, len(data), CHUNK))
    assert [c.headers["x-goog-upload-command"] for c in chunks] == ["upload"] * (len(chunks) - 1) + ["upload, finalize"]
    assert all(c.query["upload_id"] and c.status == 200 for c in chunks)

    [file_id] = {r.path.rsplit("/", 1)[1] for r in of(emulator, "GET", "") if "/v1beta/files/" in r.path}
    assert emulator.video.blob(f"gemini-files-{file_id}") == data  # the bytes arrived whole
    assert len(of(emulator, "GET", f"/files/{file_id}")) == 3  # PROCESSING, PROCESSING, ACTIVE

    [record] = chat_requests(emulator)
    video, text = last_user_parts(record)
    uri = f"{emulator.url}/gemini/v1beta/files/{file_id}"
    assert video == {"file_data": {"mime_type": "video/mp4", "file_uri": uri},
                     "video_metadata": {"start_offset": "1s", "fps": 1.0}}
    assert text == {"text": QUESTION}
    # Deleted once answered, after the answer.
    [delete] = of(emulator, "DELETE", f"/files/{file_id}")
    assert emulator.requests.index(delete) > emulator.requests.index(record)
    assert delete.status == 200
    # 3 of 4 seconds watched at 1 fps, with audio.
    assert out.input_tokens is not None and out.input_tokens > 3 * (FRAME_TOKENS + 32)


def test_failed_file_is_a_typed_error_and_nothing_is_asked(emulator: Emulator, large_clip: Path, uploads: None) -> None:
    emulator.script(upload_key(large_clip.name), VideoScript(polls=1, outcome="failed",
                                                             error_message="Unsupported video codec."))
    out = ask(emulator, question(VideoSource(path=large_clip)))
    assert isinstance(out.error, BadRequestError) and out.error.code == "FAILED"
    assert "Unsupported video codec." in out.error.message
    assert out.events == [] and chat_requests(emulator) == []
    assert len(of(emulator, "DELETE", "")) == 1  # a failed file is of no use: cleared at once
    out.assert_no_key()


def test_a_file_that_is_not_active_is_refused(emulator: Emulator, large_clip: Path) -> None:
    emulator.script(upload_key(large_clip.name), VideoScript(polls=5))
    ep = endpoint(emulator)

    async def go() -> tuple[httpx.Response, dict[str, Any]]:
        ctx = WireContext("gemini", MODEL, ep.api_key)
        async with httpx.AsyncClient(timeout=10) as client:
            file = await upload_file(client, ep, large_clip, "video/mp4", ctx=ctx, classify=classifier(ctx))
            body = {"contents": [{"role": "user", "parts": [
                {"fileData": {"mimeType": "video/mp4", "fileUri": file["uri"]}}, {"text": "hi"}]}]}
            return await client.post(f"{ep.base_url}/v1beta/models/{MODEL}:generateContent", json=body,
                                     headers={"x-goog-api-key": ep.api_key or ""}), file

    response, file = asyncio.run(go())
    assert file["state"] == "PROCESSING" and file["name"].startswith("files/")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "FAILED_PRECONDITION"
    file_id = file["name"].removeprefix("files/")
    assert error["message"] == f"The File {file_id} is not in an ACTIVE state and usage is not allowed."


def test_waiting_for_a_file_can_be_cancelled(emulator: Emulator, large_clip: Path) -> None:
    emulator.script(upload_key(large_clip.name), VideoScript(polls=1000))
    ep = endpoint(emulator)

    async def go() -> bool:
        ctx = WireContext("gemini", MODEL, ep.api_key)
        async with httpx.AsyncClient(timeout=10) as client:
            file = await upload_file(client, ep, large_clip, "video/mp4", ctx=ctx, classify=classifier(ctx))
            task = asyncio.create_task(wait_active(client, ep, file["name"], ctx=ctx, classify=classifier(ctx),
                                                   interval=3600))
            while not of(emulator, "GET", file["name"]):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # now inside the hour-long sleep
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return task.cancelled()

    assert asyncio.run(go())


def test_a_chunk_answered_without_upload_status_is_sent_again(emulator: Emulator, large_clip: Path) -> None:
    emulator.script(upload_key(large_clip.name), VideoScript(poll_faults=[Fault("status", status=503, times=1)]))
    ep = endpoint(emulator)

    async def go() -> dict[str, Any]:
        ctx = WireContext("gemini", MODEL, ep.api_key)
        async with httpx.AsyncClient(timeout=10) as client:
            return await upload_file(client, ep, large_clip, "video/mp4", ctx=ctx, classify=classifier(ctx),
                                     chunk=1 << 20, retry_delay=0.0)

    file = asyncio.run(go())
    chunks = of(emulator, "POST", "/upload/v1beta/files")[1:]
    assert [(c.status, c.headers["x-goog-upload-offset"]) for c in chunks] == [(503, "0"), (200, "0")]
    assert file["sizeBytes"] == str(large_clip.stat().st_size)


def test_emulator_refuses_a_chunk_at_the_wrong_offset(emulator: Emulator) -> None:
    key = emulator.test_keys()["GEMINI_API_KEY"]
    start = httpx.post(f"{emulator.url}/gemini/upload/v1beta/files", json={"file": {"display_name": "x.mp4"}},
                       headers={"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable",
                                "X-Goog-Upload-Command": "start", "X-Goog-Upload-Header-Content-Length": "10",
                                "X-Goog-Upload-Header-Content-Type": "video/mp4"})
    session = start.headers["X-GOOG-UPLOAD-URL"]
    first = httpx.post(session, content=b"abcd",
                       headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"})
    assert (first.status_code, first.headers["x-goog-upload-status"]) == (200, "active")
    wrong = httpx.post(session, content=b"efghij",
                       headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert wrong.status_code == 400 and "does not match the 4 bytes" in wrong.json()["error"]["message"]


def test_the_key_does_not_follow_a_session_url_to_another_origin(
        emulator: Emulator, large_clip: Path, uploads: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GeminiFiles, "session_on_other_host", True)
    emulator.script(MODEL, VideoScript(answer=ANSWER))
    out = ask(emulator, question(VideoSource(path=large_clip)))
    assert out.error is None and out.text == ANSWER  # the session host refuses any request with a key
    start, *chunks = of(emulator, "POST", "/upload/v1beta/files")
    assert start.headers["x-goog-api-key"] == "<redacted>"
    assert start.headers["host"] == f"127.0.0.1:{emulator.port}"
    assert chunks and all(c.headers["host"] == f"localhost:{emulator.port}" for c in chunks)
    assert all("x-goog-api-key" not in c.headers and c.status == 200 for c in chunks)


def test_session_headers_compare_origins() -> None:
    ep = Endpoint("gemini", "https://generativelanguage.googleapis.com", api_key="AIza-secret")
    same = "https://generativelanguage.googleapis.com:443/upload/v1beta/files?upload_id=x"
    assert session_headers(ep, same)["x-goog-api-key"] == "AIza-secret"
    for other in ("http://generativelanguage.googleapis.com/upload", "https://evil.example/upload",
                  "https://generativelanguage.googleapis.com:8443/upload", "not a url"):
        assert session_headers(ep, other) == {}


# ---- URLs -----------------------------------------------------------------------------------------------


def test_a_youtube_link_goes_as_file_data_without_a_type(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(answer=ANSWER, clip_seconds=10))
    url = "https://www.youtube.com/watch?v=9hE5-98ZeCg"
    out = ask(emulator, question(VideoSource(url=url, end_s=12.5)))
    assert out.error is None and out.text == ANSWER
    video, _ = last_user_parts(chat_requests(emulator)[0])
    assert video == {"file_data": {"file_uri": url}, "video_metadata": {"end_offset": "12.5s"}}
    assert not of(emulator, "POST", "/upload/v1beta/files")


def test_a_video_url_keeps_its_type(emulator: Emulator) -> None:
    url = "https://example.com/clips/talk.webm"
    out = ask(emulator, question(VideoSource(url=url, mime="video/webm")))
    assert out.error is None
    video, _ = last_user_parts(chat_requests(emulator)[0])
    assert video == {"file_data": {"file_uri": url, "mime_type": "video/webm"}}


def test_an_unknown_files_uri_is_refused_as_the_api_does(emulator: Emulator) -> None:
    out = ask(emulator, question(VideoSource(url="files/nosuchfile")))
    video, _ = last_user_parts(chat_requests(emulator)[0])
    assert video["file_data"]["file_uri"] == f"{emulator.url}/gemini/v1beta/files/nosuchfile"
    assert isinstance(out.error, AuthError) and out.error.status == 403
    assert "nosuchfile" in out.error.message
    out.assert_no_key()


@pytest.mark.parametrize("source", [
    VideoSource(url="ftp://example.com/a.mp4"),
    VideoSource(path=Path("/nonexistent/video.mp4")),
    VideoSource(url="https://example.com/a.mp4", fps=30),
    VideoSource(url="https://example.com/a.mp4", start_s=5, end_s=2),
    VideoSource(),
])
def test_bad_sources_fail_before_anything_is_sent(emulator: Emulator, source: VideoSource) -> None:
    with pytest.raises(ConfigError):
        ask(emulator, question(source))
    assert emulator.requests == []


def test_a_plain_chat_request_is_answered_as_chat(emulator: Emulator) -> None:
    emulator.script(MODEL, ModelScript(reply="Paris."))
    out = ask(emulator, ChatRequest(model=MODEL, messages=(Message("user", "Capital of France?"),)))
    assert out.text == "Paris."
    assert last_user_parts(chat_requests(emulator)[0]) == [{"text": "Capital of France?"}]


# ---- through the call policy ----------------------------------------------------------------------------


def test_run_call_retries_a_video_question_without_uploading_twice(
        emulator_env: Emulator, large_clip: Path, uploads: None) -> None:
    emu = emulator_env
    emu.script(MODEL, ModelScript(faults=[Fault("status", status=429, retry_after=0.01, times=1)]))
    emu.script(MODEL, VideoScript(answer=ANSWER))
    target = prepare(f"gemini:{MODEL}", Settings())
    target = dataclasses.replace(target, spec=dataclasses.replace(target.spec, protocol="gemini_video"))

    async def go() -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            return await run_call(target, question(VideoSource(path=large_clip)),
                                  ctx=CallContext(client=client, settings=Settings()))

    response = asyncio.run(go())
    assert response.status == "ok", response.error
    assert response.text == ANSWER and response.attempts == 2
    assert response.input_tokens is not None and response.input_tokens > 4 * FRAME_TOKENS
    assert [r.status for r in chat_requests(emu)] == [429, 200]
    assert emu.video_jobs(upload_key(large_clip.name)) == 1  # the retry reused the upload
    assert len(of(emu, "DELETE", "")) == 1
