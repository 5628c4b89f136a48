"""Anthropic Messages (``/anthropic/v1/messages``): ``x-api-key`` plus ``anthropic-version``, named SSE events.

Shapes: ``shared/reference/llm-apis.md`` §2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import default_message, dumps, sse
from ..chat import IMAGE_TYPES, PDF, ChatFamily, Turn, b64_standard, sniff, text_of
from ..registry import Request, Route
from ..script import Fault

_ERROR_TYPES = {
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


def _error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _usage(turn: Turn, output_tokens: int) -> dict[str, Any]:
    # Anthropic's input_tokens leaves out what was read from and written to the cache (llm-apis.md §2.5).
    return {
        "input_tokens": turn.uncached_input_tokens,
        "cache_creation_input_tokens": turn.cache_write_tokens,
        "cache_read_input_tokens": turn.cached_input_tokens,
        "output_tokens": output_tokens,
    }


# Block types a message's content union takes (anthropic 2.17.0 ``message_content_param``), for the tag error.
_BLOCK_TYPES = ("document", "image", "redacted_thinking", "search_result", "server_tool_use", "text", "thinking",
                "tool_result", "tool_use", "web_search_tool_result")
_IMAGE_SOURCES = ("base64", "file", "url")
_DOCUMENT_SOURCES = ("base64", "content", "file", "text", "url")
MAX_CACHE_POINTS = 4
NON_EMPTY = "all messages must have non-empty content except for the optional final assistant message"


def _tags(found: Any, expected: tuple[str, ...]) -> str:
    """Pydantic's message for a tagged union whose tag matches none (how Anthropic's validation words it)."""
    listed = ", ".join(f"'{t}'" for t in expected)
    return f"Input tag '{found}' found using 'type' does not match any of the expected tags: {listed}"


def _either(values: tuple[str, ...]) -> str:
    """``'a', 'b' or 'c'``: pydantic's list of literal values."""
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def _cache_control(value: Any, where: str) -> str | None:
    """A block's ``cache_control``: ``{"type": "ephemeral"}`` with an optional ``ttl`` of ``5m`` or ``1h``."""
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind != "ephemeral":
        return f"{where}.cache_control: {_tags(kind, ('ephemeral',))}"
    assert isinstance(value, Mapping)
    for key in value:
        if key not in ("type", "ttl"):
            return f"{where}.cache_control.ephemeral.{key}: Extra inputs are not permitted"
    if "ttl" in value and value["ttl"] not in ("5m", "1h"):
        return f"{where}.cache_control.ephemeral.ttl: Input should be '5m' or '1h'"
    return None


def _image(source: Any, where: str) -> str | None:
    """An image block's source: base64 with one of the four image types, and bytes that are that type
    (attachments.md §4.3, observed wording)."""
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind not in _IMAGE_SOURCES:
        return f"{where}.image.source: {_tags(kind, _IMAGE_SOURCES)}"
    assert isinstance(source, Mapping)
    if kind != "base64":
        return None  # a URL or an uploaded file: the emulator takes it on trust
    media_type = source.get("media_type")
    if media_type not in IMAGE_TYPES:
        return f"{where}.image.source.base64.media_type: Input should be {_either(IMAGE_TYPES)}"
    data = b64_standard(source.get("data"))
    if data is not None and not data:
        return f"{where}.image.source.base64: image cannot be empty"
    actual = sniff(data) if data is not None else None
    if actual not in IMAGE_TYPES:
        return "Could not process image"  # observed, with no path: bytes (or base64) no image decoder reads
    if actual != media_type:
        return (f"{where}.image.source.base64: The image was specified using the {media_type} media type, but the "
                f"image appears to be a {actual} image")
    return None


def _document(source: Any, where: str) -> str | None:
    """A document block's source: a base64 one is a PDF (``application/pdf`` and ``%PDF-`` bytes), a text one
    ``text/plain`` with a string."""
    kind = source.get("type") if isinstance(source, Mapping) else None
    if kind not in _DOCUMENT_SOURCES:
        return f"{where}.document.source: {_tags(kind, _DOCUMENT_SOURCES)}"
    assert isinstance(source, Mapping)
    if kind == "base64":
        if source.get("media_type") != PDF:
            return f"{where}.document.source.base64.media_type: Input should be '{PDF}'"
        data = b64_standard(source.get("data"))
        if data is None or not data.startswith(b"%PDF-"):
            # Observed wording; the path says "pdf", not "document".
            return f"{where}.pdf.source.base64.data: The PDF specified was not valid."
    if kind == "text":
        if source.get("media_type") != "text/plain":
            return f"{where}.document.source.text.media_type: Input should be 'text/plain'"
        if not isinstance(source.get("data"), str):
            return f"{where}.document.source.text.data: Input should be a valid string"
    return None


def _block(block: Any, where: str) -> str | None:
    """One content block: a known type, a non-empty text, a valid image or document, a valid cache_control."""
    kind = block.get("type") if isinstance(block, Mapping) else None
    if kind is None:
        return f"{where}.type: Field required"
    if kind not in _BLOCK_TYPES:
        return f"{where}: {_tags(kind, _BLOCK_TYPES)}"
    assert isinstance(block, Mapping)
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            return f"{where}.text.text: Input should be a valid string"
        if not text:
            return "messages: text content blocks must be non-empty"
    elif kind == "image":
        problem = _image(block.get("source"), where)
        if problem is not None:
            return problem
    elif kind == "document":
        problem = _document(block.get("source"), where)
        if problem is not None:
            return problem
    if block.get("cache_control") is not None:
        return _cache_control(block["cache_control"], f"{where}.{kind}")
    return None


