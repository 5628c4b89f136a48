"""Gemini ``generateContent`` and ``streamGenerateContent`` (``/gemini/v1beta/models/{model}:…``).

The model rides in the path, the key in ``x-goog-api-key`` or ``?key=``; a bad key is a 400, errors are
``google.rpc.Status`` bodies, and a stream is whole responses ended by the connection's close (no sentinel).
Without ``alt=sse``, ``streamGenerateContent`` answers a JSON array instead. Shapes:
``shared/reference/llm-apis.md`` §3.

A request may carry a video (shared/reference/video-apis.md §4): ``inline_data`` (base64), or ``file_data``
naming a file uploaded through ``gemini_files`` (which must be ``ACTIVE``), a YouTube link or another URL. Its
tokens are counted as Gemini 2.x does, and a model scripted with a ``VideoScript`` answers with its ``answer``:

    emu.script("gemini-2.5-flash", VideoScript(answer="A red square crosses the frame."))
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .._wire import default_message, dumps, sse, sse_headers
from ..chat import PDF, ChatFamily, Plan, Turn, b64_protobuf, sniff, text_of
from ..registry import Family, Request, Route
from ..script import Fault
from ..video_script import EmulatedJob

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


# Google's front end refuses a larger request body, whatever it holds (so inline video is capped by it).
MAX_REQUEST_BYTES = 20 << 20
# Files uploaded through the Files API are jobs of this family in the emulator's VideoBook (gemini_files.py).
FILES_FAMILY = "gemini-files"
# A File's state for each state of its job: processing while polls remain, then ACTIVE or FAILED.
FILE_STATES = {"queued": "PROCESSING", "running": "PROCESSING", "succeeded": "ACTIVE", "failed": "FAILED",
               "filtered": "FAILED"}
# Gemini 2.x video tokens (§4): frames sampled at 1 fps by default, 258 tokens a frame (66 at
# MEDIA_RESOLUTION_LOW), and 32 tokens per second of audio: about 300 tokens per second of video.
FRAME_TOKENS = 258
FRAME_TOKENS_LOW = 66
AUDIO_TOKENS_PER_S = 32
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)s\s*$")
_FILE_PATH = re.compile(r"(?:^|/)files/([^/:]+)$")
_YOUTUBE = re.compile(r"^(?:www\.|m\.)?(?:youtube\.com|youtu\.be)$")


def gemini_error(status: int, message: str, details: list[dict[str, Any]] | None = None, *,
                 status_name: str | None = None) -> dict[str, Any]:
    """A ``google.rpc.Status`` error body; ``status_name`` when the code's usual name is not the one
    (400 ``FAILED_PRECONDITION``)."""
    default = "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"
    error: dict[str, Any] = {"code": status, "message": message,
                             "status": status_name or _STATUS.get(status, default)}
    if details:
        error["details"] = details
    return {"error": error}


def probe(data: bytes) -> tuple[float, bool] | None:
    """(seconds, has an audio track) of a video in memory, read from its container header; None when PyAV
    cannot read it (not a video, or PyAV missing)."""
    try:
        import av

        with av.open(io.BytesIO(data), "r") as container:
            seconds = container.duration / 1_000_000 if container.duration else None
            if seconds is None:
                video = next(iter(container.streams.video), None)
                if video is not None and video.duration and video.time_base:
                    seconds = float(video.duration * video.time_base)
            audio = any(s.type == "audio" for s in container.streams)
    except Exception:  # any decoder complaint means the same thing here: not a video we can measure
        return None
    return (seconds, audio) if seconds is not None else None


def duration_text(seconds: float) -> str:
    """A protobuf duration: ``2.0`` -> ``"2s"``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def file_id_of(uri: str) -> str | None:
    """The id in a Files API URI (``http://host/gemini/v1beta/files/abc`` or ``files/abc``), else None."""
    match = _FILE_PATH.search(urlsplit(uri).path)
    return match.group(1) if match else None


def uploaded_file(req: Request, file_id: str) -> EmulatedJob | None:
    """The uploaded file ``file_id`` (a job of the Files family), None if there is none or it was deleted."""
    job = req.video.job(file_id)
    if job is None or job.family != FILES_FAMILY or job.cancelled:
        return None
    return job


def no_file(file_id: str) -> tuple[int, dict[str, Any]]:
    """What the API answers for a file that does not exist (or is not the caller's): 403, not 404."""
    return 403, gemini_error(403, f"You do not have permission to access the File {file_id} or it may not exist.")


