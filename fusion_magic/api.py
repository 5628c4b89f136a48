"""The Python API without magics: one model (`complete`), a fused pool (`fuse`), video (`video`) and
evaluations (`evaluate`), sync and async.

The sync functions run on the engine loop thread (``core/runner.py``, the one bridge: only this module
submits to it) and work in scripts, terminal IPython and kernels alike; the async ones run on the
caller's loop: ``await afuse(...)`` in a cell. The engine below never calls back up.

Every run of every kind takes the same two steps, which the magics and ``python -m fusion_magic`` use too:

    plan = plan_fuse("Why is the sky blue?", settings)   # or plan_rejudge, plan_complete, plan_video,
                                                          # plan_resume, plan_eval: checked, nothing sent
    job = start(plan, listeners)                          # at once, on the engine thread
    job.result()                                          # Ctrl-C cancels; job.partial holds what arrived

``start`` is the one path of every run: its calls' context (client, listeners, cache), the run log (the run
and every call written as they happen; how it ended, interrupted and failed included) and the interrupt (the
result filled in place is marked interrupted). The async functions take the same path on the caller's loop.

    r = fusion_magic.complete("anthropic:claude-sonnet-4-5", "One line on entropy.")
    f = fusion_magic.fuse("Why is the sky blue?", pool=["local:gemma3-270m"] * 3, judge="vote")
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypedDict, TypeVar, Unpack, overload

import httpx

from .calls.cache import CallCache
from .calls.call import CallContext, Target, prepare, run_call
from .calls.job import RunResult, RunStatus
from .calls.receipts import Receipts
from .calls.requests import Context, opening, output_cap
from .calls.runlog import RunLog
from .calls.settings import Settings
from .core.attachment import Attachment, load_attachments
from .core.errors import ConfigError
from .core.events import Listener
from .core.option import check_keywords, check_values
from .core.record import Response
from .core.runner import Job, get_runner, new_client
from .evaluation import EvalPlan, EvalResult, RowCallback, plan_evaluation, run_evaluation
from .evaluation import new_result as new_eval_result
from .evaluation.engine import resume_options
from .evaluation.estimate import EvalEstimate
from .evaluation.estimate import estimate_evaluation as project_evaluation
from .evaluation.options import EvalKeywords, EvalOptions
from .fusion.engine import FusionPlan, check_takes_attachments, drain, plan_fusion, run_fusion
from .fusion.engine import new_result as new_result  # the result a fused run fills (tests hold it themselves)
from .fusion.engine import rejudge as engine_rejudge
from .fusion.options import FuseKeywords, FuseOptions
from .fusion.result import FusionResult
from .providers.base import ChatRequest
from .videos import engine as video_engine
from .videos import plan as video_planning
from .videos.engine import RESUME, ResumePlan
from .videos.estimate import VideoEstimate
from .videos.jobs import finish_submits
from .videos.listing import VideoListing, video_models
from .videos.options import DEFAULT_TIMEOUT_S, VideoKeywords, VideoOptions
from .videos.plan import VideoPlan
from .videos.result import VideoResult

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

_background: set[asyncio.Task[None]] = set()  # strong refs: late members finishing after afuse returned


def _settings(settings: Settings | None, keys: Mapping[str, str] | None, cache: str | None = None) -> Settings:
    base = settings or Settings()
    if keys:
        base = base.with_(keys={**base.keys, **keys})
    return base.with_(cache=cache)


# ---- the one run path ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run(Generic[T]):
    """One run, ready to go: what the run log records of it, the work on a call context, and the result it
    fills in place (``partial``: kept, and marked interrupted, when the run is stopped; None for a run that
    builds its result at the end). ``outcome`` is how the run log words a finished run: status and summary."""

    kind: str  # the run log's: fuse, rejudge, complete, video, eval
    prompt: str
    settings: Settings
    log_options: Mapping[str, object]
    work: Callable[[CallContext], Awaitable[T]]
    outcome: Callable[[T], tuple[RunStatus, str | None]]
    partial: T | None = None


class RunJob(Generic[T]):
    """A run going on in the background on the engine thread: ``done()``, ``result()``, ``cancel()``, and
    ``partial``, the result it fills as it goes (None for a rejudge or one model's answer)."""

    def __init__(self, job: Job, partial: T | None = None) -> None:
        self._job = job
        self.partial = partial

    def done(self) -> bool:
        """True once the run finished (or failed, or was cancelled)."""
        return self._job.done()

    def result(self, timeout: float | None = None) -> T:
        """Wait for the result (Ctrl-C cancels the run)."""
        result: T = self._job.result(timeout)
        return result

    def cancel(self) -> bool:
        """Cancel every call of the run; True once its connections are closed."""
        return self._job.cancel()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'done' if self.done() else 'running'}>"


