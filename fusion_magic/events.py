"""Engine events: what a run reports while it happens. The view and the tests subscribe to the same stream.

Listeners are plain callables. They are called on the engine's event-loop thread, in order, and
must be quick; an exception in a listener is swallowed so a broken view never breaks a run.

    def listener(event: EngineEvent) -> None:
        if isinstance(event, CallDelta):
            print(event.text, end="")
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import FusionResult, Response, Verdict

log = logging.getLogger("fusion_magic")


@dataclass(frozen=True)
class RunStarted:
    """A fused run is about to start its pool. ``labels`` are the tab names, in pool order."""

    prompt: str
    mode: str
    judge: str
    labels: tuple[str, ...]
    models: tuple[str, ...]


@dataclass(frozen=True)
class CallStarted:
    """A call started. ``label`` names the pool member (None for the judge)."""

    response: Response


@dataclass(frozen=True)
class CallDelta:
    """Text arrived for a call; ``response.text`` already includes it."""

    response: Response
    text: str


@dataclass(frozen=True)
class CallFinished:
    """A call ended (ok, failed, cancelled or late); ``response`` holds the final figures."""

    response: Response


@dataclass(frozen=True)
class JudgeStarted:
    """The pool is done (or quorum/deadline fired); the judge starts."""

    judge: str
    mode: str


@dataclass(frozen=True)
class VerdictReady:
    """The judge (or the vote) decided."""

    verdict: Verdict


@dataclass(frozen=True)
class RunFinished:
    """The fused result is complete (late members may still report CallFinished after this)."""

    result: FusionResult


EngineEvent = RunStarted | CallStarted | CallDelta | CallFinished | JudgeStarted | VerdictReady | RunFinished
Listener = Callable[[EngineEvent], None]


def emit(listeners: list[Listener] | tuple[Listener, ...], event: EngineEvent) -> None:
    """Deliver one event to every listener; a failing listener is logged, not raised."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # a view bug must not break the run
            log.exception("fusion_magic listener failed on %s", type(event).__name__)


class OffloadedListener:
    """Runs a slow listener (a view that renders Markdown and tables) on its own thread, in order, so
    the engine loop never waits for rendering: a judge starts the instant the pool is done.

        listener = OffloadedListener(view.handle)
        ... run with listeners=[listener] ...; listener.flush()  # the view now shows the final state
    """

    def __init__(self, listener: Listener) -> None:
        import queue
        import threading

        self._listener = listener
        self._queue: queue.Queue[EngineEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name="fusion_magic-view", daemon=True)
        self._thread.start()

    def __call__(self, event: EngineEvent) -> None:
        self._queue.put(event)

    def _drain(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is not None:
                    emit((self._listener,), event)
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event delivered so far was handled (at most ``timeout`` s)."""
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True
