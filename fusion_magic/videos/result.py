"""A ``%%video`` run's result: each generated clip (``Video``) and the whole run (``VideoResult``), with the
answers to a question about a video. Plain dataclasses: no network code, no IPython.

    r = fusion_magic.video("a paper boat on a rainy street", models=["gemini:gemini-omni-1.2-flash"])
    r.best.path, r.ledger, r.degraded
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..calls.job import RunResult
from ..core.ledger import ledger_frame
from ..core.record import CallRecord
from ..core.state import State, StatusWord, to_wire
from ..present.paths import shown_path
from ..present.shown_once import ShownOnce
from ..present.wording import FILTER_WORDS

if TYPE_CHECKING:
    import pandas as pd

    from ..judge.verdict import Verdict

# A clip's life, as ``status`` words (``core.state.State``: "ok" is done). "pending": the job still runs at
# the provider but we stopped waiting (a timeout, an interrupt): its sidecar keeps the job id, and
# ``%video resume`` (or the same cell again) fetches it without paying twice. The last five end this run's wait.
_CLIP_STATES = (State.PLANNED, State.SUBMITTING, State.QUEUED, State.RUNNING, State.DOWNLOADING,
                State.DONE, State.FAILED, State.FILTERED, State.CANCELLED, State.PENDING)
VIDEO_STATES = tuple(to_wire(s) for s in _CLIP_STATES)
FINAL_VIDEO_STATES = frozenset(to_wire(s) for s in _CLIP_STATES if not s.is_running)


@dataclass
class Video:
    """One clip asked of one model: where its job is, and once done, the file and its figures.

    ``state`` is where its job stands (``core.state.State``; only ``videos.state.move`` changes it) and
    ``status`` the same as one of ``VIDEO_STATES``; ``note`` says why a pending clip is pending. ``seconds``
    and ``resolution`` are measured on the saved file (``"1280x720"``); ``score`` (0-10) and ``score_reasons``
    come from ``--check``. A model's check scores how well the clip matches the prompt; ``--check local:frames``
    measures the technical spec instead, and then ``spec`` holds (checks passed, checks made) and ``score``
    only ranks the clips by their spec. Show a check through ``check_words`` and ``best_words``, which say
    which of the two was measured. ``record`` is the call's ledger row (cost per second of video, latency).
    """

    model: str
    label: str
    prompt: str
    status: StatusWord = StatusWord(State.PLANNED)  # noqa: RUF009 (a descriptor: one per class)
    path: Path | None = None
    sidecar: Path | None = None
    job_id: str | None = None
    seconds: float | None = None
    resolution: str | None = None
    error: str | None = None
    reason: str | None = None  # the provider's words when its safety filter withheld the clip
    progress: str | None = None
    polls: int = 0
    started: float | None = None  # time.monotonic() when it was submitted (or re-attached)
    score: float | None = None
    score_reasons: str = ""
    spec: tuple[int, int] | None = None  # --check local:frames: (checks passed, checks made); None: a model's score
    best: bool = False
    reused: bool = False  # found finished by an earlier run of the same cell: nothing was paid again
    reattached: bool = False  # following a job an earlier run submitted (not a new submission)
    keyframes: tuple[Path, ...] = ()
    analysis: Any = None  # the saved file's Analysis (video/analyse.py), for --check local:frames
    notes: list[str] = field(default_factory=list)
    record: CallRecord = field(default_factory=lambda: CallRecord(model="", role="generate", status=State.PLANNED))
    state: State = field(default=State.PLANNED, init=False, repr=False)  # what ``status`` reads and writes

    def __post_init__(self) -> None:
        if not self.record.model:  # the default record: it starts where its clip does
            self.record.state = self.state

    @property
    def ok(self) -> bool:
        return self.state is State.DONE

    @property
    def final(self) -> bool:
        """This run waits for it no longer: saved, failed, filtered, cancelled, or pending at the provider."""
        return not self.state.is_running

    @property
    def note(self) -> str | None:
        """Why a pending clip is pending ("not finished after 600 s"): a note, never an error."""
        return self.record.note

    @property
    def cost_usd(self) -> float | None:
        return self.record.cost_usd

    @property
    def latency_s(self) -> float | None:
        return self.record.latency_s

    def check_words(self) -> str | None:
        """What the check found, named after what it measured: ``"score 7/10"`` (a model's match to the
        prompt) or ``"spec 5/6 checks passed"`` (local:frames); None before a check gave a result."""
        if self.spec is not None:
            passed, made = self.spec
            return f"spec {passed}/{made} checks passed"
        return None if self.score is None else f"score {self.score:g}/10"

    @property
    def best_words(self) -> str:
        """The mark of the clip the check ranked first: "best spec" for a spec check, which never judged
        the content, else "best"."""
        return "best spec" if self.spec is not None else "best"

    @property
    def reasons_label(self) -> str:
        """What the reasons are called: "spec checks" (local:frames' ✓/✗ lines) or "check" (a model's)."""
        return "spec checks" if self.spec is not None else "check"

    def describe(self) -> str:
        """One line: model, state, file, figures."""
        parts = [f"[{self.status}] {self.model}"]
        if self.path is not None and self.ok:
            parts.append(str(shown_path(self.path)))
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f} s")
        if self.resolution:
            parts.append(self.resolution)
        words = self.check_words()
        if words is not None:
            parts.append(words + (f" ({self.best_words})" if self.best else ""))
        if self.cost_usd is not None:
            parts.append(f"${self.cost_usd:.2f}")
        if self.reason:
            parts.append(f"{FILTER_WORDS}: {self.reason}")
        elif self.error:
            parts.append(self.error)
        return " · ".join(parts)


@dataclass
class VideoResult(ShownOnce, RunResult):
    """A ``%%video`` run: the clips (``videos``), the answer to a question about a video (``answer``, fused
    by the judge when several models answered), the checks, and the ledger of every call.

        r.best          # the clip --check ranked first (None without a check): by its match to the prompt,
                        # or with --check local:frames by its technical spec (then r.best.spec is set)
        r.answer        # --understand: the (fused) answer
        r.ledger        # one row per call: generation billed per second of video, questions per token
    """

    prompt: str
    videos: list[Video] = field(default_factory=list)
    answers: list[CallRecord] = field(default_factory=list)  # one per understanding model
    answer: str | None = None
    verdict: Verdict | None = None
    judge_calls: list[CallRecord] = field(default_factory=list)
    checks: list[CallRecord] = field(default_factory=list)
    source: str | None = None  # --understand: the file or URL asked about
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    analysis: Any = None  # local:frames: the Analysis of the --understand file
    run_id: str | None = field(default=None, compare=False)  # this run in the run log (%fuse history)
    _shown_live: bool = field(default=False, repr=False)

    @property
    def best(self) -> Video | None:
        """The clip marked best by ``--check`` (highest score among finished clips), else None. After
        ``--check local:frames`` that is the best spec (``best.spec`` is set), not the best content."""
        return next((v for v in self.videos if v.best), None)

    @property
    def pending(self) -> list[Video]:
        """Clips whose job still runs at the provider (``%video resume`` fetches them)."""
        return [v for v in self.videos if v.state is State.PENDING]

    @property
    def calls(self) -> list[CallRecord]:
        """Every call, in start order: generations, answers, checks, judge."""
        records = [v.record for v in self.videos if v.record.call_id]
        return sorted([*records, *self.answers, *self.checks, *self.judge_calls], key=lambda r: r.call_id)

    @property
    def ledger(self) -> pd.DataFrame:
        """One row per call with its cost and latency."""
        return ledger_frame(self.calls)

    @property
    def degraded(self) -> bool:
        """True when any clip did not arrive (failed, filtered, still pending) or any answer or check failed."""
        return (any(not v.ok for v in self.videos)
                or any(not r.ok for r in [*self.answers, *self.judge_calls]) or bool(self.failed_checks)
                or (self.verdict is not None and self.verdict.fallback))

    @property
    def failed_checks(self) -> list[CallRecord]:
        """Checks that failed and were not made good by a later check of the same clip (a check that could
        not continue Omni's interaction is retried with the clip sent; only a failed retry counts)."""
        scored = {r.label for r in self.checks if r.ok}
        return [r for r in self.checks if not r.ok and r.label not in scored]

    def summary(self) -> str:
        """A short deterministic line (no timings, no model text): safe for nbval to compare."""
        parts = []
        if self.videos:
            parts.append(f"clips={sum(v.ok for v in self.videos)}/{len(self.videos)}")
        if self.answers or self.analysis is not None:
            parts.append(f"answers={sum(r.ok for r in self.answers)}")
        if self.best is not None:
            parts.append(f"{self.best.best_words.replace(' ', '-')}={self.best.model}")
        parts.append("degraded" if self.degraded else "ok")
        return f"<VideoResult {' '.join(parts)}>"

    def to_text(self) -> str:
        """The run as plain text, as shown in a terminal."""
        from .report import text_report

        return text_report(self)

    def to_html(self) -> str:
        """The run as safe HTML (the static report a saved notebook shows)."""
        from .report import html_report

        return html_report(self)


__all__ = ["FINAL_VIDEO_STATES", "VIDEO_STATES", "Video", "VideoResult"]
