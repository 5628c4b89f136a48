"""An evaluation from plan to result: every question x strategy x repeat, scored, with bounded concurrency.

``plan_evaluation`` reads and checks the questions and plans every strategy (model ids, keys, options), so
bad input is a one-line ``ConfigError`` before any call. ``run_evaluation`` is pure async policy: it fills
the ``EvalResult`` it is given in place, row by row as each finishes, so an interrupt keeps every finished
row; the ``CancelledError`` goes on after the result is marked ``interrupted``. Running the same plan again
with the cache on (``Settings(cache="on")``) answers the finished calls from the cache; passing the same
result again skips its finished rows without any call.

    plan = plan_evaluation("questions.csv", Settings(cache="on"), pool=[...], strategies=["single", "self:5"])
    plan = plan_evaluation("questions.csv", Settings(), EvalOptions(repeats=3))   # the same options as one object
    result = new_result(plan)
    await run_evaluation(plan, ctx, on_row=lambda done, total, row: print(done, "/", total), result=result)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Unpack

from ..calls.batch import BatchRunner, PollPolicy
from ..calls.call import CallContext, Target, prepare
from ..calls.receipts import Receipts
from ..calls.runlog import RunLog
from ..calls.settings import Settings
from ..core.errors import ConfigError
from ..core.option import check_keywords
from ..fusion.defaults import resolved_pool
from ..fusion.engine import check_takes_attachments
from ..providers.batch import batch_api_for
from .data import AUTO, CLOSED_INSTRUCTION, Question, load_questions
from .options import DEFAULT_CONCURRENCY, EvalKeywords, EvalOptions
from .result import EvalResult, EvalRow
from .scoring import MATCH, Scorer, judge_rubric, score_closed
from .strategies import Strategy, answer, plan_strategies

log = logging.getLogger("fusion_magic")

# on_row(done, total, row): called on the engine loop after each row is scored; must be quick.
RowCallback = Callable[[int, int, EvalRow], None]


@dataclass(frozen=True)
class EvalPlan:
    """Everything an evaluation will do, checked; nothing has been sent.

    ``scorer`` scores closed questions; ``scorers`` are the questions' own (their ``scorer`` column, parsed),
    by question id, over it (``scorer_for``). ``graders`` are the judge models that score: open questions with
    ``rubric_judge`` (None when every question is closed), and ``judge:MODEL`` scorers by model id.
    ``notice`` says which default pool or judge was picked (the caller shows it once). ``seed`` is the one
    every strategy's seeds are drawn from (None: the models' own randomness).
    """

    questions: tuple[Question, ...]
    strategies: tuple[Strategy, ...]
    repeats: int
    judge: str
    rubric_judge: Target | None
    concurrency: int
    settings: Settings
    instruction: str | None = AUTO
    warnings: tuple[str, ...] = field(default_factory=tuple)
    notice: str | None = None
    seed: int | None = None
    scorer: Scorer = MATCH
    graders: Mapping[str, Target] = field(default_factory=dict)
    scorers: Mapping[str, Scorer] = field(default_factory=dict)
    # Batch mode (``calls/batch.py``): the calls whose provider has a batch API go through it.
    batch: bool = False
    retry_live: bool = False
    poll_s: float | None = None
    # The questions file the plan read (absolute), None for a DataFrame or a list: what a resume reads again.
    source: str | None = None
    pool: tuple[str, ...] = ()  # the pool as resolved (the default's ids when none was given)

    @property
    def total(self) -> int:
        """Rows the run makes: questions x strategies x repeats."""
        return len(self.questions) * len(self.strategies) * self.repeats

    @property
    def strategy_names(self) -> list[str]:
        return [s.name for s in self.strategies]

    @property
    def targets(self) -> list[Target]:
        """Every model the evaluation may call: the strategies' (judges included) and the scorers'."""
        graders = [*self.graders.values(), *([] if self.rubric_judge is None else [self.rubric_judge])]
        return [*(t for s in self.strategies for t in s.targets), *graders]

    @property
    def identity(self) -> str:
        """What makes this evaluation the same one when it is asked again (its questions, strategies, models,
        repeats, seed, instruction and scorers): the key its batch receipts are kept under, so a new kernel
        re-attaches to the batches an earlier one submitted."""
        blob = json.dumps({
            "questions": [[q.id, q.question, q.kind, list(q.references), q.rubric,
                           [a.sha256 for a in q.attachments]] for q in self.questions],
            "strategies": [[s.name, s.models] for s in self.strategies], "repeats": self.repeats,
            "judge": self.judge, "seed": self.seed, "instruction": self.instruction, "scorer": self.scorer.name,
            "scorers": {k: v.name for k, v in self.scorers.items()},
            "endpoints": sorted({t.endpoint.base_url for t in self.targets}),
        }, sort_keys=True, default=str)
        return "ev" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def plan_evaluation(data: Any, settings: Settings, options: EvalOptions | None = None,
                    **keywords: Unpack[EvalKeywords]) -> EvalPlan:
    """Check and resolve an evaluation. Raises ``ConfigError`` (one line) on any problem; sends nothing.

    ``data``: see ``load_questions``. The options (``EvalOptions``, or its fields as keywords over it) say
    which pool, strategies, judges, scorer and seed. ``seed`` (as ``%%fuse --seed``) makes the evaluation
    repeatable: ``single`` sends it, a fused strategy's seat i sends ``seed + i``, its judge the seed (each
    repeat shifted by ``strategies.SEED_STRIDE``). A question's ``scorer`` column overrides ``scorer``.
    """
    check_keywords(keywords, EvalOptions)
    o = (options or EvalOptions()).with_(**keywords)
    default_scorer = MATCH if o.scorer is None else Scorer.parse(o.scorer)  # parsed already: EvalOptions did
    questions = load_questions(data)
    ids, judge_id, notice = resolved_pool(settings.with_(pool=o.pool, judge=o.judge))
    names = list(o.strategies) if o.strategies else _default_strategies(ids)
    planned, warnings = plan_strategies(names, ids, judge_id, settings, questions[0].question, seed=o.seed)
    attached = [a for q in questions for a in q.attachments]
    if attached:
        # Every strategy's models must take every question's files: refused now, not as failed rows later.
        check_takes_attachments([t for s in planned for t in s.targets], attached)
    rubric = _rubric_judge(questions, o.rubric_judge, judge_id, settings)
    scorers = _question_scorers(questions)
    graders = {s.judge: prepare(s.judge, settings)
               for s in (default_scorer, *scorers.values()) if s.judge is not None}
    plan = EvalPlan(
        questions=tuple(questions), strategies=tuple(planned), repeats=o.repeats, judge=judge_id,
        rubric_judge=rubric, concurrency=o.concurrency, settings=settings, instruction=o.instruction,
        warnings=tuple(warnings), notice=notice, seed=o.seed, scorer=default_scorer, graders=graders,
        scorers=scorers, batch=o.batch, retry_live=o.retry_live, poll_s=o.poll_s,
        source=str(Path(data).expanduser().absolute()) if isinstance(data, str | Path) else None, pool=tuple(ids),
    )
    if o.batch:
        _check_batch(plan)
    return plan


def resume_options(plan: EvalPlan) -> dict[str, object]:
    """What the run log keeps of a batch evaluation so ``%fuse eval resume`` can plan it again in a new process:
    its questions file and every option, resolved (the pool's ids, the strategies' expanded names), so the plan
    made from them has the same ``identity`` and re-attaches to the same receipts."""
    return {"source": plan.source, "identity": plan.identity, "options": {
        "pool": list(plan.pool),
        "strategies": plan.strategy_names, "repeats": plan.repeats, "judge": plan.judge,
        "concurrency": plan.concurrency, "instruction": plan.instruction, "seed": plan.seed,
        "scorer": plan.scorer.name if plan.scorer.function is None else None,
        "rubric_judge": None if plan.rubric_judge is None else plan.rubric_judge.model_id,
        "batch": True, "retry_live": plan.retry_live, "poll_s": plan.poll_s}}


def _check_batch(plan: EvalPlan) -> None:
    """A batch evaluation needs a model with a batch API and the run log (its receipts): refused now if not."""
    if not any(batch_api_for(t.spec, t.endpoint) for t in plan.targets):
        models = ", ".join(dict.fromkeys(t.model_id for t in plan.targets))
        raise ConfigError(f"--batch: none of these models' providers has a batch API ({models}); OpenAI, "
                          "Anthropic, Gemini and OpenRouter do. Run without --batch")
    if plan.settings.cache == "replay":
        raise ConfigError("--batch with cache replay sends nothing: drop one of them")
    if plan.settings.run_log_path() is None:
        raise ConfigError("--batch keeps its receipts (what was submitted and paid for) in the run log, which is "
                          "off: turn it on (%config FusionMagics.run_log, or $FUSION_MAGIC_RUN_LOG)")


def _default_strategies(pool: Sequence[str]) -> list[str]:
    return ["single", "best-of"] if len(set(pool)) > 1 else ["single", "self"]


def _rubric_judge(questions: Sequence[Question], rubric_judge: str | None, judge: str,
                  settings: Settings) -> Target | None:
    if not any(q.kind == "open" for q in questions):
        return None
    model = rubric_judge or (judge if judge != "vote" else None)
    if not model or model == "vote":
        raise ConfigError("open questions (with a rubric) need a judge model to score them: pass rubric_judge=... "
                          "(the vote cannot read a rubric)")
    return prepare(model, settings)


def _question_scorers(questions: Sequence[Question]) -> dict[str, Scorer]:
    """The scorer of every question that names its own, by question id; a question's unknown scorer is a
    ``ConfigError`` naming the question. The plan prepares the ``judge:MODEL`` ones' models (their ids and
    keys checked) before any call."""
    scorers: dict[str, Scorer] = {}
    for q in questions:
        if q.scorer is not None:
            try:
                scorers[q.id] = Scorer.parse(q.scorer)
            except ConfigError as exc:
                raise ConfigError(f"question {q.id!r}: {exc}") from None
    return scorers


def scorer_for(plan: EvalPlan, question: Question) -> Scorer:
    """The scorer of ``question``: its own ``scorer`` column, else the run's."""
    return plan.scorers.get(question.id, plan.scorer)