class FusionJob(RunJob[FusionResult]):
    """A fused run going on in the background (``%%fuse --background`` or ``fuse(..., background=True)``).

        job = fusion_magic.fuse("...", pool=[...], background=True)
        result = job.result()
    """


class VideoJob(RunJob[VideoResult]):
    """A video run going on in the background (``%%video --background`` or ``video(..., background=True)``).
    Cancelling it stops waiting: jobs still at the provider stay resumable (``%video resume``)."""


class EvalJob(RunJob[EvalResult]):
    """An evaluation going on in the background; cancelling it keeps every finished row."""


_LOGS: dict[Path, RunLog] = {}  # one writer per run-log file in this process


def _run_log(s: Settings) -> RunLog | None:
    path = s.run_log_path()
    if path is None:
        return None
    path = path.resolve()
    if path not in _LOGS:
        _LOGS[path] = RunLog(path)
    return _LOGS[path]


def _context(s: Settings, client: httpx.AsyncClient | None, listeners: Sequence[Listener]) -> CallContext:
    """The calls' shared context for one run: client, listeners and the cache the settings ask for."""
    cache = CallCache(s.cache_path(), s.cache) if s.cache != "off" else None
    return CallContext(client=client, settings=s, listeners=list(listeners), cache=cache)


async def _execute(run: Run[T], client: httpx.AsyncClient, listeners: Sequence[Listener]) -> tuple[T, CallContext]:
    """Do ``run`` with ``client``, the run log listening (every call written as it starts and ends, so a dead
    kernel loses nothing that arrived) and the run's outcome written when it ends, interrupted or failed
    included; an interrupted run's ``partial`` result says so. Returns the result and the calls' context."""
    ctx = _context(run.settings, client, listeners)
    log = _run_log(run.settings)
    run_id = None
    if log is not None:
        run_id = log.start_run(run.kind, run.prompt, run.log_options, secrets=tuple(run.settings.keys.values()))
        ctx.listeners.append(log.listener(run_id))
    started = time.monotonic()
    try:
        result = await run.work(ctx)
    except (asyncio.CancelledError, KeyboardInterrupt):
        if isinstance(run.partial, RunResult):
            run.partial.interrupted = True
        if log is not None and run_id is not None:
            log.finish_run(run_id, RunStatus.INTERRUPTED, time.monotonic() - started)
        raise
    except BaseException as exc:
        if log is not None and run_id is not None:
            log.finish_run(run_id, RunStatus.FAILED, time.monotonic() - started, f"{type(exc).__name__}: {exc}"[:300])
        raise
    if isinstance(result, RunResult):
        result.run_id = run_id
    if log is not None and run_id is not None:
        status, summary = run.outcome(result)
        log.finish_run(run_id, status, time.monotonic() - started, summary[:300] if summary else None)
    return result, ctx


async def _run_here(run: Run[T], listeners: Sequence[Listener]) -> T:
    """``run`` on the caller's loop with a client of its own (the async API)."""
    async with new_client() as client:
        result, _ = await _execute(run, client, listeners)
    return result


def _submit(run: Run[T], listeners: Sequence[Listener]) -> Job:
    return get_runner().submit(lambda client: _wait_for(run, client, listeners))


async def _wait_for(run: Run[T], client: httpx.AsyncClient, listeners: Sequence[Listener]) -> T:
    result, _ = await _execute(run, client, listeners)
    return result


@overload
def start(plan: FusionPlan | RejudgePlan, listeners: Sequence[Listener] = (),
          result: FusionResult | None = None) -> FusionJob: ...
@overload
def start(plan: VideoPlan | ResumePlan, listeners: Sequence[Listener] = (),
          result: VideoResult | None = None) -> VideoJob: ...
@overload
def start(plan: EvalPlan, listeners: Sequence[Listener] = (), result: EvalResult | None = None, *,
          on_row: RowCallback | None = None) -> EvalJob: ...
