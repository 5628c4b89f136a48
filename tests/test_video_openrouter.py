"""OpenRouter's Video Generation API over a real socket: the client (providers/video/openrouter_video.py) against
the emulator (testing/families/openrouter_video.py), alone and through ``%%video`` / ``fusion_magic.video``.

Jobs advance per poll, so the provider tests poll in a loop without sleeping; the magic tests poll every 10 ms.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import av
import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.api import plan_video
from fusion_magic.core.errors import (
    AuthError,
    BadRequestError,
    CallCancelled,
    ConfigError,
    PaymentError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from fusion_magic.core.pricing import price_for
from fusion_magic.core.state import State
from fusion_magic.providers.base import Endpoint
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.providers.video.base import JobRef, JobStatus, VideoRequest
from fusion_magic.providers.video.openrouter_video import MODELS, OpenRouterVideoProvider
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.testing.families.openrouter_video import cost_of, expire
from fusion_magic.testing.media import png_bytes
from fusion_magic.testing.script import Fault
from fusion_magic.videos.estimate import VideoEstimate
from fusion_magic.videos.options import VideoOptions

T = TypeVar("T")
KEY = Emulator.test_keys()["OPENROUTER_API_KEY"]
VEO = "google/veo-3.1"
LITE = "google/veo-3.1-lite"
API = "/openrouter/api/v1"
JOB_ID = re.compile(r"^gen-vid-\d{10}-[A-Za-z0-9]{20}$")
SIGNED = "/openrouter/signed/"


def run(emu: Emulator, body: Callable[[OpenRouterVideoProvider], Awaitable[T]], *, key: str = KEY) -> T:
    """Run ``body`` with a provider pointed at the emulator, on a fresh loop and client."""
    async def main() -> T:
        async with httpx.AsyncClient() as client:
            return await body(OpenRouterVideoProvider(Endpoint("openrouter", emu.url + API, api_key=key), client))
    return asyncio.run(main())


async def until_final(provider: OpenRouterVideoProvider, job: JobRef, limit: int = 20) -> list[JobStatus]:
    seen: list[JobStatus] = []
    for _ in range(limit):
        seen.append(await provider.poll(job))
        if seen[-1].final:
            return seen
    raise AssertionError(f"job never finished: {seen}")


def submits(emu: Emulator) -> list[Any]:
    """The bodies of every ``POST /videos`` the emulator received (each accepted one is a paid job)."""
    return [r.body for r in emu.requests if r.method == "POST" and r.path == f"{API}/videos"]


def frame(tmp_path: Path, name: str, colour: tuple[int, int, int] = (40, 70, 220)) -> Path:
    path = tmp_path / name
    path.write_bytes(png_bytes(colour=colour))
    return path


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def playable(path: Path) -> bool:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)) > 0


def written_text(root: Path) -> str:
    """Every file under ``root`` (clips, sidecars, the run log and its WAL), as text: what was written down."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in sorted(root.rglob("*")) if p.is_file())


# ---- the provider against the emulator --------------------------------------------------------------


