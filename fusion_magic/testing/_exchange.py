"""One request/response on the ASGI side: its record in the log, paced writes, and the disconnect watch.

Family handlers answer through an :class:`Exchange`; they never touch the ASGI ``send`` themselves, so every
write sees a client that left or a server that is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._wire import dumps

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_KEEPALIVE_S = 1.0


@dataclass
class RecordedRequest:
    """One request the emulator received, as it saw it (secrets redacted) and how it answered.

    ``status`` is None until the response starts (it stays None for a "hang"); ``disconnected``
    means the client went away before the response was complete.
    """

    family: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    model: str | None
    status: int | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    disconnected: bool = False
    fault: str | None = None


class ConnectionCut(httpx.RemoteProtocolError):
    """Raised inside the app to drop the connection mid-response (a scripted "cut", or stop()).

    uvicorn answers an exception after the response started by closing the socket, which is exactly
    the incomplete chunked body we want. Behind ASGITransport the exception itself reaches the
    client, and being an ``httpx.RemoteProtocolError`` it looks like the socket case to a provider.
    """

    def __init__(self, message: str = "emulator cut the connection") -> None:
        super().__init__(message)


class ClientGone(Exception):
    """The client disconnected (or the server is stopping): stop writing."""


class _QuietCuts(logging.Filter):
    # A scripted cut is not a server bug; keep uvicorn from printing a traceback for it.
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionCut)


QUIET_CUTS = _QuietCuts()


class Exchange:
    """One request/response: writes, pacing, and the disconnect watch.

        await ex.json(200, {"ok": True})                 # a whole JSON answer
        await ex.start(200, sse_headers()); await ex.write(event); await ex.finish()

    Invariant: ``gone`` is set when the client disconnects (``record.disconnected`` becomes True) or
    when the server is stopping; every wait and write checks it, so no handler outlives either.
    """

    def __init__(self, record: RecordedRequest, receive: Receive, send: Send, changed: Callable[[], None]) -> None:
        self.record = record
        self._receive = receive
        self._send = send
        # Wakes Emulator.wait_for whenever the record changes.
        self._changed = changed
        self.gone = asyncio.Event()
        self.finished = False
        # Write every event in two TCP segments (ModelScript.split_events).
        self.split = False
        self._watcher: asyncio.Task[None] | None = None

    def watch(self) -> None:
        """Start watching for the client's disconnect (the request body has been read by then)."""
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                # After our last write the server reports "disconnect" too; that one is no news.
                if not self.finished:
                    self.record.disconnected = True
                    self._changed()
                self.gone.set()
                return

    async def close(self) -> None:
        """Stop the disconnect watch."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def _check(self) -> None:
        if self.gone.is_set():
            raise ClientGone

    async def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """Send the status line and headers."""
        self._check()
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.record.status = status
        self._changed()
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def write(self, data: bytes) -> None:
        """Send part of the body."""
        self._check()
        if self.split and len(data) > 2:
            # Two writes with a pause between them land in separate TCP segments (asyncio sets
            # TCP_NODELAY), so the client's SSE parser must join a line across reads.
            half = len(data) // 2
            await self._send({"type": "http.response.body", "body": data[:half], "more_body": True})
            if not await self.pause(0.002):
                raise ClientGone
            data = data[half:]
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes = b"") -> None:
        """Send the last of the body and complete the response."""
        self._check()
        self.finished = True
        # Stamped before the last write so a client that has the whole response also sees `ended`.
        self.record.ended = time.monotonic()
        self._changed()
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def json(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        """A whole JSON response with Content-Length."""
        data = dumps(body).encode()
        await self.start(status, [("content-type", "application/json"), ("content-length", str(len(data))), *headers])
        await self.finish(data)

    async def pause(self, seconds: float) -> bool:
        """Sleep, but wake at once if the client leaves; False means it left."""
        if seconds <= 0:
            return not self.gone.is_set()
        try:
            async with asyncio.timeout(seconds):  # no extra task per pause, unlike wait_for
                await self.gone.wait()
        except TimeoutError:
            return True
        return False

    async def pause_until(self, deadline: float, keepalive: bytes | None = None) -> None:
        """Sleep until ``deadline`` (a ``time.monotonic()``), writing ``keepalive`` about once a second."""
        while (delay := deadline - time.monotonic()) > 0:
            # OpenRouter sends its processing comment while a slow model thinks; so do we.
            step = min(delay, _KEEPALIVE_S) if keepalive else delay
            if not await self.pause(step):
                raise ClientGone
            if keepalive and deadline - time.monotonic() > 0:
                await self.write(keepalive)
        self._check()