@dataclass(frozen=True)
class Watched:
    """What the model watched in one request: its video and audio tokens."""

    video_tokens: int
    audio_tokens: int


@dataclass(frozen=True)
class VideoTurn(Turn):
    """A turn whose prompt held video: ``input_tokens`` includes the video and audio tokens."""

    text_tokens: int = 0
    video_tokens: int = 0
    audio_tokens: int = 0


class _Refused(Exception):
    """A request the API refuses for one of its parts: the status and the error body."""

    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        super().__init__(status)
        self.status = status
        self.body = gemini_error(status, body) if isinstance(body, str) else body


def _parts(body: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every part of every content, with where it is (``contents[0].parts[1]``) for error messages."""
    found = []
    for ci, content in enumerate(body.get("contents") or []):
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for pi, part in enumerate(parts if isinstance(parts, list) else []):
            if isinstance(part, Mapping):
                found.append((f"contents[{ci}].parts[{pi}]", part))
    return found


def _offset(value: Any, where: str, name: str) -> float | None:
    if value is None:
        return None
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise _Refused(400, f"Invalid value at '{where}.video_metadata.{name}' (type.googleapis.com/"
                            f"google.protobuf.Duration), Field '{name}', Illegal duration format; duration "
                            f"must end with 's'")
    return float(match.group(1))


def _window(meta: Any, where: str) -> tuple[float | None, float | None, float]:
    """(start, end, fps) of a part's ``video_metadata``; ``_Refused`` for a bad value."""
    if not isinstance(meta, Mapping):
        raise _Refused(400, f"Invalid value at '{where}.video_metadata': not an object")
    start = _offset(meta.get("start_offset", meta.get("startOffset")), where, "start_offset")
    end = _offset(meta.get("end_offset", meta.get("endOffset")), where, "end_offset")
    fps = meta.get("fps", 1.0)
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 24:
        raise _Refused(400, f"* GenerateContentRequest.{where}.video_metadata.fps: fps must be in (0, 24]")
    if start is not None and end is not None and end <= start:
        raise _Refused(400, f"* GenerateContentRequest.{where}.video_metadata: end_offset must be after start_offset")
    return start, end, float(fps)


# A Part's oneof ``data`` (google-genai 3.6.1 ``Part``): exactly one of these, under either JSON spelling.
_DATA_FIELDS = ("text", "inline_data", "file_data", "function_call", "function_response", "executable_code",
                "code_execution_result")
# The Part fields beside the data.
_PART_METADATA = ("thought", "thought_signature", "video_metadata", "media_resolution", "part_metadata")
_BLOB_FIELDS = ("data", "mime_type", "display_name")
# Image types Gemini documents (attachments.md §5.2): GIF is not one.
GEMINI_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
# Wording unconfirmed (reported by users, not quoted in the reference): bytes that are no image, or no PDF.
UNREADABLE_IMAGE = ("Unable to process input image. Please retry or report in "
                    "https://developers.generativeai.google/guide/troubleshooting")
UNREADABLE_PDF = "The document has no pages."


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _spelled(mapping: Mapping[str, Any], name: str) -> str | None:
    """The key ``mapping`` spells protobuf field ``name`` with (``inline_data`` or ``inlineData``), None if absent."""
    return next((key for key in (name, _camel(name)) if key in mapping), None)


def _bad_request(where: str, message: str) -> _Refused:
    """A 400 INVALID_ARGUMENT with the ``google.rpc.BadRequest`` field violation the API adds to a parse error."""
    violation = {"field": where, "description": message}
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}]
    return _Refused(400, gemini_error(400, message, details))


def _unknown(name: str, where: str) -> _Refused:
    message = f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
    return _bad_request(where, message)


def inline_bytes(blob: Mapping[str, Any], where: str, key: str) -> bytes:
    """The bytes of an inline blob's ``data`` (standard or URL-safe base64, padding optional); ``_Refused`` with
    the observed 'Base64 decoding failed' 400 otherwise (a data URL, say)."""
    data = blob.get("data")
    raw = b64_protobuf(data)
    if raw is None:
        # Observed: the error quotes the value up to its first comma ("data:image/png;base64").
        shown = str(data).split(",", 1)[0][:100]
        field = f"{where}.{key}.data"
        raise _bad_request(field, f"Invalid value at '{field}' (TYPE_BYTES), Base64 decoding failed for \"{shown}\"")
    return raw


