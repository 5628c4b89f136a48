"""Where a call or a job stands: one state machine for every job kind, and how a state is written down.

    planned ──> submitting ──> queued ──> running ──> downloading ──> done      (a video job)
    queued ──> waiting ──> streaming ──> done                                     (a chat call)
    any running state ──> failed | filtered | cancelled                           (final)
    a job's running state ──> pending ──> running again (``%video resume``) ──> ... (never lost)

The final states (done, failed, filtered, cancelled) never change again. ``pending`` is where a paid job
rests when this run stops waiting for it (a timeout, an interrupt): it goes on at the provider, its receipt
keeps its id, and a resume picks it up. A reused answer or clip is ``done``; where it came from is its
record's business (``Video.reused``, ``CallFinished.reused``), not a state of its own.

Why a call failed is its *failure kind* (``timeout``, ``server``, ...), a field of its own on the record
(``CallRecord.failure``), never folded into the state. Files and tables keep the words they always had
(``status``: ``ok``, an in-flight word, ``pending`` or the failure kind), so sidecars, run logs and
exports written before this module still load: ``to_wire`` and ``from_wire`` are the two directions.
The words people read are ``present.wording``'s, not these.

    State.PENDING.is_paid_and_resumable     # True
    from_wire("timeout")                    # (State.FAILED, "timeout")
    to_wire(State.DONE, None)               # "ok"
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, overload


class State(StrEnum):
    """Where a call or a job stands (the diagram in the module docstring)."""

    PLANNED = "planned"  # a clip asked for, nothing sent yet
    SUBMITTING = "submitting"  # a job's submission on its way: the request that is paid for
    QUEUED = "queued"  # waiting its turn: a call not started yet, a job in the provider's queue
    WAITING = "waiting"  # a call sent, no token back yet
    STREAMING = "streaming"  # a call's answer arriving
    RUNNING = "running"  # the provider works on the job
    DOWNLOADING = "downloading"  # the job finished at the provider; its file is on its way to disk
    DONE = "done"
    PENDING = "pending"  # we stopped waiting; the paid job goes on at the provider, resumable
    FAILED = "failed"
    FILTERED = "filtered"  # the provider's safety filter withheld the result (not billed)
    CANCELLED = "cancelled"  # stopped on purpose: the user interrupted, or the provider cancelled it

    @property
    def is_running(self) -> bool:
        """This run still works on it: not finished, and not left pending at the provider."""
        return self in _RUNNING

    @property
    def is_final(self) -> bool:
        """It ended for good (done, failed, filtered, cancelled): no later event changes it."""
        return self in _FINAL

    @property
    def is_paid_and_resumable(self) -> bool:
        """A paid job this run stopped waiting for: it still runs at the provider, ``%video resume`` fetches it."""
        return self is State.PENDING


_RUNNING = frozenset({State.PLANNED, State.SUBMITTING, State.QUEUED, State.WAITING, State.STREAMING,
                      State.RUNNING, State.DOWNLOADING})
_FINAL = frozenset({State.DONE, State.FAILED, State.FILTERED, State.CANCELLED})

# The one word files and tables have always used for a finished call; every other state is its own value.
_OK = "ok"


# The kind a refused prompt's error carries (``BlockedError``): the filtered state, not a failure of its own.
_BLOCKED = "blocked"


def from_wire(word: str) -> tuple[State, str | None]:
    """A ``status`` as records, sidecars and run logs write it, read back as (state, failure kind).

    ``ok`` is done; a state's own name is that state; ``failed`` is a failure of no particular kind; any
    other word is the kind of a failure (``timeout``, ``server``, ``blocked`` ...).
    """
    if word == _OK:
        return State.DONE, None
    if word == _BLOCKED:
        return State.FILTERED, None  # the provider's safety filter: one state, one word, for clips and calls alike
    try:
        return State(word), None
    except ValueError:
        return State.FAILED, word


def to_wire(state: State, failure: str | None = None) -> str:
    """The ``status`` word written for ``state``: ``ok`` for done, the failure kind for a failure."""
    if state is State.DONE:
        return _OK
    if state is State.FAILED and failure:
        return failure
    return state.value


class StatusWord:
    """A dataclass field that reads and writes an object's ``state`` as its wire word (``from_wire``).

    It keeps ``status`` the string it always was (set, compared, written to files), while the object holds a
    ``State`` (and, with ``kinds``, its ``failure`` kind) that nothing has to parse again.

        @dataclass
        class Clip:
            status: StatusWord = StatusWord(State.PLANNED)
            state: State = field(default=State.PLANNED, init=False, repr=False)
    """

    def __init__(self, default: State, *, kinds: bool = False) -> None:
        self.default = default
        self.kinds = kinds  # keep the failure kind in ``failure`` (a record); without it a failure is "failed"

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> str: ...

    @overload
    def __get__(self, obj: object, owner: type[Any]) -> str: ...

    def __get__(self, obj: object | None, owner: type[Any]) -> str:
        if obj is None:  # the class itself: the dataclass's default for the field
            return to_wire(self.default)
        return to_wire(obj.state, getattr(obj, "failure", None) if self.kinds else None)  # type: ignore[attr-defined]

    def __set__(self, obj: object, value: str | State) -> None:
        state, failure = (value, None) if isinstance(value, State) else from_wire(str(value))
        obj.state = state  # type: ignore[attr-defined]
        if self.kinds:
            obj.failure = failure  # type: ignore[attr-defined]


__all__ = [
    "State",
    "StatusWord",
    "from_wire",
    "to_wire",
]
