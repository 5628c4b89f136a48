"""Optional record/replay of calls of any kind, content-addressed by the canonical request.

The key is a SHA-256 of the model id and the request fields that change the answer: for chat the
messages, max_tokens, temperature, seed, stop, schema and the vendor ``extra`` fields; for any other request
dataclass (a video job, an evaluation) every field that takes part in its equality. The model id names the
provider (``ollama:m`` and ``openai:m`` never share an entry); where the environment moves a provider off its
default base URL (``OPENAI_BASE_URL`` at a local server), that URL is part of the key too, so a local server's
answers and the hosted API's never replay each other's (at the default URL the key is what it always was, so
earlier recordings still replay). Keys are not part of it and nothing secret is written: an entry holds the
answer text, its usage (tokens, seconds of video, clips), finish reason and recorded cost.

    cache = CallCache(Path(".fusion_cache"), mode="on")
    cache.lookup("openrouter:openai/gpt-4o", request)  # a CallRecord or None

The cache never takes a run down: an unreadable or wrongly shaped entry is a miss, and a folder we
cannot write to means the call is simply not recorded; each logs a warning naming only the model id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from ..core.record import CallRecord
from ..providers.base import ChatRequest

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

FORMAT_VERSION = 1

# What an entry keeps of a record besides its text, with the JSON types each may have: the answer's
# usage, cost and ending, never the endpoint, key or prompt. A field that is None is left out.
_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "input_tokens": int,
    "output_tokens": int,
    "cached_input_tokens": int,
    "cache_write_input_tokens": int,
    "video_seconds": (int, float),
    "clips": int,
    "cost_usd": (int, float),
    "finish_reason": str,
}

log = logging.getLogger("fusion_magic")


def request_key(model_id: str, request: DataclassInstance, endpoint: str | None = None) -> str:
    """The canonical, stable key of a request (independent of dict order and process).

    ``request`` is a ``ChatRequest`` or any other request dataclass; the latter is keyed on its class
    name and every field with ``compare=True``. ``endpoint``: the base URL the call goes to when it is not the
    provider's default (``moved_endpoint``); None keeps the key every earlier version made.
    ``TypeError`` for a field value with no stable form.
    """
    canonical: dict[str, object]
    if type(request) is ChatRequest:  # not a subclass: a VideoQuestion's video is part of its key
        # Chat keeps the form it had before other kinds existed, so recordings made then still replay.
        canonical = {
            "v": FORMAT_VERSION,
            "model": model_id,
            # An attachment is keyed by its hash (and a text file by its fenced text): a changed chart is a
            # different question. A turn without one keeps the form recordings have always had.
            "messages": [[m.role, m.text, *([[a.name, a.sha256] for a in m.binary] if m.binary else [])]
                         for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
            "stop": list(request.stop),
            "schema": request.json_schema,
        }
        if request.extra:
            # A vendor's own fields (OpenRouter's fusion plugin and its preset) change the answer: two presets must
            # never replay each other's. Only when there are some, so every earlier recording keeps its key.
            canonical["extra"] = _canonical(request.extra)
    else:
        if not dataclasses.is_dataclass(request) or isinstance(request, type):
            raise TypeError(f"a cache key needs a request dataclass, not {type(request).__name__}")
        canonical = {
            "v": FORMAT_VERSION,
            "model": model_id,
            "kind": type(request).__name__,
            "request": _canonical(request),
        }
    if endpoint:
        canonical["endpoint"] = endpoint
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def moved_endpoint(base_url: str, default_base_url: str) -> str | None:
    """``base_url`` where the environment moved a provider off its default (``OPENAI_BASE_URL`` at a local
    server, ``OLLAMA_HOST``), for the cache key; None at the default (the key every earlier version made), and for
    the user's own ``endpoints`` (their URL is their default: the name is theirs alone)."""
    base = base_url.rstrip("/")
    return None if not base or base == default_base_url.rstrip("/") else base


def _canonical(value: object) -> object:
    """``value`` as plain JSON data that is the same in every process: no ``repr``, no object ids."""
    if value is None or isinstance(value, str | int | float):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # compare=False fields (labels, caches) do not make two requests different, so not two keys.
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("a cache key needs string keys in mappings")
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, bytes | bytearray):
        # An input image or clip: its digest, so the key stays short and the bytes never reach disk.
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if isinstance(value, PurePath):
        return value.as_posix()
    raise TypeError(f"a cache key cannot include a {type(value).__name__}")