def new_result(plan: EvalPlan) -> EvalResult:
    """The empty result a run of ``plan`` fills; hold on to it to keep the rows of an interrupted run."""
    return EvalResult(questions=list(plan.questions), strategies=plan.strategy_names, repeats=plan.repeats,
                      judge=plan.judge, warnings=list(plan.warnings))


async def run_evaluation(plan: EvalPlan, ctx: CallContext, *, on_row: RowCallback | None = None,
                         result: EvalResult | None = None) -> EvalResult:
    """Answer and score every question x strategy x repeat, at most ``plan.concurrency`` at a time, in order
    (repeat, then question, then strategy: an interrupted run has compared every strategy on its first
    questions). Rows already in ``result`` are kept and not run again.

    Cancelled, it cancels what is running, marks ``result.interrupted`` and re-raises ``CancelledError``; a
    setup error from a call (a cache replay miss) does the same and re-raises that error.
    """
    if result is None:
        result = new_result(plan)
    if plan.batch:
        return await _run_batched(plan, ctx, on_row, result)
    return await _run_rows(plan, ctx, on_row, result, plan.concurrency)


async def _run_batched(plan: EvalPlan, ctx: CallContext, on_row: RowCallback | None,
                       result: EvalResult) -> EvalResult:
    """Every row at once, their calls through the providers' batch APIs (``calls/batch.py``): each wave is
    what the rows ask for together, the live calls (no batch API) at most ``concurrency`` at a time."""
    path = plan.settings.run_log_path()
    assert path is not None and ctx.client is not None  # planned: batch mode needs the run log; api gives a client
    receipts = Receipts(RunLog(path), plan.identity)
    policy = PollPolicy() if plan.poll_s is None else PollPolicy(first_s=plan.poll_s)
    runner = BatchRunner(ctx.client, receipts, plan.targets, policy=policy, retry_live=plan.retry_live,
                         live_limit=plan.concurrency, listeners=ctx.listeners)
    batched = replace(ctx, batch=runner)
    try:
        await _run_rows(plan, batched, on_row, result, max(plan.total, 1))
    finally:
        result.batch = runner.tally
        result.batches = runner.batches
        await runner.aclose()
    if len(result.entries) == plan.total and not runner.unsettled:
        # Every row is in and every batch was read: a later run of the same evaluation starts afresh. A batch
        # that could not be read keeps its receipts open: paid for, a resume fetches it.
        receipts.close()
    return result


