"""Progress lines for frontends without widgets (terminal IPython, scripts): one line per meaningful change
of a clip (submitted, a new state, saved, failed, scored) and per finished answer or check, never one per
poll. Model text is not printed here; the final report is.

    listeners.append(ProgressPrinter(sys.stderr))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from ..core.events import CallFinished, CallStarted, EngineEvent
from ..core.state import State
from ..present.ledger_table import plain
from ..present.wording import clip_word, filtered_words, pending_words, status_word
from .events import VideoRunFinished, VideoRunStarted, VideoUpdated
from .frames_check import CHECKER, MEASURES

if TYPE_CHECKING:
    from .result import Video

__all__ = ["ProgressPrinter"]


class ProgressPrinter:
    """A listener that writes a short line per change worth knowing. It goes quiet at
    ``VideoRunFinished``: a call ending after the cell would otherwise print into whichever cell runs then.

        printer = ProgressPrinter(sys.stderr)
        fusion_magic.video("a paper boat", listeners=[printer])
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.finished = False
        self._seen: dict[str, tuple[str, str | None, float | None]] = {}  # label -> state, job id, score

    def __call__(self, event: EngineEvent) -> None:
        if self.finished:
            return
        lines: list[str] = []
        if isinstance(event, VideoRunFinished):
            self.finished = True
            if event.stopped:
                lines.append("stopped: what had arrived is kept")
        elif isinstance(event, VideoRunStarted):
            lines += _started(event)
        elif isinstance(event, VideoUpdated):
            lines += self._changes(event.video)
        elif isinstance(event, CallStarted) and event.response.role == "judge":
            lines.append(f"  fusing the answers with {event.response.model}...")
        elif isinstance(event, CallFinished) and event.response.role in ("understand", "check", "judge"):
            r = event.response
            secs = f" in {r.latency_s:.1f}s" if r.latency_s is not None else ""
            role = "spec check" if r.role == "check" and r.model == CHECKER else r.role
            lines.append(f"  {role} {r.model}: {status_word(r)}{secs}")
        for line in lines:
            print(plain(line), file=self.stream, flush=True)

    def _changes(self, v: Video) -> list[str]:
        state, job, score = self._seen.get(v.label, ("planned", None, None))
        self._seen[v.label] = (v.status, v.job_id, v.score)
        lines = []
        if v.job_id and v.job_id != job:
            again = v.reused or v.reattached
            lines.append(f"  {v.label}: {'re-attached to' if again else 'submitted,'} job {v.job_id}"
                         + (" (not paid again)" if again else ""))
        if v.status != state:
            lines.append(f"  {v.label}: {_state_line(v)}")
        words = v.check_words()
        if words is not None and v.score != score:
            lines.append(f"  {v.label}: {words}" + (f" ({v.best_words})" if v.best else ""))
        return lines


def _started(event: VideoRunStarted) -> list[str]:
    lines = []
    if event.videos:
        models = ", ".join(dict.fromkeys(v.model for v in event.videos))
        n = len(event.videos)
        verb = "resuming" if event.resumed else "generating"
        lines.append(f"{verb} {n} clip{'s' if n != 1 else ''} with {models}...")
    if event.understand:
        about = f" about {event.source}" if event.source else ""
        lines.append(f"asking {', '.join(event.understand)}{about}...")
    if event.check == CHECKER:
        lines.append(f"each clip will be checked by {event.check}: {MEASURES}")
    elif event.check:
        lines.append(f"each clip will be checked by {event.check}")
    return lines


def _state_line(v: Video) -> str:
    state = v.state
    if state is State.DONE:
        figures = ", ".join(f for f in (f"{v.seconds:.1f} s" if v.seconds is not None else "", v.resolution or "") if f)
        return f"{clip_word(state)} {v.path}" + (f" ({figures})" if figures else "")
    if state is State.FILTERED:
        return filtered_words(v.reason)
    if state is State.PENDING:
        # Still at the provider and paid for: pending, with why we stopped waiting as a note, never an error.
        return f"{clip_word(state)}: {pending_words(v.note)} (job {v.job_id or '?'})"
    if state in (State.FAILED, State.CANCELLED) and v.error:
        return f"{clip_word(state)}: {v.error}"
    return clip_word(state)
