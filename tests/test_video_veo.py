"""Veo (``predictLongRunning``) against the loopback emulator, through a real socket.

Each test builds the endpoint the way the engine does (``resolve_endpoint`` from the emulator's environment)
and drives ``VeoProvider`` by hand: submit, poll in a loop (jobs advance per poll, no sleeping), download.
What the emulator received (``emu.requests``) is the evidence: bodies, keys, redirects.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import av
import httpx
import pytest

import fusion_magic
from fusion_magic.core.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from fusion_magic.providers._http import WireContext
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.providers.video.base import JobRef, JobStatus, VideoRequest
from fusion_magic.providers.video.veo import CURRENT_MODELS, VeoProvider, operation_error
from fusion_magic.testing import Emulator, Fault, RecordedRequest, VideoScript
from fusion_magic.testing.families.veo import validate
from fusion_magic.testing.media import png_bytes

MODEL = "veo-3.1-fast-generate-preview"
T = TypeVar("T")


def run(fn: Callable[[VeoProvider], Awaitable[T]]) -> T:
    """Run ``fn`` with a VeoProvider pointed (by the environment) at the emulator."""

    async def go() -> T:
        async with httpx.AsyncClient() as client:
            return await fn(VeoProvider(resolve_endpoint(BUILTIN["gemini"]), client))

    return asyncio.run(go())


async def until_final(provider: VeoProvider, job: JobRef, limit: int = 20) -> tuple[JobStatus, int]:
    """Poll until a final state; the status and the number of polls it took."""
    for n in range(1, limit + 1):
        status = await provider.poll(job)
        if status.final:
            return status, n
    raise AssertionError(f"not final after {limit} polls")


def of(emu: Emulator, family: str, method: str | None = None) -> list[RecordedRequest]:
    return [r for r in emu.requests if r.family == family and (method is None or r.method == method)]


def duration_s(path: Path) -> float:
    with av.open(str(path)) as container:
        assert container.streams.video, "no video stream"
        assert container.duration is not None
        return float(container.duration / av.time_base)


# ---- success, per delivery ---------------------------------------------------------------------------


def test_redirect_delivery_downloads_a_real_mp4_and_never_sends_the_key_to_storage(
    emulator_env: Emulator, tmp_path: Path
) -> None:
    emu = emulator_env
    emu.script(MODEL, VideoScript(polls=2, clip_seconds=1.5, delivery="redirect"))
    dest = tmp_path / "videos" / "fox.mp4"
    request = VideoRequest(model=MODEL, prompt="a fox in snow", seconds=6, aspect="9:16", negative="blurry")

    async def go(provider: VeoProvider) -> tuple[JobRef, JobStatus, int, int]:
        job = await provider.submit(request)
        status, polls = await until_final(provider, job)
        return job, status, polls, await provider.download(status.clips[0], dest)

    job, status, polls, written = run(go)

    assert job.protocol == "veo" and job.model == MODEL
    assert job.job_id.startswith(f"models/{MODEL}/operations/")
    assert (status.state, polls) == ("succeeded", 3)  # two polls running, the third done
    assert status.clips[0].uri is not None and status.clips[0].needs_key
    [submit] = of(emu, "gemini-veo", "POST")
    assert submit.path == f"/gemini/v1beta/models/{MODEL}:predictLongRunning"
    assert submit.headers["x-goog-api-key"] == "<redacted>"  # the key was there (the log redacts it)
    assert submit.body == {
        "instances": [{"prompt": "a fox in snow"}],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 6, "negativePrompt": "blurry", "sampleCount": 1},
    }
    assert all(r.path == "/gemini/" + job.job_id.replace("models/", "v1beta/models/", 1)
               for r in of(emu, "gemini-veo", "GET"))
    [files] = of(emu, "gemini-files")
    assert files.status == 302 and files.headers.get("x-goog-api-key") == "<redacted>"
    [storage] = of(emu, "storage")
    assert storage.status == 200
    assert not {"x-goog-api-key", "authorization", "x-api-key"} & set(storage.headers)
    assert "key" not in storage.query
    assert dest.read_bytes()[4:8] == b"ftyp" and written == dest.stat().st_size
    assert not list(dest.parent.glob("*.part"))
    assert duration_s(dest) == pytest.approx(1.5, abs=0.2)


def test_inline_delivery_is_written_as_sent(emulator_env: Emulator, tmp_path: Path) -> None:
    emu = emulator_env
    emu.script(MODEL, VideoScript(delivery="inline", clip_seconds=1.0))
    dest = tmp_path / "inline.mp4"

    async def go(provider: VeoProvider) -> JobStatus:
        status, _ = await until_final(provider, await provider.submit(VideoRequest(MODEL, "waves")))
        await provider.download(status.clips[0], dest)
        return status

    status = run(go)
    clip = status.clips[0]
    assert clip.uri is None and clip.data is not None and clip.mime == "video/mp4"
    assert dest.read_bytes() == clip.data
    assert duration_s(dest) == pytest.approx(1.0, abs=0.2)
    assert not of(emu, "gemini-files") and not of(emu, "storage")


def test_uri_delivery_is_served_by_the_api_host(emulator_env: Emulator, tmp_path: Path) -> None:
    emu = emulator_env
    emu.script(MODEL, VideoScript(delivery="uri"))
    dest = tmp_path / "uri.mp4"

    async def go(provider: VeoProvider) -> int:
        status, _ = await until_final(provider, await provider.submit(VideoRequest(MODEL, "rain")))
        return await provider.download(status.clips[0], dest)

    written = run(go)
    [files] = of(emu, "gemini-files")
    assert files.status == 200 and files.headers.get("x-goog-api-key") == "<redacted>"
    assert not of(emu, "storage")
    assert written == dest.stat().st_size > 0 and dest.read_bytes()[4:8] == b"ftyp"


def test_first_frame_image_is_sent_base64_with_its_type(emulator_env: Emulator, tmp_path: Path) -> None:
    emu = emulator_env
    image = tmp_path / "first.png"
    image.write_bytes(png_bytes())
    run(lambda p: p.submit(VideoRequest(MODEL, "it starts moving", image=image, resolution="1080p", seconds=8)))
    [submit] = of(emu, "gemini-veo", "POST")
    sent = submit.body["instances"][0]["image"]
    assert sent["mimeType"] == "image/png"
    assert base64.b64decode(sent["bytesBase64Encoded"]) == image.read_bytes()
    assert submit.body["parameters"] == {"resolution": "1080p", "durationSeconds": 8, "sampleCount": 1}


# ---- other final states ------------------------------------------------------------------------------


def test_filtered_is_its_own_state_with_the_reason(emulator_env: Emulator) -> None:
    reason = "Audio track blocked: it may contain a real person's voice."
    emulator_env.script(MODEL, VideoScript(outcome="filtered", reason=reason))

    async def go(provider: VeoProvider) -> JobStatus:
        return (await until_final(provider, await provider.submit(VideoRequest(MODEL, "a crowd"))))[0]

    status = run(go)
    assert (status.state, status.reason, status.clips, status.error) == ("filtered", reason, (), None)


def test_failed_job_carries_a_typed_error_with_the_message(emulator_env: Emulator) -> None:
    emulator_env.script(MODEL, VideoScript(outcome="failed", error_message="The model ran out of ideas."))

    async def go(provider: VeoProvider) -> JobStatus:
        return (await until_final(provider, await provider.submit(VideoRequest(MODEL, "a plot twist"))))[0]

    status = run(go)
    assert status.state == "failed" and isinstance(status.error, ServerError)
    assert status.error.code == "INTERNAL" and status.error.model == MODEL
    assert "The model ran out of ideas." in str(status.error)


def test_operation_error_codes_are_rpc_codes_not_http_statuses() -> None:
    ctx = WireContext("gemini", MODEL)
    assert isinstance(operation_error(ctx, {"code": 3, "message": "bad"}), BadRequestError)
    assert isinstance(operation_error(ctx, {"code": 8, "message": "busy"}), RateLimitError)
    assert isinstance(operation_error(ctx, {"code": 13, "message": "boom"}), ServerError)
    assert isinstance(operation_error(ctx, {"code": 16}), AuthError)
    assert isinstance(operation_error(ctx, {"code": 500, "message": "http-ish"}), ServerError)


# ---- errors at submit ----------------------------------------------------------------------------------


def test_retired_id_is_one_line_naming_the_id_and_the_current_models(emulator_env: Emulator) -> None:
    retired = "veo-3.0-generate-001"
    emulator_env.script(retired, VideoScript(submit_faults=[Fault("status", status=404)]))
    with pytest.raises(BadRequestError) as info:
        run(lambda p: p.submit(VideoRequest(retired, "anything")))
    message = str(info.value)
    assert "\n" not in message and info.value.status == 404
    assert retired in message and all(m in message for m in CURRENT_MODELS)
    assert "%video list" in message
    [submit] = of(emulator_env, "gemini-veo")
    assert submit.status == 404 and emulator_env.video_jobs(retired) == 0


def test_1080p_with_4s_is_refused_before_sending_and_by_the_server_when_sent(emulator_env: Emulator) -> None:
    emu = emulator_env
    request = VideoRequest(MODEL, "a skyline", seconds=4, resolution="1080p")
    with pytest.raises(ConfigError, match="1080p needs --seconds 8"):
        VeoProvider.check_request(request)
    with pytest.raises(ConfigError):
        run(lambda p: p.submit(request))  # submit checks too
    assert emu.requests == []

    # Sent anyway (a client without the check), the server says no; durationSeconds as a string is fine.
    async def raw(provider: VeoProvider, seconds: Any) -> httpx.Response:
        body = provider.body(request)
        body["parameters"]["durationSeconds"] = seconds
        url = f"{emu.url}/gemini/v1beta/models/{MODEL}:predictLongRunning"
        return await provider.client.post(url, json=body, headers={"x-goog-api-key": "AIza-test-emulator"})

    refused = run(lambda p: raw(p, 4))
    assert refused.status_code == 400
    assert refused.json()["error"] == {"code": 400, "status": "INVALID_ARGUMENT",
                                       "message": "Resolution 1080p is only supported for 8s duration."}
    assert run(lambda p: raw(p, "8")).status_code == 200
    assert emu.video_jobs(MODEL) == 1


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (VideoRequest(MODEL, "x", seconds=5), "--seconds must be 4, 6 or 8"),
        (VideoRequest(MODEL, "x", aspect="1:1"), "--aspect must be 16:9 or 9:16"),
        (VideoRequest("veo-3.1-lite-generate-preview", "x", resolution="4k", seconds=8), "not 4k"),
        (VideoRequest(MODEL, "x", resolution="4k", seconds=6), "4k needs --seconds 8"),
        (VideoRequest(MODEL, "x", image=Path("no-such-frame.png")), "no such image file"),
        (VideoRequest(MODEL, "x", previous_job="models/x/operations/y"), "--edit needs an Omni model"),
    ],
)
def test_check_request_refuses_what_veo_never_accepts(request_: VideoRequest, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        VeoProvider.check_request(request_)
    assert "\n" not in str(info.value)


def test_check_request_accepts_the_documented_combinations() -> None:
    assert VeoProvider.check_request(VideoRequest(MODEL, "x", seconds=8, resolution="4K", aspect="16:9")) == []
    assert VeoProvider.check_request(VideoRequest(MODEL, "x", resolution="1080p")) == []  # default is 8 s


def test_emulator_validates_bodies_like_the_server() -> None:
    assert validate({"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": "6"}}) is None
    assert validate({"instances": []}) is not None
    assert validate({"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": "six"}}) is not None
    assert validate({"instances": [{"prompt": "x", "image": {"mimeType": "image/gif",
                                                             "bytesBase64Encoded": "AA=="}}]}) is not None


# ---- polling -------------------------------------------------------------------------------------------


def test_an_operation_without_done_is_still_running(emulator_env: Emulator) -> None:
    emu = emulator_env
    emu.script(MODEL, VideoScript(polls=3))

    async def go(provider: VeoProvider) -> tuple[dict[str, Any], list[str]]:
        job = await provider.submit(VideoRequest(MODEL, "clouds"))
        # The first poll, read raw: the emulator leaves "done" out on odd polls.
        raw = await provider.client.get(f"{emu.url}/gemini/v1beta/{job.job_id}",
                                        headers={"x-goog-api-key": "AIza-test-emulator"})
        states: list[str] = [(await provider.poll(job)).state for _ in range(3)]
        states.append(provider.status(WireContext("gemini", MODEL), {"name": "x", "done": False}).state)
        return raw.json(), states

    first, states = run(go)
    assert "done" not in first and first["name"].startswith(f"models/{MODEL}/operations/")
    # Polls 2 ("done": false), 3 (no "done") and 4 (done); then a literal "done": false.
    assert states == ["running", "running", "succeeded", "running"]


def test_a_poll_fault_is_a_retryable_server_error_and_the_next_poll_works(emulator_env: Emulator) -> None:
    emulator_env.script(MODEL, VideoScript(polls=1, poll_faults=[Fault("status", status=503, times=1)]))

    async def go(provider: VeoProvider) -> tuple[ProviderError, JobStatus]:
        job = await provider.submit(VideoRequest(MODEL, "a storm"))
        try:
            await provider.poll(job)
        except ProviderError as exc:
            return exc, (await until_final(provider, job))[0]
        raise AssertionError("the scripted 503 did not raise")

    error, status = run(go)
    assert isinstance(error, ServerError) and error.retryable and error.status == 503
    assert status.state == "succeeded"


def test_cancel_sends_nothing(emulator_env: Emulator) -> None:
    run(lambda p: p.cancel(JobRef("veo", MODEL, f"models/{MODEL}/operations/abc")))
    assert emulator_env.requests == []


# ---- the model list ------------------------------------------------------------------------------------


def test_list_models_reads_every_page_and_keeps_predict_long_running(emulator_env: Emulator) -> None:
    emu = emulator_env
    emu.script("veo-emulated-custom", VideoScript())
    emu.script("fal-ai/kling-video/v2.1/standard/text-to-video", VideoScript())
    models = run(lambda p: p.list_models())
    assert models == [*CURRENT_MODELS, "veo-emulated-custom"]
    pages = of(emu, "gemini-veo", "GET")
    assert len(pages) == 2 and all(p.query["pageSize"] == "1000" for p in pages)
    assert "pageToken" not in pages[0].query and pages[1].query["pageToken"]


# ---- keys ----------------------------------------------------------------------------------------------


def test_the_key_never_appears_in_an_error_or_a_job_ref(
    emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_env
    secret = "AIza-distinctive-9f8e7d6c5b4a"
    monkeypatch.setenv("GEMINI_API_KEY", secret)
    # The server echoes the key in its message: our error must not.
    emu.script(MODEL, VideoScript(submit_faults=[Fault("status", status=400, message=f"bad request for {secret}",
                                                       times=1)],
                                  poll_faults=[Fault("status", status=429, message=f"slow down {secret}")]))
    errors: list[BaseException] = []

    async def go(provider: VeoProvider) -> JobRef:
        try:
            await provider.submit(VideoRequest(MODEL, "x"))
        except ProviderError as exc:
            errors.append(exc)
        job = await provider.submit(VideoRequest(MODEL, "x"))
        try:
            await provider.poll(job)
        except ProviderError as exc:
            errors.append(exc)
        assert secret not in repr(provider)
        return job

    job = run(go)
    emu.expected_keys["gemini-veo"] = "AIza-the-right-one"
    with pytest.raises(AuthError) as wrong:
        run(lambda p: p.submit(VideoRequest(MODEL, "x")))
    errors.append(wrong.value)

    assert [type(e) for e in errors] == [BadRequestError, RateLimitError, AuthError]
    for error in errors:
        assert secret not in str(error) and secret not in repr(error.args)
    assert "<redacted>" in str(errors[0])
    assert secret not in job.to_json()
    assert all(secret not in json.dumps([r.headers, r.query]) for r in emu.requests)


# ---- first and last frame, extension (Veo 3.1 only) -------------------------------------------------------


def jpeg_bytes(colour: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    """A small real JPEG (a last frame), made with PyAV's MJPEG encoder."""
    import numpy as np

    image = np.empty((36, 64, 3), dtype=np.uint8)
    image[:] = colour
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 36, "yuvj420p"
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


