"""The Python API without magics: one model (`complete`) or a fused pool (`fuse`), sync and async.

The sync functions run on the engine loop thread (``core/runner.py``, the one bridge: only this module
submits to it) and work in scripts, terminal IPython and kernels alike; the async ones run on the
caller's loop: ``await afuse(...)`` in a cell. The magic and ``python -m fusion_magic`` come through here
too (``make_plan``, ``start``, ``start_rejudge``); the engine below never calls back up.

    r = fusion_magic.complete("anthropic:claude-sonnet-4-5", "One line on entropy.")
    f = fusion_magic.fuse("Why is the sky blue?", pool=["local:gemma3-270m"] * 3, judge="vote")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, TypedDict, TypeVar, Unpack

import httpx

from .calls.cache import CallCache
from .calls.call import CallContext, Target, prepare, run_call
from .calls.runlog import ExportsCalls, RunLog
from .calls.settings import Settings
from .core.errors import ConfigError
from .core.events import Listener
from .core.record import Response
from .core.runner import Job, get_runner, new_client
from .evaluation import EvalPlan, EvalResult, RowCallback, plan_evaluation, run_evaluation
from .evaluation import new_result as new_eval_result
from .fusion.engine import FusionPlan, drain, plan_fusion, run_fusion
from .fusion.engine import new_result as new_result  # for callers of start(): the result a run fills
from .fusion.engine import rejudge as engine_rejudge
from .fusion.options import FuseKeywords, FuseOptions
from .fusion.requests import opening, output_cap
from .fusion.result import FusionResult
from .providers.base import ChatRequest
from .videos.engine import ResumePlan, plan_resume, resume, run_video
from .videos.engine import new_result as new_video_result
from .videos.jobs import finish_submits
from .videos.listing import VideoListing, video_models
from .videos.options import VideoKeywords, VideoOptions
from .videos.plan import VideoPlan, plan_video
from .videos.result import VideoResult

T = TypeVar("T")

_background: set[asyncio.Task[None]] = set()  # strong refs: late members finishing after afuse returned


class CompleteKeywords(TypedDict, total=False):
    """The keywords of ``complete()``/``acomplete()``, typed, in one place."""

    system: str | None
    max_tokens: int | None
    temperature: float | None
    timeout: float | None
    keys: Mapping[str, str] | None


def _complete_parts(model_id: str, prompt: str, ask: CompleteKeywords) -> tuple[Target, ChatRequest, Settings]:
    _check_keywords(ask, CompleteKeywords)
    settings = Settings(keys=dict(ask.get("keys") or {})).with_(timeout=ask.get("timeout"))
    target = prepare(model_id, settings)
    request = ChatRequest(model=target.model, messages=opening(prompt, ask.get("system")),
                          max_tokens=output_cap(target, ask.get("max_tokens")), temperature=ask.get("temperature"))
    return target, request, settings


def _check_keywords(given: Mapping[str, object], allowed: type) -> None:
    """A keyword that is not in ``allowed`` (a TypedDict) is a TypeError, as with a plain signature."""
    unknown = sorted(set(given) - set(allowed.__annotations__))
    if unknown:
        raise TypeError(f"unexpected keyword argument{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")


async def acomplete(
    model_id: str,
    prompt: str,
    *,
    client: httpx.AsyncClient | None = None,
    listeners: Sequence[Listener] = (),
    **ask: Unpack[CompleteKeywords],
) -> Response:
    """Ask one model, on the running loop. Provider failures come back as ``Response.status``.

    Keywords: ``system``, ``max_tokens``, ``temperature``, ``timeout``, ``keys`` (as ``complete``).
    """
    target, request, settings = _complete_parts(model_id, prompt, ask)
    if client is not None:
        return await _one(target, request, settings, client, listeners)
    async with new_client() as own:
        return await _one(target, request, settings, own, listeners)


async def _one(target: Target, request: ChatRequest, settings: Settings, client: httpx.AsyncClient,
               listeners: Sequence[Listener]) -> Response:
    def call(ls: list[Listener]) -> Awaitable[Response]:
        return run_call(target, request, ctx=CallContext(client=client, settings=settings, listeners=ls),
                        role="single")

    prompt = request.messages[-1].content if request.messages else ""
    return await _logged(settings, "complete", prompt, {"model": target.model_id}, listeners, call)


def complete(model_id: str, prompt: str, **ask: Unpack[CompleteKeywords]) -> Response:
    """Ask one model and wait for the answer (works in scripts and notebooks alike).

    Keywords: ``system``, ``max_tokens``, ``temperature``, ``timeout`` (seconds), ``keys`` (a mapping of key
    variable names to keys, ahead of the environment).
    """
    target, request, settings = _complete_parts(model_id, prompt, ask)
    return get_runner().run(lambda client: _one(target, request, settings, client, ()))


def _settings(settings: Settings | None, keys: Mapping[str, str] | None, cache: str | None = None) -> Settings:
    base = settings or Settings()
    if keys:
        base = base.with_(keys={**base.keys, **keys})
    return base.with_(cache=cache)


def make_plan(prompt: str, settings: Settings | None = None, options: FuseOptions | None = None, *,
              keys: Mapping[str, str] | None = None, require_keys: bool = True) -> FusionPlan:
    """Validate and resolve a fused run without sending anything (``--estimate`` uses this).

    ``options`` default to the settings' own (``FuseOptions.defaults``); to change a few, start from those:
    ``FuseOptions.defaults(settings).with_(judge="vote")``. The plan's ``notice`` (which defaults were
    picked) is the caller's to show; ``fuse``/``afuse`` put it in the result's warnings, since nothing
    else would.
    """
    s = _settings(settings, keys)
    return plan_fusion(prompt, s, options or FuseOptions.defaults(s), require_keys=require_keys)


def _noticed(plan: FusionPlan) -> FusionPlan:
    """The plan with its notice first among the warnings (the Python API prints nothing itself)."""
    return replace(plan, warnings=(plan.notice, *plan.warnings), notice=None) if plan.notice else plan


_LOGS: dict[Path, RunLog] = {}  # one writer per run-log file in this process


def _run_log(s: Settings) -> RunLog | None:
    path = s.run_log_path()
    if path is None:
        return None
    path = path.resolve()
    if path not in _LOGS:
        _LOGS[path] = RunLog(path)
    return _LOGS[path]


async def _logged(s: Settings, kind: str, prompt: str, options: Mapping[str, object], listeners: Sequence[Listener],
                  run: Callable[[list[Listener]], Awaitable[T]]) -> T:
    """Run ``run`` with the run log listening (every call written as it starts and ends, so a dead kernel
    loses nothing that arrived) and the run's outcome written when it ends, interrupted or failed included."""
    log = _run_log(s)
    if log is None:
        return await run(list(listeners))
    run_id = log.start_run(kind, prompt, options, secrets=tuple(s.keys.values()))
    started = time.monotonic()
    try:
        result = await run([*listeners, log.listener(run_id)])
    except (asyncio.CancelledError, KeyboardInterrupt):
        log.finish_run(run_id, "interrupted", time.monotonic() - started)
        raise
    except BaseException as exc:
        log.finish_run(run_id, "failed", time.monotonic() - started, f"{type(exc).__name__}: {exc}"[:300])
        raise
    if isinstance(result, ExportsCalls):
        result.run_id = run_id
    degraded = bool(getattr(result, "degraded", False)) or getattr(result, "ok", True) is False
    summary = getattr(result, "answer", None) or getattr(result, "text", None)
    if hasattr(result, "summary") and callable(result.summary):
        summary = result.summary()
    log.finish_run(run_id, "degraded" if degraded else "ok", time.monotonic() - started,
                   str(summary)[:300] if summary else None)
    return result


