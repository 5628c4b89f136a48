"""Fan one round out to every pool member at once, with quorum and deadline.

Invariants:
- every member starts in the same loop iteration; no member's failure stops another (``run_call``
  turns provider failures into data);
- when the quorum (K ok answers) is met or the deadline passes, the round returns at once and the
  members still running are marked ``late`` and left running; their tasks are returned so the caller
  can let them finish (their Response objects fill in place) or cancel them;
- if the round itself is cancelled (kernel interrupt), every member task is cancelled and awaited,
  so every HTTP connection is closed before the cancellation propagates.

    outcome = await run_round(members, requests, ctx=ctx, quorum=2, deadline=10.0)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..calls.call import CallContext, Target, run_call
from ..core.record import Response
from ..providers.base import ChatRequest


@dataclass(frozen=True)
class Member:
    """One seat in the pool: a model, its tab label, and its own sampling settings."""

    target: Target
    label: str
    seed: int | None = None
    temperature: float | None = None


@dataclass
class RoundOutcome:
    """The responses of one round in member order, and the tasks of members that are late."""

    responses: list[Response]
    pending: set[asyncio.Task[Response]] = field(default_factory=set)


async def run_round(
    members: Sequence[Member],
    requests: Sequence[ChatRequest],
    *,
    ctx: CallContext,
    round: int = 0,
    quorum: int | None = None,
    deadline: float | None = None,
    timeout: float | None = None,
) -> RoundOutcome:
    """Run one request per member concurrently; see the module docstring for the rules."""
    responses = [
        Response(model=m.target.model_id, label=m.label, round=round, role="member", call_id=next(ctx.counter))
        for m in members
    ]
    tasks = [
        asyncio.create_task(run_call(m.target, req, ctx=ctx, response=resp, timeout=timeout))
        for m, req, resp in zip(members, requests, responses, strict=True)
    ]
    loop = asyncio.get_running_loop()
    deadline_at = None if deadline is None else loop.time() + deadline
    pending: set[asyncio.Task[Response]] = set(tasks)
    try:
        while pending:
            if quorum is not None and sum(r.ok for r in responses) >= quorum:
                break
            remaining = None if deadline_at is None else deadline_at - loop.time()
            if remaining is not None and remaining <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # a setup error such as a replay miss
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for resp, task in zip(responses, tasks, strict=True):
        if task in pending:
            resp.late = True
    return RoundOutcome(responses, pending)
