"""The batch APIs' side of the emulator: every batch submitted, how far it got, and what its requests got.

One :class:`BatchBook` per Emulator (``emu.batches``, ``Request.batches``), shared by the four batch families
(``families/openai_batch.py``, ``anthropic_batch.py``, ``gemini_batch.py``, ``openrouter_batch.py``). A batch
advances by polls, not by a clock, so tests are exact: with ``polls_to_finish = 2`` the first GET of a batch sees
it running and the second sees it finished. Its requests are answered when it finishes, by the same scripted
models as the live chat routes (:func:`answer`), so a ``Fault("status", status=429)`` for a model's n-th call is
that request's error entry, in the family's batch shape, beside the successes.

    emu.batches.polls_to_finish = 3       # two polls in progress, the third finished
    emu.batches.hold()                    # stay in progress however often polled (kill-and-resume tests)
    emu.batches.fail_next("openai", "The batch failed: internal error.")
    emu.batches.expire_next("anthropic", completed=1)
    emu.batches.creations("openai"); emu.batches.submitted_ids("openai")
    emu.batches.fault_next("anthropic", "create", status=503, created=True)   # it has the batch; the answer is a 503
    emu.batches.fault_next("openai", "poll", status=429)                       # a 429 without Retry-After
    emu.batches.fault_next("gemini", "results", cut=True)                      # the results cut off half-way

Shapes: ``shared/reference/batch-apis.md``. Families are named by provider here ("openai", "anthropic", "gemini",
"openrouter"), whatever their registry names are.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._exchange import ClientGone, ConnectionCut
from ._wire import default_message, dumps
from .script import Fault

if TYPE_CHECKING:  # registry imports this module; chat imports registry
    from .chat import ChatFamily, Turn
    from .registry import Request

Phase = Literal["pending", "running", "finalizing", "cancelling", "completed", "failed", "expired", "cancelled"]
Outcome = Literal["pending", "succeeded", "errored", "expired", "canceled"]
# How a batch will end once its polls are done (fail_next, expire_next, or a validation failure).
Fate = Literal["complete", "fail", "expire"]

TERMINAL: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})
PROVIDERS = ("openai", "anthropic", "gemini", "openrouter")

# Each family's wire state for each phase (reference §0 "in-progress states" / "end states").
_OPENAI_STATES: dict[str, str] = {
    "pending": "validating", "running": "in_progress", "finalizing": "finalizing", "cancelling": "cancelling",
    "completed": "completed", "failed": "failed", "expired": "expired", "cancelled": "cancelled",
}
WIRE_STATES: dict[str, dict[str, str]] = {
    "openai": _OPENAI_STATES,
    "openrouter": _OPENAI_STATES,
    # Anthropic has one in-progress state and one end state; each request's result says how it ended.
    "anthropic": {
        "pending": "in_progress", "running": "in_progress", "finalizing": "in_progress", "cancelling": "canceling",
        "completed": "ended", "failed": "ended", "expired": "ended", "cancelled": "ended",
    },
    # Gemini has no cancelling state: a cancelled batch runs until its next poll says CANCELLED.
    "gemini": {
        "pending": "BATCH_STATE_PENDING", "running": "BATCH_STATE_RUNNING", "finalizing": "BATCH_STATE_RUNNING",
        "cancelling": "BATCH_STATE_RUNNING", "completed": "BATCH_STATE_SUCCEEDED", "failed": "BATCH_STATE_FAILED",
        "expired": "BATCH_STATE_EXPIRED", "cancelled": "BATCH_STATE_CANCELLED",
    },
}
# Families whose failures show at validation (the first poll), not after the batch ran.
_FAILS_AT_VALIDATION = frozenset({"openai", "openrouter"})
_HAS_FINALIZING = frozenset({"openai", "openrouter"})
_ENDS: dict[str, Phase] = {"complete": "completed", "fail": "failed", "expire": "expired"}
# The batch routes a test can script an HTTP fault on (``BatchBook.fault_next``): the submit (OpenAI: the batch's
# create, not the file upload), a poll, and the read of the results (OpenAI: an output or error file's content;
# Anthropic: ``results_url``; Gemini and OpenRouter: the poll that brings the finished batch with its results).
BatchRoute = Literal["create", "poll", "results"]
BATCH_ROUTES: tuple[BatchRoute, ...] = ("create", "poll", "results")


@dataclass(frozen=True)
class RouteFault:
    """One scripted HTTP failure of a batch route (``BatchBook.fault_next``): ``status`` with the family's error
    body (``retry_after`` as a ``Retry-After`` header), or a 200 whose body is not JSON (``malformed``), or the
    answer cut off half-way (``cut``), or no answer at all until the client gives up (``hang``). ``created`` (the
    create route only): the provider creates the batch first, so it has it (and bills it) whatever the client
    sees."""

    status: int | None = None
    retry_after: float | None = None
    malformed: bool = False
    cut: bool = False
    hang: bool = False
    created: bool = False
    message: str | None = None

    @property
    def word(self) -> str:
        """What the request log's ``fault`` says of it."""
        kind = ("hang" if self.hang else "cut" if self.cut else "malformed" if self.malformed
                else f"status {self.status}")
        return f"batch route: {kind}{' after creating the batch' if self.created else ''}"