@overload
def start(plan: CompletePlan, listeners: Sequence[Listener] = ()) -> RunJob[Response]: ...
def start(plan: Any, listeners: Sequence[Listener] = (), result: Any = None, *,
          on_row: RowCallback | None = None) -> RunJob[Any]:
    """Start a planned run on the engine thread and return at once: the one way every run starts.

    ``result`` is the empty result the run fills in place (made from the plan when not given): it is the
    job's ``partial``, which holds what arrived when the run is interrupted. ``on_row`` (an evaluation's
    only) is called after each row is scored.

        job = start(plan_fuse("Why is the sky blue?"), listeners)
        job.result()   # Ctrl-C cancels the run; job.partial holds what had arrived
    """
    if isinstance(plan, FusionPlan):
        fused = _fuse_run(plan, result if result is not None else new_result(plan))
        return FusionJob(_submit(fused, listeners), fused.partial)
    if isinstance(plan, RejudgePlan):
        return FusionJob(_submit(_rejudge_run(plan), listeners))
    if isinstance(plan, VideoPlan):
        clips = _video_run(plan, result if result is not None else video_engine.new_result(plan))
        return VideoJob(_submit(clips, listeners), clips.partial)
    if isinstance(plan, ResumePlan):
        resumed = _resume_run(plan, result if result is not None else VideoResult(prompt=RESUME))
        return VideoJob(_submit(resumed, listeners), resumed.partial)
    if isinstance(plan, EvalPlan):
        rows = _eval_run(plan, result if result is not None else new_eval_result(plan), on_row)
        return EvalJob(_submit(rows, listeners), rows.partial)
    if isinstance(plan, CompletePlan):
        return RunJob(_submit(_complete_run(plan), listeners))
    raise TypeError(f"start() takes a plan from one of the plan_* functions, not {type(plan).__name__}")


def cancel_all() -> None:
    """Cancel every run and call on the engine thread, late members included (``%unload_ext``)."""
    get_runner().cancel_all()


def _noticed(plan: FusionPlan) -> FusionPlan:
    """The plan with its notice first among the warnings (the Python API prints nothing itself)."""
    return replace(plan, warnings=(plan.notice, *plan.warnings), notice=None) if plan.notice else plan


def _summarised(result: FusionResult | VideoResult) -> tuple[RunStatus, str | None]:
    return result.status, result.summary()


# ---- one model --------------------------------------------------------------------------------------------


class CompleteKeywords(TypedDict, total=False):
    """The keywords of ``complete()``/``acomplete()``, typed, in one place."""

    system: str | None
    max_tokens: int | None
    temperature: float | None
    timeout: float | None
    keys: Mapping[str, str] | None
    attach: Sequence[object] | None


@dataclass(frozen=True)
class CompletePlan:
    """One model asked one prompt, resolved (model id and key checked); nothing sent."""

    target: Target
    request: ChatRequest
    settings: Settings


def plan_complete(model_id: str, prompt: str, **ask: Unpack[CompleteKeywords]) -> CompletePlan:
    """Check and resolve one model's call without sending it (``complete``'s keywords)."""
    check_keywords(ask, allowed=CompleteKeywords.__annotations__)
    settings = Settings(keys=dict(ask.get("keys") or {})).with_(timeout=ask.get("timeout"))
    target = prepare(model_id, settings)
    attachments = load_attachments(ask.get("attach"))
    check_takes_attachments([target], attachments)
    request = ChatRequest(model=target.model, messages=opening(prompt, ask.get("system"),
                                                               Context(attachments=attachments)),
                          max_tokens=output_cap(target, ask.get("max_tokens")), temperature=ask.get("temperature"))
    return CompletePlan(target, request, settings)


def _logged_attachments(attachments: Sequence[Attachment]) -> dict[str, object]:
    """What the run log keeps of a run's attachments: name, type, size and hash, never the bytes."""
    if not attachments:
        return {}
    return {"attachments": [{"name": a.name, "mime": a.mime, "size": a.size, "sha256": a.sha256} for a in attachments]}


def _complete_run(plan: CompletePlan) -> Run[Response]:
    last = plan.request.messages[-1]
    attached = _logged_attachments(last.attachments)
    return Run("complete", last.content, plan.settings, {"model": plan.target.model_id, **attached},
               lambda ctx: run_call(plan.target, plan.request, ctx=ctx, role="single"),
               lambda r: (RunStatus.OK if r.ok else RunStatus.DEGRADED, r.text or None))


