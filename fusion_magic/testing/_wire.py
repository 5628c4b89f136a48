"""The bytes each provider family puts on the wire: pure body builders, no I/O, no timing.

The emulator decides *what* happens (how many chunks, which fault, when); this module only knows how
each family spells it. Shapes follow ``shared/reference/llm-apis.md``; keep them literal, because the
provider clients are tested against exactly these bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPENAI_STYLE = ("openrouter", "openai", "ollama")
FAMILIES = (*OPENAI_STYLE, "anthropic", "gemini")

# What each family calls a clean finish and a max-tokens truncation.
STOP_REASON = {"openrouter": "stop", "openai": "stop", "ollama": "stop", "anthropic": "end_turn", "gemini": "STOP"}
LENGTH_REASON = {
    "openrouter": "length",
    "openai": "length",
    "ollama": "length",
    "anthropic": "max_tokens",
    "gemini": "MAX_TOKENS",
}

# OpenRouter reports the upstream provider by name; the author prefix of the slug is a fair guess.
_OPENROUTER_PROVIDERS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "meta-llama": "Meta",
    "mistralai": "Mistral",
    "deepseek": "DeepSeek",
    "x-ai": "xAI",
    "qwen": "Alibaba",
}


def dumps(obj: Any) -> str:
    """Compact JSON, as the real servers send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse(data: str, *, event: str | None = None, nl: str = "\n") -> bytes:
    """One SSE event; ``nl`` is "\\n" or "\\r\\n" (the checklist asks for both)."""
    head = f"event: {event}{nl}" if event else ""
    return f"{head}data: {data}{nl}{nl}".encode()


def sse_comment(text: str, *, nl: str = "\n") -> bytes:
    return f": {text}{nl}{nl}".encode()


@dataclass(frozen=True)
class Turn:
    """Everything the builders need to know about one answer, decided before the first byte."""

    family: str
    model: str  # as the client sent it
    served_model: str  # as the response reports it
    response_id: str
    created: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    nl: str = "\n"
    include_usage: bool = False  # OpenAI-style stream_options.include_usage
    usage_choices_empty: bool = False  # OpenRouter's older usage-chunk shape


# ---- OpenAI-compatible (OpenRouter, OpenAI, Ollama) -----------------------------------------------


def _openai_usage(turn: Turn) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": turn.input_tokens,
        "completion_tokens": turn.output_tokens,
        "total_tokens": turn.input_tokens + turn.output_tokens,
    }
    if turn.family == "openrouter":
        usage.update(cost=turn.cost_usd, is_byok=False)
    usage.update(prompt_tokens_details={"cached_tokens": 0}, completion_tokens_details={"reasoning_tokens": 0})
    return usage


def _chunk(turn: Turn, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": turn.response_id,
        "object": "chat.completion.chunk",
        "created": turn.created,
        "model": turn.served_model,
    }
    if turn.family == "openrouter":
        body["provider"] = openrouter_provider(turn.served_model)
    else:
        body["system_fingerprint"] = "fp_emulator"
    body["choices"] = choices
    body.update(extra)
    # OpenAI sends `"usage": null` on every chunk but the last only when usage was asked for.
    if turn.family != "openrouter" and turn.include_usage and "usage" not in body:
        body["usage"] = None
    return body


