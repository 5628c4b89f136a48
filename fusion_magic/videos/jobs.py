"""One generation job from submission to a file on disk: submit once, write the job id, poll, download.

The rules (shared/reference/video-apis.md §0):
- a submit is never retried (a duplicate would be paid twice), and its job id is in the sidecar before the
  first poll;
- polls are retried on 429/5xx with back-off (``Retry-After`` honoured); a job never shows as running once
  it failed;
- a timeout or an interrupt stops *waiting*, not the job: the clip becomes "pending", and ``resume`` (or the
  same cell again) re-attaches to it and downloads it without a second submission;
- a safety-filtered job is its own final state, with the provider's reason and no cost;
- every change of a clip's state goes through ``videos.state.move``, which keeps the clip, its record and its
  sidecar in agreement.

    await run_clip(clip_plan, video, ctx, out_dir=plan.out_dir, timeout=600, poll_s=None)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from ..calls.call import CallContext, Target
from ..core.errors import BlockedError, ProviderError
from ..core.events import CallStarted, emit
from ..core.pricing import price_record
from ..core.state import State
from ..providers.registry import make_provider
from ..providers.video.base import SUBMIT_LOST, JobRef, JobStatus, VideoProvider
from . import sidecar
from .analyse import prewarm_analyser
from .plan import ClipPlan
from .result import Video
from .sidecar import Sidecar
from .state import PROVIDER_COST, from_job, move, write_receipt

log = logging.getLogger("fusion_magic")

# Polls back off from the protocol's recommended interval by this factor, up to POLL_CAP_S (fal starts at
# 1 s, and 5 s is its sensible ceiling for video; Veo's 10 s stays 10 s), with +-20 % jitter.
POLL_GROWTH = 1.5
POLL_CAP_S = 5.0
# Consecutive failed polls (429, 5xx, connection lost) before we stop waiting; the job stays resumable.
MAX_POLL_ERRORS = 6
# The least time one poll (or a download) is given, however little of the wait is left.
POLL_GRACE_S = 1.0
KEYFRAMES_DIR = ".keyframes"
# The clip tasks of this kernel's runs, by sidecar path: a second run of the same request waits for the first.
_IN_FLIGHT: dict[Path, asyncio.Future[Any]] = {}
# Submits whose run was interrupted while the provider answered: they finish (shielded) to keep the receipt.
_SUBMITTING: set[asyncio.Future[Any]] = set()


# As long as the slowest submit may take to answer (fal's and OpenRouter's 120 s read timeout): a shorter wait
# would close the client under a submit whose answer, the only way to find its paid job, is still coming.
SUBMIT_WAIT_S = 130.0
# How often a kernel waiting for another kernel's clip (``clip_lock``) looks again.
LOCK_POLL_S = 0.1


async def finish_submits(timeout: float = SUBMIT_WAIT_S) -> None:
    """Let interrupted submits finish and write their receipts before their HTTP client is closed."""
    pending = [task for task in _SUBMITTING if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def video_provider(target: Target, ctx: CallContext) -> VideoProvider:
    """The provider object that speaks ``target``'s video protocol."""
    return cast(VideoProvider, make_provider(target.spec, target.endpoint, ctx.client))


