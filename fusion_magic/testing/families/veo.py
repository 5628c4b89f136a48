"""Gemini Veo: ``POST /gemini/v1beta/models/{model}:predictLongRunning`` and operation polling
(shared/reference/video-apis.md §2), and the Gemini model list (``GET /gemini/v1beta/models``).
Finished clips are downloaded through ``gemini_files``.

    emu.script("veo-3.1-generate-preview", VideoScript(polls=2, delivery="inline"))
    emu.script("veo-2.0-generate-001", VideoScript(submit_faults=[Fault("status", status=404)]))

The operation answers without ``done`` on odd polls and with ``"done": false`` on even ones, as both
are seen on the wire, so a client must read a missing ``done`` as false.

Veo 3.1's first+last frame and scene extension are checked as §2.2-2.3 state them: ``lastFrame`` is an image
like ``image`` and comes with one, and both it and an extension need 8 s; an extension's ``video`` is
``{"uri": ...}`` only (bytes are refused), at 720p, and the URI must be a sample URI this emulator's Veo
operations answered with (not the storage host a download is redirected to, not an inline clip, not another
family's file) of at most 141 s of (nominal) video: a first clip counts its ``durationSeconds``, each extension
7 s more. The clip an extension serves is the whole video, longer: its source's clip plus its own script's
``clip_seconds``.

Reference images (``referenceImages``, §2.1-2.3) are a list of one to three ``{"image": {...}, "referenceType":
"asset" | "style"}``, each image like ``image``, at 8 s and 16:9 only, and on their own: not with ``image``,
``lastFrame`` or ``video`` (unconfirmed that the API refuses the mix; the guide lists them as separate uses).
Every image's bytes must be the type its ``mimeType`` says.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from .._wire import default_message
from ..registry import Request, Route
from ..script import Fault
from ..video import AFTER_ACCEPT, answer_accepted, api_origin
from ..video_script import EmulatedJob, made_clip
from .gemini import GeminiAuth, gemini_error
from .gemini_files import file_uri

_MODELS = "/gemini/v1beta/models"
_RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"

# Veo 3.1's limits (§2.3), as the server enforces them.
_ASPECTS = ("16:9", "9:16")
_SECONDS = (4, 6, 8)
_RESOLUTIONS = ("720p", "1080p", "4k")
_EIGHT_SECONDS_ONLY = ("1080p", "4k")
_IMAGE_TYPES = ("image/png", "image/jpeg")
_IMAGE_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff"}
# Reference images (§2.1, §2.3): at most three, 8 s and 16:9 only.
_MAX_REFERENCES = 3
_REFERENCE_TYPES = ("asset", "style")
_REFERENCE_ASPECT = "16:9"
# Extension (§2.3): +7 s per call at 720p and 8 s, input a Veo video of at most 141 s.
_EXTENSION_ADDS = 7
_EXTENSION_RESOLUTION = "720p"
_MAX_EXTEND_INPUT = 141
_FRAMES_AND_EXTENSION_SECONDS = 8

# What GET /models lists besides the scripted video models: a few chat models, the current Veo models and Omni.
_CHAT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite")
_VEO_MODELS = ("veo-3.1-generate-preview", "veo-3.1-fast-generate-preview")
_OMNI_MODELS = ("gemini-omni-1.2-flash",)
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 1000
_PAGE_TOKEN = "emu-page-"


class Veo(GeminiAuth):
    """Veo's long-running operations, driven by the ``VideoScript`` of the model in the path."""

    name = "gemini-veo"

    def routes(self) -> Sequence[Route]:
        # None of these collide with the chat family's POST {model:path}:generateContent routes.
        return [
            Route("POST", _MODELS + "/{model}:predictLongRunning", self.submit),
            Route("GET", _MODELS + "/{model}/operations/{op}", self.poll),
            Route("GET", _MODELS, self.list_models),
        ]

    # ---- submit -----------------------------------------------------------------------------------

    async def submit(self, req: Request) -> None:
        model = req.params["model"]
        fault = req.video.fault(model, "submit")
        if fault is not None and fault.kind not in AFTER_ACCEPT:
            await self._answer_fault(req, model, fault)
            return
        problem = validate(req.body) or self._extension_problem(req, req.body)
        if problem is not None:
            await req.json(400, gemini_error(400, problem))
            return
        job = req.video.submit(self.name, model, req.body)
        await answer_accepted(req, fault, {"name": _operation(model, job)})  # accepted (and billed) either way

    # ---- poll -------------------------------------------------------------------------------------

    async def poll(self, req: Request) -> None:
        model, op = req.params["model"], req.params["op"]
        if await self._fault(req, model, "poll"):
            return
        job = req.video.job(op)
        if job is None or job.model != model or job.family != self.name:
            await req.json(404, gemini_error(404, "Requested entity was not found."))
            return
        state = job.advance()
        name = _operation(model, job)
        if state in ("queued", "running"):
            # Both shapes are seen in the wild: "done": false, and no "done" at all.
            await req.json(200, {"name": name} if job.polls % 2 else {"name": name, "done": False})
            return
        if state == "cancelled":
            await req.json(200, {"name": name, "done": True, "error": {"code": 1, "message": "Operation cancelled."}})
            return
        if state == "failed":
            error = {"code": 13, "message": job.script.error_message}  # google.rpc.Code INTERNAL
            await req.json(200, {"name": name, "done": True, "error": error})
            return
        videos: dict[str, Any]
        if state == "filtered":
            videos = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [job.script.reason]}
        elif job.script.delivery == "inline":
            encoded = base64.b64encode(self._clip_data(req, job)).decode("ascii")
            videos = {"generatedSamples": [{"video": {"encodedVideo": encoded, "encoding": "video/mp4"}}]}
        else:
            if job.blob is None and self.source(req, job) is not None:
                # An extension's clip is the whole, longer video: stored before ``finish`` would store the
                # script's own (shorter) clip.
                job.blob = req.video.store(f"{job.family}-{job.id}", self._clip_data(req, job),
                                           redirect=job.script.delivery != "uri")
            uri = file_uri(api_origin(req), req.video.finish(job))
            videos = {"generatedSamples": [{"video": {"uri": uri}}]}
        await req.json(200, {"name": name, "done": True,
                             "response": {"@type": _RESPONSE_TYPE, "generateVideoResponse": videos}})

    # ---- extension ----------------------------------------------------------------------------------

    def extended(self, req: Request, uri: Any) -> EmulatedJob | None:
        """The finished Veo job whose sample URI ``uri`` is, or None (not a URI this emulator's Veo answered:
        a storage redirect target, an inline clip, another family's file, another host)."""
        if not isinstance(uri, str):
            return None
        given = urlsplit(uri)
        for job in req.video.jobs():
            if job.family != self.name or job.blob is None or job.state() != "succeeded":
                continue
            made = urlsplit(file_uri(api_origin(req), job.blob))
            if (given.scheme, given.netloc, given.path) == (made.scheme, made.netloc, made.path):
                return job
        return None

    def source(self, req: Request, job: EmulatedJob) -> EmulatedJob | None:
        """The job whose clip ``job`` extends, or None for a first clip."""
        video = _instance(job.body).get("video")
        return self.extended(req, video.get("uri")) if isinstance(video, Mapping) else None

    def nominal_seconds(self, req: Request, job: EmulatedJob) -> int:
        """How long the real clip would be: its ``durationSeconds``, plus 7 s for each extension in its chain."""
        seconds, extensions, seen = 0, 0, set()
        current: EmulatedJob | None = job
        while current is not None and current.id not in seen:
            seen.add(current.id)
            source = self.source(req, current)
            if source is None:
                parameters = current.body.get("parameters") if isinstance(current.body, Mapping) else None
                asked = parameters.get("durationSeconds", 8) if isinstance(parameters, Mapping) else 8
                seconds = _seconds(asked) or 8
            else:
                extensions += 1
            current = source
        return seconds + _EXTENSION_ADDS * extensions

    def _extension_problem(self, req: Request, body: Any) -> str | None:
        """The 400 for an extension whose input is not a Veo video this API made, or is too long."""
        video = _instance(body).get("video")
        if not isinstance(video, Mapping):
            return None
        source = self.extended(req, video.get("uri"))
        if source is None:
            return ("video.uri must be the uri of a video generated by Veo (an earlier operation's "
                    "generatedSamples[].video.uri).")
        seconds = self.nominal_seconds(req, source)
        if seconds > _MAX_EXTEND_INPUT:
            return f"The input video is {seconds}s long; Veo extends videos of up to {_MAX_EXTEND_INPUT}s."
        return None

    def _clip_data(self, req: Request, job: EmulatedJob) -> bytes:
        """The clip a finished job serves: its script's, or for an extension the source's clip and this one's
        ``clip_seconds`` more (one combined video)."""
        if job.script.clip is not None:
            return job.script.clip
        seconds, seen = 0.0, set()
        current: EmulatedJob | None = job
        while current is not None and current.id not in seen:
            seen.add(current.id)
            seconds += current.script.clip_seconds
            current = self.source(req, current)
        return made_clip(seconds, job.script.size, job.script.audio)

    # ---- the model list ---------------------------------------------------------------------------

    async def list_models(self, req: Request) -> None:
        models = _listed_models(req)
        raw_size = req.query.get("pageSize", "")
        size = int(raw_size) if raw_size.isdigit() and int(raw_size) > 0 else _DEFAULT_PAGE_SIZE
        # Never everything in one page, so a client that ignores nextPageToken misses models.
        size = min(size, _MAX_PAGE_SIZE, max(1, math.ceil(len(models) / 2)))
        token = req.query.get("pageToken", "")
        start = 0
        if token:
            offset = token.removeprefix(_PAGE_TOKEN)
            if not token.startswith(_PAGE_TOKEN) or not offset.isdigit() or int(offset) > len(models):
                await req.json(400, gemini_error(400, "Invalid page token."))
                return
            start = int(offset)
        body: dict[str, Any] = {"models": models[start:start + size]}
        if start + size < len(models):
            body["nextPageToken"] = f"{_PAGE_TOKEN}{start + size}"
        await req.json(200, body)

    # ---- faults -----------------------------------------------------------------------------------

    async def _fault(self, req: Request, model: str, which: Literal["submit", "poll"]) -> bool:
        fault = req.video.fault(model, which)
        if fault is None:
            return False
        await self._answer_fault(req, model, fault)
        return True

    async def _answer_fault(self, req: Request, model: str, fault: Fault) -> None:
        req.record.fault = fault.kind
        if fault.kind == "hang":
            await req.exchange.gone.wait()
            return
        headers = [("retry-after", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
        await req.json(fault.status, _fault_body(model, fault), headers)


def _operation(model: str, job: EmulatedJob) -> str:
    return f"models/{model}/operations/{job.id}"


def _fault_body(model: str, fault: Fault) -> dict[str, Any]:
    if fault.status == 404 and fault.message is None:
        # What the real API says for a retired or unknown id.
        message = f"models/{model} is not found for API version v1beta, or is not supported for predictLongRunning."
        return gemini_error(404, message)
    details: list[dict[str, Any]] = []
    if fault.retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fault.retry_after:g}s"})
    return gemini_error(fault.status, fault.message or default_message(fault.status), details)


def _instance(body: Any) -> Mapping[str, Any]:
    instances = body.get("instances") if isinstance(body, Mapping) else None
    first = instances[0] if isinstance(instances, list) and instances else None
    return first if isinstance(first, Mapping) else {}


def validate(body: Any) -> str | None:
    """The server's 400 message for a ``predictLongRunning`` body it refuses, None when it is acceptable
    (an extension's URI is checked against the jobs by ``Veo``, which has them). Messages are illustrative."""
    if not isinstance(body, Mapping):
        return "Invalid JSON payload received."
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or not isinstance(instances[0], Mapping):
        return "* PredictLongRunningRequest.instances: instances is required"
    if len(instances) != 1:
        return "Only one instance is supported per request."
    instance = instances[0]
    prompt = instance.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "A text prompt is required."
    image = instance.get("image")
    if image is not None and (problem := _image_problem(image, "image")):
        return problem
    last_frame = instance.get("lastFrame")
    if last_frame is not None:
        if problem := _image_problem(last_frame, "lastFrame"):
            return problem
        if image is None:
            # A last frame is one end of an interpolation (unconfirmed that the API refuses it alone).
            return "lastFrame requires image: a video is interpolated from a first frame to a last frame."
    video = instance.get("video")
    if video is not None:
        if problem := _video_problem(video):
            return problem
        if image is not None or last_frame is not None:
            # Unconfirmed: the guide lists them as separate uses.
            return "Video extension cannot be combined with image or lastFrame."
    references = instance.get("referenceImages")
    if references is not None:
        if problem := _references_problem(references):
            return problem
        if image is not None or last_frame is not None or video is not None:
            # Unconfirmed: the guide lists them as separate uses.
            return "referenceImages cannot be combined with image, lastFrame or video."
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        return "Invalid JSON payload received. Unknown name \"parameters\": not an object."
    seconds = _seconds(parameters.get("durationSeconds", 8))
    if seconds is None or seconds not in _SECONDS:
        return f"Duration must be one of {', '.join(map(str, _SECONDS))} seconds."
    aspect = parameters.get("aspectRatio", "16:9")
    if aspect not in _ASPECTS:
        return f"Aspect ratio {aspect} is not supported. Supported: {', '.join(_ASPECTS)}."
    resolution = parameters.get("resolution", "720p")
    if resolution not in _RESOLUTIONS:
        return f"Resolution {resolution} is not supported. Supported: {', '.join(_RESOLUTIONS)}."
    if resolution in _EIGHT_SECONDS_ONLY and seconds != 8:
        return f"Resolution {resolution} is only supported for 8s duration."
    if video is not None and seconds != _FRAMES_AND_EXTENSION_SECONDS:
        return f"Video extension is only supported for {_FRAMES_AND_EXTENSION_SECONDS}s duration."
    if video is not None and resolution != _EXTENSION_RESOLUTION:
        return f"Video extension is only supported at {_EXTENSION_RESOLUTION}, not {resolution}."
    if last_frame is not None and seconds != _FRAMES_AND_EXTENSION_SECONDS:
        return f"A first and last frame are only supported for {_FRAMES_AND_EXTENSION_SECONDS}s duration."
    if references is not None and seconds != _FRAMES_AND_EXTENSION_SECONDS:
        return f"Reference images are only supported for {_FRAMES_AND_EXTENSION_SECONDS}s duration."
    if references is not None and aspect != _REFERENCE_ASPECT:
        return f"Reference images are only supported for {_REFERENCE_ASPECT} aspect ratio, not {aspect}."
    count = parameters.get("sampleCount", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 4:
        return "sampleCount must be between 1 and 4."
    return None


def _seconds(value: Any) -> int | None:
    # The SDK sends an integer; the REST samples send a string ("8"). Both are accepted.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _image_problem(image: Any, name: str) -> str | None:
    if not isinstance(image, Mapping):
        return f"instances[0].{name} must be an object."
    if image.get("mimeType") not in _IMAGE_TYPES:
        return f"Unsupported image MIME type {image.get('mimeType')!r}; use image/png or image/jpeg."
    data = image.get("bytesBase64Encoded")
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except (binascii.Error, ValueError):
        return f"instances[0].{name}.bytesBase64Encoded is not valid base64."
    if not raw:
        return f"instances[0].{name}.bytesBase64Encoded is empty."
    mime = image["mimeType"]
    if not raw.startswith(_IMAGE_MAGIC[mime]):
        return f"instances[0].{name}: the bytes are not {mime}."
    return None


def _references_problem(references: Any) -> str | None:
    if not isinstance(references, list) or not 1 <= len(references) <= _MAX_REFERENCES:
        return f"instances[0].referenceImages must be a list of 1 to {_MAX_REFERENCES} reference images."
    for n, reference in enumerate(references):
        where = f"referenceImages[{n}]"
        if not isinstance(reference, Mapping) or "image" not in reference:
            return f"instances[0].{where} must be an object with an image."
        if unknown := set(reference) - {"image", "referenceType"}:
            return f"Unknown name {sorted(unknown)[0]!r} at instances[0].{where}."
        if reference.get("referenceType") not in _REFERENCE_TYPES:
            return (f"instances[0].{where}.referenceType must be one of {', '.join(_REFERENCE_TYPES)}, "
                    f"not {reference.get('referenceType')!r}.")
        if problem := _image_problem(reference["image"], f"{where}.image"):
            return problem
    return None


def _video_problem(video: Any) -> str | None:
    """An extension's input must be a Veo result's URI (§2.2: "Extension input must be a URI (video bytes are
    dropped)"); bytes in any spelling are refused."""
    if not isinstance(video, Mapping):
        return "instances[0].video must be an object."
    if any(k in video for k in ("bytesBase64Encoded", "encodedVideo", "videoBytes")):
        return "Video extension takes instances[0].video.uri of a Veo-generated video; video bytes are not supported."
    uri = video.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        return "instances[0].video.uri is required for video extension."
    return None


def _listed_models(req: Request) -> list[dict[str, Any]]:
    """Model resources, chat first, then the video ones (scripted and current)."""
    rows: dict[str, list[str]] = {m: ["generateContent", "countTokens"] for m in _CHAT_MODELS}
    # fal ids have slashes, Gemini ids never do; a scripted "gemini-2.5-flash" answers questions about a video.
    scripted = [m for m in req.video.models() if "/" not in m and m not in rows]
    for model in (*_VEO_MODELS, *_OMNI_MODELS, *scripted):
        if model.startswith("gemini-omni"):
            rows[model] = ["interactionsOnly"]
        elif model.startswith("gemini-"):
            rows[model] = ["generateContent", "countTokens"]
        else:
            rows[model] = ["predictLongRunning"]
    return [
        {"name": f"models/{model}", "version": "001", "displayName": model, "description": f"Emulated {model}.",
         "inputTokenLimit": 1_048_576 if "generateContent" in methods else 1024,
         "outputTokenLimit": 65_536 if "generateContent" in methods else 8192,
         "supportedGenerationMethods": methods}
        for model, methods in rows.items()
    ]


__all__ = ["Veo", "validate"]