def frames(tmp_path: Path) -> tuple[Path, Path]:
    first, last = tmp_path / "first.png", tmp_path / "last.jpg"
    first.write_bytes(png_bytes())
    last.write_bytes(jpeg_bytes())
    return first, last


def sample_uri(emu: Emulator, job: JobRef) -> str:
    """The URI the finished operation names for its clip, read raw from the emulator (not through our code)."""
    answer = httpx.get(f"{emu.url}/gemini/v1beta/{job.job_id}", headers={"x-goog-api-key": "AIza-test-emulator"})
    uri: str = answer.json()["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    return uri


def test_first_and_last_frame_are_sent_base64_with_their_types_and_8_seconds(emulator_env: Emulator,
                                                                            tmp_path: Path) -> None:
    emu = emulator_env
    first, last = frames(tmp_path)
    request = VideoRequest(MODEL, "the ball rolls from blue to red", image=first, last_frame=last)
    assert VeoProvider.check_request(request) == []
    job = run(lambda p: p.submit(request))
    [submit] = of(emu, "gemini-veo", "POST")
    assert submit.status == 200 and emu.video_jobs(MODEL) == 1 and job.model == MODEL
    instance = submit.body["instances"][0]
    assert instance["image"]["mimeType"] == "image/png" and instance["lastFrame"]["mimeType"] == "image/jpeg"
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == first.read_bytes()
    assert base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == last.read_bytes()
    # 8 s is the only length an interpolation takes: said, not left to the server's default.
    assert submit.body["parameters"] == {"durationSeconds": 8, "sampleCount": 1}


def test_an_extension_sends_the_sample_uri_and_gets_the_whole_clip_longer(emulator_env: Emulator,
                                                                          tmp_path: Path) -> None:
    emu = emulator_env
    emu.script(MODEL, VideoScript(polls=0, clip_seconds=1.0, delivery="redirect"))
    first_dest, longer_dest = tmp_path / "first.mp4", tmp_path / "longer.mp4"

    async def first_clip(provider: VeoProvider) -> JobRef:
        job = await provider.submit(VideoRequest(MODEL, "a fox in snow", aspect="9:16"))
        status, _ = await until_final(provider, job)
        await provider.download(status.clips[0], first_dest)
        return job

    first = run(first_clip)
    uri = sample_uri(emu, first)
    request = VideoRequest(MODEL, "the fox dives into a snowdrift", extend_uri=uri)
    assert VeoProvider.check_request(request) and VeoProvider.billed_seconds(request) == 7

    async def extend(provider: VeoProvider) -> JobStatus:
        status, _ = await until_final(provider, await provider.submit(request))
        await provider.download(status.clips[0], longer_dest)
        return status

    status = run(extend)
    extension = of(emu, "gemini-veo", "POST")[-1]
    assert extension.status == 200 and emu.video_jobs(MODEL) == 2
    assert extension.body == {
        "instances": [{"prompt": "the fox dives into a snowdrift", "video": {"uri": uri}}],
        "parameters": {"resolution": "720p", "durationSeconds": 8, "sampleCount": 1},
    }
    assert "/storage/" not in uri and "key" not in httpx.URL(uri).params
    assert status.clips[0].uri != uri  # a new clip of its own
    assert duration_s(first_dest) == pytest.approx(1.0, abs=0.2)
    assert duration_s(longer_dest) == pytest.approx(2.0, abs=0.2)  # the combined video: the first clip and more


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"last_frame": Path("last.png")}, "--last-frame needs --image"),
        ({"image": "first", "last_frame": "last", "seconds": 6}, "first and last frame need --seconds 8"),
        ({"image": "first", "last_frame": "gif"}, "last-frame image must be PNG or JPEG"),
        ({"model": "veo-3.0-generate-001", "image": "first", "last_frame": "last"}, "--last-frame needs Veo 3.1"),
        ({"extend_uri": "URI", "seconds": 4}, "drop --seconds 4"),
        ({"extend_uri": "URI", "resolution": "1080p"}, "720p only, not 1080p"),
        ({"extend_uri": "URI", "aspect": "9:16"}, "drop --aspect"),
        ({"extend_uri": "URI", "image": "first"}, "drop --image and --last-frame"),
        ({"extend_uri": "/tmp/clip.mp4"}, "is not the URI of a Veo result"),
        ({"model": "veo-2.0-generate-001", "extend_uri": "URI"}, "--extend needs Veo 3.1"),
    ],
)
def test_check_request_refuses_frames_and_extensions_veo_never_accepts(tmp_path: Path, change: dict[str, Any],
                                                                        words: str) -> None:
    first, last = frames(tmp_path)
    gif = tmp_path / "last.png"  # a GIF under a PNG's name: the bytes decide
    gif.write_bytes(b"GIF89a" + bytes(32))
    named = {"first": first, "last": last, "gif": gif,
             "URI": "https://generativelanguage.googleapis.com/v1beta/files/a:download"}
    values: dict[str, Any] = {k: named.get(v, v) if isinstance(v, str) else v for k, v in change.items()}
    with pytest.raises(ConfigError, match=words) as info:
        VeoProvider.check_request(VideoRequest(**{"model": MODEL, "prompt": "x", **values}))
    assert "\n" not in str(info.value)


