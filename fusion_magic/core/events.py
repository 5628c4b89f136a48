"""Engine events: what a run reports while it happens. The view and the tests subscribe to the same stream.

An open base: ``EngineEvent``. The call events here are shared by every job kind; each job kind declares
its own beside its code (a fused run's in ``fusion/events.py``), so a new kind adds events without editing this.

Listeners are plain callables. They are called on the engine's event-loop thread, in order, and
must be quick; an exception in a listener is swallowed so a broken view never breaks a run.

    def listener(event: EngineEvent) -> None:
        if isinstance(event, CallDelta):
            print(event.text, end="")
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .record import Response

log = logging.getLogger("fusion_magic")


class EngineEvent:
    """Base of every event a run emits; listeners receive these and pick what they know by ``isinstance``."""

    __slots__ = ()


@dataclass(frozen=True)
class CallStarted(EngineEvent):
    """A call started. ``label`` names the pool member (None for the judge)."""

    response: Response


@dataclass(frozen=True)
class CallDelta(EngineEvent):
    """Text arrived for a call; ``response.text`` already includes it."""

    response: Response
    text: str


@dataclass(frozen=True)
class CallFinished(EngineEvent):
    """A call ended (ok, failed, cancelled or late); ``response`` holds the final figures. ``reused``: a call
    of an earlier run shown again (a rejudge shows the answers it judges), not a call this run made."""

    response: Response
    reused: bool = False


Listener = Callable[[EngineEvent], None]


def emit(listeners: list[Listener] | tuple[Listener, ...], event: EngineEvent) -> None:
    """Deliver one event to every listener; a failing listener is logged, not raised."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # a view bug must not break the run
            log.exception("fusion_magic listener failed on %s", type(event).__name__)


# One worker thread for every OffloadedListener in the process: a %%fuse run makes a new listener each
# time, and a thread per listener (looping forever) leaked one thread per run.
_work_queue: queue.SimpleQueue[tuple[OffloadedListener | None, EngineEvent | Callable[[], None]]] = (
    queue.SimpleQueue())
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


# Once caught up, the worker rests up to _PAUSE_S before it takes the next delta, so text that streams in is
# handled in batches: a wake-up per delta (and the engine loop losing the GIL to it each time) cost about as much
# as the whole widget view. Any other event, or a flush, ends the rest at once: a judge's start and the end of a
# cell are never delayed.
_PAUSE_S = 0.02
_wake = threading.Event()


def _work() -> None:
    while True:
        listener, event = _work_queue.get()
        if listener is not None:
            listener._handle(event)  # type: ignore[arg-type]
        else:
            _tidy(event)  # type: ignore[arg-type]
        if _work_queue.empty() and not _wake.is_set():
            _wake.wait(_PAUSE_S)
        _wake.clear()


def _tidy(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # tidying up must not stop the worker
        log.exception("fusion_magic: tidying up a view failed")


def after_events(work: Callable[[], None]) -> None:
    """Run ``work`` on the view worker once the events queued so far were handled, without holding up a
    ``flush``: tidying up (closing a finished view's widgets) that no cell needs to wait for."""
    _ensure_worker()
    _work_queue.put((None, work))


def _ensure_worker() -> None:
    """Start the shared worker on first use (and again if it ever died, e.g. in a forked child)."""
    global _worker
    if _worker is not None and _worker.is_alive():
        return
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="fusion_magic-view", daemon=True)
            _worker.start()


class OffloadedListener:
    """Runs a slow listener (a view that renders Markdown and tables) off the engine loop, in order, so
    the engine loop never waits for rendering: a judge starts the instant the pool is done.

    All instances share one process-wide worker thread fed by one FIFO queue, so each listener sees
    its events in the order they were delivered, and creating listeners costs no thread.

        listener = OffloadedListener(view.handle)
        ... run with listeners=[listener] ...; listener.flush()  # the view now shows the final state

    Made without a listener, it holds what arrives until ``attach``: a magic starts the run first and builds
    its widgets while the first requests are in flight, instead of before them.

        listener = OffloadedListener(); job = start(plan, [listener]); listener.attach(build_view().handle)
    """

    def __init__(self, listener: Listener | None = None) -> None:
        self._listener = listener
        self._held: list[EngineEvent] = []  # delivered before attach, in order
        self._pending = 0  # events delivered to this listener and not yet handled
        self._delivered_at: float | None = None  # when the last event was delivered (time.monotonic)
        self._idle = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        _ensure_worker()
        with self._idle:
            self._pending += 1
            self._delivered_at = time.monotonic()
            if self._listener is None:
                self._held.append(event)
            else:
                # Queued under the lock so an event delivered while attach() replays the held ones lands
                # after them.
                _work_queue.put((self, event))
        if not isinstance(event, CallDelta):
            _wake.set()

    def wait_quiet(self, quiet_s: float, limit_s: float) -> None:
        """Block until an event came and then none for ``quiet_s`` seconds, or ``limit_s`` passed: a run that
        just started has announced its calls and is sending them."""
        deadline = time.monotonic() + limit_s
        with self._idle:
            while (now := time.monotonic()) < deadline:
                last = self._delivered_at
                if last is not None and now - last >= quiet_s:
                    return
                self._idle.wait(min(quiet_s, deadline - now))

    def attach(self, listener: Listener) -> None:
        """Hand every event held so far, then each later one, to ``listener`` (in delivery order)."""
        _ensure_worker()
        with self._idle:
            self._listener = listener
            held, self._held = self._held, []
            for event in held:
                _work_queue.put((self, event))
        _wake.set()

    def _handle(self, event: EngineEvent) -> None:
        try:
            if self._listener is not None:  # always set: events are queued only once it is
                emit((self._listener,), event)  # logs and swallows the listener's exceptions
        finally:
            with self._idle:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event delivered so far to this listener was handled (at most ``timeout`` s).
        Returns False on timeout."""
        if threading.current_thread() is _worker:
            # Called from a listener: waiting would block the very thread that has to do the work.
            return self._pending == 0
        _wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)
