"""The judge call: anonymise and shuffle the answers, ask for reasoning, an analysis and a structured verdict,
parse it tolerantly; with ``--orders N``, ask it on N orderings of the same answers at once and aggregate.

Hygiene (see the bias table in the notebook conventions): candidates are labelled "Answer A, B, ..."
(past Z: AA, AB, ..., as ``labels`` makes them)
with no model names, shuffled afresh for every judge call with the permutation kept for attribution,
shown with their token counts and an instruction to ignore length and position; temperature is 0.
Judges still prefer answers by position, so ``judge_in_orders`` can show the same answers in other orders
(rotations: each answer moves to another place) and report how often the pick stayed the same.

    candidates = anonymise(responses, random.Random())
    verdict, response = await judge_call(target, "best-of", question, candidates, ctx=ctx)
    verdict, calls = await judge_in_orders(target, "best-of", question, candidates, orders=2, ctx=ctx)
    verdict.position_consistency   # 1.0 when both orders picked the same answer

``decide`` is the whole decision every job kind uses: the vote or a judge model, the vote when the model fails,
a judge model when an undecided vote has one to defer to. ``judge_answers`` decides on answers asked elsewhere
(several models' answers about a video).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..calls.call import CallContext, Target, prepare, run_call
from ..calls.requests import NO_CONTEXT, Context, opening, output_cap
from ..calls.settings import ANSWER_MODES, MODES, Settings, check_choice
from ..core.attachment import with_text_files
from ..core.errors import ConfigError, FusionError
from ..core.record import Response
from ..present.wording import failure_detail
from ..providers.base import ChatRequest
from .analysis import bounded_for_local, failures, member_name, read_analysis
from .labels import answer_label, named, unnamed
from .modes import judge_style
from .verdict import Judgement, Verdict
from .verdicts import parse_json_verdict
from .vote import vote

JUDGE_SYSTEM = (
    "You are an impartial expert judge. The answers below are anonymous and in random order. "
    "Judge correctness first, then completeness and clarity. Do not favour an answer for its position, "
    "its length or its style: a short correct answer beats a long padded one. For a factual or "
    "mathematical question, work out the answer yourself before you compare."
)

VOTE_IGNORES_ORDERS = "The vote ignores --orders: it reads no order of the answers, so it has no position bias."

# Said where the analysis would be, so an empty r.analysis is never a silent None. Not on a fallback vote: its
# reasoning already says the judge failed, and a run says a reason once.
VOTE_HAS_NO_ANALYSIS = (
    "No analysis (who said what): the vote is model-free and reads only each answer's final value; "
    "use -j MODEL for a judge that compares them."
)

NO_ANALYSIS = (
    "The judge gave no usable analysis (consensus, contradictions, partial coverage, unique points, blind "
    "spots): "
    "this is its plain verdict."
)


class JudgeFailed(FusionError):
    """The judge call failed or its verdict could not be read; the engine falls back to a vote.

    The message is the reason as a clause that completes "fell back to a vote because ...", without
    the judge's id or the error's ``provider:model kind:`` prefix (the reader already sees which judge it
    was): ``the judge's call failed (timeout: no answer within 30 s)``. ``response`` is the judge call,
    when there was one: its status and full error stay there. ``responses`` are all the judge calls made
    (one per ordering with ``--orders``), ``response`` among them.
    """

    def __init__(self, message: str, response: Response | None = None,
                 responses: Sequence[Response] | None = None) -> None:
        super().__init__(message)
        self.response = response
        self.responses = list(responses) if responses is not None else ([response] if response else [])


@dataclass(frozen=True)
class Candidate:
    """An anonymised answer: the label the judge sees and the response it stands for."""

    label: str
    response: Response
    first: Response | None = None  # debate: the same member's first-round answer


def anonymise(responses: Sequence[Response], rng: random.Random,
              first_round: Mapping[str, Response] | None = None) -> list[Candidate]:
    """Shuffle the ok answers and label them A, B, C, ..., Z, AA, AB, ... (a fresh permutation per call)."""
    ok = [r for r in responses if r.ok and r.text.strip()]
    order = list(ok)
    rng.shuffle(order)
    return [
        Candidate(answer_label(i), r, (first_round or {}).get(r.label or ""))
        for i, r in enumerate(order)
    ]


def orderings(candidates: Sequence[Candidate], count: int) -> list[list[Candidate]]:
    """Up to ``count`` different orders of the same answers, relabelled A, B, ... by position, the first
    being ``candidates`` as they are.

    Rotations of the given order come first (``n`` of them put every answer in every position once, so a
    judge that favours a position favours each answer once), then rotations of its reverse: ``2n``
    different orders for three answers or more, two for two (the swap), one for one. Fewer than ``count``
    come back only when fewer exist. Deterministic, so under the cache a re-run sends the same requests.
    """
    base = list(candidates)
    reverse = base[::-1]
    sequences = [base[k:] + base[:k] for k in range(len(base))]
    sequences += [reverse[k:] + reverse[:k] for k in range(len(base))]
    out: list[list[Candidate]] = []
    seen: set[tuple[int, ...]] = set()
    for seq in sequences:
        key = tuple(id(c.response) for c in seq)
        if key in seen:
            continue
        seen.add(key)
        out.append([Candidate(answer_label(i), c.response, c.first) for i, c in enumerate(seq)])
        if len(out) == count:
            break
    return out


def _tokens(r: Response) -> str:
    n = r.output_tokens if r.output_tokens is not None else len(r.text.split())
    return f"{n} tokens"


def render_candidates(candidates: Sequence[Candidate], *, debate: bool = False) -> str:
    blocks = []
    for c in candidates:
        if debate and c.first is not None:
            blocks.append(
                f"### Answer {c.label}, first round ({_tokens(c.first)})\n{c.first.text.strip()}\n\n"
                f"### Answer {c.label}, final round ({_tokens(c.response)})\n{c.response.text.strip()}"
            )
        else:
            blocks.append(f"### Answer {c.label} ({_tokens(c.response)})\n{c.response.text.strip()}")
    return "\n\n".join(blocks)


def judge_request(target: Target, mode: str, question: str, candidates: Sequence[Candidate],
                  seed: int | None = None, context: Context = NO_CONTEXT) -> ChatRequest:
    """The judge's request: its system prompt, the conversation so far and the attachments (``context``: a
    follow-up's answers are replies to that thread, about those files), then the question, the anonymous answers
    and the mode's task; ``seed`` is the run's ``--seed`` (None: the provider's own randomness).

    The local judge's schema has its analysis bounded (``bounded_for_local``): its grammar must close
    within the token cap. Strong judges get no length keywords, which some vendors refuse.
    """
    labels = [c.label for c in candidates]
    module = judge_style(mode)
    debate = mode == "debate"
    # The question's text files belong with the question, before the answers and the task (never after the
    # judge's instructions, where a file's words would read as the last word); images and PDFs stay parts.
    asked = with_text_files(question.strip(), tuple(a for a in context.attachments if not a.binary))
    context = replace(context, attachments=tuple(a for a in context.attachments if a.binary))
    user = (
        f"## Question\n{asked}\n\n## Answers\n{render_candidates(candidates, debate=debate)}\n\n"
        f"## Task\n{module.instructions(labels, debate=debate)}"
    )
    schema = module.schema(labels)
    return ChatRequest(
        model=target.model,
        messages=opening(user, JUDGE_SYSTEM, context),
        max_tokens=output_cap(target, judge=True),
        temperature=0.0,
        json_schema=bounded_for_local(schema) if target.is_local else schema,
        schema_name="verdict",
        seed=seed,
    )


async def judge_call(
    target: Target,
    mode: str,
    question: str,
    candidates: Sequence[Candidate],
    *,
    ctx: CallContext,
    timeout: float | None = None,
    order: int = 0,
    seed: int | None = None,
    context: Context = NO_CONTEXT,
) -> tuple[Verdict, Response]:
    """Ask the judge; return its verdict (with its analysis, or a note that it gave none) and the call's
    Response, whose ``ordering`` is ``order`` (the ordering's number with ``--orders``; 0 for a single call).
    Raises JudgeFailed on any failure."""
    if not candidates:
        raise JudgeFailed("there was no answer to judge")
    request = judge_request(target, mode, question, candidates, seed, context)
    response = await run_call(target, request, ctx=ctx, role="judge", ordering=order, timeout=timeout)
    if not response.ok:
        raise JudgeFailed(f"the judge's call failed ({failure_detail(response)})", response)
    labels = {c.label: c.response for c in candidates}
    module = judge_style(mode)
    try:
        verdict = module.read_verdict(response.text, labels, judge=target.model_id, mode=mode)
    except ValueError as exc:
        raise JudgeFailed(f"the judge gave no usable verdict ({exc})", response) from exc
    verdict.raw = response.text
    verdict.labels = {named(k): v.model + (f" ({v.label})" if v.label else "") for k, v in labels.items()}
    names = {c.label: member_name(c.response) for c in candidates}
    columns = [member_name(c.response) for c in sorted(candidates, key=lambda c: c.response.call_id)]
    verdict.analysis = read_analysis((parse_json_verdict(response.text) or {}).get("analysis"), names, columns)
    if verdict.analysis is None:
        verdict.notes.append(NO_ANALYSIS)
    return verdict, response


# --- several orderings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    """One ordering's judge call: its verdict, or why there is none."""

    order: int
    candidates: list[Candidate]
    verdict: Verdict | None
    response: Response | None
    failure: JudgeFailed | None

    @property
    def pick(self) -> Response | None:
        """The answer this ordering ranked best: best-of's winner, merge's ``best``; None if it named none."""
        if self.verdict is None:
            return None
        label = self.verdict.choice_label or self.verdict.best_label
        shown = unnamed(label or "")
        return next((c.response for c in self.candidates if c.label == shown), None)


async def judge_in_orders(
    target: Target,
    mode: str,
    question: str,
    candidates: Sequence[Candidate],
    *,
    orders: int,
    ctx: CallContext,
    timeout: float | None = None,
    seed: int | None = None,
    context: Context = NO_CONTEXT,
) -> tuple[Verdict, list[Response]]:
    """Judge ``candidates`` in up to ``orders`` different orderings (``orderings``), concurrently, and
    aggregate: best-of takes the answer most orderings picked (a tie goes to the earliest ordering's pick);
    merge takes the first usable ordering's synthesis. ``verdict.orders`` and ``verdict.agreement`` say
    what each ordering ranked best and how many agree (best-of's winner; merge's ``best``). Returns the
    verdict and every judge call, in ordering order. With ``orders=1`` this is ``judge_call``.

    Raises JudgeFailed (with every call in ``responses``) when no ordering gave a usable verdict; an
    ordering that failed while another succeeded is a note. Any other error (a cache miss in replay mode,
    a cancellation) cancels the other orderings' calls and goes on.
    """
    ordered = orderings(candidates, orders) if candidates else []
    if len(ordered) <= 1:
        verdict, response = await judge_call(target, mode, question, candidates, ctx=ctx, timeout=timeout,
                                             seed=seed, context=context)
        if orders > 1:
            verdict.notes.insert(0, _capped(orders, len(candidates), 1))
        return verdict, [response]
    tasks = [asyncio.ensure_future(_judge_one(target, mode, question, cands, k, ctx=ctx, timeout=timeout,
                                              seed=seed, context=context))
             for k, cands in enumerate(ordered, start=1)]
    try:
        outcomes = list(await asyncio.gather(*tasks))
    except BaseException:
        # gather cancels the others only when it is cancelled itself; an error in one must stop them too.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    verdict = _aggregate(outcomes, mode)
    if len(ordered) < orders:
        verdict.notes.insert(0, _capped(orders, len(candidates), len(ordered)))
    return verdict, [o.response for o in outcomes if o.response is not None]


async def _judge_one(target: Target, mode: str, question: str, candidates: list[Candidate], order: int, *,
                     ctx: CallContext, timeout: float | None, seed: int | None = None,
                     context: Context = NO_CONTEXT) -> _Outcome:
    try:
        verdict, response = await judge_call(target, mode, question, candidates, ctx=ctx, timeout=timeout,
                                             order=order, seed=seed, context=context)
    except JudgeFailed as exc:
        return _Outcome(order, candidates, None, exc.response, exc)
    return _Outcome(order, candidates, verdict, response, None)


def _aggregate(outcomes: Sequence[_Outcome], mode: str) -> Verdict:
    calls = [o.response for o in outcomes if o.response is not None]
    usable = [o for o in outcomes if o.verdict is not None]
    if not usable:
        first = outcomes[0].failure
        raise JudgeFailed(f"{first}, in each of the {len(outcomes)} orders of the answers",
                          first.response if first else None, calls)
    picks = [o.pick for o in outcomes]
    counted = Counter(id(p) for p in picks if p is not None)
    top = max(counted.values(), default=0)
    # The most-picked answer; a tie goes to the pick of the earliest ordering among the tied.
    reference = next((p for p in picks if p is not None and counted[id(p)] == top), None)
    # best-of stands with the most-picked answer; a synthesis cannot be voted on: the first usable one stands.
    chosen = next(o for o in usable if o.pick is reference) if mode == "best-of" else usable[0]
    verdict = chosen.verdict
    assert verdict is not None  # chosen is usable
    verdict.orders = [member_name(p) if p is not None else None for p in picks]
    n_picks = sum(1 for p in picks if p is not None)
    verdict.agreement = (top, n_picks) if reference is not None else None
    # The tally itself is on the verdict (orders, agreement), which the reports show in one line.
    what = "the merged answer" if mode != "best-of" else "the labels"
    notes = [f"This verdict ({what}, reasoning and analysis) is order {chosen.order}'s."]
    notes += [f"Order {o.order} gave no verdict: {o.failure}." for o in outcomes if o.verdict is None]
    verdict.notes = [*notes, *verdict.notes]
    return verdict


def _capped(asked: int, answers: int, distinct: int) -> str:
    noun = "answer has" if answers == 1 else "answers have"
    times = "once" if distinct == 1 else f"{distinct} times"
    return (f"--orders {asked}: {answers} {noun} only {distinct} different order{'s' if distinct != 1 else ''}, "
            f"so the judge ran {times}.")


def shuffle_rng(ctx: CallContext, *parts: str, seed: int | None = None) -> random.Random:
    """The judge's shuffle of the answers: unseeded without a cache or a seed; otherwise seeded from ``parts``
    (and the seed) so the same run shuffles the same way, and another seed another way."""
    if ctx.cache is None and seed is None:
        return random.Random()
    # Without a seed the parts alone, as before seeds existed: recordings made then still replay.
    keyed = parts if seed is None else (f"seed {seed}", *parts)
    digest = hashlib.sha256("\0".join(keyed).encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


async def decide(
    judge: Target | None,
    mode: str,
    question: str,
    answers: Sequence[Response],
    *,
    members: Sequence[Response],
    first_round: dict[str, Response] | None,
    ctx: CallContext,
    rng: random.Random,
    timeout: float,
    orders: int = 1,
    seed: int | None = None,
    tiebreak: Target | None = None,
    context: Context = NO_CONTEXT,
) -> Judgement:
    """Decide on ``answers``: the vote when ``judge`` is None, else the judge model on ``orders`` orderings
    (falling back to the vote when it fails). An undecided vote defers to ``tiebreak`` when one is given.
    ``members`` are every member's records (the analysis names the ones that failed)."""
    verdict: Verdict
    calls: list[Response] = []
    undecided: Verdict | None = None
    if judge is None:
        verdict = vote(answers, mode=mode)
        if orders > 1:
            verdict.notes.append(VOTE_IGNORES_ORDERS)
        if verdict.undecided and tiebreak is not None:
            # No value most answers state (free text, a tie): the judge model weighs them, not an arbitrary pick.
            undecided, judge = verdict, tiebreak
        else:
            verdict.notes.append(VOTE_HAS_NO_ANALYSIS)
    if judge is not None:
        candidates = anonymise(answers, rng, first_round)
        try:
            verdict, responses = await judge_in_orders(judge, mode, question, candidates, orders=orders, ctx=ctx,
                                                       timeout=timeout, seed=seed, context=context)
            calls.extend(responses)
        except JudgeFailed as exc:
            calls.extend(exc.responses)
            verdict = vote(answers, mode=mode)
            verdict.fallback = True
            # The reason, said once: the judge call keeps its own status and full error on its Response
            # (the ledger, the Judge tab), and the report's DEGRADED line names it in short.
            verdict.reasoning = f"Fell back to a vote because {exc}. {verdict.reasoning}"
        if undecided is not None:
            reason = undecided.no_majority or "No majority"
            verdict.notes.insert(0, f"{reason}: {judge.model_id} judged instead.")
    if verdict.analysis is not None:
        # Columns in pool order, and the members that had nothing to judge: from their records, since the
        # judge never saw them.
        verdict.analysis.models = list(dict.fromkeys(member_name(r) for r in answers if r.ok and r.text.strip()))
        verdict.analysis.failed = failures(members)
    return Judgement(verdict, calls)


async def judge_answers(question: str, answers: Sequence[Response], settings: Settings, ctx: CallContext, *,
                        mode: str, judge: str, orders: int = 1) -> Judgement:
    """Decide on answers that were asked elsewhere (a question about a video, put to several models) with the
    judges and modes of a fused run; the models are not asked again. Debate needs a pool it can ask for
    revisions, so it is refused here."""
    check_choice("mode", mode, MODES)
    if mode not in ANSWER_MODES:
        raise ConfigError(f"{mode} asks the pool to revise its answers; here use "
                          f"{', '.join(ANSWER_MODES)} or the vote judge")
    target = None if judge == "vote" else prepare(judge, settings)
    ok = [r for r in answers if r.ok]
    rng = shuffle_rng(ctx, "answers", question, mode, judge, *(r.text for r in ok))
    started = time.monotonic()
    judgement = await decide(target, mode, question, ok, members=answers, first_round=None, ctx=ctx, rng=rng,
                             timeout=settings.timeout, orders=orders)
    judgement.wall_s = time.monotonic() - started
    return judgement


__all__ = ["NO_ANALYSIS", "VOTE_HAS_NO_ANALYSIS", "VOTE_IGNORES_ORDERS", "Candidate", "JudgeFailed", "anonymise",
           "decide", "judge_answers", "judge_call", "judge_in_orders", "judge_request", "orderings",
           "render_candidates", "shuffle_rng"]
