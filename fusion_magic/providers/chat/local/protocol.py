"""The pipe between the kernel and a local worker process: one JSON object per line, both ways.

Pure Python, shared by both ends (``client.py`` in the kernel, ``worker.py`` in the worker)::

    kernel -> worker   {"op": "generate", "id": 7, "job": {...Job...}}
                       {"op": "cancel", "id": 7}
                       {"op": "threads", "n": 1}               generate with 1 thread from the next token on
                       end of input: the worker stops what it is doing and exits

    worker -> kernel   {"t": "ready", "pid": ..., "path": ..., "import_s": ..., "load_s": ..., "threads": 2,
                        "buffers": ["CPU_Mapped", "CPU_REPACK"], "extra_buffers": true, "note": "extra buffer
                        types on (no AMX in this CPU's flags); weights in CPU_Mapped, CPU_REPACK"}
                       {"t": "load_error", "kind": "config", "message": ...}     then the worker exits
                       {"t": "start", "id": 7}                 the job got the model (it may crash from here)
                       {"t": "text", "id": 7, "text": "Par"}
                       {"t": "end", "id": 7, "input_tokens": 80, "output_tokens": 3, "reason": "stop",
                        "threads": [2, 1]}                     the thread counts it ran with, in order
                       {"t": "error", "id": 7, "kind": "bad_request", "message": ...}
                       {"t": "stopped", "id": 7}               after a cancel; the worker is free again

Each job gets exactly one of ``end``, ``error`` or ``stopped``. Errors cross the pipe as a kind and a
message, and become the same exception classes on the kernel side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ....core.errors import BadRequestError, ConfigError, FusionError, ProtocolError, ProviderError, ServerError

TERMINAL = frozenset({"end", "error", "stopped"})


@dataclass(frozen=True)
class Job:
    """One generation, fixed in the kernel before it is sent (the worker only runs it)."""

    model: str
    prompt: str
    stop: tuple[str, ...]
    max_tokens: int
    temperature: float
    seed: int
    schema: Mapping[str, Any] | None

    def to_wire(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        data["schema"] = None if self.schema is None else dict(self.schema)
        return data

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            model=str(data["model"]), prompt=str(data["prompt"]), stop=tuple(data["stop"]),
            max_tokens=int(data["max_tokens"]), temperature=float(data["temperature"]),
            seed=int(data["seed"]), schema=data["schema"],
        )


def encode(message: Mapping[str, Any]) -> bytes:
    """One line of the pipe. ``ensure_ascii`` keeps every line one line whatever the model wrote."""
    return (json.dumps(message, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def decode(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


_KINDS: dict[str, type[ProviderError]] = {
    "bad_request": BadRequestError,
    "server": ServerError,
    "protocol": ProtocolError,
}


def error_to_wire(exc: BaseException) -> dict[str, str]:
    """``kind`` and ``message`` for an exception raised in the worker."""
    if isinstance(exc, ProviderError):
        return {"kind": exc.kind, "message": exc.message}
    if isinstance(exc, ConfigError):
        return {"kind": "config", "message": str(exc)}
    if isinstance(exc, ValueError):  # llama-cpp-python's word for "this request cannot be served"
        return {"kind": "bad_request", "message": str(exc)}
    return {"kind": "server", "message": f"llama.cpp failed: {type(exc).__name__}: {exc}"}


def error_from_wire(data: Mapping[str, Any], model: str) -> FusionError:
    """The kernel-side exception for an ``error`` or ``load_error`` message."""
    kind, message = str(data.get("kind", "server")), str(data.get("message", ""))
    if kind == "config":
        return ConfigError(message)
    return _KINDS.get(kind, ServerError)(message, provider="local", model=model)


__all__ = ["TERMINAL", "Job", "decode", "encode", "error_from_wire", "error_to_wire"]
