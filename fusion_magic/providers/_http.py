"""The transport boundary of the HTTP protocols: send the request, turn a failed response (status
and error body) into a typed ``ProviderError``, and translate httpx and httpx-sse exceptions, once.

A protocol supplies a *classifier* (an ``ErrorInfo`` in, a typed ``ProviderError`` out) for its
vendor's error bodies; everything here is protocol-neutral. What arrives on a stream that opened is
read in ``chat/_sse.py``, inside the ``async with`` so that its transport errors are translated here:

    ctx = WireContext("anthropic", "claude-sonnet-4-5", secret=endpoint.api_key)
    async with open_stream(client, url, body=body, headers=headers, ctx=ctx, classify=classify) as response:
        async for sse in EventSource(response).aiter_sse(): ...
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
from httpx_sse import SSEError

from ..core.errors import (
    BadRequestError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ServerError,
    error_for_status,
)
from ._body import JSONBody
from .base import redact

# Error bodies can be whole HTML pages from a proxy; a message is for a human, one screen at most.
_MAX_MESSAGE = 500
# The only media type a streamed answer may come in: all three HTTP protocols stream server-sent events.
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True)
class WireContext:
    """Who is being called, so every error we build carries provider and model and never the key.

        ctx = WireContext("openai", "gpt-4o", secret=endpoint.api_key)
        raise ctx.error(ProtocolError, "stream ended early")
    """

    provider: str
    model: str
    # Only used to scrub the key out of messages that echo it back; never shown.
    secret: str | None = field(default=None, repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with the key taken out (``base.redact``)."""
        return redact(text, self.secret)

    def error(
        self,
        cls: type[ProviderError],
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> ProviderError:
        """Build one typed error. ``retryable`` overrides the class default on this instance only
        (a 429 that is really a spend cap is a RateLimitError that must not be retried)."""
        err = cls(
            self.scrub(_shorten(message)),
            provider=self.provider,
            model=self.model,
            status=status,
            retry_after=retry_after,
            code=self.scrub(code) if code else None,
        )
        if retryable is not None:
            err.retryable = retryable
        return err


@dataclass(frozen=True)
class ErrorInfo:
    """An error body taken apart, whatever its shape.

    ``error`` is the inner error object: ``body["error"]`` for the nested shape (OpenAI, OpenRouter,
    Anthropic, Gemini), the body itself for the flat one (older vLLM), ``{}`` when it was not JSON.
    ``status`` is the HTTP status, or the numeric ``error.code`` of an in-stream error.

        info = error_info({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429)
        info.type, info.code  # ("rate_limit_error", "rate_limit_error")
    """

    status: int | None
    message: str
    error: Mapping[str, Any]
    body: Mapping[str, Any]
    retry_after: float | None = None

    @property
    def type(self) -> str | None:
        value = self.error.get("type")
        return value if isinstance(value, str) else None

    @property
    def code(self) -> str | None:
        """``error.code`` as text (OpenRouter sends ints, OpenAI strings), else ``error.type``/``status``."""
        for key in ("code", "type", "status"):
            value = self.error.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
        return None

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.error.get("metadata")
        return meta if isinstance(meta, Mapping) else {}


Classifier = Callable[[ErrorInfo], ProviderError]


def error_info(payload: Any, *, status: int | None = None, text: str = "", fallback: str = "",
               retry_after: float | None = None) -> ErrorInfo:
    """Take apart a decoded error payload: nested ``{"error": {...}}``, flat ``{"message": ...}``,
    ``{"error": "text"}`` (Ollama) or a one-element list (Gemini sometimes wraps its body)."""
    if isinstance(payload, list) and payload and isinstance(payload[0], Mapping):
        payload = payload[0]
    body: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    inner: Mapping[str, Any]
    raw = body.get("error")
    if isinstance(raw, Mapping):
        inner = raw
    elif isinstance(raw, str):
        inner = {"message": raw}
    else:
        inner = body
    message = inner.get("message")
    if not isinstance(message, str) or not message.strip():
        message = text.strip() or fallback or "no error message"
    if status is None:
        code = inner.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            status = code
        elif isinstance(code, str) and code.isdigit():
            status = int(code)
    return ErrorInfo(status=status, message=message, error=inner, body=body, retry_after=retry_after)


def default_classify(ctx: WireContext) -> Classifier:
    """Status class only; protocol modules refine this with their vendor's codes."""

    def classify(info: ErrorInfo) -> ProviderError:
        cls = error_for_status(info.status) if info.status else ServerError
        return ctx.error(cls, info.message, status=info.status, code=info.code, retry_after=info.retry_after)

    return classify


# ---- retry hints ----------------------------------------------------------------------------------


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return value if math.isfinite(value) and value >= 0 else None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)s\s*$")


