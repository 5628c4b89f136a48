"""Gemini ``generateContent`` and ``streamGenerateContent`` (``/gemini/v1beta/models/{model}:…``).

The model rides in the path, the key in ``x-goog-api-key`` or ``?key=``; a bad key is a 400, errors are
``google.rpc.Status`` bodies, and a stream is whole responses ended by the connection's close (no sentinel).
Without ``alt=sse``, ``streamGenerateContent`` answers a JSON array instead. Shapes:
``shared/reference/llm-apis.md`` §3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import default_message, dumps, sse, sse_headers
from ..chat import ChatFamily, Plan, Turn, text_of
from ..registry import Family, Request, Route
from ..script import Fault

_STATUS = {
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
_MODELS = "/gemini/v1beta/models/{model:path}"
_STREAM_VERB = ":streamGenerateContent"


def gemini_error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A ``google.rpc.Status`` error body."""
    default = "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, default)}
    if details:
        error["details"] = details
    return {"error": error}


class GeminiAuth(Family):
    """How every Gemini API route reads a key (``x-goog-api-key`` or ``?key=``) and says no (a 400 with
    ``API_KEY_INVALID``); the chat, video and Files families share it."""

    env: ClassVar[Mapping[str, str]] = {"GEMINI_BASE_URL": "/gemini"}
    test_keys: ClassVar[Mapping[str, str]] = {"GEMINI_API_KEY": "AIza-test-emulator"}
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-goog-api-key"})
    secret_query: ClassVar[frozenset[str]] = frozenset({"key"})

    def presented_key(self, req: Request) -> str:
        return req.headers.get("x-goog-api-key") or req.query.get("key", "")

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        # Gemini calls a bad key a bad argument: 400, with the reason in ErrorInfo.
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
        return 400, gemini_error(400, "API key not valid. Please pass a valid API key.", details)


class Gemini(GeminiAuth, ChatFamily):
    """``POST /gemini/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent[?alt=sse]``.

        emu.script("gemini-2.5-flash", ModelScript(faults=[Fault("status", status=429, retry_after=34)]))
    """

    name = "gemini"
    env: ClassVar[Mapping[str, str]] = {"GEMINI_BASE_URL": "/gemini"}
    test_keys: ClassVar[Mapping[str, str]] = {"GEMINI_API_KEY": "AIza-test-emulator"}
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-goog-api-key"})
    secret_query: ClassVar[frozenset[str]] = frozenset({"key"})
    stop_reason = "STOP"
    length_reason = "MAX_TOKENS"
    # A blocked prompt is HTTP 200 with promptFeedback and no candidates (send_blocked).
    refusal_reason = None

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", f"{_MODELS}:generateContent", self.chat),
            Route("POST", f"{_MODELS}{_STREAM_VERB}", self.chat),
        ]

    # ---- auth and requests --------------------------------------------------------------------------

    def validate(self, body: Mapping[str, Any]) -> str | None:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return "* GenerateContentRequest.contents: contents is not specified"
        for content in contents:
            if isinstance(content, Mapping) and content.get("role", "user") not in ("user", "model"):
                return "Please use a valid role: user, model."
        return None

    def prompt_texts(self, body: Mapping[str, Any]) -> tuple[str, str]:
        texts: list[str] = []
        last_user = ""
        system = body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(system, Mapping):
            texts.append(text_of(system.get("parts")))
        for content in body.get("contents") or []:
            if not isinstance(content, Mapping):
                continue
            text = text_of(content.get("parts"))
            texts.append(text)
            if content.get("role", "user") == "user":
                last_user = text
        return "\n".join(texts), last_user

    def max_output_tokens(self, body: Mapping[str, Any]) -> int | None:
        config = body.get("generationConfig") or body.get("generation_config") or {}
        caps = [config.get("maxOutputTokens"), config.get("max_output_tokens")] if isinstance(config, Mapping) else []
        ints = [c for c in caps if isinstance(c, int) and not isinstance(c, bool)]
        return min(ints) if ints else None

    def model(self, req: Request, body: Mapping[str, Any]) -> str:
        return req.params["model"]

    def wants_stream(self, req: Request, body: Mapping[str, Any]) -> bool:
        # Without alt=sse streamGenerateContent streams a JSON array; see json_answer.
        return req.path.endswith(_STREAM_VERB) and req.query.get("alt") == "sse"

    def response_id(self, seq: int) -> str:
        return f"emu{seq:06d}"

    # ---- framing --------------------------------------------------------------------------------------

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
        """One ``GenerateContentResponse`` with a text fragment; the finish and full usage come with ``reason``."""
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

    def error_body(
        self, status: int, message: str | None = None, *, request_id: str = "", fault: Fault | None = None
    ) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if status == 429:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
                }
            )
            if fault is not None and fault.retry_after is not None:
                details.append(
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fault.retry_after:g}s"}
                )
        return gemini_error(status, message or default_message(status), details)

    # ---- Gemini-shaped answers and faults -------------------------------------------------------------

    def json_answer(self, req: Request, plan: Plan) -> Any:
        if not req.path.endswith(_STREAM_VERB):
            return super().json_answer(req, plan)
        # streamGenerateContent without alt=sse: a JSON array of the responses the SSE form sends.
        turn, last = plan.turn, len(plan.chunks) - 1
        body = [self.response(turn, piece, plan.finish if i == last else None) for i, piece in enumerate(plan.chunks)]
        return body or [self.response(turn, "", plan.finish)]

    def fault_headers(self, plan: Plan, fault: Fault) -> list[tuple[str, str]]:
        # Gemini puts its hint in the body (RetryInfo.retryDelay) and sends no rate-limit headers.
        return []

    async def send_blocked(self, req: Request, plan: Plan) -> None:
        turn = plan.turn
        blocked = {
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
        if plan.stream:
            await req.exchange.start(200, [*sse_headers(), *plan.headers])
            await req.exchange.finish(sse(dumps(blocked), nl=turn.nl))
        else:
            await req.json(200, [blocked] if req.path.endswith(_STREAM_VERB) else blocked)