def test_the_emulator_refuses_what_veo_refuses_for_frames_and_extensions(emulator_env: Emulator,
                                                                         tmp_path: Path) -> None:
    """A client that sent video bytes, a wrong length or resolution, or a URI Veo did not make, fails here as it
    would against the API: these are the checks our own extension and interpolation pass through."""
    emu = emulator_env
    emu.script(MODEL, VideoScript(polls=0))
    first, last = frames(tmp_path)

    async def prepare(provider: VeoProvider) -> JobRef:
        job = await provider.submit(VideoRequest(MODEL, "a fox"))
        await until_final(provider, job)
        return job

    uri = sample_uri(emu, run(prepare))
    made = emu.video_jobs(MODEL)

    async def bodies(provider: VeoProvider) -> tuple[dict[str, Any], dict[str, Any]]:
        return (provider.body(VideoRequest(MODEL, "more", extend_uri=uri)),
                provider.body(VideoRequest(MODEL, "between", image=first, last_frame=last)))

    good, frame = run(bodies)
    blob = emu.video.jobs(MODEL)[0].blob
    storage = f"{emu.url.replace('127.0.0.1', 'localhost')}/storage/{blob}"

    def varied(body: dict[str, Any], instance: dict[str, Any] | None = None, **parameters: Any) -> dict[str, Any]:
        return {"instances": [{**body["instances"][0], **(instance or {})}],
                "parameters": {**body["parameters"], **parameters}}

    refused = {
        "video bytes": varied(good, {"video": {"bytesBase64Encoded": base64.b64encode(b"mp4").decode()}}),
        "bytes beside the uri": varied(good, {"video": {"uri": uri, "encodedVideo": "AAAA"}}),
        "6 s extension": varied(good, durationSeconds=6),
        "1080p extension": varied(good, resolution="1080p"),
        "the storage redirect target": varied(good, {"video": {"uri": storage}}),
        "a file Veo never made": varied(good, {"video": {"uri": uri.replace(str(blob), "gemini-veo-0000nothing")}}),
        "extension with a first frame": varied(good, {"image": frame["instances"][0]["image"]}),
        "6 s interpolation": varied(frame, durationSeconds=6),
        "a last frame alone": {"instances": [{"prompt": "x", "lastFrame": frame["instances"][0]["lastFrame"]}]},
        "a last frame that is a gif": varied(frame, {"lastFrame": {"bytesBase64Encoded": "R0lG",
                                                                   "mimeType": "image/gif"}}),
    }
    url = f"{emu.url}/gemini/v1beta/models/{MODEL}:predictLongRunning"
    key = {"x-goog-api-key": "AIza-test-emulator"}
    for what, body in refused.items():
        answer = httpx.post(url, json=body, headers=key)
        assert answer.status_code == 400, what
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT", what
    assert emu.video_jobs(MODEL) == made  # nothing refused was accepted as a job
    for body in (good, frame, varied(good, durationSeconds="8")):
        assert httpx.post(url, json=body, headers=key).status_code == 200
    assert emu.video_jobs(MODEL) == made + 3


