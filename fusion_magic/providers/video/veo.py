"""Gemini Veo through ``predictLongRunning`` (shared/reference/video-apis.md §2).

A generation is a long-running operation: ``submit`` POSTs the prompt and gets back the operation's name
(``models/{model}/operations/{id}``), ``poll`` GETs that name until ``done``, and the finished operation
names a file URI (which wants the key and redirects to a storage host) or carries the clip inline.

Veo 3.1 is kept for two things Omni does not do (the Gemini video guide): a last frame (``lastFrame``, with
``image`` as the first: the clip interpolates between them) and scene extension (``video: {"uri": ...}``, the
URI an earlier Veo operation returned: the answer is the whole clip, 7 s longer). It also takes up to three
reference images (``referenceImages``, each ``{"image": {...}, "referenceType": "asset"}``: what the subject
looks like). All three render 8 s only, an extension 720p only, references 16:9 only (§2.3);
``capabilities(model)`` is what each Veo model accepts, and ``check_request`` refuses anything else before it is
sent.

    provider = VeoProvider(resolve_endpoint(BUILTIN["gemini"]), client)
    job = await provider.submit(VideoRequest(model="veo-3.1-fast-generate-preview", prompt="a fox in snow"))
    status = await provider.poll(job)          # until status.final
    await provider.download(status.clips[0], Path("videos/fox.mp4"))
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from ...core.errors import (
    AuthError,
    BadRequestError,
    CallCancelled,
    ConfigError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    error_for_status,
)
from ...core.mime import FRAME_TYPES, HEAD_BYTES, sniff, sniff_file
from ...core.pricing import price_for
from .._http import Classifier, ErrorInfo, WireContext, same_origin, send_json
from ..base import OverHTTP
from ..chat.gemini import classifier
from ._download import download_to, write_inline
from ._submit import submit_json
from .base import Clip, JobRef, JobStatus, VideoCaps, VideoRequest, or_words
from .gemini_api import api_headers, list_models

# ---- what each Veo model accepts (§2.1, §2.3), the one table check_request reads ------------------------------

ASPECTS = ("16:9", "9:16")
SECONDS = (4, 6, 8)
RESOLUTIONS = ("720p", "1080p", "4k")
# These resolutions render 8 s clips only.
EIGHT_SECONDS_ONLY = frozenset({"1080p", "4k"})
# The first and last frames and reference images Veo takes (§2.1) are core.mime.FRAME_TYPES.
# First+last frame, extension and reference images all need 8 s clips (§2.3's table). Third-party relays of Veo
# 3.1 (fal's first-last-frame endpoint among them) offer 4, 6 and 8 s with two frames; the Gemini guide's table
# says 8, and that is what we hold to here (unconfirmed which the Gemini API enforces).
FRAMES_AND_EXTENSION_SECONDS = 8
# Reference images (§2.1: "≤3 reference images"; §2.3: 8 s and 16:9 only), sent as referenceType "asset" (what
# the subject looks like; "style" is the other value, and %%video has no flag to ask for it).
MAX_REFERENCES = 3
REFERENCE_ASPECT = "16:9"
REFERENCE_TYPE = "asset"
# An extension adds 7 s per call (up to 20 times), at 720p only, to a Veo video of at most 141 s; the answer is
# one combined clip of at most 148 s (§2.3).
EXTENSION_SECONDS = 7
EXTENSION_RESOLUTION = "720p"
MAX_EXTEND_INPUT_S = 141.0
_REFERENCE_SOURCE = "reference §2.1, §2.3 (Gemini video guide)"
# One row per model family; a preview ("-preview") and a released ("-001") id of one model share it. Veo 3.1
# Fast has "same features" as Veo 3.1 (§2.1); of Lite only its resolutions are documented [3P], and it is held to
# Veo 3.1's other limits here (unconfirmed).
_VEO_3_1 = VideoCaps("veo-3.1", seconds=SECONDS, resolutions=RESOLUTIONS, aspects=ASPECTS, audio=True,
                     first_frame=True, last_frame=True, references=MAX_REFERENCES, extend=True,
                     source=_REFERENCE_SOURCE)
_RETIRED = "retired on 2026-06-30 (reference §2.1)"
_TABLE: dict[str, VideoCaps] = {
    "veo-3.1-generate": _VEO_3_1,
    "veo-3.1-fast-generate": _VEO_3_1,
    "veo-3.1-lite-generate": replace(_VEO_3_1, resolutions=("720p", "1080p"),
                                     source=_REFERENCE_SOURCE + "; Lite's resolutions third-party"),
    "veo-3.0-generate": VideoCaps("veo-3.0", seconds=SECONDS, resolutions=("720p", "1080p"), aspects=ASPECTS,
                                  audio=True, first_frame=True, source=_RETIRED),
    "veo-3.0-fast-generate": VideoCaps("veo-3.0", seconds=SECONDS, resolutions=("720p", "1080p"), aspects=ASPECTS,
                                       audio=True, first_frame=True, source=_RETIRED),
    "veo-2.0-generate": VideoCaps("veo-2.0", seconds=(5, 6, 8), resolutions=("720p",), aspects=ASPECTS,
                                  audio=False, first_frame=True, source=_RETIRED),
}
# A preview, released or dated spelling of one model.
_RELEASE_SUFFIX = re.compile(r"-(?:preview(?:-[\w-]+)?|latest|\d{3})$")
# What an extension sends and what it is billed as. The reference gives no price rule for an extension: Veo is
# billed per second of video generated, and an extension generates the 7 s it adds (its durationSeconds says 8,
# and the clip it returns is the whole, longer video); we bill the 7 s (unconfirmed).
EXTEND_NOTE = (f"--extend: sends the clip's URI with durationSeconds {FRAMES_AND_EXTENSION_SECONDS} at "
               f"{EXTENSION_RESOLUTION}; Veo returns the whole clip {EXTENSION_SECONDS} s longer, saved as a new "
               f"clip and billed here as {EXTENSION_SECONDS} s (the seconds it adds; unconfirmed)")
# Named when an id is refused (veo-2.0 and veo-3.0 were shut down on 2026-06-30).
CURRENT_MODELS = ("veo-3.1-generate-preview", "veo-3.1-fast-generate-preview")
OMNI_EXAMPLE = "gemini:gemini-omni-1.2-flash"

# A submit may carry a first-frame image of several MB; polls and lists are small.
_TIMEOUT = httpx.Timeout(60.0, connect=15.0)


def _resolution(request: VideoRequest) -> str | None:
    return request.resolution.strip().lower() if request.resolution else None


def _check_image(model: str, what: str, path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{model}: no such image file: {path}")
    if sniff_file(path) not in FRAME_TYPES:
        raise ConfigError(f"{model}: the {what} image must be PNG or JPEG, not {path.name}")


def _check_last_frame(request: VideoRequest, caps: VideoCaps, last_frame: Path) -> None:
    model = request.model
    if not caps.last_frame:
        raise ConfigError(f"--last-frame needs Veo 3.1 ({', '.join(CURRENT_MODELS)}); {model} has no last frame")
    if request.image is None:
        # "First and last frame" is an interpolation between two frames (§2.1, §2.3); a last frame alone is
        # not one of Veo's documented inputs (unconfirmed whether the API refuses it).
        raise ConfigError(f"--last-frame needs --image: {model} interpolates from the first frame to the last")
    _check_image(model, "last-frame", last_frame)
    if request.seconds not in (None, FRAMES_AND_EXTENSION_SECONDS):
        raise ConfigError(f"{model}: a first and last frame need --seconds {FRAMES_AND_EXTENSION_SECONDS} "
                          f"(got {request.seconds})")


def _check_extension(request: VideoRequest, caps: VideoCaps, resolution: str | None) -> None:
    model = request.model
    if not caps.extend:
        raise ConfigError(f"--extend needs Veo 3.1 ({', '.join(CURRENT_MODELS)}); {model} cannot extend a clip")
    if request.image is not None or request.last_frame is not None:
        raise ConfigError("--extend continues the clip from where it ends: drop --image and --last-frame")
    if request.seconds not in (None, FRAMES_AND_EXTENSION_SECONDS):
        raise ConfigError(f"--extend adds {EXTENSION_SECONDS} s in one call Veo takes as "
                          f"{FRAMES_AND_EXTENSION_SECONDS} s: drop --seconds {request.seconds}")
    if resolution not in (None, EXTENSION_RESOLUTION):
        raise ConfigError(f"--extend: Veo extends at {EXTENSION_RESOLUTION} only, not {resolution}")
    if request.aspect is not None:
        raise ConfigError("--extend keeps the clip's own aspect ratio: drop --aspect")
    uri = request.extend_uri or ""
    if not uri.startswith(("https://", "http://")):
        raise ConfigError(f"--extend: {uri[:60]!r} is not the URI of a Veo result")


def _check_references(request: VideoRequest, caps: VideoCaps) -> None:
    """Veo 3.1's reference-to-video (§2.1, §2.3): at most three PNG or JPEG images, 8 s, 16:9, and on its own (the
    guide lists references, a first frame, a last frame and an extension as separate uses; unconfirmed that the
    API refuses a mix, so it is refused here rather than billed for a clip that ignores one of them)."""
    model, count = request.model, len(request.references)
    if not caps.references:
        raise ConfigError(f"--reference needs Veo 3.1 ({', '.join(CURRENT_MODELS)}); {model} takes no reference "
                          "images")
    if count > caps.references:
        raise ConfigError(f"--reference: {model} takes at most {caps.references} reference images, not {count}")
    if request.image is not None or request.last_frame is not None or request.extend_uri is not None:
        raise ConfigError(f"--reference: {model} makes a clip from reference images alone; drop --image, "
                          "--last-frame and --extend (or the references)")
    if request.seconds not in (None, FRAMES_AND_EXTENSION_SECONDS):
        raise ConfigError(f"{model}: reference images need --seconds {FRAMES_AND_EXTENSION_SECONDS} "
                          f"(got {request.seconds})")
    if request.aspect not in (None, REFERENCE_ASPECT):
        raise ConfigError(f"{model}: reference images need --aspect {REFERENCE_ASPECT} (got {request.aspect})")
    for path in request.references:
        _check_image(model, "reference", path)


def _inline_image(model: str, path: Path) -> dict[str, str]:
    """A first or last frame or a reference image as Veo takes it: base64 bytes and the MIME type."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{model}: cannot read {path}: {exc.strerror or exc}") from None
    # The type the bytes are, not the name's: a JPEG saved as .png is sent as image/jpeg.
    mime = sniff(data[:HEAD_BYTES])
    if mime not in FRAME_TYPES:
        raise ConfigError(f"{model}: {path.name} is not a PNG or JPEG image")
    return {"bytesBase64Encoded": base64.b64encode(data).decode("ascii"), "mimeType": mime}


