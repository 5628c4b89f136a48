"""Streaming over server-sent events, what the three HTTP chat protocols (openai_compat, anthropic,
gemini) share once a stream is open: ``SSEProvider`` is the one ``stream()`` they all run (httpx-sse
does the framing), ``StreamParser`` the state and end-of-stream check every protocol's parser keeps,
``load_event`` and ``json_int`` the reading of an event's JSON. Sending, the status check and the
translation of transport errors are ``_http``'s.

A protocol module says only where to send, what to send, which header carries the key and how to
read one event's JSON:

    class AnthropicProvider(SSEProvider):
        protocol, parser_class, key_header = "anthropic", EventParser, "x-api-key"
        def url(self, request): ...   # where
        def body(self, request): ...  # what
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from typing import Any, ClassVar

import httpx
from httpx_sse import EventSource, ServerSentEvent

from ...core.errors import ProtocolError
from .._http import WireContext, default_classify, open_stream, request_id
from ..base import ChatRequest, Finished, OverHTTP, ProviderEvent

# ---- reading an event ------------------------------------------------------------------------------


def load_event(data: str, ctx: WireContext) -> dict[str, Any]:
    """One SSE ``data`` payload as a JSON object; anything else is a protocol violation."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: a payload nested thousands deep
        raise ctx.error(ProtocolError, f"malformed JSON in stream: {data[:120]!r}") from exc
    if not isinstance(payload, dict):
        raise ctx.error(ProtocolError, f"stream event is not a JSON object: {data[:120]!r}")
    return payload


def json_int(value: object) -> int | None:
    """A count from an event's JSON if it is a whole number, else None: ``json_int(usage.get("prompt_tokens"))``."""
    # JSON true would pass as 1 otherwise: bool is a subclass of int.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---- after the terminator --------------------------------------------------------------------------

# What is read past the terminator (normally only the body's last empty chunk) so the connection goes back to the
# pool; a connection closed with its body unread cannot be reused, and the next call pays a new TCP and TLS
# handshake. A server that keeps the stream open longer costs that one connection, never the call.
DRAIN_S = 1.0
DRAIN_BYTES = 64 << 10


async def drain(events: AsyncIterator[ServerSentEvent], response: httpx.Response) -> None:
    """Read ``events`` to the end of the body, at most ``DRAIN_S`` seconds and about ``DRAIN_BYTES`` bytes; what
    arrives is ignored, and so is a connection lost meanwhile: the answer was already whole."""
    start = response.num_bytes_downloaded
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in events:
                # Checked per event: a comment-only keep-alive yields none, and the time limit ends it.
                if response.num_bytes_downloaded - start > DRAIN_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError):
        pass


# ---- the provider template -------------------------------------------------------------------------


class StreamParser:
    """The state every protocol's stream parser keeps, and how a stream ends; subclasses add ``feed``.

        parser = ChunkParser(WireContext("openai", "gpt-4o"), request_id=None)
        events, finished = [*parser.feed(data)], parser.finish()
    """

    # The protocol's reading of its error bodies, one for both places errors arrive: the status check
    # before the stream (``SSEProvider.stream``) and error events inside it (``self.classify``).
    error_classifier = staticmethod(default_classify)
    # What a cut stream lacks, said in its "stream ended early" error.
    missing_end: ClassVar[str] = "no end of stream"

    def __init__(self, ctx: WireContext, request_id: str | None) -> None:
        self.ctx = ctx
        self.classify = self.error_classifier(ctx)
        self.request_id = request_id
        self.served_model: str | None = None
        self.reason: str | None = None  # the finish (or stop) reason, as the provider sent it
        self.done = False  # set when the protocol's terminator arrived: nothing after it is read

    @property
    def complete(self) -> bool:
        """Whether what arrived is a whole answer; a protocol without a terminator overrides this."""
        return self.done

    def finish(self) -> Finished:
        """The ``Finished`` event of a stream that closed, or the error for one that was cut short."""
        if not self.complete:
            raise self.ctx.error(ProtocolError, f"stream ended early: {self.missing_end}")
        return Finished(self.reason, self.served_model, self.request_id)


class SSEProvider(OverHTTP):
    """One streamed call over SSE; a protocol subclass says only where, what and how to read it.

        provider = OpenAICompatProvider(resolve_endpoint(BUILTIN["openrouter"]), client)
        text = "".join([e.text async for e in provider.stream(request) if isinstance(e, TextDelta)])
    """

    protocol: ClassVar[str]
    supports_json_schema: ClassVar[bool] = True
    parser_class: ClassVar[type[StreamParser]] = StreamParser
    # Query parameters every request carries (Gemini's alt=sse).
    params: ClassVar[Mapping[str, str] | None] = None
    # The header that carries the key, and what stands before the key in it.
    key_header: ClassVar[str]
    key_prefix: ClassVar[str] = ""
    # Sent on every request after the endpoint's own headers (an API version pin).
    fixed_headers: ClassVar[Mapping[str, str]] = {}

    def url(self, request: ChatRequest) -> str:
        """Where this request goes."""
        raise NotImplementedError

    def body(self, request: ChatRequest) -> dict[str, Any]:
        """The vendor's JSON for this request."""
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        """The endpoint's headers, then the protocol's fixed ones, then the key in its header."""
        headers = {**self.endpoint.headers, **self.fixed_headers}
        if self.endpoint.api_key:
            headers[self.key_header] = self.key_prefix + self.endpoint.api_key
        return headers

    def feed(self, parser: Any, sse: ServerSentEvent) -> Iterator[ProviderEvent]:
        """One event through the parser; most parsers want only its ``data``."""
        return parser.feed(sse.data)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Yield the events of one call (``base.Provider.stream`` says when it raises)."""
        ctx = WireContext(self.endpoint.provider, request.model, self.endpoint.api_key)
        async with (
            open_stream(
                self.client, self.url(request), body=self.body(request), headers=self.headers(), ctx=ctx,
                classify=self.parser_class.error_classifier(ctx), params=self.params,
            ) as response,
            # Read inside open_stream's block, so a connection lost mid-stream is translated there;
            # closed on the way out: an error, a cancel or a drain cut short leave the body unread.
            aclosing(EventSource(response).aiter_sse()) as events,
        ):
            parser = self.parser_class(ctx, request_id(response.headers))
            async for sse in events:
                for event in self.feed(parser, sse):
                    yield event
                if parser.done:
                    # Nothing after the terminator is parsed, but the body is read to its end: then the
                    # connection is kept for the next call instead of closed.
                    await drain(events, response)
                    break
        yield parser.finish()


__all__ = ["DRAIN_BYTES", "DRAIN_S", "SSEProvider", "StreamParser", "drain", "json_int", "load_event"]
