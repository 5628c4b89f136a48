"""fal's queue API (shared/reference/video-apis.md §5): ``/fal/{endpoint id}`` to submit, then
``/fal/{owner}/{alias}/requests/{id}[/status|/cancel]``; finished clips are links to the storage host.

The queue URLs handed back keep only ``{owner}/{alias}`` of a multi-segment endpoint id, as fal's do, so a
client that builds them from the endpoint id (``/fal/fal-ai/veo3.1/image-to-video/requests/...``) gets a
405 instead of a status. Inputs are validated against the schemas of the endpoints in ``SCHEMAS`` (written
from fal's model pages, independently of the client's table) and refused with fal's 422 detail list.

Shapes this emulator picks where fal's documentation is silent (documented here, mirrored by the client):

* a failed job: status ``COMPLETED`` with ``error`` and ``error_type: "runner_server_error"``; its
  ``response_url`` answers 500 ``{"detail", "error_type"}`` with ``x-fal-error-type``;
* a filtered job (``VideoScript(outcome="filtered")``): status ``COMPLETED`` without error, and the
  ``response_url`` answers 422 with a ``content_policy_violation`` detail item (docs.fal.ai/errors);
* a cancelled job: status ``COMPLETED`` with ``error_type: "client_cancelled"`` (fal's request error type).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from .._wire import default_message
from ..registry import Family, Request, Route
from ..script import Fault
from ..video import AFTER_ACCEPT, answer_accepted, api_origin, storage_url
from ..video_script import EmulatedJob

_PREFIX = "/fal"
_REQUEST = _PREFIX + "/{owner}/{alias}/requests/{request_id}"
_ERRORS_URL = "https://docs.fal.ai/errors"
# fal's request error types by status (fal.ai/docs/documentation/model-apis/request-errors).
_ERROR_TYPES = {400: "bad_request", 500: "internal_error", 502: "runner_incomplete_response",
                503: "runner_scheduling_failure", 504: "request_timeout"}


@dataclass(frozen=True)
class Schema:
    """What one endpoint's input must hold: required fields and the allowed values of enum fields."""

    required: tuple[str, ...] = ("prompt",)
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


_VEO = {"duration": ("4s", "6s", "8s"), "aspect_ratio": ("16:9", "9:16"), "resolution": ("720p", "1080p", "4k")}
_VEO_I2V = {**_VEO, "aspect_ratio": ("auto", "16:9", "9:16")}
_VEO_FAST = {**_VEO, "resolution": ("720p", "1080p")}
_KLING = {"duration": ("5", "10"), "aspect_ratio": ("16:9", "9:16", "1:1")}
_KLING_I2V = {"duration": ("5", "10")}
_I2V = ("prompt", "image_url")
_FLF = ("prompt", "first_frame_url", "last_frame_url")
_VEO_FLF = {"duration": ("4s", "6s", "8s"), "aspect_ratio": ("auto", "16:9", "9:16")}
# Every input that names an image: each must be a URL or data URI fal can fetch.
_IMAGE_FIELDS = ("image_url", "first_frame_url", "last_frame_url", "tail_image_url", "end_image_url")

# From https://fal.ai/models/{endpoint}/llms.txt. Other endpoints need a prompt and nothing else.
SCHEMAS: dict[str, Schema] = {
    "fal-ai/veo3.1": Schema(enums=_VEO),
    "fal-ai/veo3.1/image-to-video": Schema(_I2V, _VEO_I2V),
    "fal-ai/veo3.1/fast": Schema(enums=_VEO_FAST),
    "fal-ai/veo3.1/fast/image-to-video": Schema(_I2V, {**_VEO_FAST, "aspect_ratio": ("auto", "16:9", "9:16")}),
    "fal-ai/veo3.1/first-last-frame-to-video": Schema(_FLF, _VEO_FLF),
    "fal-ai/veo3.1/fast/first-last-frame-to-video": Schema(_FLF, _VEO_FLF),
    "fal-ai/kling-video/v2.5-turbo/pro/text-to-video": Schema(enums=_KLING),
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video": Schema(_I2V, _KLING_I2V),
    "fal-ai/kling-video/v2.1/master/text-to-video": Schema(enums=_KLING),
    "fal-ai/kling-video/v2.1/master/image-to-video": Schema(_I2V, _KLING_I2V),
    "fal-ai/minimax/hailuo-02/standard/text-to-video": Schema(enums={"duration": ("6", "10")}),
    "fal-ai/minimax/hailuo-02/standard/image-to-video": Schema(
        _I2V, {"duration": ("6", "10"), "resolution": ("512P", "768P")}),
}