def _choice(turn: Turn, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
    if turn.family == "openrouter":
        choice["native_finish_reason"] = finish
    return choice


def openrouter_provider(model: str) -> str:
    author = model.split("/", 1)[0] if "/" in model else ""
    return _OPENROUTER_PROVIDERS.get(author, "Emulator")


class OpenAIWire:
    """Chat-completions streams; ``turn.family`` picks the OpenRouter / OpenAI / Ollama flavor."""

    def preamble(self, turn: Turn) -> list[bytes]:
        if turn.family == "openrouter":
            # OpenRouter keeps the connection warm with comments while it routes; the role rides on
            # the first text chunk.
            return [sse_comment("OPENROUTER PROCESSING", nl=turn.nl)]
        # OpenAI and Ollama open with a role-only chunk.
        delta = {"role": "assistant", "content": ""}
        return [sse(dumps(_chunk(turn, [_choice(turn, delta, None)])), nl=turn.nl)]

    def keepalive(self, turn: Turn) -> bytes | None:
        return sse_comment("OPENROUTER PROCESSING", nl=turn.nl) if turn.family == "openrouter" else None

    def text(self, turn: Turn, index: int, piece: str, final_reason: str | None) -> list[bytes]:
        delta: dict[str, Any] = {"content": piece}
        if index == 0 and turn.family == "openrouter":
            delta = {"role": "assistant", "content": piece}
        return [sse(dumps(_chunk(turn, [_choice(turn, delta, None)])), nl=turn.nl)]

    def end(self, turn: Turn, reason: str, reason_sent: bool) -> list[bytes]:
        out: list[bytes] = []
        if turn.family == "openrouter":
            delta = {"content": "", "role": "assistant"}
            out.append(sse(dumps(_chunk(turn, [_choice(turn, delta, reason)])), nl=turn.nl))
            # The accounting chunk repeats the finish in a content-free choice (or, in the older
            # documented shape, carries no choice at all). Usage is always sent on OpenRouter.
            choices = [] if turn.usage_choices_empty else [_choice(turn, delta, reason)]
            out.append(sse(dumps(_chunk(turn, choices, usage=_openai_usage(turn))), nl=turn.nl))
        else:
            out.append(sse(dumps(_chunk(turn, [_choice(turn, {}, reason)])), nl=turn.nl))
            if turn.include_usage:
                out.append(sse(dumps(_chunk(turn, [], usage=_openai_usage(turn))), nl=turn.nl))
        out.append(sse("[DONE]", nl=turn.nl))
        return out

    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        if turn.family == "openrouter":
            error = {"code": status, "message": message, "metadata": {"error_type": openrouter_error_type(status)}}
            choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
            body = _chunk(turn, [choice], error=error)
        else:
            body = {"error": {"message": message, "type": openai_error_type(status), "param": None, "code": None}}
        return [sse(dumps(body), nl=turn.nl)]

    def malformed(self, turn: Turn) -> bytes:
        return f'data: {{"id":"{turn.response_id}","object":"chat.completion.chunk","choi{turn.nl}{turn.nl}'.encode()

    def json_body(self, turn: Turn, text: str, reason: str) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": reason,
            "message": {"role": "assistant", "content": text},
        }
        body: dict[str, Any] = {
            "id": turn.response_id,
            "object": "chat.completion",
            "created": turn.created,
            "model": turn.served_model,
        }
        if turn.family == "openrouter":
            body["provider"] = openrouter_provider(turn.served_model)
            choice["native_finish_reason"] = reason
        else:
            body["system_fingerprint"] = "fp_emulator"
        body["choices"] = [choice]
        body["usage"] = _openai_usage(turn)
        return body


# ---- Anthropic Messages ---------------------------------------------------------------------------


def _anthropic_usage(turn: Turn, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


class AnthropicWire:
    """Messages API streams: ``event:`` names equal ``data.type``; ``message_stop`` ends them."""

    def _event(self, turn: Turn, body: dict[str, Any]) -> bytes:
        return sse(dumps(body), event=body["type"], nl=turn.nl)

    def preamble(self, turn: Turn) -> list[bytes]:
        message: dict[str, Any] = {
            "id": turn.response_id,
            "type": "message",
            "role": "assistant",
            "model": turn.served_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _anthropic_usage(turn, 1),
        }
        return [
            self._event(turn, {"type": "message_start", "message": message}),
            self._event(
                turn, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            # The real API writes this one with a space after the colon.
            sse('{"type": "ping"}', event="ping", nl=turn.nl),
        ]

    def keepalive(self, turn: Turn) -> bytes | None:
        return None

    def text(self, turn: Turn, index: int, piece: str, final_reason: str | None) -> list[bytes]:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        return [self._event(turn, delta)]

    def end(self, turn: Turn, reason: str, reason_sent: bool) -> list[bytes]:
        # message_delta usage is cumulative for the whole message: clients take the last, not the sum.
        return [
            self._event(turn, {"type": "content_block_stop", "index": 0}),
            self._event(
                turn,
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": _anthropic_usage(turn, turn.output_tokens),
                },
            ),
            self._event(turn, {"type": "message_stop"}),
        ]

    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        body = {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}
        return [self._event(turn, body)]

    def malformed(self, turn: Turn) -> bytes:
        nl = turn.nl
        return f'event: content_block_delta{nl}data: {{"type":"content_block_delta","index":0,"del{nl}{nl}'.encode()

    def json_body(self, turn: Turn, text: str, reason: str) -> dict[str, Any]:
        return {
            "id": turn.response_id,
            "type": "message",
            "role": "assistant",
            "model": turn.served_model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": {
                **_anthropic_usage(turn, turn.output_tokens),
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "service_tier": "standard",
            },
        }


# ---- Gemini generateContent -----------------------------------------------------------------------


