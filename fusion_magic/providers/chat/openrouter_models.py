"""What each OpenRouter model takes as input, from OpenRouter's public model list (``GET /api/v1/models``,
``architecture.input_modalities``, e.g. ``["text", "image", "file"]``; shared/reference/attachments.md §3).

A text-only model given an image is refused at plan time, before any chat request. PDFs need no check: OpenRouter
parses a PDF for any model that cannot read files itself. The list is fetched once an hour per base URL, without
the key (it is public); when it cannot be had (offline, a proxy), nothing is refused here and the provider's own
answer decides.

    input_modalities("https://openrouter.ai/api/v1", "openai/gpt-4o")   # frozenset({"text", "image", "file"})
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

# The list changes when models are added, not per call.
TTL_S = 3600.0
# After a failed fetch, try again only after this long: a plan must not wait on a dead network every time.
RETRY_AFTER_S = 60.0
FETCH_TIMEOUT_S = 5.0

_lock = threading.Lock()
_lists: dict[str, tuple[float, dict[str, frozenset[str]] | None]] = {}


def input_modalities(base_url: str, model: str) -> frozenset[str] | None:
    """The inputs ``model`` takes by OpenRouter's list at ``base_url`` (None: not listed, or no list to be had)."""
    listing = _listing(base_url.rstrip("/"))
    return None if listing is None else listing.get(model)


def _listing(base: str) -> dict[str, frozenset[str]] | None:
    now = time.monotonic()
    with _lock:
        cached = _lists.get(base)
        if cached is not None and now - cached[0] < (TTL_S if cached[1] is not None else RETRY_AFTER_S):
            return cached[1]
    listing = _fetch(base)
    with _lock:
        _lists[base] = (now, listing)
    return listing


def _fetch(base: str) -> dict[str, frozenset[str]] | None:
    import httpx

    try:
        response = httpx.get(f"{base}/models", timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        payload = response.json() if response.is_success else None
    except (httpx.HTTPError, ValueError):
        return None
    return parse_listing(payload)


def parse_listing(payload: Any) -> dict[str, frozenset[str]] | None:
    """Model id -> input modalities, from a ``/models`` answer (None when it is not one)."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        return None
    out: dict[str, frozenset[str]] = {}
    for entry in data:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            continue
        architecture = entry.get("architecture")
        inputs = architecture.get("input_modalities") if isinstance(architecture, Mapping) else None
        if isinstance(inputs, list):
            out[entry["id"]] = frozenset(str(i) for i in inputs)
    return out


def forget() -> None:
    """Drop the fetched lists (a test that changes what the server lists)."""
    with _lock:
        _lists.clear()


__all__ = ["FETCH_TIMEOUT_S", "RETRY_AFTER_S", "TTL_S", "forget", "input_modalities", "parse_listing"]