async def run_clip(clip: ClipPlan, video: Video, ctx: CallContext, *, out_dir: Path, timeout: float,
                   poll_s: float | None, new: bool = False, check: str | None = None) -> None:
    """Make one clip: reuse a finished one from an earlier run of the same request, re-attach to its
    pending job, or submit a new one; then follow it to a file. Never raises for a provider failure (it
    lands on ``video``); re-raises ``CancelledError`` after marking the clip pending. ``check``: the run's
    ``--check`` model, kept in the receipt so that a resume checks the clip too."""
    side_path = out_dir / f"{clip.stem}.json"
    if new:
        side_path = _free_stem(out_dir, clip.stem)  # never over an earlier receipt: it may be a paid job
    video.sidecar = side_path
    record = video.record
    record.model, record.label, record.role = clip.model_id, clip.label, "generate"
    record.call_id = record.call_id or next(ctx.counter)
    # Another run of this kernel making the same clip goes first; we register only once none is left, with
    # no await between that check and the registration (one event loop), so no entry is ever overwritten
    # while its run goes on, and two --new runs never share a stem.
    while (other := in_flight(side_path)) is not None:
        await wait_for_other_run(other, video, ctx)
    me = asyncio.current_task()
    if me is not None:
        _IN_FLIGHT[side_path] = me
    try:
        # Another kernel (another notebook on this folder) making the same clip holds its lock: wait for it,
        # then reuse its clip or re-attach to its job, rather than pay for a second one.
        async with clip_lock(side_path, timeout) as held:
            if not held:
                move(video, State.PENDING, ctx, note="another kernel is making this same clip in this folder; "
                                                     "run the cell again (or %video resume) once it is done")
                return
            await _make(clip, video, ctx, side_path, out_dir=out_dir, timeout=timeout, poll_s=poll_s, new=new,
                        check=check)
    finally:
        if _IN_FLIGHT.get(side_path) is me:
            del _IN_FLIGHT[side_path]