def provider_of_family(family: str) -> str:
    """``"openai"`` for ``"openai"`` or the registry name ``"openai-batch"``."""
    return family.removesuffix("-batch")


@dataclass(slots=True)
class BatchItem:
    """One request of a batch: its id, its body (the request as the chat route would get it) and, once the
    batch ended, its outcome and its result entry as the family's batch API writes it (compact JSON bytes)."""

    custom_id: str | None
    body: Any
    # Gemini: the ``metadata`` sent beside the request, echoed in its entry.
    meta: Any = None
    outcome: Outcome = "pending"
    # 200, or the HTTP status of the request's error (0 when it never ran).
    status: int = 0
    line: bytes | None = None


@dataclass
class EmulatedBatch:
    """One submitted batch. ``family`` is the provider ("openai", ...); ``phase`` is provider-neutral and
    ``state`` the family's wire word for it. Counters and totals fill in when the batch ends."""

    id: str
    family: str
    model: str | None
    items: list[BatchItem]
    created: float = field(default_factory=time.time)
    metadata: dict[str, Any] | None = None
    display_name: str | None = None
    endpoint: str | None = None
    input_file_id: str | None = None
    phase: Phase = "pending"
    polls: int = 0
    fate: Fate = "complete"
    # fail: the failure's message; expire: how many requests finished before the window closed.
    fail_message: str | None = None
    expire_completed: int | None = None
    # OpenAI's errors.data entries of a batch that failed validation ({code, line, message, param}).
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Unix seconds of each phase reached ("running": in_progress_at, ...).
    stamps: dict[str, float] = field(default_factory=dict)
    # Indexes of items in the order the results are written (shuffled where the real API does not keep order).
    order: list[int] = field(default_factory=list)
    # Sums over the requests that succeeded: tokens, and the scripted cost (before the batch discount).
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    output_file_id: str | None = None
    error_file_id: str | None = None
    deleted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        """The family's own word for where the batch is (``in_progress``, ``ended``, ``BATCH_STATE_RUNNING``)."""
        return WIRE_STATES[self.family][self.phase]

    @property
    def done(self) -> bool:
        """Whether the batch reached an end state."""
        return self.phase in TERMINAL

    @property
    def bodies(self) -> dict[str, Any]:
        """The request bodies by custom_id (Gemini: by ``metadata.key``; requests without one are left out)."""
        return {item.custom_id: item.body for item in self.items if item.custom_id is not None}

    def count(self, outcome: Outcome) -> int:
        """How many requests ended with ``outcome`` ("succeeded", "errored", "expired", "canceled", "pending")."""
        return sum(1 for item in self.items if item.outcome == outcome)

    def results(self) -> Iterator[BatchItem]:
        """The items in the order their results are written (after the batch ended)."""
        return (self.items[i] for i in self.order)


