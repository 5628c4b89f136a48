"""Anthropic Messages (``/anthropic/v1/messages``): ``x-api-key`` plus ``anthropic-version``, named SSE events.

Shapes: ``shared/reference/llm-apis.md`` §2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import default_message, dumps, sse
from ..chat import ChatFamily, Turn, text_of
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
        for message in messages:
            role = message.get("role") if isinstance(message, Mapping) else None
            if role not in ("user", "assistant"):
                return f'messages: Unexpected role "{role}". Allowed roles are "user" or "assistant".'
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