@contextlib.asynccontextmanager
async def clip_lock(side_path: Path, timeout: float) -> AsyncIterator[bool]:
    """An advisory lock beside a clip's receipt (``.<stem>.lock``), held while one process reads the receipt,
    submits, follows and downloads: a second kernel on the same folder waits for it (at most ``timeout``), then
    finds the receipt the first one wrote. Yields False when the wait ran out. Where the platform has no
    ``fcntl`` (Windows) it yields True at once: the in-kernel check still holds, across kernels nothing does."""
    try:
        import fcntl
    except ImportError:
        yield True
        return
    side_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(side_path.with_name(f".{side_path.stem}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield False
                    return
                await asyncio.sleep(LOCK_POLL_S)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


async def _make(clip: ClipPlan, video: Video, ctx: CallContext, side_path: Path, *, out_dir: Path,
                timeout: float, poll_s: float | None, new: bool, check: str | None) -> None:
    record = video.record
    previous = None if new else sidecar.read(side_path)
    if previous is not None and previous.status == "ok" and previous.file and (out_dir / previous.file).is_file():
        _reuse(video, previous, out_dir)
        await _measure(video, out_dir)  # the keyframes and the analysis a --check local:frames reads
        move(video, State.DONE, ctx)
        return
    provider = video_provider(clip.target, ctx)
    video.started = time.monotonic()
    emit(ctx.listeners, CallStarted(record))
    if previous is not None and previous.status == LOST:
        move(video, State.FAILED, ctx, error="an earlier submit of this same request was sent but its answer was "
             "lost: the provider may be running (and billing) that job. Not sent again: check the provider's "
             "dashboard, then run with --new to pay for a fresh clip")
        return
    job = previous.job_ref if previous is not None and previous.open else None
    if previous is not None and job is not None:
        side = previous
        side.check = side.check or check  # written with the job's next change
        video.reattached = True
        video.notes.append("re-attached to the job an earlier run submitted: not paid again")
    else:
        side = Sidecar.for_request(clip.model_id, clip.request, clip.key, billed_seconds=clip.billed_seconds,
                                   check=check)
        move(video, State.SUBMITTING, ctx)
        job = await _submit(provider, clip, video, side, side_path, ctx)
        if job is None:
            return
    await follow(provider, job, video, side, ctx, out_dir=out_dir, timeout=timeout, poll_s=poll_s)


# A receipt's word for a submit whose answer was lost (``SUBMIT_LOST``): no job id, maybe a paid job.
LOST = "lost"


async def _submit(provider: VideoProvider, clip: ClipPlan, video: Video, side: Sidecar, side_path: Path,
                  ctx: CallContext) -> JobRef | None:
    """Submit once and write the receipt. An interrupt while the provider answers does not drop the answer:
    the submit finishes (shielded, in the background) and its job id still goes into the sidecar, so the
    job stays resumable; the clip shows as pending meanwhile."""
    task = asyncio.ensure_future(provider.submit(clip.request))

    def keep_receipt(done: asyncio.Future[JobRef]) -> None:
        if done.cancelled():
            return
        if (error := done.exception()) is not None:
            if video.state is State.PENDING:  # an interrupted submit that then failed: nothing was paid
                kind = error.kind if isinstance(error, ProviderError) else None
                move(video, State.FAILED, ctx, error=f"the interrupted submit failed: {error}", kind=kind)
            return
        write_receipt(video, side, done.result())  # before anything else: the job id is the receipt

    task.add_done_callback(keep_receipt)
    try:
        return await asyncio.shield(task)
    except ProviderError as exc:
        if exc.code == SUBMIT_LOST:
            # The request left; its answer did not. Keep a receipt that says so: the same request again must not
            # pay for a second job the user cannot see is running.
            side.status, side.error, side.finished_at = LOST, str(exc), sidecar.now_iso()
            sidecar.write(side_path, side)
        _failed(video, exc, ctx)
        return None
    except asyncio.CancelledError:
        # Until the answer is in, another run of this request waits for it rather than paying again.
        _IN_FLIGHT[side_path] = task
        _SUBMITTING.add(task)
        task.add_done_callback(_SUBMITTING.discard)
        task.add_done_callback(lambda _: _IN_FLIGHT.pop(side_path, None) if _IN_FLIGHT.get(side_path) is task
                               else None)
        move(video, State.PENDING, ctx, note="interrupted while the provider was accepting the job; its id is "
                                             "saved when the answer arrives")
        raise


async def wait_for_other_run(other: asyncio.Future[Any], video: Video, ctx: CallContext) -> None:
    """Another run in this kernel is making this same clip (a --background cell, a resume): wait for it, so
    that afterwards its receipt is read and reused or re-attached to, never paid for twice. Our own
    cancellation (Ctrl-C) still stops us; the other run's fate does not."""
    if other.done():
        return
    video.notes.append("waited for another run of this same request")
    move(video, State.QUEUED, ctx)
    me = asyncio.current_task()
    try:
        await asyncio.shield(other)
    except asyncio.CancelledError:
        if me is not None and me.cancelling():
            raise
    except Exception:  # its failure is its own; ours starts from its receipt, if any
        pass


def in_flight(side_path: Path) -> asyncio.Future[Any] | None:
    """The task of this kernel that is making the clip of ``side_path`` now, if any."""
    task = _IN_FLIGHT.get(side_path)
    return task if task is not None and not task.done() else None


def _free_stem(out_dir: Path, stem: str) -> Path:
    """``stem.json``, or the first ``stem-2.json``, ``stem-3.json``... that no earlier run wrote and no
    running one is writing."""
    path, n = out_dir / f"{stem}.json", 1
    while path.exists() or path.with_suffix(".mp4").exists() or in_flight(path) is not None:
        n += 1
        path = out_dir / f"{stem}-{n}.json"
    return path


async def follow(provider: VideoProvider, job: JobRef, video: Video, side: Sidecar, ctx: CallContext, *,
                 out_dir: Path, timeout: float, poll_s: float | None) -> None:
    """Poll ``job`` until it ends (or ``timeout`` s pass), then download its clip and measure it."""
    assert video.sidecar is not None
    video.job_id = video.record.request_id = job.job_id
    started = video.started if video.started is not None else time.monotonic()
    video.started = started
    interval = poll_s or provider.poll_interval
    cap = poll_s or max(POLL_CAP_S, provider.poll_interval)
    errors = 0
    prewarm_analyser()  # the job is submitted: its clip's analyser starts while it runs
    try:
        while True:
            try:
                # A poll that never answers (a hung connection) stops the wait like any other: bounded by what
                # is left of it (at least POLL_GRACE_S), the job stays resumable.
                async with asyncio.timeout(max(timeout - (time.monotonic() - started), POLL_GRACE_S)):
                    status = await provider.poll(job)
            except TimeoutError:
                move(video, State.PENDING, ctx, side=side,
                     note=f"the provider did not answer a poll within the {timeout:g} s wait")
                return
            except ProviderError as exc:
                errors += 1
                if exc.status == 404:
                    # Results are kept for days, not forever (Veo: 2 days): the job is gone, not pending.
                    move(video, State.FAILED, ctx, side=side,
                         error=f"the provider no longer knows this job (expired or deleted): {exc}")
                    return
                if not _worth_polling_again(exc) or errors >= MAX_POLL_ERRORS:
                    move(video, State.PENDING, ctx, side=side, note=f"could not read the job's state ({exc})")
                    return
                await asyncio.sleep(exc.retry_after if exc.retry_after is not None else _jitter(interval))
                continue
            errors = 0
            video.polls = side.polls = video.polls + 1
            video.progress = status.progress
            if status.final:
                break
            move(video, from_job(status.state), ctx, side=side)
            if time.monotonic() - started >= timeout:
                move(video, State.PENDING, ctx, side=side, note=f"not finished after {timeout:g} s")
                return
            await asyncio.sleep(_jitter(interval))
            interval = min(cap, interval * POLL_GROWTH)
        await _finish(provider, status, video, side, ctx, out_dir, timeout=timeout)
    except asyncio.CancelledError:
        if video.state.is_running:
            move(video, State.PENDING, ctx, side=side, note="interrupted")
        raise


async def _finish(provider: VideoProvider, status: JobStatus, video: Video, side: Sidecar, ctx: CallContext,
                  out_dir: Path, *, timeout: float) -> None:
    assert video.sidecar is not None
    charged = status.usage.cost_usd if status.usage is not None else None
    if charged is not None and status.state != "succeeded":
        # A job that ended without a clip may still have been billed (Runway's moderation, Omni stopped short):
        # the provider's own figure is what it cost, and the ledger says so.
        video.record.cost_usd, video.record.cost_source = charged, PROVIDER_COST
    if status.state == "filtered":
        move(video, State.FILTERED, ctx, side=side, reason=status.reason)
        return
    if status.state == "failed":
        error = status.error
        move(video, State.FAILED, ctx, side=side,
             error=str(error) if error is not None else "the job failed (no reason given)")
        return
    if status.state == "cancelled":
        move(video, State.CANCELLED, ctx, side=side, error="cancelled at the provider")
        return
    if not status.clips:
        move(video, State.FAILED, ctx, side=side, error="the job succeeded but returned no clip")
        return
    # The URI the provider named, not where a download is redirected (that host holds no job, and Veo takes
    # only its own URIs back for --extend); never a key in it.
    uri = status.clips[0].uri
    # A signed URL that works for anyone until it expires (keep_uri False) is never written down.
    side.clip_uri = sidecar.public_uri(uri) if uri and status.clips[0].keep_uri else None
    # Paid for: the receipt says "succeeded", so from here on a resume downloads it again if need be.
    move(video, State.DOWNLOADING, ctx, side=side)
    path = video.sidecar.with_suffix(".mp4")
    try:
        # A download gets the whole wait (-t) again, and no longer: a host that drips bytes slower than it ever
        # times out on would otherwise hold the cell for good. The clip is paid and ready: pending, resumable.
        async with asyncio.timeout(max(timeout, POLL_GRACE_S)):
            await provider.download(status.clips[0], path)
    except TimeoutError:
        move(video, State.PENDING, ctx, side=side,
             note=f"the clip is ready but its download did not finish within {timeout:g} s")
        return
    except (ProviderError, OSError) as exc:  # OSError: the disk (full, permissions), not the provider
        move(video, State.PENDING, ctx, side=side,
             note=f"the clip is ready but its download did not complete ({exc})")
        return
    video.path, side.file = path, path.name
    await _measure(video, out_dir)
    side.seconds, side.resolution = video.seconds, video.resolution
    _price(video, side, ctx, charged)
    move(video, State.DONE, ctx, side=side)


async def _measure(video: Video, out_dir: Path) -> None:
    """Duration, resolution and a filmstrip of keyframes, from the file itself (PyAV in a child process)."""
    from .analyse import AnalysisFailed, analyse

    assert video.path is not None
    try:
        analysis = await analyse(video.path, out_dir / KEYFRAMES_DIR / video.path.stem)
    except AnalysisFailed as exc:
        video.notes.append(f"could not analyse the clip: {exc.message}")
        return
    video.seconds = round(analysis.duration_s, 2) if analysis.duration_s else None
    video.resolution = f"{analysis.width}x{analysis.height}" if analysis.width else None
    video.keyframes = tuple(Path(p) for p in analysis.keyframes)
    video.analysis = analysis


def _price(video: Video, side: Sidecar, ctx: CallContext, provider_cost: float | None = None) -> None:
    """The saved clip's usage and cost on its record: one clip, billed by the seconds ``_billed_seconds`` says.
    The provider's own figure for the job (OpenRouter's ``usage.cost``, Runway's credits), where it reports one,
    wins over any table, kept exactly and marked as the provider's."""
    record = video.record
    record.clips = 1
    record.video_seconds = _billed_seconds(side, video.seconds)
    if provider_cost is not None:
        record.cost_usd, record.cost_source = provider_cost, PROVIDER_COST
        return
    resolution = side.parameters.get("resolution")
    price_record(record, ctx.settings.prices, resolution=resolution if isinstance(resolution, str) else None)


def _failed(video: Video, exc: ProviderError, ctx: CallContext) -> None:
    if isinstance(exc, BlockedError):
        # The provider's safety filter refused the prompt at submission: the clip is filtered (its one word in
        # the header, the ledger and the report), with the provider's words, and not billed; not a failure.
        move(video, State.FILTERED, ctx, reason=exc.message)
        return
    move(video, State.FAILED, ctx, error=str(exc), kind=exc.kind, http_status=exc.status)


def _billed_seconds(side: Sidecar, measured: float | None) -> float | None:
    """The seconds a clip is billed for: an extension's added seconds (not the whole clip it returns), else
    the measured length, else what was asked."""
    billed = side.parameters.get("billed_seconds")
    if isinstance(billed, int | float) and not isinstance(billed, bool):
        return float(billed)
    return measured if measured is not None else video_request_seconds(side)


def _reuse(video: Video, previous: Sidecar, out_dir: Path) -> None:
    """A finished clip of this same request is on disk: show it, pay nothing. Its figures only: the caller
    moves it to done."""
    assert previous.file is not None
    video.reused = True
    video.path = out_dir / previous.file
    video.job_id = video.record.request_id = (previous.job or {}).get("job_id")
    video.seconds, video.resolution = previous.seconds, previous.resolution
    video.keyframes = tuple(sorted((out_dir / KEYFRAMES_DIR / video.path.stem).glob("*.jpg")))
    video.notes.append("made by an earlier run of the same request: shown again, not paid again "
                       "(--new pays for a fresh clip)")
    record = video.record
    record.clips, record.video_seconds = 1, _billed_seconds(previous, previous.seconds)
    record.cost_usd, record.cost_source = 0.0, f"earlier run (cost then: {_money(previous.cost_usd)})"
    record.latency_s = 0.0


def show_receipt(video: Video, side: Sidecar, out_dir: Path, ctx: CallContext) -> None:
    """Show a job another run finished: its clip (ok, nothing paid again) or its state (pending if it is still
    open). The receipt is that run's: it is not written."""
    if side.status == "ok" and side.file and (out_dir / side.file).is_file():
        _reuse(video, side, out_dir)
        video.notes[-1] = "made by another run of this kernel: shown here, not paid again"
        video.started = None  # nothing was waited for here: its record keeps the 0 s of a reuse
        move(video, State.DONE, ctx)
        return
    state = sidecar.state_of(side)
    move(video, state, ctx, error=side.error, reason=side.reason, note=side.pending_note)


def _worth_polling_again(exc: ProviderError) -> bool:
    """Rate limits, server errors and lost connections pass; a 4xx (the job is unknown, the key was revoked)
    will not fix itself by asking again."""
    return exc.retryable or exc.kind in ("timeout", "server", "rate_limit")


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.8, 1.2)


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.2f}"


def video_request_seconds(side: Sidecar) -> float | None:
    value = side.parameters.get("seconds")
    return float(value) if isinstance(value, int | float) else None


__all__ = ["KEYFRAMES_DIR", "finish_submits", "follow", "in_flight", "run_clip", "show_receipt", "video_provider",
           "wait_for_other_run"]
