"""Wait for a job in a cell: the one place a magic blocks on a run, and turns Ctrl-C into one line.

Every magic starts its run through ``api.start`` and then either leaves it in the background
(``in_background``) or waits here (``wait_in_cell``). An interrupt cancels the run (the runner waits for its
connections to close), lets the view catch up, keeps what arrived (the magic's ``stopped`` callback stores the
job's partial result) and ends the cell with the magic's one line: a ``CellInterrupted``, still a
``KeyboardInterrupt``, so "Run All" stops there and nbclient raises. ``FUSION_MAGIC_RAISE_ERRORS=1`` shows the
plain ``KeyboardInterrupt`` instead (what was kept is kept all the same).

    job = start(plan, listeners)
    result = wait_in_cell(job, listeners, lambda seconds, finished: CellInterrupted(f"stopped after {seconds:.1f} s"))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    # Only for annotations: the api imports every engine and httpx, which %load_ext does not need (#22).
    from ..api import RunJob
    from ..core.events import Listener

T = TypeVar("T")


def raise_errors() -> bool:
    """``FUSION_MAGIC_RAISE_ERRORS=1``: tests and debugging see the real exception, not the one line."""
    return os.environ.get("FUSION_MAGIC_RAISE_ERRORS") == "1"


class CellInterrupted(KeyboardInterrupt):
    """A magic's cell stopped by an interrupt. Still a ``KeyboardInterrupt``, so the cell fails like any
    interrupted cell, but IPython shows ``str(self)``, one line saying what stopped and what was kept, instead
    of a traceback through the engine's threads; ``partial`` holds what had arrived.

        try: shell.run_cell_magic("fuse", "-o r", "...")
        except CellInterrupted as exc: exc.partial   # also in r
    """

    def __init__(self, message: str, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial

    def _render_traceback_(self) -> list[str]:
        # IPython's hook for exceptions that render themselves (ipyparallel's remote errors use it). It
        # lives on the exception, so unlike set_custom_exc (one slot per shell, which another extension
        # may take or IPython may drop) it needs no registering and works in terminal IPython, every
        # kernel and nbclient alike; the kernel still reports the cell as failed, with this one line.
        return [str(self)]


J = TypeVar("J", bound="RunJob[Any]")


def start_then_view(start: Callable[[Sequence[Listener]], J], view: Callable[[], Listener]
                    ) -> tuple[J, list[Listener]]:
    """Start a run, then build and show its live view: the widgets are made while the first requests are in
    flight rather than before they are sent. Events that come first are held and handed to the view in order.

        job, listeners = start_then_view(lambda ls: start(plan, ls), lambda: build_view().handle)
    """
    from ..core.events import OffloadedListener

    listener = OffloadedListener()
    job = start([listener])
    try:
        # The widgets are made once the run has announced its calls and sends them (no event for 10 ms, 60 ms at
        # most): made at the same moment, they took the GIL from the loop sending the requests.
        listener.wait_quiet(0.01, 0.06)
        listener.attach(view())
    except BaseException:
        listener.attach(lambda event: None)  # a flush must not wait for a view that never came
        job.cancel()
        raise
    return job, [listener]


def flush(listeners: Sequence[Listener]) -> None:
    """Let the view catch up before the cell ends (nbclient and nbval see its final state)."""
    from ..core.events import OffloadedListener

    for listener in listeners:
        if isinstance(listener, OffloadedListener):
            listener.flush()


def wait_in_cell(job: RunJob[T], listeners: Sequence[Listener],
                 stopped: Callable[[float, bool], CellInterrupted]) -> T:
    """Block until ``job`` ends and return its result (its error, if it failed), the view caught up.

    On Ctrl-C, ``stopped(seconds, finished)`` is called once the run was cancelled (``finished``: it unwound
    within the runner's wait, so its partial result is complete): it keeps the partial result where the magic
    keeps it and returns the line to end the cell with, raised from the interrupt.
    """
    started = time.monotonic()
    try:
        try:
            return job.result()
        finally:
            flush(listeners)
    except KeyboardInterrupt as exc:
        line = stopped(time.monotonic() - started, job.done())
        if raise_errors():
            raise
        raise line from exc


def in_background(shell: Any, job: RunJob[Any], out: str | None) -> None:
    """``--background``: the job is stored in ``out`` (its ``result()`` waits), and one line says so."""
    if out:
        shell.push({out: job})
    print(f"Running in the background{f'; {out}.result() waits for it' if out else ''}.")


__all__ = ["CellInterrupted", "flush", "in_background", "raise_errors", "start_then_view", "wait_in_cell"]
