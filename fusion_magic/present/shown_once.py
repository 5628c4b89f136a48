"""How a result object renders itself in a notebook, the same for every job kind.

Under a live view that already shows everything, the cell's own result repeats only its stable summary line,
once (``_shown_live``, set by the magic); displayed later (``r`` in another cell), it shows the whole report.

    @dataclass
    class FusionResult(ShownOnce): ...   # provides summary(), to_text(), to_html()
"""

from __future__ import annotations

from typing import Any


class ShownOnce:
    """Mixin: ``_repr_mimebundle_`` from the class's ``summary()``, ``to_text()`` and ``to_html()``."""

    _shown_live: bool

    def summary(self) -> str:
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError

    def to_html(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        if self._shown_live:
            self._shown_live = False
            return {"text/plain": self.summary()}
        return {"text/plain": self.to_text(), "text/html": self.to_html()}


__all__ = ["ShownOnce"]