class GeminiWire:
    """streamGenerateContent?alt=sse: each event a whole response with a text fragment; the end of the
    body is the end of the stream (no sentinel)."""

    def _usage(self, turn: Turn, final: bool) -> dict[str, Any]:
        if not final:
            return {"promptTokenCount": turn.input_tokens, "totalTokenCount": turn.input_tokens}
        return {
            "promptTokenCount": turn.input_tokens,
            "candidatesTokenCount": turn.output_tokens,
            "totalTokenCount": turn.input_tokens + turn.output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": turn.input_tokens}],
        }

    def response(self, turn: Turn, text: str, reason: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if reason is not None:
            candidate["finishReason"] = reason
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(turn, final=reason is not None),
            "modelVersion": turn.served_model,
            "responseId": turn.response_id,
        }

    def preamble(self, turn: Turn) -> list[bytes]:
        return []

    def keepalive(self, turn: Turn) -> bytes | None:
        return None

    def text(self, turn: Turn, index: int, piece: str, final_reason: str | None) -> list[bytes]:
        # The finish reason and the full usage ride on the last text chunk, as the real API does.
        return [sse(dumps(self.response(turn, piece, final_reason)), nl=turn.nl)]

    def end(self, turn: Turn, reason: str, reason_sent: bool) -> list[bytes]:
        if reason_sent:
            return []
        return [sse(dumps(self.response(turn, "", reason)), nl=turn.nl)]

    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        return [sse(dumps(gemini_error(status, message)), nl=turn.nl)]

    def malformed(self, turn: Turn) -> bytes:
        return f'data: {{"candidates": [{{"content": {{"parts": [{{"te{turn.nl}{turn.nl}'.encode()

    def json_body(self, turn: Turn, text: str, reason: str) -> dict[str, Any]:
        return self.response(turn, text, reason)

    def blocked(self, turn: Turn) -> dict[str, Any]:
        return {
            "promptFeedback": {
                "blockReason": "SAFETY",
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                ],
            },
            "usageMetadata": {"promptTokenCount": turn.input_tokens, "totalTokenCount": turn.input_tokens},
            "modelVersion": turn.served_model,
            "responseId": turn.response_id,
        }


Wire = OpenAIWire | AnthropicWire | GeminiWire


def wire_for(family: str) -> Wire:
    if family in OPENAI_STYLE:
        return OpenAIWire()
    if family == "anthropic":
        return AnthropicWire()
    return GeminiWire()


# ---- error bodies -------------------------------------------------------------------------------

_OPENROUTER_ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    412: "precondition_failed",
    413: "payload_too_large",
    422: "unprocessable",
    429: "rate_limit_exceeded",
    500: "server",
    502: "provider_unavailable",
    503: "provider_overloaded",
}
_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Invalid API key.",
    402: "Insufficient credits.",
    403: "Forbidden.",
    404: "Not found.",
    408: "Request timed out.",
    429: "Rate limit exceeded.",
    500: "Internal server error.",
    502: "Bad gateway: the upstream provider failed.",
    503: "Service unavailable.",
    504: "Deadline exceeded.",
    529: "Overloaded",
}


def default_message(status: int) -> str:
    return _DEFAULT_MESSAGES.get(status, f"Emulated error {status}.")


def openrouter_error_type(status: int) -> str:
    return _OPENROUTER_ERROR_TYPES.get(status, "server" if status >= 500 else "invalid_request")


def openai_error_type(status: int) -> str:
    default = "server_error" if status >= 500 else "invalid_request_error"
    return _OPENAI_ERROR_TYPES.get(status, (default, None))[0]


def anthropic_error_type(status: int) -> str:
    return _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def gemini_error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    default = "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"
    error: dict[str, Any] = {"code": status, "message": message, "status": _GEMINI_STATUS.get(status, default)}
    if details:
        error["details"] = details
    return {"error": error}


_REMEDY = {
    "openrouter_in_flight_budget": "Retry after your in-flight requests settle (see the Retry-After header).",
    "openrouter_credits": "Add credits or lower max_tokens.",
    "openrouter_key_limit": "Raise this key's credit limit.",
}


