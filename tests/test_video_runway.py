"""Runway's developer API over a real socket: the client (providers/video/runway.py) against the emulator
(testing/families/runway.py), alone and through ``%%video`` (plan, job loop, sidecar, ledger, resume). Jobs
advance per poll, so nothing sleeps."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import av
import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.core.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    PaymentError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from fusion_magic.core.events import EngineEvent
from fusion_magic.core.pricing import price_for
from fusion_magic.core.state import State
from fusion_magic.providers._http import WireContext, response_error
from fusion_magic.providers.base import Endpoint
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.providers.video.base import JobRef, JobStatus, VideoRequest
from fusion_magic.providers.video.runway import (
    EXPIRED,
    MODELS,
    THROTTLED,
    VERSION,
    RunwayProvider,
    classifier,
)
from fusion_magic.testing.emulator import Emulator
from fusion_magic.testing.families.runway import Runway
from fusion_magic.testing.media import png_bytes
from fusion_magic.testing.script import Fault
from fusion_magic.testing.video_script import VideoScript
from fusion_magic.videos.events import VideoUpdated
from fusion_magic.videos.result import VideoResult

T = TypeVar("T")
KEY = Emulator.test_keys()["RUNWAYML_API_SECRET"]
GEN, VEO, TURBO = "gen4.5", "veo3.1", "gen4_turbo"
TASKS = "/runway/v1/tasks/"


@pytest.fixture(autouse=True)
def fresh_links(emulator: Emulator) -> Iterator[None]:
    """Whatever a test did to the emulator's links, later ones get links that work."""
    yield
    Runway.expire(emulator.video, also_new=False)


def run(emu: Emulator, body: Callable[[RunwayProvider], Awaitable[T]], *, key: str = KEY) -> T:
    """Run ``body`` with a provider pointed at the emulator, on a fresh loop and client."""
    async def main() -> T:
        async with httpx.AsyncClient() as client:
            return await body(RunwayProvider(Endpoint("runway", emu.url + "/runway", api_key=key), client))
    return asyncio.run(main())


async def until_final(provider: RunwayProvider, job: JobRef, limit: int = 20) -> list[JobStatus]:
    seen: list[JobStatus] = []
    for _ in range(limit):
        seen.append(await provider.poll(job))
        if seen[-1].final:
            return seen
    raise AssertionError(f"job never finished: {seen}")


def api(emu: Emulator) -> list[Any]:
    """The requests to Runway's API (not its CDN)."""
    return [r for r in emu.requests if r.path.startswith("/runway/")]


def cdn(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.path.startswith("/runway-cdn/")]


def posted(emu: Emulator, endpoint: str) -> dict[str, Any]:
    """The body of the one submit to ``/v1/{endpoint}``."""
    [body] = [r.body for r in emu.requests if r.method == "POST" and r.path == f"/runway/v1/{endpoint}"]
    assert isinstance(body, dict)
    return body


def decoded(uri: str) -> tuple[str, bytes]:
    head, _, data = uri.partition(",")
    return head, base64.b64decode(data)


def frames(folder: Path) -> tuple[Path, Path]:
    first, last = folder / "first.png", folder / "last.png"
    first.write_bytes(png_bytes(colour=(200, 30, 30)))
    last.write_bytes(png_bytes(colour=(30, 30, 200)))
    return first, last


# ---- the whole job, provider alone ----------------------------------------------------------------


