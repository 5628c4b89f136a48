"""The judged modes, by name: how each one asks its judge and reads the verdict.

A new judged mode is one module with ``schema``, ``instructions`` and ``read_verdict`` (see ``best_of`` and
``merge``), one row in ``JUDGE_STYLES``, and its name in ``settings.MODES``.

    style = judge_style("merge")
    request_schema = style.schema(["A", "B"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..core.record import Response
from . import best_of, merge
from .verdict import Verdict


class JudgeStyle(Protocol):
    """What a judged mode module provides (modules satisfy this protocol structurally)."""

    def schema(self, labels: Sequence[str]) -> dict[str, Any]: ...

    def instructions(self, labels: Sequence[str], *, debate: bool = False) -> str: ...

    def read_verdict(self, text: str, candidates: Mapping[str, Response], *, judge: str, mode: str) -> Verdict: ...


# debate ends with a synthesis of the last round: the same judge step as merge.
JUDGE_STYLES: dict[str, JudgeStyle] = {"best-of": best_of, "merge": merge, "debate": merge}


def judge_style(mode: str) -> JudgeStyle:
    """The judge step of ``mode``; ``KeyError`` for a mode without a judge (vote)."""
    return JUDGE_STYLES[mode]


__all__ = ["JUDGE_STYLES", "JudgeStyle", "judge_style"]