def _cache_points(body: Mapping[str, Any]) -> int:
    """How many blocks (system and messages) carry a cache_control."""
    blocks: list[Any] = list(body["system"]) if isinstance(body.get("system"), list) else []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        blocks += content if isinstance(content, list) else []
    return sum(1 for b in blocks if isinstance(b, Mapping) and b.get("cache_control") is not None)


class Anthropic(ChatFamily):
    """Messages API: ``event:`` names equal ``data.type``; ``message_stop`` ends a stream.

        emu.script("claude-sonnet-4-5", ModelScript(faults=[Fault("status", status=529)]))  # overloaded_error
    """

    name = "anthropic"
    env: ClassVar[Mapping[str, str]] = {"ANTHROPIC_BASE_URL": "/anthropic"}
    test_keys: ClassVar[Mapping[str, str]] = {"ANTHROPIC_API_KEY": "sk-ant-test-emulator"}
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-api-key"})
    stop_reason = "end_turn"
    length_reason = "max_tokens"
    refusal_reason = "refusal"

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/anthropic/v1/messages", self.chat)]

    # ---- auth and requests --------------------------------------------------------------------------

    def presented_key(self, req: Request) -> str:
        return req.headers.get("x-api-key", "")

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        message = "x-api-key header is required" if not has_key else "invalid x-api-key"
        return 401, self.error_body(401, message, request_id=req.request_id)

    def auth_headers(self, req: Request) -> list[tuple[str, str]]:
        return [("request-id", req.request_id)]

    def check_headers(self, req: Request) -> tuple[int, Any] | None:
        if req.headers.get("anthropic-version"):
            return None
        return 400, self.error_body(400, "anthropic-version: header is required", request_id=req.request_id)

    def validate(self, body: Mapping[str, Any]) -> str | None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, Mapping) else None
            if role not in ("user", "assistant"):
                return f'messages: Unexpected role "{role}". Allowed roles are "user" or "assistant".'
            problem = self.check_message(messages, i)
            if problem is not None:
                return problem
        system = body.get("system")
        for k, block in enumerate(system if isinstance(system, list) else []):
            problem = _block(block, f"system.{k}")
            if problem is not None:
                return problem
        points = _cache_points(body)
        if points > MAX_CACHE_POINTS:
            return f"A maximum of {MAX_CACHE_POINTS} blocks with cache_control may be provided. Found {points}."
        return None

    def check_message(self, messages: list[Any], i: int) -> str | None:
        """Turn ``i`` in its place: the thread starts with a user turn; every turn but a final assistant one has
        content; each block is one the API takes. Two turns of one role in a row pass: the Messages API combines
        consecutive turns of a role into one (its docs, since it stopped answering "roles must alternate")."""
        message = messages[i]
        role, content = message["role"], message.get("content")
        if i == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        final_assistant = role == "assistant" and i == len(messages) - 1
        if content is None:
            return f"messages.{i}.content: Field required"
        if content in ("", []):
            return None if final_assistant else f"messages.{i}: {NON_EMPTY}"
        if isinstance(content, str):
            if final_assistant and content != content.rstrip():
                return "messages: final assistant content cannot end with trailing whitespace"
            return None
        if not isinstance(content, list):
            return f"messages.{i}.content: Input should be a valid list"
        for j, block in enumerate(content):
            problem = _block(block, f"messages.{i}.content.{j}")
            if problem is not None:
                return problem
        return None

    def system_text(self, body: Mapping[str, Any]) -> str | None:
        return text_of(body.get("system"))

    def response_id(self, seq: int) -> str:
        return f"msg_emu{seq:06d}"

    def reply_headers(self, req: Request, turn: Turn) -> list[tuple[str, str]]:
        return [("request-id", req.request_id)]

    # ---- framing --------------------------------------------------------------------------------------

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
            "usage": _usage(turn, 1),
        }
        return [
            self._event(turn, {"type": "message_start", "message": message}),
            self._event(
                turn, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            # The real API writes this one with a space after the colon.
            sse('{"type": "ping"}', event="ping", nl=turn.nl),
        ]

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
                    "usage": _usage(turn, turn.output_tokens),
                },
            ),
            self._event(turn, {"type": "message_stop"}),
        ]

    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        return [self._event(turn, {"type": "error", "error": {"type": _error_type(status), "message": message}})]

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
                **_usage(turn, turn.output_tokens),
                # Writes are the default 5-minute cache (cache_control without a ttl).
                "cache_creation": {
                    "ephemeral_5m_input_tokens": turn.cache_write_tokens,
                    "ephemeral_1h_input_tokens": 0,
                },
                "service_tier": "standard",
            },
        }

    def error_body(
        self, status: int, message: str | None = None, *, request_id: str = "", fault: Fault | None = None
    ) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": _error_type(status), "message": message or default_message(status)},
            "request_id": request_id,
        }
