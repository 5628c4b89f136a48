"""The IPython face: ``%%fuse`` (cell) and ``%fuse list|rejudge|help`` (line). Thin on purpose:
parse the line (``args.py``), freeze the traits into the defaults, plan and start the run through the
api, show the view, return the result. Nothing here touches the engine loop or the engine's internals.

Only this module turns our errors into IPython's one-line ``UsageError``, and an interrupt into one
line saying what was kept (set ``FUSION_MAGIC_RAISE_ERRORS=1`` to see the real exception and traceback
instead).

    %load_ext fusion_magic
    %config FusionMagics.pool = ["openrouter:openai/gpt-4o", "gemini:gemini-2.5-flash"]
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Dict, Enum, Float, Int, List, Unicode
from traitlets.config import Configurable

from ..api import (
    FusionJob,
    export_history,
    history,
    make_eval_plan,
    make_plan,
    new_eval_result,
    new_result,
    start,
    start_eval,
    start_rejudge,
)
from ..calls.settings import CACHE_MODES, MODES, Settings, check_endpoints, parse_prices
from ..core.errors import FusionError
from ..core.events import OffloadedListener
from ..core.record import Response
from ..fusion.engine import FusionPlan
from ..fusion.estimate import check_budget, estimate
from ..fusion.options import CONFIGURABLE, FuseOptions
from ..fusion.result import FusionResult
from ..present.wording import CallState, state_of, status_word
from . import args as _args
from .listing import provider_listing
from .progress import EvalProgress

F = TypeVar("F", bound=Callable[..., Any])


def _raise_errors() -> bool:
    """``FUSION_MAGIC_RAISE_ERRORS=1``: tests and debugging see the real exception, not the one line."""
    return os.environ.get("FUSION_MAGIC_RAISE_ERRORS") == "1"


class FusionInterrupted(KeyboardInterrupt):
    """A ``%%fuse`` cell stopped by an interrupt. Still a ``KeyboardInterrupt``, so the cell fails like
    any interrupted cell ("Run All" stops there, nbclient raises), but IPython shows ``str(self)``, one
    line saying what stopped and what was kept, instead of a traceback through the engine's threads.

        try: shell.run_cell_magic("fuse", "-o r", "...")
        except FusionInterrupted as exc: exc.partial   # also in r
    """

    def __init__(self, message: str, partial: FusionResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial

    def _render_traceback_(self) -> list[str]:
        # IPython's hook for exceptions that render themselves (ipyparallel's remote errors use it). It
        # lives on the exception, so unlike set_custom_exc (one slot per shell, which another extension
        # may take or IPython may drop) it needs no registering and works in terminal IPython, every
        # kernel and nbclient alike; the kernel still reports the cell as failed, with this one line.
        return [str(self)]


def widgets_wanted(shell: Any, view: str) -> bool:
    """Whether to show a live widget view: ``view`` "widgets" or "text" decides, "auto" means a Jupyter
    kernel (terminal IPython and scripts get text)."""
    if view != "auto":
        return view == "widgets"
    return type(shell).__name__ == "ZMQInteractiveShell"


def friendly_errors(method: F) -> F:
    """Our errors become one ``UsageError`` line (no traceback), unless FUSION_MAGIC_RAISE_ERRORS=1."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except FusionError as exc:
            if _raise_errors():
                raise
            # IPython prints a traceback for UsageError subclasses: raise the class itself.
            raise UsageError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@magics_class
