"""A conversation with the whole pool: the earlier runs of a thread as the turns every call repeats.

The chat APIs are stateless, so a follow-up (``%%fuse --continue r``, ``r.ask(...)``) sends the thread again on
every call: each earlier prompt with its attachments as a user turn, and the fused answer as the assistant turn
(``thread="fused"``), or, with ``thread="own"``, each member's own earlier answer. The judge always sees the
fused thread: it judges the new answers as replies to that conversation.
(shared/reference/attachments.md §8)

    history = thread_history(r, "own", label="A")   # (user, assistant, user, assistant) for a third turn
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.attachment import Attachment
from ..core.errors import ConfigError
from ..providers.base import Message

if TYPE_CHECKING:
    from .result import FusionResult


def lineage(result: FusionResult | None) -> list[FusionResult]:
    """``result`` and the runs it continues, the first run first."""
    runs: list[FusionResult] = []
    seen: set[int] = set()
    while result is not None and id(result) not in seen:  # a hand-made circle must not hang
        seen.add(id(result))
        runs.append(result)
        result = result.parent
    return runs[::-1]


# The assistant turn of an earlier run that has no fused answer, in a thread where each member has its own.
NO_FUSED_ANSWER = "(no fused answer: the judge picked none; each participant continued from its own answer)"


def thread_attachments(parent: FusionResult | None) -> tuple[Attachment, ...]:
    """Every attachment of the runs a follow-up to ``parent`` repeats, the first run's first."""
    return tuple(a for run in lineage(parent) for a in run.attachments)


def earlier_turns(parent: FusionResult | None) -> tuple[tuple[str, str, tuple[Attachment, ...]], ...]:
    """The thread a follow-up to ``parent`` continues, as ``RunStarted.thread`` carries it: (prompt, fused answer,
    attachments) per earlier run, the first first."""
    return tuple((run.prompt, run.answer, run.attachments) for run in lineage(parent))


def check_continuable(parent: FusionResult, thread: str) -> None:
    """Refuse (one line, before any call) to continue a run that has nothing to continue from."""
    if not any(r.ok and r.text.strip() for r in parent.members):
        raise ConfigError("the run to continue has no answer at all (every member failed, or it was "
                          "interrupted): run it again instead")
    if thread == "fused" and not parent.answer.strip():
        raise ConfigError("the run to continue has no fused answer (the vote found no majority, or the judge "
                          "failed): continue it with --thread own (thread='own'), or rejudge it with a judge "
                          "model first (%fuse rejudge -j MODEL)")


def own_answer(run: FusionResult, label: str | None) -> str | None:
    """The latest good answer of seat ``label`` in ``run`` (None: that seat gave none, or was not in it)."""
    if label is None:
        return None
    for r in reversed(run.members):
        if r.label == label and r.ok and r.text.strip():
            return r.text.strip()
    return None


def thread_history(parent: FusionResult | None, thread: str, label: str | None = None) -> tuple[Message, ...]:
    """The turns a call of a follow-up to ``parent`` repeats before its own prompt: for each earlier run, its
    prompt with its attachments, then its fused answer (or, ``thread="own"``, seat ``label``'s own answer where
    it gave one)."""
    turns: list[Message] = []
    for run in lineage(parent):
        answer = (own_answer(run, label) if thread == "own" else None) or run.answer.strip() or NO_FUSED_ANSWER
        turns.append(Message("user", run.prompt, run.attachments))
        turns.append(Message("assistant", answer))
    return tuple(turns)


__all__ = ["NO_FUSED_ANSWER", "check_continuable", "earlier_turns", "lineage", "own_answer", "thread_attachments",
           "thread_history"]