def test_the_emulator_extends_up_to_141_seconds_of_video(emulator_env: Emulator) -> None:
    """8 s, then +7 s per extension: the 20th extension takes a 141 s video (148 s out), a 21st is refused."""
    emu = emulator_env
    emu.script(MODEL, VideoScript(polls=0, clip_seconds=0.1, delivery="uri"))

    async def chain(provider: VeoProvider) -> tuple[int, ProviderError | None]:
        job = await provider.submit(VideoRequest(MODEL, "a long walk", seconds=8))
        status, _ = await until_final(provider, job)
        extensions = 0
        while True:
            try:
                job = await provider.submit(VideoRequest(MODEL, "further", extend_uri=status.clips[0].uri))
            except ProviderError as exc:
                return extensions, exc
            status, _ = await until_final(provider, job)
            extensions += 1
            if extensions > 25:
                return extensions, None

    extensions, error = run(chain)
    assert extensions == 20
    assert isinstance(error, BadRequestError) and "141" in str(error) and error.status == 400


def test_a_frame_is_sent_as_the_type_its_bytes_are(emulator_env: Emulator, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """One MIME sniffer, from the bytes: a JPEG saved as ``frame.png`` goes out as image/jpeg (by its name it
    was image/png, which Veo refuses or misreads)."""
    frame = tmp_path / "frame.png"
    frame.write_bytes(jpeg_bytes())
    assert VeoProvider.check_request(VideoRequest(MODEL, "x", image=frame, seconds=8)) == []
    monkeypatch.chdir(tmp_path)  # clips are saved inside the working folder
    fusion_magic.video("A fox", models=[f"gemini:{MODEL}"], image=frame, seconds=8)
    sent = next(q for q in emulator_env.requests if q.path.endswith(":predictLongRunning")).body or {}
    assert sent["instances"][0]["image"]["mimeType"] == "image/jpeg"


# ---- reference images (Veo 3.1's reference-to-video) and capabilities -------------------------------------------


def refs(tmp_path: Path, n: int = 2) -> tuple[Path, ...]:
    """``n`` reference images, alternating PNG and JPEG (each named .png: the bytes decide the type)."""
    paths = []
    for i in range(n):
        path = tmp_path / f"ref{i}.png"
        path.write_bytes(png_bytes(colour=(10 * i, 80, 200)) if i % 2 == 0 else jpeg_bytes((20 * i, 90, 40)))
        paths.append(path)
    return tuple(paths)


def test_references_are_sent_as_reference_images_with_bytes_type_8_seconds_and_16_9(emulator_env: Emulator,
                                                                                   tmp_path: Path) -> None:
    emu = emulator_env
    emu.script(MODEL, VideoScript(polls=0))
    references = refs(tmp_path, 3)
    request = VideoRequest(MODEL, "the same red fox, now in the snow", references=references)
    assert VeoProvider.check_request(request) == []

    async def work(p: VeoProvider) -> JobStatus:
        return await p.poll(await p.submit(request))

    assert run(work).state == "succeeded"
    [submit] = of(emu, "gemini-veo", "POST")
    assert submit.status == 200
    instance = submit.body["instances"][0]
    assert set(instance) == {"prompt", "referenceImages"}
    sent = instance["referenceImages"]
    assert [r["referenceType"] for r in sent] == ["asset"] * 3
    assert [r["image"]["mimeType"] for r in sent] == ["image/png", "image/jpeg", "image/png"]
    assert [base64.b64decode(r["image"]["bytesBase64Encoded"]) for r in sent] == [p.read_bytes() for p in references]
    # The only length and shape references take: said, not left to the server's defaults.
    assert submit.body["parameters"] == {"aspectRatio": "16:9", "durationSeconds": 8, "sampleCount": 1}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"references": 4}, "at most 3 reference images, not 4"),
        ({"seconds": 6}, "reference images need --seconds 8"),
        ({"aspect": "9:16"}, "reference images need --aspect 16:9"),
        ({"image": True}, "drop --image, --last-frame and --extend"),
        ({"extend_uri": "https://generativelanguage.googleapis.com/v1beta/files/a:download"}, "drop --image"),
        ({"model": "veo-3.0-generate-001"}, "--reference needs Veo 3.1"),
        ({"gif": True}, "reference image must be PNG or JPEG"),
        ({"missing": True}, "no such image file"),
    ],
)
def test_check_request_refuses_references_veo_cannot_take_in_one_line(tmp_path: Path, change: dict[str, Any],
                                                                       words: str) -> None:
    references = refs(tmp_path, change.pop("references", 1))
    if change.pop("gif", False):
        references[0].write_bytes(b"GIF89a" + bytes(32))
    if change.pop("missing", False):
        references = (tmp_path / "nowhere.png",)
    if change.pop("image", False):
        change["image"] = frames(tmp_path)[0]
    with pytest.raises(ConfigError, match=words) as info:
        VeoProvider.check_request(VideoRequest(**{"model": MODEL, "prompt": "x", "references": references, **change}))
    assert "\n" not in str(info.value)


