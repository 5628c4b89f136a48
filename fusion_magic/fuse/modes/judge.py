"""The judge call: anonymise and shuffle the answers, ask for reasoning plus a structured verdict,
parse it tolerantly.

Hygiene (see the bias table in the notebook conventions): candidates are labelled "Answer A, B, ..."
with no model names, shuffled afresh for every judge call with the permutation kept for attribution,
shown with their token counts and an instruction to ignore length and position; temperature is 0.

    candidates = anonymise(responses, random.Random())
    verdict, response = await judge_call(target, "best-of", question, candidates, ctx=ctx)
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...calls.call import CallContext, Target, run_call
from ...core.errors import FusionError
from ...core.record import Response
from ...present.wording import failure_detail
from ...providers.base import ChatRequest
from ..requests import opening, output_cap
from ..result import Verdict
from .table import judge_style

JUDGE_SYSTEM = (
    "You are an impartial expert judge. The answers below are anonymous and in random order. "
    "Judge correctness first, then completeness and clarity. Do not favour an answer for its position, "
    "its length or its style: a short correct answer beats a long padded one. For a factual or "
    "mathematical question, work out the answer yourself before you compare."
)


class JudgeFailed(FusionError):
    """The judge call failed or its verdict could not be read; the engine falls back to a vote.

    The message is the reason as a clause that completes "fell back to a vote because ...", without
    the judge's id or the error's ``provider:model kind:`` prefix (the reader already sees which judge it
    was): ``the judge's call failed (timeout: no answer within 30 s)``. ``response`` is the judge call,
    when there was one: its status and full error stay there.
    """

    def __init__(self, message: str, response: Response | None = None) -> None:
        super().__init__(message)
        self.response = response


@dataclass(frozen=True)
class Candidate:
    """An anonymised answer: the label the judge sees and the response it stands for."""

    label: str
    response: Response
    first: Response | None = None  # debate: the same member's first-round answer


def anonymise(responses: Sequence[Response], rng: random.Random,
              first_round: Mapping[str, Response] | None = None) -> list[Candidate]:
    """Shuffle the ok answers and label them A, B, C, ... (a fresh permutation per call)."""
    ok = [r for r in responses if r.ok and r.text.strip()]
    order = list(ok)
    rng.shuffle(order)
    letters = string.ascii_uppercase
    return [
        Candidate(letters[i], r, (first_round or {}).get(r.label or ""))
        for i, r in enumerate(order)
    ]


def _tokens(r: Response) -> str:
    n = r.output_tokens if r.output_tokens is not None else len(r.text.split())
    return f"{n} tokens"


def render_candidates(candidates: Sequence[Candidate], *, debate: bool = False) -> str:
    blocks = []
    for c in candidates:
        if debate and c.first is not None:
            blocks.append(
                f"### Answer {c.label}, first round ({_tokens(c.first)})\n{c.first.text.strip()}\n\n"
                f"### Answer {c.label}, final round ({_tokens(c.response)})\n{c.response.text.strip()}"
            )
        else:
            blocks.append(f"### Answer {c.label} ({_tokens(c.response)})\n{c.response.text.strip()}")
    return "\n\n".join(blocks)


def judge_request(target: Target, mode: str, question: str, candidates: Sequence[Candidate]) -> ChatRequest:
    """The judge's request: its system prompt, then the question, the anonymous answers and the mode's task."""
    labels = [c.label for c in candidates]
    module = judge_style(mode)
    debate = mode == "debate"
    user = (
        f"## Question\n{question.strip()}\n\n## Answers\n{render_candidates(candidates, debate=debate)}\n\n"
        f"## Task\n{module.instructions(labels, debate=debate)}"
    )
    return ChatRequest(
        model=target.model,
        messages=opening(user, JUDGE_SYSTEM),
        max_tokens=output_cap(target, judge=True),
        temperature=0.0,
        json_schema=module.schema(labels),
        schema_name="verdict",
    )


async def judge_call(
    target: Target,
    mode: str,
    question: str,
    candidates: Sequence[Candidate],
    *,
    ctx: CallContext,
    timeout: float | None = None,
) -> tuple[Verdict, Response]:
    """Ask the judge; return its verdict and the call's Response. Raises JudgeFailed on any failure."""
    if not candidates:
        raise JudgeFailed("there was no answer to judge")
    request = judge_request(target, mode, question, candidates)
    response = await run_call(target, request, ctx=ctx, role="judge", timeout=timeout)
    if not response.ok:
        raise JudgeFailed(f"the judge's call failed ({failure_detail(response)})", response)
    labels = {c.label: c.response for c in candidates}
    module = judge_style(mode)
    try:
        verdict = module.read_verdict(response.text, labels, judge=target.model_id, mode=mode)
    except ValueError as exc:
        raise JudgeFailed(f"the judge gave no usable verdict ({exc})", response) from exc
    verdict.raw = response.text
    verdict.labels = {f"Answer {k}": v.model + (f" ({v.label})" if v.label else "") for k, v in labels.items()}
    return verdict, response
