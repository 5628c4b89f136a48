"""The model-free judge: majority vote on closed-form answers, else the consensus medoid.

No call, no cost, no position or brand bias. Closed-form means an answer states a final value we can
extract (a number, a letter choice, yes/no, or a short phrase); when a strict majority of the answers
agree on one value, that value wins and the first answer that states it is the fused answer.
Otherwise the answer most similar to all the others (the medoid) wins.

    verdict = vote([r1, r2, r3])
    verdict.choice, verdict.answer
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher

from ...core.record import Response
from ..result import Verdict

_MARKED = re.compile(
    r"(?:final answer\s*[:=]?|the answer is\s*[:=]?|answer\s*[:=]|=>|####)\s*\**\s*([^\n]+)", re.IGNORECASE
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?[.):]?$")
_WORD = re.compile(r"[a-z0-9]+")
# Markup and quotes around a value, and a full stop or "!" after it (after the markup too: "**B**.").
_EDGES = re.compile(r"^[\s*_`\"']+|[\s*_`\"'.!]+$")
SHORT_WORDS = 12


def _normalise_value(value: str) -> str | None:
    value = _EDGES.sub("", value)
    if not value:
        return None
    numbers = _NUMBER.findall(value)
    if numbers and len(value.split()) <= SHORT_WORDS:
        n = numbers[-1].replace(",", "")
        try:
            d = Decimal(n)
        except InvalidOperation:
            return n
        # Exact and without an exponent: 42.00 -> 42, 1e-08 never appears, 20! keeps every digit.
        if d == 0:
            return "0"
        text = format(d, "f")  # the digits as written: no rounding, no exponent
        return text.rstrip("0").rstrip(".") if "." in text else text
    choice = _CHOICE.match(value)
    if choice:
        return choice.group(1).upper()
    words = _WORD.findall(value.lower())
    first = next((w for w in words if w not in ("a", "an", "the")), None)
    if first in ("yes", "no", "true", "false"):
        return first
    if len(words) == 1 and words[0] in ("a", "b", "c", "d", "e"):
        return words[0].upper()  # the choice letter, as _CHOICE gives it
    return " ".join(words) if words else None


def extract_final(text: str) -> str | None:
    """The final value an answer states, normalised, or None when the answer is free text."""
    marked = _MARKED.findall(text)
    if marked:
        return _normalise_value(marked[-1])
    stripped = text.strip()
    words = stripped.split()
    if not words or len(words) > SHORT_WORDS:
        return None
    numbers = _NUMBER.findall(stripped)
    if numbers:
        return _normalise_value(numbers[-1])
    return _normalise_value(stripped)


def similarity(a: str, b: str) -> float:
    """Word-level similarity in [0, 1]; cheap and good enough to find the consensus answer."""
    wa, wb = _WORD.findall(a.lower()), _WORD.findall(b.lower())
    if not wa and not wb:
        return 1.0
    return SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def medoid(texts: Sequence[str]) -> int:
    """Index of the text with the highest total similarity to the others (ties: the first)."""
    if len(texts) == 1:
        return 0
    scores = [sum(similarity(t, u) for j, u in enumerate(texts) if j != i) for i, t in enumerate(texts)]
    return max(range(len(texts)), key=lambda i: (scores[i], -i))


def vote(responses: Sequence[Response], *, mode: str = "vote") -> Verdict:
    """Pick an answer among the ok responses without calling a model."""
    ok = [r for r in responses if r.ok and r.text.strip()]
    if not ok:
        return Verdict(model="vote", mode=mode, reasoning="No answer arrived, so there is nothing to vote on.")
    labels = {r.label or r.model: r.model for r in ok}
    values = [extract_final(r.text) for r in ok]
    counted = Counter(v for v in values if v is not None)
    if counted:
        (top, n), *rest = counted.most_common()
        tie = bool(rest) and rest[0][1] == n
        if n >= 2 and n * 2 > len(ok) and not tie:
            winner = ok[values.index(top)]
            tally = ", ".join(f"{v!r}: {c}" for v, c in counted.most_common())
            return Verdict(
                model="vote", mode=mode, choice=winner.model, choice_label=winner.label,
                answer=winner.text, labels=labels,
                reasoning=f"Majority vote on the final answers ({tally}): {n} of {len(ok)} say {top!r}.",
            )
    i = medoid([r.text for r in ok])
    winner = ok[i]
    why = "no strict majority on a final value" if counted else "the answers are free text"
    return Verdict(
        model="vote", mode=mode, choice=winner.model, choice_label=winner.label, answer=winner.text,
        labels=labels,
        reasoning=f"Consensus ({why}): the answer from {winner.label or winner.model} is the most similar "
        f"to the other {len(ok) - 1}.",
    )


def agree(responses: Sequence[Response], threshold: float = 0.9) -> bool:
    """True when all ok answers state the same final value, or are near-identical text (debate stops)."""
    ok = [r for r in responses if r.ok and r.text.strip()]
    if len(ok) < 2:
        return True
    values = {extract_final(r.text) for r in ok}
    if len(values) == 1 and None not in values:
        return True
    return all(similarity(a.text, b.text) >= threshold for i, a in enumerate(ok) for b in ok[i + 1 :])