def test_the_emulator_refuses_reference_images_veo_refuses() -> None:
    png = base64.b64encode(png_bytes()).decode("ascii")
    jpeg = base64.b64encode(jpeg_bytes()).decode("ascii")

    def body(references: Any, **parameters: Any) -> dict[str, Any]:
        return {"instances": [{"prompt": "x", "referenceImages": references}], "parameters": parameters}

    def ref(data: str = png, mime: str = "image/png", kind: Any = "asset") -> dict[str, Any]:
        return {"image": {"bytesBase64Encoded": data, "mimeType": mime}, "referenceType": kind}

    assert validate(body([ref(), ref(jpeg, "image/jpeg", "style")], durationSeconds=8)) is None
    assert "1 to 3" in (validate(body([ref()] * 4, durationSeconds=8)) or "")
    assert "1 to 3" in (validate(body([], durationSeconds=8)) or "")
    assert "referenceType" in (validate(body([ref(kind="subject")], durationSeconds=8)) or "")
    assert "not image/png" in (validate(body([ref(jpeg)], durationSeconds=8)) or "")  # JPEG bytes called PNG
    assert "8s" in (validate(body([ref()], durationSeconds=6)) or "")
    assert "16:9" in (validate(body([ref()], durationSeconds=8, aspectRatio="9:16")) or "")
    mixed = body([ref()], durationSeconds=8)
    mixed["instances"][0]["image"] = ref()["image"]
    assert "cannot be combined" in (validate(mixed) or "")


