"""What every call asks for, built from the same pieces: the opening turns and the output cap.

A pool member's request (first round and debate revisions alike), the judge's request, a scorer's and a single
``complete()`` call all open with ``opening`` and take their ``max_tokens`` from ``output_cap``.

    request = ChatRequest(model=target.model, messages=opening(prompt, system), max_tokens=output_cap(target))
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..core.attachment import Attachment
from ..providers.base import Message

if TYPE_CHECKING:
    from .call import Target


@dataclass(frozen=True)
class Context:
    """What a call sees besides its own prompt: the earlier turns of a thread (``--continue``: user turns with
    their attachments, assistant turns with the answers) and the attachments of the turn being asked.

        opening("now shorter", None, Context(history=(Message("user", "why?"), Message("assistant", "..."))))
    """

    history: tuple[Message, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    # The prompt's turn ends a prefix later calls repeat (a debate's rounds): mark it for caching.
    reused: bool = False


NO_CONTEXT = Context()

# Every call is capped, even when the user set no cap: OpenRouter's in-flight budget holds max_tokens per
# concurrent call, and the small local model rambles until it hits one. A judge needs room for its
# reasoning plus a full answer.
LOCAL_MAX_TOKENS = 128
HTTP_MAX_TOKENS = 1024
LOCAL_JUDGE_MAX_TOKENS = 384
HTTP_JUDGE_MAX_TOKENS = 2048


def output_cap(target: Target | None, asked: int | None = None, *, judge: bool = False) -> int:
    """The ``max_tokens`` a call sends: the cap asked for (``--max-tokens``; members only), else the
    default for the target's kind and role."""
    if asked and not judge:
        return asked
    local = target is not None and target.is_local
    if judge:
        return LOCAL_JUDGE_MAX_TOKENS if local else HTTP_JUDGE_MAX_TOKENS
    return LOCAL_MAX_TOKENS if local else HTTP_MAX_TOKENS


def opening(prompt: str, system: str | None, context: Context = NO_CONTEXT) -> tuple[Message, ...]:
    """The first turns of every conversation: the system prompt, when there is one, the thread so far, then the
    prompt with this turn's attachments. In a thread the prompt's turn ends the prefix worth caching: the next
    turn repeats all of it (``Message.cache_point``), as does a debate's next round (``Context.reused``)."""
    user = Message("user", prompt, context.attachments, cache_point=context.reused or bool(context.history))
    head = (Message("system", system),) if system else ()
    history = context.history
    if history:
        # The thread alone is a prefix too: the judge's next request, and a member's under another prompt, repeat
        # it without this turn's prompt.
        history = (*history[:-1], replace(history[-1], cache_point=True))
    return (*head, *history, user)


__all__ = [
    "HTTP_JUDGE_MAX_TOKENS",
    "HTTP_MAX_TOKENS",
    "LOCAL_JUDGE_MAX_TOKENS",
    "LOCAL_MAX_TOKENS",
    "NO_CONTEXT",
    "Context",
    "opening",
    "output_cap",
]
