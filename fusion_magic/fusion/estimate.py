"""Projected cost of a run before any call: ``--estimate`` prints it, ``--budget`` enforces it.

Input tokens are estimated as characters / 4 (a common rule of thumb for English) of the text each
call will send: the prompt for HTTP models, the whole few-shot document for the local model (which
wraps even "hi" in about a hundred tokens of examples). Output tokens are each call's ``max_tokens``
cap, so the projection is an upper bound on output. A model without a known price makes the total
unknown, and ``--budget`` then refuses rather than guess.

    est = estimate(plan)
    est.total_usd, est.frame
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..calls.requests import output_cap
from ..core.errors import BudgetError
from ..core.pricing import TABLE_SOURCE, UserPrice, approx_tokens, price_for, table_age_note
from ..present.estimate import CostRow, estimate_text, tokens_counted
from ..providers.chat.local.fewshot import build_prompt
from .engine import FusionPlan
from .pool import Member
from .requests import member_request

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Estimate:
    """Per-call projections and the total (None when any price is unknown)."""

    rows: list[dict[str, object]]
    total_usd: float | None
    unknown: list[str]

    @property
    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows)

    def __str__(self) -> str:
        rows = [CostRow(str(r["role"]), str(r["model"]),
                        tokens_counted(_int(r["calls"]), _int(r["est_input_tokens"]), _int(r["est_output_tokens"])),
                        str(r["price_source"] or ""), _usd(r["est_cost_usd"])) for r in self.rows]
        # A projection priced from an old table says so, where the table priced any of it.
        age = table_age_note() if any(r.source == TABLE_SOURCE for r in rows) else None
        return estimate_text(rows, self.total_usd, basis="output counted at each call's max_tokens cap, so an upper "
                             "bound", price_hint="%config FusionMagics.prices", notes=[age] if age else [])

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(str(self))  # type: ignore[attr-defined]


def estimate(plan: FusionPlan) -> Estimate:
    """Project every call of ``plan`` (members, debate rounds, judge) without making any."""
    options = plan.options
    prices = dict(plan.settings.prices)
    prompt_tokens = approx_tokens(plan.prompt + (options.system or ""))
    rows: list[dict[str, object]] = []
    n_member_calls = options.rounds + 1 if options.mode == "debate" else 1
    total_out = 0
    for m in plan.members:
        out = output_cap(m.target, options.max_tokens)
        total_out += out
        first = _local_input_tokens(plan, m) if m.target.is_local else prompt_tokens
        # A debate round re-sends the question, the member's answer and the others' answers.
        inp = first * n_member_calls + (n_member_calls - 1) * out * len(plan.members)
        rows.append(_row(m.target.model_id, f"member {m.label}", n_member_calls, inp, out * n_member_calls, prices))
    if plan.judge is not None:
        factor = 2 if options.mode == "debate" else 1
        inp = prompt_tokens + total_out * factor + 200
        # --orders N: one judge call per distinct ordering of the answers (at most n! of them).
        n = min(plan.options.orders, math.factorial(max(1, len(plan.members))))
        rows.append(_row(plan.judge.model_id, "judge", n, inp * n, output_cap(plan.judge, judge=True) * n, prices))
    unknown = sorted({str(r["model"]) for r in rows if r["est_cost_usd"] is None})
    costs = [r["est_cost_usd"] for r in rows]
    total = None if unknown else sum(c for c in costs if isinstance(c, float))
    return Estimate(rows, total, unknown)


def _local_input_tokens(plan: FusionPlan, member: Member) -> int:
    """A local member's first call sends the few-shot document its provider builds around the prompt
    (``LocalProvider`` uses the same ``build_prompt``), so count that text, not the bare prompt."""
    return approx_tokens(build_prompt(member_request(member, plan.prompt, plan.options)))


def _row(model: str, role: str, calls: int, inp: int, out: int,
         prices: Mapping[str, UserPrice]) -> dict[str, object]:
    price = price_for(model, prices)
    return {"model": model, "role": role, "calls": calls, "est_input_tokens": inp, "est_output_tokens": out,
            "est_cost_usd": None if price is None else price.cost(inp, out),
            "price_source": None if price is None else price.source}


def _int(value: object) -> int:
    assert isinstance(value, int)  # the rows _row builds
    return value


def _usd(value: object) -> float | None:
    return value if isinstance(value, float) else None


def check_budget(est: Estimate, budget: float) -> None:
    """Raise ``BudgetError`` when the projection is above the budget or cannot be known."""
    if est.total_usd is None:
        raise BudgetError(
            f"--budget cannot be checked: no price known for {', '.join(est.unknown)} "
            "(set %config FusionMagics.prices, or drop --budget)"
        )
    if est.total_usd > budget:
        raise BudgetError(
            f"projected cost ${est.total_usd:.4f} is above --budget ${budget:.4f}; nothing was sent "
            "(lower --max-tokens, shrink the pool, or raise the budget)"
        )
