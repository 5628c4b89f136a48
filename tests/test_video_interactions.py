"""Gemini Omni through the Interactions API against the loopback emulator, over a real socket: generation
jobs (create, poll, download, cancel, edit), questions about a video through ``stream``, the model list, and
what goes on the wire. Jobs advance one state per poll, so nothing here sleeps except ``stream``'s own
first poll."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import av
import httpx
import pytest

from fusion_magic.core.errors import (
    AuthError,
    BadRequestError,
    BlockedError,
    ConfigError,
    ProtocolError,
    ProviderError,
    ServerError,
)
from fusion_magic.providers._http import WireContext
from fusion_magic.providers.base import Finished, Message, ProviderEvent, TextDelta, Usage
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.providers.video.base import JobRef, JobStatus, VideoQuestion, VideoRequest, VideoSource
from fusion_magic.providers.video.interactions import (
    NEGATIVE_NOTE,
    InteractionsProvider,
    download_url,
    read_interaction,
)
from fusion_magic.testing import Emulator, Fault, RecordedRequest
from fusion_magic.testing.media import make_clip, png_bytes
from fusion_magic.testing.video_script import VideoScript, made_clip

MODEL = "gemini-omni-1.2-flash"
KEY = "AIza-test-emulator"
T = TypeVar("T")


def run(emu: Emulator, work: Callable[[InteractionsProvider], Awaitable[T]], *, key: str = KEY) -> T:
    """Run ``work`` with a provider pointed at the emulator, on a fresh client and loop."""

    async def main() -> T:
        endpoint = resolve_endpoint(BUILTIN["gemini"], {"gemini": key}, environ=emu.env())
        async with httpx.AsyncClient() as client:
            return await work(InteractionsProvider(endpoint, client))

    return asyncio.run(main())


async def poll_until_final(provider: InteractionsProvider, job: JobRef, limit: int = 10) -> list[JobStatus]:
    seen = [await provider.poll(job)]
    while not seen[-1].final and len(seen) < limit:
        seen.append(await provider.poll(job))
    return seen


def calls(emu: Emulator, method: str, suffix: str = "") -> list[RecordedRequest]:
    return [r for r in emu.requests if r.family == "gemini-interactions" and r.method == method
            and r.path.endswith(suffix)]


def created(emu: Emulator) -> list[dict[str, Any]]:
    return [r.body for r in calls(emu, "POST", "/interactions")]


# ---- generation -------------------------------------------------------------------------------------------


def test_text_to_video_queued_running_completed_then_redirect_download(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(MODEL, VideoScript(polls=2, clip_seconds=1.5))
    dest = tmp_path / "clip.mp4"

    async def work(p: InteractionsProvider) -> tuple[JobRef, list[JobStatus], int]:
        job = await p.submit(VideoRequest(MODEL, "a marble run", seconds=6, aspect="9:16", resolution="720p"))
        states = await poll_until_final(p, job)
        return job, states, await p.download(states[-1].clips[0], dest)

    job, states, size = run(emulator, work)
    assert [s.state for s in states] == ["queued", "running", "succeeded"]
    assert job.protocol == "interactions" and job.model == MODEL and job.job_id
    assert states[-1].usage is not None and states[-1].usage.output_tokens and states[-1].usage.input_tokens
    assert size == dest.stat().st_size > 0 and not dest.with_name("clip.mp4.part").exists()
    with av.open(str(dest)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert float(container.duration or 0) / av.time_base == pytest.approx(1.5, abs=0.2)
    # The key went to the API host's file URI, and not across the redirect to the storage host.
    file_get = next(r for r in emulator.requests if r.family == "gemini-files")
    storage_get = next(r for r in emulator.requests if r.family == "storage")
    assert file_get.headers.get("x-goog-api-key") == "<redacted>"
    assert storage_get.status == 200 and "x-goog-api-key" not in storage_get.headers
    assert emulator.video_jobs(MODEL) == 1


def test_wire_body_paths_and_headers(emulator: Emulator) -> None:
    run(emulator, lambda p: p.submit(VideoRequest(MODEL, "a fox in snow", seconds=8, aspect="16:9",
                                                  resolution="1080p", negative="blurry")))
    (post,) = calls(emulator, "POST", "/interactions")
    assert post.path == "/gemini/v1/interactions"
    assert "api-revision" not in post.headers and post.headers["x-goog-api-key"] == "<redacted>"
    assert post.body == {
        "model": MODEL,
        "input": "a fox in snow",
        "response_modalities": ["video"],
        "response_format": {"type": "video", "aspect_ratio": "16:9", "duration": "8s", "resolution": "1080p",
                            "delivery": "uri"},
        "generation_config": {"video_config": {"task": "text_to_video"}},
        "background": True,
    }


def test_image_to_video_sends_text_then_the_image(emulator: Emulator, tmp_path: Path) -> None:
    image = tmp_path / "first.png"
    image.write_bytes(png_bytes())
    run(emulator, lambda p: p.submit(VideoRequest(MODEL, "it starts to rain", image=image)))
    (body,) = created(emulator)
    text, block = body["input"]
    assert text == {"type": "text", "text": "it starts to rain"}
    assert block["type"] == "image" and block["mime_type"] == "image/png"
    assert base64.b64decode(block["data"]) == image.read_bytes()
    assert body["generation_config"]["video_config"]["task"] == "image_to_video"
    assert body["response_format"] == {"type": "video", "delivery": "uri"}


def test_output_video_field_and_direct_uri(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(MODEL, VideoScript(polls=1, delivery="uri", output_video_field=True))

    async def work(p: InteractionsProvider) -> tuple[JobStatus, int]:
        job = await p.submit(VideoRequest(MODEL, "waves"))
        status = (await poll_until_final(p, job))[-1]
        return status, await p.download(status.clips[0], tmp_path / "waves.mp4")

    status, size = run(emulator, work)
    (clip,) = status.clips
    assert status.state == "succeeded" and clip.needs_key and clip.uri and ":download?alt=media" in clip.uri
    assert (tmp_path / "waves.mp4").read_bytes() == made_clip(2.0, (320, 180), False) and size > 0
    assert not [r for r in emulator.requests if r.family == "storage"]


def test_inline_delivery_is_written_as_sent(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(MODEL, VideoScript(polls=0, delivery="inline", clip_seconds=1.0))

    async def work(p: InteractionsProvider) -> JobStatus:
        job = await p.submit(VideoRequest(MODEL, "a spinning top"))
        status = await p.poll(job)
        await p.download(status.clips[0], tmp_path / "top.mp4")
        return status

    status = run(emulator, work)
    (clip,) = status.clips
    assert clip.uri is None and clip.data == made_clip(1.0, (320, 180), False)
    assert (tmp_path / "top.mp4").read_bytes() == clip.data
    assert not [r for r in emulator.requests if r.family in ("gemini-files", "storage")]


def test_failed_job_carries_a_typed_error_with_the_message(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(polls=1, outcome="failed", error_message="the video model crashed"))

    async def work(p: InteractionsProvider) -> list[JobStatus]:
        return await poll_until_final(p, await p.submit(VideoRequest(MODEL, "x")))

    final = run(emulator, work)[-1]
    assert final.state == "failed" and isinstance(final.error, ServerError)
    assert final.error.message == "the video model crashed" and final.error.code == "INTERNAL"
    assert final.error.provider == "gemini" and final.error.model == MODEL


def test_filtered_job_keeps_the_reason(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(polls=1, outcome="filtered", reason="blocked: the audio track"))

    async def work(p: InteractionsProvider) -> list[JobStatus]:
        return await poll_until_final(p, await p.submit(VideoRequest(MODEL, "x")))

    final = run(emulator, work)[-1]
    assert final.state == "filtered" and final.reason == "blocked: the audio track" and final.error is None


def test_cancel_stops_the_interaction(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(polls=5))

    async def work(p: InteractionsProvider) -> list[str]:
        job = await p.submit(VideoRequest(MODEL, "a long take"))
        first = await p.poll(job)
        await p.cancel(job)
        return [first.state, (await p.poll(job)).state]

    assert run(emulator, work) == ["queued", "cancelled"]
    (cancel,) = calls(emulator, "POST", "/cancel")
    assert cancel.path.startswith("/gemini/v1/interactions/") and cancel.status == 200


def test_edit_names_the_previous_interaction_and_an_unknown_one_is_refused(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(polls=0))

    async def work(p: InteractionsProvider) -> tuple[str, JobStatus, ProviderError]:
        first = await p.submit(VideoRequest(MODEL, "a red car"))
        assert (await p.poll(first)).state == "succeeded"
        edit = await p.submit(VideoRequest(MODEL, "make it blue", previous_job=first.job_id))
        status = await p.poll(edit)
        with pytest.raises(BadRequestError) as refused:
            await p.submit(VideoRequest(MODEL, "make it green", previous_job="v1_no-such-interaction"))
        return first.job_id, status, refused.value

    first_id, status, refused = run(emulator, work)
    assert status.state == "succeeded"
    edit_body = created(emulator)[1]
    assert edit_body["previous_interaction_id"] == first_id
    assert edit_body["generation_config"] == {"video_config": {"task": "edit"}}
    assert refused.status == 400 and "v1_no-such-interaction" in refused.message
    assert emulator.video_jobs(MODEL) == 2


def test_submit_and_poll_faults_are_typed(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(polls=0, submit_faults=[Fault("status", status=404, message="models/x is gone",
                                                            times=1)],
                                       poll_faults=[Fault("status", status=503, times=1)]))

    async def work(p: InteractionsProvider) -> tuple[ProviderError, ProviderError, JobStatus]:
        with pytest.raises(BadRequestError) as gone:
            await p.submit(VideoRequest(MODEL, "x"))
        job = await p.submit(VideoRequest(MODEL, "x"))
        with pytest.raises(ServerError) as busy:
            await p.poll(job)
        return gone.value, busy.value, await p.poll(job)

    gone, busy, status = run(emulator, work)
    assert gone.status == 404 and gone.message == "models/x is gone" and busy.retryable
    assert status.state == "succeeded"


def test_the_key_never_reaches_an_error_message(emulator: Emulator) -> None:
    secret = "AIza-secret-do-not-print-1234"
    emulator.script(MODEL, VideoScript(submit_faults=[Fault("status", status=400, message=f"bad key {secret}")]))
    with pytest.raises(BadRequestError) as echoed:
        run(emulator, lambda p: p.submit(VideoRequest(MODEL, "x")), key=secret)
    emulator.expected_keys["gemini-interactions"] = "the-right-key"
    with pytest.raises(AuthError) as refused:
        run(emulator, lambda p: p.poll(JobRef("interactions", MODEL, "v1_x")), key=secret)
    for err in (echoed.value, refused.value):
        assert secret not in str(err) and secret not in repr(err.args)
    assert "<redacted>" in str(echoed.value) and refused.value.code == "API_KEY_INVALID"


def test_check_request() -> None:
    check = InteractionsProvider.check_request
    assert check(VideoRequest(MODEL, "x", seconds=15, aspect="9:16", resolution="4k")) == []
    assert check(VideoRequest(MODEL, "x", negative="blur")) == [NEGATIVE_NOTE]
    for bad in (VideoRequest(MODEL, "x", seconds=16), VideoRequest(MODEL, "x", seconds=0),
                VideoRequest(MODEL, "x", aspect="1:1"), VideoRequest(MODEL, "x", resolution="480p"),
                VideoRequest(MODEL, "x", image=Path("frame.gif")), VideoRequest(MODEL, "x", image=Path("no.png"))):
        with pytest.raises(ConfigError):
            check(bad)


def test_list_models_pages_and_keeps_omni(emulator: Emulator) -> None:
    for n in range(6):
        emulator.script(f"veo-emu-{n}", VideoScript())
    emulator.script("gemini-omni-emu-flash", VideoScript())
    models = run(emulator, lambda p: p.list_models())
    assert "gemini-omni-1.2-flash" in models and "gemini-omni-emu-flash" in models
    assert not [m for m in models if m.startswith(("veo-", "models/")) or m == "gemini-2.5-flash"]
    pages = [r for r in emulator.requests if r.path == "/gemini/v1beta/models"]
    assert len(pages) >= 2 and "pageToken" not in pages[0].query and pages[-1].query.get("pageToken")


def test_emulator_serves_the_preview_path_too(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(polls=0))
    base = emulator.env()["GEMINI_BASE_URL"] + "/v1beta/interactions"
    headers = {"x-goog-api-key": KEY, "Api-Revision": "2026-05-20"}
    body = {"model": MODEL, "input": "x", "response_modalities": ["video"], "background": True}
    with httpx.Client() as client:
        made = client.post(base, json=body, headers=headers).json()
        done = client.get(f"{base}/{made['id']}", headers=headers).json()
        bad = client.post(base, json={**body, "response_format": {"type": "video", "duration": 6}}, headers=headers)
    assert made["status"] == "in_progress" and done["status"] == "completed"
    assert done["steps"][0]["content"][0]["type"] == "video" and "output_video" not in done
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


# ---- reading interactions (literal payloads the emulator does not send) ---------------------------------------


def test_reading_shapes_the_emulator_does_not_send() -> None:
    ctx = WireContext("gemini", MODEL)
    origin = "https://generativelanguage.googleapis.com"
    bare = {"id": "i", "status": "completed", "steps": [
        {"type": "model_output", "content": [
            {"type": "video", "uri": f"{origin}/v1beta/files/abc123", "mime_type": "video/mp4"}]}],
        "usage": {"total_input_tokens": 21, "total_output_tokens": 34752, "total_thought_tokens": 8}}
    status = read_interaction(bare, ctx, api_origin=origin)
    assert status.clips[0].uri == f"{origin}/v1beta/files/abc123:download?alt=media" and status.clips[0].needs_key
    assert status.usage == Usage(input_tokens=21, output_tokens=34760)
    elsewhere = {"id": "i", "status": "completed", "output_video": {"type": "video", "uri": "https://cdn.example/v.mp4"}}
    assert not read_interaction(elsewhere, ctx, api_origin=origin).clips[0].needs_key
    step_error = {"id": "i", "status": "failed", "steps": [
        {"type": "model_output", "error": {"code": 8, "message": "quota for video"}}]}
    failed = read_interaction(step_error, ctx, api_origin=origin)
    assert failed.state == "failed" and failed.error is not None and failed.error.kind == "rate_limit"
    blocked = {"id": "i", "status": "failed", "errors": [{"code": "PROHIBITED_CONTENT", "message": "no"}]}
    assert read_interaction(blocked, ctx, api_origin=origin).state == "filtered"
    talk = {"id": "i", "status": "completed", "steps": [
        {"type": "model_output", "content": [{"type": "text", "text": "I cannot make that video."}]}]}
    said = read_interaction(talk, ctx, api_origin=origin)
    assert said.state == "failed" and isinstance(said.error, ProtocolError) and "cannot make" in said.error.message
    # requires_action never advances by itself for a video job: failed at once, not waited on to the timeout.
    action = read_interaction({"id": "i", "status": "requires_action"}, ctx, api_origin=origin)
    assert action.state == "failed" and action.error is not None and "requires_action" in action.error.message
    with pytest.raises(ProtocolError):
        read_interaction({"id": "i"}, ctx, api_origin=origin)
    assert download_url("https://x/v1beta/files/a1:download?alt=media") == "https://x/v1beta/files/a1:download?alt=media"


# ---- questions about a video ---------------------------------------------------------------------------


async def collect(p: InteractionsProvider, request: VideoQuestion) -> list[ProviderEvent]:
    return [event async for event in p.stream(request)]


def question(video: VideoSource, text: str = "What moves in this clip?", **extra: Any) -> VideoQuestion:
    return VideoQuestion(MODEL, (Message("user", text),), video=video, **extra)


def test_question_about_a_local_clip(emulator: Emulator, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "q.mp4", seconds=1.0, size=(160, 90))
    assert isinstance(clip, Path)
    emulator.script(MODEL, VideoScript(answer="A white square slides to the right."))
    events = run(emulator, lambda p: collect(p, question(VideoSource(path=clip), max_tokens=200)))
    text, usage, finished = events
    assert text == TextDelta("A white square slides to the right.")
    assert isinstance(usage, Usage) and usage.input_tokens and usage.output_tokens
    assert isinstance(finished, Finished) and finished.reason == "completed" and finished.served_model == MODEL
    (body,) = created(emulator)
    video, asked = body["input"]
    assert video["type"] == "video" and video["mime_type"] == "video/mp4"
    assert base64.b64decode(video["data"]) == clip.read_bytes()
    assert asked == {"type": "text", "text": "What moves in this clip?"}
    assert body["background"] is True and body["response_modalities"] == ["text"]
    assert body["generation_config"] == {"max_output_tokens": 200}
    assert finished.request_id == calls(emulator, "GET")[0].path.rsplit("/", 1)[-1]


def test_question_about_a_url_and_a_conversation(emulator: Emulator) -> None:
    url = "https://www.youtube.com/watch?v=emulated"
    request = VideoQuestion(MODEL, (Message("system", "Be brief."), Message("user", "Hi"),
                                    Message("assistant", "Hello."), Message("user", "What happens?")),
                            video=VideoSource(url=url))
    events = run(emulator, lambda p: collect(p, request))
    assert isinstance(events[0], TextDelta) and events[0].text
    (body,) = created(emulator)
    assert body["system_instruction"] == "Be brief."
    assert [step["type"] for step in body["input"]] == ["user_input", "model_output", "user_input"]
    assert body["input"][-1]["content"] == [{"type": "video", "uri": url, "mime_type": "video/mp4"},
                                            {"type": "text", "text": "What happens?"}]


def test_question_blocked_is_a_blocked_error_before_any_event(emulator: Emulator) -> None:
    emulator.script(MODEL, VideoScript(outcome="filtered", reason="unsafe content"))
    with pytest.raises(BlockedError) as blocked:
        run(emulator, lambda p: collect(p, question(VideoSource(url="https://example.com/v.mp4"))))
    assert blocked.value.message == "unsafe content" and blocked.value.code == "SAFETY"


def test_question_too_large_for_inline_is_refused_before_sending(emulator: Emulator, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    with open(big, "wb") as out:
        out.truncate(21 * 1024 * 1024)  # sparse: no 21 MB written
    with pytest.raises(BadRequestError, match="too large for inline Omni input"):
        run(emulator, lambda p: collect(p, question(VideoSource(path=big))))
    assert not calls(emulator, "POST")


def test_a_cancelled_question_cancels_the_interaction(emulator: Emulator) -> None:
    async def work(p: InteractionsProvider) -> None:
        task = asyncio.create_task(collect(p, question(VideoSource(url="https://example.com/v.mp4"))))
        # Once the create was answered the stream waits 0.5 s before its first poll: cancel in between.
        await asyncio.to_thread(emulator.wait_for, lambda reqs: any(r.method == "POST" and r.ended for r in reqs))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(emulator, work)
    (cancel,) = calls(emulator, "POST", "/cancel")
    job_id = cancel.path.split("/")[-2]
    job = emulator.video.job(job_id)
    assert job is not None and job.cancelled



# ---- reference images, resolutions and delivery, capabilities ------------------------------------------------


def jpeg_bytes() -> bytes:
    """A small real JPEG, made with PyAV's MJPEG encoder."""
    import numpy as np

    image = np.full((36, 64, 3), (200, 60, 30), dtype=np.uint8)
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 36, "yuvj420p"
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


