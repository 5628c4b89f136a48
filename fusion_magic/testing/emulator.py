"""A loopback server that speaks every provider's wire protocol, with scripted latency and faults.

One raw ASGI app serves all families under one path prefix each, so the same object runs on a real
socket (uvicorn with the pure-Python h11 protocol, in a daemon thread with its own event loop) and
behind ``httpx.ASGITransport`` for fast unit tests. Bodies come from ``_wire``; this module decides
timing, faults and bookkeeping.
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
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx

from . import _wire
from .script import Fault, ModelScript, Reply

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")

# The origin clients see when the app is used behind httpx.ASGITransport, i.e. before start().
ASGI_URL = "http://emulator.test"

REDACTED = "<redacted>"
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})
_PARTIAL_FAULTS = frozenset({"error_chunk", "cut", "malformed"})
_KEEPALIVE_S = 1.0

_DEFAULT_OPENROUTER_MODELS = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "google/gemini-2.5-flash")
_DEFAULT_SENTENCES = (
    "The short version is that it depends on the details, and the details are worth checking.",
    "A careful answer weighs the evidence first and states its assumptions plainly.",
    "Most of the difficulty lies in the edge cases, so those deserve the most attention.",
    "The simplest explanation that fits the facts is usually the right place to start.",
)


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


class _ConnectionCut(httpx.RemoteProtocolError):
    """Raised inside the app to drop the connection mid-response (a scripted "cut", or stop()).

    uvicorn answers an exception after the response started by closing the socket, which is exactly
    the incomplete chunked body we want. Behind ASGITransport the exception itself reaches the
    client, and being an ``httpx.RemoteProtocolError`` it looks like the socket case to a provider.
    """

    def __init__(self, message: str = "emulator cut the connection") -> None:
        super().__init__(message)


class _ClientGone(Exception):
    """The client disconnected (or the server is stopping): stop writing."""


class _QuietCuts(logging.Filter):
    # A scripted cut is not a server bug; keep uvicorn from printing a traceback for it.
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _ConnectionCut)


_QUIET_CUTS = _QuietCuts()


@dataclass(frozen=True)
class _Route:
    family: str
    action: str  # "chat", "models", "health"
    model: str | None = None  # from the path (Gemini)
    gemini_stream: bool = False


def _route(method: str, path: str) -> _Route | int:
    """The route for a request, or the HTTP status (404/405) when there is none."""
    table: dict[str, tuple[str, str, str]] = {
        "/openrouter/api/v1/chat/completions": ("POST", "openrouter", "chat"),
        "/openrouter/api/v1/models": ("GET", "openrouter", "models"),
        "/openai/v1/chat/completions": ("POST", "openai", "chat"),
        "/openai/v1/models": ("GET", "openai", "models"),
        "/ollama/v1/chat/completions": ("POST", "ollama", "chat"),
        "/ollama/v1/models": ("GET", "ollama", "models"),
        "/anthropic/v1/messages": ("POST", "anthropic", "chat"),
        "/": ("GET", "emulator", "health"),
        "/health": ("GET", "emulator", "health"),
    }
    if path in table:
        want, family, action = table[path]
        return _Route(family, action) if method == want else 405
    prefix = "/gemini/v1beta/models/"
    if path.startswith(prefix):
        model, _, verb = path[len(prefix) :].rpartition(":")
        if model and verb in ("generateContent", "streamGenerateContent"):
            if method != "POST":
                return 405
            return _Route("gemini", "chat", model=model, gemini_stream=verb == "streamGenerateContent")
    return 404


def _family_of(path: str) -> str:
    head = path.strip("/").split("/", 1)[0]
    return head if head in _wire.FAMILIES else "unknown"


def default_reply(model: str, prompt: str) -> str:
    """The deterministic answer of an unscripted model: names the model, echoes the question."""
    gist = " ".join(prompt.split())
    if len(gist) > 60:
        gist = gist[:57].rstrip() + "..."
    sentence = _DEFAULT_SENTENCES[zlib.crc32(f"{model}\n{prompt}".encode()) % len(_DEFAULT_SENTENCES)]
    return f'Emulated answer from {model}: you asked "{gist}". {sentence}'


@dataclass
class _Plan:
    """What one chat request will get, decided up front under the lock."""

    turn: _wire.Turn
    wire: _wire.Wire
    script: ModelScript
    fault: Fault | None
    chunks: list[str]
    finish: str
    stream: bool
    headers: list[tuple[str, str]]


class _Exchange:
    """One request/response on the ASGI side: writes, pacing, and the disconnect watch.

    Invariant: ``gone`` is set when the client disconnects (``record.disconnected`` becomes True) or
    when the server is stopping; every wait and write checks it, so no handler outlives either.
    """

    def __init__(self, emu: Emulator, record: RecordedRequest, receive: Receive, send: Send) -> None:
        self.emu = emu
        self.record = record
        self._receive = receive
        self._send = send
        self.gone = asyncio.Event()
        self.finished = False
        self.split = False
        self._watcher: asyncio.Task[None] | None = None

    def watch(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                # After our last write the server reports "disconnect" too; that one is no news.
                if not self.finished:
                    self.record.disconnected = True
                    self.emu._changed()
                self.gone.set()
                return

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    def _check(self) -> None:
        if self.gone.is_set():
            raise _ClientGone

    async def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self._check()
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.record.status = status
        self.emu._changed()
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def write(self, data: bytes) -> None:
        self._check()
        if self.split and len(data) > 2:
            # Two writes with a pause between them land in separate TCP segments (asyncio sets
            # TCP_NODELAY), so the client's SSE parser must join a line across reads.
            half = len(data) // 2
            await self._send({"type": "http.response.body", "body": data[:half], "more_body": True})
            if not await self.pause(0.002):
                raise _ClientGone
            data = data[half:]
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, data: bytes = b"") -> None:
        self._check()
        self.finished = True
        # Stamped before the last write so a client that has the whole response also sees `ended`.
        self.record.ended = time.monotonic()
        self.emu._changed()
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def json(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = _wire.dumps(body).encode()
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
        while (delay := deadline - time.monotonic()) > 0:
            # OpenRouter sends its processing comment while a slow model thinks; so do we.
            step = min(delay, _KEEPALIVE_S) if keepalive else delay
            if not await self.pause(step):
                raise _ClientGone
            if keepalive and deadline - time.monotonic() > 0:
                await self.write(keepalive)
        self._check()


class Emulator:
    """Loopback emulator of the OpenRouter, OpenAI, Ollama, Anthropic and Gemini HTTP APIs.

        with Emulator() as emu:
            emu.script("gpt-4o", ModelScript(reply="Paris.")); os.environ.update(emu.env())

    Without ``start()`` the ASGI app still works behind ``httpx.ASGITransport(app=emu.app)`` at
    ``ASGI_URL``. Thread-safe: scripts and the request log may be used from any thread.
    """

    def __init__(self, port: int = 0, *, expected_keys: Mapping[str, str] | None = None) -> None:
        self.port = port
        # Per family ("openrouter", "openai", "ollama", "anthropic", "gemini"): the only key accepted.
        self.expected_keys: dict[str, str] = dict(expected_keys or {})
        self.app: Callable[[Scope, Receive, Send], Awaitable[None]] = self._asgi
        # Re-entrant so a wait_for predicate may itself read emu.requests.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._scripts: dict[str, ModelScript] = {}
        self._counts: dict[str, int] = {}
        self._answered: dict[str, int] = {}
        self._log: list[RecordedRequest] = []
        self._seq = itertools.count(1)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._stopping = threading.Event()
        self._inflight: set[tuple[asyncio.AbstractEventLoop, _Exchange]] = set()

    # ---- public surface -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` while running; ``ASGI_URL`` before ``start()``."""
        return f"http://127.0.0.1:{self.port}" if self.running else ASGI_URL

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def env(self) -> dict[str, str]:
        """Environment variables that point every provider client at this emulator."""
        url = self.url
        return {
            "OPENROUTER_BASE_URL": f"{url}/openrouter/api/v1",
            "OPENAI_BASE_URL": f"{url}/openai/v1",
            # Ollama's variable names the host; the client appends /v1 itself.
            "OLLAMA_HOST": f"{url}/ollama",
            "ANTHROPIC_BASE_URL": f"{url}/anthropic",
            "GEMINI_BASE_URL": f"{url}/gemini",
        }

    @staticmethod
    def test_keys() -> dict[str, str]:
        """Fake API keys, one per key variable; any non-empty key is accepted unless ``expected_keys``."""
        return {
            "OPENROUTER_API_KEY": "sk-or-test-emulator",
            "OPENAI_API_KEY": "sk-test-emulator",
            "ANTHROPIC_API_KEY": "sk-ant-test-emulator",
            "GEMINI_API_KEY": "AIza-test-emulator",
        }

    def script(self, model: str, script: ModelScript) -> None:
        """Script ``model`` (the name as sent on the wire, any family); replaces an earlier script."""
        with self._lock:
            self._scripts[model] = script

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
        """Forget scripts, per-model counters, expected keys and the request log."""
        with self._lock:
            self._scripts.clear()
            self._counts.clear()
            self._answered.clear()
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
        logging.getLogger("uvicorn.error").addFilter(_QUIET_CUTS)
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
        route = _route(method, path)
        model = route.model if isinstance(route, _Route) and route.model else None
        if model is None and isinstance(body, Mapping) and isinstance(body.get("model"), str):
            model = body["model"]
        record = RecordedRequest(
            family=route.family if isinstance(route, _Route) else _family_of(path),
            method=method,
            path=path,
            query={k: REDACTED if k == "key" else v for k, v in query.items()},
            headers={k: REDACTED if k in _SECRET_HEADERS else v for k, v in headers.items()},
            body=body,
            model=model,
        )
        with self._cond:
            self._log.append(record)
            self._cond.notify_all()

        ex = _Exchange(self, record, receive, send)
        loop = asyncio.get_running_loop()
        entry = (loop, ex)
        with self._lock:
            self._inflight.add(entry)
        if self._stopping.is_set() and loop is self._loop:
            ex.gone.set()
        ex.watch()
        try:
            await self._handle(ex, route, headers, query, raw_body, body)
        except _ClientGone:
            if not record.disconnected:
                # Not the client's doing: the server is stopping. Drop the connection.
                raise _ConnectionCut("emulator stopped") from None
        finally:
            with self._lock:
                self._inflight.discard(entry)
            await ex.close()
            if record.ended is None:
                record.ended = time.monotonic()
            self._changed()

    async def _handle(
        self,
        ex: _Exchange,
        route: _Route | int,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        raw_body: bytes,
        body: Any,
    ) -> None:
        if isinstance(route, int):
            what = "no such route" if route == 404 else "method not allowed"
            message = f"emulator: {what}: {ex.record.method} {ex.record.path}"
            await ex.json(route, {"error": {"code": route, "message": message}})
            return
        if route.action == "health":
            await ex.json(200, {"status": "ok", "emulator": "fusion_magic"})
            return
        family = route.family
        seq = self._next_id()
        request_id = f"req_emu{seq:06d}"

        if not (route.action == "models" and family != "openai"):
            rejected = self._check_auth(family, headers, query, request_id)
            if rejected is not None:
                await ex.json(*rejected)
                return
        if route.action == "models":
            await ex.json(200, self._models(family))
            return

        if not isinstance(body, Mapping):
            empty = "Request body is not valid JSON." if raw_body else "Request body is empty."
            await ex.json(400, _wire.error_body(family, 400, empty, request_id=request_id))
            return
        invalid = _wire.validate(family, body)
        if invalid is not None:
            await ex.json(400, _wire.error_body(family, 400, invalid, request_id=request_id))
            return

        model = route.model or str(body["model"])
        try:
            plan = self._plan(family, model, body, route, query, seq)
        except Exception as exc:  # a scripted reply callable failed: say so in the family's own words
            message = f"emulator: reply callable for {model!r} raised {exc!r}"
            await ex.json(500, _wire.error_body(family, 500, message, request_id=request_id))
            return
        ex.record.fault = plan.fault.kind if plan.fault else None
        ex.split = plan.script.split_events
        await self._answer(ex, plan)

    def _check_auth(
        self, family: str, headers: Mapping[str, str], query: Mapping[str, str], request_id: str
    ) -> tuple[int, Any, list[tuple[str, str]]] | None:
        if family == "anthropic":
            key = headers.get("x-api-key", "")
        elif family == "gemini":
            key = headers.get("x-goog-api-key") or query.get("key", "")
        else:
            scheme, _, key = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                key = ""
        key = key.strip()
        expected = self.expected_keys.get(family)
        if not key or (expected is not None and key != expected):
            status, error = _wire.auth_error(family, bool(key), request_id=request_id)
            return status, error, self._id_headers(family, request_id)
        if family == "anthropic" and not headers.get("anthropic-version"):
            error = _wire.error_body("anthropic", 400, "anthropic-version: header is required", request_id=request_id)
            return 400, error, self._id_headers(family, request_id)
        return None

    def _models(self, family: str) -> dict[str, Any]:
        with self._lock:
            scripted = list(self._scripts)
        if family == "openrouter":
            names = [m for m in scripted if "/" in m]
            names += [m for m in _DEFAULT_OPENROUTER_MODELS if m not in names]
            return {
                "data": [_wire.openrouter_model(m) for m in names],
                "total_count": len(names),
                "links": {"next": None},
            }
        default = "llama3.2" if family == "ollama" else "gpt-4o-mini"
        names = [m for m in scripted if "/" not in m] or [default]
        owner = "library" if family == "ollama" else "openai"
        return {"object": "list", "data": [_wire.openai_model(m, owner) for m in names]}

    @staticmethod
    def _id_headers(family: str, request_id: str) -> list[tuple[str, str]]:
        if family in ("openai", "openrouter"):
            return [("x-request-id", request_id)]
        if family == "anthropic":
            return [("request-id", request_id)]
        return []

    def _plan(
        self, family: str, model: str, body: Mapping[str, Any], route: _Route, query: Mapping[str, str], seq: int
    ) -> _Plan:
        with self._lock:
            script = self._scripts.get(model)
            scripted = script is not None
            script = script or ModelScript()
            nth = self._counts.get(model, 0)
            self._counts[model] = nth + 1
            fault = next((f for f in script.faults
                          if nth >= f.skip and (f.times is None or nth < f.skip + f.times)), None)
            # Replies advance only on answers without a fault, so "fail twice, then answer" scripts
            # still start from the first reply.
            answered = self._answered.get(model, 0)
            if fault is None:
                self._answered[model] = answered + 1

        all_text, last_user = _wire.prompt_texts(family, body)
        reply: Reply
        if not scripted:
            reply = default_reply(model, last_user)
        elif script.replies:
            reply = script.replies[min(answered, len(script.replies) - 1)]
        else:
            reply = script.reply
        text = reply(body) if callable(reply) else reply

        size = max(1, script.chunk_chars)
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        finish = script.finish_reason or _wire.STOP_REASON[family]
        cap = _wire.max_output_tokens(family, body)
        if cap is not None and len(chunks) > cap:
            chunks = chunks[: max(cap, 0)]
            finish = _wire.LENGTH_REASON[family]
        if fault is not None and fault.kind == "blocked" and family in ("anthropic", "openai", "ollama"):
            # A refusal is a normal-looking answer that ends early with the refusal reason.
            chunks = chunks[: fault.after_chunks]
            finish = "refusal" if family == "anthropic" else "content_filter"

        input_tokens = script.input_tokens if script.input_tokens is not None else len(all_text) // 4 + 1
        output_tokens = script.output_tokens if script.output_tokens is not None else len(chunks)
        cost = script.cost_usd if script.cost_usd is not None else round((input_tokens + output_tokens) * 1e-6, 12)

        stream = route.gemini_stream if family == "gemini" else body.get("stream") is True
        ids = {
            "openrouter": f"gen-emu-{seq:06d}",
            "openai": f"chatcmpl-emu{seq:06d}",
            "ollama": f"chatcmpl-emu{seq:06d}",
            "anthropic": f"msg_emu{seq:06d}",
            "gemini": f"emu{seq:06d}",
        }
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True and script.stream_usage
        turn = _wire.Turn(
            family=family,
            model=model,
            served_model=script.served_model or model,
            response_id=ids[family],
            created=int(time.time()),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            nl="\r\n" if script.crlf else "\n",
            include_usage=include_usage,
            usage_choices_empty=script.usage_choices_empty,
        )
        request_id = f"req_emu{seq:06d}"
        headers = {
            "openrouter": [("x-generation-id", turn.response_id)],
            "openai": [("x-request-id", request_id)],
            "ollama": [],
            "anthropic": [("request-id", request_id)],
            "gemini": [],
        }[family]
        if family == "gemini" and stream and query.get("alt") != "sse":
            stream = False  # without alt=sse Gemini streams a JSON array; see _answer_json
        return _Plan(turn, _wire.wire_for(family), script, fault, chunks, finish, stream, headers)

    # ---- answering ----------------------------------------------------------------------------------

    async def _answer(self, ex: _Exchange, plan: _Plan) -> None:
        fault, turn = plan.fault, plan.turn
        t0 = ex.record.started
        if fault is not None and fault.kind == "hang":
            await ex.gone.wait()
            raise _ClientGone
        if fault is not None and fault.kind == "status":
            await ex.pause_until(t0 + plan.script.ttft_s)
            await self._send_status_fault(ex, plan, fault)
            return
        if fault is not None and fault.kind == "blocked" and turn.family == "openrouter":
            await ex.pause_until(t0 + plan.script.ttft_s)
            _, last_user = _wire.prompt_texts("openrouter", ex.record.body or {})
            await ex.json(403, _wire.openrouter_moderation(turn.model, fault.message, last_user), plan.headers)
            return
        if fault is not None and fault.kind == "blocked" and turn.family == "gemini":
            await ex.pause_until(t0 + plan.script.ttft_s)
            blocked = _wire.GeminiWire().blocked(turn)
            if plan.stream:
                await ex.start(200, [*_sse_headers(), *plan.headers])
                await ex.finish(_wire.sse(_wire.dumps(blocked), nl=turn.nl))
            else:
                await ex.json(200, [blocked] if ex.record.path.endswith("streamGenerateContent") else blocked)
            return
        if plan.stream:
            await self._answer_stream(ex, plan)
        else:
            await self._answer_json(ex, plan)

    def _slot(self, plan: _Plan, t0: float, index: int) -> float:
        """When text chunk ``index`` is due: the first after ttft, then one per 1/tokens_per_s."""
        rate = plan.script.tokens_per_s
        return t0 + plan.script.ttft_s + (index / rate if rate else 0.0)

    async def _answer_stream(self, ex: _Exchange, plan: _Plan) -> None:
        wire, turn, fault, chunks = plan.wire, plan.turn, plan.fault, plan.chunks
        t0 = ex.record.started
        stop_at = fault.after_chunks if fault is not None and fault.kind in _PARTIAL_FAULTS else None
        count = len(chunks) if stop_at is None else min(max(stop_at, 0), len(chunks))
        keepalive = wire.keepalive(turn)

        await ex.start(200, [*_sse_headers(), *plan.headers])
        for piece in wire.preamble(turn):
            await ex.write(piece)
        reason_sent = False
        for i in range(count):
            await ex.pause_until(self._slot(plan, t0, i), keepalive)
            final = plan.finish if stop_at is None and i == len(chunks) - 1 else None
            reason_sent = final is not None
            for piece in wire.text(turn, i, chunks[i], final):
                await ex.write(piece)
        if fault is not None and stop_at is not None:
            await ex.pause_until(self._slot(plan, t0, count), keepalive)
            if fault.kind == "cut":
                raise _ConnectionCut
            if fault.kind == "error_chunk":
                message = fault.message or _wire.default_message(fault.status)
                for piece in wire.stream_error(turn, fault.status, message):
                    await ex.write(piece)
                await ex.finish()
                return
            await ex.write(wire.malformed(turn))
        for piece in wire.end(turn, plan.finish, reason_sent):
            await ex.write(piece)
        await ex.finish()

    async def _answer_json(self, ex: _Exchange, plan: _Plan) -> None:
        wire, turn, fault, chunks = plan.wire, plan.turn, plan.fault, plan.chunks
        t0 = ex.record.started
        # The whole answer is due when its last chunk would have been streamed.
        await ex.pause_until(self._slot(plan, t0, max(len(chunks) - 1, 0)))
        text = "".join(chunks)
        if isinstance(wire, _wire.GeminiWire) and ex.record.path.endswith("streamGenerateContent"):
            # streamGenerateContent without alt=sse: a JSON array of the responses the SSE form sends.
            last = len(chunks) - 1
            body: Any = [
                wire.response(turn, piece, plan.finish if i == last else None) for i, piece in enumerate(chunks)
            ]
            body = body or [wire.response(turn, "", plan.finish)]
        else:
            body = wire.json_body(turn, text, plan.finish)
        if fault is not None and fault.kind == "error_chunk":
            if turn.family == "openrouter":
                # OpenRouter reports errors that happen after routing in a 200 body.
                message = fault.message or _wire.default_message(fault.status)
                error = {
                    "code": fault.status,
                    "message": message,
                    "metadata": {"error_type": _wire.openrouter_error_type(fault.status)},
                }
                await ex.json(200, {"id": turn.response_id, "error": error}, plan.headers)
            else:
                await self._send_status_fault(ex, plan, fault)
            return
        data = _wire.dumps(body).encode()
        if fault is not None and fault.kind == "malformed":
            data = data[: max(len(data) // 2, 1)]
            await ex.start(
                200, [("content-type", "application/json"), ("content-length", str(len(data))), *plan.headers]
            )
            await ex.finish(data)
            return
        await ex.start(200, [("content-type", "application/json"), ("content-length", str(len(data))), *plan.headers])
        if fault is not None and fault.kind == "cut":
            # Content-Length promises the whole body; half of it then a close is an incomplete read.
            await ex.write(data[: len(data) // 2])
            raise _ConnectionCut
        await ex.finish(data)

    async def _send_status_fault(self, ex: _Exchange, plan: _Plan, fault: Fault) -> None:
        family, status = plan.turn.family, fault.status
        request_id = dict(plan.headers).get("request-id", dict(plan.headers).get("x-request-id", ""))
        body = _wire.error_body(
            family,
            status,
            fault.message,
            request_id=request_id,
            retry_after=fault.retry_after,
            limit_source=fault.limit_source,
            reason=fault.reason,
        )
        headers = list(plan.headers)
        # Gemini puts its hint in the body (RetryInfo.retryDelay) and sends no rate-limit headers.
        if fault.retry_after is not None and family != "gemini":
            headers.append(("retry-after", f"{fault.retry_after:g}"))
        if family == "openrouter" and status == 429:
            reset_ms = int((time.time() + 60) * 1000)
            headers += [
                ("x-ratelimit-limit", "20"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", str(reset_ms)),
            ]
        await ex.json(status, body, headers)


def _sse_headers() -> list[tuple[str, str]]:
    return [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]


__all__ = ["ASGI_URL", "Emulator", "Fault", "ModelScript", "RecordedRequest", "default_reply"]
