"""The view layer: widgets for a live run (model text reaches them only through ``present.sanitize``).

It only consumes engine events and result objects; it knows nothing of HTTP or providers.

    view = FusionView(); view.display()
    listeners.append(view.handle)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tabs import FusedPane, JudgePane, LedgerPane, MemberPane, Pane
    from .widgets import FusionView

__all__ = [
    "FusedPane",
    "FusionView",
    "JudgePane",
    "LedgerPane",
    "MemberPane",
    "Pane",
]

_LAZY = {
    "FusionView": "widgets",
    "FusedPane": "tabs",
    "JudgePane": "tabs",
    "LedgerPane": "tabs",
    "MemberPane": "tabs",
    "Pane": "tabs",
}


def __getattr__(name: str) -> Any:
    # Lazy: ipywidgets is a slow import that a terminal or script user never needs.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
