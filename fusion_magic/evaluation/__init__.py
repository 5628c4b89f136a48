"""Evaluation runs: is fusion worth it on my questions? Each strategy (every pool member alone,
self-consistency, vote, best-of, merge, debate) answers every question, scored against a reference or a
rubric, with accuracy and its confidence interval, cost, latency and calls per strategy.

    plan = plan_evaluation(BUNDLED_QUESTIONS, Settings(cache="on"), pool=["local:gemma3-270m"],
                           strategies=["single", "self:5"])
    result = await run_evaluation(plan, ctx)
    result.summary

Layer: above ``fuse`` (it plans and runs fused runs), below ``api``.
"""

from .data import AUTO, BUNDLED_QUESTIONS, CLOSED_INSTRUCTION, Question, load_questions
from .engine import DEFAULT_CONCURRENCY, EvalPlan, RowCallback, new_result, plan_evaluation, run_evaluation
from .result import EvalResult, EvalRow, wilson_interval
from .scoring import Match, matches, normalise

__all__ = [
    "AUTO",
    "BUNDLED_QUESTIONS",
    "CLOSED_INSTRUCTION",
    "DEFAULT_CONCURRENCY",
    "EvalPlan",
    "EvalResult",
    "EvalRow",
    "Match",
    "Question",
    "RowCallback",
    "load_questions",
    "matches",
    "new_result",
    "normalise",
    "plan_evaluation",
    "run_evaluation",
    "wilson_interval",
]
