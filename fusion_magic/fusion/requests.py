"""A pool member's request (first round and debate revisions alike), built from the pieces every call shares
(``calls.requests``: the opening turns and the output cap).

    request = member_request(member, "Why is the sky blue?", options)
    request.max_tokens == output_cap(member.target, options.max_tokens)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..calls.requests import NO_CONTEXT, Context, opening, output_cap
from ..providers.base import ChatRequest, Message

if TYPE_CHECKING:
    from .options import FuseOptions
    from .pool import Member

def member_request(member: Member, prompt: str, options: FuseOptions, *later: Message,
                   context: Context = NO_CONTEXT) -> ChatRequest:
    """A pool member's request: the opening (the thread so far and the attachments in ``context``), any
    ``later`` turns (a debate revision's), the run's cap, the seat's own temperature and seed."""
    return ChatRequest(
        model=member.target.model,
        messages=(*opening(prompt, options.system, context), *later),
        max_tokens=output_cap(member.target, options.max_tokens),
        temperature=member.temperature,
        seed=member.seed,
    )


__all__ = ["member_request"]
