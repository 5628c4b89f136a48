"""Projected cost of a run before any call: ``--estimate`` prints it, ``--budget`` enforces it.

Input tokens are estimated as characters / 4 (a common rule of thumb for English) of the text each
call will send: the prompt (with its text files and, in a thread, the earlier turns) for HTTP models, the
whole few-shot document for the local model (which wraps even "hi" in about a hundred tokens of examples).
Attached images and PDFs add the tokens each provider's published rule gives them (``core.media_tokens``),
for every call that sends them: each member and the judge, this turn's and a thread's earlier turns'. Output
tokens are each call's ``max_tokens`` cap, so the projection is an upper bound on output. A model without a
known price makes the total unknown, and ``--budget`` then refuses rather than guess.

    est = estimate(plan)
    est.total_usd, est.frame
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..calls.requests import output_cap
from ..core.attachment import Attachment
from ..core.errors import BudgetError
from ..core.media_tokens import FAMILIES, FAMILY_NAMES, RULES, attachment_tokens, family_of, measure
from ..core.pricing import TABLE_SOURCE, UserPrice, approx_tokens, price_for, table_age_note
from ..present.estimate import CostRow, MediaCount, MediaRow, estimate_text, media_lines, tokens_counted
from ..providers.base import Message
from ..providers.chat.local.fewshot import build_prompt
from .engine import FusionPlan
from .requests import member_request
from .thread import lineage

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Estimate:
    """Per-call projections and the total (None when any price is unknown). ``media`` names each attachment the
    calls send with its tokens on each model (already in the rows' ``est_input_tokens``), ``rules`` the counting
    rule of each kind and vendor, and ``thread`` is True when the calls repeat a thread's earlier turns."""

    rows: list[dict[str, object]]
    total_usd: float | None
    unknown: list[str]
    media: list[MediaRow] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    thread: bool = False

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
        notes = [*media_lines(self.media, self.rules, thread=self.thread), *([age] if age else [])]
        return estimate_text(rows, self.total_usd, basis="output counted at each call's max_tokens cap, so an upper "
                             "bound", price_hint="%config FusionMagics.prices", notes=notes)

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(str(self))  # type: ignore[attr-defined]


def estimate(plan: FusionPlan) -> Estimate:
    """Project every call of ``plan`` (members, debate rounds, judge) without making any."""
    options = plan.options
    prices = dict(plan.settings.prices)
    rows: list[dict[str, object]] = []
    n_member_calls = options.rounds + 1 if options.mode == "debate" else 1
    total_out = 0
    for m in plan.members:
        out = output_cap(m.target, options.max_tokens)
        total_out += out
        request = member_request(m, plan.prompt, options, context=plan.context(m.label))
        media = _media_tokens(request.attachments, m.target.model_id)
        # A local member's call sends the few-shot document its provider builds around the prompt
        # (``LocalProvider`` uses the same ``build_prompt``), so that text is counted, not the bare prompt.
        text = approx_tokens(build_prompt(request)) if m.target.is_local else _text_tokens(request.messages)
        first = text + media
        # A debate round re-sends the question (with the thread and the attachments), the member's answer and
        # the others' answers.
        inp = first * n_member_calls + (n_member_calls - 1) * out * len(plan.members)
        rows.append(call_row(m.target.model_id, f"member {m.label}", n_member_calls, inp, out * n_member_calls, prices,
                         media * n_member_calls))
    if plan.judge is not None:
        factor = 2 if options.mode == "debate" else 1
        # The judge sees the fused thread so far and this turn's attachments, then the answers.
        context = plan.context()
        seen = (*context.history, Message("user", plan.prompt, context.attachments))
        media = _media_tokens([a for turn in seen for a in turn.attachments], plan.judge.model_id)
        inp = approx_tokens((options.system or "") + "".join(t.text for t in seen)) + media + total_out * factor + 200
        # --orders N: one judge call per distinct ordering of the answers (at most n! of them).
        n = min(plan.options.orders, math.factorial(max(1, len(plan.members))))
        rows.append(call_row(plan.judge.model_id, "judge", n, inp * n, output_cap(plan.judge, judge=True) * n, prices,
                         media * n))
    unknown = sorted({str(r["model"]) for r in rows if r["est_cost_usd"] is None})
    costs = [r["est_cost_usd"] for r in rows]
    total = None if unknown else sum(c for c in costs if isinstance(c, float))
    models = [*(m.target.model_id for m in plan.members), *([plan.judge.model_id] if plan.judge else [])]
    media_rows, rules = _media_table(plan, models)
    return Estimate(rows, total, unknown, media_rows, rules, thread=plan.parent is not None)


def _text_tokens(messages: Sequence[Message]) -> int:
    """Characters / 4 of every turn's text as sent (the system prompt, a thread's turns, text files included)."""
    return approx_tokens("".join(m.text for m in messages))


def _media_tokens(attachments: Iterable[Attachment], model_id: str) -> int:
    """The images' and PDFs' input tokens on ``model_id`` (text files are counted with the text)."""
    return sum(attachment_tokens(a, model_id).tokens for a in attachments if a.binary)


def _media_table(plan: FusionPlan, models: Sequence[str]) -> tuple[list[MediaRow], list[str]]:
    """A row per attachment the calls send (a thread's earlier turns' first, named by turn), with its tokens on
    each vendor of ``models`` (each model apart where one vendor's models count it differently), and the rule of
    each kind and vendor used."""
    turns = [run.attachments for run in lineage(plan.parent)]
    now = len(turns) + 1
    sent = [(i + 1, a) for i, atts in enumerate([*turns, plan.options.attach]) for a in atts]
    unique = list(dict.fromkeys(models))
    families = [f for f in FAMILIES if any(family_of(m) == f for m in unique)]
    rows = []
    for turn, a in sent:
        name = a.name if turn == now else f"{a.name} (turn {turn})"
        what = measure(a).describe() if a.binary else "text file, in the prompt's text"
        if not a.binary:
            rows.append(MediaRow(name, what, [MediaCount("every model", attachment_tokens(a, "").tokens, True)]))
            continue
        counts: list[MediaCount] = []
        for family in families:
            counted = {m: attachment_tokens(a, m) for m in unique if family_of(m) == family}
            if len({c.tokens for c in counted.values()}) == 1:
                first = next(iter(counted.values()))
                counts.append(MediaCount(FAMILY_NAMES[family], first.tokens, first.approx))
            else:
                counts.extend(MediaCount(m, c.tokens, c.approx) for m, c in counted.items())
        rows.append(MediaRow(name, what, counts))
    kinds = [k for k in ("image", "pdf") if any(a.kind == k for _, a in sent)]
    rules = [f"{'images' if kind == 'image' else 'PDFs'} on {FAMILY_NAMES[family]}: {RULES[family, kind]}"
             for kind in kinds for family in families]
    return rows, rules


def call_row(model: str, role: str, calls: int, inp: int, out: int,
             prices: Mapping[str, UserPrice], media: int = 0) -> dict[str, object]:
    """One projected row: ``calls`` calls to ``model`` with ``inp``/``out`` tokens in all, priced (or None)."""
    price = price_for(model, prices)
    return {"model": model, "role": role, "calls": calls, "est_input_tokens": inp, "est_output_tokens": out,
            "est_attachment_tokens": media,
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
