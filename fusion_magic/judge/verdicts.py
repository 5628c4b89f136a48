"""Reading a judge's reply: the JSON verdict object, strict or found inside prose (pure text in, dict out),
and the anonymous letter a judge names an answer by, however it spells it.

    parse_json_verdict('Sure! ```json {"winner": "B", "reasoning": "..."} ```')  # {"winner": "B", ...}
    read_label("Answer b.", ["A", "B"])   # "B"
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_ANSWER_PREFIX = re.compile(r"(?i)^answer\s+")


def parse_json_verdict(text: str) -> dict[str, Any] | None:
    """The verdict object from a judge's text: strict JSON, or the outermost {...} inside prose or a
    ```json fence (judges without structured output wrap it)."""
    for candidate in (text.strip(), *(_JSON_OBJECT.findall(text))):
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def read_label(value: object, labels: Collection[str]) -> str | None:
    """The letter among ``labels`` that ``value`` names ("B", "b", "Answer B", "(B).") or None: a judge's
    field that is no string, or names no answer it was shown, names nothing."""
    if not isinstance(value, str):
        return None
    letter = _ANSWER_PREFIX.sub("", value.strip()).strip(" .()").upper()
    return letter if letter in labels else None


__all__ = ["parse_json_verdict", "read_label"]