class CallCache:
    """A directory of JSON files, one per recorded call. ``mode`` is "on" (replay hits, record misses)
    or "replay" (hits only; the caller treats a miss as an error).

        cache.store("gemini:veo-3.1-generate-preview", clip_request, record)
        cache.lookup("gemini:veo-3.1-generate-preview", clip_request)  # the record's text and usage
    """

    def __init__(self, root: Path, mode: str = "on") -> None:
        self.root = root
        self.mode = mode
        self._store_warned = False
        # Stores run on worker threads (``store_off_loop``): the once-per-cache warning is decided under it.
        self._warn_lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def lookup(self, model_id: str, request: DataclassInstance, endpoint: str | None = None) -> CallRecord | None:
        """The recorded answer, or None for a miss (also when the entry is unreadable or malformed). ``endpoint``:
        the base URL where it is not the provider's default (``moved_endpoint``)."""
        path = self._path(request_key(model_id, request, endpoint))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return _entry_record(model_id, data)
        except (FileNotFoundError, NotADirectoryError):  # never recorded (store warns if it cannot write)
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # ValueError covers bad JSON and UTF-8
            # The exception's type only: its text could quote the entry, i.e. an answer.
            log.warning("fusion_magic cache: ignoring a bad entry for %s (%s, %s); calling the model instead",
                        model_id, path.name, type(exc).__name__)
            return None

    def store(self, model_id: str, request: DataclassInstance, response: CallRecord,
              endpoint: str | None = None) -> None:
        """Record a successful call. Written atomically so a crash never leaves half a file. A folder we
        cannot write to (read-only, full disk) leaves the call unrecorded instead of failing the run."""
        path = self._path(request_key(model_id, request, endpoint))
        entry: dict[str, object] = {"text": response.text}
        entry.update((k, v) for k in _ENTRY_FIELDS if (v := getattr(response, k)) is not None)
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
            with self._warn_lock:
                warn, self._store_warned = not self._store_warned, True
            if warn:
                log.warning("fusion_magic cache: could not record the call to %s in %s (%s: %s); "
                            "the run goes on unrecorded", model_id, self.root, type(exc).__name__, exc.strerror)

    async def store_off_loop(self, model_id: str, request: DataclassInstance, response: CallRecord,
                             endpoint: str | None = None) -> None:
        """``store`` on a worker thread of the running loop, so the write (a file made, written and renamed: under
        a millisecond on average, several on a busy disk) never stalls the loop every call of the run shares.

        It returns only once the entry is on disk, cancelled or not: a cancel that arrives during the write is
        raised when the write is done, so a run that ends or is interrupted just after a call has recorded it, and
        a replay straight after finds it. Writes of one key by concurrent calls land in either order; both are
        answers to the same request.
        """
        write = asyncio.get_running_loop().run_in_executor(None, self.store, model_id, request, response, endpoint)
        cancel: asyncio.CancelledError | None = None
        while not write.done():
            try:
                await asyncio.wait([write])  # cancelling this wait leaves the write going
            except asyncio.CancelledError as exc:
                cancel = exc
        if cancel is not None:
            write.exception()  # taken, so never logged as unretrieved: the cancel is what goes on
            raise cancel
        write.result()  # what the write raised that store does not handle (a request with no stable key)


def _entry_record(model_id: str, data: object) -> CallRecord:
    """A cache entry as a ``CallRecord``; ``TypeError`` when valid JSON has the wrong shape (a list, a
    number for the text, a string for a token count), so the caller treats it as a miss."""
    if not isinstance(data, dict) or not isinstance(data["text"], str):
        raise TypeError("entry is not an object with a text string")
    for name, kind in _ENTRY_FIELDS.items():
        value = data.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise TypeError(f"{name} has the wrong type")
    seconds = data.get("video_seconds")
    return CallRecord(
        model=model_id,
        text=data["text"],
        status="ok",
        input_tokens=data.get("input_tokens"),
        output_tokens=data.get("output_tokens"),
        video_seconds=None if seconds is None else float(seconds),
        clips=data.get("clips"),
        cost_usd=data.get("cost_usd"),
        finish_reason=data.get("finish_reason"),
        cached_input_tokens=data.get("cached_input_tokens"),
        cache_write_input_tokens=data.get("cache_write_input_tokens"),
    )