def test_a_job_end_to_end_with_the_key_only_on_the_api_host(emulator_env: Emulator, tmp_path: Path) -> None:
    emu = emulator_env
    emu.expected_keys["openrouter_video"] = KEY  # only this exact Bearer key is accepted
    emu.script(VEO, VideoScript(polls=2))  # the content proxy answers with a redirect to the signed copy
    dest = tmp_path / "fox.mp4"

    async def body(p: OpenRouterVideoProvider) -> tuple[JobRef, list[JobStatus], int]:
        job = await p.submit(VideoRequest(VEO, "a fox in snow", seconds=8, aspect="16:9"))
        seen = await until_final(p, job)
        return job, seen, await p.download(seen[-1].clips[0], dest)

    async def from_env(p: OpenRouterVideoProvider) -> tuple[JobRef, list[JobStatus], int]:
        # The endpoint the registry resolves (OPENROUTER_BASE_URL, OPENROUTER_API_KEY, the attribution header).
        async with httpx.AsyncClient() as client:
            return await body(OpenRouterVideoProvider(resolve_endpoint(BUILTIN["openrouter"]), client))

    job, seen, written = run(emu, from_env)

    assert (job.protocol, job.model, job.urls) == ("openrouter_video", VEO, {}) and JOB_ID.match(job.job_id)
    assert KEY not in job.to_json()
    assert [(s.state, s.progress) for s in seen] == [("queued", "pending"), ("running", "in_progress"),
                                                      ("succeeded", None)]
    [clip] = seen[-1].clips
    assert clip.uri == f"{emu.url}{API}/videos/{job.job_id}/content?index=0"
    assert (clip.needs_key, clip.keep_uri) == (True, True)
    [sent] = submits(emu)
    assert sent == {"model": VEO, "prompt": "a fox in snow", "duration": 8, "aspect_ratio": "16:9"}
    assert seen[-1].usage is not None and seen[-1].usage.cost_usd == cost_of(VEO, sent) == 3.2
    api = [r for r in emu.requests if r.path.startswith(API)]
    assert [(r.method, r.path.removeprefix(API), r.status) for r in api] == [
        ("POST", "/videos", 202), *[("GET", f"/videos/{job.job_id}", 200)] * 3,
        ("GET", f"/videos/{job.job_id}/content", 302)]
    assert all(r.headers["authorization"] == "<redacted>" for r in api)
    assert all(r.headers["x-openrouter-title"] == "fusion_magic" for r in api)
    [signed] = [r for r in emu.requests if r.path.startswith(SIGNED)]
    assert signed.status == 200 and "authorization" not in signed.headers
    assert signed.headers["host"] != api[0].headers["host"]  # another origin: the redirect went keyless
    assert written == dest.stat().st_size > 0 and playable(dest)


