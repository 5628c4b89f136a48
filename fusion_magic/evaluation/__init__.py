"""Evaluation runs: is fusion worth it on my questions? Each strategy (every pool member alone,
self-consistency, vote, best-of, merge, debate) answers every question, scored against a reference or a
rubric, right, wrong or unscorable, with accuracy over the scored answers and its confidence interval, the
unscorable rate beside it, cost, latency and calls per strategy.

    plan = plan_evaluation(BUNDLED_QUESTIONS, Settings(cache="on"), pool=["local:gemma3-270m"],
                           strategies=["single", "self:5"])
    result = await run_evaluation(plan, ctx)
    result.summary

Layer: above ``fuse`` (it plans and runs fused runs), below ``api``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import AUTO, BUNDLED_QUESTIONS, CLOSED_INSTRUCTION, Question, load_questions
    from .engine import DEFAULT_CONCURRENCY, EvalPlan, RowCallback, new_result, plan_evaluation, run_evaluation
    from .result import EvalResult, EvalRow, wilson_interval
    from .scoring import Scorer, score_closed

# Each name loads its module on first use (PEP 562), as the package root does: %load_ext reads evaluation.options
# for the %fuse eval flags, and importing this package must not bring the engines, httpx and asyncio with it.
_HOMES = {
    **dict.fromkeys(("AUTO", "BUNDLED_QUESTIONS", "CLOSED_INSTRUCTION", "Question", "load_questions"), ".data"),
    **dict.fromkeys(("DEFAULT_CONCURRENCY", "EvalPlan", "RowCallback", "new_result", "plan_evaluation",
                     "run_evaluation"), ".engine"),
    **dict.fromkeys(("EvalResult", "EvalRow", "wilson_interval"), ".result"),
    **dict.fromkeys(("Scorer", "score_closed"), ".scoring"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "AUTO",
    "BUNDLED_QUESTIONS",
    "CLOSED_INSTRUCTION",
    "DEFAULT_CONCURRENCY",
    "EvalPlan",
    "EvalResult",
    "EvalRow",
    "Question",
    "RowCallback",
    "Scorer",
    "load_questions",
    "new_result",
    "plan_evaluation",
    "run_evaluation",
    "score_closed",
    "wilson_interval",
]
