"""A clip's job changes state here and nowhere else: ``move`` updates the clip (``Video``), its call record
and its sidecar together, then tells the listeners, so the three never disagree.

The order is the receipt's first: the sidecar is written before the clip and its record change, so a disk
that refuses the write leaves all three as they were (the job id already in the file stays there), and the
error reaches the run. A final state (saved, failed, filtered, cancelled) never changes again: a late event,
such as an interrupted submit that answers after its clip ended, cannot reopen it.

    move(video, State.RUNNING, ctx, side=side, progress="40 %")
    move(video, State.PENDING, ctx, side=side, note="not finished after 600 s")
    write_receipt(video, side, job)    # the provider accepted the job: its id goes into the sidecar now
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..core.events import CallFinished, emit
from ..core.state import State
from . import sidecar
from .events import VideoUpdated

if TYPE_CHECKING:
    from ..calls.call import CallContext
    from ..providers.video.base import JobRef
    from .result import Video
    from .sidecar import Sidecar

log = logging.getLogger("fusion_magic")

# A poll's answer (``providers.video.base.JobState``) as the state of the clip that asked: a finished job
# still has its file to fetch before the clip is done.
_FROM_JOB = {"queued": State.QUEUED, "running": State.RUNNING, "succeeded": State.DOWNLOADING,
             "failed": State.FAILED, "filtered": State.FILTERED, "cancelled": State.CANCELLED}


# A cost the provider reported for the job itself (OpenRouter's usage.cost, Runway's credits): it beats any table.
PROVIDER_COST = "provider"

def from_job(state: str) -> State:
    """The clip's state for a job state a provider reported (an unknown word: still running)."""
    return _FROM_JOB.get(state, State.RUNNING)


def move(video: Video, to: State, ctx: CallContext, *, side: Sidecar | None = None, error: str | None = None,
         kind: str | None = None, http_status: int | None = None, note: str | None = None,
         reason: str | None = None) -> bool:
    """Put ``video`` in state ``to``; False (and nothing changes) when it already ended for good.

    ``error`` (failed, cancelled) and ``kind``/``http_status`` (a provider error's) go to the clip and its
    record; ``note`` is why a pending clip is pending (its record's ``note``: never an error); ``reason`` the
    filter's words. ``side``: the clip's receipt, written whenever its word changes or the clip settles (only
    once it holds a job: before that there is nothing to keep). Listeners hear ``VideoUpdated``, and
    ``CallFinished`` when this run stops waiting for the clip.
    """
    if video.state.is_final:
        if to is not video.state:
            log.debug("fusion_magic: %s is %s already; not moved to %s", video.label, video.state, to)
        return False
    record = video.record
    settled = not to.is_running
    if to is State.FILTERED:
        reason = reason or "no reason given"
    latency = (time.monotonic() - video.started) if settled and video.started is not None else record.latency_s
    # The documented rule: a filtered clip is not charged, unless the provider says what it charged (Runway keeps
    # the credits of a task its input moderation refused): its own figure stands.
    unbilled = to is State.FILTERED and record.cost_source != PROVIDER_COST
    cost = (0.0, "not billed (filtered by the provider)") if unbilled else (record.cost_usd, record.cost_source)
    if side is not None and video.sidecar is not None and side.job is not None:
        word = sidecar.word_for(to, side.status)
        if word != side.status or settled:
            side.status = word
            side.error = error if to in (State.FAILED, State.CANCELLED) else None
            side.reason = reason if to is State.FILTERED else side.reason
            side.note = note if to is State.PENDING else None
            if to.is_final:
                side.finished_at = sidecar.now_iso()
                (side.cost_usd, side.cost_source), side.latency_s = cost, latency
            sidecar.write(video.sidecar, side)  # first: a refused write changes nothing else
    video.state = record.state = to
    record.failure = kind if to is State.FAILED else None
    record.latency_s = latency
    record.cost_usd, record.cost_source = cost
    if to in (State.FAILED, State.CANCELLED):
        video.error = record.error = error
        if http_status is not None:
            record.http_status = http_status
    elif to is State.FILTERED:
        video.reason = record.error = reason
    elif to is State.PENDING:
        video.error, record.error, record.note = None, None, note
    if to is not State.PENDING:
        record.note = None
    emit(ctx.listeners, VideoUpdated(video))
    if settled:
        emit(ctx.listeners, CallFinished(record))
    return True


def write_receipt(video: Video, side: Sidecar, job: JobRef) -> None:
    """The provider accepted ``job``: its id goes into the sidecar before anything else happens (the receipt
    of a paid job). The clip's own state is not touched: it may be submitting, or pending already if the run
    was interrupted while the provider answered; either way the job is open, and resumable. A receipt that
    cannot be written is said in the log and in the clip's notes, with the id to keep."""
    assert video.sidecar is not None
    side.job, side.status, side.submitted_at = job.as_dict(), "submitted", sidecar.now_iso()
    try:
        sidecar.write(video.sidecar, side)
    except OSError as exc:
        log.warning("fusion_magic: job %s of %s was accepted but its receipt %s could not be written (%s)",
                    job.job_id, video.model, video.sidecar, exc)
        video.notes.append(f"job {job.job_id} was accepted, but its receipt could not be written ({exc}); "
                           "keep this id to fetch the clip")


__all__ = ["PROVIDER_COST", "from_job", "move", "write_receipt"]
