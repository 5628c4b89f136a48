"""Optional record/replay of calls, content-addressed by the canonical request.

The key is a SHA-256 of the model id and the request fields that change the answer (messages,
max_tokens, temperature, seed, stop, schema). Endpoints and keys are not part of it and nothing
secret is written: an entry holds the answer text, token counts, finish reason and recorded cost.

    cache = CallCache(Path(".fusion_cache"), mode="on")
    cache.lookup("openrouter:openai/gpt-4o", request)  # a Response or None

The cache never takes a run down: an unreadable or wrongly shaped entry is a miss, and a folder we
cannot write to means the call is simply not recorded; each logs a warning naming only the model id.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..core.record import Response
from ..providers.base import ChatRequest

FORMAT_VERSION = 1

log = logging.getLogger("fusion_magic")


def request_key(model_id: str, request: ChatRequest) -> str:
    """The canonical, stable key of a request (independent of dict order and endpoint)."""
    canonical = {
        "v": FORMAT_VERSION,
        "model": model_id,
        "messages": [[m.role, m.content] for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
        "stop": list(request.stop),
        "schema": request.json_schema,
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    """A directory of JSON files, one per recorded call. ``mode`` is "on" (replay hits, record misses)
    or "replay" (hits only; the caller treats a miss as an error)."""

    def __init__(self, root: Path, mode: str = "on") -> None:
        self.root = root
        self.mode = mode
        self._store_warned = False

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def lookup(self, model_id: str, request: ChatRequest) -> Response | None:
        """The recorded answer, or None for a miss (also when the entry is unreadable or malformed)."""
        path = self._path(request_key(model_id, request))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return _entry_response(model_id, data)
        except (FileNotFoundError, NotADirectoryError):  # never recorded (store warns if it cannot write)
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # ValueError covers bad JSON and UTF-8
            # The exception's type only: its text could quote the entry, i.e. an answer.
            log.warning("fusion_magic cache: ignoring a bad entry for %s (%s, %s); calling the model instead",
                        model_id, path.name, type(exc).__name__)
            return None

    def store(self, model_id: str, request: ChatRequest, response: Response) -> None:
        """Record a successful call. Written atomically so a crash never leaves half a file. A folder we
        cannot write to (read-only, full disk) leaves the call unrecorded instead of failing the run."""
        path = self._path(request_key(model_id, request))
        keep = asdict(response)
        entry = {k: keep[k] for k in ("text", "input_tokens", "output_tokens", "cost_usd", "finish_reason")}
        entry["model"] = model_id
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, ensure_ascii=False, indent=1)
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            # Once per cache (i.e. per run): a read-only folder would otherwise warn for every call.
            if not self._store_warned:
                self._store_warned = True
                log.warning("fusion_magic cache: could not record the call to %s in %s (%s: %s); "
                            "the run goes on unrecorded", model_id, self.root, type(exc).__name__, exc.strerror)


def _entry_response(model_id: str, data: object) -> Response:
    """A cache entry as a ``Response``; ``TypeError`` when valid JSON has the wrong shape (a list, a
    number for the text, a string for a token count), so the caller treats it as a miss."""
    if not isinstance(data, dict) or not isinstance(data["text"], str):
        raise TypeError("entry is not an object with a text string")
    fields: dict[str, type | tuple[type, ...]] = {
        "input_tokens": int, "output_tokens": int, "cost_usd": (int, float), "finish_reason": str,
    }
    for name, kind in fields.items():
        value = data.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise TypeError(f"{name} has the wrong type")
    return Response(
        model=model_id,
        text=data["text"],
        status="ok",
        input_tokens=data.get("input_tokens"),
        output_tokens=data.get("output_tokens"),
        cost_usd=data.get("cost_usd"),
        finish_reason=data.get("finish_reason"),
    )
