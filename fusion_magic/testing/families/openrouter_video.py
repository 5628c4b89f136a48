"""OpenRouter's Video Generation API (shared/reference/video-apis.md §10.1), under the chat family's prefix
``/openrouter/api/v1`` (``OPENROUTER_BASE_URL`` and ``OPENROUTER_API_KEY`` are the chat family's):

* ``POST /videos``: validated against the model's entry on ``/videos/models`` (400 in the chat envelope), then
  **202** with a ``gen-vid-<unix>-<20 alphanumerics>`` id and a *relative* ``polling_url``;
* ``GET /videos/{id}``: ``pending`` -> ``in_progress`` -> ``completed`` | ``failed`` | ``cancelled`` | ``expired``,
  driven by the model's ``VideoScript`` (polls, outcome, faults, words); a completed job has ``unsigned_urls``
  (the content proxy), keyless signed ``urls`` with ``expires_at``, and ``usage.cost``;
* ``GET /videos/{id}/content?index=0``: the content proxy, key required (401 without), 409 before the job
  completed, 410 once it expired;
* ``GET /videos/models`` (no key): ``google/veo-3.1``, ``google/veo-3.1-lite`` and any scripted ``author/slug``;
* ``GET /openrouter/signed/{name}?expires=&signature=``: the signed storage copy, served on the *other* host name
  (``localhost`` for ``127.0.0.1``). It answers 400 to any request carrying a key and 403 to a wrong signature or
  an expired URL.

Shapes this emulator picks where the reference is silent (the client assumes none of them):

* ``VideoScript.delivery``: "redirect" (the default) makes the content proxy answer 302 to the signed copy (so a
  client that carries the key across a redirect fails on the storage host); "uri" makes it stream the bytes
  itself (what the docs describe); "inline" answers a completed job with the signed ``urls`` only, no
  ``unsigned_urls``;
* OpenRouter has no "filtered" status: ``VideoScript(outcome="filtered")`` is ``failed`` with the script's reason;
* a job is ``expired`` once :func:`expire` marked it (10.1 names the status, not when it happens);
* ``usage.cost`` is the entry's ``pricing_skus`` rate for the resolution times the asked duration (the model's
  first duration if none), rounded to 6 places; :func:`cost_of` computes the same figure for tests;
* the wording of 400, 404, 409 and 410 messages (unconfirmed).

Expected keys: ``emu.expected_keys["openrouter_video"]`` (this family's name), else any non-empty Bearer key.

    emu.script("google/veo-3.1", VideoScript(polls=2, outcome="failed"))
    emu.video_jobs("google/veo-3.1")            # paid submissions
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import default_message
from ..registry import Family, Request, Route
from ..script import Fault
from ..video import AFTER_ACCEPT, answer_accepted, send_blob
from ..video_script import EmulatedJob, State, VideoBook
from .openrouter import error_type

_PREFIX = "/openrouter/api/v1"
_SIGNED = "/openrouter/signed/"
# What the docs' polling_url looks like: relative to the origin, version path included.
_POLLING = "/api/v1/videos/"
_KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
# The signing secret of this process's emulators (signed URLs need only verify against themselves).
_SECRET = secrets.token_bytes(32)
_ALNUM = string.ascii_letters + string.digits
# A job expire() marked: a stored blob of this name (per emulator, so Emulator.reset() clears it).
_EXPIRED = "openrouter-expired-"
SIGNED_TTL_S = 3600


def _entry(model: str, *, durations: Sequence[int], resolutions: Sequence[str], aspects: Sequence[str],
           sizes: Sequence[str], frames: Sequence[str], skus: Mapping[str, str], description: str) -> dict[str, Any]:
    """One ``VideoModel`` of ``/videos/models``, every required field present."""
    return {
        "id": model, "canonical_slug": model, "name": model.split("/", 1)[-1].replace("-", " ").title(),
        "created": 1_760_000_000, "description": description,
        "supported_durations": list(durations), "supported_resolutions": list(resolutions),
        "supported_aspect_ratios": list(aspects), "supported_sizes": list(sizes),
        "supported_frame_images": list(frames), "generate_audio": True, "seed": False,
        "pricing_skus": dict(skus), "allowed_passthrough_parameters": [], "hugging_face_id": None,
    }


# The two ids in OpenRouter's docs, with Veo 3.1's limits (§2.3) and per-second prices (§2.6).
MODELS: dict[str, dict[str, Any]] = {
    "google/veo-3.1": _entry(
        "google/veo-3.1", durations=(4, 6, 8), resolutions=("720p", "1080p", "4K"), aspects=("16:9", "9:16"),
        sizes=("1280x720", "720x1280", "1920x1080", "1080x1920", "3840x2160", "2160x3840"),
        frames=("first_frame", "last_frame"), skus={"per-video-second": "0.40", "per-video-second-4K": "0.60"},
        description="Google's Veo 3.1: text or images to video with sound."),
    "google/veo-3.1-lite": _entry(
        "google/veo-3.1-lite", durations=(4, 6, 8), resolutions=("720p", "1080p"), aspects=("16:9", "9:16"),
        sizes=("1280x720", "720x1280", "1920x1080", "1080x1920"), frames=("first_frame", "last_frame"),
        skus={"per-video-second": "0.05", "per-video-second-1080p": "0.08"},
        description="Google's Veo 3.1 Lite: the fast, low-cost Veo 3.1."),
}


def scripted_entry(model: str) -> dict[str, Any]:
    """The entry of a scripted model that is not in ``MODELS``: 5 or 10 s, 720p, 16:9, first frame only."""
    return _entry(model, durations=(5, 10), resolutions=("720p",), aspects=("16:9",), sizes=("1280x720",),
                  frames=("first_frame",), skus={"per-video-second": "0.10"},
                  description="A video model scripted in the fusion_magic emulator.")


def model_entry(book: VideoBook, model: str) -> dict[str, Any] | None:
    """``model``'s entry on ``/videos/models`` of the emulator that keeps ``book``, None when it lists none."""
    if model in MODELS:
        return MODELS[model]
    return scripted_entry(model) if "/" in model and book.get(model) is not None else None