async def acomplete(
    model_id: str,
    prompt: str,
    *,
    client: httpx.AsyncClient | None = None,
    listeners: Sequence[Listener] = (),
    **ask: Unpack[CompleteKeywords],
) -> Response:
    """Ask one model, on the running loop. Provider failures come back as ``Response.status``.

    Keywords: ``system``, ``max_tokens``, ``temperature``, ``timeout``, ``keys``, ``attach`` (as ``complete``).
    """
    run = _complete_run(plan_complete(model_id, prompt, **ask))
    if client is None:
        return await _run_here(run, listeners)
    result, _ = await _execute(run, client, listeners)
    return result


def complete(model_id: str, prompt: str, **ask: Unpack[CompleteKeywords]) -> Response:
    """Ask one model and wait for the answer (works in scripts and notebooks alike).

    Keywords: ``system``, ``max_tokens``, ``temperature``, ``timeout`` (seconds), ``keys`` (provider name to
    key, ``{"openai": "sk-..."}``, ahead of the environment), ``attach`` (files to show the model: paths, bytes, a PIL
    image, a matplotlib figure, a DataFrame).
    """
    return start(plan_complete(model_id, prompt, **ask)).result()


# ---- %%fuse ---------------------------------------------------------------------------------------------


def plan_fuse(prompt: str, settings: Settings | None = None, options: FuseOptions | None = None, *,
              keys: Mapping[str, str] | None = None, require_keys: bool = True,
              parent: FusionResult | None = None) -> FusionPlan:
    """Validate and resolve a fused run without sending anything (``--estimate`` uses this).

    ``options`` default to the settings' own (``FuseOptions.defaults``); to change a few, start from those:
    ``FuseOptions.defaults(settings).with_(judge="vote")``. The plan's ``notice`` (which defaults were
    picked) is the caller's to show; ``fuse``/``afuse`` put it in the result's warnings, since nothing
    else would. ``parent`` is the run this one continues (``--continue``); its options are the defaults then
    (``follow_up_defaults``).
    """
    s = _settings(settings, keys)
    base = follow_up_defaults(parent, s)
    return plan_fusion(prompt, s, options or base, require_keys=require_keys, parent=parent)


def follow_up_defaults(parent: FusionResult | None, settings: Settings) -> FuseOptions:
    """The options a run starts from: a follow-up's are the earlier run's (its pool, judge, mode, system prompt
    and the rest; not its attachments, which its thread carries), else the settings' (``FuseOptions.defaults``).
    ``ConfigError`` for a ``parent`` that is not a fused result."""
    if parent is None:
        return FuseOptions.defaults(settings)
    if not isinstance(parent, FusionResult):
        raise ConfigError(f"--continue needs a FusionResult (a %%fuse result), not a {type(parent).__name__}")
    earlier = parent.options or FuseOptions.defaults(settings).with_(pool=parent.pool, judge=parent.judge,
                                                                    mode=parent.mode)
    return replace(earlier, attach=())


def _fuse_log_options(plan: FusionPlan) -> dict[str, object]:
    seed = {} if plan.options.seed is None else {"seed": plan.options.seed}  # the history says how to repeat it
    # Attachments by name, size and hash, never their bytes; a follow-up names the run it continues.
    attached = _logged_attachments(plan.options.attach)
    thread = {} if plan.parent is None else {"parent_run": plan.parent.run_id, "thread": plan.options.thread}
    return {"pool": plan.pool, "judge": plan.judge_id, "mode": plan.options.mode, **seed, **attached, **thread}


def _fuse_run(plan: FusionPlan, result: FusionResult | None = None) -> Run[FusionResult]:
    return Run("fuse", plan.prompt, plan.settings, _fuse_log_options(plan),
               lambda ctx: run_fusion(plan, ctx, result=result), _summarised, result)


def _fuse_options(s: Settings, given: FuseKeywords, parent: FusionResult | None = None) -> FuseOptions:
    """A run's options: the keywords given, the defaults for the rest (the settings', or the run it continues)."""
    check_keywords(given, FuseOptions)
    return follow_up_defaults(parent, s).with_(**given)