def test_text_to_video_end_to_end_version_header_everywhere_no_key_on_the_cdn(emulator_env: Emulator,
                                                                              tmp_path: Path) -> None:
    emu = emulator_env
    emu.expected_keys["runway"] = KEY  # only this exact key, as "Bearer ...", is accepted
    emu.script(GEN, VideoScript(polls=3))
    dest = tmp_path / "lighthouse.mp4"

    async def body(p: RunwayProvider) -> tuple[JobRef, list[JobStatus], int]:
        job = await p.submit(VideoRequest(GEN, "a lighthouse in a storm", seconds=5, aspect="9:16"))
        seen = await until_final(p, job)
        return job, seen, await p.download(seen[-1].clips[0], dest)

    async def main() -> tuple[JobRef, list[JobStatus], int]:
        async with httpx.AsyncClient() as client:
            return await body(RunwayProvider(resolve_endpoint(BUILTIN["runway"]), client))

    job, seen, written = asyncio.run(main())

    assert (job.protocol, job.model, job.urls) == ("runway", GEN, {}) and KEY not in job.to_json()
    assert posted(emu, "text_to_video") == {"model": GEN, "promptText": "a lighthouse in a storm",
                                            "ratio": "720:1280", "duration": 5}
    # PENDING, RUNNING twice, SUCCEEDED; the estimate (12 credits/s x 5 s) shown while it waits.
    assert [(s.state, s.progress) for s in seen] == [
        ("queued", "up to 60 credits ($0.60)"), ("running", "50 %; up to 60 credits ($0.60)"),
        ("running", "75 %; up to 60 credits ($0.60)"), ("succeeded", None)]
    clip = seen[-1].clips[0]
    assert clip.needs_key is False and clip.keep_uri is False and "_jwt=" in (clip.uri or "")
    assert seen[-1].usage is not None and seen[-1].usage.cost_usd == 60 / 100
    calls = api(emu)
    assert [(r.method, r.path.rsplit("/", 1)[-1] if r.method == "GET" else r.path, r.status) for r in calls] == [
        ("POST", "/runway/v1/text_to_video", 200), *[("GET", job.job_id, 200)] * 4]
    assert all(r.headers["x-runway-version"] == VERSION and r.headers["authorization"] == "<redacted>"
               for r in calls)
    [got] = cdn(emu)
    assert got.status == 200 and "authorization" not in got.headers and "x-runway-version" not in got.headers
    assert written == dest.stat().st_size > 0
    with av.open(str(dest)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0


def test_image_to_video_sends_the_first_frame_and_veo_the_last_too(emulator: Emulator, tmp_path: Path) -> None:
    first, last = frames(tmp_path)
    gen = VideoRequest(GEN, "p", seconds=4, aspect="16:9", image=first)
    veo = VideoRequest(VEO, "p", seconds=8, aspect="9:16", resolution="1080p", negative="blur", image=first,
                       last_frame=last)

    async def body(p: RunwayProvider) -> list[JobRef]:
        return [await p.submit(gen), await p.submit(veo)]

    run(emulator, body)
    gen_body, veo_body = [r.body for r in emulator.requests if r.path == "/runway/v1/image_to_video"]
    head, data = decoded(gen_body.pop("promptImage"))
    assert head == "data:image/png;base64" and data == first.read_bytes()
    assert gen_body == {"model": GEN, "promptText": "p", "ratio": "1280:720", "duration": 4}
    positions = veo_body.pop("promptImage")
    assert [p["position"] for p in positions] == ["first", "last"]
    assert [decoded(p["uri"])[1] for p in positions] == [first.read_bytes(), last.read_bytes()]
    assert veo_body == {"model": VEO, "promptText": "p", "ratio": "1080:1920", "duration": 8, "audio": True,
                        "negativePrompt": "blur"}
    assert emulator.video_jobs(GEN) == emulator.video_jobs(VEO) == 1


# ---- task states ----------------------------------------------------------------------------------


def test_throttled_is_queued_with_its_phrase_then_runs(emulator: Emulator) -> None:
    emulator.script(VEO, VideoScript(polls=3, throttled=2))

    async def body(p: RunwayProvider) -> list[JobStatus]:
        return await until_final(p, await p.submit(VideoRequest(VEO, "p", seconds=4)))

    seen = run(emulator, body)
    estimate = "up to 160 credits ($1.60)"  # 40 credits/s with audio, 4 s
    assert [(s.state, s.progress) for s in seen] == [
        ("queued", f"{THROTTLED}; {estimate}"), ("queued", f"{THROTTLED}; {estimate}"),
        ("running", f"75 %; {estimate}"), ("succeeded", None)]
    assert seen[-1].usage is not None and seen[-1].usage.cost_usd == 160 / 100


@pytest.mark.parametrize(("outcome", "state"), [("filtered", "filtered"), ("failed", "failed")])
def test_failures_safety_is_filtered_with_the_words_others_failed_with_the_code(emulator: Emulator, outcome: str,
                                                                              state: str) -> None:
    script = VideoScript(polls=1, outcome=outcome)  # type: ignore[arg-type]
    emulator.script(GEN, script)

    async def body(p: RunwayProvider) -> JobStatus:
        return (await until_final(p, await p.submit(VideoRequest(GEN, "p"))))[-1]

    last = run(emulator, body)
    assert last.state == state and not last.clips
    if state == "filtered":
        assert last.reason == f"{script.reason} (SAFETY.OUTPUT.VIDEO)" and last.error is None
    else:
        assert isinstance(last.error, ServerError) and last.error.code == "INTERNAL.BAD_OUTPUT.CODE01"
        assert last.error.message == f"{script.error_message} (failureCode INTERNAL.BAD_OUTPUT.CODE01)"


def test_cancel_deletes_the_task_and_a_finished_one_is_gone(emulator: Emulator) -> None:
    emulator.script(GEN, VideoScript(polls=5))

    async def body(p: RunwayProvider) -> tuple[JobRef, JobStatus, ProviderError]:
        job = await p.submit(VideoRequest(GEN, "p"))
        await p.poll(job)
        await p.cancel(job)
        status = await p.poll(job)
        await p.cancel(job)  # a finished task is deleted
        with pytest.raises(ProviderError) as caught:
            await p.poll(job)
        await p.cancel(job)  # gone: nothing to stop, no error
        return job, status, caught.value

    job, status, gone = run(emulator, body)
    assert status.state == "cancelled" and gone.status == 404
    deletes = [(r.path, r.status) for r in emulator.requests if r.method == "DELETE"]
    assert deletes == [(TASKS + job.job_id, 204)] * 2 + [(TASKS + job.job_id, 404)]


# ---- expired links --------------------------------------------------------------------------------


def test_an_expired_link_is_replaced_by_a_fresh_poll(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(GEN, VideoScript(polls=1))
    dest = tmp_path / "x.mp4"

    async def body(p: RunwayProvider) -> int:
        seen = await until_final(p, await p.submit(VideoRequest(GEN, "p")))
        Runway.expire(emulator.video, status=410)  # a day later: the link handed out is dead
        return await p.download(seen[-1].clips[0], dest)

    assert run(emulator, body) == dest.stat().st_size > 0
    assert [r.status for r in cdn(emulator)] == [410, 200]
    first, fresh = (r.query["_jwt"] for r in cdn(emulator))
    assert first != fresh and sum(r.method == "GET" for r in api(emulator)) == 3 and emulator.video_jobs(GEN) == 1


def test_a_link_that_stays_expired_is_one_line(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(GEN, VideoScript(polls=1))

    async def body(p: RunwayProvider) -> ProviderError:
        seen = await until_final(p, await p.submit(VideoRequest(GEN, "p")))
        Runway.expire(emulator.video, also_new=True)
        with pytest.raises(ProviderError) as caught:
            await p.download(seen[-1].clips[0], tmp_path / "x.mp4")
        return caught.value

    err = run(emulator, body)
    assert err.message == EXPIRED and err.status == 403 and "\n" not in str(err) and "_jwt" not in str(err)
    assert [r.status for r in cdn(emulator)] == [403, 403] and not list(tmp_path.iterdir())


# ---- errors ---------------------------------------------------------------------------------------


def test_the_version_header_is_required_and_a_bad_key_is_an_auth_error(emulator: Emulator) -> None:
    url = f"{emulator.url}/runway/v1/text_to_video"
    body = {"model": GEN, "promptText": "p", "ratio": "1280:720", "duration": 5}
    bare = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert bare.status_code == 400 and "X-Runway-Version" in bare.json()["error"]
    old = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY}", "X-Runway-Version": "2023-01-01"})
    assert old.status_code == 400
    emulator.expected_keys["runway"] = "key_" + "f" * 128

    async def wrong_key(p: RunwayProvider) -> AuthError:
        with pytest.raises(AuthError) as caught:
            await p.submit(VideoRequest(GEN, "p"))
        return caught.value

    err = run(emulator, wrong_key)
    assert err.status == 401 and KEY not in str(err) and emulator.video_jobs(GEN) == 0


def test_a_400_names_the_fields_in_one_line(emulator: Emulator) -> None:
    body = {"model": GEN, "promptText": "p", "ratio": "1920:1080", "duration": 12, "prompt_text": "p"}
    response = httpx.post(f"{emulator.url}/runway/v1/text_to_video", json=body,
                          headers={"Authorization": f"Bearer {KEY}", "X-Runway-Version": VERSION})
    assert response.status_code == 400 and response.json()["error"] == "Validation of body failed"
    err = response_error(response, response.text, classifier(WireContext("runway", GEN, KEY)))
    assert isinstance(err, BadRequestError) and err.code == "unrecognized_keys" and "\n" not in str(err)
    assert err.message == ("Validation of body failed: Unrecognized key(s) in object: 'prompt_text'; ratio: Invalid "
                           "enum value. Expected '1280:720' | '720:1280', received '1920:1080'; duration: Number "
                           "must be less than or equal to 10")
    assert emulator.video_jobs(GEN) == 0

    async def unknown_model(p: RunwayProvider) -> BadRequestError:
        with pytest.raises(BadRequestError) as caught:
            await p.submit(VideoRequest("gen9", "p"))
        return caught.value

    assert run(emulator, unknown_model).message.startswith("Validation of body failed: model: Invalid discriminator")


@pytest.mark.parametrize(("fault", "cls", "retryable"), [
    (Fault("status", status=429), RateLimitError, True),
    (Fault("status", status=503), ServerError, True),
    (Fault("status", status=400, message="You do not have enough credits to run this task."), PaymentError, False),
])
def test_submit_errors_are_typed_and_never_retried(emulator: Emulator, fault: Fault, cls: type[ProviderError],
                                                   retryable: bool) -> None:
    emulator.script(GEN, VideoScript(submit_faults=[fault]))

    async def body(p: RunwayProvider) -> ProviderError:
        with pytest.raises(cls) as caught:
            await p.submit(VideoRequest(GEN, "p"))
        return caught.value

    err = run(emulator, body)
    assert err.retryable is retryable and err.status == fault.status
    assert len(api(emulator)) == 1 and emulator.video_jobs(GEN) == 0


# ---- before anything is sent ----------------------------------------------------------------------


@pytest.mark.parametrize(("request_", "says"), [
    (VideoRequest(GEN, "p", seconds=12), "--seconds 12: runway:gen4.5 makes clips of 2 to 10 seconds"),
    (VideoRequest(VEO, "p", seconds=5), "--seconds 5: runway:veo3.1 makes clips of 4, 6 or 8 seconds"),
    (VideoRequest("kling2.5_turbo_pro", "p", seconds=6), "--seconds 6: runway:kling2.5_turbo_pro makes clips of 5 "),
    (VideoRequest(GEN, "p", resolution="1080p"), "--resolution 1080p: runway:gen4.5 makes 720p only"),
    (VideoRequest(GEN, "p", aspect="1:1"), "--aspect 1:1: runway:gen4.5 makes 16:9 or 9:16"),
    (VideoRequest(TURBO, "p"), "--image: runway:gen4_turbo makes clips from a first frame only"),
    (VideoRequest(GEN, "p", previous_job="t-1"), "--edit: runway:gen4.5 cannot revise an earlier job"),
    (VideoRequest(GEN, "p", extend_uri="https://x"), "--extend: runway:gen4.5 cannot extend a clip"),
    (VideoRequest(GEN, "p", references=(Path(__file__),)), "--reference: runway:gen4.5 takes no reference images"),
    (VideoRequest(GEN, "x" * 1001), "the prompt is 1001 UTF-16 code units; runway:gen4.5 takes up to 1000"),
])
def test_check_request_refuses_in_one_line(request_: VideoRequest, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunwayProvider.check_request(request_)
    assert str(caught.value).startswith(says) and "\n" not in str(caught.value)


def test_check_request_last_frame_and_notes(tmp_path: Path) -> None:
    first, last = frames(tmp_path)
    with pytest.raises(ConfigError, match=r"--last-frame: runway:gen4\.5 takes a first frame only"):
        RunwayProvider.check_request(VideoRequest(GEN, "p", image=first, last_frame=last))
    assert RunwayProvider.check_request(VideoRequest(VEO, "p", image=first, last_frame=last)) == []
    assert RunwayProvider.check_request(VideoRequest(TURBO, "p", image=first)) == []
    assert RunwayProvider.check_request(VideoRequest(GEN, "p", negative="blur")) == [
        "--negative: runway:gen4.5 has no negative prompt; not sent"]
    [note] = RunwayProvider.check_request(VideoRequest("gen5_preview", "p", seconds=5))
    assert note.startswith("runway:gen5_preview is not in fusion_magic's table of Runway models")


def test_the_table_prices_credits_and_lists_the_models(emulator: Emulator) -> None:
    prices = RunwayProvider.unit_prices()
    assert prices[f"runway:{GEN}"].per_second == 12 * 0.01 and prices[f"runway:{TURBO}"].per_second == 5 * 0.01
    assert prices[f"runway:{VEO}"].per_second == 40 * 0.01 and "runway:kling2.5_turbo_pro" not in prices
    # Keyed by the full id: Runway's rate for its Veo prices no other provider's Veo.
    assert price_for(f"runway:{VEO}", prices) == prices[f"runway:{VEO}"]
    assert price_for(f"fal:someone/{VEO}", prices) is None
    caps = RunwayProvider.capabilities(GEN)
    assert caps is not None and (caps.min_seconds, caps.max_seconds, caps.resolutions) == (2, 10, ("720p",))
    assert RunwayProvider.capabilities("nope") is None

    async def body(p: RunwayProvider) -> list[str]:
        return await p.list_models()

    assert run(emulator, body) == list(MODELS) and emulator.requests == []  # no listing endpoint to ask


# ---- through %%video ------------------------------------------------------------------------------


def test_a_runway_clip_is_saved_with_its_sidecar_and_its_credits_as_the_cost(vshell: InteractiveShell,
                                                                             emulator_env: Emulator) -> None:
    emulator_env.script(GEN, VideoScript(polls=2, clip_seconds=1.5))
    out = vshell.run_cell_magic("video", f"-p runway:{GEN} --seconds 5 --aspect 9:16 -o v", "A lighthouse")
    assert isinstance(out, VideoResult)
    (clip,) = out.videos
    assert clip.ok and clip.path is not None and clip.path.suffix == ".mp4"
    with av.open(str(clip.path)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0
    assert clip.seconds == pytest.approx(1.5, abs=0.2)
    # The ledger: Runway's own charge, 60 credits at $0.01, kept exactly and marked as the provider's.
    row = out.ledger.iloc[0]
    assert row["cost_usd"] == 60 / 100 and row["cost_source"] == "provider"
    assert clip.record.cost_usd == 0.6 and clip.record.cost_source == "provider"
    # The receipt: the job, no signed link (it expires, and anyone holding it could fetch the clip), no key.
    assert clip.sidecar is not None
    text = clip.sidecar.read_text()
    side = json.loads(text)
    assert side["status"] == "ok" and side["job"] == {"protocol": "runway", "model": GEN, "job_id": clip.job_id,
                                                      "urls": {}}
    assert side["clip_uri"] is None and "_jwt" not in text and "runway-cdn" not in text and KEY not in text
    assert side["cost_usd"] == 0.6 and side["cost_source"] == "provider"
    assert emulator_env.video_jobs(GEN) == 1
    assert all(r.headers.get("x-runway-version") == VERSION for r in api(emulator_env))
    assert all("authorization" not in r.headers for r in cdn(emulator_env)) and len(cdn(emulator_env)) == 1


def test_throttled_shows_as_queued_with_its_phrase(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    emulator_env.script(GEN, VideoScript(polls=2, throttled=1))
    seen: list[tuple[State, str | None]] = []

    def listen(event: EngineEvent) -> None:
        if isinstance(event, VideoUpdated):
            seen.append((event.video.state, event.video.progress))

    result = fusion_magic.video("A fox", models=[f"runway:{GEN}"], seconds=5, poll_s=0.01, listeners=[listen])
    assert result.videos[0].ok
    assert (State.QUEUED, f"{THROTTLED}; up to 60 credits ($0.60)") in seen
    assert (State.RUNNING, "67 %; up to 60 credits ($0.60)") in seen
    assert seen.index((State.QUEUED, f"{THROTTLED}; up to 60 credits ($0.60)")) < seen.index(
        (State.RUNNING, "67 %; up to 60 credits ($0.60)"))


def test_safety_failures_are_filtered_and_others_failed_with_their_code(vshell: InteractiveShell,
                                                                        emulator_env: Emulator) -> None:
    emulator_env.script(GEN, VideoScript(polls=1, outcome="filtered", reason="The output may show a real person."))
    emulator_env.script(VEO, VideoScript(polls=1, outcome="failed"))
    out = vshell.run_cell_magic("video", f"-p runway:{GEN},runway:{VEO} --seconds 4", "A fox")
    gen, veo = out.videos
    assert gen.status == "filtered" and gen.reason == "The output may show a real person. (SAFETY.OUTPUT.VIDEO)"
    assert gen.cost_usd == 0.0 and gen.path is None
    assert veo.status == "failed" and veo.path is None and veo.error is not None
    assert "failureCode INTERNAL.BAD_OUTPUT.CODE01" in veo.error and "\n" not in veo.error
    assert json.loads(veo.sidecar.read_text())["status"] == "failed"


def test_a_job_that_outlasts_the_wait_is_pending_and_resume_fetches_it_unpaid(
        vshell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script(GEN, VideoScript(polls=10_000))
    first = fusion_magic.video("A slow fox", models=[f"runway:{GEN}"], timeout=0.2, poll_s=0.01)
    (clip,) = first.videos
    assert clip.state is State.PENDING and clip.job_id is not None and clip.error is None
    assert emulator_env.video_jobs(GEN) == 1
    job = emulator_env.video.job(clip.job_id)
    assert job is not None
    job.script = VideoScript(polls=0)  # it finishes at Runway while nobody waits
    again = vshell.run_line_magic("video", "resume -o w")
    (saved,) = again.videos
    assert saved.ok and saved.reattached and saved.path is not None and saved.path.is_file()
    assert saved.record.cost_usd == 0.6 and saved.record.cost_source == "provider"
    assert emulator_env.video_jobs(GEN) == 1
    assert sum(r.method == "POST" for r in api(emulator_env)) == 1


def test_an_expired_link_on_resume_is_one_line_then_a_fresh_poll_saves_the_clip(
        vshell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(GEN, VideoScript(polls=10_000))
    first = fusion_magic.video("A slow fox", models=[f"runway:{GEN}"], timeout=0.2, poll_s=0.01)
    (clip,) = first.videos
    assert clip.job_id is not None and clip.sidecar is not None
    job = emulator_env.video.job(clip.job_id)
    assert job is not None
    job.script = VideoScript(polls=0)
    # Two days pass: every link Runway hands out is dead by the time it is fetched.
    Runway.expire(emulator_env.video, also_new=True)
    capsys.readouterr()
    stuck = vshell.run_line_magic("video", "resume -o w")
    (waiting,) = stuck.videos
    assert waiting.state is State.PENDING and waiting.error is None
    assert waiting.note is not None and EXPIRED in waiting.note and "\n" not in waiting.note
    assert "_jwt" not in waiting.note
    printed = capsys.readouterr().err.splitlines()
    assert sum(EXPIRED in line for line in printed) == 1
    side = clip.sidecar.read_text()
    assert json.loads(side)["status"] == "succeeded" and "_jwt" not in side and "runway-cdn" not in side
    # The links work again: resume polls the task for a fresh one and saves the clip, not paid again.
    Runway.expire(emulator_env.video, also_new=False)
    fetched = vshell.run_line_magic("video", "resume -o w")
    (saved,) = fetched.videos
    assert saved.ok and saved.path is not None and saved.path.is_file()
    assert emulator_env.video_jobs(GEN) == 1
    assert [r.status for r in cdn(emulator_env)] == [403, 403, 200]
    assert json.loads(clip.sidecar.read_text())["status"] == "ok"


@pytest.mark.parametrize(("line", "message"), [
    (f"-p runway:{GEN} --seconds 12", "--seconds 12: runway:gen4.5 makes clips of 2 to 10 seconds"),
    (f"-p runway:{VEO} --seconds 5", "--seconds 5: runway:veo3.1 makes clips of 4, 6 or 8 seconds"),
    (f"-p runway:{GEN} --resolution 1080p", "--resolution 1080p: runway:gen4.5 makes 720p only"),
    (f"-p runway:{TURBO}", "--image: runway:gen4_turbo makes clips from a first frame only"),
])
def test_a_bad_duration_or_ratio_is_one_line_and_no_request(vshell: InteractiveShell, emulator_env: Emulator,
                                                            line: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        vshell.run_cell_magic("video", line, "A fox")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert emulator_env.requests == []
    with pytest.raises(ConfigError, match="makes"):
        fusion_magic.video("A fox", models=[f"runway:{GEN}"], seconds=11)
    assert emulator_env.requests == []


def test_first_and_last_frames_go_on_the_wire_through_the_cell(vshell: InteractiveShell,
                                                              emulator_env: Emulator) -> None:
    first, last = frames(Path.cwd())
    out = vshell.run_cell_magic("video", f"-p runway:{VEO} --seconds 8 --image first.png --last-frame last.png",
                                "The red turns blue")
    assert out.videos[0].ok
    sent = posted(emulator_env, "image_to_video")
    png = "data:image/png;base64"
    assert [(p["position"], decoded(p["uri"])) for p in sent["promptImage"]] == [
        ("first", (png, first.read_bytes())), ("last", (png, last.read_bytes()))]
    assert (sent["model"], sent["ratio"], sent["duration"]) == (VEO, "1280:720", 8)


def test_estimate_prices_credits_at_a_cent_and_sends_nothing(vshell: InteractiveShell, emulator: Emulator) -> None:
    est = vshell.run_cell_magic("video", f"-p runway:{GEN},runway:{VEO} --seconds 4 --estimate", "A fox")
    text = str(est)
    assert "$0.48" in text and "$1.60" in text and "Total: $2.08" in text and emulator.requests == []


def test_video_list_shows_runway_models_with_its_key(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    listing = vshell.run_line_magic("video", "list")
    models = set(listing.models["model"])
    assert {f"runway:{m}" for m in MODELS} <= models
    assert not [r for r in emulator_env.requests if r.path.startswith("/runway")]