def parse_duration(text: object) -> float | None:
    """A protobuf JSON duration (``"34s"``, ``"1.500s"``), as Gemini's ``RetryInfo.retryDelay``."""
    if not isinstance(text, str):
        return None
    match = _DURATION.match(text)
    return float(match.group(1)) if match else None


def request_id(headers: httpx.Headers) -> str | None:
    """The provider's id for this call, from whichever header the vendor uses."""
    for name in ("x-generation-id", "x-request-id", "request-id"):
        value = headers.get(name)
        if value:
            return str(value)
    return None


# ---- sending ---------------------------------------------------------------------------------------


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` is on ``base``'s origin (scheme, host, port; default ports filled in): the only place
    a key may go. An unreadable URL is another origin."""
    try:
        a, b = httpx.URL(url), httpx.URL(base)
    except (httpx.InvalidURL, ValueError):
        return False
    ports = {"http": 80, "https": 443}
    return ((a.scheme, a.host.lower(), a.port or ports.get(a.scheme))
            == (b.scheme, b.host.lower(), b.port or ports.get(b.scheme)))


def decode_json(text: str) -> Any:
    """The JSON value in ``text``, or None when it is empty or not JSON (an error body may be a proxy's HTML)."""
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def response_error(response: httpx.Response, text: str, classify: Classifier) -> ProviderError:
    """The typed error for a failed response whose body is ``text``, whatever the body's shape."""
    payload = decode_json(text)
    err = classify(error_info(
        payload,
        status=response.status_code,
        # A non-JSON body (a proxy's HTML page) is only worth showing when short.
        text=text if payload is None and len(text) <= 200 else "",
        fallback=response.reason_phrase or f"HTTP {response.status_code}",
        retry_after=parse_retry_after(response.headers),
    ))
    if response.status_code == 408:
        # Request Timeout: the server gave up waiting for the request before it did anything with it, so
        # sending it again is safe (the vendors' SDKs retry it too); a timeout of ours is another matter.
        err.retryable = True
    return err


def raise_transport_error(exc: httpx.HTTPError, ctx: WireContext, *, started_stream: bool) -> NoReturn:
    """Raise our typed error for an httpx exception (``translate_transport_error``), dropping the cause when
    its text holds the key (h11 quotes a bad header value, key included)."""
    err = translate_transport_error(exc, ctx.provider, ctx.model, started_stream=started_stream, secret=ctx.secret)
    if ctx.secret and ctx.secret in str(exc):
        raise err from None
    raise err from exc


async def check_response(response: httpx.Response, ctx: WireContext, classify: Classifier) -> None:
    """Raise the typed error for a failed response before any event is read.

    Runs before the stream is read because error bodies are plain JSON with a 4xx/5xx status, and
    because the caller may only retry errors raised before the first event.
    """
    content_type = response.headers.get("content-type", "")
    if response.is_success and EVENT_STREAM in content_type:
        return
    try:
        raw = await response.aread()
        text = raw.decode("utf-8", errors="replace")
    except httpx.HTTPError:
        # The status alone still says what went wrong; a body we cannot read adds nothing.
        text = ""
    if response.is_success:
        # A 200 that is not a stream: some servers put an error in a plain JSON body.
        payload = decode_json(text)
        if isinstance(payload, Mapping) and payload.get("error"):
            raise classify(error_info(payload, text="", retry_after=parse_retry_after(response.headers)))
        raise ctx.error(
            ProtocolError,
            f"expected an event stream, got {content_type or 'no content type'}: {text[:120]!r}",
            status=response.status_code,
        )
    raise response_error(response, text, classify)


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    url: str,
    *,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    ctx: WireContext,
    classify: Classifier,
    params: Mapping[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """POST ``body`` asking for an event stream, and hand over the response once its status is good. The body
    is JSON as httpx's ``json=`` writes it; an attachment in it (``_body.Base64Text``) is encoded a chunk at a
    time as it is sent, so no request holds a whole copy of the file (``_body.JSONBody``).

    Every httpx or httpx-sse exception raised while opening or reading (including inside the
    caller's ``async with`` body) leaves as a ``ProviderError``; the client is the caller's and is
    never closed here.
    """
    started = False
    payload = JSONBody(dict(body))
    sent = httpx.Headers({"Accept": EVENT_STREAM, **headers})
    for name, value in payload.headers.items():
        sent.setdefault(name, value)  # as json= would: an endpoint's own Content-Type stays
    try:
        async with client.stream("POST", url, content=payload.content, headers=sent, params=params) as response:
            await check_response(response, ctx, classify)
            started = True
            yield response
    except httpx.HTTPError as exc:  # httpx_sse.SSEError is one too
        raise_transport_error(exc, ctx, started_stream=started)


async def send_json(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    ctx: WireContext,
    classify: Classifier,
    headers: Mapping[str, str],
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    content: AsyncIterator[bytes] | bytes | None = None,
    data: Mapping[str, str] | None = None,
    files: Mapping[str, Any] | None = None,
) -> tuple[Any, httpx.Response]:
    """One plain JSON request/response (the job APIs: submit, poll, list): the decoded body and the
    response, or the typed error for a failed status, a non-JSON body or a transport failure. The request
    carries ``body`` as JSON, or a body not held as a JSON value (``content``: streamed bytes; ``data`` and
    ``files``: a multipart upload).

    Redirects are not followed: a 3xx here is a protocol error, never a hop that would carry the key.
    """
    try:
        response = await client.request(
            method, url, json=dict(body) if body is not None else None, content=content, data=data, files=files,
            headers=dict(headers), params=params, follow_redirects=False,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
    except httpx.HTTPError as exc:
        raise_transport_error(exc, ctx, started_stream=False)
    text = response.text
    if not response.is_success:
        raise response_error(response, text, classify)
    payload = decode_json(text)
    if payload is None and text.strip():
        raise ctx.error(ProtocolError, f"expected JSON, got {text[:120]!r}", status=response.status_code)
    return payload, response


# ---- the one boundary for library exceptions -------------------------------------------------------


def translate_transport_error(
    exc: BaseException, provider: str, model: str, *, started_stream: bool, secret: str | None = None
) -> ProviderError:
    """Our typed error for an httpx (or httpx-sse) exception; use as ``raise ... from exc``.

    Before the stream starts, a refused or reset connection is retryable (nothing was generated);
    once events flowed, a cut is a ``ProtocolError``: the answer is incomplete and must not be retried.
    """
    ctx = WireContext(provider, model, secret)
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, SSEError):
        return ctx.error(ProtocolError, f"not an event stream ({detail})")
    if isinstance(exc, httpx.TimeoutException):
        # No request reached the server on connect/pool timeouts, so those are safe to retry.
        safe = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout) and not started_stream
        return ctx.error(ProviderTimeout, f"timed out ({detail})", retryable=safe)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ctx.error(BadRequestError, f"unusable base URL ({detail})")
    if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
        if started_stream:
            return ctx.error(ProtocolError, f"stream ended early: connection lost ({detail})")
        what = "could not connect" if isinstance(exc, httpx.ConnectError) else "connection lost"
        return ctx.error(ServerError, f"{what} before a response ({detail})")
    if isinstance(exc, httpx.DecodingError | httpx.LocalProtocolError):
        return ctx.error(ProtocolError, f"bad framing ({detail})")
    return ctx.error(ProtocolError, f"transport failure ({detail})")


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


__all__ = [
    "EVENT_STREAM",
    "Classifier",
    "ErrorInfo",
    "WireContext",
    "check_response",
    "decode_json",
    "default_classify",
    "error_info",
    "open_stream",
    "parse_duration",
    "parse_retry_after",
    "raise_transport_error",
    "request_id",
    "response_error",
    "same_origin",
    "send_json",
    "translate_transport_error",
]
