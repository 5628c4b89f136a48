"""Loopback emulator of every provider API, for tests, notebooks and benchmarks.

    with Emulator() as emu:
        emu.script("gpt-4o", ModelScript(reply="Paris.", ttft_s=0.2)); os.environ.update(emu.env())

``python -m fusion_magic.testing`` runs one in the foreground; ``fusion_magic.testing.pytest_plugin``
provides the ``emulator`` and ``emulator_env`` fixtures.

Layout: ``emulator`` is the core (ASGI app and server, request log, scripts, lifecycle); ``registry``
is the table of families it serves; ``chat`` is the pacing and faults the text families share;
``families/`` holds one module per provider family.

Adding a family (the video APIs, say) touches two files and no core module:

1. ``families/<name>.py``: a ``registry.Family`` subclass (``chat.ChatFamily`` for a text API) with its
   ``name``, ``env`` and ``test_keys``, its ``routes()`` (``Route("POST", "/<name>/v1/...", self.handler)``),
   its key check (``presented_key``, ``key_error``) and its bodies and error shapes.
2. ``families/__init__.py``: import it and add one row to ``BUILTIN``.

A test can serve a family of its own with ``registry.register(MyFamily())`` and remove it with
``registry.unregister("my-family")``; running emulators pick it up on the next request.
"""

from __future__ import annotations

import importlib.util

# uvicorn is the "testing" extra, not a dependency of the library: say how to get it, in one line,
# before anything imports the emulator. find_spec, not import: uvicorn loads lazily in start().
if importlib.util.find_spec("uvicorn") is None:
    raise ModuleNotFoundError("fusion_magic.testing needs uvicorn: pip install 'fusion_magic[testing]'",
                              name="uvicorn")

from . import families  # noqa: F401  (importing it registers the built-in families)
from .batch import BatchBook
from .emulator import ASGI_URL, Emulator, RecordedRequest
from .judges import content_judge, debater
from .script import SCRIPTED, Fault, FaultKind, ModelScript
from .video_script import VideoScript

__all__ = ["ASGI_URL", "SCRIPTED", "BatchBook", "Emulator", "Fault", "FaultKind", "ModelScript", "RecordedRequest",
           "VideoScript", "content_judge", "debater"]
