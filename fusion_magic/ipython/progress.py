"""The progress bar of a long line magic (``%fuse eval``): an ``ipywidgets.IntProgress`` in Jupyter, a line
on stderr that rewrites itself elsewhere. Fed from the engine thread, one call per finished row.

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
        if widgets:
            import ipywidgets
            from IPython.display import display

            # A tooltip of its own: ipywidgets 8 shows an unset one as "null" over the description.
            self._bar = ipywidgets.IntProgress(value=0, min=0, max=max(total, 1), description="0/" + str(total),
                                               tooltip="rows evaluated")
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
        self._handle.update(self)
        self._bar.close()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live bar while the evaluation runs; the static line once it ended."""
        if self._final is not None:
            return {"text/plain": self._final, "text/html": f"<p><i>{html.escape(self._final)}</i></p>"}
        bundle = dict(self._bar._repr_mimebundle_() or {})
        bundle["text/plain"] = f"evaluating: {self.done}/{self.total} rows"
        return bundle


__all__ = ["EvalProgress"]