def references(tmp_path: Path, n: int = 3) -> tuple[Path, ...]:
    """PNG, JPEG, PNG, ... (each named .png: the bytes decide the type)."""
    paths = tuple(tmp_path / f"ref{i}.png" for i in range(n))
    for i, path in enumerate(paths):
        path.write_bytes(png_bytes(colour=(30 * i, 90, 200)) if i % 2 == 0 else jpeg_bytes())
    return paths


def test_references_are_image_blocks_after_the_text_with_their_bytes_and_types(emulator: Emulator,
                                                                              tmp_path: Path) -> None:
    emulator.script(MODEL, VideoScript(polls=0))
    refs = references(tmp_path, 3)

    async def work(p: InteractionsProvider) -> JobStatus:
        return await p.poll(await p.submit(VideoRequest(MODEL, "this fox, running", references=refs)))

    assert run(emulator, work).state == "succeeded"
    (post,) = calls(emulator, "POST", "/interactions")
    assert post.status == 200
    text, *images = post.body["input"]
    assert text == {"type": "text", "text": "this fox, running"}
    assert [b["type"] for b in images] == ["image"] * 3
    assert [b["mime_type"] for b in images] == ["image/png", "image/jpeg", "image/png"]
    assert [base64.b64decode(b["data"]) for b in images] == [p.read_bytes() for p in refs]
    assert post.body["generation_config"] == {"video_config": {"task": "reference_to_video"}}


