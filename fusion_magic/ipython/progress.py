"""The progress bar of a long line magic (``%fuse eval``): an ``ipywidgets.IntProgress`` in Jupyter, a line
on stderr that rewrites itself elsewhere. Fed from the engine thread, one call per finished row.

    progress = EvalProgress(total=120, widgets=True); progress.row(done, total, row); progress.close()
"""

from __future__ import annotations

import sys
import threading
from typing import Any


class EvalProgress:
    """Rows done out of the total, with the last row's strategy."""

    def __init__(self, total: int, *, widgets: bool) -> None:
        self.total = total
        self._lock = threading.Lock()
        self._bar: Any = None
        if widgets:
            import ipywidgets
            from IPython.display import display

            self._bar = ipywidgets.IntProgress(value=0, min=0, max=max(total, 1), description="0/" + str(total))
            display(self._bar)

    def row(self, done: int, total: int, row: Any) -> None:
        """One more row finished (called on the engine thread)."""
        with self._lock:
            strategy = getattr(row, "strategy", "")
            if self._bar is not None:
                self._bar.value = done
                self._bar.description = f"{done}/{total}"
            else:
                print(f"\r  evaluating: {done}/{total} rows ({strategy})", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.bar_style = "success"
            else:
                print(file=sys.stderr)


__all__ = ["EvalProgress"]
