"""The one bridge from synchronous code (a magic, a script) to the async engine.

Design (option B of the notebook conventions): one daemon thread runs its own event loop for the
whole process; sync callers submit coroutines to it. Why not nest-asyncio2: patching asyncio is
process-wide and irreversible, and ipykernel no longer applies it by default. With a separate loop:
- the same code runs in a kernel (whose own loop is busy running the cell), in terminal IPython, in a
  plain script and under nbclient/nbval, with no patching;
- widgets update live while the cell blocks, because comm messages go out from the engine thread;
- a kernel interrupt lands in the waiting thread within one wait slice (0.1 s); we then cancel the
  run's task on the engine loop and wait (up to ``CANCEL_WAIT_S``) until every HTTP connection closed;
- ``background=True`` returns at once and the run keeps going on the engine loop, unaffected by later
  cells (a task on the kernel's own loop would starve while a later cell runs).

The engine loop owns one ``httpx.AsyncClient`` (connection pooling across cells); a client is never
used from another loop.

    runner = get_runner()
    result = runner.run(lambda client: engine_coroutine(client))
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx

from .errors import CallCancelled

T = TypeVar("T")
WAIT_SLICE_S = 0.1
CANCEL_WAIT_S = 2.0

# Long reads: a model may think for minutes before its first token; the per-call timeout in
# calls/call.py is the real limit.
HTTP_TIMEOUT = httpx.Timeout(connect=15.0, read=600.0, write=60.0, pool=60.0)
HTTP_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16)


def new_client() -> httpx.AsyncClient:
    """The HTTP client configuration every loop uses."""
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS, follow_redirects=False)


class Job:
    """A run submitted to the engine loop: wait for it, poll it, or cancel it from any thread.

        job = get_runner().submit(lambda client: coro(client))
        job.result(timeout=30)
    """

    def __init__(self, runner: Runner, task: asyncio.Task[Any], finished: threading.Event) -> None:
        self._runner = runner
        self._task = task
        self._finished = finished

    def done(self) -> bool:
        return self._finished.is_set()

    def cancel(self, wait: float = CANCEL_WAIT_S) -> bool:
        """Cancel the run; wait until its connections are closed (at most ``wait`` seconds)."""
        self._runner.loop.call_soon_threadsafe(self._task.cancel)
        return self._finished.wait(wait)

    def result(self, timeout: float | None = None) -> Any:
        """Block until done (interruptible), then return the value or raise the run's exception.

        A KeyboardInterrupt while waiting cancels the run, waits for it to unwind, and re-raises.
        """
        try:
            waited = 0.0
            while not self._finished.wait(WAIT_SLICE_S):
                waited += WAIT_SLICE_S
                if timeout is not None and waited >= timeout:
                    raise TimeoutError(f"the run did not finish within {timeout}s")
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self._task.cancelled():
            raise CallCancelled("the run was cancelled before it finished")
        exc = self._task.exception()
        if exc is not None:
            raise exc
        return self._task.result()


class Runner:
    """The engine loop thread and its HTTP client. One per process; see ``get_runner``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._client: httpx.AsyncClient | None = None
        self._thread = threading.Thread(target=self._main, name="fusion_magic-engine", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = new_client()
        return self._client

    def submit(self, make: Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]]) -> Job:
        """Start ``make(client)`` on the engine loop and return at once."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("already on the engine loop: await the async API (afuse, acomplete) instead")
        created: concurrent.futures.Future[asyncio.Task[T]] = concurrent.futures.Future()
        finished = threading.Event()

        def start() -> None:
            async def with_client() -> T:
                return await make(await self._get_client())

            task = self.loop.create_task(with_client())
            task.add_done_callback(lambda _t: finished.set())
            created.set_result(task)

        self.loop.call_soon_threadsafe(start)
        return Job(self, created.result(), finished)

    def run(self, make: Callable[[httpx.AsyncClient], Coroutine[Any, Any, T]]) -> T:
        """Run ``make(client)`` on the engine loop and block until it is done (interruptible)."""
        return self.submit(make).result()

    def cancel_all(self) -> None:
        """Cancel every run and every task on the engine loop (late members included)."""

        def cancel() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        self.loop.call_soon_threadsafe(cancel)


_runner: Runner | None = None
_lock = threading.Lock()


def get_runner() -> Runner:
    """The process-wide runner, started on first use."""
    global _runner
    with _lock:
        if _runner is None:
            _runner = Runner()
        return _runner
