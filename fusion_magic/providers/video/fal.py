"""fal's queue API (shared/reference/video-apis.md §5): POST a model's input to ``queue.fal.run``, poll the
status URL the submit answered with, fetch the result, and download the clip from fal's public CDN.

Every fal model names its inputs its own way (``duration`` is ``"8s"`` for Veo and ``"5"`` for Kling), so
``MODELS`` maps our flags onto each known endpoint's fields and allowed values. A model not in the table
gets the prompt only, and ``check_request`` says so.

The submit response carries ``status_url``, ``response_url`` and ``cancel_url``; they are kept in the
``JobRef`` and used verbatim. For a multi-segment endpoint id such as
``fal-ai/kling-video/v2.5-turbo/pro/text-to-video`` the queue path keeps only ``fal-ai/kling-video``, so a
URL built from the endpoint id would 404 (the official client, ``fal_client/client.py``, does the same).

    provider = FalProvider(resolve_endpoint(BUILTIN["fal"]), client)
    job = await provider.submit(VideoRequest("fal-ai/veo3.1", "a fox in snow", seconds=8))
    status = await provider.poll(job)           # JobStatus(state="queued", progress="queue position 2")
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from ...core.errors import (
    AuthError,
    BadRequestError,
    BlockedError,
    ConfigError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    error_for_status,
)
from ...core.mime import data_url
from ...core.pricing import Price
from .._http import (
    Classifier,
    ErrorInfo,
    WireContext,
    decode_json,
    raise_transport_error,
    response_error,
    same_origin,
)
from ..base import OverHTTP
from ._download import download_to
from ._submit import submit_json
from .base import Clip, JobRef, JobStatus, VideoCaps, VideoRequest

# The official client's QUEUE_POLL_TIMEOUT; a submit carrying a first frame as a data URI is a large body.
_TIMEOUT = httpx.Timeout(120.0, connect=30.0)
URL_KEYS = ("status_url", "response_url", "cancel_url")
# fal's error type for a prompt, image or output its content checker refused (docs.fal.ai/errors).
CONTENT_POLICY = "content_policy_violation"
# What the status of a request the caller cancelled says (fal's request error types; unconfirmed for queue).
CANCELLED = "client_cancelled"
# App ids under a namespace keep three segments in the queue path (fal_client AppId.from_endpoint_id).
_NAMESPACES = ("workflows", "comfy")
_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)+$")


@dataclass(frozen=True)
class FalModel:
    """How our flags map onto one fal text-to-video endpoint's input.

    ``duration`` spells a length (``"{}s"`` -> ``"8s"``, ``"{}"`` -> ``"5"``); an empty ``aspects`` or
    ``resolutions`` means the model has no such input. A first frame switches to ``image_endpoint``, which
    takes the image in ``image_field`` and an aspect ratio only if ``image_aspect``. A last frame (always with a
    first) goes in ``last_frame_field`` (None: the model has none), on ``first_last_endpoint`` where the model
    has a separate one (its first frame then in ``first_last_image_field``), else on ``image_endpoint``.
    ``price_per_second`` is USD for the default settings, or None where no trustworthy figure was found.
    """

    seconds: tuple[int, ...]
    duration: str
    aspects: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    negative: bool = False
    image_endpoint: str | None = None
    image_field: str = "image_url"
    image_aspect: bool = True
    last_frame_field: str | None = None
    first_last_endpoint: str | None = None
    first_last_image_field: str = "first_frame_url"
    price_per_second: float | None = None
    source: str = ""


# Field names and values from each endpoint's schema page, https://fal.ai/models/{endpoint id}/llms.txt.
MODELS: dict[str, FalModel] = {
    "fal-ai/veo3.1": FalModel(
        seconds=(4, 6, 8), duration="{}s", aspects=("16:9", "9:16"), resolutions=("720p", "1080p", "4k"),
        negative=True, image_endpoint="fal-ai/veo3.1/image-to-video", price_per_second=0.40,
        # fal.ai/docs/model-api-reference/video-generation-api/veo3.1-first-last-frame-to-video: first_frame_url,
        # last_frame_url (fal's own limits there: 4, 6 or 8 s, like its other Veo 3.1 endpoints).
        last_frame_field="last_frame_url", first_last_endpoint="fal-ai/veo3.1/first-last-frame-to-video",
        # $0.40/s with audio (the default) at 720p or 1080p, $0.60 at 4k, $0.20 without audio.
        source="fal.ai/models/fal-ai/veo3.1/llms.txt",
    ),
    "fal-ai/veo3.1/fast": FalModel(
        seconds=(4, 6, 8), duration="{}s", aspects=("16:9", "9:16"), resolutions=("720p", "1080p"),
        negative=True, image_endpoint="fal-ai/veo3.1/fast/image-to-video", price_per_second=None,
        # fal.ai/models/fal-ai/veo3.1/fast/first-last-frame-to-video/llms.txt
        last_frame_field="last_frame_url", first_last_endpoint="fal-ai/veo3.1/fast/first-last-frame-to-video",
        source="fal.ai/docs/model-api-reference/video-generation-api/veo3.1-fast (no price read)",
    ),
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": FalModel(
        seconds=(5, 10), duration="{}", aspects=("16:9", "9:16", "1:1"), negative=True,
        image_endpoint="fal-ai/kling-video/v2.5-turbo/pro/image-to-video", image_aspect=False,
        last_frame_field="tail_image_url",  # "URL of the image to be used for the end of the video"
        # $0.35 for 5 s, $0.07 per further second: fal's image-to-video page; the same for text (third party).
        price_per_second=0.07, source="fal.ai/models/fal-ai/kling-video/v2.5-turbo/pro/image-to-video/llms.txt",
    ),
    "fal-ai/kling-video/v2.1/master/text-to-video": FalModel(
        seconds=(5, 10), duration="{}", aspects=("16:9", "9:16", "1:1"), negative=True,
        image_endpoint="fal-ai/kling-video/v2.1/master/image-to-video", image_aspect=False,
        # No end-frame input on its image-to-video schema page as read (Kling 2.1 pro and 2.5 turbo have one):
        # --last-frame is refused for it rather than dropped.
        # $1.40 for 5 s, $0.28 per further second.
        price_per_second=0.28, source="fal.ai/models/fal-ai/kling-video/v2.1/master/text-to-video/llms.txt",
    ),
    "fal-ai/minimax/hailuo-02/standard/text-to-video": FalModel(
        seconds=(6, 10), duration="{}", image_endpoint="fal-ai/minimax/hailuo-02/standard/image-to-video",
        last_frame_field="end_image_url",  # "Optional URL of the image to use as the last frame of the video"
        # 768p only; $0.045/s at 768P (fal's image-to-video page, same model and resolution).
        price_per_second=0.045, source="fal.ai/models/fal-ai/minimax/hailuo-02/standard/image-to-video/llms.txt",
    ),
}


def queue_urls(base_url: str, endpoint_id: str, request_id: str) -> dict[str, str]:
    """The three queue URLs of a request, built as the official client does (``{owner}/{alias}`` only,
    plus a namespace such as ``workflows/``). Only for a submit response or sidecar that lacks them.

        queue_urls("https://queue.fal.run", "fal-ai/veo3.1/image-to-video", "r1")["status_url"]
        # "https://queue.fal.run/fal-ai/veo3.1/requests/r1/status"
    """
    parts = endpoint_id.strip("/").split("/")
    keep = 3 if parts[0] in _NAMESPACES else 2
    root = f"{base_url.rstrip('/')}/{'/'.join(parts[:keep])}/requests/{request_id}"
    return {"response_url": root, "status_url": root + "/status", "cancel_url": root + "/cancel"}


def detail_message(detail: object) -> str | None:
    """fal's ``detail``: a string (request errors) or a list of ``{loc, msg, type}`` (model errors), as one
    line naming each field: ``"duration: Input should be '5' or '10'"``."""
    if isinstance(detail, str):
        return detail.strip() or None
    if not isinstance(detail, list):
        return None
    parts = []
    for item in detail:
        if not isinstance(item, Mapping):
            continue
        loc = [str(p) for p in item.get("loc") or () if isinstance(p, str | int)]
        if loc and loc[0] == "body":
            loc = loc[1:]
        msg = str(item.get("msg") or item.get("type") or "invalid")
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or None


def _detail_types(body: Mapping[str, Any]) -> list[str]:
    detail = body.get("detail")
    items = detail if isinstance(detail, list) else []
    return [str(d["type"]) for d in items if isinstance(d, Mapping) and isinstance(d.get("type"), str)]


def classifier(ctx: WireContext, headers: httpx.Headers | None = None) -> Classifier:
    """Our error for a fal error response. ``error_type`` (body, else the ``x-fal-error-type`` header, else
    the first detail's type) becomes the code; ``x-fal-retryable`` overrides the status's retry default."""
    header_type = headers.get("x-fal-error-type") if headers is not None else None
    retry_header = (headers.get("x-fal-retryable") or "").lower() if headers is not None else ""

    def classify(info: ErrorInfo) -> ProviderError:
        status = info.status or 500
        types = _detail_types(info.body)
        body_type = info.body.get("error_type")
        code = body_type if isinstance(body_type, str) and body_type else header_type or next(iter(types), None)
        message = detail_message(info.body.get("detail")) or info.message
        cls: type[ProviderError]
        if status in (401, 403):
            cls = AuthError
        elif CONTENT_POLICY in types or code == CONTENT_POLICY:
            cls = BlockedError
        else:
            cls = error_for_status(status)
        retryable = {"true": True, "false": False}.get(retry_header)
        return ctx.error(cls, message, status=status, code=code, retry_after=info.retry_after, retryable=retryable)

    return classify


class FalProvider(OverHTTP):
    """Generates clips with fal-hosted models through the queue. Key: ``Authorization: Key $FAL_KEY``.

        provider = FalProvider(Endpoint("fal", "https://queue.fal.run", api_key=key), client)
    """

    protocol: ClassVar[str] = "fal"
    poll_interval: ClassVar[float] = 1.0

    # ---- before anything is sent --------------------------------------------------------------------

    @classmethod
    def unit_prices(cls) -> dict[str, Price]:
        """USD per second of video for the models in ``MODELS`` whose price was read on fal's pages, keyed by
        endpoint id (the bundled price table keys on a model's last path segment, which fal's ids share)."""
        return {endpoint: Price(per_second=row.price_per_second, source=f"fal page ({row.source})")
                for endpoint, row in MODELS.items() if row.price_per_second is not None}

    @classmethod
    def capabilities(cls, model: str) -> VideoCaps | None:
        """What a model in ``MODELS`` accepts (None: not in the table, so nothing is known of it)."""
        row = MODELS.get(model)
        if row is None:
            return None
        return VideoCaps(model, seconds=row.seconds, resolutions=row.resolutions, aspects=row.aspects,
                         first_frame=row.image_endpoint is not None,
                         last_frame=row.last_frame_field is not None and row.image_endpoint is not None,
                         price_per_second=row.price_per_second, source=row.source)

    @classmethod
    def default_seconds(cls, model: str) -> int | None:
        """The shortest length a model in ``MODELS`` makes (what it makes when none is asked for), else None."""
        row = MODELS.get(model)
        return row.seconds[0] if row is not None and row.seconds else None

    @classmethod
    def check_request(cls, request: VideoRequest) -> list[str]:
        """ConfigError for a value a known model refuses; notes for options it (or an unknown model) ignores."""
        model = request.model
        if not _ENDPOINT_ID.match(model):
            raise ConfigError(f"fal:{model}: not a fal endpoint id (owner/name[/path], e.g. fal-ai/veo3.1)")
        if request.previous_job is not None:
            raise ConfigError(f"--edit: fal:{model} cannot revise an earlier job; only Gemini Omni models can")
        if request.extend_uri is not None:
            raise ConfigError(f"--extend: fal:{model} cannot extend a clip; only Gemini Veo models can "
                              "(-m gemini:veo-3.1-fast-generate-preview)")
        for flag, path in (("--image", request.image), ("--last-frame", request.last_frame)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag}: {path} is not a file")
        if request.references:
            raise ConfigError(f"--reference: fal:{model} takes no reference images here; use a model that does "
                              "(gemini:gemini-omni-1.2-flash, gemini:veo-3.1-generate-preview, "
                              "openrouter:google/veo-3.1, runway:gen4.5) or drop it")
        spec = MODELS.get(model)
        if spec is None:
            flags = [flag for flag, value in _flags(request) if value is not None]
            if not flags:
                return []
            return [f"{', '.join(flags)}: fal:{model} is not in fusion_magic's table of fal models, so only "
                    "the prompt is sent (each fal model names its options differently)"]
        notes: list[str] = []
        if request.seconds is not None and request.seconds not in spec.seconds:
            allowed = ", ".join(str(s) for s in spec.seconds)
            raise ConfigError(f"--seconds {request.seconds}: fal:{model} makes clips of {allowed} seconds")
        aspects = spec.aspects if request.image is None or spec.image_aspect else ()
        if request.aspect is not None:
            if not aspects:
                why = " from a first frame (it follows the image)" if spec.aspects else ""
                notes.append(f"--aspect: fal:{model} has no aspect ratio option{why}; not sent")
            elif request.aspect not in aspects:
                raise ConfigError(f"--aspect {request.aspect}: fal:{model} makes {', '.join(aspects)} only")
        if request.resolution is not None:
            if not spec.resolutions:
                notes.append(f"--resolution: fal:{model} has one fixed resolution; not sent")
            elif request.resolution not in spec.resolutions:
                raise ConfigError(f"--resolution {request.resolution}: fal:{model} makes "
                                  f"{', '.join(spec.resolutions)} only")
        if request.negative is not None and not spec.negative:
            notes.append(f"--negative: fal:{model} has no negative prompt; not sent")
        if request.image is not None and spec.image_endpoint is None:
            notes.append(f"--image: fal:{model} has no first-frame endpoint here; not sent")
        if request.last_frame is not None:
            # Refused, not noted: a clip that ignores the frame it was asked to end on is not what was asked for.
            if spec.last_frame_field is None or spec.image_endpoint is None:
                raise ConfigError(f"--last-frame: fal:{model} has no last-frame input; use one that has (e.g. "
                                  "fal:fal-ai/veo3.1, fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video) or drop it")
            if request.image is None:
                raise ConfigError(f"--last-frame needs --image: fal:{model} runs from a first frame to the last")
        return notes

    @classmethod
    def model_input(cls, request: VideoRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint id to submit to and its input JSON (the first frame, if any, as a data URI)."""
        cls.check_request(request)
        spec = MODELS.get(request.model)
        body: dict[str, Any] = {"prompt": request.prompt}
        if spec is None:
            return request.model, body
        endpoint_id = request.model
        if request.image is not None and spec.image_endpoint is not None:
            endpoint_id, image_field = spec.image_endpoint, spec.image_field
            if request.last_frame is not None and spec.first_last_endpoint is not None:
                endpoint_id, image_field = spec.first_last_endpoint, spec.first_last_image_field
            body[image_field] = data_url(request.image.read_bytes())
            if request.last_frame is not None and spec.last_frame_field is not None:
                body[spec.last_frame_field] = data_url(request.last_frame.read_bytes())
        with_image = endpoint_id != request.model
        if request.seconds is not None:
            body["duration"] = spec.duration.format(request.seconds)
        if request.aspect is not None and spec.aspects and (not with_image or spec.image_aspect):
            body["aspect_ratio"] = request.aspect
        if request.resolution is not None and spec.resolutions:
            body["resolution"] = request.resolution
        if request.negative is not None and spec.negative:
            body["negative_prompt"] = request.negative
        return endpoint_id, body

    # ---- the job ------------------------------------------------------------------------------------

    async def submit(self, request: VideoRequest) -> JobRef:
        """POST the input to ``{base}/{endpoint_id}``; the JobRef keeps the queue URLs fal answered with.
        Its ``model`` is the endpoint actually used (the image-to-video one when a first frame was given)."""
        endpoint_id, body = self.model_input(request)
        ctx = self._ctx(endpoint_id)
        payload, _ = await submit_json(self.client, f"{self._base}/{endpoint_id}", ctx=ctx,
                                       classify_response=lambda r: classifier(ctx, r.headers),
                                       headers=self._headers(), body=body,
                                       timeout=_TIMEOUT, provider="fal", where="https://fal.ai/dashboard/requests")
        if not isinstance(payload, Mapping) or not isinstance(payload.get("request_id"), str):
            raise self._ctx(endpoint_id).error(ProtocolError, f"submit answered without a request_id: {payload!r:.120}")
        request_id = payload["request_id"]
        urls = {key: payload[key] for key in URL_KEYS if isinstance(payload.get(key), str) and payload[key]}
        if len(urls) < len(URL_KEYS):
            urls = {**queue_urls(self._base, endpoint_id, request_id), **urls}
        return JobRef("fal", endpoint_id, request_id, urls)

    async def poll(self, job: JobRef) -> JobStatus:
        """GET ``status_url?logs=1``; once COMPLETED, GET ``response_url`` for the result."""
        urls = self._urls(job)
        data = await self._call("GET", urls["status_url"], job.model, params={"logs": "1"})
        if not isinstance(data, Mapping):
            raise self._ctx(job.model).error(ProtocolError, f"status answered {data!r:.120}")
        status = data.get("status")
        if status == "IN_QUEUE":
            position = data.get("queue_position")
            return JobStatus("queued", progress=f"queue position {position}" if position is not None else None)
        if status == "IN_PROGRESS":
            return JobStatus("running", progress=_last_log(data.get("logs")))
        if status != "COMPLETED":
            raise self._ctx(job.model).error(ProtocolError, f"unknown queue status {status!r}")
        error, error_type = data.get("error"), data.get("error_type")
        if error or error_type:
            return self._completed_with_error(job, str(error or error_type), str(error_type or "") or None)
        return await self._result(job, urls["response_url"])

    async def download(self, clip: Clip, dest: Path) -> int:
        """Stream the clip from fal's CDN, which is public: the key is never sent there."""
        if clip.uri is None:
            raise self._ctx("").error(ProtocolError, "clip has no URL")
        ctx = self._ctx("")
        return await download_to(self.client, clip.uri, dest, ctx=ctx, classify=classifier(ctx))

    async def cancel(self, job: JobRef) -> None:
        """PUT ``cancel_url``; a request that already finished is no error (there is nothing to stop)."""
        response, payload = await self._send("PUT", self._urls(job)["cancel_url"], job.model)
        if response.is_success:
            return
        if isinstance(payload, Mapping) and payload.get("status") == "ALREADY_COMPLETED":
            return
        raise self._classify(job.model, response)

    async def list_models(self) -> list[str]:
        """fal has no endpoint listing the models a key can use: these are the endpoints this module maps
        flags for (any other fal endpoint id still works, with the prompt only)."""
        return list(MODELS)

    # ---- helpers ------------------------------------------------------------------------------------

    @property
    def _base(self) -> str:
        return self.endpoint.base_url.rstrip("/")

    def _ctx(self, model: str) -> WireContext:
        return WireContext("fal", model, secret=self.endpoint.api_key)

    def _urls(self, job: JobRef) -> Mapping[str, str]:
        # A sidecar written without URLs (or by hand) still finds its job.
        urls = job.urls if all(job.urls.get(key) for key in URL_KEYS) else {
            **queue_urls(self._base, job.model, job.job_id), **{k: v for k, v in job.urls.items() if v}}
        # The key goes with every queue call, so a URL must be on the queue's own host: a sidecar copied in
        # from elsewhere (or a submit answer) naming another host must not collect the key.
        for name, url in urls.items():
            if not same_origin(url, self._base):
                raise self._ctx(job.model).error(
                    BadRequestError, f"the job's {name} is on {httpx.URL(url).host}, not on the queue host "
                    f"{httpx.URL(self._base).host}; not sending the key there")
        return urls

    def _completed_with_error(self, job: JobRef, error: str, error_type: str | None) -> JobStatus:
        if error_type == CANCELLED:
            return JobStatus("cancelled", reason=error)
        if error_type and "content_policy" in error_type:
            return JobStatus("filtered", reason=error)
        cls: type[ProviderError] = ProviderTimeout if error_type and "timeout" in error_type else ServerError
        return JobStatus("failed", error=self._ctx(job.model).error(cls, error, code=error_type))

    async def _result(self, job: JobRef, url: str) -> JobStatus:
        try:
            result = await self._call("GET", url, job.model)
        except ProviderError as err:
            if isinstance(err, BlockedError):
                return JobStatus("filtered", reason=err.message)
            if isinstance(err, RateLimitError) or err.status is None:
                raise  # the result is still there: a later poll fetches it
            return JobStatus("failed", error=err)
        if not isinstance(result, Mapping):
            return self._bad_result(job, result)
        flagged = result.get("has_nsfw_concepts")
        if isinstance(flagged, list) and any(v is True for v in flagged):
            return JobStatus("filtered", reason="fal's safety checker flagged the output (has_nsfw_concepts)")
        video = result.get("video")
        if video is None and isinstance(result.get("videos"), list) and result["videos"]:
            video = result["videos"][0]
        if not isinstance(video, Mapping) or not isinstance(video.get("url"), str) or not video["url"]:
            return self._bad_result(job, result)
        mime = video.get("content_type") if isinstance(video.get("content_type"), str) else None
        return JobStatus("succeeded", clips=(Clip(uri=video["url"], mime=mime or "video/mp4", needs_key=False),))

    def _bad_result(self, job: JobRef, result: object) -> JobStatus:
        text = json.dumps(result)[:120] if result is not None else "nothing"
        return JobStatus("failed", error=self._ctx(job.model).error(ProtocolError, f"result has no video.url: {text}"))

    def _headers(self) -> dict[str, str]:
        headers = dict(self.endpoint.headers)
        if self.endpoint.api_key:
            headers["Authorization"] = f"Key {self.endpoint.api_key}"
        return headers

    async def _send(self, method: str, url: str, model: str, *, body: Mapping[str, Any] | None = None,
                    params: Mapping[str, str] | None = None) -> tuple[httpx.Response, Any]:
        """One queue call: the response and its decoded JSON (None if not JSON); transport errors typed."""
        ctx = self._ctx(model)
        try:
            response = await self.client.request(
                method, url, json=dict(body) if body is not None else None, headers=self._headers(),
                params=params, follow_redirects=False, timeout=_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise_transport_error(exc, ctx, started_stream=False)
        return response, decode_json(response.text)

    async def _call(self, method: str, url: str, model: str, *, body: Mapping[str, Any] | None = None,
                    params: Mapping[str, str] | None = None) -> Any:
        response, payload = await self._send(method, url, model, body=body, params=params)
        if not response.is_success:
            raise self._classify(model, response)
        if payload is None:
            raise self._ctx(model).error(ProtocolError, f"expected JSON, got {response.text[:120]!r}",
                                         status=response.status_code)
        return payload

    def _classify(self, model: str, response: httpx.Response) -> ProviderError:
        return response_error(response, response.text, classifier(self._ctx(model), response.headers))


def _flags(request: VideoRequest) -> list[tuple[str, object]]:
    return [("--seconds", request.seconds), ("--aspect", request.aspect), ("--resolution", request.resolution),
            ("--negative", request.negative), ("--image", request.image), ("--last-frame", request.last_frame)]


def _last_log(logs: object) -> str | None:
    if not isinstance(logs, list):
        return None
    for entry in reversed(logs):
        if isinstance(entry, Mapping) and isinstance(entry.get("message"), str) and entry["message"].strip():
            return str(entry["message"]).strip()
    return None



__all__ = ["CONTENT_POLICY", "MODELS", "FalModel", "FalProvider", "classifier", "detail_message", "queue_urls"]
