"""Every status an Omni interaction can end in (shared/reference/video-apis.md §10.4, google-genai 3.6.1's
``InteractionStatus``) ends a video job clearly: ``queued`` and ``in_progress`` are waited on (the wait's timeout
leaves the job resumable), ``completed`` and ``idle`` with a clip are the clip, ``cancelled`` is cancelled, and
everything else fails at once with one line naming the status, an unknown status included, never a poll until
the timeout. Through the provider against the loopback emulator, through a question's ``stream``, and through
``fusion_magic.video`` with a pool of two models, where one model's odd ending leaves the other's clip alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import fusion_magic
from fusion_magic.core.errors import BadRequestError, BlockedError, ProtocolError, ProviderError, ServerError
from fusion_magic.core.state import State
from fusion_magic.providers.base import Message, TextDelta
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.providers.video.base import JobRef, JobStatus, VideoQuestion, VideoRequest, VideoSource
from fusion_magic.providers.video.interactions import InteractionsProvider
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.testing.video_script import Outcome, made_clip
from fusion_magic.videos.result import VideoResult

OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
KEY = "AIza-test-emulator"
T = TypeVar("T")


def run(emu: Emulator, work: Callable[[InteractionsProvider], Awaitable[T]]) -> T:
    async def main() -> T:
        endpoint = resolve_endpoint(BUILTIN["gemini"], {"gemini": KEY}, environ=emu.env())
        async with httpx.AsyncClient() as client:
            return await work(InteractionsProvider(endpoint, client))

    return asyncio.run(main())


def polls(emu: Emulator, script: VideoScript, limit: int = 8) -> list[JobStatus]:
    """Submit one job with ``script`` and poll it until it is final (or ``limit`` polls)."""
    emu.script(OMNI, script)

    async def work(p: InteractionsProvider) -> list[JobStatus]:
        job = await p.submit(VideoRequest(OMNI, "a marble run", seconds=6))
        seen = [await p.poll(job)]
        while not seen[-1].final and len(seen) < limit:
            seen.append(await p.poll(job))
        return seen

    return run(emu, work)


def raw_get(emu: Emulator, job_id: str) -> dict[str, object]:
    """The interaction as the emulator sends it (one more poll)."""
    base = emu.env()["GEMINI_BASE_URL"] + "/v1/interactions"
    with httpx.Client(headers={"x-goog-api-key": KEY}) as client:
        payload: dict[str, object] = client.get(f"{base}/{job_id}").json()
    return payload


# ---- each status, one job, through the provider ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "words"), [
    ("incomplete", "completed with incomplete results"),
    ("budget_exceeded", "its token budget was exceeded"),
    ("requires_continuation", "per-request decode token limit"),
])
def test_a_status_that_stopped_short_fails_at_once_naming_it_and_its_usage(emulator: Emulator, status: str,
                                                                          words: str) -> None:
    seen = polls(emulator, VideoScript(polls=2, final_status=status))
    assert [s.state for s in seen] == ["queued", "running", "failed"]  # no poll after it: the wait ended there
    error = seen[-1].error
    assert isinstance(error, ServerError) and not error.retryable and error.code == status
    assert error.message.startswith(f"the interaction ended with status {status}: ") and words in error.message
    assert "output tokens (may be billed)" in error.message and "\n" not in str(error)
    assert seen[-1].usage is not None and seen[-1].usage.output_tokens
    assert not seen[-1].clips and emulator.video_jobs(OMNI) == 1


def test_a_stopped_short_status_with_an_error_names_both(emulator: Emulator) -> None:
    seen = polls(emulator, VideoScript(polls=0, outcome="failed", final_status="incomplete",
                                       error_message="MAX_TOKENS reached while decoding"))
    error = seen[-1].error
    assert error is not None and "status incomplete" in error.message
    assert "INTERNAL: MAX_TOKENS reached while decoding" in error.message


def test_requires_action_fails_at_once_rather_than_waiting_for_input_it_never_gets(emulator: Emulator) -> None:
    seen = polls(emulator, VideoScript(polls=1, final_status="requires_action"))
    assert [s.state for s in seen] == ["running", "failed"]
    assert isinstance(seen[-1].error, BadRequestError) and seen[-1].error.code == "requires_action"
    assert "needs input a video job cannot give" in seen[-1].error.message


def test_idle_with_the_clip_is_the_clip(emulator: Emulator, tmp_path: Path) -> None:
    emulator.script(OMNI, VideoScript(polls=1, final_status="idle", output_video_field=True, clip_seconds=1.0))

    async def work(p: InteractionsProvider) -> tuple[JobRef, JobStatus, int]:
        job = await p.submit(VideoRequest(OMNI, "waves"))
        await p.poll(job)
        status = await p.poll(job)
        return job, status, await p.download(status.clips[0], tmp_path / "waves.mp4")

    job, status, size = run(emulator, work)
    assert status.state == "succeeded" and size > 0
    assert (tmp_path / "waves.mp4").read_bytes() == made_clip(1.0, (320, 180), False)
    sent = raw_get(emulator, job.job_id)
    assert sent["status"] == "idle" and isinstance(sent["output_video"], dict)


def test_idle_with_the_clip_only_in_steps_is_the_clip_too(emulator: Emulator) -> None:
    seen = polls(emulator, VideoScript(polls=0, final_status="idle"))
    assert seen[-1].state == "succeeded" and seen[-1].clips


def test_idle_without_a_clip_fails_naming_idle(emulator: Emulator) -> None:
    seen = polls(emulator, VideoScript(polls=0, outcome="failed", final_status="idle", error_message="gone quiet"))
    error = seen[-1].error
    assert seen[-1].state == "failed" and isinstance(error, ProtocolError) and error.code == "idle"
    assert "status idle and no video" in error.message and "gone quiet" in error.message


def test_an_unknown_status_fails_in_one_line_naming_it(emulator: Emulator) -> None:
    seen = polls(emulator, VideoScript(polls=1, final_status="paused_for_review"))
    assert [s.state for s in seen] == ["running", "failed"]
    error = seen[-1].error
    assert isinstance(error, ProtocolError) and error.code == "paused_for_review"
    assert "status 'paused_for_review', which fusion_magic does not know" in error.message
    assert "stopped waiting" in error.message and "\n" not in str(error)


def test_queued_and_in_progress_are_waited_on_for_as_long_as_they_last(emulator: Emulator) -> None:
    assert {s.state for s in polls(emulator, VideoScript(polls=0, final_status="queued"), limit=6)} == {"queued"}
    assert {s.state for s in polls(emulator, VideoScript(polls=0, final_status="in_progress"), limit=6)} == {
        "running"}


@pytest.mark.parametrize(("script", "state"), [
    (VideoScript(polls=0), "succeeded"),
    (VideoScript(polls=0, outcome="failed"), "failed"),
    (VideoScript(polls=0, outcome="filtered"), "filtered"),
    (VideoScript(polls=0, final_status="budget_exceeded", outcome="filtered"), "filtered"),
])
def test_completed_failed_and_a_safety_code_end_as_before(emulator: Emulator, script: VideoScript,
                                                         state: str) -> None:
    assert polls(emulator, script)[-1].state == state


def test_a_job_that_never_leaves_the_queue_can_still_be_cancelled(emulator: Emulator) -> None:
    emulator.script(OMNI, VideoScript(polls=0, final_status="queued"))

    async def work(p: InteractionsProvider) -> list[str]:
        job = await p.submit(VideoRequest(OMNI, "a long take"))
        first = await p.poll(job)
        await p.cancel(job)
        return [first.state, (await p.poll(job)).state]

    assert run(emulator, work) == ["queued", "cancelled"]


def test_the_emulator_sends_what_each_status_carries(emulator: Emulator) -> None:
    emulator.script(OMNI, VideoScript(polls=0, final_status="requires_continuation"))
    job = run(emulator, lambda p: p.submit(VideoRequest(OMNI, "x")))
    done: dict[str, Any] = raw_get(emulator, job.job_id)
    assert done["status"] == "requires_continuation" and done["continuation_token"]
    assert done["usage"]["total_output_tokens"] > 0 and "steps" not in done and "errors" not in done


# ---- a question about a video ends clearly too ---------------------------------------------------------------


def ask(emu: Emulator) -> list[object]:
    request = VideoQuestion(OMNI, (Message("user", "What moves?"),),
                            video=VideoSource(url="https://example.com/clip.mp4"))

    async def work(p: InteractionsProvider) -> list[object]:
        return [e async for e in p.stream(request)]

    return run(emu, work)


@pytest.mark.parametrize(("status", "error"), [
    ("budget_exceeded", ServerError), ("requires_action", BadRequestError), ("paused_for_review", ProtocolError),
    ("idle", ProtocolError),
])
def test_a_question_that_ends_without_an_answer_raises_one_line_naming_the_status(emulator: Emulator, status: str,
                                                                                  error: type[ProviderError]) -> None:
    outcome: Outcome = "failed" if status == "idle" else "ok"
    emulator.script(OMNI, VideoScript(final_status=status, outcome=outcome))
    with pytest.raises(error) as raised:
        ask(emulator)
    assert status in raised.value.message and "\n" not in str(raised.value)


def test_a_question_idle_with_its_answer_is_answered(emulator: Emulator) -> None:
    emulator.script(OMNI, VideoScript(final_status="idle", answer="A white square moves right."))
    events = ask(emulator)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["A white square moves right."]


def test_a_blocked_question_stays_blocked(emulator: Emulator) -> None:
    emulator.script(OMNI, VideoScript(outcome="filtered", reason="no"))
    with pytest.raises(BlockedError):
        ask(emulator)


# ---- through fusion_magic.video: one model's ending leaves the pool alone -------------------------------------


@pytest.mark.parametrize("status", ["budget_exceeded", "incomplete"])
def test_omni_stopping_short_fails_its_own_clip_and_the_pool_goes_on(emulator_env: Emulator,
                                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                     status: str) -> None:
    monkeypatch.chdir(tmp_path)
    emulator_env.script(OMNI, VideoScript(polls=1, final_status=status))
    emulator_env.script(VEO, VideoScript(polls=2, clip_seconds=1.0))
    result = fusion_magic.video("A paper boat", models=[f"gemini:{OMNI}", f"gemini:{VEO}"], seconds=4, poll_s=0.01,
                                timeout=30)
    assert isinstance(result, VideoResult)
    omni, veo = result.videos
    assert omni.state is State.FAILED and omni.path is None and omni.error is not None
    assert f"status {status}" in omni.error and "Traceback" not in omni.error and "\n" not in omni.error
    assert omni.sidecar is not None and json.loads(omni.sidecar.read_text())["status"] == "failed"
    assert veo.ok and veo.path is not None and veo.path.is_file()
    assert result.degraded and "Traceback" not in result.to_text() and f"status {status}" in result.to_text()
    assert emulator_env.video_jobs(OMNI) == 1 and emulator_env.video_jobs(VEO) == 1
    # The failure came on the first poll after the scripted ones, not at the timeout.
    omni_polls = [r for r in emulator_env.requests if r.family == "gemini-interactions" and r.method == "GET"]
    assert len(omni_polls) == 2


def test_an_unknown_status_through_the_pool_is_one_line_not_a_wait_to_the_timeout(
        emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    emulator_env.script(OMNI, VideoScript(polls=0, final_status="archived"))
    emulator_env.script(VEO, VideoScript(polls=1, clip_seconds=1.0))
    result = fusion_magic.video("A paper boat", models=[f"gemini:{OMNI}", f"gemini:{VEO}"], seconds=4, poll_s=0.01,
                                timeout=600)
    omni, veo = result.videos
    assert omni.state is State.FAILED and "'archived'" in (omni.error or "") and veo.ok


def test_a_job_left_queued_is_pending_and_resumable_then_fetched_without_paying_again(
        emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    emulator_env.script(OMNI, VideoScript(polls=0, final_status="queued"))
    first = fusion_magic.video("A fox", models=[f"gemini:{OMNI}"], seconds=4, poll_s=0.01, timeout=0.2)
    (clip,) = first.videos
    assert clip.state is State.PENDING and clip.error is None and "not finished after" in (clip.note or "")
    assert clip.job_id is not None
    job = emulator_env.video.job(clip.job_id)
    assert job is not None
    job.script = VideoScript(polls=0)  # the provider got to it while nobody waited
    again = fusion_magic.video("A fox", models=[f"gemini:{OMNI}"], seconds=4, poll_s=0.01, timeout=30)
    assert again.videos[0].ok and again.videos[0].job_id == clip.job_id
    assert emulator_env.video_jobs(OMNI) == 1


def test_requires_action_through_the_pool_fails_before_the_timeout(emulator_env: Emulator,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    emulator_env.script(OMNI, VideoScript(polls=0, final_status="requires_action"))
    result = fusion_magic.video("A fox", models=[f"gemini:{OMNI}"], seconds=4, poll_s=0.01, timeout=600)
    (clip,) = result.videos
    assert clip.state is State.FAILED and "needs input a video job cannot give" in (clip.error or "")


def test_job_refs_of_stopped_jobs_still_poll(emulator: Emulator) -> None:
    """A resumed job (a JobRef read back from a sidecar) that ended in an odd status reads the same way."""
    emulator.script(OMNI, VideoScript(polls=0, final_status="budget_exceeded"))

    async def work(p: InteractionsProvider) -> JobStatus:
        job = await p.submit(VideoRequest(OMNI, "x"))
        return await p.poll(JobRef.from_json(job.to_json()))

    status = run(emulator, work)
    assert status.state == "failed" and status.error is not None and status.error.code == "budget_exceeded"
