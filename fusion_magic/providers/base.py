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

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    import httpx

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """What one call asks of one model. ``model`` is the provider-side name (no ``provider:`` prefix).

    ``json_schema`` asks for structured output where the protocol supports it; providers that
    cannot enforce it ignore it and the caller parses tolerantly.
    """

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None
    schema_name: str = "verdict"

    @property
    def system(self) -> str | None:
        """All system messages joined; protocols that keep system text apart (Anthropic, Gemini) use this."""
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def turns(self) -> tuple[Message, ...]:
        """The non-system messages, in order."""
        return tuple(m for m in self.messages if m.role != "system")


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
    cached_input_tokens: int | None = None


@dataclass(frozen=True)
class Finished:
    """The stream ended cleanly. ``reason`` is the provider's finish reason as sent."""

    reason: str | None = None
    served_model: str | None = None
    request_id: str | None = None


ProviderEvent = TextDelta | Usage | Finished


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
    "ChatRequest",
    "Endpoint",
    "Finished",
    "Message",
    "OverHTTP",
    "Provider",
    "ProviderEvent",
    "TextDelta",
    "Usage",
    "redact",
]