def test_capabilities_one_table_per_model_preview_and_released_ids_alike() -> None:
    standard = VeoProvider.capabilities("veo-3.1-generate-preview")
    assert standard is not None and standard.model == "veo-3.1-generate-preview"
    assert standard.seconds == (4, 6, 8) and standard.resolutions == ("720p", "1080p", "4k")
    assert standard.aspects == ("16:9", "9:16") and standard.audio is True
    assert standard.first_frame and standard.last_frame and standard.extend and not standard.edit
    assert standard.references == 3 and standard.price_per_second == 0.40
    released = VeoProvider.capabilities("veo-3.1-generate-001")
    assert released is not None and released.references == 3 and released.price_per_second == 0.40
    fast = VeoProvider.capabilities(MODEL)
    assert fast is not None and fast.price_per_second == 0.10 and fast.references == 3
    lite = VeoProvider.capabilities("models/veo-3.1-lite-generate-preview")
    assert lite is not None and lite.resolutions == ("720p", "1080p")
    old = VeoProvider.capabilities("veo-2.0-generate-001")
    assert old is not None and old.seconds == (5, 6, 8) and old.audio is False and not old.references
    assert VeoProvider.capabilities("gemini-omni-1.2-flash") is None
    assert VeoProvider.capabilities("veo-9-unknown") is None
    # check_request reads the table: Veo 2's 5 s passes, Veo 3.1's does not; 1080p is not Veo 2's.
    assert VeoProvider.check_request(VideoRequest("veo-2.0-generate-001", "x", seconds=5)) == []
    with pytest.raises(ConfigError, match="--resolution must be 720p, not 1080p"):
        VeoProvider.check_request(VideoRequest("veo-2.0-generate-001", "x", resolution="1080p"))
    with pytest.raises(ConfigError, match="--seconds must be 4, 6 or 8"):
        VeoProvider.check_request(VideoRequest("veo-3.1-generate-001", "x", seconds=5))


def test_references_through_the_video_call_reach_the_wire(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    emulator_env.script(MODEL, VideoScript(polls=0, clip_seconds=1.0))
    references = refs(tmp_path, 2)
    result = fusion_magic.video("the same fox", models=[f"gemini:{MODEL}"], references=list(references),
                                poll_s=0.01, timeout=30)
    assert result.videos[0].ok
    [submit] = of(emulator_env, "gemini-veo", "POST")
    sent = submit.body["instances"][0]["referenceImages"]
    assert [base64.b64decode(r["image"]["bytesBase64Encoded"]) for r in sent] == [p.read_bytes() for p in references]
