"""OpenAI chat completions (``/openai/v1``) and Ollama's OpenAI-compatible ``/v1`` (``/ollama/v1``).

OpenRouter speaks the same protocol with additions of its own; it subclasses :class:`OpenAI` in
``openrouter.py``. Shapes: ``shared/reference/llm-apis.md`` §1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import default_message, dumps, sse
from ..chat import ChatFamily, Turn
from ..registry import Request, Route
from ..script import Fault

# status -> (error.type, error.code)
_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _error_type(status: int) -> tuple[str, str | None]:
    return _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))


class OpenAI(ChatFamily):
    """``POST {base}/chat/completions`` and ``GET {base}/models`` with Bearer auth.

        emu.script("gpt-4o", ModelScript(reply="Paris.")); httpx.post(f"{emu.url}/openai/v1/chat/completions", ...)
    """

    name = "openai"
    env: ClassVar[Mapping[str, str]] = {"OPENAI_BASE_URL": "/openai/v1"}
    test_keys: ClassVar[Mapping[str, str]] = {"OPENAI_API_KEY": "sk-test-emulator"}
    base: ClassVar[str] = "/openai/v1"
    stop_reason = "stop"
    length_reason = "length"
    refusal_reason: ClassVar[str | None] = "content_filter"
    models_need_auth: ClassVar[bool] = True
    # What GET /models lists when no unprefixed model is scripted, and who it says owns them.
    default_model: ClassVar[str] = "gpt-4o-mini"
    owner: ClassVar[str] = "openai"

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", f"{self.base}/chat/completions", self.chat),
            Route("GET", f"{self.base}/models", self.models, auth=self.models_need_auth),
        ]

    # ---- auth and requests --------------------------------------------------------------------------

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
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

    def auth_headers(self, req: Request) -> list[tuple[str, str]]:
        return [("x-request-id", req.request_id)]

    def validate(self, body: Mapping[str, Any]) -> str | None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' is a required property"
        return None

    def response_id(self, seq: int) -> str:
        return f"chatcmpl-emu{seq:06d}"

    def reply_headers(self, req: Request, turn: Turn) -> list[tuple[str, str]]:
        return [("x-request-id", req.request_id)]

    async def models(self, req: Request) -> None:
        """``GET {base}/models``: the scripted unprefixed models, or the default one."""
        names = [m for m in req.scripts.models() if "/" not in m] or [self.default_model]
        data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": self.owner} for m in names]
        await req.json(200, {"object": "list", "data": data})

    # ---- framing --------------------------------------------------------------------------------------

    def brand(self, turn: Turn) -> dict[str, Any]:
        """The field after "model" in every response (OpenRouter names the upstream provider instead)."""
        return {"system_fingerprint": "fp_emulator"}

    def usage(self, turn: Turn) -> dict[str, Any]:
        """The ``usage`` object of the last chunk and of the JSON answer."""
        return {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
            "prompt_tokens_details": {"cached_tokens": turn.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def chunk(self, turn: Turn, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """One ``chat.completion.chunk``."""
        body: dict[str, Any] = {
            "id": turn.response_id,
            "object": "chat.completion.chunk",
            "created": turn.created,
            "model": turn.served_model,
            **self.brand(turn),
            "choices": choices,
            **extra,
        }
        # OpenAI sends `"usage": null` on every chunk but the last only when usage was asked for.
        if turn.include_usage and "usage" not in body:
            body["usage"] = None
        return body

    def choice(self, turn: Turn, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        """One streamed choice."""
        return {"index": 0, "delta": delta, "finish_reason": finish}

    def event(self, turn: Turn, body: dict[str, Any]) -> bytes:
        """One data event."""
        return sse(dumps(body), nl=turn.nl)

    def preamble(self, turn: Turn) -> list[bytes]:
        # OpenAI and Ollama open with a role-only chunk.
        delta = {"role": "assistant", "content": ""}
        return [self.event(turn, self.chunk(turn, [self.choice(turn, delta, None)]))]

    def text(self, turn: Turn, index: int, piece: str, final_reason: str | None) -> list[bytes]:
        return [self.event(turn, self.chunk(turn, [self.choice(turn, {"content": piece}, None)]))]

    def end(self, turn: Turn, reason: str, reason_sent: bool) -> list[bytes]:
        out = [self.event(turn, self.chunk(turn, [self.choice(turn, {}, reason)]))]
        if turn.include_usage:
            out.append(self.event(turn, self.chunk(turn, [], usage=self.usage(turn))))
        out.append(sse("[DONE]", nl=turn.nl))
        return out

    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        error = {"message": message, "type": _error_type(status)[0], "param": None, "code": None}
        return [self.event(turn, {"error": error})]

    def malformed(self, turn: Turn) -> bytes:
        return f'data: {{"id":"{turn.response_id}","object":"chat.completion.chunk","choi{turn.nl}{turn.nl}'.encode()

    def json_body(self, turn: Turn, text: str, reason: str) -> dict[str, Any]:
        choice = {"index": 0, "finish_reason": reason, "message": {"role": "assistant", "content": text}}
        return {
            "id": turn.response_id,
            "object": "chat.completion",
            "created": turn.created,
            "model": turn.served_model,
            **self.brand(turn),
            "choices": [choice],
            "usage": self.usage(turn),
        }

    def error_body(
        self, status: int, message: str | None = None, *, request_id: str = "", fault: Fault | None = None
    ) -> dict[str, Any]:
        kind, code = _error_type(status)
        return {"error": {"message": message or default_message(status), "type": kind, "param": None, "code": code}}


class Ollama(OpenAI):
    """Ollama's ``/v1``: OpenAI's protocol, any non-empty Bearer key, no request ids.

        os.environ["OLLAMA_HOST"] = emu.url + "/ollama"  # the client appends /v1 itself
    """

    name = "ollama"
    # Ollama's variable names the host; the client appends /v1 itself.
    env: ClassVar[Mapping[str, str]] = {"OLLAMA_HOST": "/ollama"}
    test_keys: ClassVar[Mapping[str, str]] = {}
    base: ClassVar[str] = "/ollama/v1"
    models_need_auth: ClassVar[bool] = False
    default_model: ClassVar[str] = "llama3.2"
    owner: ClassVar[str] = "library"

    def auth_headers(self, req: Request) -> list[tuple[str, str]]:
        return []

    def reply_headers(self, req: Request, turn: Turn) -> list[tuple[str, str]]:
        return []