def cost_of(model: str, body: Mapping[str, Any]) -> float:
    """What a completed job of ``model`` for ``body`` reports as ``usage.cost``."""
    entry = MODELS.get(model) or scripted_entry(model)
    skus: Mapping[str, str] = entry["pricing_skus"]
    resolution = body.get("resolution")
    rate = float(skus.get(f"per-video-second-{resolution}", skus["per-video-second"]))
    seconds = body.get("duration") or entry["supported_durations"][0]
    return round(rate * float(seconds), 6)


def expire(book: VideoBook, job_id: str) -> None:
    """Make job ``job_id`` of the emulator keeping ``book`` (``emu.video``) expired: its status says so and its
    content answers 410."""
    book.store(_EXPIRED + job_id, b"")


def error(status: int, message: str | None = None, **metadata: Any) -> dict[str, Any]:
    """OpenRouter's error envelope."""
    return {"error": {"code": status, "message": message or default_message(status),
                      "metadata": {"error_type": error_type(status), **metadata}}}


class OpenRouterVideo(Family):
    """Submit, poll, content and models of OpenRouter's video API; the signed storage copy.

        emu.script("google/veo-3.1", VideoScript(polls=2, delivery="uri"))
    """

    name = "openrouter_video"
    # The chat family sets OPENROUTER_BASE_URL and OPENROUTER_API_KEY; this one adds only routes under them.
    env: ClassVar[Mapping[str, str]] = {}
    test_keys: ClassVar[Mapping[str, str]] = {}

    def routes(self) -> Sequence[Route]:
        # /videos/models first: /videos/{job_id} would take "models" for a job id.
        return [
            Route("GET", f"{_PREFIX}/videos/models", self.models, auth=False),
            Route("POST", f"{_PREFIX}/videos", self.submit),
            Route("GET", f"{_PREFIX}/videos/{{job_id}}/content", self.content),
            Route("GET", f"{_PREFIX}/videos/{{job_id}}", self.poll),
            Route("GET", _SIGNED + "{name}", self.signed, auth=False),
        ]

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        return 401, {"error": {"code": 401, "message": "User not found." if has_key else "No auth credentials found"}}

    # ---- handlers --------------------------------------------------------------------------------------

    async def models(self, req: Request) -> None:
        scripted = [m for m in req.video.models() if "/" in m and m not in MODELS]
        await req.json(200, {"data": [*MODELS.values(), *(scripted_entry(m) for m in scripted)]})

    async def submit(self, req: Request) -> None:
        body = req.body
        model = body.get("model") if isinstance(body, Mapping) else None
        if not isinstance(body, Mapping) or not isinstance(model, str) or not model:
            await req.json(400, error(400, "model: Required"))
            return
        req.record.model = model
        if (fault := req.video.fault(model, "submit")) is not None:
            await self._fault(req, fault, model, body)
            return
        entry = model_entry(req.video, model)
        problem = f"{model} is not a valid model ID" if entry is None else self.invalid(req.video, entry, body)
        if problem is not None:
            await req.json(400, error(400, problem))
            return
        job = self._accept(req, model, body)
        await req.json(202, self.answer(req, job, "pending"))

    async def poll(self, req: Request) -> None:
        job = await self._job(req)
        if job is None:
            return
        if (fault := req.video.fault(job.model, "poll")) is not None:
            await self._fault(req, fault, job.model, None)
            return
        await req.json(200, self.answer(req, job, self._status(req.video, job, job.advance())))

    async def content(self, req: Request) -> None:
        job = await self._job(req)
        if job is None:
            return
        status = self._status(req.video, job, job.state())
        index = req.query.get("index", "0")
        if status == "expired":
            await req.json(410, error(410, "The generated video has expired and is no longer available."))
        elif status != "completed":
            await req.json(409, error(409, f"Video generation is not completed (status: {status})."))
        elif index != "0":
            await req.json(400, error(400, f"index {index} is out of range: the job has 1 output"))
        elif job.script.delivery == "redirect":
            await req.json(302, {}, [("location", self._signed_url(req, job))])
        else:
            name = req.video.finish(job)
            await send_blob(req, req.video.blob(name) or b"", name=name)

    async def signed(self, req: Request) -> None:
        leaked = [h for h in _KEY_HEADERS if h in req.headers]
        if leaked:
            await req.json(400, error(400, f"signed storage received a key ({leaked[0]})"))
            return
        name, expires = req.params["name"], req.query.get("expires", "")
        if not hmac.compare_digest(req.query.get("signature", ""), _sign(name, expires)):
            await req.json(403, error(403, "SignatureDoesNotMatch"))
            return
        if not expires.isdigit() or int(expires) < time.time():
            await req.json(403, error(403, "Request has expired"))
            return
        data = req.video.blob(name)
        if data is None:
            await req.json(404, error(404, "no such object"))
            return
        await send_blob(req, data, name=name)

    # ---- shapes ----------------------------------------------------------------------------------------

    def answer(self, req: Request, job: EmulatedJob, status: str) -> dict[str, Any]:
        """One ``VideoGenerationResponse``."""
        answer: dict[str, Any] = {"id": job.id, "polling_url": _POLLING + job.id, "status": status,
                                  "generation_id": "gen-" + job.id.removeprefix("gen-vid-")}
        if status == "completed":
            if job.script.delivery != "inline":
                answer["unsigned_urls"] = [f"http://{_host(req)}{_PREFIX}/videos/{job.id}/content?index=0"]
            answer["urls"] = [self._signed_url(req, job)]
            answer["expires_at"] = _expires()
            body = job.body if isinstance(job.body, Mapping) else {}
            answer["usage"] = {"cost": cost_of(job.model, body), "is_byok": False}
        elif status == "failed":
            answer["error"] = job.script.reason if job.script.outcome == "filtered" else job.script.error_message
        elif status == "cancelled":
            answer["error"] = "The video generation was cancelled."
        elif status == "expired":
            answer["error"] = "The generated video has expired and is no longer available."
        return answer

    def invalid(self, book: VideoBook, entry: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
        """Why ``body`` is a 400 for the model of ``entry``, None when it is acceptable."""
        model = entry["id"]
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return "prompt: Required"
        for name, field in (("duration", "supported_durations"), ("resolution", "supported_resolutions"),
                            ("aspect_ratio", "supported_aspect_ratios")):
            if name in body and body[name] not in entry[field]:
                allowed = ", ".join(str(v) for v in entry[field])
                return f"{model} does not support {name} {body[name]!r}; supported: {allowed}"
        frames = body.get("frame_images", [])
        if not isinstance(frames, list):
            return "frame_images: Expected array"
        for i, frame in enumerate(frames):
            kind = frame.get("frame_type") if isinstance(frame, Mapping) else None
            if kind not in ("first_frame", "last_frame"):
                return f"frame_images[{i}].frame_type: Invalid enum value"
            if kind not in entry["supported_frame_images"]:
                return f"{model} does not support frame_images of type {kind}"
            if (bad := _image_problem(frame, f"frame_images[{i}]")) is not None:
                return bad
        refs = body.get("input_references", [])
        if not isinstance(refs, list):
            return "input_references: Expected array"
        for i, ref in enumerate(refs):
            if (bad := _image_problem(ref, f"input_references[{i}]")) is not None:
                return bad
        previous = body.get("previous_job_id")
        if previous is not None:
            earlier = book.job(previous) if isinstance(previous, str) else None
            if earlier is None or earlier.family != self.name or earlier.model != model \
                    or earlier.state() != "succeeded":
                return f"previous_job_id {previous!r} is not a completed job of {model}"
        return None

    # ---- helpers ---------------------------------------------------------------------------------------

    def _accept(self, req: Request, model: str, body: Mapping[str, Any]) -> EmulatedJob:
        """One paid job, with an id of the documented shape: ``gen-vid-<unix>-<20 alphanumerics>`` (the book's
        12-character serial after 8 random ones)."""
        prefix = f"gen-vid-{int(time.time())}-{''.join(secrets.choice(_ALNUM) for _ in range(8))}"
        return req.video.submit(self.name, model, dict(body), prefix=prefix)

    def _status(self, book: VideoBook, job: EmulatedJob, state: State) -> str:
        if book.blob(_EXPIRED + job.id) is not None:
            return "expired"
        return {"queued": "pending", "running": "in_progress", "succeeded": "completed",
                "filtered": "failed"}.get(state, state)

    async def _job(self, req: Request) -> EmulatedJob | None:
        job = req.video.job(req.params["job_id"])
        if job is None or job.family != self.name:
            await req.json(404, error(404, f"Video generation job {req.params['job_id']} not found"))
            return None
        req.record.model = job.model
        return job

    def _signed_url(self, req: Request, job: EmulatedJob) -> str:
        name = req.video.finish(job)
        expires = str(_expires())
        return f"http://{_other_host(req)}{_SIGNED}{name}?expires={expires}&signature={_sign(name, expires)}"

    async def _fault(self, req: Request, fault: Fault, model: str, body: Mapping[str, Any] | None) -> None:
        """Answer with ``fault`` in OpenRouter's envelope. A submit's "cut" or "hang" first accepts the job (it is
        paid: the answer is lost, not the job), then drops the answer halfway or never sends it."""
        req.record.fault = fault.kind
        if body is not None and fault.kind in AFTER_ACCEPT:
            job = self._accept(req, model, body)
            await answer_accepted(req, fault, self.answer(req, job, "pending"), status=202)
            return
        if fault.kind == "hang":
            await req.exchange.gone.wait()
            return
        extra: dict[str, Any] = {}
        if fault.limit_source is not None:
            extra["limit_source"] = fault.limit_source
        headers = [("retry-after", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
        await req.json(fault.status, error(fault.status, fault.message, **extra), headers)


def _image_problem(item: object, where: str) -> str | None:
    if not isinstance(item, Mapping) or item.get("type") != "image_url":
        return f"{where}.type: Invalid enum value (image_url)"
    image = item.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str):
        return f"{where}.image_url.url: Required"
    if url.startswith(("http://", "https://")):
        return None
    head, sep, data = url.partition(",")
    if not (sep and head in ("data:image/png;base64", "data:image/jpeg;base64", "data:image/webp;base64")):
        return f"{where}.image_url.url: not a URL or a base64 image data URL"
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return f"{where}.image_url.url: invalid base64"
    return None


def _host(req: Request) -> str:
    return req.headers.get("host", "emulator.test")


def _other_host(req: Request) -> str:
    """The API host under its other name (``localhost`` for ``127.0.0.1``): another origin to httpx."""
    name, _, port = _host(req).partition(":")
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(name, "storage." + name)
    return other + (":" + port if port else "")


def _expires() -> int:
    # An hour or two ahead, the same for every poll within the hour (so two polls hand out the same URL).
    return (int(time.time()) // SIGNED_TTL_S + 2) * SIGNED_TTL_S


def _sign(name: str, expires: str) -> str:
    return hmac.new(_SECRET, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]


__all__ = ["MODELS", "SIGNED_TTL_S", "OpenRouterVideo", "cost_of", "error", "expire", "model_entry", "scripted_entry"]