def check_parts(body: Mapping[str, Any]) -> None:
    """Every part of every content as the API parses it: known fields only, exactly one data field, an inline
    blob with a MIME type Gemini takes and base64 it decodes; ``_Refused`` with the API's 400 otherwise."""
    for where, part in _parts(body):
        for key in part:
            if key not in {n for name in (*_DATA_FIELDS, *_PART_METADATA) for n in (name, _camel(name))}:
                raise _unknown(key, where)
        present = [k for k in (_spelled(part, name) for name in _DATA_FIELDS) if k is not None]
        if not present:
            raise _Refused(400, f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
                                "initialized field")
        if len(present) > 1:
            raise _bad_request(where, f"Invalid value at '{where}' (oneof), oneof field 'data' is already set. "
                                      f"Cannot set '{present[1]}'")
        key = present[0]
        if key in ("inline_data", "inlineData"):
            check_blob(part[key], where, key)


def check_blob(blob: Any, where: str, key: str) -> None:
    """One ``inline_data``: a MIME type, base64 data, an image type Gemini documents (no GIF), and bytes an image
    or PDF decoder reads where the MIME type says image or PDF."""
    if not isinstance(blob, Mapping):
        raise _bad_request(f"{where}.{key}", f"Invalid value at '{where}.{key}' (type.googleapis.com/"
                                             "google.ai.generativelanguage.v1beta.Blob), not an object")
    for name in blob:
        if name not in {n for field in _BLOB_FIELDS for n in (field, _camel(field))}:
            raise _unknown(name, f"{where}.{key}")
    mime_key = _spelled(blob, "mime_type")
    mime = blob.get(mime_key) if mime_key else None
    if not isinstance(mime, str) or not mime:
        raise _Refused(400, f"* GenerateContentRequest.{where}.{key}.mime_type: mime_type is not specified")
    raw = inline_bytes(blob, where, key)
    if mime.startswith("image/") and mime not in GEMINI_IMAGE_TYPES:
        raise _Refused(400, f"Unsupported MIME type: {mime}")  # observed, for image/gif and image/jpg alike
    # HEIC/HEIF are ISO boxes ("ftyp" at offset 4); the sniffer knows the other three.
    if mime.startswith("image/") and sniff(raw) not in GEMINI_IMAGE_TYPES and raw[4:8] != b"ftyp":
        raise _Refused(400, UNREADABLE_IMAGE)
    if mime == PDF and not raw.startswith(b"%PDF-"):
        raise _Refused(400, UNREADABLE_PDF)


