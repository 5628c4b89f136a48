"""A fused run's result: the whole run (`FusionResult`), with what the judge decided (`Verdict`, from
``judge/``), made of call records (`fusion_magic.core.record.CallRecord`, alias `Response`). Plain dataclasses:
no network code, no IPython.

    f = fusion_magic.fuse("Why is the sky blue?", pool=["local:gemma3-270m"] * 3, judge="vote")
    f.answer, f.verdict, f.ledger
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

# The result renders itself through these; they know result types only as type hints, so this is no circle.
from ..calls.job import RunResult
from ..core.ledger import ledger_frame
from ..core.record import Response
from ..judge.verdict import Verdict
from ..present.shown_once import ShownOnce
from .report import html_report, markdown_report, text_report

if TYPE_CHECKING:
    import pandas as pd

    from ..judge.analysis import JudgeAnalysis


@dataclass
class FusionResult(ShownOnce, RunResult):
    """A fused run: every member's answer, the judge's verdict, the fused answer and the ledger.

        r = fusion_magic.fuse("Why is the sky blue?", pool=["local:gemma3-270m"] * 3, judge="vote")
        print(r.answer); r.ledger
    """

    prompt: str
    mode: str
    judge: str
    pool: list[str]
    responses: list[Response] = field(default_factory=list)
    verdict: Verdict | None = None
    answer: str = ""
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    judge_responses: list[Response] = field(default_factory=list)
    run_id: str | None = field(default=None, compare=False)  # this run in the run log (%fuse history)
    _shown_live: bool = field(default=False, repr=False)

    @property
    def members(self) -> list[Response]:
        """Each member's latest good answer (its last ok debate round), else its last call, in pool order."""
        last: dict[str, Response] = {}
        for r in self.responses:
            # A late answer was not judged: it stays out until a rejudge takes it in (stable summary()).
            if r.label is not None and not r.late and (r.ok or not (r.label in last and last[r.label].ok)):
                last[r.label] = r
        return list(last.values())

    @property
    def failed(self) -> list[Response]:
        """Member calls that ended without a clean answer (late members were not judged and don't count)."""
        return [r for r in self.responses if not r.ok and not r.late and not r.state.is_running]

    @property
    def degraded(self) -> bool:
        """True when any member or the judge failed, or the judge fell back to a vote."""
        judge_failed = any(not r.ok for r in self.judge_responses)
        fell_back = self.verdict is not None and self.verdict.fallback
        return bool(self.failed) or judge_failed or fell_back

    @property
    def analysis(self) -> JudgeAnalysis | None:
        """The judge's structured comparison of the answers (consensus, contradictions, unique points,
        blind spots, failed members), or None when there is none, and ``verdict.notes`` (the report's Judge
        section) says why: under ``-j vote`` the vote is model-free, so no model compared the answers (use
        ``-j MODEL`` for who-said-what); a judge that gave none has its own note; a judge that failed fell back
        to the vote (its reasoning says why).

            r = fusion_magic.fuse("2+2?", pool=pool, judge="vote")
            r.analysis is None; r.verdict.notes   # ["No analysis (who said what): the vote is model-free ..."]
        """
        return self.verdict.analysis if self.verdict is not None else None

    @property
    def position_consistency(self) -> float | None:
        """With ``--orders N``: the share of the judge's orderings of the answers that agree with the verdict's
        pick (1.0: the order never changed its mind); None when fewer than two orderings were judged."""
        return self.verdict.position_consistency if self.verdict is not None else None

    @property
    def calls(self) -> list[Response]:
        """Every call in start order: members (all rounds) and judge."""
        return sorted([*self.responses, *self.judge_responses], key=lambda r: r.call_id)

    @property
    def ledger(self) -> pd.DataFrame:
        """One row per call, cost and latency included."""
        return ledger_frame(self.calls)

    @property
    def n_ok(self) -> int:
        return sum(1 for r in self.members if r.ok)

    def to_markdown(self) -> str:
        """The whole run as Markdown: answer, verdict, each member, the ledger."""
        return markdown_report(self)

    def to_text(self) -> str:
        """The whole run as plain text, as shown in a terminal."""
        return text_report(self)

    def summary(self) -> str:
        """A short deterministic line (no timings, no model text): safe for nbval to compare."""
        state = "degraded" if self.degraded else "ok"
        return (
            f"<FusionResult mode={self.mode} judge={self.judge} "
            f"answers={self.n_ok}/{len(self.pool)} {state}>"
        )

    def to_html(self) -> str:
        """The whole run as safe HTML (the static report a saved notebook shows)."""
        return html_report(self)