def _context(s: Settings, client: httpx.AsyncClient | None, listeners: Sequence[Listener]) -> CallContext:
    """The calls' shared context for one run: client, listeners and the cache the settings ask for."""
    cache = CallCache(s.cache_path(), s.cache) if s.cache != "off" else None
    return CallContext(client=client, settings=s, listeners=list(listeners), cache=cache)


async def run_plan(plan: FusionPlan, client: httpx.AsyncClient, listeners: Sequence[Listener] = (),
                   result: FusionResult | None = None) -> FusionResult:
    """Run a prepared plan on the running loop with the given client (the runner's, or afuse's own).

    ``result`` (from ``new_result(plan)``) is filled in place, so a caller whose run is interrupted still
    holds the partial result.
    """
    return await _logged(plan.settings, "fuse", plan.prompt, _fuse_log_options(plan), listeners,
                         lambda ls: run_fusion(plan, _context(plan.settings, client, ls), result=result))


def _fuse_log_options(plan: FusionPlan) -> dict[str, object]:
    seed = {} if plan.options.seed is None else {"seed": plan.options.seed}  # the history says how to repeat it
    return {"pool": plan.pool, "judge": plan.judge_id, "mode": plan.options.mode, **seed}


def start(plan: FusionPlan, listeners: Sequence[Listener] = (), result: FusionResult | None = None) -> FusionJob:
    """Start a prepared plan on the engine thread and return at once; ``result`` as in ``run_plan``.

        job = start(plan, listeners, partial := new_result(plan))
        job.result()   # Ctrl-C cancels the run; ``partial`` holds what had arrived
    """
    return FusionJob(get_runner().submit(lambda client: run_plan(plan, client, listeners, result)))