@dataclass
class BatchFile:
    """An OpenAI file: an upload (``data``) or a batch's output/error file (``batch_id`` and ``kind``)."""

    id: str
    filename: str
    purpose: str
    created: int
    data: bytes | None = None
    batch_id: str | None = None
    kind: Literal["input", "output", "error"] = "input"
    deleted: bool = False


# What the family runs when a batch ends: answer every request, write each result line, fill the totals.
Finisher = Callable[[EmulatedBatch], None]


class BatchBook:
    """Every batch of one Emulator, thread-safe (tests read and script it while the server thread polls).

    ``polls_to_finish`` (default 2): the N-th GET of a batch sees it ended; earlier ones see the family's
    in-progress states in order (OpenAI/OpenRouter ``validating`` -> ``in_progress`` [-> ``finalizing`` on the
    last poll before the end, when N >= 3] -> ``completed``; Anthropic ``in_progress`` -> ``ended``; Gemini
    ``PENDING`` -> ``RUNNING`` -> ``SUCCEEDED``). Read at each poll, so a test may change it between polls.
    """

    def __init__(self, next_seq: Callable[[], int] | None = None, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        counter = itertools.count(1)
        # The emulator's request counter: response ids of batched answers never repeat a live one's.
        self._next_seq = next_seq or (lambda: next(counter))
        self.polls_to_finish = 2
        self.seed = seed
        self._held = False
        self._batches: dict[str, EmulatedBatch] = {}
        self._files: dict[str, BatchFile] = {}
        self._created: dict[str, int] = {}
        self._submitted: dict[str, list[str]] = {}
        self._fates: dict[str, deque[tuple[Fate, str | None, int | None]]] = {}
        self._throttles: dict[str, deque[float]] = {}
        self._route_faults: dict[tuple[str, str], deque[RouteFault]] = {}
        self._ids = itertools.count(1)

    # ---- what tests script and read -------------------------------------------------------------------

    def clear(self) -> None:
        """Forget every batch, file, counter and scripted outcome; back to 2 polls, not held."""
        with self._lock:
            self._batches.clear()
            self._files.clear()
            self._created.clear()
            self._submitted.clear()
            self._fates.clear()
            self._throttles.clear()
            self._route_faults.clear()
            self._held = False
            self.polls_to_finish = 2

    @property
    def held(self) -> bool:
        """Whether batches are held in progress (``hold()``)."""
        return self._held

    @held.setter
    def held(self, value: bool) -> None:
        self._held = value

    def hold(self) -> None:
        """Keep every batch in its current in-progress state however often it is polled (a cancel still ends it)."""
        self._held = True

    def release(self) -> None:
        """Let held batches advance again, one step per poll from where they were."""
        self._held = False

    def fail_next(self, family: str, message: str = "The batch failed: internal error.") -> None:
        """The next batch created in ``family`` fails after acceptance: OpenAI ``failed`` with ``errors.data``,
        OpenRouter ``failed`` with ``error.message`` (both at the first poll, as validation does), Gemini
        ``BATCH_STATE_FAILED`` with the Operation's ``error``, Anthropic ``ended`` with every request errored."""
        self._script_fate(family, ("fail", message, None))

    def expire_next(self, family: str, completed: int | None = None) -> None:
        """The next batch created in ``family`` ends expired, its first ``completed`` requests (default half)
        answered: OpenAI ``expired`` with those in the output file and ``batch_expired`` error lines for the rest;
        Anthropic ``ended`` with ``expired`` results; OpenRouter ``expired`` with error results for the rest;
        Gemini ``BATCH_STATE_EXPIRED`` (no responses)."""
        self._script_fate(family, ("expire", None, completed))

    def throttle_next_poll(self, family: str, retry_after: float = 1.0) -> None:
        """The next GET of a batch in ``family`` is a 429 with ``Retry-After`` (the batch does not advance)."""
        with self._lock:
            self._throttles.setdefault(provider_of_family(family), deque()).append(retry_after)

    def fault_next(self, family: str, route: BatchRoute, *, status: int | None = None,
                   retry_after: float | None = None, malformed: bool = False, cut: bool = False, hang: bool = False,
                   created: bool = False, times: int = 1, message: str | None = None) -> None:
        """The next ``times`` requests to ``route`` ("create", "poll", "results") of ``family`` fail over HTTP:
        ``status`` (with ``Retry-After: retry_after`` when given), a 2xx that is not JSON (``malformed``), the
        answer cut half-way (``cut``) or never sent (``hang``: until the client's timeout). A faulted poll does not
        advance the batch; ``created=True`` on "create" creates the batch before the fault answers."""
        if route not in BATCH_ROUTES:
            raise ValueError(f"emulator: no batch route {route!r}; one of {', '.join(BATCH_ROUTES)}")
        if [status is not None, malformed, cut, hang].count(True) != 1:
            raise ValueError("emulator: a batch route fault is one of status=, malformed=, cut= or hang=")
        if created and route != "create":
            raise ValueError("emulator: created= is for the create route only")
        fault = RouteFault(status, retry_after, malformed, cut, hang, created, message)
        with self._lock:
            self._route_faults.setdefault((provider_of_family(family), route), deque()).extend([fault] * times)

    def take_fault(self, family: str, route: BatchRoute) -> RouteFault | None:
        """The scripted fault for this request to ``route``, None when none is scripted (counts it as used)."""
        with self._lock:
            queued = self._route_faults.get((provider_of_family(family), route))
            return queued.popleft() if queued else None

    def faults_left(self, family: str | None = None) -> int:
        """How many scripted route faults (``fault_next``) no request has met yet, in ``family`` or in all."""
        with self._lock:
            return sum(len(q) for (provider, _), q in self._route_faults.items()
                       if family is None or provider == provider_of_family(family))

    def creations(self, family: str | None = None) -> int:
        """How many batches were created (accepted), in ``family`` or in all."""
        with self._lock:
            if family is None:
                return sum(self._created.values())
            return self._created.get(provider_of_family(family), 0)

    def submitted_ids(self, family: str) -> list[str]:
        """Every custom_id (Gemini: ``metadata.key``) ever submitted in ``family``, in order, with repeats."""
        with self._lock:
            return list(self._submitted.get(provider_of_family(family), []))

    def batch(self, batch_id: str) -> EmulatedBatch:
        """The batch ``batch_id`` (deleted ones too); KeyError if there is none."""
        found = self.get(batch_id)
        if found is None:
            raise KeyError(f"emulator: no batch {batch_id!r}")
        return found

    def get(self, batch_id: str) -> EmulatedBatch | None:
        """The batch ``batch_id``, None if there is none."""
        with self._lock:
            return self._batches.get(batch_id)

    def batches(self, family: str | None = None) -> list[EmulatedBatch]:
        """The batches, oldest first, of ``family`` or all (deleted ones too)."""
        with self._lock:
            batches = list(self._batches.values())
        return batches if family is None else [b for b in batches if b.family == provider_of_family(family)]

    # ---- what the families call --------------------------------------------------------------------

    def next_seq(self) -> int:
        """A fresh request number (response ids of batched answers derive from it)."""
        return self._next_seq()

    def create(self, family: str, items: list[BatchItem], *, prefix: str, model: str | None,
               metadata: dict[str, Any] | None = None, display_name: str | None = None,
               endpoint: str | None = None, input_file_id: str | None = None,
               errors: Sequence[dict[str, Any]] = (), failure: str | None = None) -> EmulatedBatch:
        """Accept a batch (one creation): ``errors`` (OpenAI) or ``failure`` (OpenRouter) make it fail validation
        at its first poll; otherwise it takes the family's next scripted fate (fail_next, expire_next)."""
        provider = provider_of_family(family)
        with self._lock:
            n = next(self._ids)
            batch_id = f"{prefix}{n:04d}emu{n * 7919 % 100000:05d}"
            batch = EmulatedBatch(batch_id, provider, model, items, metadata=metadata, display_name=display_name,
                                  endpoint=endpoint, input_file_id=input_file_id, errors=list(errors))
            queued = self._fates.get(provider)
            if errors or failure is not None:
                batch.fate, batch.fail_message = "fail", failure
            elif queued:
                batch.fate, batch.fail_message, batch.expire_completed = queued.popleft()
            batch.stamps["pending"] = batch.created
            self._batches[batch_id] = batch
            self._created[provider] = self._created.get(provider, 0) + 1
            self._submitted.setdefault(provider, []).extend(i.custom_id for i in items if i.custom_id is not None)
            return batch

    def take_throttle(self, family: str) -> float | None:
        """The Retry-After of a scripted 429 for this poll, None when none is scripted (counts it as used)."""
        with self._lock:
            queued = self._throttles.get(provider_of_family(family))
            return queued.popleft() if queued else None

    def poll(self, batch_id: str, finish: Finisher) -> EmulatedBatch | None:
        """Count one GET of the batch and advance it one step (unless held); ``finish`` answers its requests when
        it ends. None if there is no such batch, or it was deleted."""
        batch = self.get(batch_id)
        if batch is None or batch.deleted:
            return None
        with batch.lock:  # one poll of a batch at a time: its requests are answered once
            if batch.phase == "cancelling":
                self._end(batch, "cancelled", finish)
            elif batch.done or self._held:
                return batch
            else:
                batch.polls += 1
                target = max(self.polls_to_finish, 1)
                if batch.phase == "pending" and batch.fate == "fail" and batch.family in _FAILS_AT_VALIDATION:
                    self._end(batch, "failed", finish)
                elif batch.polls >= target:
                    phase = _ENDS[batch.fate]
                    if batch.family == "anthropic" and phase == "failed":
                        phase = "completed"  # Anthropic has no failed batch: its requests come back errored
                    self._end(batch, phase, finish)
                else:
                    last = batch.polls == target - 1 and batch.polls >= 2 and batch.family in _HAS_FINALIZING
                    self._enter(batch, "finalizing" if last else "running")
        return batch

    def cancel(self, batch_id: str) -> EmulatedBatch | None:
        """Ask to cancel: an in-progress batch goes ``cancelling`` and ends cancelled at its next poll. None if
        there is no such batch."""
        batch = self.get(batch_id)
        if batch is None or batch.deleted:
            return None
        with batch.lock:
            if not batch.done and batch.phase != "cancelling":
                self._enter(batch, "cancelling")
        return batch

    def delete(self, batch_id: str) -> None:
        """The provider no longer keeps the batch: its GETs answer 404 (it still counts as created)."""
        batch = self.get(batch_id)
        if batch is not None:
            batch.deleted = True

    def live(self, family: str) -> list[EmulatedBatch]:
        """The family's batches a list call shows: not deleted, newest first."""
        provider = provider_of_family(family)
        return [b for b in reversed(self.batches()) if b.family == provider and not b.deleted]

    def add_file(self, filename: str, purpose: str, data: bytes | None = None, *, batch_id: str | None = None,
                 kind: Literal["input", "output", "error"] = "input") -> BatchFile:
        """Store an OpenAI file (an upload, or a batch's output or error file, whose lines stay in the batch)."""
        with self._lock:
            n = next(self._ids)
            record = BatchFile(f"file-emu{n:04d}{n * 104729 % 100000:05d}", filename, purpose, int(time.time()),
                               data, batch_id, kind)
            self._files[record.id] = record
            return record

    def file(self, file_id: str) -> BatchFile | None:
        """The file ``file_id``, None if there is none (or it was deleted)."""
        with self._lock:
            record = self._files.get(file_id)
        return None if record is None or record.deleted else record

    # ---- transitions ----------------------------------------------------------------------------------

    @staticmethod
    def _enter(batch: EmulatedBatch, phase: Phase) -> None:
        batch.phase = phase
        batch.stamps.setdefault(phase, time.time())

    def _end(self, batch: EmulatedBatch, phase: Phase, finish: Finisher) -> None:
        if phase in ("completed", "expired"):
            # A batch ran once it ended completed or expired: it was in progress on the way.
            batch.stamps.setdefault("running", time.time())
        if phase == "cancelled":
            batch.fate = "complete"
        order = list(range(len(batch.items)))
        if batch.family != "gemini":  # Gemini keeps request order; the others do not (reference §0 item 6)
            random.Random(f"{self.seed}:{batch.id}").shuffle(order)
        batch.order = order
        batch.phase = phase  # before finish(): the finisher reads how the batch ended
        finish(batch)
        batch.stamps.setdefault(phase, time.time())

    def _script_fate(self, family: str, fate: tuple[Fate, str | None, int | None]) -> None:
        with self._lock:
            self._fates.setdefault(provider_of_family(family), deque()).append(fate)


# ---- answering one batched request as the live chat route would ---------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One batched request's outcome from the live chat family: ``status`` 200 with the family's chat answer in
    ``body`` (and its ``turn``), or an error status with the family's error body and its ``message``."""

    status: int
    body: Any
    request_id: str
    turn: Turn | None = None
    message: str = ""
    fault: Fault | None = None

    @property
    def ok(self) -> bool:
        """Whether the request got an answer (HTTP 200)."""
        return self.status == 200


def answer(chat: ChatFamily, req: Request, body: Mapping[str, Any], model: str) -> Answer:
    """Answer ``body`` for ``model`` exactly as ``chat``'s live route would (``validate``, then ``plan`` and
    ``json_body``), drawing the model's next scripted turn. A scripted ``status`` fault (or an ``error_chunk``, which
    a non-streaming request gets as a status) is that status with the family's error body; a ``cut``,
    ``malformed`` or ``hang`` is a 500 (the batch engine's own retry gave up); a ``blocked`` one is the family's
    refusal where it has a refusal finish, else a 403 (the family module may shape it otherwise)."""
    seq = req.batches.next_seq()
    request_id = f"req_emu{seq:06d}"
    invalid = chat.validate(body)
    if invalid is not None:
        rejected = chat.rejection_body(invalid, request_id)
        return Answer(400, rejected, request_id, message=invalid if isinstance(invalid, str) else invalid.message)
    item_req = dataclasses.replace(req, body=body, seq=seq)
    try:
        plan = chat.plan(item_req, body, model)
    except Exception as exc:  # a scripted reply callable failed: an internal error of that request
        message = f"emulator: reply callable for {model!r} raised {exc!r}"
        return Answer(500, chat.error_body(500, message, request_id=request_id), request_id, message=message)
    fault = plan.fault
    if fault is None or (fault.kind == "blocked" and chat.refusal_reason is not None):
        answered = chat.json_body(plan.turn, "".join(plan.chunks), plan.finish)
        return Answer(200, answered, request_id, plan.turn, fault=fault)
    status = fault.status if fault.kind in ("status", "error_chunk") else 403 if fault.kind == "blocked" else 500
    message = fault.message or default_message(status)
    error = chat.error_body(status, message, request_id=request_id, fault=fault)
    return Answer(status, error, request_id, plan.turn, message, fault)


def tally(batch: EmulatedBatch, turn: Turn) -> None:
    """Add a succeeded request's tokens and scripted cost to its batch's totals."""
    batch.input_tokens += turn.input_tokens
    batch.cached_tokens += turn.cached_input_tokens
    batch.output_tokens += turn.output_tokens
    batch.cost_usd += turn.cost_usd


def line(entry: Any) -> bytes:
    """One result entry as compact JSON bytes (what an item keeps)."""
    return dumps(entry).encode()


# ---- sending results without building them twice -------------------------------------------------------

_CHUNK = 256 << 10
# Stands for a JSON array of result entries inside a body made with dumps(); spliced at send time.
RESULTS = "@@emulator-batch-results@@"
_RESULTS_BYTES = dumps(RESULTS).encode()


def _chunks(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Join small pieces into writes of about 256 KiB."""
    buffer: list[bytes] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _array(lines: Sequence[bytes]) -> Iterator[bytes]:
    yield b"["
    for i, entry in enumerate(lines):
        if i:
            yield b","
        yield entry
    yield b"]"


async def send_cut(req: Request, data: bytes, content_type: str = "application/json",
                   headers: Iterable[tuple[str, str]] = (), status: int = 200) -> None:
    """Start a 200 answer with the Content-Length of ``data``, send its first half, then drop the connection."""
    ex = req.exchange
    await ex.start(status, [("content-type", content_type), ("content-length", str(len(data))), *headers])
    await ex.write(data[: len(data) // 2])
    raise ConnectionCut("emulator: a scripted cut of a batch route")


async def send_fault(req: Request, fault: RouteFault, error_body: Callable[[int, str], Any], *,
                     answer: bytes | None = None, headers: Iterable[tuple[str, str]] = ()) -> None:
    """Answer with a scripted route fault: ``fault.status`` with ``error_body(status, message)``, a 200 that is
    not JSON, no answer (until the client goes away), or ``answer`` (the real body: the provider did its part)
    cut half-way."""
    ex = req.exchange
    req.record.fault = fault.word
    if fault.hang:
        await ex.gone.wait()
        raise ClientGone
    if fault.status is not None:
        extra = [("retry-after", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
        body = error_body(fault.status, fault.message or default_message(fault.status))
        await req.json(fault.status, body, [*extra, *headers])
        return
    if fault.malformed:
        data = b'<html><body>upstream answered: {"id": "batch_'  # a 2xx whose body is no JSON at all
        await ex.start(200, [("content-type", "application/json"), ("content-length", str(len(data))), *headers])
        await ex.finish(data)
        return
    await send_cut(req, answer if answer is not None else b'{"id": "batch_emu", "status": "valid', headers=headers)


async def send_jsonl(req: Request, lines: Sequence[bytes], content_type: str = "application/jsonl",
                     headers: Iterable[tuple[str, str]] = (), *, cut: bool = False) -> None:
    """Answer 200 with one line per entry, streamed in chunks with a Content-Length (``cut``: half of it, then
    the connection drops)."""
    if cut:
        await send_cut(req, b"".join(piece for entry in lines for piece in (entry, b"\n")), content_type,
                       headers)
        return
    length = sum(len(entry) + 1 for entry in lines)
    ex = req.exchange
    await ex.start(200, [("content-type", content_type), ("content-length", str(length)), *headers])
    for chunk in _chunks(piece for entry in lines for piece in (entry, b"\n")):
        await ex.write(chunk)
    await ex.finish()


async def send_json_with_results(req: Request, status: int, body: Any, lines: Sequence[bytes],
                                 headers: Iterable[tuple[str, str]] = (), *, cut: bool = False) -> None:
    """Answer with ``body`` where every ``RESULTS`` placeholder is the JSON array of ``lines``: the entries are
    written as they are kept, never parsed and re-encoded into one big string (``cut``: half of it, then the
    connection drops)."""
    parts = dumps(body).encode().split(_RESULTS_BYTES)

    def pieces() -> Iterator[bytes]:
        for i, part in enumerate(parts):
            if i:
                yield from _array(lines)
            yield part

    if cut:
        await send_cut(req, b"".join(pieces()), headers=headers, status=status)
        return
    array_length = 2 + sum(len(entry) for entry in lines) + max(len(lines) - 1, 0)
    length = sum(len(p) for p in parts) + array_length * (len(parts) - 1)
    ex = req.exchange
    await ex.start(status, [("content-type", "application/json"), ("content-length", str(length)), *headers])

    for chunk in _chunks(pieces()):
        await ex.write(chunk)
    await ex.finish()


__all__ = ["BATCH_ROUTES", "PROVIDERS", "RESULTS", "TERMINAL", "WIRE_STATES", "Answer", "BatchBook", "BatchFile",
           "BatchItem", "BatchRoute", "EmulatedBatch", "Fate", "Finisher", "Outcome", "Phase", "RouteFault", "answer",
           "line", "provider_of_family", "send_cut", "send_fault", "send_json_with_results", "send_jsonl", "tally"]