class FusionMagics(Magics, Configurable):
    """Magics for fusing models. Every option below can be set with ``%config FusionMagics.NAME = ...``
    or in ``ipython_config.py`` as ``c.FusionMagics.NAME = ...``.

        %config FusionMagics.judge = "vote"
        %config FusionMagics
    """

    shell: Any  # set by IPython; typed loosely so the engine-facing code stays free of IPython types

    # The run's options among these (fuse/options.py: CONFIGURABLE) take FuseOptions' defaults.
    pool = List(Unicode(), list(FuseOptions.pool),
                help="Default pool of provider:model ids; empty picks defaults from the keys set.").tag(config=True)
    judge = Unicode(FuseOptions.judge, help="Default judge id, or 'vote'; empty picks a default.").tag(config=True)
    mode = Enum(list(MODES), FuseOptions.mode, help="Default fusion mode.").tag(config=True)
    rounds = Int(FuseOptions.rounds, help="Debate rounds.").tag(config=True)
    timeout = Float(FuseOptions.timeout, help="Per-call timeout in seconds.").tag(config=True)
    max_tokens = Int(FuseOptions.max_tokens, allow_none=True,
                     help="Output cap per member call (default per provider).").tag(config=True)
    temperature = Float(FuseOptions.temperature, allow_none=True, help="Member sampling temperature.").tag(
        config=True)
    system = Unicode(FuseOptions.system, allow_none=True, help="Default system prompt.").tag(config=True)
    cache = Enum(list(CACHE_MODES), FuseOptions.cache, help="Record/replay calls: off, on, replay.").tag(config=True)
    cache_dir = Unicode(None, allow_none=True, help="Cache folder (default ./.fusion_cache).").tag(config=True)
    endpoints = Dict(help="Extra OpenAI-compatible providers: {name: {base_url, key_env}}.").tag(config=True)
    prices = Dict(help="Extra prices, USD per million tokens: {model: [input, output]}.").tag(config=True)
    max_retries = Int(3, help="Retries for 429/5xx/connection resets before any text arrived.").tag(config=True)
    run_log = Unicode(None, allow_none=True,
                      help="Run log (SQLite) path, or 'off'; default ./fusion_runs.sqlite.").tag(config=True)
    view = Enum(["auto", "widgets", "text"], "auto",
                help="auto: widgets in Jupyter kernels, text elsewhere.").tag(config=True)

    def __init__(self, shell: Any) -> None:
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.shell.configurables.append(self)  # makes %config FusionMagics list and set our traits
        self.last: FusionResult | FusionJob | None = None
        self.last_view: Any = None
        # Notices already printed by this shell's magics: a notice (which defaults were picked) is the
        # same for every cell, so it is printed once per kernel.
        self.notices_shown: set[str] = set()

    def settings(self) -> Settings:
        """Freeze the traits into the engine's settings (the engine never sees traitlets); the run options
        among them are the defaults ``FuseOptions.defaults`` reads back."""
        run_defaults: dict[str, Any] = {name: getattr(self, name) for name in CONFIGURABLE} | {"pool": tuple(self.pool)}
        return Settings(
            **run_defaults, cache_dir=self.cache_dir, endpoints=check_endpoints(self.endpoints),
            prices=parse_prices(self.prices), max_retries=self.max_retries, run_log=self.run_log,
        )

    def _widgets_wanted(self) -> bool:
        return widgets_wanted(self.shell, self.view)

    @no_var_expand
    @line_cell_magic
    @friendly_errors
    def fuse(self, line: str, cell: str | None = None) -> Any:
        if cell is None:
            return self._line(line)
        args = _args.parse_fuse_line(line)
        settings = self.settings()
        options = args.options(FuseOptions.defaults(settings))
        body = _args.strip_markers(cell)
        prompt = body if args.no_interpolate else _args.interpolate(body, self.shell.user_ns)
        # --estimate makes no call, so it needs no key: see the cost before getting one.
        plan = make_plan(prompt, settings, options, require_keys=not args.estimate)
        if args.estimate:
            return estimate(plan)
        if plan.notice and plan.notice not in self.notices_shown:
            self.notices_shown.add(plan.notice)
            print(plan.notice)
        for warning in plan.warnings:
            print(warning)
        if args.budget is not None:
            check_budget(estimate(plan), args.budget)
        listeners = self._open_view()
        if args.background:
            job = start(plan, listeners)
            self.last = job
            if args.out:
                self.shell.push({args.out: job})
            print(f"Running in the background{f'; {args.out}.result() waits for it' if args.out else ''}.")
            return None
        return self._finish(self._run_plan(plan, listeners, args.out), self.last_view is not None, args.out)

    def _run_plan(self, plan: FusionPlan, listeners: list[OffloadedListener], out: str | None) -> FusionResult:
        """Run the plan, blocking; an interrupt stores the partial result and ends in ``FusionInterrupted``."""
        partial = new_result(plan)  # filled in place: after an interrupt it is the partial result
        started = time.monotonic()
        job = start(plan, listeners, partial)
        try:
            return self._wait(job, listeners)
        except KeyboardInterrupt as exc:
            self.last = partial
            if out:
                self.shell.push({out: partial})
            if _raise_errors():
                raise
            line = interrupted_line(partial, len(plan.members), time.monotonic() - started, out,
                                    finished=job.done())
            raise FusionInterrupted(line, partial) from exc

    def _open_view(self) -> list[OffloadedListener]:
        """Show a live view when the frontend has widgets; return the listeners that feed it."""
        self.last_view = None
        if not self._widgets_wanted():
            from ..fusion.progress import ProgressPrinter

            return [OffloadedListener(ProgressPrinter(sys.stderr))]
        from ..fusion.view import FusionView

        self.last_view = FusionView()
        self.last_view.display()
        return [OffloadedListener(self.last_view.handle)]

    @staticmethod
    def _wait(job: FusionJob, listeners: list[OffloadedListener]) -> FusionResult:
        """Block on the engine (interruptible: an interrupt cancels the run and waits for it to unwind),
        then let the view catch up before the cell ends, so nbclient and nbval see its final state."""
        try:
            return job.result()
        finally:
            for listener in listeners:
                listener.flush()

    def _finish(self, result: FusionResult, shown_live: bool, out: str | None) -> FusionResult:
        result._shown_live = shown_live
        self.last = result
        if out:
            self.shell.push({out: result})
        if result.n_ok == 0:
            first = next((r.error for r in result.responses if r.error), "no answer")
            raise UsageError(f"every pool member failed ({len(result.pool)} of {len(result.pool)}); "
                             f"first error: {first}")
        return result

    def _line(self, line: str) -> Any:
        command, ns = _args.parse_line_magic(line)
        if command == "help":
            print(FUSE_DOC)
            return None
        if command == "list":
            return provider_listing(self.settings())
        if command == "history":
            return self._history(ns)
        if command == "eval":
            return self._eval(ns)
        return self._rejudge(ns)

    def _history(self, ns: Any) -> Any:
        if ns.export:
            n = export_history(ns.export, self.settings(), run_id=ns.run)
            print(f"Wrote {n} row{'s' if n != 1 else ''} to {ns.export}.")
            return None
        return history(self.settings(), limit=ns.limit)

    def _eval(self, ns: Any) -> Any:
        """``%fuse eval``: plan (every check first), run with a progress bar, keep finished rows on Ctrl-C."""
        from ..evaluation import BUNDLED_QUESTIONS

        data: Any = BUNDLED_QUESTIONS if ns.data == "bundled" else self.shell.user_ns.get(ns.data, ns.data)
        settings = self.settings().with_(cache=ns.cache)
        options: dict[str, Any] = {"repeats": ns.repeats, "judge": ns.judge, "strategies": ns.strategies}
        if ns.pool:
            options["pool"] = [p.strip() for p in ns.pool.split(",") if p.strip()]
        if ns.concurrency:
            options["concurrency"] = ns.concurrency
        if ns.rubric_judge:
            options["rubric_judge"] = ns.rubric_judge
        if ns.seed is not None:  # 0 is a seed
            options["seed"] = ns.seed
        if ns.scorer:
            options["scorer"] = ns.scorer
        plan = make_eval_plan(data, settings, **options)
        if plan.notice and plan.notice not in self.notices_shown:
            self.notices_shown.add(plan.notice)
            print(plan.notice)
        for warning in plan.warnings:
            print(warning)
        partial = new_eval_result(plan)
        progress = EvalProgress(plan.total, widgets=self._widgets_wanted())
        job = start_eval(plan, (), partial, progress.row)
        started = time.monotonic()
        try:
            result = job.result()
        except KeyboardInterrupt as exc:
            job.cancel()
            if ns.out:
                self.shell.push({ns.out: partial})
            kept = f"the finished rows are in {ns.out}" if ns.out else "nothing stored (-o NAME keeps them)"
            raise FusionInterrupted(f"fusion_magic: evaluation interrupted after {time.monotonic() - started:.1f} s: "
                                    f"{len(partial.rows)} of {plan.total} rows done; {kept}") from exc
        finally:
            progress.close(partial.wall_s or None)
        if ns.out:
            self.shell.push({ns.out: result})
        return result

    def _rejudge(self, ns: Any) -> FusionResult:
        source = self.shell.user_ns.get(ns.source) if ns.source else self.last
        if isinstance(source, FusionJob):
            source = source.result()
        if not isinstance(source, FusionResult):
            raise UsageError("%fuse rejudge needs an earlier %%fuse result (run one first, or name its variable)")
        settings = self.settings().with_(cache=ns.cache)
        listeners = self._open_view()
        started = time.monotonic()
        try:
            # The api's path, so a rejudge uses the cache like a fresh run's judge.
            result = self._wait(start_rejudge(source, settings, listeners, mode=ns.mode, judge=ns.judge,
                                              orders=ns.orders), listeners)
        except KeyboardInterrupt as exc:
            if _raise_errors():
                raise
            raise FusionInterrupted(f"fusion_magic: rejudge interrupted after {time.monotonic() - started:.1f} s; "
                                    "the earlier result is unchanged") from exc
        return self._finish(result, self.last_view is not None, ns.out)


