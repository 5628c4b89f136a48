"""Gemini Omni through the Interactions API: video generation as a background interaction, and questions
about a video (shared/reference/video-apis.md §3).

One interaction is one job. ``POST /v1/interactions`` with ``background: true`` answers at once with the
interaction's id and status; ``GET /v1/interactions/{id}`` reads it until it is completed, failed or
cancelled. The clip is the interaction's ``output_video`` when the server sends it, else the last video
item of the model's output steps, found the way the SDK derives ``output_video``. A question about a video
is the same call with a video block in the input and a text answer, polled inside ``stream``.

    provider = InteractionsProvider(resolve_endpoint(BUILTIN["gemini"]), client)
    job = await provider.submit(VideoRequest(model="gemini-omni-1.2-flash", prompt="a marble run", seconds=6))
    status = await provider.poll(job)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from ...core.errors import (
    AuthError,
    BadRequestError,
    BlockedError,
    CallCancelled,
    ConfigError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
)
from ...core.mime import FRAME_TYPES, sniff_file
from .._http import WireContext, same_origin, send_json
from ..base import ChatRequest, Finished, OverHTTP, ProviderEvent, TextDelta, Usage
from ..chat._sse import json_int
from ..chat.gemini import classifier
from . import is_omni
from ._download import download_to, write_inline
from .base import Clip, JobRef, JobStatus, VideoQuestion, VideoRequest, VideoSource
from .gemini_api import api_headers, list_models

# The GA path, what google-genai 3.6.1 sends. The preview path was "v1beta" with an ``Api-Revision:
# 2026-05-20`` header; the GA one takes no revision header.
API_VERSION = "v1"

ASPECTS = ("16:9", "9:16")
RESOLUTIONS = ("360p", "720p", "1080p", "4k")
MAX_SECONDS = 15
NEGATIVE_NOTE = "--negative: Omni has no negative prompt; ignored"
# The Gemini API's limit on a whole request with inline media; larger videos go through the Files API,
# which only generateContent models read.
INLINE_VIDEO_LIMIT = 20 * 1024 * 1024

# A question is answered in seconds to a minute: poll quickly at first, then settle.
QUESTION_FIRST_POLL_S = 0.5
QUESTION_MAX_POLL_S = 2.0
# The best-effort cancel of an abandoned question must not hold up the cancellation that caused it.
CANCEL_TIMEOUT_S = 5.0

_QUEUED = frozenset({"queued"})
_RUNNING = frozenset({"in_progress", "requires_action"})
# "continuation_required" asks the client to resume a long decode, which a video job never does.
_FAILED = frozenset({"failed", "incomplete", "budget_exceeded", "continuation_required"})
_FINAL = _FAILED | {"completed", "cancelled"}
# Error codes that mean the safety filter withheld the output: not a failure of ours, and not billed.
_BLOCK_CODES = frozenset({"SAFETY", "BLOCKED", "PROHIBITED_CONTENT"})
# google.rpc.Code numbers, for a step's ``error`` (a google.rpc.Status), to the names errors[] use.
_RPC_NAMES = {1: "CANCELLED", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
              7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 11: "OUT_OF_RANGE",
              13: "INTERNAL", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED"}
_ERROR_CLASSES: dict[str, type[ProviderError]] = {
    "INVALID_ARGUMENT": BadRequestError, "FAILED_PRECONDITION": BadRequestError, "NOT_FOUND": BadRequestError,
    "OUT_OF_RANGE": BadRequestError, "PERMISSION_DENIED": AuthError, "UNAUTHENTICATED": AuthError,
    "RESOURCE_EXHAUSTED": RateLimitError, "DEADLINE_EXCEEDED": ProviderTimeout, "CANCELLED": CallCancelled,
}
_FILE_RESOURCE = re.compile(r"/files/[^/:]+$")


class InteractionsProvider(OverHTTP):
    """Omni's video jobs (a ``VideoProvider``) and questions about a video (a chat ``Provider``).

        job = await provider.submit(VideoRequest(model="gemini-omni-1.2-flash", prompt="a fox in snow"))
        text = [e.text async for e in provider.stream(question) if isinstance(e, TextDelta)]
    """

    protocol: ClassVar[str] = "interactions"
    poll_interval: ClassVar[float] = 5.0
    supports_json_schema: ClassVar[bool] = False
    needs_http: ClassVar[bool] = True

    # ---- where and how ---------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """The Gemini base URL (an origin; the emulator's has a path), without a trailing slash."""
        return self.endpoint.base_url.rstrip("/")

    def url(self, job_id: str | None = None, verb: str = "") -> str:
        """``{base}/v1/interactions[/{id}][/cancel]``."""
        url = f"{self.base}/{API_VERSION}/interactions"
        if job_id is not None:
            url += "/" + quote(job_id, safe="")
        return url + (f"/{verb}" if verb else "")

    def headers(self) -> dict[str, str]:
        return api_headers(self.endpoint)

    def _ctx(self, model: str) -> WireContext:
        return WireContext(self.endpoint.provider, model, self.endpoint.api_key)

    async def _send(self, method: str, url: str, ctx: WireContext, body: Mapping[str, Any] | None = None,
                    params: Mapping[str, str] | None = None) -> Mapping[str, Any]:
        payload, _ = await send_json(self.client, method, url, ctx=ctx, classify=classifier(ctx),
                                     headers=self.headers(), body=body, params=params)
        if not isinstance(payload, Mapping):
            raise ctx.error(ProtocolError, f"expected a JSON object, got {str(payload)[:120]!r}")
        return payload

    # ---- generation --------------------------------------------------------------------------------------

    @classmethod
    def check_request(cls, request: VideoRequest) -> list[str]:
        """Refuse what Omni can never do (``ConfigError``) and note the options it ignores."""
        name = f"gemini:{request.model}"
        if request.aspect is not None and request.aspect not in ASPECTS:
            raise ConfigError(f"--aspect {request.aspect}: {name} makes {' or '.join(ASPECTS)} video")
        if request.resolution is not None and request.resolution not in RESOLUTIONS:
            raise ConfigError(f"--resolution {request.resolution}: {name} makes {', '.join(RESOLUTIONS)}")
        if request.seconds is not None and not 1 <= request.seconds <= MAX_SECONDS:
            raise ConfigError(f"--seconds {request.seconds}: {name} makes 1 to {MAX_SECONDS} seconds of video")
        if request.last_frame is not None:
            # Omni's create body has no end frame (§3: text, image and video blocks, a task): refused rather than
            # a clip that silently ignores the frame it was asked to end on.
            raise ConfigError(f"--last-frame: {name} has no last-frame control; use a Veo 3.1 model "
                              "(gemini:veo-3.1-fast-generate-preview) with --image and --last-frame")
        if request.extend_uri is not None:
            raise ConfigError(f"--extend continues a Veo clip through Veo's video.uri; {name} cannot (Omni revises "
                              "its own clips with --edit)")
        if request.image is not None:
            _image_type(request.image)
            if not request.image.is_file():
                raise ConfigError(f"--image {request.image}: no such file")
        return [NEGATIVE_NOTE] if request.negative else []

    def generation_body(self, request: VideoRequest) -> dict[str, Any]:
        """The create body of one generation (no network)."""
        content: str | list[dict[str, Any]] = request.prompt
        if request.image is not None:
            try:
                data = request.image.read_bytes()
            except OSError as exc:
                raise ConfigError(f"--image {request.image}: {exc.strerror or exc}") from exc
            content = [{"type": "text", "text": request.prompt},
                       {"type": "image", "data": base64.b64encode(data).decode("ascii"),
                        "mime_type": _image_type(request.image)}]
        response_format: dict[str, Any] = {"type": "video"}
        if request.aspect is not None:
            response_format["aspect_ratio"] = request.aspect
        if request.seconds is not None:
            response_format["duration"] = f"{request.seconds}s"
        if request.resolution is not None:
            response_format["resolution"] = request.resolution
        # A URI, never inline: inline clips are reported to be capped at about 4 MB, and a URI streams to disk.
        response_format["delivery"] = "uri"
        task = "edit" if request.previous_job else "image_to_video" if request.image else "text_to_video"
        body: dict[str, Any] = {
            "model": request.model,
            "input": content,
            "response_modalities": ["video"],
            "response_format": response_format,
            "generation_config": {"video_config": {"task": task}},
            "background": True,
        }
        if request.previous_job:
            body["previous_interaction_id"] = request.previous_job
        return body

    async def submit(self, request: VideoRequest) -> JobRef:
        """Create one background interaction; returns its id once the API accepted it."""
        ctx = self._ctx(request.model)
        created = await self._send("POST", self.url(), ctx, self.generation_body(request))
        return JobRef(self.protocol, request.model, _interaction_id(created, ctx))

    async def poll(self, job: JobRef) -> JobStatus:
        """The interaction's state now."""
        ctx = self._ctx(job.model)
        interaction = await self._send("GET", self.url(job.job_id), ctx)
        return read_interaction(interaction, ctx, api_origin=self.base)

    async def download(self, clip: Clip, dest: Path) -> int:
        """Stream the clip to ``dest``; the key goes to the API's own host only, never across a redirect."""
        if clip.data is not None:
            return write_inline(clip.data, dest)
        if not clip.uri:
            raise self._ctx("").error(ProtocolError, "the clip has neither a URI nor data")
        ctx = self._ctx("")
        headers = self.headers() if clip.needs_key and same_origin(clip.uri, self.base) else {}
        return await download_to(self.client, clip.uri, dest, ctx=ctx, classify=classifier(ctx), headers=headers)

    async def cancel(self, job: JobRef) -> None:
        """Ask the API to stop a background interaction."""
        await self._send("POST", self.url(job.job_id, "cancel"), self._ctx(job.model))

    async def list_models(self) -> list[str]:
        """Omni models this key can use: ``supportedGenerationMethods`` names ``interactionsOnly`` [3P], or
        the id is a ``gemini-omni`` one."""
        return await list_models(self.client, self.base, self.headers(), self._ctx(""),
                                 keep=lambda name, methods: "interactionsOnly" in methods or is_omni(name))

    # ---- questions about a video -----------------------------------------------------------------------

    async def question_body(self, request: ChatRequest) -> dict[str, Any]:
        """The create body of a question: the video block, then the question text (the order the Gemini
        docs advise), as a background interaction that answers in text. A question that continues the
        interaction which made the clip (``previous_interaction``) sends no video: the model has it."""
        ctx = self._ctx(request.model)
        turns = request.turns
        question = turns[-1].content if turns else ""
        previous = request.previous_interaction if isinstance(request, VideoQuestion) else None
        blocks: list[dict[str, Any]] = []
        if isinstance(request, VideoQuestion) and request.video is not None and previous is None:
            blocks.append(await _video_block(request.video, ctx))
        blocks.append({"type": "text", "text": question})
        content: list[dict[str, Any]] = blocks
        if len(turns) > 1:
            # Earlier turns go in as the steps of a conversation, the video with the last question.
            content = [{"type": "user_input" if m.role == "user" else "model_output",
                        "content": [{"type": "text", "text": m.content}]} for m in turns[:-1]]
            content.append({"type": "user_input", "content": blocks})
        body: dict[str, Any] = {"model": request.model, "input": content, "response_modalities": ["text"],
                                "background": True}
        if previous is not None:
            body["previous_interaction_id"] = previous
        if request.system is not None:
            body["system_instruction"] = request.system
        # The Interactions generation_config has no temperature; the rest maps one to one.
        config: dict[str, Any] = {}
        if request.max_tokens is not None:
            config["max_output_tokens"] = request.max_tokens
        if request.seed is not None:
            config["seed"] = request.seed
        if request.stop:
            config["stop_sequences"] = list(request.stop)
        if config:
            body["generation_config"] = config
        return body

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Ask, wait for the answer, and yield it: one ``TextDelta``, ``Usage``, ``Finished``.

        Everything that can fail fails before the first event, so the caller may retry. A cancelled wait
        (or a failed poll) cancels the interaction at the API, best effort, before it propagates.
        """
        ctx = self._ctx(request.model)
        interaction = await self._send("POST", self.url(), ctx, await self.question_body(request))
        interaction_id = _interaction_id(interaction, ctx)
        try:
            delay = QUESTION_FIRST_POLL_S
            while _status(interaction, ctx) not in _FINAL:
                await asyncio.sleep(delay)
                delay = min(delay * 2, QUESTION_MAX_POLL_S)
                interaction = await self._send("GET", self.url(interaction_id), ctx)
        except BaseException:
            await self._abandon(interaction_id, ctx)
            raise
        status = _status(interaction, ctx)
        if status == "cancelled":
            raise ctx.error(CallCancelled, f"interaction {interaction_id} was cancelled at the provider")
        if status != "completed":
            raise _failure_error(interaction, status, ctx)
        text = interaction.get("output_text")
        if not isinstance(text, str) or not text:
            text = output_text(_steps(interaction))
        if not text:
            raise ctx.error(ProtocolError, f"interaction {interaction_id} completed without a text answer")
        yield TextDelta(text)
        usage = interaction_usage(interaction)
        if usage is not None:
            yield usage
        model = interaction.get("model")
        yield Finished("completed", model if isinstance(model, str) else None, interaction_id)

    async def _abandon(self, interaction_id: str, ctx: WireContext) -> None:
        # Whatever stopped the wait, a running interaction would go on and be billed.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._send("POST", self.url(interaction_id, "cancel"), ctx), CANCEL_TIMEOUT_S)


# ---- reading an interaction (no I/O) ---------------------------------------------------------------------


def read_interaction(interaction: Mapping[str, Any], ctx: WireContext, *, api_origin: str) -> JobStatus:
    """One poll's ``Interaction`` as a ``JobStatus``. ``api_origin``: the API's origin; a clip URI there
    wants the key, one anywhere else never gets it."""
    status = _status(interaction, ctx)
    usage = interaction_usage(interaction)
    if status in _QUEUED:
        return JobStatus("queued", usage=usage)
    if status == "cancelled":
        return JobStatus("cancelled", usage=usage)
    if status in _FAILED:
        return _failure(interaction, status, ctx, usage)
    if status == "completed":
        return _completed(interaction, ctx, usage, api_origin)
    # in_progress, requires_action, and any status newer than this module (the SDK keeps unknown ones):
    # the job loop's timeout bounds one that never ends.
    return JobStatus("running", progress=None if status in _RUNNING else f"status {status}", usage=usage)


def _completed(interaction: Mapping[str, Any], ctx: WireContext, usage: Usage | None,
               api_origin: str) -> JobStatus:
    item = interaction.get("output_video")
    if not isinstance(item, Mapping):
        item = output_video(_steps(interaction))
    if item is None:
        # A completed interaction without a clip: say what the model said instead, if anything.
        said = output_text(_steps(interaction))
        message = "completed without a video" + (f"; the model said: {said}" if said else "")
        return JobStatus("failed", error=ctx.error(ProtocolError, message), usage=usage)
    return JobStatus("succeeded", clips=(_clip(item, ctx, api_origin),), usage=usage)


def _clip(item: Mapping[str, Any], ctx: WireContext, api_origin: str) -> Clip:
    mime = item.get("mime_type")
    mime = mime if isinstance(mime, str) and mime else "video/mp4"
    data = item.get("data")
    if isinstance(data, str) and data:
        try:
            return Clip(data=base64.b64decode(data, validate=True), mime=mime)
        except (binascii.Error, ValueError) as exc:
            raise ctx.error(ProtocolError, "the inline video is not valid base64") from exc
    uri = item.get("uri")
    if not isinstance(uri, str) or not uri:
        raise ctx.error(ProtocolError, "the video output has neither a uri nor data")
    return Clip(uri=download_url(uri), mime=mime, needs_key=same_origin(uri, api_origin))


def _failure(interaction: Mapping[str, Any], status: str, ctx: WireContext, usage: Usage | None) -> JobStatus:
    code, message = interaction_fault(interaction)
    if code in _BLOCK_CODES or (code is not None and "SAFETY" in code):
        return JobStatus("filtered", reason=message or code, usage=usage)
    return JobStatus("failed", error=_failure_error(interaction, status, ctx), usage=usage)


def _failure_error(interaction: Mapping[str, Any], status: str, ctx: WireContext) -> ProviderError:
    code, message = interaction_fault(interaction)
    if code in _BLOCK_CODES or (code is not None and "SAFETY" in code):
        return ctx.error(BlockedError, message or f"blocked ({code})", code=code)
    cls = _ERROR_CLASSES.get(code or "", ServerError)
    return ctx.error(cls, message or f"the interaction ended with status {status}", code=code or status)


def interaction_fault(interaction: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The interaction's error as (code, message): ``errors[0]``, else the last step's ``error``. Codes are
    upper-case names; a URI code keeps its last segment, a google.rpc number becomes its name."""
    candidates: list[Any] = []
    errors = interaction.get("errors")
    if isinstance(errors, list) and errors:
        candidates.append(errors[0])
    candidates.extend(step.get("error") for step in reversed(_steps(interaction)))
    for error in candidates:
        if not isinstance(error, Mapping):
            continue
        raw = error.get("code")
        code: str | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            code = _RPC_NAMES.get(raw, str(raw))
        elif isinstance(raw, str) and raw.strip():
            code = raw.strip().rstrip("/").rsplit("/", 1)[-1].upper()
        message = error.get("message")
        return code, message if isinstance(message, str) and message.strip() else None
    return None, None


def interaction_usage(interaction: Mapping[str, Any]) -> Usage | None:
    """``usage`` as our ``Usage``; thinking is billed as output, so it counts there."""
    usage = interaction.get("usage")
    if not isinstance(usage, Mapping):
        return None
    output = json_int(usage.get("total_output_tokens"))
    thoughts = json_int(usage.get("total_thought_tokens"))
    return Usage(
        input_tokens=json_int(usage.get("total_input_tokens")),
        output_tokens=None if output is None and thoughts is None else (output or 0) + (thoughts or 0),
        cached_input_tokens=json_int(usage.get("total_cached_tokens")),
    )


def output_video(steps: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The last video item of the model's output since the last user input (the SDK's ``output_video``)."""
    for step in reversed(steps):
        if step.get("type") == "user_input":
            break
        if step.get("type") != "model_output" or not isinstance(step.get("content"), list):
            continue
        for item in reversed(step["content"]):
            if isinstance(item, Mapping) and item.get("type") == "video":
                return item
    return None


def output_text(steps: Sequence[Mapping[str, Any]]) -> str:
    """The trailing run of text items of the model's output (the SDK's ``output_text``)."""
    parts: list[str] = []
    collecting = False
    for step in reversed(steps):
        if step.get("type") == "user_input":
            break
        content = step.get("content")
        if step.get("type") != "model_output" or not isinstance(content, list):
            if collecting:
                break
            continue
        for item in reversed(content):
            if isinstance(item, Mapping) and item.get("type") == "text":
                collecting = True
                parts.append(item["text"] if isinstance(item.get("text"), str) else "")
            elif collecting:
                return "".join(reversed(parts))
    return "".join(reversed(parts))


def download_url(uri: str) -> str:
    """A Files API resource URI (``.../files/abc123``) as its download URL (``...:download?alt=media``), as
    the SDK's ``files.download`` builds it: the bare resource answers with metadata, not the video."""
    parts = urlsplit(uri)
    if _FILE_RESOURCE.search(parts.path) and not parts.query:
        return urlunsplit(parts._replace(path=parts.path + ":download", query="alt=media"))
    return uri


