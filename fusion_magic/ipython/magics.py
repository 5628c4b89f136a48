"""The IPython face: ``%%fuse`` (cell) and ``%fuse list|rejudge|history|eval|help`` (line). Thin on
purpose: parse the line (``args.py``), freeze the traits (generated from ``FuseOptions``' declarations) into
the defaults, plan and start the run through the api (``plan_*``, ``start``), show the view, wait in the cell
(``wait.py``), return the result. Nothing here touches the engine loop or the engine's internals.

Only the magics turn our errors into IPython's one-line ``UsageError`` (``friendly_errors``), and an
interrupt into one line saying what was kept (``wait.py``; set ``FUSION_MAGIC_RAISE_ERRORS=1`` to see the
real exception and traceback instead).

    %load_ext fusion_magic
    %config FusionMagics.pool = ["openrouter:openai/gpt-4o", "gemini:gemini-2.5-flash"]
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Dict, Enum, Int, Unicode
from traitlets.config import Configurable

from ..calls.settings import Settings, check_endpoints, parse_prices
from ..core.attachment import load_attachment
from ..core.errors import FusionError
from ..core.record import Response
from ..core.state import State
from ..fusion.options import FuseOptions
from . import args as _args
from .declared import config_traits, config_values
from .wait import CellInterrupted, in_background, raise_errors, start_then_view, wait_in_cell

if TYPE_CHECKING:
    from ..api import FusionJob, RejudgePlan
    from ..core.events import Listener
    from ..fusion.engine import FusionPlan
    from ..fusion.result import FusionResult

# The api (and through it every engine, httpx and asyncio), the estimates, the result classes and the views
# are imported inside the methods that use them, not here: %load_ext only registers the magics, and must
# stay cheap next to a bare IPython start (bench/bench_overhead.py, #22).

F = TypeVar("F", bound=Callable[..., Any])


class FusionInterrupted(CellInterrupted):
    """A ``%%fuse`` cell (or ``%fuse rejudge``, ``%fuse eval``) stopped by an interrupt: one line saying what
    stopped and what was kept (``wait.CellInterrupted``).

        try: shell.run_cell_magic("fuse", "-o r", "...")
        except FusionInterrupted as exc: exc.partial   # also in r
    """


def widgets_wanted(shell: Any, view: str) -> bool:
    """Whether to show a live widget view: ``view`` "widgets" or "text" decides, "auto" means a Jupyter
    kernel (terminal IPython and scripts get text)."""
    if view != "auto":
        return view == "widgets"
    return type(shell).__name__ == "ZMQInteractiveShell"


def print_notes(notes: Iterable[str]) -> None:
    """The notes an old flag's spelling left on the line (``args.notes``): one line each."""
    for note in notes:
        print(note)