# From chat() (which checks the video parts before anything is answered) to plan(), in the same task.
_WATCHED: ContextVar[Watched | None] = ContextVar("gemini_watched", default=None)


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

    # ---- video parts ---------------------------------------------------------------------------------

    async def chat(self, req: Request) -> None:
        """Check the request's size and video parts, then answer as any chat request."""
        if len(req.raw_body) > MAX_REQUEST_BYTES:
            message = f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
            await req.json(400, gemini_error(400, message))
            return
        try:
            if isinstance(req.body, Mapping):
                check_parts(req.body)
            watched = self.watch(req, req.body) if isinstance(req.body, Mapping) else None
        except _Refused as refused:
            await req.json(refused.status, refused.body)
            return
        token = _WATCHED.set(watched)
        try:
            await super().chat(req)
        finally:
            _WATCHED.reset(token)

    def watch(self, req: Request, body: Mapping[str, Any]) -> Watched | None:
        """The video tokens of the request's video parts (None when it has none); ``_Refused`` with the error
        the API answers for a bad one: undecodable base64, a file that is not ACTIVE or not there, a bad window."""
        config = body.get("generationConfig") or body.get("generation_config") or {}
        resolution = (config.get("mediaResolution") or config.get("media_resolution")
                      if isinstance(config, Mapping) else None)
        per_frame = FRAME_TOKENS_LOW if resolution == "MEDIA_RESOLUTION_LOW" else FRAME_TOKENS
        fallback = req.video.script(req.params.get("model", "")).clip_seconds
        video = audio = 0
        found = False
        for where, part in _parts(body):
            media = self._media(req, part, where)
            if media is None:
                continue
            found = True
            start, end, fps = _window(part.get("video_metadata") or part.get("videoMetadata") or {}, where)
            measured = probe(media) if media else None
            seconds, has_audio = measured or (fallback, False)
            watched_s = max(0.0, min(end if end is not None else seconds, seconds) - (start or 0.0))
            video += max(1, math.ceil(watched_s * fps)) * per_frame
            audio += math.ceil(watched_s * AUDIO_TOKENS_PER_S) if has_audio else 0
        return Watched(video, audio) if found else None

    def _media(self, req: Request, part: Mapping[str, Any], where: str) -> bytes | None:
        """The bytes of a video part (b"" for a URL the emulator cannot fetch), None for any other part;
        ``_Refused`` with the API's error for a bad one."""
        inline = part.get("inline_data", part.get("inlineData"))
        file = part.get("file_data", part.get("fileData"))
        if isinstance(inline, Mapping):
            # check_parts has seen this blob: it has a MIME type and its data decodes.
            mime = str(inline.get("mime_type", inline.get("mimeType")))
            if not mime.startswith("video/"):
                return None
            return inline_bytes(inline, where, "inline_data" if "inline_data" in part else "inlineData")
        if not isinstance(file, Mapping):
            return None
        uri = file.get("file_uri", file.get("fileUri"))
        mime = file.get("mime_type", file.get("mimeType"))
        if not isinstance(uri, str) or not uri:
            raise _Refused(400, f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is not specified")
        file_id = file_id_of(uri)
        if file_id is None:
            # A YouTube link or another URL: the emulator cannot fetch it, so its length is the script's.
            youtube = bool(_YOUTUBE.match((urlsplit(uri).hostname or "").lower()))
            return b"" if youtube or not isinstance(mime, str) or mime.startswith("video/") else None
        job = uploaded_file(req, file_id)
        if job is None:
            raise _Refused(*no_file(file_id))
        if job.state() != "succeeded":
            raise _Refused(400, gemini_error(400, f"The File {file_id} is not in an ACTIVE state and usage is "
                                             "not allowed.", status_name="FAILED_PRECONDITION"))
        stored = req.video.blob(job.blob) if job.blob else None
        kind = mime if isinstance(mime, str) else str(job.body["file"].get("mimeType", "video/mp4"))
        return (stored or b"") if kind.startswith("video/") else None

    def plan(self, req: Request, body: Mapping[str, Any], model: str) -> Plan:
        plan = super().plan(req, body, model)
        watched = _WATCHED.get()
        if watched is None:
            return plan
        chunks, finish = plan.chunks, plan.finish
        if model in req.video.models():  # a VideoScript says what this model sees in a video
            text, size = req.video.script(model).answer, max(1, plan.script.chunk_chars)
            chunks = [text[i : i + size] for i in range(0, len(text), size)]
            finish = plan.script.finish_reason or self.stop_reason
            cap = self.max_output_tokens(body)
            if cap is not None and len(chunks) > cap:
                chunks, finish = chunks[: max(cap, 0)], self.length_reason
        turn = plan.turn
        fields = {f.name: getattr(turn, f.name) for f in dataclasses.fields(Turn)}
        fields["input_tokens"] = turn.input_tokens + watched.video_tokens + watched.audio_tokens
        if plan.script.output_tokens is None:
            fields["output_tokens"] = len(chunks)
        video_turn = VideoTurn(**fields, text_tokens=turn.input_tokens, video_tokens=watched.video_tokens,
                               audio_tokens=watched.audio_tokens)
        return dataclasses.replace(plan, turn=video_turn, chunks=chunks, finish=finish)

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
        details = [{"modality": "TEXT", "tokenCount": turn.input_tokens}]
        if isinstance(turn, VideoTurn):
            details = [{"modality": "TEXT", "tokenCount": turn.text_tokens},
                       {"modality": "VIDEO", "tokenCount": turn.video_tokens}]
            if turn.audio_tokens:
                details.append({"modality": "AUDIO", "tokenCount": turn.audio_tokens})
        usage: dict[str, Any] = {
            "promptTokenCount": turn.input_tokens,
            "candidatesTokenCount": turn.output_tokens,
            "totalTokenCount": turn.input_tokens + turn.output_tokens,
            "promptTokensDetails": details,
        }
        if turn.cached_input_tokens:
            # Protobuf JSON leaves a zero count out; the cached part is inside promptTokenCount.
            usage["cachedContentTokenCount"] = turn.cached_input_tokens
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": turn.cached_input_tokens}]
        return usage

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
