"""Loopback emulator of every provider API, for tests, notebooks and benchmarks.

    with Emulator() as emu:
        emu.script("gpt-4o", ModelScript(reply="Paris.", ttft_s=0.2)); os.environ.update(emu.env())

``python -m fusion_magic.testing`` runs one in the foreground; ``fusion_magic.testing.pytest_plugin``
provides the ``emulator`` and ``emulator_env`` fixtures.
"""

from __future__ import annotations

import importlib.util

# uvicorn is the "testing" extra, not a dependency of the library: say how to get it, in one line,
# before anything imports the emulator. find_spec, not import: uvicorn loads lazily in start().
if importlib.util.find_spec("uvicorn") is None:
    raise ModuleNotFoundError("fusion_magic.testing needs uvicorn: pip install 'fusion_magic[testing]'",
                              name="uvicorn")

from .emulator import ASGI_URL, Emulator, RecordedRequest
from .script import Fault, FaultKind, ModelScript

__all__ = ["ASGI_URL", "Emulator", "Fault", "FaultKind", "ModelScript", "RecordedRequest"]
