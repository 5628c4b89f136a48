"""Optional record/replay of calls, content-addressed by the canonical request.

The key is a SHA-256 of the model id and the request fields that change the answer (messages,
max_tokens, temperature, seed, stop, schema). Endpoints and keys are not part of it and nothing
secret is written: an entry holds the answer text, token counts, finish reason and recorded cost.

    cache = CallCache(Path(".fusion_cache"), mode="on")
    cache.lookup("openrouter:openai/gpt-4o", request)  # a Response or None
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from .providers.base import ChatRequest
from .result import Response

FORMAT_VERSION = 1


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

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def lookup(self, model_id: str, request: ChatRequest) -> Response | None:
        path = self._path(request_key(model_id, request))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return Response(
            model=model_id,
            text=data["text"],
            status="ok",
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            cost_usd=data.get("cost_usd"),
            finish_reason=data.get("finish_reason"),
        )

    def store(self, model_id: str, request: ChatRequest, response: Response) -> None:
        """Record a successful call. Written atomically so a crash never leaves half a file."""
        path = self._path(request_key(model_id, request))
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = asdict(response)
        entry = {k: keep[k] for k in ("text", "input_tokens", "output_tokens", "cost_usd", "finish_reason")}
        entry["model"] = model_id
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entry, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
