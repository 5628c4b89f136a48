"""merge (and the last step of debate): the judge writes a synthesis of the answers. It also names the answer
it ranks best (``best``): with ``--orders`` that pick is what position consistency is measured on, since two
syntheses are never compared word for word."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.record import Response
from .analysis import INSTRUCTIONS, verdict_schema
from .labels import named, read_label
from .verdict import Verdict
from .verdicts import parse_json_verdict


def schema(labels: Sequence[str]) -> dict[str, Any]:
    return verdict_schema(labels, {"best": {"type": "string", "enum": list(labels)}, "answer": {"type": "string"}})


def instructions(labels: Sequence[str], *, debate: bool = False) -> str:
    seen = (
        "Each participant's first-round and final-round answers are shown; weigh how their views moved, "
        "and do not trust agreement alone: a debate can converge on a wrong answer. "
        if debate
        else ""
    )
    return (
        f"{seen}Write the best possible answer to the question, keeping what is correct in each answer "
        "and fixing or dropping what is wrong. Reply with only a JSON object with four fields: "
        '"reasoning" (briefly, which answers you relied on and why), "analysis", '
        f'"best" (the letter of the best single answer: {", ".join(labels)}) and "answer" (the complete answer). '
        + INSTRUCTIONS
    )


def read_verdict(text: str, candidates: Mapping[str, Response], *, judge: str, mode: str) -> Verdict:
    """Parse the synthesis; a judge that ignored the format but wrote prose still counts as the answer."""
    data = parse_json_verdict(text)
    if data is None:
        if not text.strip():
            raise ValueError("empty verdict")
        return Verdict(model=judge, mode=mode, reasoning="(the judge replied without the JSON format)",
                       answer=text.strip())
    raw_answer = data.get("answer")
    answer = raw_answer.strip() if isinstance(raw_answer, str) else ""
    if not any(ch.isalnum() for ch in answer):  # "", "...": a judge that echoed the format, not an answer
        raise ValueError("the verdict has no answer")
    best = read_label(data.get("best"), candidates)
    return Verdict(model=judge, mode=mode, reasoning=str(data.get("reasoning", "")).strip(), answer=answer,
                   best_label=None if best is None else named(best))
