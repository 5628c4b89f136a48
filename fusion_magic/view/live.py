"""A live view: a status line over a ``Tab`` of panes, shown through a display handle so that a run that ended
replaces its own output with the static report. Each job kind's view (``fusion/view.py``, ``videos/view.py``)
subclasses it and says what its panes, progress line, status and report are.

A view has a clock as well as events: while every call is silent (waiting for a first token, a question about a
video being read) no event arrives, yet elapsed times must advance. One daemon thread per view calls ``_tick``
every ``tick_s`` seconds from the run's start until it ended (``_start_clock``/``_stop_clock``).

A saved notebook keeps the last bundle of each output. Had it kept the widget, a reopened notebook (or one on
another server) would show "Error displaying widget: model not found", because widget models live in the kernel
that is gone; sanitized HTML and text show anywhere (GitHub, nbconvert).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.events import after_events
from .tabs import close_tree

if TYPE_CHECKING:
    import pandas as pd
    from IPython.display import DisplayHandle

    from .tabs import LedgerPane, Pane


class LiveView:
    """The mechanics every live view shares. A subclass creates its panes (a ``ledger_pane`` among them), then
    calls ``_build()``."""

    ledger_pane: LedgerPane

    def __init__(self, *, render_interval: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 tick_s: float = 0.5) -> None:
        self.render_interval = render_interval
        self._clock = clock
        self.tick_s = tick_s
        self._stopped_clock = threading.Event()
        self._ticker: threading.Thread | None = None
        # Events come from the engine (or listener) thread while display()/_repr_mimebundle_ run on the
        # kernel's main thread; one lock keeps a repr from reading half-applied state.
        self._lock = threading.RLock()
        self._handle: DisplayHandle | None = None
        self._released = False  # its widgets closed (_release_widgets)
        # Calls ended since the ledger tab was last drawn: a subclass draws it on its clock (and only while it is
        # shown) and once at the end, not per event: a pandas table each time cost more than the rest of the view.
        self._ledger_dirty = False
        self._report_shown: tuple[str, str] | None = None  # the static report, built once

    def _build(self) -> None:
        self.status = widgets.HTML(self._status_html())
        self.tab = widgets.Tab(children=(), titles=())
        self._relayout()
        self.widget = widgets.VBox(children=(self.status, *self._above_tabs(), self.tab))

    def _above_tabs(self) -> tuple[widgets.Widget, ...]:
        """Widgets between the status line and the tabs (a fused run's attachments and earlier turns); none by
        default. A subclass that changes them calls ``_restack``."""
        return ()

    def _restack(self) -> None:
        """Lay the view out again after ``_above_tabs`` changed: the status line, those widgets, the tabs."""
        children = (self.status, *self._above_tabs(), self.tab)
        if tuple(self.widget.children) != children:
            self.widget.children = children

    # --- what a subclass says ------------------------------------------------------------------------

    @property
    def panes(self) -> list[Pane]:
        """Every tab's pane, in tab order."""
        raise NotImplementedError

    def _progress(self) -> str:
        """One plain line on how the run stands (a terminal's view, and the widget's text/plain)."""
        raise NotImplementedError

    def _status_html(self) -> str:
        raise NotImplementedError

    def _build_report(self) -> tuple[str, str] | None:
        """The static report (HTML, text) once the run ended, else None."""
        raise NotImplementedError

    def _refresh_ledger(self) -> None:
        """Draw the ledger tab from the calls as they stand (and clear ``_ledger_dirty``)."""
        raise NotImplementedError

    def _running_calls(self) -> bool:
        """Whether a call still streams or answers into the view (a late member after the run ended)."""
        raise NotImplementedError

    def _tick(self, now: float) -> None:
        """A clock tick while the run goes on (under the view's lock): re-render what shows elapsed time."""
        raise NotImplementedError

    # --- the clock -----------------------------------------------------------------------------------

    def _start_clock(self) -> None:
        """Tick from now until ``_stop_clock``; a view replaying a finished run (``tick_s=0``) has no clock."""
        if self.tick_s <= 0 or self._ticker is not None or self._stopped_clock.is_set():
            return

        def tick() -> None:
            while not self._stopped_clock.wait(self.tick_s):
                with self._lock:
                    self._tick(self._clock())

        self._ticker = threading.Thread(target=tick, name="fusion-magic-view-clock", daemon=True)
        self._ticker.start()

    def _stop_clock(self) -> None:
        self._stopped_clock.set()

    # --- shared --------------------------------------------------------------------------------------

    @property
    def ledger(self) -> pd.DataFrame | None:
        """The ledger, totals row included; None before the first call ended."""
        with self._lock:
            if self._ledger_dirty:
                self._refresh_ledger()
            return self.ledger_pane.frame

    def _report(self) -> tuple[str, str] | None:
        """The static report, built once (``_report_shown = None`` asks for it again)."""
        if self._report_shown is None:
            self._report_shown = self._build_report()
        return self._report_shown

    def _release_when_idle(self) -> None:
        """Close the widgets once the report shows and no call still streams into them; after the cell's flush
        (``after_events``), as nobody waits for it."""
        if self._handle is not None and not self._running_calls():
            after_events(self._release_widgets)

    @property
    def titles(self) -> tuple[str, ...]:
        return tuple(self.tab.titles)

    def display(self) -> DisplayHandle | None:
        """Show the view and keep the display handle, so the final report replaces the live widget."""
        from IPython.display import display

        handle = display(self, display_id=True)
        with self._lock:
            self._handle = handle
        return handle

    def _update_display(self) -> None:
        if self._handle is not None:
            self._handle.update(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live widget while the run goes on; once it ended, the static report."""
        with self._lock:
            report = self._report()
            if report is not None:
                html, text = report
                return {"text/html": html, "text/plain": text}
            # The widget's own text/plain is repr(widget), which lists trait values and so leaks
            # (truncated, nondeterministic) model text; the progress line is what a terminal needs.
            bundle = dict(self.widget._repr_mimebundle_() or {})
            bundle["text/plain"] = self._progress()
            return bundle

    def _release_widgets(self) -> None:
        """Close every widget of the view, their layouts and styles too, once its output shows the static report
        and nothing in it runs any more. Until closed, each lives in ipywidgets' registry and holds a comm for the
        kernel's life: about 70 widgets a %%fuse cell, some 200 KB a cell, never given back."""
        with self._lock:
            if self._released:
                return
            self._released = True
            close_tree(self.widget)
            for widget in self._loose_widgets():
                close_tree(widget)

    def _loose_widgets(self) -> tuple[widgets.Widget, ...]:
        """Widgets of the view not shown at the end (an empty context line, a lone round's heading): closed
        with the rest. None by default."""
        return ()

    def _showing(self, pane: Pane) -> bool:
        """Whether ``pane``'s tab is the one selected (what the reader looks at)."""
        panes = self.panes
        return pane in panes and self.tab.selected_index == panes.index(pane)

    def _relayout(self) -> None:
        panes = self.panes
        children = tuple(p.body for p in panes)
        titles = tuple(p.title for p in panes)
        current = tuple(self.tab.children)
        if children == current and titles == tuple(self.tab.titles):
            return
        if children[: len(current)] == current:
            # Tabs added at the end: the browser applies that in order. Children first, then titles:
            # titles are validated against the number of children.
            with self.tab.hold_sync():
                self.tab.children = children
                self.tab.titles = titles
            return
        # Tabs inserted before others (members go before "Cost & latency"): a browser that already drew the
        # old tabs adds the new ones at once but removes the moved one a moment later, while it sets the
        # titles at once, by position, so labels land on the wrong tabs (seen in Chromium). A fresh Tab
        # widget has no old tabs to remove.
        selected = self.tab.selected_index
        # The tab the reader looks at stays selected; a lone tab (a view whose other panes came with the run's
        # start, such as the ledger before any clip) was chosen by nobody, so the first pane is shown instead.
        chosen = selected is not None and selected < len(current) and len(current) > 1
        keep = current[selected] if chosen and selected is not None else None
        tab = widgets.Tab(children=children, titles=titles)
        tab.selected_index = children.index(keep) if keep in children else 0
        old, self.tab = self.tab, tab
        if hasattr(self, "widget"):
            self._restack()
        close_tree(old, children=False)  # its tabs live on in the new one


__all__ = ["LiveView"]
