"""The contract every provider module fulfils: a request in, a stream of events out.

Providers only translate between these types and a vendor's JSON. They never retry on their own,
never price, never time: policy lives in ``fusion_magic.calls`` and ``fusion_magic.fusion.pool``. A key
never reaches a message: ``redact`` (or ``Endpoint.redact``) puts ``REDACTED`` in its place, here and
in the calls above.

    provider = OpenAICompatProvider(endpoint, client)
    async for event in provider.stream(ChatRequest(model="gpt-4o", messages=(Message("user", "hi"),))):
        ...
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from ..core.attachment import Attachment, human_size, with_text_files
from ..core.errors import ConfigError

if TYPE_CHECKING:
    import httpx

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn: its text and, on a user turn, what was attached to it.

    ``cache_point`` marks the end of a prefix worth caching (a follow-up's earlier turns): protocols that cache
    only where asked (Anthropic's ``cache_control``) mark this turn's last block; the others cache on their own.
    """

    role: Role
    content: str
    attachments: tuple[Attachment, ...] = ()
    cache_point: bool = False

    @functools.cached_property
    def text(self) -> str:
        """The turn's text as sent: the content, then each text attachment fenced and named (fenced once: the cache
        key, the body and the counts all read it)."""
        return with_text_files(self.content, self.attachments)

    @property
    def binary(self) -> tuple[Attachment, ...]:
        """The images and PDFs: each a part of its own on the wire."""
        return tuple(a for a in self.attachments if a.binary)


@dataclass(frozen=True)
class ChatRequest:
    """What one call asks of one model. ``model`` is the provider-side name (no ``provider:`` prefix).

    ``json_schema`` asks for structured output where the protocol supports it; providers that
    cannot enforce it ignore it and the caller parses tolerantly.

    ``extra`` holds top-level body fields of one vendor's dialect that have no field of their own here
    (OpenRouter's ``plugins`` and ``tool_choice`` for its Fusion router). Only the OpenAI-compatible protocol's
    OpenRouter flavor sends them; never a field it already sets. They are part of the cache key.
    """

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None
    schema_name: str = "verdict"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> str | None:
        """All system messages joined; protocols that keep system text apart (Anthropic, Gemini) use this."""
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def turns(self) -> tuple[Message, ...]:
        """The non-system messages, in order."""
        return tuple(m for m in self.messages if m.role != "system")

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        """Every attachment of every turn, in order."""
        return tuple(a for m in self.messages for a in m.attachments)


# ---- events a provider yields -------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    """A fragment of answer text, in arrival order."""

    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts, and the provider's own cost figure when it reports one (OpenRouter ``usage.cost``).

    Later Usage events replace earlier ones field by field (Anthropic and Gemini report cumulative
    counts), so a provider may yield several.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    # Parts of ``input_tokens``: read from the provider's prompt cache, and written to it (Anthropic's
    # ``cache_creation_input_tokens``; None when none were written or the provider does not say).
    cached_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None


@dataclass(frozen=True)
class Finished:
    """The stream ended cleanly. ``reason`` is the provider's finish reason as sent."""

    reason: str | None = None
    served_model: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class ProviderAnalysis:
    """A structured analysis the provider returned beside the answer, as it sent it (OpenRouter's Fusion router:
    its ``openrouter:fusion`` result, with ``analysis``, ``responses``, ``failed_models`` ...). The call keeps the
    last one on ``CallRecord.provider_analysis``."""

    data: Mapping[str, Any]


ProviderEvent = TextDelta | Usage | Finished | ProviderAnalysis


# ---- endpoints and the provider protocol ---------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one provider: resolved base URL, key and extra headers.

    The key is excluded from ``repr`` so it never lands in logs or tracebacks.

        endpoint = Endpoint("openai", "https://api.openai.com/v1", api_key="sk-...", flavor="openai")
        endpoint.redact(f"request failed: {exc}")  # any echo of the key becomes <redacted>
    """

    provider: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    # Dialect switches inside one protocol (OpenRouter extras, OpenAI's max_completion_tokens, ...).
    flavor: str = "generic"

    def redact(self, text: str) -> str:
        """``text`` with this endpoint's key taken out, for messages that may echo it."""
        return redact(text, self.api_key)