async def afuse(
    prompt: str,
    *,
    settings: Settings | None = None,
    keys: Mapping[str, str] | None = None,
    listeners: Sequence[Listener] = (),
    parent: FusionResult | None = None,
    **options: Unpack[FuseKeywords],
) -> FusionResult:
    """Fuse on the running loop: ``result = await fusion_magic.afuse("...", pool=[...])``.

    The keywords are ``fuse``'s, except ``background``.
    """
    s = _settings(settings, keys)
    plan = _noticed(plan_fusion(prompt, s, _fuse_options(s, options, parent), parent=parent))
    client = new_client()
    try:
        result, ctx = await _execute(_fuse_run(plan), client, listeners)
    except BaseException:
        await client.aclose()
        raise
    if ctx.pending:
        # Late members still use the client: close it once they are done, without holding the caller.
        async def finish() -> None:
            await drain(ctx.pending)
            await client.aclose()

        task = asyncio.get_running_loop().create_task(finish())
        _background.add(task)
        task.add_done_callback(_background.discard)
    else:
        await client.aclose()
    return result


@overload
def fuse(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
         listeners: Sequence[Listener] = (), background: Literal[False] = False,
         parent: FusionResult | None = None, **options: Unpack[FuseKeywords]) -> FusionResult: ...
@overload
def fuse(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
         listeners: Sequence[Listener] = (), background: Literal[True],
         parent: FusionResult | None = None, **options: Unpack[FuseKeywords]) -> FusionJob: ...
@overload
def fuse(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
         listeners: Sequence[Listener] = (), background: bool = False,
         parent: FusionResult | None = None, **options: Unpack[FuseKeywords]) -> FusionResult | FusionJob: ...
def fuse(
    prompt: str,
    *,
    settings: Settings | None = None,
    keys: Mapping[str, str] | None = None,
    listeners: Sequence[Listener] = (),
    background: bool = False,
    parent: FusionResult | None = None,
    **options: Unpack[FuseKeywords],
) -> FusionResult | FusionJob:
    """Fuse and wait: works in scripts, terminal IPython and notebooks. Ctrl-C cancels every call.

    Returns a ``FusionResult``, or a ``FusionJob`` at once with ``background=True``. Each keyword from
    ``pool`` to ``system``, ``cache``, ``orders`` and ``seed`` is the ``%%fuse`` flag of the same name
    (``self_n`` is ``--self``); left out, it comes from ``settings`` (the same defaults as
    ``%config FusionMagics``). ``seed=N`` makes the run repeatable: the same seed sends the same requests.
    ``attach=[...]`` shows every model files (paths, bytes, a PIL image, a matplotlib figure, a DataFrame).
    ``parent=r`` continues the conversation of the earlier result ``r`` (as ``r.ask(prompt)`` and ``%%fuse
    --continue r``): its pool, judge and mode are the defaults; ``thread="own"`` gives each member its own
    earlier answers.
    """
    s = _settings(settings, keys)
    job = start(_noticed(plan_fusion(prompt, s, _fuse_options(s, options, parent), parent=parent)), listeners)
    return job if background else job.result()


# r.ask(...) runs a follow-up through the api, a layer above the result's own.
FusionResult.asker = fuse


# ---- %fuse rejudge ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejudgePlan:
    """An earlier result to judge again, with the mode, judge and orderings asked (None: the result's own)."""

    previous: FusionResult
    settings: Settings
    mode: str | None = None
    judge: str | None = None
    orders: int = 1


def plan_rejudge(previous: FusionResult, settings: Settings | None = None, *, mode: str | None = None,
                 judge: str | None = None, orders: int = 1, keys: Mapping[str, str] | None = None,
                 cache: str | None = None) -> RejudgePlan:
    """A rejudge of ``previous``, ready to start: ``mode``, ``orders`` and ``cache`` are checked here as
    ``FuseOptions`` checks them (``--orders`` 1 to 8); the judge is resolved when it runs."""
    given = {"mode": mode, "orders": orders, "cache": cache}
    check_values(FuseOptions, **{name: value for name, value in given.items() if value is not None})
    return RejudgePlan(previous, _settings(settings, keys, cache), mode, judge, orders)


def _rejudge_run(plan: RejudgePlan) -> Run[FusionResult]:
    """The same path (and cache) as a fresh run's judge."""
    return Run("rejudge", plan.previous.prompt, plan.settings, {"mode": plan.mode, "judge": plan.judge},
               lambda ctx: engine_rejudge(plan.previous, plan.settings, ctx, mode=plan.mode, judge=plan.judge,
                                          orders=plan.orders),
               _summarised)


async def arejudge(previous: FusionResult, *, mode: str | None = None, judge: str | None = None,
                   settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                   cache: str | None = None, listeners: Sequence[Listener] = (), orders: int = 1) -> FusionResult:
    """Judge an earlier result again on the running loop, without calling the pool (late answers count).

        again = await fusion_magic.arejudge(result, mode="merge", judge="anthropic:claude-sonnet-4-5")
    """
    plan = plan_rejudge(previous, settings, mode=mode, judge=judge, orders=orders, keys=keys, cache=cache)
    return await _run_here(_rejudge_run(plan), listeners)


