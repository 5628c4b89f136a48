"""Anthropic Messages API (``POST /v1/messages``), streamed.

Differs from the OpenAI shape in ways that matter for accounting: input tokens arrive once in
``message_start``, output tokens are cumulative in ``message_delta`` (take the last, never sum), and
errors inside a 200 stream are named ``event: error`` frames typed like the HTTP error bodies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from httpx_sse import ServerSentEvent

from ...core.attachment import PDF
from ...core.errors import BlockedError, ProviderError, RateLimitError, ServerError, error_for_status
from ...core.mime import IMAGE_TYPES
from .._body import Base64Text
from .._http import Classifier, ErrorInfo, WireContext, error_info
from ..base import AttachmentLimits, ChatRequest, Message, ProviderEvent, TextDelta, Usage
from ._sse import SSEProvider, StreamParser, json_int, load_event

API_VERSION = "2023-06-01"
# The API refuses a request without max_tokens; this is what the official quickstarts use.
DEFAULT_MAX_TOKENS = 1024

# error.type -> the HTTP status it stands for (platform.claude.com/docs/en/api/errors). Needed for
# `event: error` frames, which arrive with HTTP 200: an overloaded_error there is a 529 for the caller.
_STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def classifier(ctx: WireContext) -> Classifier:
    """Our error for an Anthropic error object, from an HTTP error body or an ``event: error`` frame."""

    def classify(info: ErrorInfo) -> ProviderError:
        # The type list "may grow": fall back to the status class, then to a server error.
        status = info.status or _STATUS_BY_TYPE.get(info.type or "") or 500
        cls = error_for_status(status)
        if status == 529:
            cls = ServerError  # API-wide overload, not the caller's quota
        retryable: bool | None = None
        if cls is RateLimitError and info.retry_after is None and info.status == 429:
            # A 429 without retry-after is most likely the monthly spend cap: waiting will not help.
            retryable = False
        return ctx.error(cls, info.message, status=status, code=info.type,
                         retry_after=info.retry_after, retryable=retryable)

    return classify


class EventParser(StreamParser):
    """Turns Messages stream events into ours; no I/O.

        parser = EventParser(ctx, request_id=None)
        events = list(parser.feed("content_block_delta", '{"delta":{"type":"text_delta","text":"Hi"}}'))
    """

    error_classifier = staticmethod(classifier)
    missing_end = "no message_stop"

    def __init__(self, ctx: WireContext, request_id: str | None) -> None:
        super().__init__(ctx, request_id)
        self.input_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.written_tokens: int | None = None
        self.output_tokens: int | None = None

    def feed(self, name: str, data: str) -> Iterator[ProviderEvent]:
        if not data.strip():
            return  # an event line with no data (comment-only keep-alives parse this way)
        payload = load_event(data, self.ctx)
        # `event:` equals data.type; the data is authoritative when a proxy drops event lines.
        kind = payload.get("type") if isinstance(payload.get("type"), str) else name
        if kind == "content_block_delta":
            delta = payload.get("delta")
            # Only text_delta is answer text; thinking, signature and tool-input deltas are not.
            if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str) and text:
                    yield TextDelta(text)
        elif kind == "message_start":
            message = payload.get("message")
            if isinstance(message, Mapping):
                self._start(message)
                yield self._usage()
        elif kind == "message_delta":
            yield from self._delta(payload)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise self.classify(error_info(payload))
        # ping, content_block_start/stop and event types added later carry nothing we report.

    def _start(self, message: Mapping[str, Any]) -> None:
        if isinstance(message.get("model"), str):
            self.served_model = message["model"]
        if self.request_id is None and isinstance(message.get("id"), str):
            self.request_id = message["id"]
        usage = message.get("usage")
        if isinstance(usage, Mapping):
            self._count(usage)

    def _delta(self, payload: Mapping[str, Any]) -> Iterator[ProviderEvent]:
        usage = payload.get("usage")
        if isinstance(usage, Mapping):
            self._count(usage)
            yield self._usage()
        delta = payload.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        if reason == "refusal":
            raise self.ctx.error(BlockedError, "the model refused to answer (stop_reason 'refusal')",
                                 code="refusal")
        if isinstance(reason, str) and reason:
            self.reason = reason

    def _count(self, usage: Mapping[str, Any]) -> None:
        """Counts are cumulative: each report replaces the last, never adds to it.

        ``input_tokens`` here excludes cache reads and writes; we report the whole prompt (as OpenAI
        and Gemini do) and the cache-read and cache-write parts apart, each billed at its own rate
        (``core.pricing``). No write is None, not 0: only Anthropic reports writes, and only when asked to cache.
        """
        base = json_int(usage.get("input_tokens"))
        read = json_int(usage.get("cache_read_input_tokens"))
        written = json_int(usage.get("cache_creation_input_tokens"))
        if base is not None:
            self.input_tokens = base + (read or 0) + (written or 0)
        if read is not None:
            self.cached_tokens = read
        if written is not None:
            self.written_tokens = written or None
        output = json_int(usage.get("output_tokens"))
        if output is not None:
            self.output_tokens = output

    def _usage(self) -> Usage:
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                     cached_input_tokens=self.cached_tokens, cache_write_input_tokens=self.written_tokens)


def message_usage(usage: Mapping[str, Any]) -> Usage:
    """The ``Usage`` of a whole Message's ``usage`` (a non-streamed answer: a batch result), counted as the stream's
    are (``EventParser._count``: the whole prompt in ``input_tokens``, cache reads and writes apart)."""
    parser = EventParser(WireContext("anthropic", ""), None)
    parser._count(usage)
    return parser._usage()


class AnthropicProvider(SSEProvider):
    """Streams one Messages API answer.

        provider = AnthropicProvider(resolve_endpoint(BUILTIN["anthropic"]), client)
        text = "".join([e.text async for e in provider.stream(request) if isinstance(e, TextDelta)])
    """

    protocol: ClassVar[str] = "anthropic"
    # shared/reference/attachments.md §4.3: 32 MB a request on the standard endpoints, 100 images.
    attachment_limits: ClassVar[AttachmentLimits] = AttachmentLimits(
        IMAGE_TYPES | {PDF}, 32 << 20, max_images=100, source="Anthropic's request limit",
        advice="attach fewer or smaller files (a PDF's pages you need)")
    parser_class = EventParser
    key_header = "x-api-key"
    fixed_headers: ClassVar[Mapping[str, str]] = {"anthropic-version": API_VERSION}

    def url(self, request: ChatRequest) -> str:
        return f"{self.endpoint.base_url.rstrip('/')}/v1/messages"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "messages": [message(m) for m in request.turns],
            "stream": True,
        }
        if request.system is not None:
            body["system"] = request.system  # top level: Anthropic has no system role
        if request.temperature is not None:
            # Anthropic's range is [0, 1]; callers use OpenAI's [0, 2] scale and a 400 helps nobody.
            body["temperature"] = min(max(request.temperature, 0.0), 1.0)
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.json_schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": dict(request.json_schema)}}
        return body

    def feed(self, parser: EventParser, sse: ServerSentEvent) -> Iterator[ProviderEvent]:
        # Messages streams name their events; the parser falls back on the name when data has no type.
        return parser.feed(sse.event, sse.data)


def message(m: Message) -> dict[str, Any]:
    """One turn on the wire: plain text, or blocks (images and PDFs first, then the text, as the guides advise;
    bare base64 with the MIME type sniffed from the bytes, which Anthropic checks; ``Base64Text``, encoded as the
    request is sent). A ``cache_point`` turn marks its last block ``cache_control``: Anthropic caches a prefix only
    where asked."""
    if not m.binary and not m.cache_point:
        return {"role": m.role, "content": m.text}
    blocks: list[dict[str, Any]] = []
    for a in m.binary:
        source = {"type": "base64", "media_type": a.mime, "data": Base64Text(a)}
        blocks.append({"type": "document" if a.kind == "pdf" else "image", "source": source})
    blocks.append({"type": "text", "text": m.text})
    if m.cache_point:
        blocks[-1]["cache_control"] = {"type": "ephemeral"}
    return {"role": m.role, "content": blocks}


__all__ = ["AnthropicProvider", "EventParser", "message_usage"]
