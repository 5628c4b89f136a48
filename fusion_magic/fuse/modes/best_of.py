"""best-of: the judge names one answer; the fused answer is that answer, verbatim."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ...core.record import Response
from ..result import Verdict
from .verdicts import parse_json_verdict


def schema(labels: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "winner": {"type": "string", "enum": list(labels)},
        },
        "required": ["reasoning", "winner"],
        "additionalProperties": False,
    }


def instructions(labels: Sequence[str], *, debate: bool = False) -> str:
    return (
        "Compare the answers and pick the single best one. Reply with only a JSON object with two fields: "
        f'"reasoning" (briefly, why) and "winner" (the letter of the best answer: {", ".join(labels)}).'
    )


_LOOSE = re.compile(r"(?i:winner|best answer)\W{0,3}(?i:is\W{0,3})?(?i:answer\s+)?\(?([A-Z])\b")


def read_verdict(text: str, candidates: Mapping[str, Response], *, judge: str, mode: str) -> Verdict:
    """Parse the judge's choice; accepts "B", "Answer B" and prose like "Winner: B" when JSON is absent."""
    data = parse_json_verdict(text) or {}
    winner = str(data.get("winner", "")).strip()
    winner = re.sub(r"(?i)^answer\s+", "", winner).strip(" .()").upper()
    if winner not in candidates:
        loose = _LOOSE.search(text)
        winner = loose.group(1).upper() if loose else ""
    if winner not in candidates:
        raise ValueError(f"no winner among {', '.join(candidates)} in the verdict")
    chosen = candidates[winner]
    return Verdict(
        model=judge, mode=mode, reasoning=str(data.get("reasoning", "")).strip() or text.strip(),
        answer=chosen.text, choice=chosen.model, choice_label=f"Answer {winner}",
    )
