"""Runway's developer API (shared/reference/video-apis.md §7, §10.2; runwayml 5.24.0): POST a task to
``/v1/text_to_video`` or ``/v1/image_to_video``, poll ``GET /v1/tasks/{id}``, download the clip from the
signed CDN link the finished task names, and ``DELETE /v1/tasks/{id}`` to cancel.

Every request carries ``Authorization: Bearer $RUNWAYML_API_SECRET`` and ``X-Runway-Version: 2024-11-06`` (the
SDK's version; the ``/v1`` in the paths is not the API version). Bodies are camelCase.

Money is on the wire: the submit answers ``estimatedCost.credits`` (the most the task may charge; shown in the
job's progress phrase while it waits), a finished task ``cost.credits`` (the charge, refunds included), and a
credit is USD 0.01. That figure goes on the clip's record as the provider's own; ``MODELS`` holds the credits
per second of the reference for ``--estimate``.

Output links are signed (``...?_jwt=...``), need no key and expire within 24-48 h: a clip is downloaded at once
and its link never written down (``Clip.keep_uri`` False). A later ``GET /v1/tasks/{id}`` names fresh links, so
a resume after expiry polls the task again; a download the CDN refuses as expired (403/410) tries one fresh link
from a new poll, and otherwise ends in one line that says so (the clip stays pending, and resume polls again).

    provider = RunwayProvider(resolve_endpoint(BUILTIN["runway"]), client)
    job = await provider.submit(VideoRequest("gen4.5", "a lighthouse in a storm", seconds=5, aspect="16:9"))
    status = await provider.poll(job)       # JobStatus(state="running", progress="40 %; up to 60 credits ($0.60)")
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from ...core.errors import (
    AuthError,
    BadRequestError,
    ConfigError,
    PaymentError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ServerError,
    error_for_status,
)
from ...core.mime import data_url
from ...core.pricing import Price
from .._http import Classifier, ErrorInfo, WireContext, decode_json, raise_transport_error, response_error
from ..base import Endpoint, OverHTTP, Usage
from ._download import download_to
from .base import SUBMIT_LOST, Clip, JobRef, JobStatus, VideoCaps, VideoRequest

VERSION = "2024-11-06"
# The SDK's defaults (``_constants.py``): 60 s, 5 s to connect. A data URI of up to 5 MB rides in a submit.
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
USD_PER_CREDIT = 0.01
# A base64 data URI of an image must be under 5 MB (the SDK's promptImage docstring).
MAX_DATA_URI = 5 * 1024 * 1024
THROTTLED = "throttled: over your organisation's concurrency, waiting"
EXPIRED = "the output link expired; polling again for a fresh one"
# What the CDN answers for a signed link past its time (unconfirmed which of the two: both are read as expiry).
_EXPIRED_STATUSES = (403, 410)
# Failure codes whose task was withheld by content moderation (docs ``task-failures``): the clip is filtered.
_SAFETY_PREFIXES = ("SAFETY.", "INPUT_PREPROCESSING.SAFETY")
_SOURCE = "shared/reference/video-apis.md §10.2 (runwayml 5.24.0 text_to_video/image_to_video params)"

_P720 = ("1280:720", "720:1280")
_P1080 = ("1920:1080", "1080:1920")


@dataclass(frozen=True)
class RunwayModel:
    """What one Runway model takes, and how our flags map onto it.

    ``ratios`` maps a resolution to the (landscape, portrait) ``ratio`` text-to-video sends for ``--aspect 16:9`` /
    ``9:16``; ``image_ratios`` the same for image-to-video (None: as ``ratios``). An empty ``ratios`` means the
    model has no text-to-video (``gen4_turbo``: a first frame is required). ``seconds`` lists the lengths it makes,
    or ``min_seconds``..``max_seconds`` a range (all empty: not documented, not checked); ``default_seconds`` is
    sent when no ``--seconds`` is given (``duration`` is required by some models, and a known length prices the
    clip). ``credits_per_second`` is for what we send (Veo: with ``audio``, which we send as true).
    """

    default_seconds: int
    ratios: Mapping[str, tuple[str, str]]
    image_ratios: Mapping[str, tuple[str, str]] | None = None
    seconds: tuple[int, ...] = ()
    min_seconds: int | None = None
    max_seconds: int | None = None
    last_frame: bool = False
    references: int = 0
    negative: bool = False
    audio: bool = False  # whether it takes ``audio`` (sent as true: the clip has sound, and the price is known)
    max_prompt: int | None = None  # UTF-16 code units
    credits_per_second: float | None = None
    source: str = _SOURCE

    def takes(self, seconds: int) -> bool:
        return self.caps("").takes_seconds(seconds)

    def seconds_words(self) -> str:
        return self.caps("").seconds_words()

    def ratio_table(self, with_image: bool) -> Mapping[str, tuple[str, str]]:
        return self.image_ratios if with_image and self.image_ratios is not None else self.ratios

    def caps(self, model: str) -> VideoCaps:
        resolutions = tuple(dict.fromkeys((*self.ratios, *(self.image_ratios or {}))))
        price = self.credits_per_second * USD_PER_CREDIT if self.credits_per_second is not None else None
        return VideoCaps(model, seconds=self.seconds, min_seconds=self.min_seconds, max_seconds=self.max_seconds,
                         resolutions=resolutions, aspects=("16:9", "9:16"), audio=self.audio or None,
                         first_frame=True, last_frame=self.last_frame, references=self.references,
                         price_per_second=price, source=self.source)


# From the reference's per-model table (§10.2) and the SDK's Literal types; credits per second from Runway's own
# ``rw-api-reference`` skill as the reference quotes it (gemini_omni_flash's is a third-party transcription).
MODELS: dict[str, RunwayModel] = {
    "gen4.5": RunwayModel(
        default_seconds=5, min_seconds=2, max_seconds=10, ratios={"720p": _P720}, max_prompt=1000,
        credits_per_second=12),
    "gen4_turbo": RunwayModel(
        # Image to video only. The SDK types its duration as a plain int; 2 to 10 is Runway's general video
        # range (rw-api-reference), unconfirmed for this model.
        default_seconds=5, min_seconds=2, max_seconds=10, ratios={}, image_ratios={"720p": _P720}, max_prompt=1000,
        credits_per_second=5),
    "veo3.1": RunwayModel(
        default_seconds=8, seconds=(4, 6, 8), ratios={"720p": _P720, "1080p": _P1080}, last_frame=True,
        negative=True, audio=True, max_prompt=1000, credits_per_second=40),  # 20 without audio, 40 with
    "veo3.1_fast": RunwayModel(
        default_seconds=8, seconds=(4, 6, 8), ratios={"720p": _P720, "1080p": _P1080}, last_frame=True,
        negative=True, audio=True, max_prompt=1000, credits_per_second=15),  # 10 without audio, 15 with
    "gemini_omni_flash": RunwayModel(
        default_seconds=5, min_seconds=3, max_seconds=10, ratios={"720p": _P720}, credits_per_second=10),
    "kling2.5_turbo_pro": RunwayModel(
        # Six ratios from 1920:1080 to 720:1280 per the reference; only the 16:9 and 9:16 ones are sent. No credit
        # figure in the reference: no estimate (the task's own cost still lands in the ledger).
        default_seconds=5, seconds=(5, 10), ratios={"720p": _P720, "1080p": _P1080}),
    "seedance2": RunwayModel(
        # Duration "int or auto" (billed at the maximum, refunded after): no documented range, not checked here.
        # Keyframes first and last; image references (up to 9 at Runway; --reference takes 3).
        default_seconds=5, ratios={"480p": ("864:496", "496:864"), "720p": _P720, "1080p": _P1080,
                                   "4k": ("3840:2160", "2160:3840")},
        last_frame=True, references=3, max_prompt=3500, credits_per_second=36),
}


def issues_message(issues: object) -> str | None:
    """Runway's 400 ``issues`` (zod-style ``{code, path, message}``) as one line naming each field:
    ``"duration: Number must be less than or equal to 10; ratio: Invalid enum value"``."""
    if not isinstance(issues, list):
        return None
    parts = []
    for item in issues:
        if not isinstance(item, Mapping):
            continue
        path = ".".join(str(p) for p in item.get("path") or () if isinstance(p, str | int))
        message = " ".join(str(item.get("message") or item.get("code") or "invalid").split())
        parts.append(f"{path}: {message}" if path else message)
    return "; ".join(parts) or None


def classifier(ctx: WireContext) -> Classifier:
    """Our error for a Runway error response: ``{"error": "Validation of body failed", "issues": [...]}`` (400,
    one line naming the fields, the first issue's code as ours) or ``{"error": "<text>"}``; the class by status
    (401 auth, 404/405 bad request, 429 rate limit, 5xx server), and "not enough credits" a payment error."""

    def classify(info: ErrorInfo) -> ProviderError:
        status = info.status or 500
        message = " ".join(info.message.split())
        issues = info.body.get("issues")
        named = issues_message(issues)
        if named:
            message = f"{message}: {named}"
        first = issues[0] if isinstance(issues, list) and issues and isinstance(issues[0], Mapping) else {}
        code = first.get("code") if isinstance(first.get("code"), str) else None
        cls: type[ProviderError] = error_for_status(status)
        if "enough credits" in message.lower():
            cls = PaymentError
        return ctx.error(cls, message, status=status, code=code, retry_after=info.retry_after)

    return classify


def credits_words(credits: float) -> str:
    """``"48 credits ($0.48)"``."""
    amount = f"{credits:g}"
    return f"{amount} credit{'s' if credits != 1 else ''} (${credits * USD_PER_CREDIT:.2f})"


# What a task answers when its submit's answer was lost: one line saying what we do and what to check.
LOST_SUBMIT = ("the submit was sent but its answer was lost ({detail}); Runway may have started the task and "
               "bills it if so, but it can only be found by its id, which never arrived. It is not sent again: see "
               "https://dev.runwayml.com (Usage) before running the cell again")


class RunwayProvider(OverHTTP):
    """Generates clips with Runway's models. Key: ``Authorization: Bearer $RUNWAYML_API_SECRET``.

        provider = RunwayProvider(Endpoint("runway", "https://api.dev.runwayml.com", api_key=key), client)
    """

    protocol: ClassVar[str] = "runway"
    # The SDK's wait helper sleeps 6 s (+-1.5 s) before every GET; the docs: no updates more often than every 5 s.
    poll_interval: ClassVar[float] = 6.0

    def __init__(self, endpoint: Endpoint, client: httpx.AsyncClient) -> None:
        super().__init__(endpoint, client)
        # The task each signed link came from (this instance polls and downloads one clip): an expired link is
        # replaced by a fresh poll's. In memory only: a link is never written down.
        self._issued: dict[str, JobRef] = {}
        self._estimates: dict[str, float] = {}

    # ---- before anything is sent --------------------------------------------------------------------

    @classmethod
    def unit_prices(cls) -> dict[str, Price]:
        """USD per second for the models in ``MODELS`` with a credit figure (credits x $0.01), keyed by the full id
        (``runway:veo3.1``: Runway's rate for its Veo is nobody else's)."""
        return {f"runway:{model}": Price(per_second=row.credits_per_second * USD_PER_CREDIT,
                             source=f"Runway credits ({row.credits_per_second:g}/s at $0.01; {row.source})")
                for model, row in MODELS.items() if row.credits_per_second is not None}

    @classmethod
    def capabilities(cls, model: str) -> VideoCaps | None:
        """What a model in ``MODELS`` accepts (None: not in the table, so nothing is known of it)."""
        row = MODELS.get(model)
        return row.caps(model) if row is not None else None

    @classmethod
    def default_seconds(cls, model: str) -> int | None:
        """The length sent when none is asked for (None for a model not in the table)."""
        row = MODELS.get(model)
        return row.default_seconds if row is not None else None

    @classmethod
    def check_request(cls, request: VideoRequest) -> list[str]:
        """ConfigError (one line) for what the model refuses; notes for the options it ignores."""
        model = request.model
        name = f"runway:{model}"
        if request.previous_job is not None:
            raise ConfigError(f"--edit: {name} cannot revise an earlier job; only Gemini Omni models can")
        if request.extend_uri is not None:
            raise ConfigError(f"--extend: {name} cannot extend a clip; only Gemini Veo models can "
                              "(-m gemini:veo-3.1-fast-generate-preview)")
        for flag, path in (("--image", request.image), ("--last-frame", request.last_frame),
                           *(("--reference", p) for p in request.references)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{flag}: {path} is not a file")
        if request.last_frame is not None and request.image is None:
            raise ConfigError(f"--last-frame needs --image: {name} runs from a first frame to the last")
        spec = MODELS.get(model)
        if spec is None:
            if request.references or request.last_frame is not None:
                flag = "--reference" if request.references else "--last-frame"
                raise ConfigError(f"{flag}: {name} is not in fusion_magic's table of Runway models, so it is not "
                                  f"known to take one; use one that does ({', '.join(_taking(flag))}) or drop it")
            return [f"{name} is not in fusion_magic's table of Runway models ({', '.join(MODELS)}): the request is "
                    "sent as asked and not checked here (Runway has no model list to ask)"]
        notes: list[str] = []
        with_image = request.image is not None
        if not spec.ratios and not with_image:
            raise ConfigError(f"--image: {name} makes clips from a first frame only; pass --image FRAME.png "
                              "(or use runway:gen4.5 for text alone)")
        if request.seconds is not None and not spec.takes(request.seconds):
            raise ConfigError(f"--seconds {request.seconds}: {name} makes clips of {spec.seconds_words()} seconds")
        if request.aspect is not None and request.aspect not in ("16:9", "9:16"):
            raise ConfigError(f"--aspect {request.aspect}: {name} makes 16:9 or 9:16 here")
        table = spec.ratio_table(with_image)
        if request.resolution is not None and request.resolution not in table:
            how = " from a first frame" if with_image and spec.image_ratios is not None else ""
            raise ConfigError(f"--resolution {request.resolution}: {name} makes {', '.join(table)}{how} only")
        if request.last_frame is not None and not spec.last_frame:
            raise ConfigError(f"--last-frame: {name} takes a first frame only; use one that takes both "
                              f"({', '.join(_taking('--last-frame'))}) or drop it")
        if request.references:
            if not spec.references:
                raise ConfigError(f"--reference: {name} takes no reference images; use one that does "
                                  f"({', '.join(_taking('--reference'))}) or drop it")
            if len(request.references) > spec.references:
                raise ConfigError(f"--reference: {name} takes up to {spec.references} reference images")
            if with_image:
                raise ConfigError(f"--reference with --image: {name} takes either keyframes or reference images, "
                                  "not both in one request; drop one")
        for flag, path in (("--image", request.image), ("--last-frame", request.last_frame),
                           *(("--reference", p) for p in request.references)):
            if path is not None:
                _check_inline(flag, path)
        if spec.max_prompt is not None and _utf16_units(request.prompt) > spec.max_prompt:
            raise ConfigError(f"the prompt is {_utf16_units(request.prompt)} UTF-16 code units; {name} takes up to "
                              f"{spec.max_prompt}")
        if request.negative is not None and not spec.negative:
            notes.append(f"--negative: {name} has no negative prompt; not sent")
        return notes

    @classmethod
    def task_input(cls, request: VideoRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint (``text_to_video`` or ``image_to_video``) and its camelCase body."""
        cls.check_request(request)
        spec = MODELS.get(request.model)
        with_image = request.image is not None
        body: dict[str, Any] = {"model": request.model}
        if request.prompt:
            body["promptText"] = request.prompt
        if request.image is not None:
            if request.last_frame is not None:
                body["promptImage"] = [{"uri": data_url(request.image.read_bytes()), "position": "first"},
                                       {"uri": data_url(request.last_frame.read_bytes()), "position": "last"}]
            else:
                body["promptImage"] = data_url(request.image.read_bytes())
        if spec is None:  # sent as asked: the API checks it (a ratio is required by most models)
            landscape, portrait = _P1080 if request.resolution == "1080p" else _P720
            body["ratio"] = portrait if request.aspect == "9:16" else landscape
            if request.seconds is not None:
                body["duration"] = request.seconds
            if request.negative is not None:
                body["negativePrompt"] = request.negative
            return ("image_to_video" if with_image else "text_to_video"), body
        table = spec.ratio_table(with_image)
        resolution = request.resolution or "720p"
        landscape, portrait = table[resolution] if resolution in table else next(iter(table.values()))
        body["ratio"] = portrait if request.aspect == "9:16" else landscape
        body["duration"] = request.seconds if request.seconds is not None else spec.default_seconds
        if spec.audio:
            body["audio"] = True
        if request.negative is not None and spec.negative:
            body["negativePrompt"] = request.negative
        if request.references:
            body["references"] = [{"uri": data_url(path.read_bytes())} for path in request.references]
        return ("image_to_video" if with_image else "text_to_video"), body

    # ---- the job ------------------------------------------------------------------------------------

    async def submit(self, request: VideoRequest) -> JobRef:
        """POST the task once (never retried: a second POST is a second paid task); returns its id. An answer lost
        after the request left (a read timeout, a dropped connection, a success without an id) is one line saying
        a paid task may exist and where to look: Runway cannot find a task without its id."""
        path, body = self.task_input(request)
        ctx = self._ctx(request.model)
        try:
            response = await self.client.request("POST", f"{self._base}/v1/{path}", json=dict(body),
                                                 headers=self._headers(), follow_redirects=False, timeout=_TIMEOUT)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as exc:
            raise_transport_error(exc, ctx, started_stream=False)  # nothing reached Runway
        except httpx.HTTPError as exc:
            cls = ProviderTimeout if isinstance(exc, httpx.TimeoutException) else ServerError
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ctx.error(cls, LOST_SUBMIT.format(detail=detail), retryable=False, code=SUBMIT_LOST) from None
        if not response.is_success:
            raise self._classify(request.model, response)
        payload = decode_json(response.text)
        if not isinstance(payload, Mapping) or not isinstance(payload.get("id"), str) or not payload["id"]:
            detail = f"HTTP {response.status_code} without a task id: {response.text[:80]!r}"
            raise ctx.error(ProtocolError, LOST_SUBMIT.format(detail=detail), status=response.status_code,
                            retryable=False, code=SUBMIT_LOST)
        estimate = _credits(payload.get("estimatedCost"))
        if estimate is not None:
            self._estimates[payload["id"]] = estimate
        return JobRef("runway", request.model, payload["id"])

    async def poll(self, job: JobRef) -> JobStatus:
        """GET the task: PENDING and THROTTLED are queued, RUNNING running ("40 %"), SUCCEEDED a clip at a signed
        link with the task's cost, FAILED filtered (SAFETY codes) or failed, CANCELLED cancelled."""
        ctx = self._ctx(job.model)
        task = await self._call("GET", f"{self._base}/v1/tasks/{job.job_id}", job.model)
        if not isinstance(task, Mapping):
            raise ctx.error(ProtocolError, f"the task answered {task!r:.120}")
        status = task.get("status")
        estimate = _credits(task.get("estimatedCost"))
        if estimate is not None:
            self._estimates[job.job_id] = estimate
        estimate = self._estimates.get(job.job_id)
        cost = _credits(task.get("cost"))
        usage = Usage(cost_usd=cost / 100) if cost is not None else None  # credits x $0.01, rounded once
        if status == "PENDING":
            return JobStatus("queued", progress=_with_estimate(None, estimate))
        if status == "THROTTLED":
            return JobStatus("queued", progress=_with_estimate(THROTTLED, estimate))
        if status == "RUNNING":
            progress = task.get("progress")
            share = f"{round(float(progress) * 100)} %" if isinstance(progress, int | float) else None
            return JobStatus("running", progress=_with_estimate(share, estimate))
        if status == "SUCCEEDED":
            output = task.get("output")
            urls = [u for u in output if isinstance(u, str) and u] if isinstance(output, list) else []
            if not urls:
                return JobStatus("failed", usage=usage, error=ctx.error(
                    ProtocolError, f"the task succeeded without an output link: {str(task)[:120]}"))
            for url in urls:
                self._issued[url] = job
            return JobStatus("succeeded", clips=(Clip(urls[0], needs_key=False, keep_uri=False),), usage=usage)
        if status == "FAILED":
            failure = " ".join(str(task.get("failure") or "the task failed (no reason given)").split())
            code = task.get("failureCode") if isinstance(task.get("failureCode"), str) else None
            if code is not None and code.startswith(_SAFETY_PREFIXES):
                return JobStatus("filtered", reason=f"{failure} ({code})", usage=usage)
            cls: type[ProviderError] = BadRequestError if code and code.startswith(("INPUT_", "ASSET.")) \
                else ServerError
            return JobStatus("failed", usage=usage, error=ctx.error(
                cls, f"{failure} (failureCode {code})" if code else failure, code=code))
        if status == "CANCELLED":
            return JobStatus("cancelled", reason="cancelled or deleted at Runway", usage=usage)
        raise ctx.error(ProtocolError, f"unknown task status {status!r}")

    async def download(self, clip: Clip, dest: Path) -> int:
        """Stream the clip from its signed link, without the key. A link the CDN refuses as expired (403/410) is
        replaced once by a fresh poll's; otherwise the error says so in one line (a resume polls again)."""
        if clip.uri is None:
            raise self._ctx("").error(ProtocolError, "clip has no URL")
        job = self._issued.get(clip.uri)
        ctx = self._ctx(job.model if job is not None else "")
        try:
            return await self._fetch(clip.uri, dest, ctx)
        except ProviderError as exc:
            if exc.status not in _EXPIRED_STATUSES:
                raise
            status = exc.status
        if job is not None:
            try:
                fresh = await self.poll(job)
            except ProviderError as exc:
                if exc.status != 404:
                    raise
                raise ctx.error(BadRequestError, "the output link expired and the task is no longer at Runway "
                                "(deleted): it cannot be fetched again", status=404) from None
            uri = fresh.clips[0].uri if fresh.state == "succeeded" and fresh.clips else None
            if uri is not None and uri != clip.uri:
                try:
                    return await self._fetch(uri, dest, ctx)
                except ProviderError as exc:
                    if exc.status not in _EXPIRED_STATUSES:
                        raise
                    status = exc.status
        raise ctx.error(ProviderError, EXPIRED, status=status)

    async def cancel(self, job: JobRef) -> None:
        """DELETE the task: cancels it while it waits or runs, deletes it once finished (it cannot be fetched
        again). A task already gone (404) is no error: there is nothing to stop."""
        response, _ = await self._send("DELETE", f"{self._base}/v1/tasks/{job.job_id}", job.model)
        if response.is_success or response.status_code == 404:
            return
        raise self._classify(job.model, response)

    async def list_models(self) -> list[str]:
        """Runway has no public endpoint listing the video models a key can use (the reference names none):
        these are the models of this module's table. Another Runway model id is still sent, unchecked."""
        return list(MODELS)

    # ---- helpers ------------------------------------------------------------------------------------

    @property
    def _base(self) -> str:
        return self.endpoint.base_url.rstrip("/")

    def _ctx(self, model: str) -> WireContext:
        return WireContext("runway", model, secret=self.endpoint.api_key)

    def _headers(self) -> dict[str, str]:
        headers = dict(self.endpoint.headers)
        headers["X-Runway-Version"] = VERSION
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        return headers

    async def _fetch(self, url: str, dest: Path, ctx: WireContext) -> int:
        """One download of a signed link: no key, no version header (the CDN is not the API)."""
        return await download_to(self.client, url, dest, ctx=ctx, classify=_cdn_classifier(ctx))

    async def _send(self, method: str, url: str, model: str, *,
                    body: Mapping[str, Any] | None = None) -> tuple[httpx.Response, Any]:
        ctx = self._ctx(model)
        try:
            response = await self.client.request(method, url, json=dict(body) if body is not None else None,
                                                 headers=self._headers(), follow_redirects=False, timeout=_TIMEOUT)
        except httpx.HTTPError as exc:
            raise_transport_error(exc, ctx, started_stream=False)
        return response, decode_json(response.text)

    async def _call(self, method: str, url: str, model: str, *, body: Mapping[str, Any] | None = None) -> Any:
        response, payload = await self._send(method, url, model, body=body)
        if not response.is_success:
            raise self._classify(model, response)
        if payload is None:
            raise self._ctx(model).error(ProtocolError, f"expected JSON, got {response.text[:120]!r}",
                                         status=response.status_code)
        return payload

    def _classify(self, model: str, response: httpx.Response) -> ProviderError:
        return response_error(response, response.text, classifier(self._ctx(model)))


def _cdn_classifier(ctx: WireContext) -> Classifier:
    """The CDN's refusals (an XML or HTML body, not Runway's JSON): the status decides, the body stays out (it
    may quote the signed link)."""

    def classify(info: ErrorInfo) -> ProviderError:
        status = info.status or 500
        cls = error_for_status(status)
        if cls is AuthError:
            cls = ProviderError  # a CDN 403 is a refused link, not a bad key: no key was sent
        return ctx.error(cls, f"the CDN answered HTTP {status}", status=status)

    return classify


def _credits(value: object) -> float | None:
    """``{"credits": 48}`` -> 48.0; None when absent or not a number."""
    credits = value.get("credits") if isinstance(value, Mapping) else None
    if isinstance(credits, int | float) and not isinstance(credits, bool):
        return float(credits)
    return None


def _with_estimate(phrase: str | None, credits: float | None) -> str | None:
    if credits is None:
        return phrase
    estimate = f"up to {credits_words(credits)}"
    return f"{phrase}; {estimate}" if phrase else estimate


def _taking(flag: str) -> list[str]:
    if flag == "--last-frame":
        return [f"runway:{m}" for m, row in MODELS.items() if row.last_frame]
    return [f"runway:{m}" for m, row in MODELS.items() if row.references]


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _check_inline(flag: str, path: Path) -> None:
    """An image goes inline as a base64 data URI, which Runway takes up to 5 MB."""
    size = path.stat().st_size
    encoded = len("data:image/jpeg;base64,") + 4 * ((size + 2) // 3)
    if encoded > MAX_DATA_URI:
        raise ConfigError(f"{flag}: {path.name} is {size / 1e6:.1f} MB, over Runway's 5 MB limit for an image sent "
                          "inline (as a base64 data URI); use a smaller PNG or JPEG")



__all__ = [
    "EXPIRED",
    "LOST_SUBMIT",
    "MODELS",
    "THROTTLED",
    "VERSION",
    "RunwayModel",
    "RunwayProvider",
    "classifier",
    "credits_words",
    "issues_message",
]