async def run_rejudge(previous: FusionResult, settings: Settings, client: httpx.AsyncClient,
                      listeners: Sequence[Listener] = (), *, mode: str | None = None,
                      judge: str | None = None, orders: int = 1) -> FusionResult:
    """Judge ``previous`` again with the given client: the same path (and cache) as a fresh run's judge."""
    return await _logged(settings, "rejudge", previous.prompt, {"mode": mode, "judge": judge}, listeners,
                         lambda ls: engine_rejudge(previous, settings, _context(settings, client, ls), mode=mode,
                                                   judge=judge, orders=orders))


def start_rejudge(previous: FusionResult, settings: Settings, listeners: Sequence[Listener] = (), *,
                  mode: str | None = None, judge: str | None = None, orders: int = 1) -> FusionJob:
    """Start a rejudge on the engine thread and return at once (``%fuse rejudge`` waits on it)."""
    return FusionJob(get_runner().submit(
        lambda client: run_rejudge(previous, settings, client, listeners, mode=mode, judge=judge, orders=orders)))


async def arejudge(previous: FusionResult, *, mode: str | None = None, judge: str | None = None,
                   settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                   cache: str | None = None, listeners: Sequence[Listener] = (), orders: int = 1) -> FusionResult:
    """Judge an earlier result again on the running loop, without calling the pool (late answers count).

        again = await fusion_magic.arejudge(result, mode="merge", judge="anthropic:claude-sonnet-4-5")
    """
    async with new_client() as client:
        return await run_rejudge(previous, _settings(settings, keys, cache), client, listeners, mode=mode,
                                 judge=judge, orders=orders)


def rejudge(previous: FusionResult, *, mode: str | None = None, judge: str | None = None,
            settings: Settings | None = None, keys: Mapping[str, str] | None = None, cache: str | None = None,
            listeners: Sequence[Listener] = (), orders: int = 1) -> FusionResult:
    """Judge an earlier result again and wait (``%fuse rejudge`` from Python); with ``cache="on"`` the same
    rejudge twice is answered from the recording.

        again = fusion_magic.rejudge(result, mode="merge", judge="vote")
    """
    return start_rejudge(previous, _settings(settings, keys, cache), listeners, mode=mode, judge=judge,
                         orders=orders).result()


def cancel_all() -> None:
    """Cancel every run and call on the engine thread, late members included (``%unload_ext``)."""
    get_runner().cancel_all()


def _fuse_options(s: Settings, given: FuseKeywords) -> FuseOptions:
    """A run's options: the keywords given, the settings' defaults for the rest."""
    _check_keywords(given, FuseKeywords)
    return FuseOptions.defaults(s).with_(**given)


async def afuse(
    prompt: str,
    *,
    settings: Settings | None = None,
    keys: Mapping[str, str] | None = None,
    listeners: Sequence[Listener] = (),
    **options: Unpack[FuseKeywords],
) -> FusionResult:
    """Fuse on the running loop: ``result = await fusion_magic.afuse("...", pool=[...])``.

    The keywords are ``fuse``'s, except ``background``.
    """
    s = _settings(settings, keys)
    run_options = _fuse_options(s, options)
    plan = _noticed(plan_fusion(prompt, s, run_options))
    client = new_client()
    contexts: list[CallContext] = []

    def run(ls: list[Listener]) -> Awaitable[FusionResult]:
        contexts.append(_context(plan.settings, client, ls))
        return run_fusion(plan, contexts[0])

    try:
        result = await _logged(plan.settings, "fuse", plan.prompt, _fuse_log_options(plan), listeners, run)
        ctx = contexts[0]
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