def test_an_edit_with_references_keeps_the_edit_task(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(MODEL, VideoScript(polls=0))
    (ref,) = references(tmp_path, 1)

    async def work(p: InteractionsProvider) -> JobStatus:
        first = await p.submit(VideoRequest(MODEL, "a car"))
        await p.poll(first)
        return await p.poll(await p.submit(VideoRequest(MODEL, "paint it like this", previous_job=first.job_id,
                                                        references=(ref,))))

    assert run(emulator, work).state == "succeeded"
    body = created(emulator)[1]
    assert body["generation_config"]["video_config"]["task"] == "edit" and body["input"][1]["type"] == "image"


@pytest.mark.parametrize("resolution", ["360p", "720p", "1080p", "4k"])
def test_every_omni_resolution_goes_on_the_wire_with_uri_delivery(emulator: Emulator, resolution: str) -> None:
    emulator.script(MODEL, VideoScript(polls=0))
    request = VideoRequest(MODEL, "x", resolution=resolution, seconds=8)
    assert InteractionsProvider.check_request(request) == []
    run(emulator, lambda p: p.submit(request))
    (body,) = created(emulator)
    assert body["response_format"] == {"type": "video", "duration": "8s", "resolution": resolution,
                                       "delivery": "uri"}


@pytest.mark.parametrize(("change", "words"), [
    ({"resolution": "480p"}, "--resolution 480p: gemini:gemini-omni-1.2-flash makes 360p, 720p, 1080p or 4k"),
    ({"resolution": "2k"}, "--resolution 2k: "),
    ({"model": "gemini-omni-flash-preview", "seconds": 12}, "makes 1 to 10 seconds"),
    ({"references": 4}, "at most 3 reference images, not 4"),
    ({"image": True}, "a first frame or reference images, not both"),
    ({"gif": True}, "Omni takes a PNG or JPEG reference image"),
    ({"missing": True}, "no such file"),
    ({"model": "veo-3.1-generate-preview"}, "not a Gemini Omni model"),
])
def test_check_request_refuses_what_omni_cannot_take_in_one_line(tmp_path: Path, change: dict[str, Any],
                                                                 words: str) -> None:
    refs = references(tmp_path, change.pop("references", 1))
    if change.pop("gif", False):
        refs[0].write_bytes(b"GIF89a" + bytes(32))
    if change.pop("missing", False):
        refs = (tmp_path / "nowhere.png",)
    if change.pop("image", False):
        change["image"] = tmp_path / "first.png"
        change["image"].write_bytes(png_bytes())
    with pytest.raises(ConfigError) as info:
        InteractionsProvider.check_request(VideoRequest(**{"model": MODEL, "prompt": "x", "references": refs,
                                                           **change}))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_capabilities_per_omni_model() -> None:
    caps = InteractionsProvider.capabilities(MODEL)
    assert caps is not None and caps.model == MODEL and caps.max_seconds == 15 and caps.takes_seconds(15)
    assert caps.resolutions == ("360p", "720p", "1080p", "4k") and caps.aspects == ("16:9", "9:16")
    assert caps.first_frame and not caps.last_frame and caps.references == 3 and caps.edit and not caps.extend
    assert caps.price_per_second == 0.10
    preview = InteractionsProvider.capabilities("gemini-omni-flash-preview")
    assert preview is not None and preview.max_seconds == 10 and preview.price_per_second == 0.10
    assert not preview.takes_seconds(11)
    newer = InteractionsProvider.capabilities("gemini-omni-2.0-flash")
    assert newer is not None and newer.max_seconds == 15 and "not in the reference" in newer.source
    assert InteractionsProvider.capabilities("veo-3.1-generate-preview") is None


def test_the_emulator_checks_image_blocks_against_the_task(emulator: Emulator) -> None:
    png = base64.b64encode(png_bytes()).decode("ascii")
    jpeg = base64.b64encode(jpeg_bytes()).decode("ascii")
    base = emulator.env()["GEMINI_BASE_URL"] + "/v1/interactions"

    def create(task: str, *images: tuple[str, str]) -> httpx.Response:
        blocks = [{"type": "text", "text": "x"}] + [{"type": "image", "data": d, "mime_type": m} for d, m in images]
        body = {"model": MODEL, "input": blocks, "response_modalities": ["video"], "background": True,
                "generation_config": {"video_config": {"task": task}}}
        with httpx.Client(headers={"x-goog-api-key": KEY}) as client:
            return client.post(base, json=body)

    assert create("reference_to_video", (png, "image/png"), (jpeg, "image/jpeg")).status_code == 200
    refused = {
        "four": create("reference_to_video", *[(png, "image/png")] * 4),
        "none": create("reference_to_video"),
        "two first frames": create("image_to_video", (png, "image/png"), (png, "image/png")),
        "text with an image": create("text_to_video", (png, "image/png")),
        "jpeg called png": create("reference_to_video", (jpeg, "image/png")),
        "gif": create("reference_to_video", (base64.b64encode(b"GIF89a" + bytes(8)).decode(), "image/gif")),
    }
    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 400)
    assert "1 to 3" in refused["four"].json()["error"]["message"]
    assert "not a PNG" in refused["jpeg called png"].json()["error"]["message"]
