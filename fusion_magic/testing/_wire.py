"""Framing every family shares: compact JSON, SSE events and comments, the stock error messages.

What a family spells its own way (chunks, error bodies, auth errors) lives with it in ``families/``. Shapes
follow ``shared/reference/llm-apis.md``; keep them literal, because the provider clients are tested against
exactly these bytes.
"""

from __future__ import annotations

import json
from typing import Any

_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Invalid API key.",
    402: "Insufficient credits.",
    403: "Forbidden.",
    404: "Not found.",
    408: "Request timed out.",
    429: "Rate limit exceeded.",
    500: "Internal server error.",
    502: "Bad gateway: the upstream provider failed.",
    503: "Service unavailable.",
    504: "Deadline exceeded.",
    529: "Overloaded",
}


def dumps(obj: Any) -> str:
    """Compact JSON, as the real servers send it: UTF-8 as is, and a lone surrogate (text cut inside a UTF-16
    pair, which UTF-8 cannot carry) as its ``\\ud83d`` escape, as a server that cuts between pairs sends it."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"))
    return text


def sse(data: str, *, event: str | None = None, nl: str = "\n") -> bytes:
    """One SSE event; ``nl`` is "\\n" or "\\r\\n" (the checklist asks for both)."""
    head = f"event: {event}{nl}" if event else ""
    return f"{head}data: {data}{nl}{nl}".encode()


def sse_comment(text: str, *, nl: str = "\n") -> bytes:
    """One SSE comment line (a keep-alive), with the blank line that ends it."""
    return f": {text}{nl}{nl}".encode()


def sse_headers() -> list[tuple[str, str]]:
    """Response headers of an event stream."""
    return [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]


def default_message(status: int) -> str:
    """The error message a scripted fault gets when it names none."""
    return _DEFAULT_MESSAGES.get(status, f"Emulated error {status}.")
