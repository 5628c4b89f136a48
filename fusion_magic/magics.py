"""The IPython face: ``%%fuse`` (cell) and ``%fuse list|rejudge|help`` (line). Thin on purpose:
parse the line, build a plan, run it through the one bridge, show the view, return the result.

Only this module turns our errors into IPython's one-line ``UsageError`` (set
``FUSION_MAGIC_RAISE_ERRORS=1`` to see the real exception and traceback instead).

    %load_ext fusion_magic
    %config FusionMagics.pool = ["openrouter:openai/gpt-4o", "gemini:gemini-2.5-flash"]
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Dict, Enum, Float, Int, List, Unicode
from traitlets.config import Configurable

from . import _args
from ._runner import get_runner
from .api import FusionJob, make_plan, run_plan
from .calls import CallContext
from .engine import rejudge
from .errors import FusionError
from .estimate import check_budget, estimate
from .events import OffloadedListener
from .listing import provider_listing
from .result import FusionResult
from .settings import CACHE_MODES, MODES, Settings, check_endpoints, parse_prices

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(method: F) -> F:
    """Our errors become one ``UsageError`` line (no traceback), unless FUSION_MAGIC_RAISE_ERRORS=1."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except FusionError as exc:
            if os.environ.get("FUSION_MAGIC_RAISE_ERRORS") == "1":
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

    pool = List(Unicode(), help="Default pool of provider:model ids; empty picks defaults from the keys set.").tag(
        config=True)
    judge = Unicode("", help="Default judge id, or 'vote'; empty picks a default.").tag(config=True)
    mode = Enum(list(MODES), "best-of", help="Default fusion mode.").tag(config=True)
    rounds = Int(2, help="Debate rounds.").tag(config=True)
    timeout = Float(120.0, help="Per-call timeout in seconds.").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Output cap per member call (default per provider).").tag(
        config=True)
    temperature = Float(None, allow_none=True, help="Member sampling temperature.").tag(config=True)
    system = Unicode(None, allow_none=True, help="Default system prompt.").tag(config=True)
    cache = Enum(list(CACHE_MODES), "off", help="Record/replay calls: off, on, replay.").tag(config=True)
    cache_dir = Unicode(None, allow_none=True, help="Cache folder (default ./.fusion_cache).").tag(config=True)
    endpoints = Dict(help="Extra OpenAI-compatible providers: {name: {base_url, key_env}}.").tag(config=True)
    prices = Dict(help="Extra prices, USD per million tokens: {model: [input, output]}.").tag(config=True)
    max_retries = Int(3, help="Retries for 429/5xx/connection resets before any text arrived.").tag(config=True)
    view = Enum(["auto", "widgets", "text"], "auto",
                help="auto: widgets in Jupyter kernels, text elsewhere.").tag(config=True)

    def __init__(self, shell: Any) -> None:
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.shell.configurables.append(self)  # makes %config FusionMagics list and set our traits
        self.last: FusionResult | FusionJob | None = None
        self.last_view: Any = None

    def settings(self) -> Settings:
        """Freeze the traits into the engine's settings (the engine never sees traitlets)."""
        return Settings(
            pool=tuple(self.pool), judge=self.judge, mode=self.mode, rounds=self.rounds, timeout=self.timeout,
            max_tokens=self.max_tokens, temperature=self.temperature, system=self.system, cache=self.cache,
            cache_dir=self.cache_dir, endpoints=check_endpoints(self.endpoints),
            prices=parse_prices(self.prices), max_retries=self.max_retries,
        )

    def _widgets_wanted(self) -> bool:
        if self.view != "auto":
            return self.view == "widgets"
        return type(self.shell).__name__ == "ZMQInteractiveShell"

    @no_var_expand
    @line_cell_magic
    @friendly_errors
    def fuse(self, line: str, cell: str | None = None) -> Any:
        if cell is None:
            return self._line(line)
        args = _args.parse_fuse_line(line)
        body = _args.strip_markers(cell)
        prompt = body if args.no_interpolate else _args.interpolate(body, self.shell.user_ns)
        if args.estimate:  # no call, so no key needed: see the cost before getting one
            return estimate(make_plan(prompt, self.settings(), require_keys=False, **args.engine_options()))
        plan = make_plan(prompt, self.settings(), cache=args.cache, **args.engine_options())
        for warning in plan.warnings:
            print(warning)
        if args.budget is not None:
            check_budget(estimate(plan), args.budget)
        listeners = self._open_view()
        if args.background:
            job = FusionJob(get_runner().submit(lambda client: run_plan(plan, client, listeners)))
            self.last = job
            if args.out:
                self.shell.push({args.out: job})
            print(f"Running in the background{f'; {args.out}.result() waits for it' if args.out else ''}.")
            return None
        result = self._run(lambda client: run_plan(plan, client, listeners), listeners)
        return self._finish(result, self.last_view is not None, args.out)

    def _open_view(self) -> list[OffloadedListener]:
        """Show a live view when the frontend has widgets; return the listeners that feed it."""
        self.last_view = None
        if not self._widgets_wanted():
            from .view.progress import ProgressPrinter

            return [OffloadedListener(ProgressPrinter(sys.stderr))]
        from .view import FusionView

        self.last_view = FusionView()
        self.last_view.display()
        return [OffloadedListener(self.last_view.handle)]

    @staticmethod
    def _run(make: Callable[[Any], Any], listeners: list[OffloadedListener]) -> FusionResult:
        """Block on the engine (interruptible), then let the view catch up before the cell ends, so
        nbclient and nbval see its final state."""
        try:
            return get_runner().run(make)
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
        return self._rejudge(ns)

    def _rejudge(self, ns: Any) -> FusionResult:
        source = self.shell.user_ns.get(ns.source) if ns.source else self.last
        if isinstance(source, FusionJob):
            source = source.result()
        if not isinstance(source, FusionResult):
            raise UsageError("%fuse rejudge needs an earlier %%fuse result (run one first, or name its variable)")
        settings = self.settings()
        listeners = self._open_view()

        async def go(client: Any) -> FusionResult:
            ctx = CallContext(client=client, settings=settings, listeners=list(listeners))
            return await rejudge(source, settings, ctx, mode=ns.mode, judge=ns.judge)

        return self._finish(self._run(go, listeners), self.last_view is not None, ns.out)

FUSE_DOC = (
    _args.FUSE_HELP
    + "\nLine magic:\n  %fuse list                       providers, which keys are set, known models and prices"
    + "\n  %fuse rejudge [-m MODE] [-j ID] [NAME]  judge the last result again (late answers included),"
    + " no pool call\n  %fuse help                       this text\n"
)
FusionMagics.fuse.__doc__ = FUSE_DOC


def load(shell: Any) -> None:
    """Register the magics once per shell (a second %load_ext is a no-op in IPython already)."""
    shell.register_magics(FusionMagics(shell))


def unload(shell: Any) -> None:
    """Forget our configurable (so %config does not hit a stale instance) and cancel running work."""
    shell.configurables[:] = [c for c in shell.configurables if not isinstance(c, FusionMagics)]
    get_runner().cancel_all()
    print("fusion_magic unloaded.", file=sys.stderr)