def rejudge(previous: FusionResult, *, mode: str | None = None, judge: str | None = None,
            settings: Settings | None = None, keys: Mapping[str, str] | None = None, cache: str | None = None,
            listeners: Sequence[Listener] = (), orders: int = 1) -> FusionResult:
    """Judge an earlier result again and wait (``%fuse rejudge`` from Python); with ``cache="on"`` the same
    rejudge twice is answered from the recording.

        again = fusion_magic.rejudge(result, mode="merge", judge="vote")
    """
    plan = plan_rejudge(previous, settings, mode=mode, judge=judge, orders=orders, keys=keys, cache=cache)
    return start(plan, listeners).result()


# ---- %%video -----------------------------------------------------------------------------------------


def plan_video(prompt: str, settings: Settings | None = None, options: VideoOptions | None = None, *,
               keys: Mapping[str, str] | None = None) -> VideoPlan:
    """Check and resolve a video run without sending anything (``--estimate`` uses this)."""
    return video_planning.plan_video(prompt, _settings(settings, keys), options or VideoOptions())


def _video_run(plan: VideoPlan, result: VideoResult | None = None) -> Run[VideoResult]:
    options = {"models": [c.model_id for c in plan.clips] or [a.model_id for a in plan.askers],
               "understand": plan.options.understand, "check": plan.options.check}
    return Run("video", plan.prompt, plan.settings, options,
               lambda ctx: video_engine.run_video(plan, ctx, result), _summarised, result)


def plan_resume(out_dir: str | Path = "videos", settings: Settings | None = None, *,
                timeout: float = DEFAULT_TIMEOUT_S, poll_s: float | None = None) -> ResumePlan:
    """The jobs earlier runs left open in ``out_dir`` that can be fetched now (nothing is sent); ``timeout``
    and ``poll_s`` are checked as ``VideoOptions`` checks them (``--timeout``, ``--poll``)."""
    check_values(VideoOptions, timeout=timeout, poll_s=poll_s)
    return video_engine.plan_resume(Path(out_dir), _settings(settings, None), timeout=timeout, poll_s=poll_s)


def _resume_run(plan: ResumePlan, result: VideoResult | None = None) -> Run[VideoResult]:
    """Re-attach to the planned jobs (no new submission) and download what finished."""
    return Run("video", RESUME, plan.settings, {"jobs": len(plan.jobs)},
               lambda ctx: video_engine.resume(plan, ctx, result), _summarised, result)


def _video_plan(prompt: str, settings: Settings | None, keys: Mapping[str, str] | None,
                given: VideoKeywords) -> VideoPlan:
    check_keywords(given, VideoOptions)
    if given.get("estimate"):
        # video() runs the jobs; an estimate must never submit one (a paid job is the one thing not to risk).
        raise ConfigError("video(estimate=True) would still submit paid jobs: call "
                          "fusion_magic.estimate_video(prompt, ...) with the same keywords (or %%video --estimate)")
    return plan_video(prompt, settings, VideoOptions.from_keywords(given), keys=keys)


def estimate_video(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                   **options: Unpack[VideoKeywords]) -> VideoEstimate:
    """What a ``video()`` run with these keywords would cost, per clip and in all, before anything is submitted;
    needs no key (as ``%%video --estimate``).

        print(fusion_magic.estimate_video("a paper boat", models=["openrouter:google/veo-3.1"], seconds=8))
    """
    check_keywords(options, VideoOptions)
    given = {**options, "estimate": True}
    plan = plan_video(prompt, settings, VideoOptions.from_keywords(given), keys=keys)  # type: ignore[arg-type]
    return VideoEstimate.of(plan)


async def avideo(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                 listeners: Sequence[Listener] = (), **options: Unpack[VideoKeywords]) -> VideoResult:
    """Generate (or ask about) video on the running loop: ``r = await fusion_magic.avideo("...", models=[...])``."""
    plan = _video_plan(prompt, settings, keys, options)
    client = new_client()
    try:
        result, _ = await _execute(_video_run(plan), client, listeners)
        return result
    finally:
        await finish_submits()  # an interrupted submit keeps its receipt: it needs the client a while longer
        await client.aclose()


