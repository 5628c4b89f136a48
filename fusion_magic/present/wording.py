"""The one place that turns a state (``core.state.State``) into the words and the colour people see.

What a state *means* (running, final, resumable) is ``core.state``'s; this module only says it. The view,
the progress lines, the reports and the ledgers of every job kind take their words from here, so a state
reads the same everywhere, and a new state is one entry in each table below.

    status_word(r)        # "waiting for the first token", "failed: timeout: no answer in 60 s", "late, done"
    colour(r)             # "#6a1b9a"
    clip_word(State.DONE) # "saved"
    pending_words(note)   # "not finished after 600 s; still running at the provider: %video resume fetches it"

A job still running at the provider when the run stopped waiting is *pending*: its words never say failed,
and why it is pending is a note (``CallRecord.note``), never an error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..core.state import State, from_wire
from .sanitize import escape_text

if TYPE_CHECKING:
    from ..core.record import Response

_WORDS = {
    State.PLANNED: "planned",
    State.SUBMITTING: "submitting",
    State.QUEUED: "queued",
    State.WAITING: "waiting for the first token",
    State.STREAMING: "streaming",
    State.RUNNING: "running",
    State.DOWNLOADING: "downloading",
    State.DONE: "done",
    State.PENDING: "pending",
    State.FAILED: "failed",
    State.FILTERED: "filtered",
    State.CANCELLED: "cancelled",
}
# A clip's tab says what became of its file.
_CLIP_WORDS = {**_WORDS, State.DONE: "saved"}

# Grey for not started, purple waiting, blue working (streaming, running, downloading), green done, red
# failed, orange withheld by a filter or late, brown stopped on purpose (not a failure of the model), teal
# pending: alive at the provider, nothing lost.
_COLOURS = {
    State.PLANNED: "#757575",
    State.SUBMITTING: "#757575",
    State.QUEUED: "#757575",
    State.WAITING: "#6a1b9a",
    State.STREAMING: "#1565c0",
    State.RUNNING: "#1565c0",
    State.DOWNLOADING: "#1565c0",
    State.DONE: "#2e7d32",
    State.PENDING: "#00838f",
    State.FAILED: "#c62828",
    State.FILTERED: "#ef6c00",
    State.CANCELLED: "#6d4c41",
}
# A queued clip is already in the provider's queue (paid, waiting there): purple, as a call waiting for its
# first token; a queued call has not been sent.
_CLIP_COLOURS = {**_COLOURS, State.QUEUED: "#6a1b9a"}
LATE_COLOUR = "#ef6c00"
# A video job we stopped waiting for: it goes on at the provider and stays resumable from its sidecar.
PENDING_HINT = "still running at the provider: %video resume fetches it"
FILTER_WORDS = "withheld by the provider's filter"
# A run that is missing something (a clip, an answer, a check) says so in this colour, bold, in every job kind's
# view and report: the colour of a failure.
DEGRADED_COLOUR = "#c62828"
DEGRADED_STYLE = f"color:{DEGRADED_COLOUR};font-weight:bold"
_PREFIX = re.compile(r"^[\w.\-/@]+:[\w.\-/@:]+(?: HTTP (?P<http>\d+))?: (?P<kind>\w+): ")


def status_word(r: Response) -> str:
    """Where a call stands, in the words the view, the progress lines and the reports share.

    ``queued``, ``waiting for the first token``, ``streaming``, ``done``, ``cancelled``,
    ``failed: <kind>: <error>``, ``pending: <why>; still running at the provider: ...``; a call that finished
    after the judge had started reads ``late, done``.
    """
    state = r.state
    if state is State.FAILED:
        word = f"failed: {failure_detail(r)}"
    elif state is State.PENDING:
        word = f"pending: {pending_words(r.note)}"
    elif state is State.FILTERED:
        word = filtered_words(r.error)
    else:
        word = _WORDS[state]
    return f"late, {word}" if r.late and not state.is_running else word


def pending_words(note: str | None) -> str:
    """What a pending job's note and hint say: ``"<why>; still running at the provider: %video resume
    fetches it"``, or the hint alone when there is no note."""
    return f"{note}; {PENDING_HINT}" if note else PENDING_HINT


def note_words(status: str, note: str | None) -> str:
    """A ledger row's note from its raw status and note ("" when there is none): a pending job's says
    where the job is and how to fetch it."""
    if not note:
        return ""
    return pending_words(note) if from_wire(status)[0] is State.PENDING else note


def failure_detail(r: Response) -> str:
    """``<kind>: <message>`` for a failed call, the message without the ``provider:model kind:`` prefix
    that ``str(ProviderError)`` puts in ``r.error`` (the reader already sees which call it is)."""
    return describe_failure(r.status, r.error)


def describe_failure(status: str, error: str | None) -> str:
    """``failure_detail`` from a call's raw status and error (a ledger row has no record at hand)."""
    if from_wire(status)[0] is State.CANCELLED:
        return "cancelled"  # its error only repeats that (the run was interrupted or cancelled)
    message = _first_line(error)
    # The error is "provider:model[ HTTP n]: kind: message"; keep "HTTP n" when there is one.
    match = _PREFIX.match(message)
    if match and match.group("kind") == status:
        message = (f"HTTP {match.group('http')}: " if match.group("http") else "") + message[match.end():]
    return f"{status}: {message}" if message else status


def colour(r: Response) -> str:
    """The CSS colour of ``r``'s status word."""
    return LATE_COLOUR if r.late and not r.state.is_running else _COLOURS[r.state]


def state_word(state: State) -> str:
    """A state as people read it (a batch's state in the progress view, a call's in the tabs)."""
    return _WORDS[state]


def clip_word(state: State) -> str:
    """The first word of a clip's status line: ``saved`` for a clip on disk, else the state's word."""
    return _CLIP_WORDS[state]


def filtered_words(reason: str | None) -> str:
    """A filtered job or call, led by its state's one word: ``"filtered (withheld by the provider's filter):
    <reason>"``. A refusal by the provider's safety filter is "filtered" everywhere (never "blocked")."""
    return f"{_WORDS[State.FILTERED]} ({FILTER_WORDS}): {_first_line(reason) or 'no reason given'}"


def degraded_html(sentence: str, tag: str = "p") -> str:
    """The ``DEGRADED: ...`` sentence, escaped, in its colour and bold: a ``<p>`` in a report, a ``<span>``
    under a view's status line."""
    return f'<{tag} style="{DEGRADED_STYLE}">{escape_text(sentence)}</{tag}>'


def clip_colour(state: State) -> str:
    """The CSS colour of a clip's status word."""
    return _CLIP_COLOURS[state]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


__all__ = [
    "DEGRADED_COLOUR",
    "DEGRADED_STYLE",
    "FILTER_WORDS",
    "LATE_COLOUR",
    "PENDING_HINT",
    "clip_colour",
    "clip_word",
    "colour",
    "degraded_html",
    "describe_failure",
    "failure_detail",
    "filtered_words",
    "note_words",
    "pending_words",
    "status_word",
]
