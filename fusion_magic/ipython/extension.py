"""``%load_ext fusion_magic``: the magics the extension registers, in one table.

A job kind's magic is one module in ``ipython/`` with its ``Magics`` class, and one row in ``MAGICS``. Loading
also starts recording the errors cells raise, for ``{Err[N]}`` in a cell body (``context.py``).

    load(get_ipython())     # what %load_ext fusion_magic calls
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.magic import Magics

from .context import start_recording, stop_recording
from .magics import FusionMagics
from .video import VideoMagics

# Each class is also a traitlets Configurable: it registers itself in shell.configurables (for %config).
MAGICS: tuple[type[Magics], ...] = (FusionMagics, VideoMagics)


def load(shell: Any) -> None:
    """Register every magic once per shell (a second %load_ext is a no-op in IPython already), and the hook
    that records the errors cells raise (``{Err[N]}``)."""
    for magics in MAGICS:
        shell.register_magics(magics(shell))
    start_recording(shell)


def unload(shell: Any) -> None:
    """Forget our configurables (so %config does not hit a stale instance) and the errors recorded, stop
    recording them, and cancel running work."""
    shell.configurables[:] = [c for c in shell.configurables if not isinstance(c, MAGICS)]
    stop_recording(shell)
    # Here, not at the top: the api imports every engine and httpx, which registering the magics does not
    # need (%load_ext time, bench/bench_overhead.py); only unloading uses it.
    from ..api import cancel_all

    cancel_all()
    print("fusion_magic unloaded.", file=sys.stderr)


__all__ = ["MAGICS", "load", "unload"]