def error_body(
    family: str,
    status: int,
    message: str | None = None,
    *,
    request_id: str = "",
    retry_after: float | None = None,
    limit_source: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The JSON body a family sends with a 4xx/5xx before any stream starts."""
    text = message or default_message(status)
    if family == "openrouter":
        metadata: dict[str, Any] = {"error_type": openrouter_error_type(status)}
        if status == 402 and limit_source:
            if reason is None and limit_source == "openrouter_in_flight_budget":
                reason = "in_flight_budget_exhausted"
            if reason is not None:
                metadata["reason"] = reason
            metadata["limit_source"] = limit_source
            metadata["remedy_hint"] = _REMEDY.get(limit_source, "")
        return {"error": {"code": status, "message": text, "metadata": metadata}}
    if family in OPENAI_STYLE:
        default = ("server_error" if status >= 500 else "invalid_request_error", None)
        kind, code = _OPENAI_ERROR_TYPES.get(status, default)
        return {"error": {"message": text, "type": kind, "param": None, "code": code}}
    if family == "anthropic":
        return {
            "type": "error",
            "error": {"type": anthropic_error_type(status), "message": text},
            "request_id": request_id,
        }
    details: list[dict[str, Any]] = []
    if status == 429:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
            }
        )
        if retry_after is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"})
    return gemini_error(status, text, details)


def auth_error(family: str, has_key: bool, *, request_id: str = "") -> tuple[int, dict[str, Any]]:
    """Status and body for a missing or wrong key, per family (Gemini says 400, not 401)."""
    if family == "openrouter":
        message = "No cookie auth credentials found" if not has_key else "User not found."
        return 401, {"error": {"code": 401, "message": message}}
    if family in OPENAI_STYLE:
        if not has_key:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return 401, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        message = "Incorrect API key provided."
        return 401, {
            "error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
        }
    if family == "anthropic":
        message = "x-api-key header is required" if not has_key else "invalid x-api-key"
        return 401, error_body("anthropic", 401, message, request_id=request_id)
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
    ]
    return 400, gemini_error(400, "API key not valid. Please pass a valid API key.", details)


def openrouter_moderation(model: str, message: str | None, flagged: str) -> dict[str, Any]:
    """OpenRouter's 403 when a moderated model's guard flags the prompt."""
    return {
        "error": {
            "code": 403,
            "message": message or f"{model} requires moderation on OpenRouter. Your input was flagged.",
            "metadata": {
                "reasons": ["violence"],
                "flagged_input": flagged[:100],
                "provider_name": openrouter_provider(model),
                "model_slug": model,
            },
        }
    }


def openrouter_model(model: str) -> dict[str, Any]:
    """One entry of GET /api/v1/models. Prices match the emulator's default cost (1e-6 USD/token)."""
    name = model.split("/", 1)[-1].replace("-", " ").title()
    return {
        "id": model,
        "canonical_slug": model,
        "name": f"Emulated {name}",
        "created": 1_700_000_000,
        "description": "A model served by the fusion_magic loopback emulator.",
        "context_length": 128000,
        "architecture": {
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": "0.000001",
            "completion": "0.000001",
            "request": "0",
            "image": "0",
            "web_search": "0",
            "internal_reasoning": "0",
        },
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "temperature", "response_format", "structured_outputs", "seed"],
        "default_parameters": None,
        "expiration_date": None,
    }


def openai_model(model: str, owner: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": owner}


# ---- reading requests ---------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Text of a message content that is a string or a list of typed blocks/parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping) and "text" in part)
    return ""


def prompt_texts(family: str, body: Mapping[str, Any]) -> tuple[str, str]:
    """(all message text including system, last user message) of a decoded request body."""
    texts: list[str] = []
    last_user = ""
    if family == "gemini":
        system = body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(system, Mapping):
            texts.append(_text_of(system.get("parts")))
        for content in body.get("contents") or []:
            if not isinstance(content, Mapping):
                continue
            text = _text_of(content.get("parts"))
            texts.append(text)
            if content.get("role", "user") == "user":
                last_user = text
        return "\n".join(texts), last_user
    if family == "anthropic":
        texts.append(_text_of(body.get("system")))
    for message in body.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        text = _text_of(message.get("content"))
        texts.append(text)
        if message.get("role") == "user":
            last_user = text
    return "\n".join(texts), last_user


def max_output_tokens(family: str, body: Mapping[str, Any]) -> int | None:
    """The request's output cap, under whichever name the family uses."""
    if family == "gemini":
        config = body.get("generationConfig") or body.get("generation_config") or {}
        caps = [config.get("maxOutputTokens"), config.get("max_output_tokens")] if isinstance(config, Mapping) else []
    else:
        caps = [body.get("max_tokens"), body.get("max_completion_tokens")]
    ints = [c for c in caps if isinstance(c, int) and not isinstance(c, bool)]
    return min(ints) if ints else None


def validate(family: str, body: Mapping[str, Any]) -> str | None:
    """A 400 message for request bodies the real API would reject in ways a client bug causes."""
    if family == "gemini":
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return "* GenerateContentRequest.contents: contents is not specified"
        for content in contents:
            if isinstance(content, Mapping) and content.get("role", "user") not in ("user", "model"):
                return "Please use a valid role: user, model."
        return None
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required" if family == "anthropic" else "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required" if family == "anthropic" else "'messages' is a required property"
    if family == "anthropic":
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        for message in messages:
            role = message.get("role") if isinstance(message, Mapping) else None
            if role not in ("user", "assistant"):
                return f'messages: Unexpected role "{role}". Allowed roles are "user" or "assistant".'
    return None
