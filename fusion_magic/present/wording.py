"""Where a call stands: one state machine, and the one place that turns a state into words and a colour.

    queued ──> waiting ──> streaming ──> done
       │          │            ├───────> failed      (status is the error kind: timeout, crashed, ...)
       │          └────────────┴───────> cancelled   (the user interrupted, or the run was cancelled)
       └─────────────────────────────> cancelled
    late: a call that finished after the judge had started; kept and shown, not judged ("late, done").

``Response.status`` holds the raw value (``queued``, ``waiting``, ``streaming``, ``ok`` or an error kind);
everything the view, the progress lines and the reports say about it comes from here, so a new state is
one edit, not five.

    state_of(r)      # CallState.WAITING
    status_word(r)   # "waiting for the first token"
    colour(r)        # "#6a1b9a"
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.record import Response


class CallState(StrEnum):
    """A call's place in the state machine above."""

    QUEUED = "queued"
    WAITING = "waiting"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def running(self) -> bool:
        """Not finished yet: queued, waiting for its first token, or streaming."""
        return self in _RUNNING


_RUNNING = frozenset({CallState.QUEUED, CallState.WAITING, CallState.STREAMING})
_RAW = {"queued": CallState.QUEUED, "waiting": CallState.WAITING, "streaming": CallState.STREAMING,
        "ok": CallState.DONE, "cancelled": CallState.CANCELLED}

_WORDS = {
    CallState.QUEUED: "queued",
    CallState.WAITING: "waiting for the first token",
    CallState.STREAMING: "streaming",
    CallState.DONE: "done",
    CallState.CANCELLED: "cancelled",
}

# Grey for not started, purple for waiting, blue for streaming, green done, red failed, brown cancelled
# (stopped on purpose: not a failure of the model), orange late.
_COLOURS = {
    CallState.QUEUED: "#757575",
    CallState.WAITING: "#6a1b9a",
    CallState.STREAMING: "#1565c0",
    CallState.DONE: "#2e7d32",
    CallState.FAILED: "#c62828",
    CallState.CANCELLED: "#6d4c41",
}
LATE_COLOUR = "#ef6c00"
# A video job we stopped waiting for: it goes on at the provider and stays resumable from its sidecar.
PENDING_HINT = "still running at the provider: %video resume fetches it"
_PREFIX = re.compile(r"^[\w.\-/@]+:[\w.\-/@:]+(?: HTTP (?P<http>\d+))?: (?P<kind>\w+): ")


def state_of(r: Response) -> CallState:
    """The state of ``r`` now."""
    return _RAW.get(r.status, CallState.FAILED)


def is_running(r: Response) -> bool:
    """True while ``r`` is queued, waiting for its first token or streaming."""
    return state_of(r).running


def status_word(r: Response) -> str:
    """Where a call stands, in the words the view, the progress lines and the reports share.

    ``queued``, ``waiting for the first token``, ``streaming``, ``done``, ``cancelled``,
    ``failed: <kind>: <error>``; a call that finished after the judge had started reads ``late, done``.
    """
    state = state_of(r)
    word = _WORDS.get(state) or f"failed: {failure_detail(r)}"
    return f"late, {word}" if r.late and not state.running else word


def failure_detail(r: Response) -> str:
    """``<kind>: <message>`` for a failed call, the message without the ``provider:model kind:`` prefix
    that ``str(ProviderError)`` puts in ``r.error`` (the reader already sees which call it is)."""
    return describe_failure(r.status, r.error)


def describe_failure(status: str, error: str | None) -> str:
    """``failure_detail`` from a call's raw status and error (a ledger row has no record at hand)."""
    if _RAW.get(status) is CallState.CANCELLED:
        return "cancelled"  # its error only repeats that (the run was interrupted or cancelled)
    message = _first_line(error)
    # The error is "provider:model[ HTTP n]: kind: message"; keep "HTTP n" when there is one.
    match = _PREFIX.match(message)
    if match and match.group("kind") == status:
        message = (f"HTTP {match.group('http')}: " if match.group("http") else "") + message[match.end():]
    return f"{status}: {message}" if message else status


def colour(r: Response) -> str:
    """The CSS colour of ``r``'s status word."""
    return LATE_COLOUR if r.late and not is_running(r) else _COLOURS[state_of(r)]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


__all__ = [
    "LATE_COLOUR",
    "CallState",
    "colour",
    "describe_failure",
    "failure_detail",
    "is_running",
    "state_of",
    "status_word",
]