def test_a_proxy_that_streams_and_a_job_with_signed_urls_only(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(VEO, VideoScript(polls=0, delivery="uri"))  # the proxy serves the bytes itself
    emulator.script(LITE, VideoScript(polls=0, delivery="inline"))  # no unsigned_urls: the signed copy only

    async def body(p: OpenRouterVideoProvider) -> list[JobStatus]:
        out = []
        for model in (VEO, LITE):
            status = (await until_final(p, await p.submit(VideoRequest(model, "p"))))[-1]
            await p.download(status.clips[0], tmp_path / f"{model.replace('/', '-')}.mp4")
            out.append(status)
        return out

    proxied, signed = run(emulator, body)
    assert proxied.clips[0].needs_key and proxied.clips[0].keep_uri
    assert signed.clips[0].uri is not None and SIGNED in signed.clips[0].uri and "signature=" in signed.clips[0].uri
    assert (signed.clips[0].needs_key, signed.clips[0].keep_uri) == (False, False)
    downloads = [r for r in emulator.requests if r.path.endswith("/content") or r.path.startswith(SIGNED)]
    assert [(r.path.startswith(SIGNED), r.status, "authorization" in r.headers) for r in downloads] == [
        (False, 200, True), (True, 200, False)]
    assert playable(tmp_path / "google-veo-3.1.mp4") and playable(tmp_path / "google-veo-3.1-lite.mp4")


def test_frames_references_and_the_previous_job_go_on_the_wire(emulator: Emulator, tmp_path: Path) -> None:
    first, last = frame(tmp_path, "first.png"), frame(tmp_path, "last.png", (220, 40, 40))
    refs = (frame(tmp_path, "style.png", (40, 180, 60)), frame(tmp_path, "subject.png", (230, 200, 30)))
    emulator.script(VEO, VideoScript(polls=0))

    async def body(p: OpenRouterVideoProvider) -> tuple[JobRef, JobRef]:
        earlier = await p.submit(VideoRequest(VEO, "a fox"))
        await until_final(p, earlier)
        later = await p.submit(VideoRequest(VEO, "the fox again", seconds=8, aspect="9:16", resolution="4k",
                                            image=first, last_frame=last, references=refs,
                                            previous_job=earlier.job_id))
        return earlier, later

    earlier, later = run(emulator, body)
    assert submits(emulator)[1] == {
        "model": VEO, "prompt": "the fox again", "duration": 8, "resolution": "4K", "aspect_ratio": "9:16",
        "frame_images": [
            {"type": "image_url", "image_url": {"url": data_url(first)}, "frame_type": "first_frame"},
            {"type": "image_url", "image_url": {"url": data_url(last)}, "frame_type": "last_frame"}],
        "input_references": [{"type": "image_url", "image_url": {"url": data_url(r)}} for r in refs],
        "previous_job_id": earlier.job_id,
    }
    assert emulator.video_jobs(VEO) == 2 and JOB_ID.match(later.job_id)


def test_failed_filtered_cancelled_and_expired_jobs_are_final_in_openrouters_words(emulator: Emulator) -> None:
    failed = VideoScript(polls=0, outcome="failed", error_message="Upstream provider error: quota exhausted")
    filtered = VideoScript(polls=0, outcome="filtered", reason="The prompt was flagged by the provider's filter.")
    slow = VideoScript(polls=5)
    done = VideoScript(polls=0)

    async def body(p: OpenRouterVideoProvider) -> list[JobStatus]:
        out = []
        for model, script in (("a/failed", failed), ("a/filtered", filtered)):
            emulator.script(model, script)
            out.append((await until_final(p, await p.submit(VideoRequest(model, "p"))))[-1])
        emulator.script("a/slow", slow)
        job = await p.submit(VideoRequest("a/slow", "p"))
        emulated = emulator.video.job(job.job_id)
        assert emulated is not None
        emulated.cancelled = True
        out.append(await p.poll(job))
        emulator.script("a/done", done)
        job = await p.submit(VideoRequest("a/done", "p"))
        await until_final(p, job)
        expire(emulator.video, job.job_id)
        out.append(await p.poll(job))
        return out

    bad, flagged, cancelled, expired = run(emulator, body)
    assert (bad.state, bad.clips) == ("failed", ()) and bad.error is not None
    assert (bad.error.message, bad.error.code) == (failed.error_message, "failed")
    assert flagged.state == "failed" and flagged.error is not None and flagged.error.message == filtered.reason
    assert cancelled.state == "cancelled" and isinstance(cancelled.error, CallCancelled)
    assert expired.state == "failed" and expired.error is not None and expired.error.code == "expired"
    assert expired.error.message == "The generated video has expired and is no longer available."


def test_the_raw_wire_202_relative_polling_url_and_the_content_proxys_statuses(emulator: Emulator) -> None:
    emulator.script(VEO, VideoScript(polls=1))
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emulator.url) as http:
        submitted = http.post(f"{API}/videos", json={"model": VEO, "prompt": "p", "duration": 4}, headers=auth)
        assert submitted.status_code == 202
        job = submitted.json()
        assert JOB_ID.match(job["id"]) and job["status"] == "pending"
        assert job["polling_url"] == f"/api/v1/videos/{job['id']}"  # relative, as the docs show it
        content = f"{API}/videos/{job['id']}/content"
        assert http.get(content, params={"index": 0}).json() == {
            "error": {"code": 401, "message": "No auth credentials found"}}
        assert http.get(content, params={"index": 0}, headers=auth).status_code == 409
        assert http.get(f"{API}/videos/{job['id']}", headers=auth).json()["status"] == "in_progress"
        completed = http.get(f"{API}/videos/{job['id']}", headers=auth).json()
        assert completed["status"] == "completed" and completed["usage"] == {"cost": 1.6, "is_byok": False}
        assert completed["unsigned_urls"] == [f"{emulator.url}{content}?index=0"]
        [signed] = completed["urls"]
        assert isinstance(completed["expires_at"], int) and f"expires={completed['expires_at']}" in signed
        hop = http.get(content, params={"index": 0}, headers=auth)
        assert hop.status_code == 302 and hop.headers["location"] == signed
        assert http.get(signed, headers=auth).status_code == 400  # the signed host refuses a key
        assert http.get(signed).status_code == 200
        assert http.get(signed.replace("signature=", "signature=0")).status_code == 403
        expire(emulator.video, job["id"])
        assert http.get(f"{API}/videos/{job['id']}", headers=auth).json()["status"] == "expired"
        assert http.get(content, params={"index": 0}, headers=auth).status_code == 410
        models = http.get(f"{API}/videos/models").json()["data"]  # listed without a key
        assert [m["id"] for m in models] == [VEO, LITE]
        assert models[0]["pricing_skus"]["per-video-second"] == "0.40"


