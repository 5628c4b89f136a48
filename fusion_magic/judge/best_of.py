"""best-of: the judge names one answer; the fused answer is that answer, verbatim. The judge's analysis of
the answers (``analysis``) comes before its pick, so it compares before it decides."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.record import Response
from .analysis import INSTRUCTIONS, verdict_schema
from .labels import LABEL_PATTERN, named, read_label
from .verdict import Verdict
from .verdicts import parse_json_verdict


def schema(labels: Sequence[str]) -> dict[str, Any]:
    return verdict_schema(labels, {"winner": {"type": "string", "enum": list(labels)}})


def instructions(labels: Sequence[str], *, debate: bool = False) -> str:
    return (
        "Compare the answers and pick the single best one. Reply with only a JSON object with three fields: "
        f'"reasoning" (briefly, why), "analysis" and "winner" (the letter of the best answer: {", ".join(labels)}). '
        + INSTRUCTIONS
    )


_LOOSE = re.compile(rf"(?i:winner|best answer)\W{{0,3}}(?i:is\W{{0,3}})?(?i:answer\s+)?\(?({LABEL_PATTERN})\b")


def read_verdict(text: str, candidates: Mapping[str, Response], *, judge: str, mode: str) -> Verdict:
    """Parse the judge's choice; accepts "B", "Answer AB" and prose like "Winner: B" when JSON is absent."""
    data = parse_json_verdict(text) or {}
    winner = read_label(str(data.get("winner", "")), candidates)
    if winner is None:
        loose = _LOOSE.search(text)
        winner = read_label(loose.group(1), candidates) if loose else None
    if winner is None:
        raise ValueError(f"no winner among {', '.join(candidates)} in the verdict")
    chosen = candidates[winner]
    return Verdict(
        model=judge, mode=mode, reasoning=str(data.get("reasoning", "")).strip() or text.strip(),
        answer=chosen.text, choice=chosen.model, choice_label=named(winner),
    )
