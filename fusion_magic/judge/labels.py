"""The anonymous labels answers are shown under: A to Z, then AA, AB, ..., AZ, BA, ..., ZZ, AAA, as a
spreadsheet names its columns, so a pool of any size has a label for every answer. Every place that makes
a label (the judge's request, its schema's enums, a debate's revision prompt) or reads one back (the
judge's verdict, its analysis, the orderings' picks, the report's "Answer B") goes through here.

    answer_labels(3)                       # ["A", "B", "C"]
    answer_label(26), label_index("AD")    # "AA", 29
    read_label("Answer ab.", ["AA", "AB"])   # "AB"
    named("AB"), unnamed("Answer AB")      # "Answer AB", "AB"
"""

from __future__ import annotations

import re
from collections.abc import Collection

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# A label in a regular expression: one or more capitals (the judge's prompt writes them so).
LABEL_PATTERN = "[A-Z]+"
_LABEL = re.compile(LABEL_PATTERN)
_ANSWER_PREFIX = re.compile(r"(?i)^answer\s+")
_PREFIX = "Answer "


def answer_label(index: int) -> str:
    """The label of the answer at ``index`` (0-based): 0 -> "A", 25 -> "Z", 26 -> "AA", 701 -> "ZZ",
    702 -> "AAA" (bijective base 26: no label is another with a leading "A" dropped)."""
    if index < 0:
        raise ValueError(f"an answer's index is 0 or more, not {index}")
    letters = []
    n = index + 1
    while n:
        n, digit = divmod(n - 1, 26)
        letters.append(_LETTERS[digit])
    return "".join(reversed(letters))


def answer_labels(count: int) -> list[str]:
    """The labels of ``count`` answers in the order shown: ["A", "B", ...]."""
    return [answer_label(i) for i in range(count)]


def label_index(label: str) -> int:
    """The index ``label`` stands for (the inverse of ``answer_label``): "A" -> 0, "AA" -> 26. ``ValueError``
    for anything that is not a label (empty, lower case, other characters)."""
    if not _LABEL.fullmatch(label):
        raise ValueError(f"{label!r} is no answer label (A, B, ..., Z, AA, AB, ...)")
    n = 0
    for ch in label:
        n = n * 26 + _LETTERS.index(ch) + 1
    return n - 1


def named(label: str) -> str:
    """How reports and verdicts name a label: "Answer AB"."""
    return _PREFIX + label


def unnamed(name: str) -> str:
    """The label in "Answer AB" (a name without the prefix comes back as it is)."""
    return name.removeprefix(_PREFIX)


def read_label(value: object, labels: Collection[str]) -> str | None:
    """The label among ``labels`` that ``value`` names ("B", "b", "Answer B", "(B).", "Answer ab") or None: a
    judge's field that is no string, or names no answer it was shown, names nothing."""
    if not isinstance(value, str):
        return None
    label = _ANSWER_PREFIX.sub("", value.strip()).strip(" .()").upper()
    return label if label in labels else None


__all__ = ["LABEL_PATTERN", "answer_label", "answer_labels", "label_index", "named", "read_label", "unnamed"]