def friendly_errors(method: F) -> F:
    """Our errors become one ``UsageError`` line (no traceback), unless FUSION_MAGIC_RAISE_ERRORS=1."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except FusionError as exc:
            if raise_errors():
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

    # The run's options that have a session default (declared with config= in fusion/options.py), as traits
    # generated from their declarations: pool, judge, mode, rounds, timeout, max_tokens, temperature, system,
    # cache. A class body's namespace is a real dict, so the metaclass sees them as if written out here.
    locals().update(config_traits(FuseOptions))
    # The session's own settings (Settings fields that are no run option).
    cache_dir = Unicode(None, allow_none=True, help="Cache folder (default ./.fusion_cache).").tag(config=True)
    endpoints = Dict(help="Extra OpenAI-compatible providers: {name: {base_url, key_env}}.").tag(config=True)
    prices = Dict(help="Extra prices, USD per million tokens: {model: [input, output]}.").tag(config=True)
    max_retries = Int(3, help="Retries for 429/5xx/connection resets before any text arrived.").tag(config=True)
    run_log = Unicode(None, allow_none=True,
                      help="Run log (SQLite) path, or 'off'; default: fusion_runs.sqlite in the user's data folder "
                           "(~/.local/share/fusion_magic on Linux; $FUSION_MAGIC_RUN_LOG wins).").tag(config=True)
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
        return Settings(
            **config_values(self, FuseOptions), cache_dir=self.cache_dir, endpoints=check_endpoints(self.endpoints),
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
        from ..api import follow_up_defaults, plan_fuse
        from ..fusion.estimate import check_budget, estimate

        args = self._with_variables(_args.parse_fuse_line(line))
        print_notes(args.notes)
        settings = self.settings()
        parent = self._continued(args.follow_up)
        options = args.options(follow_up_defaults(parent, settings))
        body = _args.strip_markers(cell)
        prompt = body if args.no_interpolate else _args.interpolate(body, self.shell.user_ns, note=print)
        # --estimate makes no call, so it needs no key: see the cost before getting one.
        plan = plan_fuse(prompt, settings, options, require_keys=not args.estimate, parent=parent)
        if args.estimate:
            return estimate(plan)
        self._show_notice(plan.notice)
        for warning in plan.warnings:
            print(warning)
        if args.budget is not None:
            check_budget(estimate(plan), args.budget)
        job, listeners = self._start(plan)
        if args.background:
            self.last = job
            in_background(self.shell, job, args.out)
            return None

        def stopped(seconds: float, finished: bool) -> CellInterrupted:
            partial = job.partial
            self.last = partial
            if args.out:
                self.shell.push({args.out: partial})
            assert partial is not None  # start() made it
            return FusionInterrupted(interrupted_line(partial, len(plan.members), seconds, args.out,
                                                      finished=finished), partial)

        return self._finish(wait_in_cell(job, listeners, stopped), self.last_view is not None, args.out)

    def _with_variables(self, args: _args.FuseArgs) -> _args.FuseArgs:
        """``--attach`` items that name no file but a variable holding a figure, an image, a DataFrame or bytes
        attach that value: ``--attach fig`` shows the models the chart just drawn. A file of that name wins."""
        items = args.given.get("attach")
        if not items:
            return args
        namespace = self.shell.user_ns

        def resolved(item: object) -> object:
            if not (isinstance(item, str) and item.isidentifier() and item in namespace and not Path(item).exists()):
                return item
            # Named after the variable (fig.png, sales.csv): the name the models and the view show.
            attachment = load_attachment(namespace[item])
            return dc_replace(attachment, name=item + Path(attachment.name).suffix)

        return dc_replace(args, given={**args.given, "attach": tuple(resolved(item) for item in items)})

    def _continued(self, name: str | None) -> FusionResult | None:
        """The result ``--continue NAME`` names (None without the flag): a ``FusionResult`` in the namespace, or
        one ``UsageError`` line naming it, before any call."""
        if name is None:
            return None
        from ..api import FusionJob
        from ..fusion.result import FusionResult

        value = self.shell.user_ns.get(name)
        if isinstance(value, FusionJob):
            raise UsageError(f"--continue {name}: that run is still going on in the background; "
                             f"continue {name}.result() once it is done")
        if not isinstance(value, FusionResult):
            kind = type(value).__name__
            what = ("is not defined" if name not in self.shell.user_ns
                    else f"is {'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}")
            raise UsageError(f"--continue {name}: {name} {what}; name a %%fuse result (-o {name} stores one)")
        return value

    def _show_notice(self, notice: str | None) -> None:
        """A notice (which defaults were picked) is the same for every cell: printed once per kernel."""
        if notice and notice not in self.notices_shown:
            self.notices_shown.add(notice)
            print(notice)

    def _start(self, plan: FusionPlan | RejudgePlan) -> tuple[FusionJob, list[Listener]]:
        """Start ``plan`` with a live view when the frontend has widgets (progress lines on stderr otherwise)."""
        from ..api import start
        from ..core.events import OffloadedListener

        self.last_view = None
        if not self._widgets_wanted():
            from ..fusion.progress import ProgressPrinter

            listeners: list[Listener] = [OffloadedListener(ProgressPrinter(sys.stderr))]
            return start(plan, listeners), listeners
        from ..fusion.view import FusionView

        def view() -> Listener:
            self.last_view = FusionView()
            self.last_view.display()
            return self.last_view.handle

        return start_then_view(lambda listeners: start(plan, listeners), view)

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
            print(FUSE_DOC if ns is None else _args.command_help(ns))
            return None
        if command == "list":
            from .listing import provider_listing

            return provider_listing(self.settings())
        if command == "history":
            return self._history(ns)
        if command == "eval":
            return self._eval(ns)
        return self._rejudge(ns)

    def _history(self, ns: Any) -> Any:
        from ..api import export_history, history

        if ns.export:
            n = export_history(ns.export, self.settings(), run_id=ns.run)
            print(f"Wrote {n} row{'s' if n != 1 else ''} to {ns.export}.")
            return None
        return history(self.settings(), limit=ns.limit)

    def _eval(self, ns: _args.EvalArgs) -> Any:
        """``%fuse eval``: plan (every check first), run with a progress bar, keep finished rows on Ctrl-C."""
        from ..api import plan_eval, plan_eval_resume, start
        from ..evaluation import BUNDLED_QUESTIONS
        from ..evaluation.estimate import estimate_evaluation
        from ..evaluation.options import EvalOptions
        from .progress import EvalProgress

        print_notes(ns.notes)
        data: Any = BUNDLED_QUESTIONS if ns.data == "bundled" else self.shell.user_ns.get(ns.data, ns.data)
        settings = self.settings().with_(cache=ns.cache)
        if ns.data == "resume":
            if ns.given:
                raise UsageError("%fuse eval resume takes the options the evaluation was started with; it accepts "
                                 "only --cache, -o, --background")
            plan = plan_eval_resume(settings)
            print(f"Resuming the batch evaluation of {len(plan.questions)} questions from {plan.source}.")
        else:
            plan = plan_eval(data, settings, EvalOptions().with_(**ns.given))
        if ns.estimate:
            return estimate_evaluation(plan)
        self._show_notice(plan.notice)
        for warning in plan.warnings:
            print(warning)
        progress = EvalProgress(plan.total, widgets=self._widgets_wanted())
        job = start(plan, (progress.listener,), on_row=progress.row)
        partial = job.partial
        assert partial is not None  # start() made it
        if ns.background:
            in_background(self.shell, job, ns.out)
            return None

        def stopped(seconds: float, finished: bool) -> CellInterrupted:
            if ns.out:
                self.shell.push({ns.out: partial})
            kept = f"the finished rows are in {ns.out}" if ns.out else "nothing stored (-o NAME keeps them)"
            # Paid batches go on at the provider; their receipts are in the run log.
            batches = ("; its batches go on at the providers: run it again (or %fuse eval resume) to re-attach"
                       if plan.batch else "")
            return FusionInterrupted(f"fusion_magic: evaluation interrupted after {seconds:.1f} s: "
                                     f"{len(partial.rows)} of {plan.total} rows done; {kept}{batches}", partial)

        try:
            result = wait_in_cell(job, (), stopped)
        finally:
            progress.close(partial.wall_s or None)
        if ns.out:
            self.shell.push({ns.out: result})
        return result

    def _rejudge(self, ns: Any) -> FusionResult:
        from ..api import FusionJob, plan_rejudge
        from ..fusion.result import FusionResult

        source = self.shell.user_ns.get(ns.source) if ns.source else self.last
        if isinstance(source, FusionJob):
            source = source.result()
        if not isinstance(source, FusionResult):
            raise UsageError("%fuse rejudge needs an earlier %%fuse result (run one first, or name its variable)")
        # The api's path, so a rejudge uses the cache like a fresh run's judge.
        plan = plan_rejudge(source, self.settings(), mode=ns.mode, judge=ns.judge, orders=ns.orders, cache=ns.cache)
        job, listeners = self._start(plan)
        result = wait_in_cell(job, listeners, lambda seconds, _: FusionInterrupted(
            f"fusion_magic: rejudge interrupted after {seconds:.1f} s; the earlier result is unchanged"))
        return self._finish(result, self.last_view is not None, ns.out)


def interrupted_line(partial: FusionResult, seats: int, seconds: float, out: str | None, *,
                     finished: bool = True) -> str:
    """The one line an interrupted cell shows: how long it ran, where each pool seat stood, where the
    partial result went.

    ``fusion_magic: interrupted after 2.3 s: 1 of 3 answers done, 2 cancelled; the partial result is in r``
    """
    from ..present.wording import status_word

    kept = f"the partial result is in {out}" if out else "not stored (add -o NAME)"
    if not finished:  # the run did not unwind within the runner's wait: it fills ``partial`` when it does
        return f"fusion_magic: interrupted after {seconds:.1f} s; the calls are still stopping; {kept}"
    latest: dict[str, Response] = {}
    for r in partial.responses:  # in call order, so a seat's last debate round wins
        latest[r.label or r.model] = r
    states = Counter(r.state for r in latest.values())
    done, failed, filtered = states[State.DONE], states[State.FAILED], states[State.FILTERED]
    cancelled = seats - done - failed - filtered  # a seat whose call never started is cancelled too
    parts = [f"{done} of {seats} answer{'s' if seats != 1 else ''} {State.DONE}"]
    parts += [f"{n} {word}" for n, word in ((failed, State.FAILED), (filtered, State.FILTERED),
                                            (cancelled, State.CANCELLED)) if n]
    parts += [f"judge {status_word(j)}" for j in partial.judge_responses]
    return f"fusion_magic: interrupted after {seconds:.1f} s: {', '.join(parts)}; {kept}"


FUSE_DOC = _args.FUSE_HELP
FusionMagics.fuse.__doc__ = FUSE_DOC
