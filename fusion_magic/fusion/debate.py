"""debate: each member sees the others' answers (anonymised, shuffled per member) and revises, for up
to R rounds, stopping early once the answers agree. The judge then sees the first and the last round.

Conformity is the known failure of debate (pools converge confidently on a wrong answer), so rounds
are capped, members are told to keep a correct answer under pressure, and the judge is shown how each
answer moved rather than only the consensus.

    rounds = await run_debate(members, first_round, question=q, options=options, ctx=ctx, rng=rng)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..calls.call import CallContext
from ..calls.requests import NO_CONTEXT, Context
from ..core.record import Response
from ..judge.labels import answer_label
from ..judge.vote import agree
from ..providers.base import Message
from .pool import Member, run_round
from .requests import member_request

if TYPE_CHECKING:
    from .options import FuseOptions

REVISE = (
    "Other participants answered the same question; their answers follow, anonymous and in random order."
    "\n\n{others}\n\nConsider them critically. If one shows you made a mistake, correct your answer; "
    "if you are right, keep your answer even if others disagree. Reply with your complete revised answer "
    "only."
)


def revision_turns(own: Response, others: Sequence[Response], rng: random.Random) -> tuple[Message, Message]:
    """The turns a revision adds after the opening: the member's own answer, then the others' (shuffled)."""
    shuffled = list(others)
    rng.shuffle(shuffled)
    rendered = "\n\n".join(
        f"### Answer {answer_label(i)}\n{r.text.strip()}" for i, r in enumerate(shuffled)
    )
    return Message("assistant", own.text.strip()), Message("user", REVISE.format(others=rendered))


async def run_debate(
    members: Sequence[Member],
    first: list[Response],
    *,
    question: str,
    options: FuseOptions,
    ctx: CallContext,
    rng: random.Random,
    deadline_at: float | None = None,
    context: Callable[[str], Context] = lambda label: NO_CONTEXT,
) -> list[list[Response]]:
    """Up to ``options.rounds`` revision rounds after ``first``. Returns every round's latest answer per
    member, round 0 first.

    A member that failed in round 0 sits the debate out; one that fails or is late in a later round keeps
    its last good answer. ``deadline_at`` (loop time) bounds the whole debate: no round starts after it,
    and a running round returns with what arrived by then. ``context`` gives each seat's thread and
    attachments (``FusionPlan.context``): a revision repeats the opening its first answer had.
    """
    loop = asyncio.get_running_loop()
    history: list[list[Response]] = [first]
    current = {m.label: r for m, r in zip(members, first, strict=True) if r.ok}
    for n in range(1, options.rounds + 1):
        if len(current) < 2 or agree(list(current.values())):
            break
        remaining = None if deadline_at is None else deadline_at - loop.time()
        if remaining is not None and remaining <= 0:
            break
        active = [m for m in members if m.label in current]
        requests = [
            member_request(m, question, options, *revision_turns(
                current[m.label], [r for label, r in current.items() if label != m.label], rng),
                context=context(m.label))
            for m in active
        ]
        outcome = await run_round(active, requests, ctx=ctx, round=n, timeout=options.timeout, deadline=remaining)
        ctx.pending |= outcome.pending
        for m, r in zip(active, outcome.responses, strict=True):
            if r.ok and r.text.strip() and not r.late:
                current[m.label] = r
        history.append(outcome.responses)
    return history


def final_answers(members: Sequence[Member], history: list[list[Response]]) -> list[Response]:
    """Each member's latest ok answer over all rounds, in member order."""
    latest: dict[str, Response] = {}
    for round_responses in history:
        for r in round_responses:
            if r.ok and r.text.strip() and r.label and not r.late:
                latest[r.label] = r
    return [latest[m.label] for m in members if m.label in latest]