# ---- google.rpc.Code of a failed operation ---------------------------------------------------------

# An operation's ``error.code`` is a google.rpc.Code number, not an HTTP status.
_RPC_CODES: dict[int, tuple[str, type[ProviderError]]] = {
    1: ("CANCELLED", CallCancelled),
    2: ("UNKNOWN", ServerError),
    3: ("INVALID_ARGUMENT", BadRequestError),
    4: ("DEADLINE_EXCEEDED", ProviderTimeout),
    5: ("NOT_FOUND", BadRequestError),
    7: ("PERMISSION_DENIED", AuthError),
    8: ("RESOURCE_EXHAUSTED", RateLimitError),
    9: ("FAILED_PRECONDITION", BadRequestError),
    10: ("ABORTED", ServerError),
    11: ("OUT_OF_RANGE", BadRequestError),
    12: ("UNIMPLEMENTED", BadRequestError),
    13: ("INTERNAL", ServerError),
    14: ("UNAVAILABLE", ServerError),
    15: ("DATA_LOSS", ServerError),
    16: ("UNAUTHENTICATED", AuthError),
}


def operation_error(ctx: WireContext, error: Mapping[str, Any]) -> ProviderError:
    """Our typed error for a finished operation's ``error`` (a ``google.rpc.Status``)."""
    message = error.get("message")
    text = message if isinstance(message, str) and message.strip() else "the video could not be generated"
    raw = error.get("code")
    code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if code is not None and code in _RPC_CODES:
        name, cls = _RPC_CODES[code]
        return ctx.error(cls, text, code=name)
    if code is not None and code >= 100:
        # Not confirmed for Veo that the code is never an HTTP status; read one as such if it comes.
        return ctx.error(error_for_status(code), text, code=str(code))
    return ctx.error(ServerError, text, code=str(code) if code is not None else None)


