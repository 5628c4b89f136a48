"""OpenAI-compatible chat completions: OpenRouter, OpenAI, Ollama, vLLM, llama.cpp server, LM Studio.

One protocol, several dialects, chosen by ``Endpoint.flavor``: OpenAI itself wants
``max_completion_tokens``; OpenRouter reports ``usage.cost``, always sends usage, silently drops
parameters a backend cannot honour unless ``provider.require_parameters`` is set, takes the request's
``extra`` fields (its ``plugins``, ``tool_choice``), and may return its Fusion router's analysis beside the
answer (``fusion_result``; docs/openrouter-fusion.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from ...core.attachment import PDF, Attachment
from ...core.errors import (
    BlockedError,
    ConfigError,
    PaymentError,
    ProtocolError,
    ProviderError,
    RateLimitError,
    ServerError,
    error_for_status,
)
from ...core.mime import IMAGE_TYPES
from .._body import Base64Text
from .._http import Classifier, ErrorInfo, WireContext, error_info
from ..base import (
    AttachmentLimits,
    ChatRequest,
    Endpoint,
    Message,
    ProviderAnalysis,
    ProviderEvent,
    TextDelta,
    Usage,
)
from ._sse import SSEProvider, StreamParser, json_int, load_event
from .openrouter_models import input_modalities

# In-stream errors may name their class only by a string (OpenAI ``type``, OpenRouter
# ``metadata.error_type`` or a string ``code``): the HTTP status each stands for.
_STATUS_BY_CODE: dict[str, int] = {
    "invalid_request_error": 400,
    "invalid_request": 400,
    "invalid_prompt": 400,
    "context_length_exceeded": 400,
    "max_tokens_exceeded": 400,
    "token_limit_exceeded": 400,
    "string_too_long": 400,
    "authentication": 401,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "payment_required": 402,
    "permission_denied": 403,
    "not_found": 404,
    "model_not_found": 404,
    "insufficient_quota": 429,
    "requests": 429,  # OpenAI's rate-limit error types name the exhausted limit
    "tokens": 429,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "provider_unavailable": 502,
    "provider_overloaded": 503,
    "server": 500,
    "server_error": 500,
    "timeout": 408,
}


def classifier(ctx: WireContext) -> Classifier:
    """Our error for an OpenAI-style error object: the status first, then the codes that overrule it."""

    def classify(info: ErrorInfo) -> ProviderError:
        meta = info.metadata
        error_type = meta.get("error_type")
        code = error_type if isinstance(error_type, str) else info.code
        status = info.status or _STATUS_BY_CODE.get(code or "") or _STATUS_BY_CODE.get(info.type or "")
        if status == 402:
            source = meta.get("limit_source")
            source = source if isinstance(source, str) else None
            if source == "openrouter_in_flight_budget" or meta.get("reason") == "in_flight_budget_exhausted":
                # Credit held by this key's other in-flight requests: it frees up, so this is a wait.
                return ctx.error(RateLimitError, info.message, status=402,
                                 code=source or "in_flight_budget_exhausted", retry_after=info.retry_after)
            return ctx.error(PaymentError, info.message, status=402, code=source or code)
        if status == 429 and "insufficient_quota" in (info.code, info.type):
            # OpenAI's empty-balance answer wears a 429 but does not clear by waiting.
            return ctx.error(PaymentError, info.message, status=429, code="insufficient_quota")
        if status == 403 and ("flagged_input" in meta or "reasons" in meta):
            # OpenRouter moderation: the prompt was refused, the key is fine.
            return ctx.error(BlockedError, info.message, status=403, code=code or "moderation")
        cls = error_for_status(status) if status else ServerError
        return ctx.error(cls, info.message, status=status, code=code, retry_after=info.retry_after)

    return classify


class ChunkParser(StreamParser):
    """Turns ``chat.completion.chunk`` payloads into our events; no I/O, so each quirk is one branch.

        parser = ChunkParser(ctx, request_id=None)
        events = list(parser.feed('{"choices":[{"index":0,"delta":{"content":"Hi"}}]}'))
    """

    error_classifier = staticmethod(classifier)
    missing_end = "no [DONE] and no finish_reason"

    def feed(self, data: str) -> Iterator[ProviderEvent]:
        """Events for one ``data:`` payload. A generator, so text that precedes an error in the same
        chunk still reaches the caller before the error is raised."""
        if data.strip() == "[DONE]":
            self.done = True
            return
        chunk = load_event(data, self.ctx)
        if self.request_id is None and isinstance(chunk.get("id"), str):
            self.request_id = chunk["id"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            # OpenRouter names the model that actually served (it can differ under fallbacks).
            self.served_model = chunk["model"]
        if chunk.get("error"):
            raise self.classify(error_info(chunk))
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise self.ctx.error(ProtocolError, f"choices is not a list: {data[:120]!r}")
        for choice in choices:
            # We never ask for n > 1; some servers omit the index.
            if isinstance(choice, Mapping) and choice.get("index") in (0, None):
                yield from self._choice(choice)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            yield _usage(usage)

    def _choice(self, choice: Mapping[str, Any]) -> Iterator[ProviderEvent]:
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            content = delta.get("content")
            if isinstance(content, str) and content:
                yield TextDelta(content)
            fusion = fusion_result(delta)
            if fusion is not None:
                yield ProviderAnalysis(fusion)
        if choice.get("error"):
            raise self.classify(error_info({"error": choice["error"]}))
        reason = choice.get("finish_reason")
        if reason == "error":
            raise self.ctx.error(ServerError, "the provider ended the stream with finish_reason 'error'",
                                 code="error")
        if reason == "content_filter":
            raise self.ctx.error(BlockedError, "the answer was stopped by the content filter",
                                 code="content_filter")
        if isinstance(reason, str) and reason and self.reason is None:
            # OpenRouter repeats the finish reason on its usage chunk: accounting, not a second end.
            self.reason = reason

    @property
    def complete(self) -> bool:
        # Some local servers close right after the finish_reason chunk without [DONE]: the answer
        # is complete, so only a stream with neither is cut short.
        return self.done or self.reason is not None


class OpenAICompatProvider(SSEProvider):
    """Streams one chat completion from any OpenAI-compatible server.

        provider = OpenAICompatProvider(resolve_endpoint(BUILTIN["openrouter"]), client)
        text = "".join([e.text async for e in provider.stream(request) if isinstance(e, TextDelta)])
    """

    protocol: ClassVar[str] = "openai"
    parser_class = ChunkParser
    # shared/reference/attachments.md §§2-3. OpenAI's own figure (50 MB a request) is unconfirmed; OpenRouter
    # publishes none, so the same. Local servers (llama.cpp, Ollama, vLLM) read images on a vision model, and
    # have no file parts: a PDF is refused there.
    attachment_limits: ClassVar[Mapping[str, AttachmentLimits]] = {
        "openai": AttachmentLimits(IMAGE_TYPES | {PDF}, 50 << 20, advice="attach fewer or smaller files",
                                   source="OpenAI's request limit"),
        "openrouter": AttachmentLimits(IMAGE_TYPES | {PDF}, 50 << 20, advice="attach fewer or smaller files",
                                       source="the limit we hold OpenRouter requests to"),
        "generic": AttachmentLimits(IMAGE_TYPES, 50 << 20, source="the limit we hold local servers to"),
    }
    key_header = "Authorization"
    key_prefix = "Bearer "

    @staticmethod
    def check_attachments(endpoint: Endpoint, model: str, attachments: Sequence[Attachment], model_id: str) -> None:
        """Refuse images for an OpenRouter model its model list says reads none (one ``ConfigError`` line, before
        any chat request). PDFs pass: OpenRouter parses them for a model that cannot."""
        if endpoint.flavor != "openrouter" or not any(a.kind == "image" for a in attachments):
            return
        inputs = input_modalities(endpoint.base_url, model)
        if inputs is not None and "image" not in inputs:
            raise ConfigError(f"{model_id} takes no images (OpenRouter lists its inputs as "
                              f"{', '.join(sorted(inputs)) or 'none'}); pick a vision model for this prompt")

    def url(self, request: ChatRequest) -> str:
        return f"{self.endpoint.base_url.rstrip('/')}/chat/completions"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        flavor = self.endpoint.flavor
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [message(m) for m in request.messages],
            "stream": True,
        }
        if request.max_tokens is not None:
            # OpenAI deprecated max_tokens and its reasoning models reject it; everyone else wants it.
            body["max_completion_tokens" if flavor == "openai" else "max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if flavor != "openrouter":
            # Without it OpenAI and local servers send no usage at all when streaming;
            # OpenRouter always sends usage and documents the option as a deprecated no-op.
            body["stream_options"] = {"include_usage": True}
        if request.json_schema is not None:
            schema = {"name": request.schema_name, "strict": True, "schema": dict(request.json_schema)}
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
            if flavor == "openrouter":
                # Otherwise OpenRouter may route to a backend that silently ignores the schema.
                body["provider"] = {"require_parameters": True}
        if flavor == "openrouter":
            # OpenRouter's own request fields (plugins, tool_choice); what we set above is ours to decide, so an
            # extra never overrides it (a stray "stream": false would break the parser).
            body.update((k, v) for k, v in request.extra.items() if k not in body)
        return body


# The type of OpenRouter's Fusion result (the ``openrouter:fusion`` server tool's output item).
FUSION_TYPE = "openrouter:fusion"


def fusion_result(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """OpenRouter's Fusion result in a chat ``message`` (non-streamed) or a chunk's ``delta``, as sent; None if none.

    OpenRouter documents the result (``type`` "openrouter:fusion", ``status``, ``analysis``, ``responses``,
    ``failed_models``, ``failure_reason``, ``error``) as a Responses API output item; on chat completions it
    documents no place for it. Chat completions carries OpenRouter's other server-side results as ``annotations``
    (web search's ``url_citation``), so an annotation of that type is read, flat or nested under its type the way
    ``url_citation`` nests (unconfirmed: docs/openrouter-fusion.md). The last one wins.
    """
    found: dict[str, Any] | None = None
    annotations = message.get("annotations")
    for item in annotations if isinstance(annotations, list) else ():
        if isinstance(item, Mapping) and item.get("type") == FUSION_TYPE:
            nested = item.get(FUSION_TYPE)
            found = dict(nested if isinstance(nested, Mapping) else item)
    return found


def message(m: Message) -> dict[str, Any]:
    """One turn on the wire: plain text, or (a user turn with images or PDFs) content parts, the text first as
    OpenRouter's docs advise. A PDF is a ``file`` part with its basename (OpenAI requires one) and a data URL. The
    data URLs are ``Base64Text``: encoded from the file's bytes as the request is sent, never held whole."""
    if not m.binary:
        return {"role": m.role, "content": m.text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": m.text}]
    for a in m.binary:
        url = Base64Text(a, f"data:{a.mime};base64,")
        if a.kind == "pdf":
            parts.append({"type": "file", "file": {"filename": a.name, "file_data": url}})
        else:
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": m.role, "content": parts}


def _usage(usage: Mapping[str, Any]) -> Usage:
    prompt_details = usage.get("prompt_tokens_details")
    details = prompt_details if isinstance(prompt_details, Mapping) else {}
    cost = usage.get("cost")
    return Usage(
        input_tokens=json_int(usage.get("prompt_tokens")),
        output_tokens=json_int(usage.get("completion_tokens")),
        # Only OpenRouter reports cost (USD-denominated credits); others leave pricing to the ledger.
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        cached_input_tokens=json_int(details.get("cached_tokens")),
        # OpenRouter also reports what the upstream (Anthropic, Gemini explicit) wrote to its cache.
        cache_write_input_tokens=json_int(details.get("cache_write_tokens")) or None,
    )


__all__ = ["FUSION_TYPE", "ChunkParser", "OpenAICompatProvider", "fusion_result"]
