"""An evaluation's result: one row per question x strategy x repeat, a summary per strategy, a plot.

    r = fusion_magic.evaluate("questions.csv", pool=[...], strategies=["single", "self:5", "best-of"])
    r.summary        # strategy, n, accuracy with its 95 % Wilson interval, cost, latency, calls
    r.rows           # every answer, scored
    r.plot()         # accuracy against cost, one point per strategy (the ``plot`` extra: matplotlib)

Costs are what each strategy costs: a call answered from the cache counts at the cost it was recorded
with (``paid_usd`` is what this run paid). Latency is averaged over rows that called a model, since a
replayed row takes no time. Scoring calls (the rubric judge) are kept apart: they are the evaluation's
cost, not the strategy's. Plain data: no network code, no IPython.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..calls.batch import BatchTally, BatchUpdate
from ..calls.job import RunResult
from ..core.ledger import ledger_frame
from ..core.record import Response
from ..present.ledger_table import plain, wrap
from ..present.sanitize import escape_text
from .data import Question

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile


ROW_COLUMNS = [
    "question_id", "topic", "kind", "strategy", "repeat", "answer", "extracted", "reference", "scorer", "correct",
    "why", "cost_usd", "paid_usd", "latency_s", "calls", "cached", "scoring_cost_usd", "error", "note",
]
SUMMARY_COLUMNS = [
    "strategy", "n", "correct", "accuracy", "ci_low", "ci_high", "total_cost_usd", "mean_cost_usd",
    "mean_latency_s", "calls", "failed", "unscorable", "unscorable_rate", "via",
]


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (95 % by default); NaN for n = 0.
    Unlike p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and is not empty at 0 or n successes."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n successes one bound is exactly 0 or 1; rounding would leave it a hair inside.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def strategy_cost(r: Response) -> float | None:
    """What a call costs the strategy: its price, or for a call replayed from the cache the cost it was
    recorded with; None when unknown."""
    if r.cost_source.startswith("cache"):
        return r.recorded_cost_usd
    return r.cost_usd


def _total(values: Iterable[float | None]) -> float | None:
    """A sum that is unknown (None) as soon as one part is: a cost is never silently 0."""
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


@dataclass
class EvalRow:
    """One question answered by one strategy in one repeat, and its score.

    ``correct`` is True (right), False (wrong) or None (unscorable: no final value could be read with
    confidence, or the judge that scores it failed); ``why`` says why it is wrong or unscorable, and
    ``scorer`` which scorer read it. ``calls`` are the strategy's calls; ``scoring_calls`` the judge's.
    """

    question: Question
    strategy: str
    repeat: int
    answer: str
    correct: bool | None
    extracted: str | None = None
    why: str | None = None
    scorer: str = "match"
    calls: list[Response] = field(default_factory=list)
    scoring_calls: list[Response] = field(default_factory=list)
    latency_s: float | None = None
    error: str | None = None
    note: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return self.question.id, self.strategy, self.repeat

    @property
    def cost_usd(self) -> float | None:
        """What this answer costs the strategy (recorded costs for replayed calls); None if any is unknown."""
        return _total(strategy_cost(r) for r in self.calls)

    @property
    def paid_usd(self) -> float | None:
        """What this run paid for the answer (0 for replayed calls)."""
        return _total(r.cost_usd for r in self.calls)

    @property
    def scoring_cost_usd(self) -> float | None:
        return _total(strategy_cost(r) for r in self.scoring_calls)

    @property
    def cached(self) -> bool:
        """Every call of the answer came from the cache (its latency says nothing of the strategy)."""
        return bool(self.calls) and all(r.cost_source.startswith("cache") for r in self.calls)


@dataclass
class EvalResult(RunResult):
    """Every finished row of an evaluation. Filled in place while it runs, so an interrupted run keeps its
    finished rows (``interrupted`` is then True); run the same plan again with the cache on to resume.

        r.summary; r.rows; r.plot(); print(r.to_text())
    """

    questions: list[Question]
    strategies: list[str]
    repeats: int
    judge: str
    entries: list[EvalRow] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    run_id: str | None = field(default=None, compare=False)  # this run in the run log (%fuse history)
    # A batch evaluation's: what went through batches and what ran live, and every batch as last reported.
    batch: BatchTally | None = field(default=None, compare=False)
    batches: list[BatchUpdate] = field(default_factory=list, compare=False)

    @property
    def total(self) -> int:
        """Rows the plan asks for: questions x strategies x repeats."""
        return len(self.questions) * len(self.strategies) * self.repeats

    @property
    def degraded(self) -> bool:
        """True when a strategy failed on a row (scored wrong) or a scoring call failed."""
        return any(e.error is not None or any(not r.ok for r in e.scoring_calls) for e in self.entries)

    def _ordered(self) -> list[EvalRow]:
        q_at = {q.id: i for i, q in enumerate(self.questions)}
        s_at = {s: i for i, s in enumerate(self.strategies)}
        return sorted(self.entries, key=lambda e: (q_at.get(e.question.id, len(q_at)),
                                                    s_at.get(e.strategy, len(s_at)), e.repeat))

    @property
    def rows(self) -> pd.DataFrame:
        """One row per finished answer: ``ROW_COLUMNS`` (unknown figures are <NA>, never 0)."""
        import pandas as pd

        records = [{
            "question_id": e.question.id, "topic": e.question.topic, "kind": e.question.kind,
            "strategy": e.strategy, "repeat": e.repeat, "answer": e.answer, "extracted": e.extracted,
            "reference": e.question.reference if e.question.kind == "closed" else e.question.rubric,
            "scorer": e.scorer, "correct": e.correct, "why": e.why, "cost_usd": e.cost_usd, "paid_usd": e.paid_usd,
            "latency_s": e.latency_s,
            "calls": len(e.calls), "cached": e.cached, "scoring_cost_usd": e.scoring_cost_usd,
            "error": e.error, "note": e.note,
        } for e in self._ordered()]
        frame = pd.DataFrame(records, columns=ROW_COLUMNS)
        return frame.astype({"repeat": "Int64", "correct": "boolean", "cost_usd": "Float64",
                             "paid_usd": "Float64", "latency_s": "Float64", "calls": "Int64",
                             "cached": "bool", "scoring_cost_usd": "Float64"})

    def _summary_records(self) -> list[dict[str, Any]]:
        out = []
        for name in self.strategies:
            rows = [e for e in self.entries if e.strategy == name]
            scored = [e for e in rows if e.correct is not None]
            k = sum(1 for e in scored if e.correct)
            lo, hi = wilson_interval(k, len(scored))
            total = _total(e.cost_usd for e in rows) if rows else None
            timed = [e.latency_s for e in rows if not e.cached and e.latency_s is not None]
            out.append({
                "strategy": name, "n": len(scored), "correct": k,
                "accuracy": k / len(scored) if scored else math.nan, "ci_low": lo, "ci_high": hi,
                "total_cost_usd": total, "mean_cost_usd": None if total is None else total / len(rows),
                "mean_latency_s": sum(timed) / len(timed) if timed else None,
                "calls": sum(len(e.calls) for e in rows),
                "failed": sum(1 for e in rows if e.error is not None),
                "unscorable": len(rows) - len(scored),
                "unscorable_rate": (len(rows) - len(scored)) / len(rows) if rows else math.nan,
                "via": _via([c for e in rows for c in e.calls]),
            })
        return out

    @property
    def summary(self) -> pd.DataFrame:
        """One row per strategy: ``SUMMARY_COLUMNS``. ``accuracy`` and its interval are over the ``n`` scored
        answers (a failed strategy call is scored wrong); the answers that could not be scored are left out of
        it and counted beside it (``unscorable``, ``unscorable_rate``: the rows' ``why`` says why)."""
        import pandas as pd

        frame = pd.DataFrame(self._summary_records(), columns=SUMMARY_COLUMNS)
        return frame.astype({"n": "Int64", "correct": "Int64", "accuracy": "Float64", "ci_low": "Float64",
                             "ci_high": "Float64", "total_cost_usd": "Float64", "mean_cost_usd": "Float64",
                             "mean_latency_s": "Float64", "calls": "Int64", "failed": "Int64",
                             "unscorable": "Int64", "unscorable_rate": "Float64"})

    @property
    def calls(self) -> list[Response]:
        """Every call, strategies' and scorers', in start order."""
        return sorted((r for e in self.entries for r in (*e.calls, *e.scoring_calls)), key=lambda r: r.call_id)

    @property
    def ledger(self) -> pd.DataFrame:
        """One row per call (the fused runs' ledger columns)."""
        return ledger_frame(self.calls)

    @property
    def scoring_cost_usd(self) -> float | None:
        """What scoring the open answers cost (the rubric judge's calls)."""
        return _total(e.scoring_cost_usd for e in self.entries)

    def plot(self) -> Figure:
        """Accuracy (with its 95 % interval) against the mean cost per question, one point per strategy; when
        every call was free (local models) against the mean calls per question instead. Returns a matplotlib
        ``Figure`` that a notebook shows as PNG; ``ConfigError`` when matplotlib is not installed."""
        from ..present.figure import new_figure

        records = self._summary_records()
        shown = [s for s in records if s["n"] and s["mean_cost_usd"] is not None]
        left_out = [s["strategy"] for s in records if s not in shown]
        free = bool(shown) and all(s["mean_cost_usd"] == 0 for s in shown)
        fig = new_figure(figsize=(6.4, 4.2), layout="constrained")
        ax = fig.add_subplot()
        points = []
        for s in shown:
            rows = sum(1 for e in self.entries if e.strategy == s["strategy"])
            points.append((s, s["calls"] / rows if free else s["mean_cost_usd"], s["accuracy"]))
        xs = [x for _, x, _ in points]
        middle = (min(xs) + max(xs)) / 2 if xs else 0.0
        for s, x, y in points:
            ax.errorbar([x], [y], yerr=[[y - s["ci_low"]], [s["ci_high"] - y]], fmt="o", capsize=4)
            label = s["strategy"] if s["via"] == "live" else f"{s['strategy']} ({s['via']})"
            # A label right of a point in the right half ran off the figure (a long model id): it goes left there.
            right = x > middle
            ax.annotate(plain(label), (x, y), textcoords="offset points", xytext=(-6, 4) if right else (6, 4),
                        ha="right" if right else "left", fontsize=8)
        ax.set_xlabel("calls per question (every call was free)" if free else "mean cost per question (USD)")
        ax.set_ylabel("accuracy (95 % Wilson interval)")
        ax.set_ylim(-0.02, 1.02)
        ax.margins(x=0.2)
        title = f"{len(self.questions)} questions, {self.repeats} repeat{'s' if self.repeats != 1 else ''}"
        if left_out:
            title += f"; not shown (no rows or cost unknown): {', '.join(plain(n) for n in left_out)}"
        ax.set_title(title, fontsize=9, wrap=True)
        ax.grid(alpha=0.3)
        return fig

    # ---- text and HTML ---------------------------------------------------------------------------

    def headline(self) -> str:
        """One line: the size of the run and how much of it finished."""
        state = ", interrupted" if self.interrupted else ""
        return (f"Evaluation: {len(self.questions)} questions x {len(self.strategies)} strategies x "
                f"{self.repeats} repeat{'s' if self.repeats != 1 else ''}: {len(self.entries)} of {self.total} "
                f"rows{state}, {self.wall_s:.1f} s")

    def _display_rows(self) -> tuple[list[str], list[list[str]]]:
        headers = ["strategy", "n", "accuracy", "95% CI", "unscorable", "cost $", "$/question", "latency s", "calls",
                   "failed"]
        batched = self.batch is not None
        if batched:
            headers.append("via")  # a live evaluation's table keeps the columns it always had
        rows = []
        for s in self._summary_records():
            rows.append([
                plain(s["strategy"]), str(s["n"]), _fmt(s["accuracy"], ".3f"),
                "-" if s["n"] == 0 else f"{s['ci_low']:.3f}-{s['ci_high']:.3f}",
                f"{s['unscorable']} ({s['unscorable_rate']:.0%})" if s["unscorable"] else "0",
                _fmt(s["total_cost_usd"], ".6f", "?"), _fmt(s["mean_cost_usd"], ".6f", "?"),
                _fmt(s["mean_latency_s"], ".2f"), str(s["calls"]), str(s["failed"]),
                *([s["via"]] if batched else []),
            ])
        return headers, rows

    def _notes(self) -> list[str]:
        notes = list(self.warnings)
        if self.batch is not None:
            notes.extend(batch_notes(self.batch, self.batches))
        scoring = self.scoring_cost_usd
        if any(e.scoring_calls for e in self.entries):
            cost = "unknown" if scoring is None else f"${scoring:.6f}"
            notes.append(f"Scoring the open answers took {sum(len(e.scoring_calls) for e in self.entries)} "
                         f"judge calls ({cost}), not counted in the strategies' cost.")
        if any(e.cached for e in self.entries):
            notes.append("Rows answered from the cache count at their recorded cost; their latency is left out.")
        unscorable = sum(1 for e in self.entries if e.correct is None)
        if unscorable:
            notes.append(f"{unscorable} of {len(self.entries)} answers could not be scored and are left out of the "
                         "accuracy; the rows' 'why' column says why.")
        if self.interrupted:
            notes.append("Interrupted: the figures cover the finished rows only; run again with the cache on "
                         "to resume.")
        return notes

    def to_text(self) -> str:
        """The summary as plain text (a terminal, a saved notebook's text output)."""
        headers, rows = self._display_rows()
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        out = [plain(self.headline()), line(headers), "  ".join("-" * w for w in widths)]
        out.extend(line(r) for r in rows)
        for note in self._notes():
            out.extend(wrap(note, "  "))
        return "\n".join(out)

    def to_markdown(self) -> str:
        """The summary as a Markdown table (every cell escaped)."""
        from ..present.sanitize import escape_markdown

        headers, rows = self._display_rows()
        out = [escape_markdown(self.headline()), "", "| " + " | ".join(headers) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
        out.extend("| " + " | ".join(escape_markdown(c) for c in r) + " |" for r in rows)
        out.extend(["", *(f"- {escape_markdown(n)}" for n in self._notes())])
        return "\n".join(out).rstrip()

    def _repr_html_(self) -> str:
        headers, rows = self._display_rows()
        cell = 'style="padding:2px 8px;text-align:{}"'
        head = "".join(f"<th {cell.format('left' if i == 0 else 'right')}>{escape_text(h)}</th>"
                       for i, h in enumerate(headers))
        body = "".join(
            "<tr>" + "".join(f"<td {cell.format('left' if i == 0 else 'right')}>{escape_text(c)}</td>"
                             for i, c in enumerate(r)) + "</tr>"
            for r in rows
        )
        notes = "".join(f'<p style="font-size:85%"><i>{escape_text(n)}</i></p>' for n in self._notes())
        return (f"<p><b>{escape_text(self.headline())}</b></p>"
                f'<table style="border-collapse:collapse;font-size:90%"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>{notes}")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text())

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (f"<EvalResult {len(self.entries)}/{self.total} rows, {len(self.strategies)} strategies"
                f"{', interrupted' if self.interrupted else ''}>")


def _via(calls: Sequence[Response]) -> str:
    """How a strategy's calls were made: ``batch``, ``live``, or ``batch+live`` (a local seat beside batched
    ones, a request retried live)."""
    batched = sum(1 for c in calls if c.batch_id is not None)
    return "live" if not batched else "batch" if batched == len(calls) else "batch+live"


def batch_notes(tally: BatchTally, batches: Sequence[BatchUpdate]) -> list[str]:
    """What a batch evaluation did, in a few lines: the batches per provider, the requests they took, what ran
    live (no batch API) and what was re-attached, retried live or failed."""
    per: dict[str, int] = {}
    for b in batches:
        per[b.provider] = per.get(b.provider, 0) + 1
    where = ", ".join(f"{name} {n}" for name, n in per.items()) or "none"
    lines = [f"Batch: {len(batches)} batch{'es' if len(batches) != 1 else ''} ({where}); "
             f"{sum(tally.batched.values()):,} requests at the batch rate"
             + (f", {tally.reattached} re-attached from receipts" if tally.reattached else "") + "."]
    if tally.live:
        live = ", ".join(f"{m} {n:,}" for m, n in tally.live.items())
        lines.append(f"Live beside the batches (no batch API): {live}.")
    if tally.failed_requests:
        retried = f", {tally.retried_live:,} asked again live" if tally.retried_live else \
            " (--retry-live asks them again live)"
        lines.append(f"{tally.failed_requests:,} requests failed in their batch{retried}.")
    return lines


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


__all__ = ["ROW_COLUMNS", "SUMMARY_COLUMNS", "EvalResult", "EvalRow", "strategy_cost", "wilson_interval"]