class RunJob(Generic[T]):
    """A run going on in the background on the engine thread: ``done()``, ``result()``, ``cancel()``."""

    def __init__(self, job: Job) -> None:
        self._job = job

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


def fuse(
    prompt: str,
    *,
    settings: Settings | None = None,
    keys: Mapping[str, str] | None = None,
    listeners: Sequence[Listener] = (),
    background: bool = False,
    **options: Unpack[FuseKeywords],
) -> Any:
    """Fuse and wait: works in scripts, terminal IPython and notebooks. Ctrl-C cancels every call.

    Returns a ``FusionResult``, or a ``FusionJob`` at once with ``background=True``. Each keyword from
    ``pool`` to ``system``, ``cache``, ``orders`` and ``seed`` is the ``%%fuse`` flag of the same name
    (``self_n`` is ``--self``); left out, it comes from ``settings`` (the same defaults as
    ``%config FusionMagics``). ``seed=N`` makes the run repeatable: the same seed sends the same requests.
    """
    s = _settings(settings, keys)
    run_options = _fuse_options(s, options)
    job = start(_noticed(plan_fusion(prompt, s, run_options)), listeners)
    return job if background else job.result()



# ---- %%video -----------------------------------------------------------------------------------------


class VideoJob(RunJob[VideoResult]):
    """A video run going on in the background (``%%video --background`` or ``video(..., background=True)``).
    Cancelling it stops waiting: jobs still at the provider stay resumable (``%video resume``)."""


def make_video_plan(prompt: str, settings: Settings | None = None, options: VideoOptions | None = None, *,
                    keys: Mapping[str, str] | None = None) -> VideoPlan:
    """Check and resolve a video run without sending anything (``--estimate`` uses this)."""
    return plan_video(prompt, _settings(settings, keys), options or VideoOptions())


def start_video(plan: VideoPlan, listeners: Sequence[Listener] = (), result: VideoResult | None = None) -> VideoJob:
    """Start a video plan on the engine thread and return at once; ``result`` (``new_video_result(plan)``) is
    filled in place, so an interrupted caller keeps what arrived."""
    return VideoJob(get_runner().submit(lambda client: _run_video(plan, client, listeners, result)))


async def _run_video(plan: VideoPlan, client: httpx.AsyncClient, listeners: Sequence[Listener],
                     result: VideoResult | None = None) -> VideoResult:
    options = {"models": [c.model_id for c in plan.clips] or [a.model_id for a in plan.askers],
               "understand": plan.options.understand, "check": plan.options.check}
    return await _logged(plan.settings, "video", plan.prompt, options, listeners,
                         lambda ls: run_video(plan, _context(plan.settings, client, ls), result))


def plan_video_resume(out_dir: str | Path = "videos", settings: Settings | None = None) -> ResumePlan:
    """The jobs earlier runs left open in ``out_dir`` that can be fetched now (nothing is sent)."""
    return plan_resume(Path(out_dir), _settings(settings, None))


def start_resume(plan: ResumePlan, listeners: Sequence[Listener] = (), result: VideoResult | None = None, *,
                 timeout: float = 600.0, poll_s: float | None = None) -> VideoJob:
    """Re-attach to the planned jobs (no new submission) and download what finished; ``result`` is filled in
    place, as in ``start_video``."""
    return VideoJob(get_runner().submit(lambda client: _logged(
        plan.settings, "video", "%video resume", {"jobs": len(plan.jobs)}, listeners,
        lambda ls: resume(plan, _context(plan.settings, client, ls), timeout=timeout, poll_s=poll_s,
                          result=result))))


async def avideo(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                 listeners: Sequence[Listener] = (), **options: Unpack[VideoKeywords]) -> VideoResult:
    """Generate (or ask about) video on the running loop: ``r = await fusion_magic.avideo("...", models=[...])``."""
    _check_keywords(options, VideoKeywords)
    plan = plan_video(prompt, _settings(settings, keys), VideoOptions.from_keywords(options))
    client = new_client()
    try:
        return await _run_video(plan, client, listeners)
    finally:
        await finish_submits()  # an interrupted submit keeps its receipt: it needs the client a while longer
        await client.aclose()


