"""The events a fused run adds to the call events (``fusion_magic.core.events``): run start, judge, verdict, end.

    def listener(event: EngineEvent) -> None:
        if isinstance(event, VerdictReady):
            print(event.verdict.answer)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.attachment import Attachment
from ..core.events import EngineEvent

if TYPE_CHECKING:
    from .result import FusionResult, Verdict


@dataclass(frozen=True)
class RunStarted(EngineEvent):
    """A fused run is about to start its pool. ``labels`` are the tab names, in pool order. ``attachments`` are
    this turn's; ``thread`` is the conversation a follow-up continues: (prompt, fused answer, attachments) per
    earlier turn."""

    prompt: str
    mode: str
    judge: str
    labels: tuple[str, ...]
    models: tuple[str, ...]
    attachments: tuple[Attachment, ...] = ()
    thread: tuple[tuple[str, str, tuple[Attachment, ...]], ...] = ()


@dataclass(frozen=True)
class JudgeStarted(EngineEvent):
    """The pool is done (or quorum/deadline fired); the judge starts."""

    judge: str
    mode: str


@dataclass(frozen=True)
class VerdictReady(EngineEvent):
    """The judge (or the vote) decided."""

    verdict: Verdict


@dataclass(frozen=True)
class RunFinished(EngineEvent):
    """The fused result is complete (late members may still report CallFinished after this)."""

    result: FusionResult


@dataclass(frozen=True)
class RunStopped(EngineEvent):
    """The run ended without a verdict: interrupted (``reason="cancelled"``, ``partial`` holds what had
    arrived) or a setup error (``partial`` is None)."""

    reason: str
    partial: FusionResult | None = None


__all__ = ["JudgeStarted", "RunFinished", "RunStarted", "RunStopped", "VerdictReady"]
