"""OpenRouter's Video Generation API (shared/reference/video-apis.md §10.1): ``POST /videos`` answers 202 with a
job, ``GET /videos/{id}`` polls it, and a finished job names its clip twice.

* ``unsigned_urls[i]``: OpenRouter's content proxy on the API host (``/videos/{id}/content?index=i``). It wants the
  key and carries no signature, so it is preferred, downloaded with the key (only to the API host, never across
  a redirect) and safe to keep in the sidecar.
* ``urls[i]``: signed URLs of OpenRouter's stored copy, keyless, valid until ``expires_at``. Anyone holding one may
  download until then, so such a clip is ``Clip(keep_uri=False)``: downloaded at once, never written into a
  sidecar or a log (a resume polls the job again for a fresh one), and never sent the key.

A submit is never retried, here or by the job loop. OpenRouter has no way to find a job without its id (no
client-supplied idempotency key, no list of jobs), so a submit whose answer is lost (a read timeout, a dropped
connection after the body went out) may have started a paid job we cannot see: it becomes a failed clip whose
line says so, and nothing is sent again. The job id is in the sidecar before the first poll, so every later
interruption is resumable.

``usage.cost`` of a completed job is the provider's own figure and is recorded exactly (``JobStatus.usage``).
What a model accepts comes from ``GET /videos/models``; ``check_request`` needs no network, so it checks the
request against ``MODELS`` (the reference's Veo 3.1 figures) where the model is there, and otherwise only against
OpenRouter's request schema: any other value goes through, and OpenRouter's 400 comes back as a failed clip in
its own words, with nothing paid.

    provider = OpenRouterVideoProvider(resolve_endpoint(BUILTIN["openrouter"]), client)
    job = await provider.submit(VideoRequest("google/veo-3.1", "a fox in snow", seconds=8))
    status = await provider.poll(job)           # JobStatus(state="running", progress="in_progress")
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from ...core.errors import (
    CallCancelled,
    ConfigError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ServerError,
)
from ...core.mime import FRAME_TYPES, HEAD_BYTES, data_url, sniff
from ...core.pricing import Price
from .._http import (
    WireContext,
    decode_json,
    raise_transport_error,
    response_error,
    same_origin,
    send_json,
)
from ..base import OverHTTP, Usage
from ..chat.openai_compat import classifier
from ._download import download_to
from .base import SUBMIT_LOST, Clip, JobRef, JobState, JobStatus, VideoCaps, VideoRequest, or_words

# A submit may carry three reference images and two frames as data URLs; polls and lists are small.
_TIMEOUT = httpx.Timeout(120.0, connect=30.0)
_POLL_TIMEOUT = httpx.Timeout(30.0, connect=15.0)
# OpenRouter's request schema (VideoGenerationRequest): the values any model may be asked for at all.
RESOLUTIONS = ("360p", "480p", "720p", "768p", "1080p", "1K", "2K", "4K")
ASPECTS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21")
# The SKU of one second of video in ``pricing_skus`` (the docs' example: {"per-video-second": "0.50",
# "per-video-second-1080p": "0.75"}).
SECOND_SKU = "per-video-second"
_STATES: dict[str, JobState] = {"pending": "queued", "in_progress": "running"}
_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.:-]+$")
# What a job answers when its submit's answer was lost: one line saying what we do and what to check.
LOST_SUBMIT = ("the submit was sent but its answer was lost ({detail}); OpenRouter may have started the job and "
               "bills it if so, but it can only be found by its id, which never arrived. It is not sent again: see "
               "https://openrouter.ai/activity before running the cell again")
# An estimate only (third-party figures): a finished job's own usage.cost is what the ledger records.
_PRICE_SOURCE = "Gemini API's Veo 3.1 rate (video-apis.md §2.6)"


# ---- what the reference says the two documented models take ----------------------------------------------

# google/veo-3.1 and google/veo-3.1-lite, the ids in OpenRouter's docs (§10.1), with Veo 3.1's limits (§2.1,
# §2.3): 4, 6 or 8 s, 16:9 or 9:16, 720p/1080p (4K not on Lite), first and last frames, up to three reference
# images, and previous_job_id (Veo 3.1 extends a clip). Spelled as OpenRouter's schema spells them ("4K").
MODELS: dict[str, VideoCaps] = {
    "google/veo-3.1": VideoCaps(
        "google/veo-3.1", seconds=(4, 6, 8), resolutions=("720p", "1080p", "4K"), aspects=("16:9", "9:16"),
        audio=True, first_frame=True, last_frame=True, references=3, edit=True, price_per_second=0.40,
        source="video-apis.md §10.1 (ids), §2.1/§2.3 (Veo 3.1 limits)"),
    "google/veo-3.1-lite": VideoCaps(
        "google/veo-3.1-lite", seconds=(4, 6, 8), resolutions=("720p", "1080p"), aspects=("16:9", "9:16"),
        audio=True, first_frame=True, last_frame=True, references=3, edit=True, price_per_second=0.05,
        source="video-apis.md §10.1 (ids), §2.1/§2.3 (Veo 3.1 limits; Lite: 720p/1080p only)"),
}
# USD per second at a resolution that costs more than the model's base rate (§2.6).
_RESOLUTION_PRICES = {"google/veo-3.1": {"4k": 0.60}, "google/veo-3.1-lite": {"1080p": 0.08}}
# A Veo clip is 8 s when no length is asked for.
_DEFAULT_SECONDS = 8


def caps_from_model(entry: Mapping[str, Any]) -> VideoCaps | None:
    """A ``VideoCaps`` from one ``/videos/models`` entry (``VideoModel``); None when it has no id. What the list does
    not say (reference images, previous_job_id) is taken from ``MODELS`` where the model is there."""
    model = entry.get("id")
    if not isinstance(model, str) or not model:
        return None
    known = MODELS.get(model)
    frames = _strings(entry.get("supported_frame_images"))
    audio = entry.get("generate_audio")
    return VideoCaps(
        model,
        seconds=tuple(int(s) for s in entry.get("supported_durations") or ()
                      if isinstance(s, int | float) and not isinstance(s, bool) and s == int(s)),
        resolutions=_strings(entry.get("supported_resolutions")),
        aspects=_strings(entry.get("supported_aspect_ratios")),
        audio=audio if isinstance(audio, bool) else None,
        first_frame="first_frame" in frames,
        last_frame="last_frame" in frames,
        references=known.references if known is not None else 0,
        edit=known.edit if known is not None else False,
        price_per_second=_sku_price(entry.get("pricing_skus")),
        source="openrouter /videos/models",
    )


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _sku_price(skus: object) -> float | None:
    raw = skus.get(SECOND_SKU) if isinstance(skus, Mapping) else None
    try:
        return float(raw) if isinstance(raw, str | int | float) and not isinstance(raw, bool) else None
    except ValueError:
        return None


def _spelled(value: str, allowed: Sequence[str]) -> str | None:
    """``value`` as ``allowed`` spells it ("4k" -> "4K"), None when it is not there."""
    return next((a for a in allowed if a.lower() == value.strip().lower()), None)


def _data_url(model: str, flag: str, path: Path) -> str:
    """An image as a data URL of its own bytes (PNG or JPEG, by what the bytes are, not the file's name)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{flag}: openrouter:{model} cannot read {path}: {exc.strerror or exc}") from None
    mime = sniff(data[:HEAD_BYTES])
    if mime not in FRAME_TYPES:
        raise ConfigError(f"{flag}: {path.name} is not a PNG or JPEG image")
    return data_url(data, mime)


def _images(request: VideoRequest) -> list[tuple[str, Path]]:
    images = [("--image", request.image), ("--last-frame", request.last_frame)]
    named = [(flag, path) for flag, path in images if path is not None]
    return named + [("--reference", p) for p in request.references]


# ---- the provider ----------------------------------------------------------------------------------------


class OpenRouterVideoProvider(OverHTTP):
    """Generates clips with the video models on OpenRouter. Key: ``Authorization: Bearer $OPENROUTER_API_KEY``,
    sent to the API host only.

        provider = OpenRouterVideoProvider(Endpoint("openrouter", "https://openrouter.ai/api/v1", api_key=key), client)
    """

    protocol: ClassVar[str] = "openrouter_video"
    # The docs recommend polling every 10-30 s; the job loop backs off from here.
    poll_interval: ClassVar[float] = 10.0

    # ---- before anything is sent ----------------------------------------------------------------------

    @classmethod
    def unit_prices(cls) -> dict[str, Price]:
        """USD per second of the models in ``MODELS``, keyed by the full id as ``price_for`` looks them up
        (``openrouter:google/veo-3.1``, ``openrouter:google/veo-3.1@4k``): the estimate before a run. A finished
        job's ``usage.cost`` replaces it."""
        prices: dict[str, Price] = {}
        for model, caps in MODELS.items():
            if caps.price_per_second is not None:
                prices[f"openrouter:{model}"] = Price(per_second=caps.price_per_second, source=_PRICE_SOURCE)
            for resolution, rate in _RESOLUTION_PRICES.get(model, {}).items():
                prices[f"openrouter:{model}@{resolution}"] = Price(per_second=rate, source=_PRICE_SOURCE)
        return prices

    @classmethod
    def default_seconds(cls, model: str) -> int | None:
        """The length a model in ``MODELS`` makes when none is asked for (Veo: 8 s), else None."""
        return _DEFAULT_SECONDS if model in MODELS else None

    @classmethod
    def capabilities(cls, model: str) -> VideoCaps | None:
        """What ``model`` takes as far as known without asking OpenRouter (``MODELS``), else None."""
        return MODELS.get(model)

    @classmethod
    def check_request(cls, request: VideoRequest) -> list[str]:
        """``ConfigError`` (one line) for what OpenRouter's schema never takes, or what a model in ``MODELS`` does
        not; a note for an option OpenRouter has no field for. Other values of an unlisted model go through."""
        model = request.model
        name = f"openrouter:{model}"
        if not _MODEL_ID.match(model):
            raise ConfigError(f"{name}: not an OpenRouter model id (author/slug, e.g. google/veo-3.1)")
        if request.extend_uri is not None:
            raise ConfigError(f"--extend: {name} continues a clip by its job id (previous_job_id), not by a Veo "
                              "URI; --extend is for gemini:veo-3.1-* clips")
        for flag, path in _images(request):
            if not path.is_file():
                raise ConfigError(f"{flag}: {path} is not a file")
        if request.resolution is not None and _spelled(request.resolution, RESOLUTIONS) is None:
            raise ConfigError(f"--resolution {request.resolution}: OpenRouter takes {or_words(RESOLUTIONS)}")
        if request.aspect is not None and request.aspect not in ASPECTS:
            raise ConfigError(f"--aspect {request.aspect}: OpenRouter takes {or_words(ASPECTS)}")
        notes = [f"--negative: {name}: OpenRouter's video API has no negative prompt; not sent"] \
            if request.negative is not None else []
        caps = MODELS.get(model)
        if caps is None:
            return notes
        if request.seconds is not None and not caps.takes_seconds(request.seconds):
            raise ConfigError(f"--seconds {request.seconds}: {name} makes clips of {caps.seconds_words()} seconds")
        if request.resolution is not None and _spelled(request.resolution, caps.resolutions) is None:
            raise ConfigError(f"--resolution {request.resolution}: {name} makes {or_words(caps.resolutions)} only")
        if request.aspect is not None and request.aspect not in caps.aspects:
            raise ConfigError(f"--aspect {request.aspect}: {name} makes {or_words(caps.aspects)} only")
        if request.image is not None and not caps.first_frame:
            raise ConfigError(f"--image: {name} takes no first frame")
        if request.last_frame is not None and not caps.last_frame:
            raise ConfigError(f"--last-frame: {name} takes no last frame")
        if len(request.references) > caps.references:
            raise ConfigError(f"--reference: {name} takes at most {caps.references} reference images"
                              if caps.references else f"--reference: {name} takes no reference images")
        if request.previous_job is not None and not caps.edit:
            raise ConfigError(f"--edit: {name} cannot continue an earlier job")
        return notes

    def body(self, request: VideoRequest) -> dict[str, Any]:
        """The ``POST /videos`` body: the prompt and only the options the request sets, spelled as the model (or
        else OpenRouter's schema) spells them; images inline as data URLs."""
        model = request.model
        body: dict[str, Any] = {"model": model, "prompt": request.prompt}
        caps = MODELS.get(model)
        if request.seconds is not None:
            body["duration"] = int(request.seconds)
        if request.resolution is not None:
            allowed = caps.resolutions if caps is not None and caps.resolutions else RESOLUTIONS
            body["resolution"] = _spelled(request.resolution, allowed) or request.resolution
        if request.aspect is not None:
            body["aspect_ratio"] = request.aspect
        frames = [{"type": "image_url", "image_url": {"url": _data_url(model, flag, path)}, "frame_type": kind}
                  for kind, flag, path in (("first_frame", "--image", request.image),
                                           ("last_frame", "--last-frame", request.last_frame)) if path is not None]
        if frames:
            body["frame_images"] = frames
        if request.references:
            body["input_references"] = [{"type": "image_url", "image_url": {"url": _data_url(model, "--reference", p)}}
                                        for p in request.references]
        if request.previous_job is not None:
            body["previous_job_id"] = request.previous_job
        return body

    # ---- the job ---------------------------------------------------------------------------------------

    async def submit(self, request: VideoRequest) -> JobRef:
        """POST ``/videos`` once (never retried: a second POST is a second paid job); expects 202 and a job id.
        The JobRef keeps the id only: the polling path is rebuilt from it, and no URL of the answer is kept."""
        self.check_request(request)
        body = self.body(request)
        ctx = self._ctx(request.model)
        try:
            response = await self.client.request("POST", f"{self._base}/videos", json=body, headers=self._headers(),
                                                 follow_redirects=False, timeout=_TIMEOUT)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as exc:
            raise_transport_error(exc, ctx, started_stream=False)  # nothing reached OpenRouter
        except httpx.HTTPError as exc:
            cls = ProviderTimeout if isinstance(exc, httpx.TimeoutException) else ServerError
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ctx.error(cls, LOST_SUBMIT.format(detail=detail), retryable=False, code=SUBMIT_LOST) from None
        if not response.is_success:
            raise response_error(response, response.text, classifier(ctx))
        # Accepted: a body we cannot read, or one without an id, still may be a paid job.
        payload = decode_json(response.text)
        job_id = payload.get("id") if isinstance(payload, Mapping) else None
        if not isinstance(job_id, str) or not job_id:
            detail = f"HTTP {response.status_code} without a job id: {response.text[:80]!r}"
            raise ctx.error(ProtocolError, LOST_SUBMIT.format(detail=detail), status=response.status_code,
                            retryable=False, code=SUBMIT_LOST)
        return JobRef(self.protocol, request.model, job_id)

    async def poll(self, job: JobRef) -> JobStatus:
        """GET ``/videos/{id}``: pending/in_progress are queued/running; completed names the clip; failed, cancelled
        and expired are final with OpenRouter's ``error`` verbatim."""
        ctx = self._ctx(job.model)
        payload, _ = await send_json(self.client, "GET", self._job_url(job.job_id), ctx=ctx, classify=classifier(ctx),
                                     headers=self._headers(), timeout=_POLL_TIMEOUT)
        if not isinstance(payload, Mapping):
            raise ctx.error(ProtocolError, f"the job is not a JSON object: {payload!r:.120}")
        return self.status(ctx, job, payload)

    def status(self, ctx: WireContext, job: JobRef, answer: Mapping[str, Any]) -> JobStatus:
        """The ``JobStatus`` one ``VideoGenerationResponse`` says (no I/O)."""
        state = answer.get("status")
        if isinstance(state, str) and state in _STATES:
            return JobStatus(_STATES[state], progress=state)
        error = answer.get("error")
        words = error.strip() if isinstance(error, str) and error.strip() else None
        if state == "completed":
            clip = self._clip(job, answer)
            if clip is None:
                return JobStatus("failed", error=ctx.error(
                    ProtocolError, "the job completed without unsigned_urls or urls", code="completed"))
            return JobStatus("succeeded", clips=(clip,), usage=_usage(answer.get("usage")))
        if state == "cancelled":
            return JobStatus("cancelled", error=ctx.error(CallCancelled, words or "the job was cancelled",
                                                          code="cancelled"))
        if state == "failed":
            return JobStatus("failed", error=ctx.error(ProviderError, words or "the job failed (no reason given)",
                                                       code="failed"))
        if state == "expired":
            return JobStatus("failed", error=ctx.error(
                ProviderError, words or "the job expired at OpenRouter: its output is no longer kept", code="expired"))
        raise ctx.error(ProtocolError, f"unknown job status {state!r}")

    def _clip(self, job: JobRef, answer: Mapping[str, Any]) -> Clip | None:
        unsigned = _first_url(answer.get("unsigned_urls"))
        if unsigned is not None:
            # The content proxy: the key goes with it, so it must be on the API host. Where the answer names
            # another origin (a gateway in front of OpenRouter), the same content route on our own base is used.
            uri = unsigned if same_origin(unsigned, self._base) else f"{self._job_url(job.job_id)}/content?index=0"
            return Clip(uri=uri, needs_key=True, keep_uri=True)
        signed = _first_url(answer.get("urls"))
        if signed is not None:
            return Clip(uri=signed, needs_key=False, keep_uri=False)
        return None

    async def download(self, clip: Clip, dest: Path) -> int:
        """Stream the clip: the content proxy with the key (only when it is on the API host), a signed URL
        without it; a redirect is followed without the key either way."""
        ctx = self._ctx("")
        if clip.uri is None:
            raise ctx.error(ProtocolError, "the clip has no URL")
        keyed = clip.needs_key and same_origin(clip.uri, self._base)
        headers = {**self._headers(), "Accept": "video/mp4"} if keyed else {"Accept": "video/mp4"}
        return await download_to(self.client, clip.uri, dest, ctx=ctx, classify=classifier(ctx), headers=headers)

    async def cancel(self, job: JobRef) -> None:
        """Nothing to do: OpenRouter's video API has no cancel (§10.1 lists submit, poll, content and models), so a
        submitted job runs to its end and is billed; the caller simply stops polling."""
        return None

    async def list_models(self) -> list[str]:
        """The ids on ``GET /videos/models``."""
        return [caps.model for caps in await self.list_capabilities()]

    async def list_capabilities(self) -> list[VideoCaps]:
        """What each model on ``GET /videos/models`` takes, as ``VideoCaps`` (durations, resolutions, aspect ratios,
        frame images, the per-second price of ``pricing_skus``)."""
        ctx = self._ctx("models")
        payload, _ = await send_json(self.client, "GET", f"{self._base}/videos/models", ctx=ctx,
                                     classify=classifier(ctx), headers=self._headers(), timeout=_POLL_TIMEOUT)
        data = payload.get("data") if isinstance(payload, Mapping) else None
        if not isinstance(data, list):
            raise ctx.error(ProtocolError, f"/videos/models answered without a data list: {payload!r:.120}")
        found = (caps_from_model(entry) for entry in data if isinstance(entry, Mapping))
        return [caps for caps in found if caps is not None]

    # ---- plumbing --------------------------------------------------------------------------------------

    @property
    def _base(self) -> str:
        return self.endpoint.base_url.rstrip("/")

    def _job_url(self, job_id: str) -> str:
        return f"{self._base}/videos/{quote(job_id, safe='')}"

    def _ctx(self, model: str) -> WireContext:
        return WireContext(self.endpoint.provider, model, secret=self.endpoint.api_key)

    def _headers(self) -> dict[str, str]:
        headers = dict(self.endpoint.headers)  # the attribution header (X-OpenRouter-Title)
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        return headers


def _first_url(value: object) -> str | None:
    if isinstance(value, list) and value and isinstance(value[0], str) and value[0]:
        return value[0]
    return None


def _usage(usage: object) -> Usage | None:
    """``usage.cost`` exactly as reported (USD; may be null)."""
    if not isinstance(usage, Mapping):
        return None
    cost = usage.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return Usage(cost_usd=float(cost))
    return None


__all__ = ["ASPECTS", "LOST_SUBMIT", "MODELS", "RESOLUTIONS", "OpenRouterVideoProvider", "caps_from_model"]
