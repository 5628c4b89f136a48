"""OpenAI chat completions (``/openai/v1``) and Ollama's OpenAI-compatible ``/v1`` (``/ollama/v1``).

OpenRouter speaks the same protocol with additions of its own; it subclasses :class:`OpenAI` in
``openrouter.py``. Shapes: ``shared/reference/llm-apis.md`` §1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import default_message, dumps, sse
from ..chat import IMAGE_TYPES, PDF, ChatFamily, Rejection, Turn, data_url, listing, sniff
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


_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
# Content part types by role (openai 3.63.0: the user union is text | image_url | input_audio | file; an
# assistant turn takes text and refusal parts only; the others text only). attachments.md §2.1.
_PART_TYPES: dict[str, tuple[str, ...]] = {
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
}
_IMAGE_EXAMPLE = "'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='"
_PDF_EXAMPLE = "'data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ=='"
# attachments.md §2.3, observed.
NOT_AN_IMAGE = (
    "The image data you provided does not represent a valid image. Please check your input and try again with "
    "one of the supported image formats: ['image/jpeg', 'image/png', 'image/gif', 'image/webp']."
)


def _missing(param: str) -> Rejection:
    return Rejection(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _invalid_value(value: Any, allowed: tuple[str, ...], param: str) -> Rejection:
    return Rejection(f"Invalid value: '{value}'. Supported values are: {listing(allowed)}.", param, "invalid_value")


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

    # Whether a file part needs a filename beside its file_data (OpenAI: yes, OpenRouter: no).
    filename_required: ClassVar[bool] = True
    # Part types by role (OpenRouter takes video parts too); a role not listed takes text only.
    part_types: ClassVar[Mapping[str, tuple[str, ...]]] = _PART_TYPES

    def validate(self, body: Mapping[str, Any]) -> str | Rejection | None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' is a required property"
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, Mapping):
                return Rejection(f"Invalid type for '{where}': expected an object, but got {type(message).__name__} "
                                 "instead.", where, "invalid_type")
            role = message.get("role")
            if role not in _ROLES:
                return _invalid_value(role, _ROLES, f"{where}.role")
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for j, part in enumerate(content):
                rejection = self.check_part(str(role), part, f"{where}.content[{j}]")
                if rejection is not None:
                    return rejection
        return None

    def check_part(self, role: str, part: Any, where: str) -> Rejection | None:
        """The 400 for one content part the API would refuse: a type the role does not take, an image that is
        no image, a file part that is no PDF data URL or (OpenAI) has no filename."""
        kind = part.get("type") if isinstance(part, Mapping) else None
        if not isinstance(kind, str):
            return _missing(f"{where}.type")
        allowed = self.part_types.get(role, ("text",))
        if kind not in allowed:
            return _invalid_value(kind, allowed, f"{where}.type")
        assert isinstance(part, Mapping)
        if kind == "image_url":
            return self.check_image(part.get("image_url"), f"{where}.image_url")
        if kind == "file":
            return self.check_file(part.get("file"), f"{where}.file")
        if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
            return _missing(f"{where}.{kind}")
        return None

    def check_image(self, image: Any, where: str) -> Rejection | None:
        """An ``image_url`` object: a URL the API can fetch, or a data URL of PNG, JPEG, GIF or WebP bytes."""
        url = image.get("url") if isinstance(image, Mapping) else None
        if not isinstance(url, str):
            return _missing(f"{where}.url")
        param = f"{where}.url"
        detail = image.get("detail") if isinstance(image, Mapping) else None
        if detail is not None and detail not in ("auto", "low", "high", "original"):
            return _invalid_value(detail, ("auto", "low", "high", "original"), f"{where}.detail")
        parsed = data_url(url)
        if parsed is None:
            if url.startswith(("http://", "https://")):
                return None  # the real API fetches it; the emulator takes it on trust
            return Rejection(f"Invalid '{param}'. Expected a valid URL, but got a value with an invalid format.",
                             param, "invalid_value")
        mime, data = parsed
        expected = (f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME type "
                    f"(e.g. {_IMAGE_EXAMPLE})")
        if mime not in IMAGE_TYPES:
            return Rejection(f"{expected}, but got unsupported MIME type '{mime}'.", param, "invalid_value")
        if data is None:
            return Rejection(f"{expected}, but got an invalid base64-encoded value.", param, "invalid_value")
        if not data:
            return Rejection(f"{expected}, but got empty base64-encoded bytes.", param, "invalid_value")
        # The API reads the bytes whatever the data URL calls them: any of the four formats will do.
        if sniff(data) not in IMAGE_TYPES:
            return Rejection(NOT_AN_IMAGE, None, "invalid_value")
        return None

    def check_file(self, file: Any, where: str) -> Rejection | None:
        """A ``file`` object: a ``file_id``, or ``file_data`` as a PDF data URL (with its ``filename`` where the
        API requires one). Chat Completions takes PDFs only in file parts (attachments.md §2.3)."""
        if not isinstance(file, Mapping):
            return _missing(f"{where}.file_id")
        if isinstance(file.get("file_id"), str) and file["file_id"]:
            return None  # an uploaded file: the emulator has no Files API to check it against
        file_data = file.get("file_data")
        if not isinstance(file_data, str) or (self.filename_required and not isinstance(file.get("filename"), str)):
            # Observed: without a filename the API names file_id, not filename.
            return _missing(f"{where}.file_id")
        return self.check_file_data(file_data, f"{where}.file_data")

    def check_file_data(self, file_data: str, param: str) -> Rejection | None:
        """``file_data``: a ``data:application/pdf;base64,`` URL of bytes that start ``%PDF-``."""
        expected = (f"Invalid file data: '{param}'. Expected a base64-encoded data URL with an application/pdf MIME "
                    f"type (e.g. {_PDF_EXAMPLE})")
        parsed = data_url(file_data)
        if parsed is None or parsed[1] is None:
            return Rejection(f"{expected}, but got an invalid base64-encoded value.", param, "invalid_value")
        mime, data = parsed
        if mime != PDF:
            return Rejection(f"{expected}, but got unsupported MIME type '{mime}'.", param, "invalid_value")
        if not data or not data.startswith(b"%PDF-"):
            # Wording unconfirmed: the bytes of a file part that says PDF but is none.
            return Rejection(f"Invalid file data: '{param}'. The file is not a valid PDF.", param, "invalid_value")
        return None

    def rejection_body(self, rejection: str | Rejection, request_id: str) -> Any:
        body = super().rejection_body(rejection, request_id)
        if isinstance(rejection, Rejection):
            body["error"]["param"] = rejection.param
            body["error"]["code"] = rejection.code
        return body

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