@overload
def video(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
          listeners: Sequence[Listener] = (), background: Literal[False] = False,
          **options: Unpack[VideoKeywords]) -> VideoResult: ...
@overload
def video(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
          listeners: Sequence[Listener] = (), background: Literal[True],
          **options: Unpack[VideoKeywords]) -> VideoJob: ...
@overload
def video(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
          listeners: Sequence[Listener] = (), background: bool = False,
          **options: Unpack[VideoKeywords]) -> VideoResult | VideoJob: ...
def video(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
          listeners: Sequence[Listener] = (), background: bool = False,
          **options: Unpack[VideoKeywords]) -> VideoResult | VideoJob:
    """Generate clips with a pool of video models, or ask about a video, and wait (Ctrl-C stops waiting; paid
    jobs stay resumable). Each keyword is the ``%%video`` flag of the same name (``models`` is ``-p``/``--pool``,
    ``understand`` is ``--understand``, ``out_dir`` is ``--out-dir``). Returns a ``VideoResult``, or a
    ``VideoJob`` at once with ``background=True``.

        r = fusion_magic.video("a paper boat on a rainy street", models=["gemini:gemini-omni-1.2-flash"], seconds=6)
        r.videos[0].path
    """
    job = start(_video_plan(prompt, settings, keys, options), listeners)
    return job if background else job.result()


def list_video_models(settings: Settings | None = None, *, keys: Mapping[str, str] | None = None) -> VideoListing:
    """The video models each key can use, asked of the providers now (``%video list``)."""
    s = _settings(settings, keys)
    result: VideoListing = get_runner().run(lambda client: video_models(s, client))
    return result


# ---- history -------------------------------------------------------------------------------------------


def history(settings: Settings | None = None, *, limit: int = 50) -> pd.DataFrame:
    """Past runs from the run log, newest first (a DataFrame; ``%fuse history``)."""
    log = _run_log(_settings(settings, None))
    if log is None:
        raise ConfigError("the run log is off (%config FusionMagics.run_log = 'off'); nothing was recorded")
    return log.runs(limit)


