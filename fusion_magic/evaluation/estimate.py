"""What an evaluation will cost before any call, live and through the batch APIs side by side (``%fuse eval
--estimate``, ``estimate_evaluation``).

Each strategy's calls are projected per question as ``%%fuse --estimate`` projects one run (prompt tokens as
characters / 4, output at each call's cap: an upper bound), over every question (or an even sample of 200 of a
larger set, scaled up, and the text says so), times the repeats. The batch column prices the calls whose
provider has a batch API at its batch rate (``BatchAPI.price_factor``) and the others (the local model, custom
endpoints) live. Scoring calls (a rubric judge) are not included.

    est = estimate_evaluation(plan)
    print(est); est.frame
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..calls.call import Target
from ..calls.requests import output_cap
from ..core.pricing import approx_tokens
from ..fusion.estimate import call_row, estimate
from ..fusion.pool import Member
from ..fusion.requests import member_request
from ..present.estimate import money
from ..providers.batch import batch_api_for
from ..providers.chat.local.fewshot import build_prompt
from .engine import EvalPlan, instruction_for
from .strategies import Strategy

if TYPE_CHECKING:
    import pandas as pd

SAMPLE = 200  # questions a projection reads; a larger set is sampled evenly and scaled


@dataclass
class EvalEstimate:
    """One row per strategy: calls, live cost and batch cost (None: a price is unknown), and what was counted."""

    rows: list[dict[str, object]]
    questions: int
    sampled: int
    repeats: int

    @property
    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows)

    @property
    def total_live_usd(self) -> float | None:
        return _sum(r["live_usd"] for r in self.rows)

    @property
    def total_batch_usd(self) -> float | None:
        return _sum(r["batch_usd"] for r in self.rows)

    def __str__(self) -> str:
        head = ("strategy", "calls", "live", "batch", "batched calls")
        cells = [(str(r["strategy"]), f"{r['calls']:,}", money(_usd(r["live_usd"])), money(_usd(r["batch_usd"])),
                  f"{r['batched_share']:.0%}") for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
        line = lambda v: "  ".join(x.ljust(w) if i == 0 else x.rjust(w)  # noqa: E731
                                   for i, (x, w) in enumerate(zip(v, widths, strict=True)))
        sample = (f"; {self.sampled} of {self.questions} questions read, scaled up" if self.sampled < self.questions
                  else "")
        lines = [f"Projected cost of {self.questions:,} questions x {self.repeats} repeat(s) (nothing sent; output at "
                 f"each call's cap, so an upper bound{sample}):", line(head), "  ".join("-" * w for w in widths),
                 *(line(c) for c in cells),
                 f"Total: {money(self.total_live_usd)} live, {money(self.total_batch_usd)} in batches "
                 "(calls without a batch API priced live); scoring calls not included."]
        return "\n".join(lines)

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(str(self))  # type: ignore[attr-defined]


def estimate_evaluation(plan: EvalPlan) -> EvalEstimate:
    """Project every strategy's calls over the plan's questions, live and at the batch rates, sending nothing."""
    questions = list(plan.questions)
    # Evenly spread over the whole set (the first 200 of 300 would be a third of it unread).
    sample = [questions[i * len(questions) // SAMPLE] for i in range(SAMPLE)] if len(questions) > SAMPLE \
        else questions
    scale = len(questions) / len(sample) * plan.repeats
    rows = []
    for s in plan.strategies:
        live: float | None = 0.0
        batch: float | None = 0.0
        calls = batched = 0
        for q in sample:
            for row, target in _calls(s, q.prompt(instruction_for(s, plan.instruction)), plan):
                n = int(row["calls"])  # type: ignore[call-overload]
                cost = row["est_cost_usd"]
                api = None if target is None else batch_api_for(target.spec, target.endpoint)
                calls += n
                batched += n if api is not None else 0
                if not isinstance(cost, float):
                    live = batch = None
                    continue
                live = None if live is None else live + cost
                batch = None if batch is None else batch + cost * (api.price_factor if api is not None else 1.0)
        rows.append({"strategy": s.name, "calls": round(calls * scale),
                     "live_usd": None if live is None else live * scale,
                     "batch_usd": None if batch is None else batch * scale,
                     "batched_share": batched / calls if calls else 0.0})
    return EvalEstimate(rows, len(questions), len(sample), plan.repeats)


def _calls(s: Strategy, prompt: str, plan: EvalPlan) -> list[tuple[dict[str, object], Target | None]]:
    """The projected rows of one question's calls, each with the model it goes to."""
    if s.fusion is not None:
        targets = {t.model_id: t for t in s.targets}
        return [(row, targets.get(str(row["model"]))) for row in estimate(replace(s.fusion, prompt=prompt)).rows]
    assert s.target is not None
    request = member_request(Member(s.target, s.name), prompt, s.options)
    text = approx_tokens(build_prompt(request)) if s.target.is_local else approx_tokens(
        "\n".join(m.text for m in request.messages))
    out = output_cap(s.target, s.options.max_tokens)
    return [(call_row(s.target.model_id, "single", 1, text, out, plan.settings.prices), s.target)]


def _usd(value: object) -> float | None:
    return value if isinstance(value, float) else None


def _sum(values: object) -> float | None:
    total = 0.0
    for v in values:  # type: ignore[attr-defined]
        if not isinstance(v, float):
            return None
        total += v
    return total


__all__ = ["EvalEstimate", "estimate_evaluation"]