async def _run_rows(plan: EvalPlan, ctx: CallContext, on_row: RowCallback | None, result: EvalResult,
                    concurrency: int) -> EvalResult:
    finished = {e.key for e in result.entries}
    units = [(q, s, rep) for rep in range(plan.repeats) for q in plan.questions for s in plan.strategies
             if (q.id, s.name, rep) not in finished]
    done = plan.total - len(units)
    result.interrupted = False
    semaphore = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    base_wall = result.wall_s

    async def one(question: Question, strategy: Strategy, repeat: int) -> None:
        nonlocal done
        async with semaphore:
            row = await run_row(plan, question, strategy, repeat, ctx)
        # Appended only once scored: an interrupted row is never half in the result.
        result.entries.append(row)
        done += 1
        if on_row is not None:
            try:
                on_row(done, plan.total, row)
            except Exception:  # a progress bar's bug must not stop the evaluation
                log.exception("fusion_magic evaluation: the on_row callback failed")

    # Tasks start in order and the semaphore is FIFO, so rows are worked on in the order of ``units``.
    tasks = [asyncio.create_task(one(*unit)) for unit in units]
    try:
        if tasks:
            finished_tasks, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failure = next((t.exception() for t in finished_tasks if not t.cancelled() and t.exception()), None)
            if failure is not None:
                raise failure
    except BaseException as exc:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        result.interrupted = True
        if not isinstance(exc, asyncio.CancelledError):
            result.warnings.append(f"Stopped: {exc}")
        raise
    finally:
        result.wall_s = base_wall + time.monotonic() - started
    return result


