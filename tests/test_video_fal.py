"""fal's queue API over a real socket: the client (providers/video/fal.py) against the emulator
(testing/families/fal.py). Jobs advance per poll, so the tests poll in a loop without sleeping."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import av
import httpx
import pytest

from fusion_magic.core.errors import AuthError, BadRequestError, ConfigError, ServerError
from fusion_magic.providers.base import Endpoint
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.providers.video.base import JobRef, JobStatus, VideoRequest
from fusion_magic.providers.video.fal import MODELS, FalProvider, queue_urls
from fusion_magic.testing.emulator import Emulator
from fusion_magic.testing.media import png_bytes
from fusion_magic.testing.registry import Family, Request, Route, register, unregister
from fusion_magic.testing.script import Fault
from fusion_magic.testing.video import api_origin
from fusion_magic.testing.video_script import VideoScript

T = TypeVar("T")
KEY = Emulator.test_keys()["FAL_KEY"]
VEO = "fal-ai/veo3.1"
KLING = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
HAILUO = "fal-ai/minimax/hailuo-02/standard/text-to-video"


def run(emu: Emulator, body: Callable[[FalProvider], Awaitable[T]], *, key: str = KEY,
        endpoint: Endpoint | None = None) -> T:
    """Run ``body`` with a provider pointed at the emulator, on a fresh loop and client."""
    async def main() -> T:
        async with httpx.AsyncClient() as client:
            return await body(FalProvider(endpoint or Endpoint("fal", emu.url + "/fal", api_key=key), client))
    return asyncio.run(main())


async def until_final(provider: FalProvider, job: JobRef, limit: int = 20) -> list[JobStatus]:
    seen: list[JobStatus] = []
    for _ in range(limit):
        seen.append(await provider.poll(job))
        if seen[-1].final:
            return seen
    raise AssertionError(f"job never finished: {seen}")


def posted(emu: Emulator, endpoint_id: str) -> dict[str, Any]:
    """The JSON body the emulator received for the one submit to ``endpoint_id``."""
    [body] = [r.body for r in emu.requests if r.method == "POST" and r.path == f"/fal/{endpoint_id}"]
    assert isinstance(body, dict)
    return body


# ---- the whole job --------------------------------------------------------------------------------


def test_multi_segment_endpoint_end_to_end_uses_returned_urls_and_no_key_on_the_cdn(
        emulator_env: Emulator, tmp_path: Path) -> None:
    emu = emulator_env
    emu.expected_keys["fal"] = KEY  # only this exact key, sent as "Key ...", is accepted
    emu.script(KLING, VideoScript(polls=2))
    dest = tmp_path / "fox.mp4"

    async def body(p: FalProvider) -> tuple[JobRef, list[JobStatus], int]:
        job = await p.submit(VideoRequest(KLING, "a fox in snow", seconds=5, aspect="9:16"))
        seen = await until_final(p, job)
        return job, seen, await p.download(seen[-1].clips[0], dest)

    job, seen, written = run(emu, body, endpoint=resolve_endpoint(BUILTIN["fal"]))

    short = f"/fal/fal-ai/kling-video/requests/{job.job_id}"
    assert (job.protocol, job.model) == ("fal", KLING)
    assert job.urls == {"status_url": emu.url + short + "/status", "response_url": emu.url + short,
                        "cancel_url": emu.url + short + "/cancel"}
    assert KEY not in job.to_json()
    assert [s.state for s in seen] == ["queued", "running", "succeeded"]
    queue = [r for r in emu.requests if r.family == "fal"]
    assert [(r.method, r.path, r.status) for r in queue] == [
        ("POST", f"/fal/{KLING}", 200), *[("GET", short + "/status", 200)] * 3, ("GET", short, 200)]
    assert all(r.headers["authorization"] == "<redacted>" for r in queue)
    [cdn] = [r for r in emu.requests if r.family == "storage"]
    assert cdn.status == 200 and "authorization" not in cdn.headers
    assert seen[-1].clips[0].needs_key is False and seen[-1].clips[0].mime == "video/mp4"
    assert written == dest.stat().st_size > 0 and not dest.with_name("fox.mp4.part").exists()
    with av.open(str(dest)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0


def test_each_model_gets_its_own_input_names_and_values(emulator: Emulator) -> None:
    veo = VideoRequest(VEO, "p", seconds=6, aspect="9:16", resolution="1080p", negative="blur")
    kling = VideoRequest(KLING, "p", seconds=10, aspect="1:1", negative="blur")
    hailuo = VideoRequest(HAILUO, "p", seconds=10, aspect="16:9", negative="blur")

    async def body(p: FalProvider) -> None:
        for request in (veo, kling, hailuo):
            await p.submit(request)

    run(emulator, body)
    assert posted(emulator, VEO) == {"prompt": "p", "duration": "6s", "aspect_ratio": "9:16",
                                     "resolution": "1080p", "negative_prompt": "blur"}
    assert posted(emulator, KLING) == {"prompt": "p", "duration": "10", "aspect_ratio": "1:1",
                                       "negative_prompt": "blur"}
    assert posted(emulator, HAILUO) == {"prompt": "p", "duration": "10"}
    assert FalProvider.check_request(veo) == FalProvider.check_request(kling) == []
    assert FalProvider.check_request(hailuo) == [
        f"--aspect: fal:{HAILUO} has no aspect ratio option; not sent",
        f"--negative: fal:{HAILUO} has no negative prompt; not sent",
    ]


def test_first_frame_goes_to_the_image_endpoint_as_a_data_uri(emulator: Emulator, tmp_path: Path) -> None:
    frame = tmp_path / "first.png"
    frame.write_bytes(png_bytes())
    veo = VideoRequest(VEO, "p", seconds=8, aspect="16:9", image=frame)
    kling = VideoRequest(KLING, "p", aspect="16:9", image=frame)

    async def body(p: FalProvider) -> list[JobRef]:
        return [await p.submit(veo), await p.submit(kling)]

    veo_job, kling_job = run(emulator, body)
    assert veo_job.model == "fal-ai/veo3.1/image-to-video"
    assert veo_job.urls["status_url"].endswith(f"/fal/fal-ai/veo3.1/requests/{veo_job.job_id}/status")
    sent = posted(emulator, veo_job.model)
    head, _, data = sent.pop("image_url").partition(",")
    assert head == "data:image/png;base64" and base64.b64decode(data) == frame.read_bytes()
    assert sent == {"prompt": "p", "duration": "8s", "aspect_ratio": "16:9"}
    # Kling's image-to-video endpoint follows the image: no aspect ratio, and a note says so.
    assert kling_job.model == "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"
    assert set(posted(emulator, kling_job.model)) == {"prompt", "image_url"}
    assert FalProvider.check_request(kling) == [
        f"--aspect: fal:{KLING} has no aspect ratio option from a first frame (it follows the image); not sent"]


# ---- polling --------------------------------------------------------------------------------------


def test_queue_position_then_logs_then_done_and_a_failed_poll_is_retryable(emulator: Emulator) -> None:
    emulator.script(VEO, VideoScript(polls=3, poll_faults=[Fault("status", status=503, times=1)]))

    async def body(p: FalProvider) -> tuple[ServerError, list[JobStatus]]:
        job = await p.submit(VideoRequest(VEO, "p"))
        with pytest.raises(ServerError) as caught:
            await p.poll(job)
        return caught.value, await until_final(p, job)

    fault, seen = run(emulator, body)
    assert fault.retryable and fault.status == 503 and fault.code == "runner_scheduling_failure"
    assert [(s.state, s.progress) for s in seen] == [
        ("queued", "queue position 2"),
        ("running", "Generating video: step 2 of 3"),
        ("running", "Generating video: step 3 of 3"),
        ("succeeded", None),
    ]
    polls = [r for r in emulator.requests if r.path.endswith("/status")]
    assert len(polls) == 5 and all(r.query == {"logs": "1"} for r in polls)


def test_completed_with_error_is_failed_without_fetching_the_result(emulator: Emulator) -> None:
    script = VideoScript(polls=1, outcome="failed")
    emulator.script(VEO, script)

    async def body(p: FalProvider) -> tuple[JobRef, list[JobStatus]]:
        job = await p.submit(VideoRequest(VEO, "p"))
        return job, await until_final(p, job)

    job, seen = run(emulator, body)
    last = seen[-1]
    assert last.state == "failed" and not last.clips
    assert isinstance(last.error, ServerError)
    assert last.error.message == script.error_message and last.error.code == "runner_server_error"
    assert not [r for r in emulator.requests if r.method == "GET" and r.path.endswith(job.job_id)]


def test_content_policy_refusal_of_the_result_is_filtered_with_the_reason(emulator: Emulator) -> None:
    script = VideoScript(polls=1, outcome="filtered")
    emulator.script(HAILUO, script)

    async def body(p: FalProvider) -> list[JobStatus]:
        return await until_final(p, await p.submit(VideoRequest(HAILUO, "p")))

    last = run(emulator, body)[-1]
    # The reason names the input fal's checker flagged (the detail item's loc).
    assert (last.state, last.reason, last.clips, last.error) == ("filtered", f"prompt: {script.reason}", (), None)
    [result] = [r for r in emulator.requests if r.method == "GET" and not r.path.endswith("/status")]
    assert result.status == 422


def test_cancel_puts_to_the_returned_url_and_the_job_ends_cancelled(emulator: Emulator) -> None:
    emulator.script(KLING, VideoScript(polls=5))

    async def body(p: FalProvider) -> tuple[JobRef, JobStatus]:
        job = await p.submit(VideoRequest(KLING, "p"))
        await p.poll(job)
        await p.cancel(job)
        status = await p.poll(job)
        await p.cancel(job)  # already over: fal says ALREADY_COMPLETED, which is no error
        return job, status

    job, status = run(emulator, body)
    assert status.state == "cancelled"
    cancel_path = f"/fal/fal-ai/kling-video/requests/{job.job_id}/cancel"
    assert [(r.path, r.status) for r in emulator.requests if r.method == "PUT"] == [(cancel_path, 202),
                                                                                   (cancel_path, 400)]


def test_a_job_without_stored_urls_is_found_by_the_owner_alias_rule(emulator: Emulator) -> None:
    assert queue_urls("https://queue.fal.run/", "fal-ai/veo3.1/image-to-video", "r1") == {
        "response_url": "https://queue.fal.run/fal-ai/veo3.1/requests/r1",
        "status_url": "https://queue.fal.run/fal-ai/veo3.1/requests/r1/status",
        "cancel_url": "https://queue.fal.run/fal-ai/veo3.1/requests/r1/cancel"}
    workflow = queue_urls("https://q", "workflows/me/flow/x", "r")
    assert workflow["status_url"] == "https://q/workflows/me/flow/requests/r/status"

    async def body(p: FalProvider) -> tuple[JobRef, JobStatus]:
        job = await p.submit(VideoRequest(KLING, "p"))
        return job, await p.poll(JobRef("fal", job.model, job.job_id))  # as an old sidecar holds it

    job, status = run(emulator, body)
    assert status.state == "running"
    assert emulator.requests[-1].path == f"/fal/fal-ai/kling-video/requests/{job.job_id}/status"


# ---- errors ---------------------------------------------------------------------------------------


def test_422_detail_names_the_field_and_nothing_is_queued(emulator: Emulator) -> None:
    i2v = "fal-ai/veo3.1/image-to-video"  # not in the table: only the prompt goes, and image_url is required

    async def body(p: FalProvider) -> BadRequestError:
        with pytest.raises(BadRequestError) as caught:
            await p.submit(VideoRequest(i2v, "p"))
        return caught.value

    err = run(emulator, body)
    assert err.status == 422 and err.code == "missing"
    assert err.message == "image_url: Field required"
    assert emulator.video_jobs(i2v) == 0


def test_bearer_is_rejected_and_a_bad_key_never_shows_in_errors(emulator: Emulator) -> None:
    raw = httpx.post(f"{emulator.url}/fal/{VEO}", json={"prompt": "p"}, headers={"Authorization": f"Bearer {KEY}"})
    assert raw.status_code == 401 and isinstance(raw.json()["detail"], str)
    emulator.expected_keys["fal"] = "another-id:another-secret"

    async def body(p: FalProvider) -> AuthError:
        with pytest.raises(AuthError) as caught:
            await p.submit(VideoRequest(VEO, "p"))
        return caught.value

    err = run(emulator, body)
    assert err.status == 401 and KEY not in str(err) and KEY not in repr(err.args)
    assert emulator.video_jobs(VEO) == 0


def test_an_error_that_echoes_the_key_is_scrubbed_and_typed(emulator: Emulator) -> None:
    emulator.script(VEO, VideoScript(submit_faults=[Fault("status", status=500, message=f"bad key {KEY}")]))

    async def body(p: FalProvider) -> ServerError:
        with pytest.raises(ServerError) as caught:
            await p.submit(VideoRequest(VEO, "p"))
        return caught.value

    err = run(emulator, body)
    assert KEY not in str(err) and "<redacted>" in err.message and err.code == "internal_error"


@pytest.mark.parametrize(("request_", "says"), [
    (VideoRequest(VEO, "p", seconds=5), "--seconds 5: fal:fal-ai/veo3.1 makes clips of 4, 6, 8 seconds"),
    (VideoRequest(KLING, "p", seconds=6), "makes clips of 5, 10 seconds"),
    (VideoRequest(VEO, "p", aspect="1:1"), "--aspect 1:1: fal:fal-ai/veo3.1 makes 16:9, 9:16 only"),
    (VideoRequest("fal-ai/veo3.1/fast", "p", resolution="4k"), "makes 720p, 1080p only"),
    (VideoRequest(VEO, "p", previous_job="op-1"), "--edit: fal:fal-ai/veo3.1 cannot revise an earlier job"),
    (VideoRequest("veo3.1", "p"), "not a fal endpoint id"),
    (VideoRequest(VEO, "p", image=Path("/nonexistent/first.png")), "is not a file"),
])
def test_check_request_refuses_values_a_model_cannot_take(request_: VideoRequest, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        FalProvider.check_request(request_)


def test_an_unknown_model_gets_the_prompt_only_and_a_note(emulator: Emulator) -> None:
    request = VideoRequest("someone/new-video-model", "p", seconds=5, aspect="16:9")
    [note] = FalProvider.check_request(request)
    assert note.startswith("--seconds, --aspect: fal:someone/new-video-model is not in fusion_magic's table")
    assert "only the prompt is sent" in note

    async def body(p: FalProvider) -> JobRef:
        return await p.submit(request)

    run(emulator, body)
    assert posted(emulator, "someone/new-video-model") == {"prompt": "p"}


def test_list_models_is_the_table(emulator: Emulator) -> None:
    async def body(p: FalProvider) -> list[str]:
        return await p.list_models()

    assert run(emulator, body) == list(MODELS) and {VEO, KLING, HAILUO} <= set(MODELS)
    assert not [r for r in emulator.requests if r.family == "fal"]  # fal has no listing endpoint to ask


# ---- result shapes the scripted emulator does not make: a queue of our own, at other URLs ---------


class _OddResults(Family):
    """Hands out queue URLs nothing like fal's paths (the client must use them verbatim) and answers the
    result with whatever ``answer`` holds."""

    name = "fal-odd-results-test"
    answer: tuple[int, object] = (200, {})

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/oddq/submit/{model:path}", self.submit, auth=False),
                Route("GET", "/oddq/s", self.status, auth=False),
                Route("GET", "/oddq/r", self.result, auth=False)]

    async def submit(self, req: Request) -> None:
        root = api_origin(req) + "/oddq"
        await req.json(200, {"request_id": "odd-1", "status_url": root + "/s", "response_url": root + "/r",
                             "cancel_url": root + "/c"})

    async def status(self, req: Request) -> None:
        await req.json(200, {"status": "COMPLETED", "logs": None})

    async def result(self, req: Request) -> None:
        status, body = self.answer
        await req.json(status, body, [("x-fal-error-type", "runner_server_error")] if status >= 500 else [])


@pytest.fixture
def odd() -> Iterator[_OddResults]:
    family = _OddResults()
    register(family)
    yield family
    unregister(family.name)


@pytest.mark.parametrize(("answer", "state"), [
    ((200, {"video": {"url": "http://cdn.test/x.mp4"}, "has_nsfw_concepts": [True]}), "filtered"),
    ((500, {"detail": "CUDA out of memory"}), "failed"),
    ((200, {"images": []}), "failed"),
])
def test_result_shapes(emulator: Emulator, odd: _OddResults, answer: tuple[int, object], state: str) -> None:
    odd.answer = answer

    async def body(p: FalProvider) -> JobStatus:
        job = await p.submit(VideoRequest(VEO, "p"))
        return await p.poll(job)

    status = run(emulator, body, endpoint=Endpoint("fal", emulator.url + "/oddq/submit", api_key=KEY))
    assert status.state == state
    if answer[0] == 500:
        assert isinstance(status.error, ServerError)
        assert (status.error.message, status.error.code) == ("CUDA out of memory", "runner_server_error")
    assert [r.path for r in emulator.requests] == [f"/oddq/submit/{VEO}", "/oddq/s", "/oddq/r"]
