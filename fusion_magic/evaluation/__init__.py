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

from .data import AUTO, BUNDLED_QUESTIONS, CLOSED_INSTRUCTION, Question, load_questions
from .engine import DEFAULT_CONCURRENCY, EvalPlan, RowCallback, new_result, plan_evaluation, run_evaluation
from .result import EvalResult, EvalRow, wilson_interval
from .scoring import Scorer, score_closed

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
