"""Gemini Omni through the Interactions API: video generation as a background interaction, and questions
about a video (shared/reference/video-apis.md §3).

One interaction is one job. ``POST /v1/interactions`` with ``background: true`` answers at once with the
interaction's id and status; ``GET /v1/interactions/{id}`` reads it while it is ``queued`` or ``in_progress``;
every other status ends it (§10.4: ``completed``, ``failed``, ``cancelled``, ``incomplete``, ``budget_exceeded``,
``requires_continuation``, ``requires_action``, ``idle``, and any status this module does not know). The clip is
the interaction's ``output_video`` when the server sends it, else the last video item of the model's output
steps, found the way the SDK derives ``output_video``. A first frame (``--image``) or up to three reference
images (``--reference``) go in as image blocks after the prompt. A question about a video
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
from ...core.mime import FRAME_TYPES, HEAD_BYTES, sniff, sniff_file
from ...core.pricing import price_for
from .._http import WireContext, same_origin, send_json
from ..base import ChatRequest, Finished, OverHTTP, ProviderEvent, TextDelta, Usage
from ..chat._sse import json_int
from ..chat.gemini import classifier
from . import is_omni
from ._download import download_to, write_inline
from ._submit import submit_json
from .base import Clip, JobRef, JobStatus, VideoCaps, VideoQuestion, VideoRequest, VideoSource, or_words
from .gemini_api import api_headers, list_models

# The GA path, what google-genai 3.6.1 sends. The preview path was "v1beta" with an ``Api-Revision:
# 2026-05-20`` header; the GA one takes no revision header.
API_VERSION = "v1"

# ---- what each Omni model accepts (§3), the table check_request reads -----------------------------------------

ASPECTS = ("16:9", "9:16")
# The values of ``response_format.resolution`` (§3). The GCP model card names 720p only; which of the others a given
# Omni model refuses is unconfirmed, so all four are sent and a refusal comes back as the API's 400.
RESOLUTIONS = ("360p", "720p", "1080p", "4k")
# ``response_format.delivery`` takes "inline" or "uri". Always "uri": inline clips are reported to be capped at
# about 4 MB (a 1080p or 4k clip is larger), and a URI streams to disk in bounded memory.
DELIVERY = "uri"
MAX_SECONDS = 15
# Reference images one generation takes (image blocks of the input, task "reference_to_video").
MAX_REFERENCES = 3
# The longest clip of each Omni model (§3: the GCP card and third-party reports say 10 s; 1.2 up to 15 s). An id
# not listed here (a newer Omni) is held to the schema's limits only.
_MAX_SECONDS_OF = {"gemini-omni-flash": 10, "gemini-omni-1.1-flash": 10, "gemini-omni-1.2-flash": 15}
_CAPS_SOURCE = "reference §3 (GCP model card, third-party reports; unconfirmed)"
# A released or preview spelling of one model: "-preview", "-latest", "-001".
_RELEASE_SUFFIX = re.compile(r"-(?:preview(?:-[\w-]+)?|latest|\d{3})$")
NEGATIVE_NOTE = "--negative: Omni has no negative prompt; ignored"
# The Gemini API's limit on a whole request with inline media; larger videos go through the Files API,
# which only generateContent models read.
INLINE_VIDEO_LIMIT = 20 * 1024 * 1024

# A question is answered in seconds to a minute: poll quickly at first, then settle.
QUESTION_FIRST_POLL_S = 0.5
QUESTION_MAX_POLL_S = 2.0
# The best-effort cancel of an abandoned question must not hold up the cancellation that caused it.
CANCEL_TIMEOUT_S = 5.0

# How an interaction ends (shared/reference/video-apis.md §10.4, google-genai 3.6.1's InteractionStatus). Only
# "queued" and "in_progress" are waited on; every other status ends the wait, an unknown one included.
_WAITING = frozenset({"queued", "in_progress"})
# Stopped short of a usable result: failed, naming the status and what it means.
_STOPPED_SHORT = {
    "incomplete": "it completed with incomplete results (e.g. a token limit), so there is no usable clip",
    "budget_exceeded": "it was halted because its token budget was exceeded",
    # The SDK continues automatically only calls that are not background ones; a background video job that
    # stopped at the per-request decode limit did not finish.
    "requires_continuation": "it stopped at the per-request decode token limit, and a background video job is "
                             "not continued",
}
REQUIRES_ACTION = ("it needs input a video job cannot give (tool results); it would never advance by itself, "
                   "so fusion_magic stopped waiting")
KNOWN_STATUSES = frozenset({"queued", "in_progress", "requires_action", "completed", "failed", "cancelled",
                            "incomplete", "budget_exceeded", "requires_continuation", "idle"})
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
    def capabilities(cls, model: str) -> VideoCaps | None:
        """What an Omni model accepts (None: not an Omni id). Any ``gemini-omni`` id gets the Interactions schema's
        limits; the models the reference names get their own longest clip.

            InteractionsProvider.capabilities("gemini-omni-1.2-flash").max_seconds   # 15
        """
        if not is_omni(model):
            return None
        family = _RELEASE_SUFFIX.sub("", model)
        longest = _MAX_SECONDS_OF.get(family)
        price = price_for(f"gemini:{model}")
        return VideoCaps(model, min_seconds=1, max_seconds=longest or MAX_SECONDS, resolutions=RESOLUTIONS,
                         aspects=ASPECTS, first_frame=True, last_frame=False, references=MAX_REFERENCES, edit=True,
                         extend=False, price_per_second=price.per_second if price is not None else None,
                         source=_CAPS_SOURCE if longest else "the Interactions schema (§3); this id is not in "
                                                             "the reference's list")

    @classmethod
    def check_request(cls, request: VideoRequest) -> list[str]:
        """Refuse what the Omni model can never do (``ConfigError``, one line) and note the options it ignores."""
        name = f"gemini:{request.model}"
        caps = cls.capabilities(request.model)
        if caps is None:
            raise ConfigError(f"{name} is not a Gemini Omni model; Interactions generates with gemini-omni-* ids "
                              "(gemini:gemini-omni-1.2-flash)")
        if request.aspect is not None and request.aspect not in caps.aspects:
            raise ConfigError(f"--aspect {request.aspect}: {name} makes {' or '.join(caps.aspects)} video")
        if request.resolution is not None and request.resolution.lower() not in caps.resolutions:
            raise ConfigError(f"--resolution {request.resolution}: {name} makes {or_words(caps.resolutions)}")
        if request.seconds is not None and not caps.takes_seconds(request.seconds):
            raise ConfigError(f"--seconds {request.seconds}: {name} makes {caps.seconds_words()} seconds of video")
        if request.last_frame is not None and not caps.last_frame:
            # Omni's create body has no end frame (§3: text, image and video blocks, a task): refused rather than
            # a clip that silently ignores the frame it was asked to end on.
            raise ConfigError(f"--last-frame: {name} has no last-frame control; use a Veo 3.1 model "
                              "(gemini:veo-3.1-fast-generate-preview) with --image and --last-frame")
        if request.extend_uri is not None and not caps.extend:
            raise ConfigError(f"--extend continues a Veo clip through Veo's video.uri; {name} cannot (Omni revises "
                              "its own clips with --edit)")
        if request.image is not None:
            _image_type(request.image, "--image")
        if request.references:
            if len(request.references) > caps.references:
                raise ConfigError(f"--reference: {name} takes at most {caps.references} reference images, not "
                                  f"{len(request.references)}")
            if request.image is not None:
                # One task per interaction: image_to_video (a first frame) or reference_to_video (what the subject
                # looks like); a first frame among reference images could not be told from them.
                raise ConfigError(f"--reference with --image: {name} takes a first frame or reference images, "
                                  "not both; drop one")
            for path in request.references:
                _image_type(path, "--reference")
        return [NEGATIVE_NOTE] if request.negative else []

    def generation_body(self, request: VideoRequest) -> dict[str, Any]:
        """The create body of one generation (no network)."""
        content: str | list[dict[str, Any]] = request.prompt
        images = [("--image", request.image)] if request.image is not None else []
        images += [("--reference", path) for path in request.references]
        if images:
            # The text first, then the images (the order the Gemini docs advise for media and a prompt).
            content = [{"type": "text", "text": request.prompt}]
            content += [_image_block(flag, path) for flag, path in images]
        response_format: dict[str, Any] = {"type": "video"}
        if request.aspect is not None:
            response_format["aspect_ratio"] = request.aspect
        if request.seconds is not None:
            response_format["duration"] = f"{request.seconds}s"
        if request.resolution is not None:
            response_format["resolution"] = request.resolution.lower()
        response_format["delivery"] = DELIVERY
        if request.previous_job:
            task = "edit"
        elif request.image is not None:
            task = "image_to_video"
        elif request.references:
            task = "reference_to_video"
        else:
            task = "text_to_video"
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
        created, _ = await submit_json(self.client, self.url(), ctx=ctx, classify=classifier(ctx),
                                       headers=self.headers(), body=self.generation_body(request), timeout=None,
                                       provider="Gemini", where="https://aistudio.google.com (usage)")
        if not isinstance(created, Mapping):
            raise ctx.error(ProtocolError, f"expected a JSON object, got {str(created)[:120]!r}")
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
            while _status(interaction, ctx) in _WAITING:
                await asyncio.sleep(delay)
                delay = min(delay * 2, QUESTION_MAX_POLL_S)
                interaction = await self._send("GET", self.url(interaction_id), ctx)
        except BaseException:
            await self._abandon(interaction_id, ctx)
            raise
        status = _status(interaction, ctx)
        if status == "cancelled":
            raise ctx.error(CallCancelled, f"interaction {interaction_id} was cancelled at the provider")
        text = interaction.get("output_text")
        if not isinstance(text, str) or not text:
            text = output_text(_steps(interaction))
        if status != "completed" and not (status == "idle" and text):
            raise _ended_error(interaction, status, ctx)
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
    """One poll's ``Interaction`` as a ``JobStatus``, for every status the API has (§10.4). ``api_origin``: the
    API's origin; a clip URI there wants the key, one anywhere else never gets it.

    ``queued`` and ``in_progress`` are waited on (the job loop's timeout leaves a job that never leaves them
    resumable); ``completed`` is the clip, and ``idle`` too when the interaction holds one; everything else ends
    the job: ``cancelled`` as cancelled, a safety code as filtered, the rest as failed with one line naming the
    status, an unknown status included (never a wait until the timeout)."""
    status = _status(interaction, ctx)
    usage = interaction_usage(interaction)
    if status == "queued":
        return JobStatus("queued", usage=usage)
    if status == "in_progress":
        return JobStatus("running", usage=usage)
    if status == "cancelled":
        return JobStatus("cancelled", usage=usage)
    if status == "completed":
        return _completed(interaction, ctx, usage, api_origin)
    if status == "idle" and _video_item(interaction) is not None:
        # Nothing is running any more, and the interaction holds a clip: that is the result.
        return _completed(interaction, ctx, usage, api_origin)
    return _failure(interaction, status, ctx, usage)


def _video_item(interaction: Mapping[str, Any]) -> Mapping[str, Any] | None:
    item = interaction.get("output_video")
    return item if isinstance(item, Mapping) else output_video(_steps(interaction))


def _completed(interaction: Mapping[str, Any], ctx: WireContext, usage: Usage | None,
               api_origin: str) -> JobStatus:
    item = _video_item(interaction)
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
    return JobStatus("failed", error=_ended_error(interaction, status, ctx), usage=usage)


def _ended_error(interaction: Mapping[str, Any], status: str, ctx: WireContext) -> ProviderError:
    """The one-line error of an interaction that ended without a result, naming its status and, where the
    interaction gives them, its error and usage."""
    code, message = interaction_fault(interaction)
    if code in _BLOCK_CODES or (code is not None and "SAFETY" in code):
        return ctx.error(BlockedError, message or f"blocked ({code})", code=code)
    if status == "failed":
        cls = _ERROR_CLASSES.get(code or "", ServerError)
        return ctx.error(cls, message or "the interaction ended with status failed", code=code or status)
    fault = f"; {code or 'error'}: {message}" if message else (f"; error code {code}" if code else "")
    spent = _usageor_words(interaction_usage(interaction))
    if status in _STOPPED_SHORT:
        text = f"the interaction ended with status {status}: {_STOPPED_SHORT[status]}{fault}{spent}"
        # Not retried by a caller: the same request would stop the same way, and was paid for.
        return ctx.error(ServerError, text, code=status, retryable=False)
    if status == "requires_action":
        return ctx.error(BadRequestError, f"the interaction ended with status {status}: {REQUIRES_ACTION}{fault}",
                         code=status)
    if status == "idle":
        return ctx.error(ProtocolError, f"the interaction ended with status idle and no video: nothing is running "
                                        f"any more{fault}{spent}", code=status)
    # A status newer than this module (the SDK keeps unknown ones as strings): one line, not a wait to the timeout.
    return ctx.error(ProtocolError, f"the interaction has status {status[:60]!r}, which fusion_magic does not know "
                                    f"(known: {', '.join(sorted(KNOWN_STATUSES))}); stopped waiting{fault}",
                     code=status[:60])


def _usageor_words(usage: Usage | None) -> str:
    if usage is None or not (usage.input_tokens or usage.output_tokens):
        return ""
    return (f"; usage: {usage.input_tokens or 0:,} input and {usage.output_tokens or 0:,} output tokens "
            "(may be billed)")


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


def _image_type(path: Path, flag: str) -> str:
    """The image's MIME type from its bytes (a JPEG named .png is a JPEG); ``ConfigError`` naming ``flag`` when it
    is missing or not PNG/JPEG."""
    if not path.is_file():
        raise ConfigError(f"{flag} {path}: no such file")
    mime = sniff_file(path)
    if mime not in FRAME_TYPES:
        what = "first frame" if flag == "--image" else "reference image"
        raise ConfigError(f"{flag} {path}: Omni takes a PNG or JPEG {what}")
    return mime


def _image_block(flag: str, path: Path) -> dict[str, Any]:
    """An image content block: base64 bytes and the type the bytes are."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: {exc.strerror or exc}") from exc
    mime = sniff(data[:HEAD_BYTES])
    if mime not in FRAME_TYPES:
        raise ConfigError(f"{flag} {path}: Omni takes a PNG or JPEG image")
    return {"type": "image", "data": base64.b64encode(data).decode("ascii"), "mime_type": mime}


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