# ---- the provider ----------------------------------------------------------------------------------


class VeoProvider(OverHTTP):
    """Veo on the Gemini API: one ``predictLongRunning`` operation per clip. The key rides in
    ``x-goog-api-key`` (never ``?key=``: URLs end up in logs) and only to the endpoint's own origin."""

    protocol: ClassVar[str] = "veo"
    # The official REST sample polls every 10 s; a clip takes 11 s at best, minutes at peak.
    poll_interval: ClassVar[float] = 10.0

    # ---- before anything is sent ------------------------------------------------------------------

    @classmethod
    def capabilities(cls, model: str) -> VideoCaps | None:
        """What a Veo model accepts (None: not a Veo model in the reference's table). A preview and a released id
        of one model share a row; the price is the bundled table's 720p figure (``core.pricing``).

            VeoProvider.capabilities("veo-3.1-fast-generate-preview").references   # 3
        """
        family = _RELEASE_SUFFIX.sub("", model.removeprefix("models/"))
        row = _TABLE.get(family)
        if row is None:
            return None
        price = price_for(f"gemini:{model.removeprefix('models/')}")
        return replace(row, model=model, price_per_second=price.per_second if price is not None else None)

    @classmethod
    def check_request(cls, request: VideoRequest) -> list[str]:
        """Refuse what the Veo model never accepts (``ConfigError``, one line), reading ``capabilities``; an id
        not in the table is held to Veo 3.1's limits. The one note says what an extension sends."""
        model = request.model
        caps = cls.capabilities(model) or replace(_VEO_3_1, model=model)
        if request.previous_job:
            raise ConfigError(f"--edit needs an Omni model ({OMNI_EXAMPLE}); {model} cannot revise an earlier clip")
        if request.aspect is not None and request.aspect not in caps.aspects:
            raise ConfigError(f"{model}: --aspect must be {or_words(caps.aspects)}, not {request.aspect!r}")
        if request.seconds is not None and not caps.takes_seconds(request.seconds):
            raise ConfigError(f"{model}: --seconds must be {caps.seconds_words()}, not {request.seconds}")
        resolution = _resolution(request)
        if resolution is not None:
            if resolution not in caps.resolutions:
                raise ConfigError(f"{model}: --resolution must be {or_words(caps.resolutions)}, not {resolution}")
            if resolution in EIGHT_SECONDS_ONLY and request.seconds not in (None, 8):
                raise ConfigError(f"{model}: {resolution} needs --seconds 8 (got {request.seconds})")
        if request.image is not None:
            _check_image(model, "first-frame", request.image)
        if request.last_frame is not None:
            _check_last_frame(request, caps, request.last_frame)
        if request.references:
            _check_references(request, caps)
        if request.extend_uri is not None:
            _check_extension(request, caps, resolution)
            return [EXTEND_NOTE]
        return []

    @classmethod
    def billed_seconds(cls, request: VideoRequest) -> int | None:
        """The seconds ``request`` is billed for when they are not the clip's length: an extension returns the
        whole, longer clip but generates only the seconds it adds. None: the clip's own length."""
        return EXTENSION_SECONDS if request.extend_uri is not None else None

    # ---- the job ----------------------------------------------------------------------------------

    async def submit(self, request: VideoRequest) -> JobRef:
        """POST ``models/{model}:predictLongRunning``; the job id is the operation's name."""
        self.check_request(request)
        model = request.model.removeprefix("models/")
        ctx = self._ctx(model)
        url = f"{self._api()}/models/{quote(model, safe='')}:predictLongRunning"
        payload, _ = await submit_json(self.client, url, ctx=ctx, classify=self._submit_classifier(ctx),
                                       headers=self._headers(), body=self.body(request), timeout=_TIMEOUT,
                                       provider="Veo", where="https://aistudio.google.com (usage)")
        name = payload.get("name") if isinstance(payload, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ctx.error(ProtocolError, "predictLongRunning answered without an operation name")
        return JobRef(self.protocol, model, name)

    def body(self, request: VideoRequest) -> dict[str, Any]:
        """The ``predictLongRunning`` body: one instance, and only the parameters the request sets."""
        instance: dict[str, Any] = {"prompt": request.prompt}
        if request.image is not None:
            instance["image"] = _inline_image(request.model, request.image)
        if request.last_frame is not None:
            instance["lastFrame"] = _inline_image(request.model, request.last_frame)
        if request.references:
            instance["referenceImages"] = [
                {"image": _inline_image(request.model, path), "referenceType": REFERENCE_TYPE}
                for path in request.references]
        extending = request.extend_uri is not None
        if extending:
            # A URI, never bytes: the API takes only a Veo result's URI here (the SDK drops video bytes, §2.2).
            instance["video"] = {"uri": request.extend_uri}
        parameters: dict[str, Any] = {}
        if request.aspect is not None:
            parameters["aspectRatio"] = request.aspect  # never with an extension: it keeps the clip's own
        elif request.references:
            parameters["aspectRatio"] = REFERENCE_ASPECT  # the only one references take; said, not left to a default
        if extending:
            parameters["resolution"] = EXTENSION_RESOLUTION  # said, not left to a default
        elif request.resolution is not None:
            parameters["resolution"] = _resolution(request)
        seconds = request.seconds
        if seconds is None and (extending or request.last_frame is not None or request.references):
            seconds = FRAMES_AND_EXTENSION_SECONDS  # the only length these take; said, not left to a default
        if seconds is not None:
            parameters["durationSeconds"] = int(seconds)  # the SDK sends an integer
        if request.negative:
            parameters["negativePrompt"] = request.negative
        # One clip per job: a job is what is priced, saved and shown.
        parameters["sampleCount"] = 1
        return {"instances": [instance], "parameters": parameters}

    async def poll(self, job: JobRef) -> JobStatus:
        """GET the operation: running until ``done`` (absent means false), then its outcome."""
        ctx = self._ctx(job.model)
        # Keep the name's slashes but never let it add a query or a fragment to the URL.
        url = f"{self._api()}/{quote(job.job_id.lstrip('/'), safe='/')}"
        payload, _ = await send_json(self.client, "GET", url, ctx=ctx, classify=classifier(ctx),
                                     headers=self._headers(), timeout=_TIMEOUT)
        if not isinstance(payload, Mapping):
            raise ctx.error(ProtocolError, "the operation is not a JSON object")
        return self.status(ctx, payload)

    def status(self, ctx: WireContext, operation: Mapping[str, Any]) -> JobStatus:
        """The ``JobStatus`` an operation says (no I/O)."""
        if operation.get("done") is not True:
            return JobStatus("running")
        error = operation.get("error")
        if isinstance(error, Mapping):
            err = operation_error(ctx, error)
            return JobStatus("cancelled" if isinstance(err, CallCancelled) else "failed", error=err)
        response = operation.get("response")
        videos = response.get("generateVideoResponse") if isinstance(response, Mapping) else None
        if not isinstance(videos, Mapping):
            videos = {}
        clips = tuple(self._clip(ctx, sample) for sample in videos.get("generatedSamples") or ()
                      if isinstance(sample, Mapping) and isinstance(sample.get("video"), Mapping))
        if clips:
            return JobStatus("succeeded", clips=clips)
        reasons = [r.strip() for r in videos.get("raiMediaFilteredReasons") or () if isinstance(r, str) and r.strip()]
        if reasons or videos.get("raiMediaFilteredCount"):
            # Not an error and not billed: the safety filter withheld the clip, and says why in free text.
            reason = "; ".join(reasons) or "withheld by Veo's safety filter (no reason given)"
            return JobStatus("filtered", reason=reason)
        return JobStatus("failed", error=ctx.error(ProtocolError, "the operation finished without a video or a reason"))

    def _clip(self, ctx: WireContext, sample: Mapping[str, Any]) -> Clip:
        video: Mapping[str, Any] = sample["video"]
        encoded = video.get("encodedVideo")
        mime = video.get("encoding") or video.get("mimeType") or "video/mp4"
        if isinstance(encoded, str) and encoded:
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ctx.error(ProtocolError, "encodedVideo is not base64") from None
            return Clip(data=data, mime=str(mime))
        uri = video.get("uri")
        if not isinstance(uri, str) or not uri:
            raise ctx.error(ProtocolError, "a generated sample has neither a uri nor encodedVideo")
        return Clip(uri=uri, mime=str(mime), needs_key=True)

    async def download(self, clip: Clip, dest: Path) -> int:
        """Write inline bytes, or stream the URI to disk with the key (never across a redirect, and never
        to a host other than the endpoint's own)."""
        if clip.data is not None:
            return write_inline(clip.data, dest)
        ctx = self._ctx("veo")
        if not clip.uri:
            raise ctx.error(ProtocolError, "the clip has neither bytes nor a URI")
        headers = self._headers() if clip.needs_key and same_origin(clip.uri, self.endpoint.base_url) else {}
        return await download_to(self.client, clip.uri, dest, ctx=ctx, classify=classifier(ctx), headers=headers)

    async def cancel(self, job: JobRef) -> None:
        """Nothing to do: the Gemini API offers no cancel for Veo operations (the SDK has none either), so
        a submitted clip runs to the end and is billed; the caller simply stops polling."""
        return None

    async def list_models(self) -> list[str]:
        """The models whose ``supportedGenerationMethods`` include ``predictLongRunning``, every page read."""
        return await list_models(self.client, self.endpoint.base_url, self._headers(), self._ctx("models"),
                                 keep=lambda _name, methods: "predictLongRunning" in methods)

    # ---- plumbing ---------------------------------------------------------------------------------

    def _api(self) -> str:
        return f"{self.endpoint.base_url.rstrip('/')}/v1beta"

    def _ctx(self, model: str) -> WireContext:
        return WireContext(self.endpoint.provider, model, secret=self.endpoint.api_key)

    def _headers(self) -> dict[str, str]:
        return api_headers(self.endpoint)

    def _submit_classifier(self, ctx: WireContext) -> Classifier:
        gemini = classifier(ctx)

        def classify(info: ErrorInfo) -> ProviderError:
            if info.status == 404:
                # A retired or unknown id (veo-2.0 and veo-3.0 were shut down on 2026-06-30): say what to use.
                return ctx.error(
                    BadRequestError,
                    f"{ctx.model} is not available (retired or unknown); current Veo models: "
                    f"{', '.join(CURRENT_MODELS)} (%video list shows what your key can use)",
                    status=404, code="NOT_FOUND")
            return gemini(info)

        return classify


__all__ = ["ASPECTS", "CURRENT_MODELS", "EXTENSION_RESOLUTION", "EXTENSION_SECONDS", "FRAMES_AND_EXTENSION_SECONDS",
           "MAX_EXTEND_INPUT_S", "MAX_REFERENCES", "REFERENCE_ASPECT", "REFERENCE_TYPE", "RESOLUTIONS", "SECONDS",
           "VeoProvider", "operation_error"]