def _status(interaction: Mapping[str, Any], ctx: WireContext) -> str:
    status = interaction.get("status")
    if not isinstance(status, str) or not status:
        raise ctx.error(ProtocolError, "the interaction has no status")
    return status


def _steps(interaction: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    steps = interaction.get("steps")
    return [s for s in steps if isinstance(s, Mapping)] if isinstance(steps, list) else []


def _interaction_id(interaction: Mapping[str, Any], ctx: WireContext) -> str:
    value = interaction.get("id")
    if not isinstance(value, str) or not value:
        raise ctx.error(ProtocolError, "the created interaction has no id")
    return value


def _image_type(path: Path) -> str:
    mime = sniff_file(path)  # from the bytes: a JPEG named .png is a JPEG
    if mime not in FRAME_TYPES:
        raise ConfigError(f"--image {path}: Omni takes a PNG or JPEG first frame")
    return mime


async def _video_block(video: VideoSource, ctx: WireContext) -> dict[str, Any]:
    # Interactions video blocks take no clipping or frame rate (Gemini's videoMetadata); a question about
    # part of a clip needs a generateContent model.
    if video.url is not None:
        return {"type": "video", "uri": video.url, "mime_type": video.mime}
    if video.path is None:
        raise ConfigError("a question about a video needs a file or a URL")
    try:
        size = video.path.stat().st_size
        if size > INLINE_VIDEO_LIMIT:
            raise ctx.error(BadRequestError, f"video too large for inline Omni input ({size / 2**20:.0f} MB, "
                                             f"limit {INLINE_VIDEO_LIMIT // 2**20} MB); use a Gemini model "
                                             "(Files API) or a URL")
        data = await asyncio.to_thread(video.path.read_bytes)
    except OSError as exc:
        raise ConfigError(f"cannot read video {video.path}: {exc.strerror or exc}") from exc
    return {"type": "video", "data": base64.b64encode(data).decode("ascii"), "mime_type": video.mime}


__all__ = ["API_VERSION", "InteractionsProvider", "download_url", "interaction_fault", "interaction_usage",
           "output_text", "output_video", "read_interaction"]