def interrupted_line(partial: FusionResult, seats: int, seconds: float, out: str | None, *,
                     finished: bool = True) -> str:
    """The one line an interrupted cell shows: how long it ran, where each pool seat stood, where the
    partial result went.

    ``fusion_magic: interrupted after 2.3 s: 1 of 3 answers done, 2 cancelled; the partial result is in r``
    """
    kept = f"the partial result is in {out}" if out else "nothing stored (-o NAME keeps the partial result)"
    if not finished:  # the run did not unwind within the runner's wait: it fills ``partial`` when it does
        return f"fusion_magic: interrupted after {seconds:.1f} s; the calls are still stopping; {kept}"
    latest: dict[str, Response] = {}
    for r in partial.responses:  # in call order, so a seat's last debate round wins
        latest[r.label or r.model] = r
    states = Counter(state_of(r) for r in latest.values())
    done, failed = states[CallState.DONE], states[CallState.FAILED]
    cancelled = seats - done - failed  # a seat whose call never started is cancelled too
    parts = [f"{done} of {seats} answer{'s' if seats != 1 else ''} {CallState.DONE}"]
    parts += [f"{n} {word}" for n, word in ((failed, CallState.FAILED), (cancelled, CallState.CANCELLED)) if n]
    parts += [f"judge {status_word(j)}" for j in partial.judge_responses]
    return f"fusion_magic: interrupted after {seconds:.1f} s: {', '.join(parts)}; {kept}"


FUSE_DOC = _args.FUSE_HELP
FusionMagics.fuse.__doc__ = FUSE_DOC