def app_path(endpoint_id: str) -> str:
    """``{owner}/{alias}`` of an endpoint id: the part its queue URLs keep."""
    return "/".join(endpoint_id.strip("/").split("/")[:2])


def _item(field_name: str, msg: str, kind: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    item = {"loc": ["body", field_name], "msg": msg, "type": kind, "url": f"{_ERRORS_URL}#{kind}"}
    if value is not None:
        item["input"] = value
    return {**item, **extra}


def validate(endpoint_id: str, body: Any) -> list[dict[str, Any]]:
    """fal's 422 detail items for ``body`` (pydantic wording), empty when it is acceptable."""
    if not isinstance(body, Mapping):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type",
                 "url": f"{_ERRORS_URL}#dict_type"}]
    schema = SCHEMAS.get(endpoint_id, Schema())
    errors = [_item(name, "Field required", "missing") for name in schema.required if name not in body]
    for name, allowed in schema.enums.items():
        if name in body and body[name] not in allowed:
            expected = ", ".join(repr(v) for v in allowed[:-1]) + f" or {allowed[-1]!r}"
            errors.append(_item(name, f"Input should be {expected}", "enum", body[name], ctx={"expected": expected}))
    for name in _IMAGE_FIELDS:
        value = body.get(name)
        if isinstance(value, str) and not _fetchable(value):
            errors.append(_item(name, "Could not load the image from the given URL or data URI",
                                "image_load_error", value[:40]))
    return errors


