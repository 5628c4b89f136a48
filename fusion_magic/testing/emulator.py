"""A loopback server that speaks every registered provider family's wire protocol, with scripted faults.

One raw ASGI app serves every family in ``registry``, so the same object runs on a real socket (uvicorn
with the pure-Python h11 protocol, in a daemon thread with its own event loop) and behind
``httpx.ASGITransport`` for fast unit tests. This module is the core: it reads and records requests,
routes them through the registry, and owns lifecycle, scripts and the request log; what each family
says lives in ``families/``, the shared chat pacing and faults in ``chat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from ._exchange import QUIET_CUTS, ClientGone, ConnectionCut, Exchange, Receive, RecordedRequest, Send
from .batch import BatchBook
from .chat import default_reply
from .registry import Match, Request, registry
from .script import Fault, ModelScript, ScriptBook
from .video_script import VideoBook, VideoScript

Scope = MutableMapping[str, Any]
T = TypeVar("T")

# The origin clients see when the app is used behind httpx.ASGITransport, i.e. before start().
ASGI_URL = "http://emulator.test"

REDACTED = "<redacted>"
_HEALTH_PATHS = frozenset({"/", "/health"})


class Emulator:
    """Loopback emulator of every registered provider API (OpenRouter, OpenAI, Ollama, Anthropic, Gemini).

        with Emulator() as emu:
            emu.script("gpt-4o", ModelScript(reply="Paris.")); os.environ.update(emu.env())

    The batch APIs (OpenAI, Anthropic, Gemini, OpenRouter) serve under the chat families' base URLs; their
    batches, polls and scripted outcomes are ``emu.batches`` (testing/batch.py).

    Without ``start()`` the ASGI app still works behind ``httpx.ASGITransport(app=emu.app)`` at
    ``ASGI_URL``. Thread-safe: scripts and the request log may be used from any thread.
    """

    def __init__(self, port: int = 0, *, expected_keys: Mapping[str, str] | None = None) -> None:
        self.port = port
        # Per family name ("openrouter", "openai", ...): the only key accepted.
        self.expected_keys: dict[str, str] = dict(expected_keys or {})
        self.app: Callable[[Scope, Receive, Send], Awaitable[None]] = self._asgi
        # Re-entrant so a wait_for predicate may itself read emu.requests.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._scripts = ScriptBook()
        self._video = VideoBook()
        self._log: list[RecordedRequest] = []
        self._seq = itertools.count(1)
        self._batches = BatchBook(self._next_id)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._inflight: set[tuple[asyncio.AbstractEventLoop, Exchange]] = set()

    # ---- public surface -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` while running; ``ASGI_URL`` before ``start()``."""
        return f"http://127.0.0.1:{self.port}" if self.running else ASGI_URL

    @property
    def running(self) -> bool:
        """Whether the socket server is up."""
        return self._thread is not None and self._thread.is_alive()

    def env(self) -> dict[str, str]:
        """Environment variables that point every provider client at this emulator."""
        url = self.url
        return {name: url + path for family in registry.families() for name, path in family.env.items()}

    @staticmethod
    def test_keys() -> dict[str, str]:
        """Fake API keys, one per key variable; any non-empty key is accepted unless ``expected_keys``."""
        return {name: key for family in registry.families() for name, key in family.test_keys.items()}

    def script(self, model: str, script: ModelScript | VideoScript) -> None:
        """Script ``model`` (the name as sent on the wire, any family); replaces an earlier script.
        A ``VideoScript`` scripts a video model's jobs (testing/video.py)."""
        if isinstance(script, VideoScript):
            self._video.set(model, script)
        else:
            self._scripts.set(model, script)

    def video_jobs(self, model: str) -> int:
        """How many jobs were submitted for video model ``model`` (each is paid at a real provider)."""
        return self._video.submissions(model)

    @property
    def video(self) -> VideoBook:
        """Video scripts, jobs and stored clips (testing/video.py)."""
        return self._video

    @property
    def batches(self) -> BatchBook:
        """The batch APIs' batches, polls, scripted outcomes and counters (testing/batch.py)."""
        return self._batches

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the request log, oldest first (records update in place as answers finish)."""
        with self._lock:
            return list(self._log)

    def wait_for(self, predicate: Callable[[list[RecordedRequest]], T], timeout: float = 5.0) -> T:
        """Block until ``predicate(requests)`` is truthy and return its value; TimeoutError otherwise.

        Only for the socket server: behind ASGITransport the app runs on the caller's own loop.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := predicate(list(self._log))):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"emulator: condition not met within {timeout}s")
                self._cond.wait(left)
            return result

    def reset(self) -> None:
        """Forget scripts, per-model counters, batches, expected keys and the request log."""
        with self._lock:
            self._scripts.clear()
            self._video.clear()
            self._batches.clear()
            self._log.clear()
            self.expected_keys.clear()

    # ---- server lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Emulator:
        """Serve on 127.0.0.1 in a daemon thread; returns once the socket accepts connections."""
        import uvicorn

        if self.running:
            return self
        # Binding here, not in uvicorn, makes port 0 race-free: the port is known before the thread.
        # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
        # is IPPROTO_TCP, and without it Nagle + delayed ACK add ~40 ms to every keep-alive response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        logging.getLogger("uvicorn.error").addFilter(QUIET_CUTS)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            http="h11",  # pure Python: works on every platform, no optional C extension needed
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_level="warning",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server, self._error = server, None
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name=f"fusion-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator failed to start on 127.0.0.1:{self.port}") from self._error
            time.sleep(0.005)
        return self

    def _serve(self, server: Any, sock: socket.socket) -> None:
        # asyncio.Runner cancels leftover tasks and closes the loop, so nothing leaks into the next test.
        try:
            with asyncio.Runner() as runner:
                self._loop = runner.get_loop()
                runner.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced by start(); a daemon thread has nobody else to tell
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving; open streams and hanging requests are cut so this returns promptly."""
        thread, server, loop = self._thread, self._server, self._loop
        if thread is None or server is None:
            return
        self._stopping.set()
        with self._lock:
            doomed = [ex for owner, ex in self._inflight if owner is loop]
        for ex in doomed:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                loop.call_soon_threadsafe(ex.gone.set)  # type: ignore[union-attr]  # doomed is empty without a loop
        server.should_exit = True
        thread.join(timeout=5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        self._thread = self._server = self._loop = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- bookkeeping ------------------------------------------------------------------------------

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next_id(self) -> int:
        with self._lock:
            return next(self._seq)

    def _expected_key(self, name: str, key_family: str | None) -> str | None:
        keys = self.expected_keys
        return keys[name] if name in keys else keys.get(key_family) if key_family else None

    # ---- the ASGI app -------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # uvicorn runs with lifespan off; answer politely if another server sends it anyway.
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw_body = b"".join(chunks)

        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = None
        # None: the emulator's own health check, answered before any family's routes.
        route: Match | int | None = (
            (None if method == "GET" else 405) if path in _HEALTH_PATHS else registry.match(method, path)
        )
        if isinstance(route, Match):
            family = route.family.name
            model = route.params.get("model")
        else:
            family, model = ("emulator" if route is None else registry.family_of(path)), None
        if model is None and isinstance(body, Mapping) and isinstance(body.get("model"), str):
            model = body["model"]
        secret_headers, secret_query = registry.secret_headers, registry.secret_query
        record = RecordedRequest(
            family=family,
            method=method,
            path=path,
            query={k: REDACTED if k in secret_query else v for k, v in query.items()},
            headers={k: REDACTED if k in secret_headers else v for k, v in headers.items()},
            body=body,
            model=model,
        )
        with self._cond:
            self._log.append(record)
            self._cond.notify_all()

        ex = Exchange(record, receive, send, self._changed)
        loop = asyncio.get_running_loop()
        entry = (loop, ex)
        with self._lock:
            self._inflight.add(entry)
        if self._stopping.is_set() and loop is self._loop:
            ex.gone.set()
        ex.watch()
        try:
            await self._handle(ex, route, headers, query, raw_body, body)
        except ClientGone:
            if not record.disconnected:
                # Not the client's doing: the server is stopping. Drop the connection.
                raise ConnectionCut("emulator stopped") from None
        finally:
            with self._lock:
                self._inflight.discard(entry)
            await ex.close()
            if record.ended is None:
                record.ended = time.monotonic()
            self._changed()

    async def _handle(
        self,
        ex: Exchange,
        route: Match | int | None,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        raw_body: bytes,
        body: Any,
    ) -> None:
        if route is None:
            await ex.json(200, {"status": "ok", "emulator": "fusion_magic"})
            return
        if isinstance(route, int):
            what = "no such route" if route == 404 else "method not allowed"
            message = f"emulator: {what}: {ex.record.method} {ex.record.path}"
            await ex.json(route, {"error": {"code": route, "message": message}})
            return
        family = route.family
        req = Request(
            family=family,
            exchange=ex,
            method=ex.record.method,
            path=ex.record.path,
            headers=headers,
            query=query,
            raw_body=raw_body,
            body=body,
            params=route.params,
            seq=self._next_id(),
            scripts=self._scripts,
            expected_key=self._expected_key(family.name, family.key_family),
            video=self._video,
            batches=self._batches,
        )
        if route.route.auth and not await family.authorize(req):
            return
        await route.route.handler(req)


__all__ = ["ASGI_URL", "Emulator", "Fault", "ModelScript", "RecordedRequest", "VideoScript", "default_reply"]