def test_errors_come_back_typed_from_openrouters_envelope(emulator: Emulator) -> None:
    emulator.script(VEO, VideoScript(submit_faults=[
        Fault("status", status=402, message="Insufficient credits", limit_source="openrouter_credits", times=1),
        Fault("status", status=429, retry_after=7, skip=1, times=1)]))
    emulator.script("someone/video-model", VideoScript())

    async def body(p: OpenRouterVideoProvider) -> list[ProviderError]:
        caught = []
        for request in (VideoRequest(VEO, "p"), VideoRequest(VEO, "p"),
                        VideoRequest("someone/video-model", "p", seconds=7)):
            with pytest.raises(ProviderError) as err:
                await p.submit(request)
            caught.append(err.value)
        return caught

    payment, limited, refused = run(emulator, body)
    assert isinstance(payment, PaymentError) and payment.message == "Insufficient credits"
    assert isinstance(limited, RateLimitError) and limited.retry_after == 7
    assert isinstance(refused, BadRequestError) and refused.status == 400
    assert refused.message == "someone/video-model does not support duration 7; supported: 5, 10"
    emulator.expected_keys["openrouter_video"] = "sk-or-another-key"

    async def wrong_key(p: OpenRouterVideoProvider) -> AuthError:
        with pytest.raises(AuthError) as err:
            await p.submit(VideoRequest(VEO, "p"))
        return err.value

    denied = run(emulator, wrong_key)
    assert denied.status == 401 and denied.message == "User not found." and KEY not in str(denied)
    assert emulator.video_jobs(VEO) == emulator.video_jobs("someone/video-model") == 0


def test_a_submit_is_sent_once_even_when_its_answer_is_lost(emulator: Emulator) -> None:
    emulator.script(VEO, VideoScript(submit_faults=[Fault("status", status=503, times=1)]))
    emulator.script(LITE, VideoScript(submit_faults=[Fault("cut", times=1)]))

    async def body(p: OpenRouterVideoProvider) -> tuple[ProviderError, ProviderError]:
        with pytest.raises(ServerError) as refused:
            await p.submit(VideoRequest(VEO, "p"))
        with pytest.raises(ProviderError) as lost:
            await p.submit(VideoRequest(LITE, "p"))
        return refused.value, lost.value

    refused, lost = run(emulator, body)
    assert refused.status == 503 and emulator.video_jobs(VEO) == 0
    # The cut came after OpenRouter accepted (and would bill) the job: it is not sent again, and the line says so.
    assert emulator.video_jobs(LITE) == 1 and not lost.retryable
    assert "OpenRouter may have started the job" in lost.message and "not sent again" in lost.message
    assert [b["model"] for b in submits(emulator)] == [VEO, LITE]


