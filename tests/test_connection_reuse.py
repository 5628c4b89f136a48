"""Streamed calls give their connection back to the client's pool, so the next call skips the TCP (and, with a
real provider, TLS) handshake; a server that keeps a stream open after its terminator cannot hold the call.

Connections are counted where they are made: a TCP relay in front of the loopback emulator sees every
connection a client opens and every one it closes. The servers that misbehave after the terminator are
raw asyncio servers written here, speaking just enough HTTP/1.1 and SSE for one answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import aclosing
from typing import Any, cast

import httpx
import pytest

from fusion_magic.core.errors import ProviderError
from fusion_magic.providers.base import ChatRequest, Finished, Message, ProviderEvent, TextDelta
from fusion_magic.providers.chat import _sse
from fusion_magic.providers.registry import BUILTIN, make_provider, resolve_endpoint
from fusion_magic.testing import Emulator, Fault, ModelScript

# provider name -> a model name as that provider spells it: every streamed protocol, and each OpenAI dialect.
MODELS = {
    "openrouter": "openai/gpt-4o-mini",
    "openai": "gpt-4o-mini",
    "ollama": "llama3.2",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
BASE_ENV = {"openrouter": "OPENROUTER_BASE_URL", "openai": "OPENAI_BASE_URL", "ollama": "OLLAMA_HOST",
            "anthropic": "ANTHROPIC_BASE_URL", "gemini": "GEMINI_BASE_URL"}
REPLY = "Paris is the capital of France."
# Only a hang guard: a call that outlives it is stuck, whatever the machine's speed.
STUCK_S = 30.0


class Relay:
    """A TCP relay to ``port`` on loopback that counts the connections clients open through it and close.

        async with Relay(emu.port) as relay: ...  # point the client at relay.port
    """

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self.opened = 0
        self.closed = 0
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # The client closed its pooled connections on its way out; their relays end with them.
        await self.wait_closed(self.opened)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        # The client's side ending (its close) ends the relayed connection; which side closed first does not
        # matter to the count.
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self.closed += 1
        self._changed.set()

    async def wait_closed(self, count: int) -> None:
        """Until ``count`` relayed connections have closed (a hang guard, never a measure of speed)."""
        async with asyncio.timeout(STUCK_S):
            while self.closed < count:
                self._changed.clear()
                await self._changed.wait()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def request(name: str) -> ChatRequest:
    return ChatRequest(model=MODELS[name], messages=(Message("user", "What is the capital of France?"),))


async def collect(name: str, environ: dict[str, str], client: httpx.AsyncClient,
                  *, stop_after_text: bool = False) -> list[ProviderEvent]:
    """One streamed call's events; ``stop_after_text`` closes the stream at the first text, as a cancel does."""
    spec = BUILTIN[name]
    provider = make_provider(spec, resolve_endpoint(spec, environ=environ), client)
    events: list[ProviderEvent] = []
    async with aclosing(cast(AsyncGenerator[ProviderEvent, None], provider.stream(request(name)))) as stream:
        async for event in stream:
            events.append(event)
            if stop_after_text and isinstance(event, TextDelta):
                break
    return events


