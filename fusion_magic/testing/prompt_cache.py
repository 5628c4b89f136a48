"""The providers' prompt caches, emulated: which part of a request's prompt a provider would read from its cache,
and which part it would write (``ModelScript(prompt_cache=True)``).

A prompt is cut into units in order (the system text, then each turn); a prefix is the first k units. Two styles:

- implicit (OpenAI, OpenRouter, Gemini): the provider caches every prompt of at least ``MIN_TOKENS`` on its own;
  a later request reads the longest prefix it has seen, in steps of ``STEP_TOKENS`` (OpenAI's 128), and nothing
  is billed for writing.
- explicit (Anthropic): only a prefix that ends at a block marked ``cache_control`` is cached. A request reads
  the longest cached prefix ending at or before its last mark and writes its marked prefixes that are new and at
  least ``MIN_TOKENS`` long (the tokens past what it read are billed as a cache write).

A unit's tokens: its text's characters / 4, plus each image or PDF by its vendor's published rule
(``core.media_tokens``), so a thread that repeats a chart repeats its tokens as the provider counts them.

    units = prompt_units(body, "anthropic:claude-sonnet-4-5")
    read, written = explicit_cache(units, cache)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.attachment import Attachment
from ..core.errors import ConfigError
from ..core.media_tokens import attachment_tokens

# The shortest prefix OpenAI, Gemini 2.5 Flash and Claude Sonnet cache (Claude Haiku and Gemini Pro need more).
MIN_TOKENS = 1024
# How far back before its last breakpoint Anthropic looks for a cached prefix (about 20 content blocks).
LOOKBACK = 20
# Where a part names the MIME type of its base64 ``data``: Anthropic's source, Gemini's inline data.
_MIME_KEYS = ("media_type", "mime_type", "mimeType")
# OpenAI reports cache hits in steps of 128 tokens past the first 1024.
STEP_TOKENS = 128


@dataclass(frozen=True)
class Unit:
    """One piece of a prompt in order: its identity (the JSON as sent, cache marks left out), its tokens, and
    whether it ends a prefix the client marked for caching (``cache_control``)."""

    key: str
    tokens: int
    marked: bool


def prompt_units(body: Mapping[str, Any], model_id: str) -> list[Unit]:
    """The request's units: the system text (Anthropic ``system``, Gemini ``systemInstruction``), then each
    message (``messages``) or content (``contents``)."""
    pieces: list[Any] = []
    for name in ("system", "systemInstruction", "system_instruction"):
        if body.get(name):
            pieces.append(body[name])
    turns = body.get("messages") or body.get("contents") or []
    pieces.extend(turns if isinstance(turns, list) else [])
    return [Unit(_key(piece), _tokens(piece, model_id), _marked(piece)) for piece in pieces]


def prefix_keys(units: list[Unit]) -> list[tuple[str, int]]:
    """For each k, the key of the first k units and their tokens."""
    out: list[tuple[str, int]] = []
    digest = hashlib.sha256()
    total = 0
    for unit in units:
        digest.update(unit.key.encode())
        total += unit.tokens
        out.append((digest.hexdigest(), total))
    return out


def implicit_cache(units: list[Unit], cache: dict[str, int]) -> int:
    """Tokens read from an implicit cache (and every prefix of this prompt remembered for the next request)."""
    prefixes = prefix_keys(units)
    read = max((tokens for key, tokens in prefixes if key in cache), default=0)
    read = 0 if read < MIN_TOKENS else MIN_TOKENS + (read - MIN_TOKENS) // STEP_TOKENS * STEP_TOKENS
    for key, tokens in prefixes:
        if tokens >= MIN_TOKENS:
            cache[key] = tokens
    return read


def explicit_cache(units: list[Unit], cache: dict[str, int]) -> tuple[int, int]:
    """(tokens read, tokens written) by an explicit cache. Only marked prefixes are written; a read finds the
    longest cached prefix ending at or before the last mark, looking back up to ``LOOKBACK`` units (Anthropic
    checks the block boundaries before each breakpoint, about 20 blocks back)."""
    prefixes = prefix_keys(units)
    marks = [i for i, unit in enumerate(units) if unit.marked]
    if not marks:
        return 0, 0
    last = marks[-1]
    read = max((prefixes[i][1] for i in range(max(0, last - LOOKBACK), last + 1) if prefixes[i][0] in cache),
               default=0)
    new = [prefixes[i] for i in marks if prefixes[i][0] not in cache and prefixes[i][1] >= MIN_TOKENS]
    for key, tokens in new:
        cache[key] = tokens
    written = max(0, prefixes[last][1] - read) if new else 0
    return read, written


def _key(piece: Any) -> str:
    return json.dumps(_unmarked(piece), sort_keys=True, separators=(",", ":"))


def _unmarked(value: Any) -> Any:
    """The piece without its cache marks, string content as the one text block it stands for (a provider caches
    the tokens, not the JSON spelling: the same turn marked in one request and plain in the next is one prefix)."""
    if isinstance(value, Mapping):
        return {k: [{"type": "text", "text": v}] if k == "content" and isinstance(v, str) else _unmarked(v)
                for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value


def _marked(piece: Any) -> bool:
    if isinstance(piece, Mapping):
        return "cache_control" in piece or any(_marked(v) for v in piece.values())
    if isinstance(piece, list):
        return any(_marked(v) for v in piece)
    return False


def _tokens(piece: Any, model_id: str) -> int:
    text = sum(len(t) for t in _texts(piece))
    media = 0
    for data in _media(piece):
        try:
            media += attachment_tokens(Attachment.of(data, "part"), model_id).tokens
        except ConfigError:
            media += len(data) // 4  # bytes no rule counts: as text
    return text // 4 + media


def _strings(value: Any) -> Iterator[tuple[Mapping[str, Any] | None, str, str]]:
    """Every string inside a unit as (the object holding it, its key, the string); a bare string has no holder."""
    if isinstance(value, str):
        yield None, "", value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(v, str):
                yield value, k, v
            elif isinstance(v, Mapping | list):
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _texts(value: Any) -> Iterator[str]:
    """The text of a unit: a plain string, or every ``text``/``content`` string inside it."""
    return (v for holder, k, v in _strings(value) if holder is None or k in ("text", "content"))


def _media(value: Any) -> Iterator[bytes]:
    """The bytes of every image or document part, in any family's spelling (a data URL, or base64 ``data``)."""
    for holder, k, v in _strings(value):
        if holder is not None and v.startswith("data:") and ";base64," in v:
            yield from _decoded(v.split(",", 1)[1])
        elif holder is not None and k == "data" and any(m in holder for m in _MIME_KEYS):
            yield from _decoded(v)


def _decoded(data: str) -> Iterator[bytes]:
    try:
        yield base64.b64decode(data.replace("-", "+").replace("_", "/") + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return


__all__ = ["MIN_TOKENS", "STEP_TOKENS", "Unit", "explicit_cache", "implicit_cache", "prefix_keys", "prompt_units"]
