"""Run one planned ``%%video``: generate the clips concurrently (then check them), or ask the models about a
video (then fuse their answers); and ``resume``, which fetches the jobs earlier runs left pending.

The engine knows nothing of IPython or widgets: it reports through events (``video/events.py`` and the call
events) and returns a ``VideoResult``. An interrupt cancels the run: clips still at the provider become
"pending" (their sidecars keep the job ids), and the result object the caller passed in holds what arrived.

    result = await run_video(plan, ctx)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..calls.call import CallContext, Target
from ..calls.settings import Settings
from ..core.errors import ConfigError
from ..core.events import emit
from ..core.record import CallRecord
from ..core.state import State
from ..providers.video.base import JobRef
from . import sidecar
from .analyse import warm_analysers
from .check import Asked, asked_in, check_clips
from .events import VideoRunFinished, VideoRunStarted
from .jobs import follow, in_flight, run_clip, show_receipt, video_provider, wait_for_other_run
from .options import DEFAULT_TIMEOUT_S
from .plan import Asker, VideoPlan, _asker, _target, tab_labels
from .result import Video, VideoResult
from .state import move
from .understand import ask_all


def new_result(plan: VideoPlan) -> VideoResult:
    """The result object a run fills in, with one ``Video`` per planned clip."""
    videos = [Video(model=c.model_id, label=c.label, prompt=plan.prompt, notes=list(c.notes)) for c in plan.clips]
    for video in videos:
        video.record = CallRecord(model=video.model, role="generate", label=video.label, status=video.status)
    source = plan.options.understand
    return VideoResult(prompt=plan.prompt, videos=videos, source=source, notes=list(plan.notes))


async def run_video(plan: VideoPlan, ctx: CallContext, result: VideoResult | None = None) -> VideoResult:
    """Run ``plan`` to the end; on cancellation raise ``VideoStopped`` with the partial result."""
    result = result or new_result(plan)
    started = time.monotonic()
    emit(ctx.listeners, VideoRunStarted(plan.prompt, tuple(result.videos),
                                        understand=tuple(a.model_id for a in plan.askers),
                                        source=plan.options.understand,
                                        check=plan.check.model_id if plan.check else None))
    try:
        if plan.source is not None:
            records, analysis, fused = await ask_all(plan, ctx)
            result.answers, result.analysis = records, analysis
            if fused is not None:
                result.verdict, result.answer = fused.verdict, fused.answer
                result.judge_calls = list(fused.judge_responses)
            else:
                result.answer = next((r.text for r in records if r.ok), None)
        else:
            options = plan.options
            # Each saved clip is analysed (its filmstrip); the analysers start while the jobs run.
            async with warm_analysers(len(plan.clips)):
                outcomes = await asyncio.gather(*(
                    run_clip(clip, video, ctx, out_dir=plan.out_dir, timeout=options.timeout, poll_s=options.poll_s,
                             new=options.new, check=plan.check.model_id if plan.check else None)
                    for clip, video in zip(plan.clips, result.videos, strict=True)), return_exceptions=True)
            for video, outcome in zip(result.videos, outcomes, strict=True):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, BaseException):  # a bug or the environment: this clip only
                    move(video, State.FAILED, ctx, error=f"unexpected {type(outcome).__name__}: {outcome}")
            if plan.check is not None:
                result.checks = await check_clips(plan.check, result.videos, ctx, asked_in(plan))
    except asyncio.CancelledError:
        _ended(result, started, ctx, stopped=True)
        raise
    if result.pending:
        result.notes.append(f"{len(result.pending)} clip(s) still at the provider: %video resume fetches them "
                            "without paying again")
    _ended(result, started, ctx)
    return result


def _ended(result: VideoResult, started: float, ctx: CallContext, *, stopped: bool = False) -> None:
    """Stamp the wall time and say the run is over (``stopped``: interrupted, with a note on what goes on)."""
    result.wall_s = time.monotonic() - started
    if stopped:
        result.notes.append(_stopped_note(result))
    emit(ctx.listeners, VideoRunFinished(result, stopped=stopped))


def _stopped_note(result: VideoResult) -> str:
    pending = len(result.pending)
    kept = f"; {pending} job(s) go on at the provider: %video resume fetches them without paying again" \
        if pending else ""
    return f"Interrupted after {result.wall_s:.1f} s{kept}."


def open_jobs(out_dir: Path) -> list[tuple[Path, sidecar.Sidecar]]:
    """The sidecars in ``out_dir`` whose job may still be fetched (submitted, pending, or succeeded but not
    downloaded), oldest first. Unreadable sidecars are not ours to judge: they are left alone."""
    return [(path, side) for path, side in sidecar.sidecars(out_dir) if side.open]


@dataclass(frozen=True)
class ResumePlan:
    """The open jobs a resume fetches (sidecar path, sidecar, target), and one line per job it cannot fetch
    now (its provider's key is not set, its model is no longer known) or cannot check as its run would have;
    ``checkers``: the ``--check`` of the runs that submitted them, by model id, resolved now; ``timeout`` and
    ``poll_s``: how long to wait for them, and how often to ask (None: each protocol's own interval)."""

    settings: Settings
    jobs: tuple[tuple[Path, sidecar.Sidecar, Target], ...]
    skipped: tuple[str, ...] = ()
    checkers: Mapping[str, Asker] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT_S
    poll_s: float | None = None


def plan_resume(out_dir: Path, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S,
                poll_s: float | None = None) -> ResumePlan:
    """Check a resume before anything is sent: a job whose key is missing is skipped with a line saying so
    (it stays resumable), and the others go ahead (``timeout`` and ``poll_s``: checked by the caller)."""
    if not out_dir.is_dir():
        raise ConfigError(f"%video resume: no folder {out_dir}")
    out_dir = out_dir.resolve()  # the paths this kernel's running clips are known by
    jobs: list[tuple[Path, sidecar.Sidecar, Target]] = []
    skipped: list[str] = []
    for path, side in open_jobs(out_dir):
        if side.job_ref is None:
            skipped.append(f"skipped {path.name}: its job record is damaged (no protocol, model or job id)")
            continue
        try:
            jobs.append((path, side, _target(side.model, settings, True, "generate")))
        except ConfigError as exc:
            skipped.append(f"skipped {path.name} (job {(side.job or {}).get('job_id')}): {exc}")
    checkers: dict[str, Asker] = {}
    for check in dict.fromkeys(side.check for _, side, _ in jobs if side.check):
        try:
            checkers[check] = _asker(check, settings, True, None)
        except ConfigError as exc:  # the clip is still fetched (it is paid for); only its check waits
            skipped.append(f"not checking with {check} (the clips are fetched unchecked): {exc}")
    return ResumePlan(settings, tuple(jobs), tuple(skipped), checkers, timeout, poll_s)


async def resume(plan: ResumePlan, ctx: CallContext, result: VideoResult | None = None) -> VideoResult:
    """Re-attach to every planned job (no submission), download what finished and check it with the
    ``--check`` its run was started with. The result reports each clip's own prompt: the one its job was
    submitted with (``result.prompt`` is that prompt when every job shares it)."""
    result = result if result is not None else VideoResult(prompt=RESUME)
    pairs = []
    labels = tab_labels(tuple(side.model for _, side, _ in plan.jobs))
    for (path, side, target), label in zip(plan.jobs, labels, strict=True):
        job = side.job_ref
        assert job is not None
        video = Video(model=side.model, label=label, prompt=side.prompt, status=State.RUNNING, sidecar=path,
                      job_id=job.job_id, polls=side.polls, reattached=True)
        video.record = CallRecord(model=side.model, role="generate", label=label, call_id=next(ctx.counter),
                                  status=video.status)
        video.started = time.monotonic()
        result.videos.append(video)
        pairs.append((video, side, job, target))
    prompts = {side.prompt for _, side, _ in plan.jobs}
    if len(prompts) == 1 and result.prompt == RESUME:
        result.prompt = prompts.pop()
    checks = {path: side.check for path, side, _ in plan.jobs if side.check in plan.checkers}
    first_check = next(iter(checks.values()), None)
    emit(ctx.listeners, VideoRunStarted(result.prompt, tuple(result.videos), check=first_check, resumed=True))
    started = time.monotonic()
    async def one(video: Video, side: sidecar.Sidecar, job: JobRef, target: Target) -> None:
        assert video.sidecar is not None
        other = in_flight(video.sidecar)
        if other is not None:
            # A run of this kernel follows this job now: let it finish, then show what it made.
            await wait_for_other_run(other, video, ctx)
            latest = sidecar.read(video.sidecar) or side
            if not latest.open:
                show_receipt(video, latest, path_dir(video), ctx)
                return
            side = latest
        await follow(video_provider(target, ctx), job, video, side, ctx, out_dir=path_dir(video),
                     timeout=plan.timeout, poll_s=plan.poll_s)

    asked = {video.label: Asked.from_parameters(side.parameters) for video, side, _, _ in pairs}

    async def checked() -> None:
        """The check of each clip this resume saved, as its run would have made it: one checker at a time,
        the best marked among the clips of one prompt."""
        for model, checker in plan.checkers.items():
            for prompt in dict.fromkeys(v.prompt for v in result.videos):
                group = [v for v in result.videos if v.sidecar is not None and checks.get(v.sidecar) == model
                         and v.prompt == prompt and v.ok and not v.reused]
                if group:
                    result.checks += await check_clips(checker, group, ctx, asked)

    try:
        async with warm_analysers(len(pairs)):
            await asyncio.gather(*(one(video, side, job, target) for video, side, job, target in pairs))
        await checked()
    except asyncio.CancelledError:
        _ended(result, started, ctx, stopped=True)
        raise
    _ended(result, started, ctx)
    return result


# The prompt of a resume whose jobs came from several prompts (then each clip says its own).
RESUME = "%video resume"


def path_dir(video: Video) -> Path:
    assert video.sidecar is not None
    return video.sidecar.parent


__all__ = ["RESUME", "ResumePlan", "new_result", "open_jobs", "plan_resume", "resume", "run_video"]
