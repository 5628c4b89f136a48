"""Reading a judge's reply: the JSON verdict object, strict or found inside prose (pure text in, dict out),
the score a grading reply gives (its JSON's, else a "score: N" in prose), and (from ``labels``) the anonymous
label a judge names an answer by, however it spells it.

    parse_json_verdict('Sure! ```json {"winner": "B", "reasoning": "..."} ```')  # {"winner": "B", ...}
    reply_score("It fits. Score: 7/10", out_of=10).value   # Fraction(7)
    read_label("Answer b.", ["A", "B"])   # "B"
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .answers import labelled_number
from .labels import read_label  # here too: a judged mode reads its verdict from this module

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


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


@dataclass(frozen=True)
class ReplyScore:
    """The score a grading reply gives, as found. ``in_json``: the reply's JSON object has a "score" field, and
    ``value`` is that field as it is (any JSON value: ``true``, "1", NaN; each caller says which it takes);
    else ``value`` is the number after the last "score:" in the prose, read as a final answer is (a
    ``Fraction``; None when there is none, or it is hedged or negated). ``data``: the JSON object ({} if none).
    """

    value: object
    in_json: bool
    data: dict[str, Any] = field(default_factory=dict)


def reply_score(text: str, *, out_of: int | None = None) -> ReplyScore:
    """The score ``text`` gives: its JSON object's "score" (``parse_json_verdict``), or when the JSON has none
    (a judge without structured output) "Score: 7" in prose ("7/10" with ``out_of=10``). The JSON's own score,
    even one that is no number, is not overruled by prose around it."""
    data = parse_json_verdict(text) or {}
    if "score" in data:
        return ReplyScore(data["score"], True, data)
    number = labelled_number(text, "score", out_of=out_of)
    return ReplyScore(None if number is None else number.value, False, data)


__all__ = ["ReplyScore", "parse_json_verdict", "read_label", "reply_score"]