def instruction_for(strategy: Strategy, instruction: str | None) -> str | None:
    """The instruction ``strategy`` is asked with (``AUTO`` resolved for its models)."""
    if instruction != AUTO:
        return instruction
    return None if strategy.local_only else CLOSED_INSTRUCTION


async def run_row(plan: EvalPlan, question: Question, strategy: Strategy, repeat: int,
                  ctx: CallContext) -> EvalRow:
    """One question answered by one strategy and scored."""
    started = time.monotonic()
    attempt = await answer(strategy, question.prompt(instruction_for(strategy, plan.instruction)), repeat=repeat,
                           ctx=ctx, attachments=question.attachments)
    latency = time.monotonic() - started
    scorer = scorer_for(plan, question)
    row = EvalRow(question=question, strategy=strategy.name, repeat=repeat, answer=attempt.answer, correct=False,
                  scorer=scorer.name if question.kind == "closed" else "rubric", calls=attempt.calls,
                  latency_s=latency, error=attempt.error, note=attempt.note)
    if attempt.error is not None:
        row.why = "no answer: the strategy failed"  # scored wrong: leaving it out would flatter the strategy
        return row
    if attempt.abstained is not None:
        row.why = "no answer: the vote found no majority"  # an abstention is wrong, for the same reason
        return row
    if question.kind == "closed" and scorer.judge is None:
        s = score_closed(scorer, attempt.answer, question.references, question=question.question)
        row.correct, row.extracted, row.why = s.correct, s.extracted, s.why
        return row
    grader = plan.graders[scorer.judge] if question.kind == "closed" and scorer.judge else plan.rubric_judge
    assert grader is not None  # planned: open questions have a rubric judge, judge:MODEL its model
    graded = await judge_rubric(grader, _graded(question), attempt.answer, ctx=ctx, timeout=strategy.options.timeout)
    row.correct, row.scoring_calls = graded.correct, graded.calls
    if graded.correct is None:
        row.why = graded.reason
    elif graded.reason:
        row.note = "; ".join(n for n in (row.note, f"scorer: {graded.reason}") if n)
        if not graded.correct:
            row.why = graded.reason
    return row


def _graded(question: Question) -> Question:
    """What a judge grades against: an open question's rubric, or for a closed one graded by ``judge:MODEL``
    a rubric that asks for the reference's answer."""
    if question.kind == "open":
        return question
    rubric = ("States the same final answer as the reference answer (any equivalent form counts; a hedged, "
              "negated or partly wrong answer does not).")
    return replace(question, rubric=rubric)


__all__ = ["DEFAULT_CONCURRENCY", "EvalPlan", "RowCallback", "instruction_for", "new_result", "plan_evaluation",
           "resume_options", "run_evaluation", "run_row", "scorer_for"]