def export_history(dest: str | Path, settings: Settings | None = None, *, run_id: str | None = None) -> int:
    """Write the run log's calls (of one run, or all) to ``dest`` as JSONL or CSV; returns the rows written."""
    log = _run_log(_settings(settings, None))
    if log is None:
        raise ConfigError("the run log is off (%config FusionMagics.run_log = 'off'); nothing was recorded")
    try:
        return log.export(Path(dest), run_id=run_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# ---- evaluation ---------------------------------------------------------------------------------------


def plan_eval(data: Any, settings: Settings | None = None, options: EvalOptions | None = None, *,
              keys: Mapping[str, str] | None = None, **keywords: Unpack[EvalKeywords]) -> EvalPlan:
    """Check and resolve an evaluation without sending anything: ``options`` (``EvalOptions``), or its fields
    as keywords over it (see ``plan_evaluation``)."""
    return plan_evaluation(data, _settings(settings, keys), options, **keywords)


def _eval_run(plan: EvalPlan, result: EvalResult | None = None,
              on_row: RowCallback | None = None) -> Run[EvalResult]:
    options = {"strategies": plan.strategy_names, "repeats": plan.repeats, "judge": plan.judge,
               "questions": len(plan.questions), **({} if plan.seed is None else {"seed": plan.seed}),
               **({} if plan.scorer.name == "match" else {"scorer": plan.scorer.name}),
               **({"batch": resume_options(plan)} if plan.batch else {})}
    return Run("eval", f"{len(plan.questions)} questions", plan.settings, options,
               lambda ctx: run_evaluation(plan, ctx, on_row=on_row, result=result),
               lambda r: (r.status, None), result)


def plan_eval_resume(settings: Settings | None = None, *, keys: Mapping[str, str] | None = None) -> EvalPlan:
    """The newest batch evaluation in the run log that did not finish (a dead kernel, an interrupt, a cell run
    with ``--background`` in a kernel since restarted), planned again from its questions file and options: its
    run re-attaches to the batches its receipts hold and submits only what none holds. ``ConfigError`` when
    there is none, or its questions were a DataFrame (call ``evaluate(df, ..., batch=True)`` again instead)."""
    s = _settings(settings, keys)
    log = _run_log(s)
    if log is None:
        raise ConfigError("%fuse eval resume reads the run log, which is off")
    runs = log.runs(limit=200)
    for _, run in runs[(runs["kind"] == "eval") & (runs["status"] != "ok") & (runs["status"] != "degraded")].iterrows():
        logged = json.loads(run["options"] or "{}").get("batch")
        if not isinstance(logged, dict) or not Receipts(log, str(logged.get("identity"))).open_receipts():
            continue  # not a batch run, or one whose batches a later run already finished
        if not logged.get("source"):
            raise ConfigError("the newest unfinished batch evaluation read a DataFrame, which the run log does not "
                              "keep: call evaluate(df, ..., batch=True) again with the same questions and options")
        plan = plan_evaluation(logged["source"], s, EvalOptions(**logged["options"]))
        if plan.identity != logged.get("identity"):
            raise ConfigError(f"the newest unfinished batch evaluation can no longer be planned the same way (its "
                              f"questions file {logged['source']} or a model's endpoint changed, or it used a "
                              "scorer function): call evaluate(...) with the same questions and options instead")
        return plan
    raise ConfigError("no unfinished batch evaluation in the run log (%fuse history lists the runs)")


async def aevaluate(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                    listeners: Sequence[Listener] = (), on_row: RowCallback | None = None,
                    **options: Unpack[EvalKeywords]) -> EvalResult:
    """``evaluate`` on the running loop: ``r = await fusion_magic.aevaluate(df, pool=[...])``."""
    return await _run_here(_eval_run(plan_eval(data, settings, keys=keys, **options), on_row=on_row), listeners)


@overload
def evaluate(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
             listeners: Sequence[Listener] = (), on_row: RowCallback | None = None,
             background: Literal[False] = False, **options: Unpack[EvalKeywords]) -> EvalResult: ...
@overload
def evaluate(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
             listeners: Sequence[Listener] = (), on_row: RowCallback | None = None,
             background: Literal[True], **options: Unpack[EvalKeywords]) -> EvalJob: ...
@overload
def evaluate(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
             listeners: Sequence[Listener] = (), on_row: RowCallback | None = None,
             background: bool = False, **options: Unpack[EvalKeywords]) -> EvalResult | EvalJob: ...
def evaluate(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
             listeners: Sequence[Listener] = (), on_row: RowCallback | None = None, background: bool = False,
             **options: Unpack[EvalKeywords]) -> EvalResult | EvalJob:
    """Is fusion worth it on my questions? Every strategy (each pool member alone, ``self:K`` samples and a
    vote, best-of, merge, debate) answers every question of ``data`` (a DataFrame, CSV or JSONL with a
    ``question`` and a ``reference`` or ``rubric``), scored, with accuracy and a 95 % interval, cost, latency
    and calls per strategy. Ctrl-C keeps every finished row; with ``settings=Settings(cache="on")`` a re-run
    takes finished calls from the cache.

        r = fusion_magic.evaluate(BUNDLED_QUESTIONS, pool=["local:gemma3-270m"], strategies=["single", "self:5"])
        r.summary; r.plot()

    Keywords: ``pool``, ``strategies``, ``repeats``, ``judge``, ``concurrency``, ``rubric_judge``,
    ``instruction``, ``seed``, ``scorer`` (``fusion_magic.evaluation.options.EvalOptions``, the same as the
    ``%fuse eval`` flags). Each closed answer is right, wrong or unscorable; ``r.summary`` gives accuracy over
    the scored ones and the unscorable rate.
    """
    job = start(plan_eval(data, settings, keys=keys, **options), listeners, on_row=on_row)
    return job if background else job.result()


def estimate_evaluation(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                        **options: Unpack[EvalKeywords]) -> EvalEstimate:
    """What ``evaluate(data, **options)`` would cost, each strategy live and through the batch APIs side by side
    (``%fuse eval DATA --estimate``). Sends nothing.

        print(fusion_magic.estimate_evaluation("questions.csv", pool=[...], strategies="single,best-of"))
    """
    return project_evaluation(plan_eval(data, settings, keys=keys, **options))


def resume_evaluation(*, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                      listeners: Sequence[Listener] = (), on_row: RowCallback | None = None,
                      background: bool = False) -> EvalResult | EvalJob:
    """Go on with the newest unfinished batch evaluation in the run log (``%fuse eval resume``): its batches
    re-attached from their receipts, only what none holds submitted (see ``plan_eval_resume``)."""
    job = start(plan_eval_resume(settings, keys=keys), listeners, on_row=on_row)
    return job if background else job.result()
