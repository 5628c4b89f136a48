"""Runway's developer API (shared/reference/video-apis.md §7, §10.2): ``/runway/v1/text_to_video`` and
``/runway/v1/image_to_video`` to submit, ``/runway/v1/tasks/{id}`` to poll (GET) and cancel or delete (DELETE);
finished clips are signed links on a CDN host (``/runway-cdn/``) that takes no key.

Every API request needs ``Authorization: Bearer <key>`` and ``X-Runway-Version: 2024-11-06``. Bodies are camelCase
and validated against ``TEXT`` and ``IMAGE`` (written from the SDK's parameter types and the reference's table,
independently of the client's table); a bad body is refused with Runway's 400
``{"error": "Validation of body failed", "issues": [{code, path, message}], "docUrl"}`` and nothing is queued.

A job follows its ``VideoScript``: the first ``throttled`` polls answer THROTTLED, the first poll of a job needing
more than one answers PENDING, then RUNNING with ``progress``, then the outcome: SUCCEEDED with ``output`` links
and ``cost``; FAILED with ``failure`` and ``failureCode`` (``SAFETY.OUTPUT.VIDEO`` for ``outcome="filtered"``,
``INTERNAL.BAD_OUTPUT.CODE01`` for ``"failed"``); CANCELLED after a DELETE. Credits: ``CREDITS`` per second of
the duration asked, in ``estimatedCost`` (submit, PENDING, THROTTLED, RUNNING) and ``cost`` (final: 0 for a
failed or cancelled task).

Output links expire: ``Runway.expire(emu.video)`` makes every link handed out so far answer 403 (a fresh GET of
the task hands out a new one that works); ``expire(emu.video, also_new=True)`` makes new links dead on arrival
too, until ``Runway.expire(emu.video, also_new=False)``; ``status=410`` answers 410 instead.

Shapes this emulator picks where the reference is silent, marked (unconfirmed): the wording of the 401 and of the
400 for a missing or unknown ``X-Runway-Version``; unknown body keys refused as ``unrecognized_keys`` (zod's strict
objects); the failure codes above (the reference gives their families); ``cost.credits`` 0 for failed tasks; the
CDN's 403/410 bodies; kling2.5_turbo_pro's credits (7/s) and its two ratios besides 16:9 and 9:16 (not accepted).
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from ..registry import Family, Request, Route
from ..script import Fault
from ..video import AFTER_ACCEPT, answer_accepted, send_blob
from ..video_script import EmulatedJob, VideoBook

_PREFIX = "/runway"
_CDN = "/runway-cdn/"
VERSION = "2024-11-06"
_DOCS = "https://docs.dev.runwayml.com/api"
# Task ids are UUIDs; the emulator's own job ids fill the last group.
_ID_PREFIX = "17f20503-6c24-4c16-946b-"
_SIX = ("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672")
_TWO = ("1280:720", "720:1280")
_FOUR = ("1280:720", "720:1280", "1080:1920", "1920:1080")
_SEEDANCE = ("992:432", "864:496", "752:560", "640:640", "560:752", "496:864", "1470:630", "1280:720", "1112:834",
             "960:960", "834:1112", "720:1280", "2206:946", "1920:1080", "1664:1248", "1440:1440", "1248:1664",
             "1080:1920", "3840:1646", "3840:2160", "3840:2880", "3840:3840", "2880:3840", "2160:3840")
_DATA_URI_MAX = 5 * 1024 * 1024


@dataclass(frozen=True)
class Rule:
    """What one model takes on one endpoint. ``durations`` a set of values, or ``span`` a whole-number range
    (both empty: any positive whole number or ``"auto"``); ``positions`` the keyframe positions ``promptImage`` may
    name; ``extra`` the optional keys besides the common ones."""

    ratios: tuple[str, ...]
    durations: tuple[int, ...] = ()
    span: tuple[int, int] | None = None
    default: int = 5
    duration_required: bool = False
    ratio_required: bool = True
    prompt_required: bool = True
    prompt_max: int = 1000
    positions: tuple[str, ...] = ("first",)
    extra: frozenset[str] = field(default_factory=frozenset)


_GEN45 = frozenset({"seed", "contentModeration"})
_VEO = frozenset({"seed", "audio", "negativePrompt"})
_SEED = frozenset({"seed", "audio", "references", "referenceAudio", "referenceVideos"})

# text_to_video_create_params.py (runwayml 5.24.0, as §10.2 tabulates it).
TEXT: dict[str, Rule] = {
    "gen4.5": Rule(_TWO, span=(2, 10), duration_required=True, extra=_GEN45 | {"outputFormat"}),
    "veo3.1": Rule(_FOUR, durations=(4, 6, 8), default=8, extra=_VEO),
    "veo3.1_fast": Rule(_FOUR, durations=(4, 6, 8), default=8, extra=_VEO),
    "gemini_omni_flash": Rule(_TWO, span=(3, 10), ratio_required=False),
    "kling2.5_turbo_pro": Rule(_FOUR, durations=(5, 10), extra=frozenset({"seed", "cfgScale"})),
    "seedance2": Rule(_SEEDANCE, ratio_required=False, prompt_max=3500, extra=_SEED),
}
# image_to_video_create_params.py: gen4_turbo is image only; gen4.5 takes six ratios from an image.
IMAGE: dict[str, Rule] = {
    "gen4.5": Rule(_SIX, span=(2, 10), duration_required=True, extra=_GEN45),
    "gen4_turbo": Rule(_SIX, span=(2, 10), prompt_required=False, extra=_GEN45),
    "veo3.1": Rule(_FOUR, durations=(4, 6, 8), default=8, prompt_required=False, positions=("first", "last"),
                   extra=_VEO),
    "veo3.1_fast": Rule(_FOUR, durations=(4, 6, 8), default=8, prompt_required=False, positions=("first", "last"),
                        extra=_VEO),
    "gemini_omni_flash": Rule(_TWO, span=(3, 10), ratio_required=False, prompt_required=False),
    "kling2.5_turbo_pro": Rule(_FOUR, durations=(5, 10), prompt_required=False, extra=frozenset({"seed", "cfgScale"})),
    "seedance2": Rule(_SEEDANCE, ratio_required=False, prompt_required=False, prompt_max=3500,
                      positions=("first", "last"), extra=_SEED - {"references"}),
}
# Credits per second of output (Runway's rw-api-reference skill, as §10.2 quotes it). Veo: (without, with) audio.
CREDITS: dict[str, float | tuple[float, float]] = {
    "gen4.5": 12, "gen4_turbo": 5, "veo3.1": (20, 40), "veo3.1_fast": (10, 15), "gemini_omni_flash": 10,
    "kling2.5_turbo_pro": 7, "seedance2": 36,
}


def _issue(path: str, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "path": [path], "message": message}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(endpoint: str, body: Any) -> list[dict[str, Any]]:
    """Runway's zod-style issues for ``body`` posted to ``endpoint`` ("text_to_video" | "image_to_video"), empty
    when it is acceptable."""
    if not isinstance(body, Mapping):
        return [{"code": "invalid_type", "path": [], "message": "Expected object, received " + type(body).__name__}]
    table = TEXT if endpoint == "text_to_video" else IMAGE
    model = body.get("model")
    rule = table.get(model) if isinstance(model, str) else None
    if rule is None:
        names = " | ".join(f"'{m}'" for m in table)
        return [_issue("model", "invalid_union_discriminator",
                       f"Invalid discriminator value. Expected {names}")]
    issues: list[dict[str, Any]] = []
    common = {"model", "promptText", "ratio", "duration"} | ({"promptImage"} if endpoint == "image_to_video" else set())
    unknown = sorted(set(body) - common - rule.extra)
    if unknown:
        issues.append({"code": "unrecognized_keys", "keys": unknown, "path": [],
                       "message": f"Unrecognized key(s) in object: {', '.join(repr(k) for k in unknown)}"})
    prompt = body.get("promptText")
    if prompt is None:
        if rule.prompt_required:
            issues.append(_issue("promptText", "invalid_type", "Required"))
    elif not isinstance(prompt, str) or not prompt:
        issues.append(_issue("promptText", "too_small", "String must contain at least 1 character(s)"))
    elif len(prompt.encode("utf-16-le")) // 2 > rule.prompt_max:
        issues.append(_issue("promptText", "too_big", f"String must contain at most {rule.prompt_max} character(s)"))
    ratio = body.get("ratio")
    if ratio is None:
        if rule.ratio_required:
            issues.append(_issue("ratio", "invalid_type", "Required"))
    elif ratio not in rule.ratios:
        expected = " | ".join(f"'{r}'" for r in rule.ratios)
        issues.append(_issue("ratio", "invalid_enum_value", f"Invalid enum value. Expected {expected}, received "
                                                           f"'{ratio}'"))
    duration = body.get("duration")
    if duration is None:
        if rule.duration_required:
            issues.append(_issue("duration", "invalid_type", "Required"))
    elif rule.durations:
        if duration not in rule.durations or not _whole(duration):
            expected = " | ".join(str(d) for d in rule.durations)
            issues.append(_issue("duration", "invalid_literal", f"Invalid literal value, expected {expected}"))
    elif not _whole(duration) and duration != "auto":
        issues.append(_issue("duration", "invalid_type", f"Expected integer, received {type(duration).__name__}"))
    elif rule.span is not None and _whole(duration):
        low, high = rule.span
        if duration < low:
            issues.append(_issue("duration", "too_small", f"Number must be greater than or equal to {low}"))
        elif duration > high:
            issues.append(_issue("duration", "too_big", f"Number must be less than or equal to {high}"))
    if "audio" in body and not isinstance(body["audio"], bool):
        issues.append(_issue("audio", "invalid_type", "Expected boolean"))
    if endpoint == "image_to_video":
        issues += _image_issues(body.get("promptImage"), rule)
    references = body.get("references")
    if references is not None:
        if not isinstance(references, list) or len(references) > 9:
            issues.append(_issue("references", "too_big", "Array must contain at most 9 element(s)"))
        else:
            for n, ref in enumerate(references):
                uri = ref.get("uri") if isinstance(ref, Mapping) else None
                if not isinstance(uri, str) or not _fetchable(uri):
                    issues.append({"code": "custom", "path": ["references", n, "uri"],
                                   "message": "Invalid asset URI"})
    return issues


def _image_issues(image: Any, rule: Rule) -> list[dict[str, Any]]:
    if image is None:
        return [_issue("promptImage", "invalid_type", "Required")]
    if isinstance(image, str):
        return [] if _fetchable(image) else [_issue("promptImage", "custom", _asset_message(image))]
    if not isinstance(image, list) or not image:
        return [_issue("promptImage", "invalid_type", "Expected string or array, received " + type(image).__name__)]
    issues: list[dict[str, Any]] = []
    seen: list[str] = []
    for n, item in enumerate(image):
        if not isinstance(item, Mapping):
            issues.append({"code": "invalid_type", "path": ["promptImage", n], "message": "Expected object"})
            continue
        position = item.get("position")
        if position not in rule.positions:
            expected = " | ".join(f"'{p}'" for p in rule.positions)
            issues.append({"code": "invalid_enum_value", "path": ["promptImage", n, "position"],
                           "message": f"Invalid enum value. Expected {expected}, received '{position}'"})
        elif position in seen:
            issues.append({"code": "custom", "path": ["promptImage", n, "position"],
                           "message": f"Only one image may have position '{position}'"})
        else:
            seen.append(position)
        uri = item.get("uri")
        if not isinstance(uri, str) or not _fetchable(uri):
            issues.append({"code": "custom", "path": ["promptImage", n, "uri"],
                           "message": _asset_message(uri if isinstance(uri, str) else "")})
    return issues


def _asset_message(uri: str) -> str:
    if uri.startswith("data:") and len(uri) > _DATA_URI_MAX:
        return "Data URIs must be at most 5MB"
    return "Invalid asset URI: expected an HTTPS URL, a runway:// upload URI or a base64 image data URI"


def _fetchable(uri: str) -> bool:
    if uri.startswith(("https://", "runway://")):
        return True
    head, sep, data = uri.partition(",")
    return (bool(sep) and head.startswith(("data:image/png", "data:image/jpeg", "data:image/webp"))
            and head.endswith(";base64") and bool(data) and len(uri) <= _DATA_URI_MAX)


def credits_for(model: str, body: Mapping[str, Any]) -> int:
    """The credits a task of ``body`` costs: per second times its duration (the rule's default when unsent)."""
    rate = CREDITS.get(model, 10)
    if isinstance(rate, tuple):
        rate = rate[1] if body.get("audio", True) else rate[0]
    rule = TEXT.get(model) or IMAGE.get(model)
    duration = body.get("duration")
    if isinstance(duration, int) and not isinstance(duration, bool):
        seconds = duration
    else:
        seconds = rule.default if rule is not None else 5
    return round(rate * seconds)


@dataclass
class _Links:
    """Signed links one emulator handed out: serial -> blob name, and which of them are expired."""

    issued: dict[int, str] = field(default_factory=dict)
    expired_upto: int = 0
    also_new: bool = False
    status: int = 403
    serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class Runway(Family):
    """The tasks API and its CDN. Key: ``Authorization: Bearer $RUNWAYML_API_SECRET`` plus ``X-Runway-Version``.

        emu.script("gen4.5", VideoScript(polls=2, throttled=1))
        Runway.expire(emu.video)            # links handed out so far answer 403
    """

    name = "runway"
    env: ClassVar[Mapping[str, str]] = {"RUNWAYML_BASE_URL": _PREFIX}
    # Runway's keys are "key_" and 128 hex digits.
    test_keys: ClassVar[Mapping[str, str]] = {"RUNWAYML_API_SECRET": "key_" + "0123456789abcdef" * 8}
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _links: ClassVar[weakref.WeakKeyDictionary[VideoBook, _Links]] = weakref.WeakKeyDictionary()

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", _PREFIX + "/v1/text_to_video", self.text_to_video),
            Route("POST", _PREFIX + "/v1/image_to_video", self.image_to_video),
            Route("GET", _PREFIX + "/v1/tasks/{task_id}", self.task),
            Route("DELETE", _PREFIX + "/v1/tasks/{task_id}", self.delete),
            Route("GET", _CDN + "{name}", self.cdn, auth=False),
        ]

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        # (unconfirmed wording)
        if has_key:
            return 401, {"error": "Invalid API secret. Check the key in RUNWAYML_API_SECRET."}
        return 401, {"error": "Missing API secret: send 'Authorization: Bearer <key>'."}

    def check_headers(self, req: Request) -> tuple[int, Any] | None:
        version = req.headers.get("x-runway-version")
        if not version:  # (unconfirmed wording)
            return 400, {"error": "The X-Runway-Version header is required. Use 2024-11-06.", "docUrl": _DOCS}
        if version != VERSION:
            return 400, {"error": f"Unsupported X-Runway-Version {version!r}. Use 2024-11-06.", "docUrl": _DOCS}
        return None

    # ---- expiry switch ------------------------------------------------------------------------------

    @classmethod
    def expire(cls, book: VideoBook, *, also_new: bool = False, status: int = 403) -> None:
        """Every link handed out so far by the emulator owning ``book`` answers ``status`` from now on; with
        ``also_new``, links handed out later too (until called again with ``also_new=False``)."""
        links = cls._book(book)
        with cls._lock:
            links.expired_upto = max(links.issued, default=0)
            links.also_new, links.status = also_new, status

    @classmethod
    def _book(cls, book: VideoBook) -> _Links:
        with cls._lock:
            links = cls._links.get(book)
            if links is None:
                links = cls._links[book] = _Links()
            return links

    def _sign(self, req: Request, job: EmulatedJob) -> str:
        """A fresh signed link to the job's clip, on the *other* host name (so a key never rides along)."""
        name = req.video.finish(job)
        links = self._book(req.video)
        with self._lock:
            serial = next(links.serial)
            links.issued[serial] = name
            if links.also_new:
                links.expired_upto = serial
        host = req.headers.get("host", "emulator.test")
        host_name, _, port = host.partition(":")
        other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host_name, "cdn." + host_name)
        return f"http://{other}{':' + port if port else ''}{_CDN}{name}.mp4?_jwt=emu.{serial}.{job.id}"

    # ---- handlers -----------------------------------------------------------------------------------

    async def text_to_video(self, req: Request) -> None:
        await self._submit(req, "text_to_video")

    async def image_to_video(self, req: Request) -> None:
        await self._submit(req, "image_to_video")

    async def _submit(self, req: Request, endpoint: str) -> None:
        model = req.body.get("model") if isinstance(req.body, Mapping) else None
        if isinstance(model, str):
            req.record.model = model
            if (fault := req.video.fault(model, "submit")) and fault.kind not in AFTER_ACCEPT:
                await self._fault(req, fault)
                return
        else:
            fault = None
        if issues := validate(endpoint, req.body):
            await req.json(400, {"error": "Validation of body failed", "issues": issues, "docUrl": _DOCS})
            return
        assert isinstance(model, str)
        job = req.video.submit(self.name, model, req.body, prefix=_ID_PREFIX)
        answer = {"id": job.id, "estimatedCost": {"credits": credits_for(model, req.body)}}
        # A submit's "cut" or "hang" comes after Runway accepted (and will bill) the task: the answer is lost, not
        # the task.
        await answer_accepted(req, fault, answer)

    async def task(self, req: Request) -> None:
        job = await self._job(req)
        if job is None:
            return
        if fault := req.video.fault(job.model, "poll"):
            await self._fault(req, fault)
            return
        state = job.advance()
        credits = credits_for(job.model, job.body)
        answer: dict[str, Any] = {"id": job.id, "createdAt": _created(job), "status": ""}
        if state in ("queued", "running") and job.polls <= job.script.throttled:
            answer |= {"status": "THROTTLED", "estimatedCost": {"credits": credits}}
        elif state == "queued":
            answer |= {"status": "PENDING", "estimatedCost": {"credits": credits}}
        elif state == "running":
            done = min(job.polls, max(job.script.polls, 1)) / (max(job.script.polls, 1) + 1)
            answer |= {"status": "RUNNING", "progress": round(done, 2), "estimatedCost": {"credits": credits}}
        elif state == "succeeded":
            answer |= {"status": "SUCCEEDED", "output": [self._sign(req, job)], "cost": {"credits": credits}}
        elif state == "cancelled":
            answer |= {"status": "CANCELLED", "cost": {"credits": 0}}
        else:
            # ``VideoScript(final_status="SAFETY.INPUT.TEXT")`` picks the code; an input refused by moderation is
            # not refunded (Runway's own rw-api-reference skill), every other failure is.
            code = job.script.final_status or ("SAFETY.OUTPUT.VIDEO" if state == "filtered"
                                               else "INTERNAL.BAD_OUTPUT.CODE01")
            failure = job.script.reason if state == "filtered" else job.script.error_message
            kept = credits if code.startswith("SAFETY.INPUT") else 0
            answer |= {"status": "FAILED", "failure": failure, "failureCode": code, "cost": {"credits": kept}}
        await req.json(200, answer)

    async def delete(self, req: Request) -> None:
        """Cancels a task that waits or runs; deletes a finished one (it is not found afterwards). 204."""
        job = await self._job(req)
        if job is None:
            return
        if job.state() in ("queued", "running"):
            job.cancelled = True
        else:
            req.video.forget(job.id)
        await req.exchange.start(204, [])
        await req.exchange.finish()

    async def cdn(self, req: Request) -> None:
        """A signed link: no key wanted (a request carrying one is refused), the token must be one handed out for
        this very clip and not expired."""
        if "authorization" in req.headers or "x-runway-version" in req.headers:
            await req.json(400, {"error": "the CDN received an API header (authorization or x-runway-version)"})
            return
        name = req.params["name"].removesuffix(".mp4")
        token = req.query.get("_jwt", "")
        parts = token.split(".")
        serial = int(parts[1]) if len(parts) == 3 and parts[0] == "emu" and parts[1].isdigit() else 0
        links = self._book(req.video)
        with self._lock:
            issued = links.issued.get(serial)
            expired = serial <= links.expired_upto
            status = links.status
        data = req.video.blob(name) if issued == name else None
        if data is None:
            await _xml(req, 403, "AccessDenied", "Access denied")
        elif expired:
            await _xml(req, status, "AccessDenied" if status == 403 else "Gone", "Request has expired")
        else:
            await send_blob(req, data, name=name)

    # ---- helpers ------------------------------------------------------------------------------------

    async def _job(self, req: Request) -> EmulatedJob | None:
        job = req.video.job(req.params["task_id"])
        if job is None or job.family != self.name:
            await req.json(404, {"error": "Task not found."})
            return None
        req.record.model = job.model
        return job

    async def _fault(self, req: Request, fault: Fault) -> None:
        req.record.fault = fault.kind
        if fault.kind == "hang":
            await req.exchange.gone.wait()
            return
        headers = [("retry-after", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
        await req.json(fault.status, {"error": fault.message or _MESSAGES.get(fault.status, "Internal error.")},
                       headers)


_MESSAGES = {429: "You have exceeded your daily generation limit.", 502: "Bad gateway.",
             503: "The service is temporarily overloaded. Please retry.", 504: "Gateway timeout."}


def _created(job: EmulatedJob) -> str:
    """When the job was submitted, as Runway's ISO 8601 ``createdAt``."""
    when = datetime.now(UTC).timestamp() - (time.monotonic() - job.created)
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _xml(req: Request, status: int, code: str, message: str) -> None:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    data = body.encode()
    await req.exchange.start(status, [("content-type", "application/xml"), ("content-length", str(len(data)))])
    await req.exchange.finish(data)


__all__ = ["CREDITS", "IMAGE", "TEXT", "VERSION", "Rule", "Runway", "credits_for", "validate"]