class OverHTTP:
    """What every provider over HTTP holds: where it speaks (its ``endpoint``, key included) and the caller's
    ``client`` (never its own: a client belongs to one event loop).

        class MyProvider(OverHTTP): protocol: ClassVar[str] = "mine"
    """

    def __init__(self, endpoint: Endpoint, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint
        self.client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"  # the key is not in an Endpoint's repr


class Provider(Protocol):
    """One wire protocol. Instances are cheap; the ``httpx.AsyncClient`` belongs to the caller's loop."""

    protocol: ClassVar[str]
    supports_json_schema: ClassVar[bool]

    def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Yield events for one call; raise a ``ProviderError`` subclass on failure.

        Implementations raise before the first event for pre-stream HTTP errors (so the caller may
        retry) and after it for mid-stream errors (which are never retried: text already arrived).
        """
        ...


# ---- what a protocol accepts besides text ---------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentLimits:
    """What one wire protocol takes besides text, declared on its provider class (``attachment_limits``).

    ``types``: the image and PDF MIME types it accepts (empty: text only; text files are prompt text, which
    every model takes). ``request_bytes``: the most a request's base64 attachments may add up to, with
    ``advice`` saying what to do past it. ``max_images``: images per request.
    """

    types: frozenset[str] = frozenset()
    request_bytes: int | None = None
    max_images: int | None = None
    advice: str = "attach fewer or smaller files"
    source: str = ""


TEXT_ONLY = AttachmentLimits()


def encoded_size(size: int) -> int:
    """How many bytes ``size`` bytes take in base64."""
    return 4 * ((size + 2) // 3)


def check_attachments(limits: AttachmentLimits, attachments: tuple[Attachment, ...], model_id: str,
                      *, why_text_only: str = "") -> None:
    """Refuse, before any request, attachments ``model_id`` cannot take: ``ConfigError`` with one line naming
    the file, the limit and what to do."""
    binary = [a for a in attachments if a.binary]
    if not binary:
        return
    if not limits.types:
        reason = why_text_only or "its provider sends text only"
        raise ConfigError(f"{model_id} cannot take {binary[0].name} ({binary[0].mime}): {reason}; drop it from "
                          "the pool for this prompt, or attach only text files")
    for a in binary:
        if a.mime not in limits.types:
            accepted = ", ".join(sorted(t.split("/")[1].upper() for t in limits.types))
            raise ConfigError(f"{model_id} cannot take {a.name}: {a.mime} is not among the types it accepts "
                              f"({accepted}); convert it (e.g. to PNG) or drop that model for this prompt")
    images = sum(a.kind == "image" for a in binary)
    if limits.max_images is not None and images > limits.max_images:
        raise ConfigError(f"{model_id} takes at most {limits.max_images} images per request ({images} attached)")
    total = sum(encoded_size(a.size) for a in binary)
    if limits.request_bytes is not None and total > limits.request_bytes:
        raise ConfigError(f"{model_id}: the attachments are {human_size(total)} in base64, over the "
                          f"{human_size(limits.request_bytes)} a request may carry ({limits.source}); "
                          f"{limits.advice}")


# ---- keeping keys out of messages -----------------------------------------------------------------

# The one marker a key is replaced by, wherever a message might echo it.
REDACTED = "<redacted>"


def redact(text: str, secret: str | None) -> str:
    """``text`` with every copy of ``secret`` (an API key) replaced by ``REDACTED``.

    ``redact("Incorrect API key provided: sk-1234", "sk-1234")`` -> ``"Incorrect API key provided: <redacted>"``
    """
    # A value this short is a dummy key a local server accepts, not a secret; replacing it would
    # mangle ordinary words in the message.
    if secret and len(secret) >= 4:
        return text.replace(secret, REDACTED)
    return text


__all__ = [
    "REDACTED",
    "TEXT_ONLY",
    "AttachmentLimits",
    "ChatRequest",
    "Endpoint",
    "Finished",
    "Message",
    "OverHTTP",
    "Provider",
    "ProviderAnalysis",
    "ProviderEvent",
    "TextDelta",
    "Usage",
    "check_attachments",
    "encoded_size",
    "redact",
]