def _fetchable(url: str) -> bool:
    if url.startswith(("http://", "https://")):
        return True
    head, sep, data = url.partition(",")
    if not (sep and head.startswith("data:image/") and head.endswith(";base64")):
        return False
    try:
        return bool(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return False


def request_error(status: int, message: str | None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A request (infrastructure) error: ``{"detail", "error_type"}`` and the ``x-fal-error-type`` header."""
    body: dict[str, Any] = {"detail": message or default_message(status)}
    headers: list[tuple[str, str]] = []
    if status in _ERROR_TYPES:
        body["error_type"] = _ERROR_TYPES[status]
        headers.append(("x-fal-error-type", _ERROR_TYPES[status]))
    return body, headers


class Fal(Family):
    """The queue: submit, status, result, cancel. Key: ``Authorization: Key $FAL_KEY`` only.

        emu.script("fal-ai/veo3.1", VideoScript(polls=2, outcome="failed"))
    """

    name = "fal"
    env: ClassVar[Mapping[str, str]] = {"FAL_BASE_URL": _PREFIX}
    test_keys: ClassVar[Mapping[str, str]] = {"FAL_KEY": "fal-test-id:fal-test-secret"}

    def routes(self) -> Sequence[Route]:
        # The /requests/ routes first: the submit route's {model:path} would swallow them otherwise.
        return [
            Route("GET", _REQUEST + "/status", self.status),
            Route("PUT", _REQUEST + "/cancel", self.cancel),
            Route("GET", _REQUEST, self.result),
            Route("POST", _PREFIX + "/{model:path}", self.submit),
        ]

    def presented_key(self, req: Request) -> str:
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        return key if scheme.lower() == "key" else ""

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        if has_key:
            return 401, {"detail": "Invalid credentials: the key is not valid."}
        if req.headers.get("authorization"):
            return 401, {"detail": "Invalid authorization header: use 'Authorization: Key <FAL_KEY>'."}
        return 401, {"detail": "Missing authorization header: use 'Authorization: Key <FAL_KEY>'."}

    # ---- handlers -----------------------------------------------------------------------------------

    async def submit(self, req: Request) -> None:
        endpoint_id = req.params["model"]
        fault = req.video.fault(endpoint_id, "submit")
        if fault is not None and fault.kind not in AFTER_ACCEPT:
            await self._fault(req, fault)
            return
        if errors := validate(endpoint_id, req.body):
            await req.json(422, {"detail": errors}, [("x-fal-retryable", "false")])
            return
        job = req.video.submit(self.name, endpoint_id, req.body)
        answer = {"status": "IN_QUEUE", "request_id": job.id, **self._urls(req, job),
                  "queue_position": max(job.script.polls - 1, 0)}
        await answer_accepted(req, fault, answer)  # accepted (and billed), whatever becomes of the answer

    async def status(self, req: Request) -> None:
        job = await self._job(req)
        if job is None:
            return
        if fault := req.video.fault(job.model, "poll"):
            await self._fault(req, fault)
            return
        state = job.advance()
        logs: list[dict[str, str]] | None = [] if req.query.get("logs") in ("1", "true") else None
        answer: dict[str, Any] = {"request_id": job.id, "response_url": self._urls(req, job)["response_url"]}
        if state == "queued":
            answer |= {"status": "IN_QUEUE", "queue_position": max(job.script.polls - job.polls, 0)}
        elif state == "running":
            if logs is not None:
                # A job scripted by time runs past its poll count: no "step 23 of 1".
                of = f" of {job.script.polls}" if job.polls <= job.script.polls else ""
                logs.append(_log(f"Generating video: step {job.polls}{of}"))
            answer |= {"status": "IN_PROGRESS", "logs": logs}
        else:
            answer |= {"status": "COMPLETED", "logs": logs, "metrics": {"inference_time": 1.5 * job.polls}}
            if state == "failed":
                answer |= {"error": job.script.error_message, "error_type": "runner_server_error"}
            elif state == "cancelled":
                answer |= {"error": "Request was cancelled by the client.", "error_type": "client_cancelled"}
        await req.json(200, answer)

    async def result(self, req: Request) -> None:
        job = await self._job(req)
        if job is None:
            return
        state = job.state()
        if state in ("queued", "running"):
            await req.json(400, {"detail": "Request is still in progress"})
        elif state == "failed":
            await req.json(500, {"detail": job.script.error_message, "error_type": "runner_server_error"},
                           [("x-fal-error-type", "runner_server_error")])
        elif state == "cancelled":
            await req.json(400, {"detail": "Request was cancelled by the client.", "error_type": "client_cancelled"},
                           [("x-fal-error-type", "client_cancelled")])
        elif state == "filtered":
            prompt = job.body.get("prompt") if isinstance(job.body, Mapping) else None
            item = _item("prompt", job.script.reason, "content_policy_violation", prompt)
            await req.json(422, {"detail": [item]}, [("x-fal-retryable", "false")])
        else:
            name = req.video.finish(job)
            data = req.video.blob(name) or b""
            await req.json(200, {"video": {"url": storage_url(req, name), "content_type": "video/mp4",
                                           "file_name": "output.mp4", "file_size": len(data)}})

    async def cancel(self, req: Request) -> None:
        job = await self._job(req)
        if job is None:
            return
        if job.state() in ("queued", "running"):
            job.cancelled = True
            await req.json(202, {"status": "CANCELLATION_REQUESTED"})
        else:
            await req.json(400, {"status": "ALREADY_COMPLETED"})

    # ---- helpers ------------------------------------------------------------------------------------

    def _urls(self, req: Request, job: EmulatedJob) -> dict[str, str]:
        root = f"{api_origin(req)}{_PREFIX}/{app_path(job.model)}/requests/{job.id}"
        return {"response_url": root, "status_url": root + "/status", "cancel_url": root + "/cancel"}

    async def _job(self, req: Request) -> EmulatedJob | None:
        """The job a /requests/ URL names, or None after answering 404 (also for another app's path)."""
        job = req.video.job(req.params["request_id"])
        app = f"{req.params['owner']}/{req.params['alias']}"
        if job is None or job.family != self.name or app_path(job.model) != app:
            await req.json(404, {"detail": f"Request {req.params['request_id']} not found for app {app}"})
            return None
        req.record.model = job.model
        return job

    async def _fault(self, req: Request, fault: Fault) -> None:
        req.record.fault = fault.kind
        if fault.kind == "hang":
            await req.exchange.gone.wait()
            return
        body, headers = request_error(fault.status, fault.message)
        if fault.retry_after is not None:
            headers.append(("retry-after", f"{fault.retry_after:g}"))
        await req.json(fault.status, body, headers)


def _log(message: str) -> dict[str, str]:
    return {"message": message, "level": "INFO", "source": "USER",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds")}


__all__ = ["SCHEMAS", "Fal", "Schema", "app_path", "request_error", "validate"]