def text(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def through(relay: Relay, emu: Emulator) -> dict[str, str]:
    """The emulator's environment with every base URL pointing at ``relay``."""
    own = f"127.0.0.1:{emu.port}"
    return {k: v.replace(own, f"127.0.0.1:{relay.port}") for k, v in (emu.env() | emu.test_keys()).items()}


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


# ---- reuse -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_sequential_calls_reuse_one_connection(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=6))

    async def main() -> None:
        async with Relay(emulator.port) as relay, httpx.AsyncClient() as client:
            environ = through(relay, emulator)
            for _ in range(3):
                events = await collect(name, environ, client)
                assert text(events) == REPLY and isinstance(events[-1], Finished)
            # Three answers over the one connection the first call opened: it went back to the pool each time.
            assert relay.opened == 1 and relay.closed == 0
        assert len(emulator.requests) == 3

    run(main)


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini"])
def test_a_stream_cut_short_by_its_caller_or_an_error_closes_its_connection(emulator: Emulator, name: str) -> None:
    # Its body is unread, so the connection cannot carry another request: it is closed, never pooled or leaked.
    model = MODELS[name]
    emulator.script(model, ModelScript(reply=REPLY, chunk_chars=4,
                                       faults=[Fault("error_chunk", status=500, after_chunks=2, skip=1, times=1)]))

    async def main() -> None:
        async with Relay(emulator.port) as relay, httpx.AsyncClient() as client:
            environ = through(relay, emulator)
            stopped = await collect(name, environ, client, stop_after_text=True)
            assert text(stopped) == REPLY[:4]
            await relay.wait_closed(1)
            with pytest.raises(ProviderError):
                await collect(name, environ, client)
            await relay.wait_closed(2)
            events = await collect(name, environ, client)
            assert text(events) == REPLY
            assert (relay.opened, relay.closed) == (3, 2)

    run(main)


# ---- servers that keep the stream going after the terminator ------------------------------------------


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse_event(payload: dict[str, Any], name: str | None = None) -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(payload)}\n\n".encode()


# What each protocol's server sends up to and including its terminator.
ANSWERS: dict[str, list[bytes]] = {
    "openai": [
        _sse_event({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        _sse_event({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        b"data: [DONE]\n\n",
    ],
    "anthropic": [
        _sse_event({"type": "message_start", "message": {"id": "m1", "model": "m", "usage": {"input_tokens": 3}}},
                   "message_start"),
        _sse_event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
                   "content_block_delta"),
        _sse_event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
                   "message_delta"),
        _sse_event({"type": "message_stop"}, "message_stop"),
    ],
}
# More of the same stream after the terminator: keep-alive events a server might send.
TRAILERS = {"openai": b": keep-alive\n\ndata: {}\n\n", "anthropic": _sse_event({"type": "ping"}, "ping")}


class TrailingServer:
    """Answers one streamed request, then after the terminator ``holds`` the stream open sending nothing,
    ``floods`` it with more events until the client leaves, or ``resets`` it (no end of body). ``client_left``
    is set when the client closed its connection."""

    def __init__(self, protocol: str, after: str) -> None:
        self.protocol, self.after = protocol, after
        self.port = 0
        self.connections = 0
        self.client_left = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> TrailingServer:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")  # the request's head; its small body is left unread
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for data in ANSWERS[self.protocol]:
                writer.write(_chunk(data))
            await writer.drain()
            if self.after == "reset":
                writer.transport.abort()
                return
            if self.after == "flood":
                trailer = _chunk(TRAILERS[self.protocol] * 64)
                while True:  # until the client leaves: the write then fails
                    writer.write(trailer)
                    await writer.drain()
            await reader.read()  # until the client closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.client_left.set()
            writer.close()

    def environ(self) -> dict[str, str]:
        path = "/v1" if self.protocol == "openai" else ""
        env = "OPENAI_BASE_URL" if self.protocol == "openai" else "ANTHROPIC_BASE_URL"
        return {env: f"http://127.0.0.1:{self.port}{path}", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}


@pytest.mark.parametrize("after", ["hold", "flood", "reset"])
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_a_stream_kept_open_after_its_terminator_does_not_hold_the_call(
        monkeypatch: pytest.MonkeyPatch, protocol: str, after: str) -> None:
    if after == "flood":
        # Only the byte limit may end this drain: a time limit this long would trip the hang guard first.
        monkeypatch.setattr(_sse, "DRAIN_S", 10 * STUCK_S)

    async def main() -> None:
        async with TrailingServer(protocol, after) as server, httpx.AsyncClient() as client:
            events = await asyncio.wait_for(collect(protocol, server.environ(), client), STUCK_S)
            # The answer is whole: what the server does after its terminator changes nothing in it.
            assert text(events) == "Hi" and isinstance(events[-1], Finished)
            # And the connection whose body never ended is closed, not kept for the next call.
            await asyncio.wait_for(server.client_left.wait(), STUCK_S)
            assert server.connections == 1

    run(main)