def video(prompt: str, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
          listeners: Sequence[Listener] = (), background: bool = False,
          **options: Unpack[VideoKeywords]) -> Any:
    """Generate clips with a pool of video models, or ask about a video, and wait (Ctrl-C stops waiting; paid
    jobs stay resumable). Each keyword is the ``%%video`` flag of the same name (``models`` is ``-m``,
    ``understand`` is ``--understand``, ``out_dir`` is ``--out-dir``). Returns a ``VideoResult``, or a
    ``VideoJob`` at once with ``background=True``.

        r = fusion_magic.video("a paper boat on a rainy street", models=["gemini:gemini-omni-1.2-flash"], seconds=6)
        r.videos[0].path
    """
    _check_keywords(options, VideoKeywords)
    plan = plan_video(prompt, _settings(settings, keys), VideoOptions.from_keywords(options))
    job = start_video(plan, listeners, new_video_result(plan))
    return job if background else job.result()


def list_video_models(settings: Settings | None = None, *, keys: Mapping[str, str] | None = None) -> VideoListing:
    """The video models each key can use, asked of the providers now (``%video list``)."""
    s = _settings(settings, keys)
    result: VideoListing = get_runner().run(lambda client: video_models(s, client))
    return result


def history(settings: Settings | None = None, *, limit: int = 50) -> Any:
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


class EvalJob(RunJob[EvalResult]):
    """An evaluation going on in the background; cancelling it keeps every finished row."""


def make_eval_plan(data: Any, settings: Settings | None = None, *, keys: Mapping[str, str] | None = None,
                   **options: Any) -> EvalPlan:
    """Check and resolve an evaluation without sending anything (``plan_evaluation``'s keywords)."""
    return plan_evaluation(data, _settings(settings, keys), **options)


async def _run_eval(plan: EvalPlan, client: httpx.AsyncClient, listeners: Sequence[Listener],
                    result: EvalResult | None, on_row: RowCallback | None) -> EvalResult:
    options = {"strategies": plan.strategy_names, "repeats": plan.repeats, "judge": plan.judge,
               "questions": len(plan.questions), **({} if plan.seed is None else {"seed": plan.seed}),
               **({} if plan.scorer.name == "match" else {"scorer": plan.scorer.name})}
    return await _logged(plan.settings, "eval", f"{len(plan.questions)} questions", options, listeners,
                         lambda ls: run_evaluation(plan, _context(plan.settings, client, ls), on_row=on_row,
                                                   result=result))


def start_eval(plan: EvalPlan, listeners: Sequence[Listener] = (), result: EvalResult | None = None,
               on_row: RowCallback | None = None) -> EvalJob:
    """Start an evaluation on the engine thread; ``result`` (``new_eval_result(plan)``) keeps finished rows."""
    return EvalJob(get_runner().submit(lambda client: _run_eval(plan, client, listeners, result, on_row)))


async def aevaluate(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
                    listeners: Sequence[Listener] = (), on_row: RowCallback | None = None,
                    **options: Any) -> EvalResult:
    """``evaluate`` on the running loop: ``r = await fusion_magic.aevaluate(df, pool=[...])``."""
    plan = make_eval_plan(data, settings, keys=keys, **options)
    async with new_client() as client:
        return await _run_eval(plan, client, listeners, None, on_row)


def evaluate(data: Any, *, settings: Settings | None = None, keys: Mapping[str, str] | None = None,
             listeners: Sequence[Listener] = (), on_row: RowCallback | None = None, background: bool = False,
             **options: Any) -> Any:
    """Is fusion worth it on my questions? Every strategy (each pool member alone, ``self:K`` samples and a
    vote, best-of, merge, debate) answers every question of ``data`` (a DataFrame, CSV or JSONL with a
    ``question`` and a ``reference`` or ``rubric``), scored, with accuracy and a 95 % interval, cost, latency
    and calls per strategy. Ctrl-C keeps every finished row; with ``settings=Settings(cache="on")`` a re-run
    takes finished calls from the cache.

        r = fusion_magic.evaluate(BUNDLED_QUESTIONS, pool=["local:gemma3-270m"], strategies=["single", "self:5"])
        r.summary; r.plot()

    Keywords: ``pool``, ``strategies``, ``repeats``, ``judge``, ``concurrency``, ``rubric_judge``,
    ``instruction``, ``seed``, ``scorer`` (see ``fusion_magic.evaluation.plan_evaluation``). Each closed answer
    is right, wrong or unscorable; ``r.summary`` gives accuracy over the scored ones and the unscorable rate.
    """
    plan = make_eval_plan(data, settings, keys=keys, **options)
    job = start_eval(plan, listeners, new_eval_result(plan), on_row)
    return job if background else job.result()
