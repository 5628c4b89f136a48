"""The progress bar of a long line magic (``%fuse eval``): an ``ipywidgets.IntProgress`` in Jupyter, a line
on stderr that rewrites itself elsewhere. Fed from the engine thread, one call per finished row, and in a batch
evaluation one per batch update: each batch's provider, model, wave, state and counts as the provider reports
them (a table under the bar; a line per change elsewhere).

In Jupyter the bar is shown through a display handle, and when the run ends (finished or interrupted) the
handle's output becomes one static line. A widget left in a saved notebook shows "Error displaying widget"
once the kernel is gone; the line still says how far the evaluation got.

    progress = EvalProgress(total=120, widgets=True); progress.row(done, total, row); progress.close()
"""

from __future__ import annotations

import html
import sys
import threading
import time
from typing import Any

from ..calls.batch import BatchUpdate
from ..core.events import EngineEvent
from ..present.wording import state_word


class EvalProgress:
    """Rows done out of the total, with the last row's strategy."""

    def __init__(self, total: int, *, widgets: bool) -> None:
        self.total = total
        self.done = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._handle: Any = None
        self._final: str | None = None
        self._batches: dict[str, BatchUpdate] = {}
        self._table: Any = None
        self._box: Any = None
        if widgets:
            import ipywidgets
            from IPython.display import display

            # A tooltip of its own: ipywidgets 8 shows an unset one as "null" over the description.
            self._bar = ipywidgets.IntProgress(value=0, min=0, max=max(total, 1), description="0/" + str(total),
                                               tooltip="rows evaluated")
            # Empty (and taking no room) until a batch evaluation's first batch is submitted.
            self._table = ipywidgets.HTML("")
            self._box = ipywidgets.VBox([self._bar, self._table])
            self._handle = display(self, display_id=True)

    def row(self, done: int, total: int, row: Any) -> None:
        """One more row finished (called on the engine thread)."""
        with self._lock:
            self.done = done
            strategy = getattr(row, "strategy", "")
            if self._bar is not None:
                self._bar.value = done
                self._bar.description = f"{done}/{total}"
            else:
                print(f"\r  evaluating: {done}/{total} rows ({strategy})", end="", file=sys.stderr, flush=True)

    def listener(self, event: EngineEvent) -> None:
        """A run's events: the batch updates are shown, the rest ignored (called on the engine thread)."""
        if isinstance(event, BatchUpdate):
            self.batch(event)

    def batch(self, update: BatchUpdate) -> None:
        """A batch was submitted, changed state or counts, or finished."""
        with self._lock:
            before = self._batches.get(update.receipt)
            self._batches[update.receipt] = update
            if self._table is not None:
                self._table.value = batch_table(list(self._batches.values()))
            elif before is None or (before.wire, before.completed) != (update.wire, update.completed):
                print(f"\r  {batch_line(update)}", file=sys.stderr, flush=True)

    def close(self, elapsed_s: float | None = None) -> None:
        """The run ended: the bar becomes a static line (Jupyter), or the line ends (elsewhere). ``elapsed_s``:
        the run's own wall time, so the line and the result's headline give the same figure."""
        with self._lock:
            if self._bar is None:
                print(file=sys.stderr)
                return
            if self._final is not None:
                return
            elapsed = time.monotonic() - self._started if elapsed_s is None else elapsed_s
            state = "evaluated" if self.done >= self.total else "stopped after"
            self._final = f"{state} {self.done} of {self.total} rows in {elapsed:.1f} s"
            if self._batches:
                self._final += "; " + "; ".join(batch_line(b) for b in self._batches.values())
        self._handle.update(self)
        self._box.close()
        self._bar.close()
        self._table.close()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live bar while the evaluation runs; the static line once it ended."""
        if self._final is not None:
            return {"text/plain": self._final, "text/html": f"<p><i>{html.escape(self._final)}</i></p>"}
        bundle = dict(self._box._repr_mimebundle_() or {})
        bundle["text/plain"] = f"evaluating: {self.done}/{self.total} rows"
        return bundle


def batch_line(b: BatchUpdate) -> str:
    """One batch in words: ``openai gpt-4o-mini, wave 1: 400 requests, in_progress (running) 120 done``."""
    counts = "" if b.completed is None else f" {b.completed:,} done" + (f", {b.failed:,} failed" if b.failed else "")
    wire = b.wire or "submitting"
    again = ", re-attached" if b.reattached else ""
    error = f": {b.error}" if b.error else ""
    return (f"{b.provider} {b.model}, wave {b.wave}: {b.requests:,} requests{again}, {wire} "
            f"({state_word(b.state)}){counts}{error}")


def batch_table(batches: list[BatchUpdate]) -> str:
    """The batches as a small HTML table (provider words and errors escaped: they come from the provider)."""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            b.provider, b.model, b.wave, f"{b.requests:,}", b.wire or "submitting", state_word(b.state),
            "" if b.completed is None else f"{b.completed:,}", "" if not b.failed else f"{b.failed:,}",
            (b.batch_id or "") + (" (re-attached)" if b.reattached else ""), b.error or "")) + "</tr>"
        for b in batches)
    head = "".join(f"<th>{h}</th>" for h in ("provider", "model", "wave", "requests", "provider says", "state",
                                             "done", "failed", "batch", "error"))
    return f"<table class='fusion-batches'><tr>{head}</tr>{rows}</table>"


__all__ = ["EvalProgress", "batch_line", "batch_table"]