@pytest.mark.parametrize(("request_", "says"), [
    (VideoRequest(VEO, "p", seconds=5), "--seconds 5: openrouter:google/veo-3.1 makes clips of 4, 6 or 8 seconds"),
    (VideoRequest(LITE, "p", resolution="4k"), "--resolution 4k: openrouter:google/veo-3.1-lite makes 720p or 1080p"),
    (VideoRequest(VEO, "p", aspect="1:1"), "--aspect 1:1: openrouter:google/veo-3.1 makes 16:9 or 9:16 only"),
    (VideoRequest("someone/model", "p", resolution="540p"), "--resolution 540p: OpenRouter takes 360p, 480p"),
    (VideoRequest("veo-3.1", "p"), "not an OpenRouter model id"),
    (VideoRequest(VEO, "p", image=Path("/nonexistent/first.png")), "--image: /nonexistent/first.png is not a file"),
    (VideoRequest(VEO, "p", extend_uri="https://x/y"), "--extend: openrouter:google/veo-3.1 continues a clip"),
])
def test_check_request_refuses_what_a_model_cannot_take(request_: VideoRequest, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        OpenRouterVideoProvider.check_request(request_)


def test_what_the_table_does_not_know_goes_through_and_a_negative_prompt_is_a_note() -> None:
    assert OpenRouterVideoProvider.check_request(VideoRequest("someone/model", "p", seconds=7, aspect="9:16")) == []
    assert OpenRouterVideoProvider.check_request(VideoRequest(VEO, "p", seconds=6, resolution="1080p")) == []
    assert OpenRouterVideoProvider.check_request(VideoRequest(VEO, "p", negative="blur")) == [
        "--negative: openrouter:google/veo-3.1: OpenRouter's video API has no negative prompt; not sent"]


def test_models_and_their_capabilities_come_from_the_list(emulator: Emulator) -> None:
    emulator.script("someone/video-model", VideoScript())

    async def body(p: OpenRouterVideoProvider) -> tuple[list[str], Any, Any]:
        listed = {caps.model: caps for caps in await p.list_capabilities()}
        return await p.list_models(), listed[VEO], listed["someone/video-model"]

    names, veo, scripted = run(emulator, body, key="")
    assert OpenRouterVideoProvider.capabilities(VEO) == MODELS[VEO]  # what is known without asking
    assert names == [VEO, LITE, "someone/video-model"]
    assert (veo.seconds, veo.resolutions, veo.aspects) == ((4, 6, 8), ("720p", "1080p", "4K"), ("16:9", "9:16"))
    assert (veo.first_frame, veo.last_frame, veo.references, veo.price_per_second) == (True, True, 3, 0.40)
    assert veo.source == "openrouter /videos/models"
    assert (scripted.seconds, scripted.first_frame, scripted.last_frame, scripted.price_per_second) == (
        (5, 10), True, False, 0.10)
    listed = [r for r in emulator.requests if r.path == f"{API}/videos/models"]
    assert [(r.status, "authorization" in r.headers) for r in listed] == [(200, False)] * 2  # no key: none sent


def test_unit_prices_price_the_table_per_second() -> None:
    prices = OpenRouterVideoProvider.unit_prices()
    assert all(price_for(f"openrouter:{model}", prices) is not None for model in MODELS)
    assert price_for(f"openrouter:{VEO}", prices).per_second == 0.40  # type: ignore[union-attr]
    assert price_for(f"openrouter:{VEO}", prices, resolution="4k").per_second == 0.60  # type: ignore[union-attr]
    assert price_for(f"openrouter:{LITE}", prices, resolution="1080p").per_second == 0.08  # type: ignore[union-attr]
    assert OpenRouterVideoProvider.default_seconds(VEO) == 8 and OpenRouterVideoProvider.default_seconds("a/b") is None


def test_the_estimate_prices_an_openrouter_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    plan = plan_video("a fox", options=VideoOptions(models=(f"openrouter:{VEO}",), seconds=6, estimate=True))
    assert plan.estimate_usd == pytest.approx(2.40)
    assert "6 s x $0.40/s" in str(VideoEstimate.of(plan))
    fourk = plan_video("a fox", options=VideoOptions(models=(f"openrouter:{VEO}",), seconds=8, resolution="4k"))
    assert fourk.estimate_usd == pytest.approx(4.80)


# ---- through %%video --------------------------------------------------------------------------------


def test_a_clip_is_saved_with_its_receipt_and_openrouters_own_cost(vshell: InteractiveShell, emulator_env: Emulator,
                                                                    tmp_path: Path) -> None:
    emulator_env.script(VEO, VideoScript(polls=1))
    result = fusion_magic.video("A fox in snow", models=[f"openrouter:{VEO}"], seconds=6, resolution="1080p",
                                poll_s=0.01)
    (clip,) = result.videos
    assert clip.ok and clip.path is not None and clip.path.suffix == ".mp4" and playable(clip.path)
    [sent] = submits(emulator_env)
    reported = cost_of(VEO, sent)
    assert reported == 2.4 and clip.record.cost_usd == reported and clip.record.cost_source == "provider"
    row = result.ledger.iloc[0]
    assert row["cost_usd"] == reported and row["cost_source"] == "provider"
    assert clip.sidecar is not None
    side = json.loads(clip.sidecar.read_text())
    assert side["status"] == "ok" and side["cost_usd"] == reported and side["cost_source"] == "provider"
    assert side["job"] == {"protocol": "openrouter_video", "model": VEO, "job_id": clip.job_id, "urls": {}}
    # The content proxy's URL names the job, carries no signature and no key: it is kept.
    assert side["clip_uri"] == f"{emulator_env.url}{API}/videos/{clip.job_id}/content?index=0"
    # The signed URL the proxy redirected to was followed without the key, and is written nowhere.
    [signed] = [r for r in emulator_env.requests if r.path.startswith(SIGNED)]
    assert "authorization" not in signed.headers
    written = written_text(tmp_path)
    assert "api_runs.sqlite" in {p.name for p in tmp_path.iterdir()}
    assert clip.job_id in written  # the run log and the receipt were read
    assert SIGNED not in written and "signature=" not in written and KEY not in written


def test_a_clip_from_a_signed_url_never_writes_the_url_down(vshell: InteractiveShell, emulator_env: Emulator,
                                                             tmp_path: Path) -> None:
    emulator_env.script(LITE, VideoScript(polls=0, delivery="inline"))  # signed urls only
    result = fusion_magic.video("A fox in snow", models=[f"openrouter:{LITE}"], poll_s=0.01)
    (clip,) = result.videos
    assert clip.ok and clip.path is not None and playable(clip.path) and clip.sidecar is not None
    assert json.loads(clip.sidecar.read_text())["clip_uri"] is None
    [signed] = [r for r in emulator_env.requests if r.path.startswith(SIGNED)]
    assert signed.status == 200 and "authorization" not in signed.headers
    written = written_text(tmp_path)
    assert SIGNED not in written and "signature=" not in written and KEY not in written


def test_a_job_that_outlasts_the_wait_is_pending_and_resume_fetches_it_unpaid(vshell: InteractiveShell,
                                                                             emulator_env: Emulator) -> None:
    emulator_env.script(VEO, VideoScript(polls=10_000))
    first = fusion_magic.video("A slow fox", models=[f"openrouter:{VEO}"], timeout=0.2, poll_s=0.01)
    (clip,) = first.videos
    assert clip.state is State.PENDING and clip.error is None and clip.job_id is not None
    assert clip.note == "not finished after 0.2 s"
    assert len(submits(emulator_env)) == 1

    again = vshell.run_line_magic("video", "resume -t 0.2 -o w")
    assert [v.status for v in again.videos] == ["pending"] and again.videos[0].job_id == clip.job_id
    job = emulator_env.video.job(clip.job_id)
    assert job is not None
    job.script = VideoScript(polls=0)  # it finishes at OpenRouter while nobody waits
    fetched = vshell.run_line_magic("video", "resume -o w")
    (saved,) = fetched.videos
    assert saved.state is State.DONE and saved.path is not None and playable(saved.path)
    assert saved.record.cost_source == "provider" and saved.record.cost_usd == cost_of(VEO, submits(emulator_env)[0])
    assert len(submits(emulator_env)) == 1 and emulator_env.video_jobs(VEO) == 1
    assert vshell.run_line_magic("video", "resume") is None  # nothing left open


def test_the_same_cell_re_attaches_to_its_pending_job(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script(LITE, VideoScript(polls=10_000))
    out = vshell.run_cell_magic("video", f"-p openrouter:{LITE} -t 0.2", "A slow fox")
    (clip,) = out.videos
    assert clip.status == "pending" and len(submits(emulator_env)) == 1
    job = emulator_env.video.job(clip.job_id or "")
    assert job is not None
    job.script = VideoScript(polls=0)
    again = vshell.run_cell_magic("video", f"-p openrouter:{LITE} -t 5", "A slow fox")
    assert again.videos[0].ok and again.videos[0].reattached and len(submits(emulator_env)) == 1


def test_failed_and_expired_jobs_are_failed_clips_in_openrouters_words(vshell: InteractiveShell,
                                                                      emulator_env: Emulator) -> None:
    words = "Upstream provider error: the model could not render this prompt."
    emulator_env.script(VEO, VideoScript(polls=0, outcome="failed", error_message=words))
    failed = fusion_magic.video("A fox", models=[f"openrouter:{VEO}"], poll_s=0.01).videos[0]
    assert failed.state is State.FAILED and failed.error is not None and words in failed.error

    emulator_env.script(LITE, VideoScript(polls=10_000))
    pending = fusion_magic.video("A fox", models=[f"openrouter:{LITE}"], timeout=0.2, poll_s=0.01).videos[0]
    assert pending.state is State.PENDING and pending.job_id is not None
    expire(emulator_env.video, pending.job_id)
    gone = vshell.run_line_magic("video", "resume").videos[0]
    assert gone.state is State.FAILED and gone.error is not None
    assert "The generated video has expired and is no longer available." in gone.error
    assert len(submits(emulator_env)) == 2


def test_a_lost_submit_is_one_failed_clip_and_is_not_sent_again(vshell: InteractiveShell,
                                                                emulator_env: Emulator) -> None:
    emulator_env.script(VEO, VideoScript(submit_faults=[Fault("cut")]))
    (clip,) = fusion_magic.video("A fox", models=[f"openrouter:{VEO}"], poll_s=0.01).videos
    assert clip.state is State.FAILED and clip.error is not None and "\n" not in clip.error
    assert "OpenRouter may have started the job" in clip.error and "https://openrouter.ai/activity" in clip.error
    assert len(submits(emulator_env)) == 1 and emulator_env.video_jobs(VEO) == 1


def test_a_value_the_model_does_not_take_is_one_line_and_nothing_is_sent(vshell: InteractiveShell,
                                                                          emulator_env: Emulator) -> None:
    with pytest.raises(ConfigError) as caught:
        fusion_magic.video("A fox", models=[f"openrouter:{VEO}"], seconds=5)
    assert str(caught.value) == "--seconds 5: openrouter:google/veo-3.1 makes clips of 4, 6 or 8 seconds"
    assert not [r for r in emulator_env.requests if r.path.startswith(API)]


def test_a_model_outside_the_table_goes_through_and_openrouters_400_is_a_failed_clip(
        vshell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script("someone/video-model", VideoScript(polls=0))
    (clip,) = fusion_magic.video("A fox", models=["openrouter:someone/video-model"], seconds=7, poll_s=0.01).videos
    assert clip.state is State.FAILED and clip.error is not None
    assert "someone/video-model does not support duration 7; supported: 5, 10" in clip.error
    assert emulator_env.video_jobs("someone/video-model") == 0 and len(submits(emulator_env)) == 1


def test_video_list_shows_openrouters_models(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    listing = vshell.run_line_magic("video", "list")
    models = list(listing.models["model"])
    assert f"openrouter:{VEO}" in models and f"openrouter:{LITE}" in models
    rows = listing.models.set_index("model")
    assert rows.loc[f"openrouter:{VEO}", "does"] == "generate"
    assert [r.status for r in emulator_env.requests if r.path == f"{API}/videos/models"] == [200]
