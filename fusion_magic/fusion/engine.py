"""A fused run from plan to result: resolve everything up front, fan out, judge, report.

``plan_fusion`` takes the run's ``FuseOptions`` (already checked) and resolves the pool, the judge and
every key, so bad input fails with a ``ConfigError`` before any network call. ``run_fusion`` is pure
async policy; it never imports IPython or widgets, nor the api above it. Cancelled (a kernel interrupt),
a run still hands back what had arrived: the ``result`` it was given is left as the partial result
before the ``CancelledError`` goes on.

    plan = plan_fusion("Why is the sky blue?", Settings(), FuseOptions(pool=("local:gemma3-270m",), self_n=3))
    result = await run_fusion(plan, ctx)
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..calls.call import CallContext, Target, prepare
from ..calls.requests import Context
from ..calls.settings import Settings
from ..core.context_window import check_fits
from ..core.errors import ConfigError
from ..core.events import CallFinished, CallStarted, EngineEvent, emit
from ..core.names import seat_labels
from ..core.pricing import approx_tokens
from ..core.record import Response
from ..core.state import State
from ..judge.judging import decide, shuffle_rng
from ..judge.verdict import Judgement
from ..providers.base import check_attachments
from ..providers.registry import attachment_limits, check_model_attachments
from .debate import final_answers, run_debate
from .defaults import resolved_pool
from .events import JudgeStarted, RunFinished, RunStarted, RunStopped, VerdictReady
from .options import FuseOptions
from .pool import Member, run_round
from .requests import member_request
from .result import FusionResult
from .thread import check_continuable, earlier_turns, thread_attachments, thread_history

SAMPLING_TEMPERATURE = 0.8  # when one model fills several seats, it needs randomness to differ


@dataclass(frozen=True)
class FusionPlan:
    """Everything a run will do, resolved and validated; nothing has been sent yet.

    ``settings`` are the ones the run's calls see (``FuseOptions.run_settings``). ``warnings`` belong to
    this run and go into its result. ``notice`` says which defaults were picked (the offline pool when no
    key is set): the same for every run of a session, so the caller shows it (the magic once per kernel)
    and it stays out of the result's warnings.
    """

    prompt: str
    options: FuseOptions
    members: tuple[Member, ...]
    judge_id: str
    judge: Target | None
    settings: Settings
    warnings: tuple[str, ...] = field(default_factory=tuple)
    notice: str | None = None
    # The judge model an undecided vote defers to (an evaluation's judge for its vote and self:K strategies).
    tiebreak: Target | None = None
    # The run this one continues (``--continue``): its thread is repeated before the prompt in every call.
    parent: FusionResult | None = None

    @property
    def pool(self) -> list[str]:
        return [m.target.model_id for m in self.members]

    def context(self, label: str | None = None) -> Context:
        """What a call of this run sees besides the prompt: the thread so far (seat ``label``'s own earlier
        answers under ``--thread own``; the fused ones for the judge, ``label`` None) and the attachments."""
        thread = self.options.thread if label is not None else "fused"
        return Context(history=thread_history(self.parent, thread, label), attachments=self.options.attach,
                       reused=self.options.mode == "debate")


def assign_seats(targets: Sequence[Target], temperature: float | None, seed: int | None = None) -> list[Member]:
    """One seat per target. A model that fills several seats gets a seed per seat and, unless the user
    set one, a sampling temperature: without randomness its seats would all say the same thing.

    With a run ``seed`` (``--seed``), seat i (0-based, in pool order) sends ``seed + i``, every seat alike:
    the same seed sends the same requests, and a model that fills several seats still differs per seat."""
    counts = Counter(t.model_id for t in targets)
    seen: Counter[str] = Counter()
    members = []
    for i, (t, label) in enumerate(zip(targets, seat_labels([t.model_id for t in targets]), strict=True)):
        seen[t.model_id] += 1
        repeated = counts[t.model_id] > 1
        seat_seed = seed + i if seed is not None else (seen[t.model_id] if repeated else None)
        members.append(Member(
            t, label, seed=seat_seed,
            temperature=temperature if temperature is not None else (SAMPLING_TEMPERATURE if repeated else None),
        ))
    return members


def check_takes_attachments(targets: Sequence[Target], attachments: Sequence[Any], *, will_run: bool = True) -> None:
    """Refuse, before any request, a model that cannot take the attachments (a text-only model given an image,
    a type or a size its provider refuses, a model its provider's list says reads no images): one
    ``ConfigError`` line naming the model, the file and the fix. ``will_run`` False (an estimate) asks no list."""
    attached = tuple(attachments)
    if not attached:
        return
    for target in {t.model_id: t for t in targets}.values():
        why = "the bundled local model reads text only" if target.is_local else ""
        check_attachments(attachment_limits(target.spec), attached, target.model_id, why_text_only=why)
        if will_run:
            check_model_attachments(target.spec, target.endpoint, target.model, target.model_id, attached)


def plan_fusion(prompt: str, settings: Settings, options: FuseOptions, *,
                require_keys: bool = True, parent: FusionResult | None = None) -> FusionPlan:
    """Resolve a run: the pool and judge (configured ones, else the defaults for the keys that are set),
    each model id and its key. Raises ``ConfigError`` with one readable line on any problem.

    ``parent`` is the run this one continues (``--continue``): every call repeats its thread first, so each
    model must take every attachment of the thread. ``require_keys=False`` plans without keys, for
    ``--estimate``; such a plan must not be run.
    """
    if not prompt or not prompt.strip():
        raise ConfigError("the prompt is empty: write it in the cell body below the %%fuse line")
    if parent is not None:
        check_continuable(parent, options.thread)
    elif options.thread != "fused":
        raise ConfigError(f"--thread {options.thread} is for a follow-up: add --continue NAME (or call r.ask(...)); "
                          "a first question has no earlier answers")
    settings = options.run_settings(settings)
    # The options already hold the session's pool and judge under any given ones; empty still means
    # "pick for the keys that are set", and an explicit judge keeps the note from claiming the vote.
    ids, judge_id, note = resolved_pool(settings.with_(pool=options.pool, judge=options.judge))
    if options.self_n is not None:
        ids = ids[:1] * options.self_n
    targets = [prepare(i, settings, require_key=require_keys) for i in ids]
    judge_target = None if judge_id == "vote" else prepare(judge_id, settings, require_key=require_keys)
    warnings: list[str] = []
    if judge_target is not None and judge_target.model_id in {t.model_id for t in targets}:
        warnings.append(
            f"The judge {judge_id} is also in the pool: judges favour their own answers; "
            "consider a judge from another family, or -j vote."
        )
    members = assign_seats(targets, options.temperature, options.seed)
    options.check_seats(len(members))
    check_takes_attachments([*targets, *([judge_target] if judge_target else [])],
                            [*thread_attachments(parent), *options.attach], will_run=require_keys)
    # A prompt (with its text files) that cannot fit a member's window: one line now, not every member's 400.
    text = prompt + "".join(a.text() for a in options.attach if not a.binary)
    check_fits([t.model_id for t in targets], approx_tokens(text))
    return FusionPlan(
        prompt=prompt.strip(),
        options=options,
        members=tuple(members),
        judge_id=judge_id,
        judge=judge_target,
        settings=settings,
        warnings=tuple(warnings),
        notice=note,
        parent=parent,
    )


def _rng_for(plan: FusionPlan, ctx: CallContext) -> random.Random:
    """A fresh shuffle per judge call. With the cache on, or a ``--seed``, the shuffles are seeded from the
    run itself, so a re-run sends byte-identical judge and debate requests (and replays instead of billing
    again)."""
    return shuffle_rng(ctx, plan.prompt, plan.options.mode, plan.judge_id, *plan.pool,
                               seed=plan.options.seed)


def new_result(plan: FusionPlan) -> FusionResult:
    """The empty result a run of ``plan`` fills; hold on to it and pass it to ``run_fusion`` to keep what
    an interrupted run had (the run raises, so it cannot return it)."""
    return FusionResult(prompt=plan.prompt, mode=plan.options.mode, judge=plan.judge_id, pool=plan.pool,
                        warnings=list(plan.warnings), attachments=plan.options.attach, parent=plan.parent,
                        thread=plan.options.thread if plan.parent is not None else None, options=plan.options,
                        settings=plan.settings)


async def run_fusion(plan: FusionPlan, ctx: CallContext, *, rng: random.Random | None = None,
                     result: FusionResult | None = None) -> FusionResult:
    """Run the pool (and debate rounds), then the judge; return the fused result (``result``, filled in
    place, when given: see ``new_result``).

    Late members (after quorum/deadline) keep running on this loop and fill their Response in place,
    unless the run itself is cancelled or fails: then they are cancelled too, before this returns.
    Cancelled, the run re-raises ``CancelledError`` (so timeouts and task groups around it still work)
    after leaving ``result`` as the partial result: see ``_keep_partial``.
    """
    if result is None:
        result = new_result(plan)
    # Every call of the run, as it starts: a cancelled round never returns its responses, nor a
    # cancelled judge call its own, and the partial result must still show them.
    started_calls: list[Response] = []

    def collect(event: EngineEvent) -> None:
        if isinstance(event, CallStarted):
            started_calls.append(event.response)

    ctx.listeners.append(collect)
    try:
        return await _run_stages(plan, ctx, rng or _rng_for(plan, ctx), result, started_calls)
    finally:
        ctx.listeners.remove(collect)


async def _run_stages(plan: FusionPlan, ctx: CallContext, rng: random.Random, result: FusionResult,
                      started_calls: list[Response]) -> FusionResult:
    options = plan.options
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    deadline_at = None if options.deadline is None else loop.time() + options.deadline
    emit(ctx.listeners, RunStarted(plan.prompt, options.mode, plan.judge_id,
                                   tuple(m.label for m in plan.members), tuple(plan.pool), options.attach,
                                   earlier_turns(plan.parent)))
    try:
        outcome = await run_round(
            plan.members, [member_request(m, plan.prompt, options, context=plan.context(m.label))
                           for m in plan.members], ctx=ctx,
            quorum=options.quorum, deadline=options.deadline, timeout=options.timeout,
        )
        result.responses.extend(outcome.responses)
        ctx.pending |= outcome.pending
        first = [r for r in outcome.responses if not r.late]
        final, first_round = first, None
        if options.mode == "debate":
            # Only members that answered on time debate; a straggler's answer never reaches the judge.
            on_time = [m for m, r in zip(plan.members, outcome.responses, strict=True) if not r.late]
            history = await run_debate(on_time, first, question=plan.prompt, options=options, ctx=ctx, rng=rng,
                                       deadline_at=deadline_at, context=plan.context)
            for later in history[1:]:
                result.responses.extend(later)
            final = final_answers(on_time, history)
            first_round = {r.label or "": r for r in first if r.ok}
        await _judge(result, plan.judge_id, options.mode, ctx, decide(
            plan.judge, options.mode, plan.prompt, final, members=result.members, first_round=first_round, ctx=ctx,
            rng=rng, timeout=options.timeout, orders=options.orders, seed=options.seed, tiebreak=plan.tiebreak,
            context=plan.context()))
    except BaseException as exc:
        # An interrupt (CancelledError) or a setup error: late members must not outlive the run. The
        # partial result is kept even if a second cancel (%unload_ext) interrupts the drain.
        cancelled = isinstance(exc, asyncio.CancelledError)
        try:
            await drain(ctx.pending, cancel=True)
        finally:
            if cancelled:
                _keep_partial(result, started_calls, time.monotonic() - started)
            emit(ctx.listeners, RunStopped("cancelled" if cancelled else f"{type(exc).__name__}: {exc}",
                                           result if cancelled else None))
        raise
    result.wall_s = time.monotonic() - started
    emit(ctx.listeners, RunFinished(result))
    return result


def _keep_partial(result: FusionResult, started_calls: Sequence[Response], wall_s: float) -> None:
    """Turn ``result`` into what a cancelled run had: every call that started, with the text it had
    streamed; those that had not finished ``cancelled``; no verdict; a warning that says so. Its
    cancelled calls make it ``degraded``."""
    calls = {id(r): r for r in (*result.responses, *result.judge_responses, *started_calls)}
    for r in calls.values():
        if r.state.is_running:  # run_call records its own cancellation; this covers a call stopped before that
            r.status, r.error = State.CANCELLED.value, State.CANCELLED.value
    ordered = sorted(calls.values(), key=lambda r: r.call_id)
    result.responses = [r for r in ordered if r.role != "judge"]
    result.judge_responses = [r for r in ordered if r.role == "judge"]
    result.wall_s = wall_s
    result.warnings.append(f"Interrupted after {wall_s:.1f} s: no verdict; the answers are what had arrived.")


async def _judge(result: FusionResult, judge_id: str, mode: str, ctx: CallContext,
                 decision: Coroutine[Any, Any, Judgement]) -> None:
    """Run ``decision`` (a ``judge.judging.decide`` not yet started) between the judge's events, into ``result``."""
    emit(ctx.listeners, JudgeStarted(judge_id, mode))
    judgement = await decision
    result.judge_responses.extend(judgement.judge_responses)
    result.verdict = judgement.verdict
    result.answer = judgement.answer
    emit(ctx.listeners, VerdictReady(judgement.verdict))


async def rejudge(
    previous: FusionResult,
    settings: Settings,
    ctx: CallContext,
    *,
    mode: str | None = None,
    judge: str | None = None,
    rng: random.Random | None = None,
    orders: int = 1,
) -> FusionResult:
    """Judge an earlier run again (late answers included) without calling the pool again; ``orders`` as
    ``--orders`` (the judge on that many orderings of the answers)."""
    mode = mode or previous.mode  # checked by api.plan_rejudge, or the earlier run's own
    judge_id = judge or previous.judge
    target = None if judge_id == "vote" else prepare(judge_id, settings)
    if target is not None:
        check_takes_attachments([target], [*thread_attachments(previous.parent), *previous.attachments])
    rounds = max((r.round for r in previous.responses), default=0)
    if mode == "debate" and rounds == 0:
        raise ConfigError("rejudge as debate needs a run that debated (the pool is not called again)")
    first_round = {r.label or "": r for r in previous.responses if r.round == 0 and r.ok}
    # The judge's row follows the earlier calls in the ledger.
    ctx.counter = itertools.count(max((r.call_id for r in previous.calls), default=0) + 1)
    result = FusionResult(prompt=previous.prompt, mode=mode, judge=judge_id, pool=list(previous.pool),
                          responses=[replace(r) for r in previous.responses],
                          warnings=[f"Rejudged with {judge_id} ({mode}); the pool was not called again."],
                          attachments=previous.attachments, parent=previous.parent, thread=previous.thread,
                          options=previous.options, settings=previous.settings or settings)
    for r in result.responses:
        r.late = False  # a late answer is now on time: the new judge sees it
    answers = [r for r in result.members if r.ok]  # each member's latest good answer
    labels = tuple(dict.fromkeys(r.label for r in result.responses if r.label))
    models = tuple(next(r.model for r in result.responses if r.label == label) for label in labels)
    emit(ctx.listeners, RunStarted(result.prompt, mode, judge_id, labels, models, previous.attachments,
                                   earlier_turns(previous.parent)))
    for r in result.responses:
        emit(ctx.listeners, CallFinished(r, reused=True))
    started = time.monotonic()
    # Seeded under the cache like a fresh run: the same rejudge sends the same request, and replays.
    rng = rng or shuffle_rng(ctx, "rejudge", previous.prompt, mode, judge_id, *(r.text for r in answers))
    await _judge(result, judge_id, mode, ctx, decide(
        target, mode, previous.prompt, answers, members=result.members,
        first_round=first_round if mode == "debate" else None, ctx=ctx, rng=rng, timeout=settings.timeout,
        orders=orders, context=Context(history=thread_history(previous.parent, "fused"),
                                       attachments=previous.attachments)))
    result.wall_s = time.monotonic() - started
    emit(ctx.listeners, RunFinished(result))
    return result


async def drain(tasks: set[asyncio.Task[Response]], *, cancel: bool = False) -> None:
    """Wait for late members (before closing a client they still use), cancelling them first if asked."""
    if cancel:
        for task in tasks:
            task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
