"""The local model: llama.cpp (llama-cpp-python) on the bundled Gemma 3 270M base model, in a worker process.

No key, no network, no server: ``local:gemma3-270m`` works offline once ``fusion_magic[local]`` is
installed. ``local:/path/to/model.gguf`` runs any other GGUF file the same way.

llama.cpp's native code never runs in the kernel. One picture::

    kernel (engine loop)                          worker process, one per model (worker.py)
    --------------------                          ------------------------------------------
    LocalProvider.stream: build the prompt
    client.submit(job)  ---- JSON line, stdin -->  load the model once (plain CPU buffers, see native.py)
    await queue  <-- reader thread <-- stdout --   "start", "text"..., "end" (one job at a time)
    cancel: {"op": "cancel"} ------------------>   stops between two tokens, says "stopped"
    pipe closes + signal  <----------------------  segfault / abort / OOM kill: the running call fails
                                                   with WorkerCrashed, the next call starts a new worker

Modules: ``files`` (where the GGUF comes from), ``protocol`` (the pipe's messages), ``client`` (the
kernel's side: processes and routing), ``provider`` (our event stream), ``worker`` and ``native`` (the
worker process; only they import llama_cpp), ``llama_server`` (llama-cpp-python's server with the same
safe defaults).
"""

from __future__ import annotations

from pathlib import Path

from ....core.errors import ServerError
from .client import current_worker, shutdown, worker_for
from .files import DEFAULT_MODEL, model_dir
from .provider import DEFAULT_MAX_TOKENS, LocalProvider


def preload(model: str = DEFAULT_MODEL, timeout: float = 300.0) -> Path:
    """Start ``model``'s worker and wait until the model is loaded, so the first call starts at once.

    Returns the GGUF path. About a second the first time (plus assembling the bundled file once per
    machine); at once when the worker is already warm.
    """
    worker = worker_for(model)
    if not worker.wait_ready(timeout):
        error = worker.load_error()
        if error is not None:
            raise error
        reason = worker.exit or f"not ready after {timeout:g}s"
        raise ServerError(f"the local model's worker did not start: {reason}", provider="local", model=model)
    assert worker.info is not None
    return Path(worker.info["path"])


__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MODEL",
    "LocalProvider",
    "current_worker",
    "model_dir",
    "preload",
    "shutdown",
    "worker_for",
]
