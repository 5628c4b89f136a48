"""A matplotlib figure that shows itself in a notebook.

A ``Figure`` made without pyplot (so that plotting never changes the user's backend or opens a window)
has no rich display of its own: a notebook cell ending in one prints ``<Figure size 640x420 with 1 Axes>``.
The figure made here renders as PNG wherever IPython asks for it, and stays an ordinary ``Figure``
(``savefig``, ``axes``) for everything else.

    fig = new_figure(figsize=(6.4, 4.2))     # ConfigError when matplotlib is not installed
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'fusion_magic[plot]' (or pip install matplotlib)"
PNG_DPI = 100


def new_figure(**kwargs: Any) -> Figure:
    """A ``Figure`` (keyword arguments as ``Figure``'s) that a notebook shows as PNG."""
    return _shown_figure_class()(**kwargs)


@functools.cache
def _shown_figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}") from None

    class ShownFigure(Figure):
        """A ``Figure`` with a PNG representation for IPython's display."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=PNG_DPI)
            return buffer.getvalue()

    return ShownFigure


__all__ = ["INSTALL_HINT", "new_figure"]
