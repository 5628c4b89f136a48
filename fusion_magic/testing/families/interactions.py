"""Gemini's Interactions API (Omni Flash): ``/gemini/v1beta/interactions`` and ``/gemini/v1/interactions``
(shared/reference/video-apis.md §3). Finished clips are downloaded through ``gemini_files``.

A video generation is a background interaction that advances one state per poll (``VideoScript.polls``):
``queued`` -> ``in_progress`` -> ``completed`` | ``failed`` | ``cancelled``. A "filtered" script fails with
``errors: [{"code": "SAFETY", ...}]``. ``VideoScript.final_status`` ends it in any other status instead (§10.4):
``incomplete``, ``budget_exceeded`` and ``requires_continuation`` with the usage billed so far (and a
``continuation_token``), ``requires_action``, ``idle`` (holding the clip when the outcome is "ok"), ``queued`` or
``in_progress`` for ever, or an unknown string. The script's outcome still decides what the interaction holds:
the clip ("ok", shown only with ``completed`` or ``idle``) or ``errors`` ("failed", "filtered").

Image blocks are checked as the request's task needs them (unconfirmed which the real API enforces): PNG or JPEG
bytes matching ``mime_type``; ``image_to_video`` one image, ``reference_to_video`` one to three, and
``text_to_video`` none. A question (no video in ``response_modalities``) is answered at once
without ``background``, or on its first poll with it. ``previous_interaction_id`` must name a completed
interaction, so an edit is checked for real.

    emu.script("gemini-omni-1.2-flash", VideoScript(polls=2, output_video_field=True))
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._wire import default_message
from ..registry import Request, Route
from ..script import Fault
from ..video import AFTER_ACCEPT, answer_accepted, api_origin
from ..video_script import EmulatedJob, VideoScript
from .gemini import GeminiAuth, gemini_error
from .gemini_files import file_uri

_VERSIONS = ("v1", "v1beta")
_ID_PREFIX = "v1_int"
_ASPECTS = frozenset({"16:9", "9:16"})
_RESOLUTIONS = frozenset({"360p", "720p", "1080p", "4k"})
_DELIVERIES = frozenset({"inline", "uri"})
_TASKS = frozenset({"text_to_video", "image_to_video", "reference_to_video", "edit", "extend"})
_BLOCKS = frozenset({"text", "image", "video", "audio", "document"})
_TURNS = frozenset({"user_input", "model_output"})
_STATUS = {"queued": "queued", "running": "in_progress", "succeeded": "completed", "failed": "failed",
           "filtered": "failed", "cancelled": "cancelled"}
# Statuses in which an interaction can still be cancelled: it has not ended.
_OPEN = frozenset({"queued", "in_progress", "requires_action"})
# Statuses that stopped short: the interaction reports what it used (billed), and holds no clip.
_STOPPED_SHORT = frozenset({"incomplete", "budget_exceeded", "requires_continuation"})
# What an image block's bytes start with, per type.
_IMAGE_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff"}
_MAX_REFERENCES = 3
# About what Omni reports per second of 720p output (the reference's 34,752 tokens for a 6 s clip).
_TOKENS_PER_VIDEO_SECOND = 5792
# Gemini 2.x counts about 258 tokens per sampled frame; one block stands for a short clip.
_TOKENS_PER_VIDEO_BLOCK = 258


class Interactions(GeminiAuth):
    """Background interactions: create, get, cancel (the model list is ``veo.py``'s, shared by Gemini)."""

    name = "gemini-interactions"

    def routes(self) -> Sequence[Route]:
        routes: list[Route] = []
        for version in _VERSIONS:
            base = f"/gemini/{version}/interactions"
            routes += [
                Route("POST", base, self.create),
                Route("GET", base + "/{id}", self.get),
                Route("POST", base + "/{id}/cancel", self.cancel),
            ]
        return routes

    # ---- create --------------------------------------------------------------------------------------

    async def create(self, req: Request) -> None:
        body = req.body
        if not isinstance(body, Mapping):
            await req.json(400, gemini_error(400, "Invalid JSON payload received."))
            return
        problem = _invalid(body) or _bad_previous(req, body)
        if problem is not None:
            await req.json(400, gemini_error(400, problem))
            return
        model = str(body["model"])
        fault = req.video.fault(model, "submit")
        if fault is not None and fault.kind not in AFTER_ACCEPT:
            await _answer_fault(req, fault)
            return
        job = req.video.submit(self.name, model, body, prefix=_ID_PREFIX)
        if fault is not None:  # accepted (and billed); the answer is lost
            accepted = _envelope(job, "queued" if job.script.polls > 1 else "in_progress")
            await answer_accepted(req, fault, accepted)
            return
        if body.get("background") is not True:
            # Without background the call blocks until the interaction is done.
            job.polls = job.script.polls + 1 if _wants_video(body) else 1
            await req.json(200, self._reply(req, job))
        elif _wants_video(body):
            await req.json(200, _envelope(job, "queued" if job.script.polls > 1 else "in_progress"))
        else:
            await req.json(200, _envelope(job, "in_progress"))

    # ---- get and cancel --------------------------------------------------------------------------------

    async def get(self, req: Request) -> None:
        job = self._job(req)
        if job is None:
            await self._not_found(req)
            return
        fault = req.video.fault(job.model, "poll")
        if fault is not None:
            await _answer_fault(req, fault)
            return
        if _wants_video(job.body):
            job.advance()
        else:
            job.polls += 1  # a question is answered on its first poll
        await req.json(200, self._reply(req, job))

    async def cancel(self, req: Request) -> None:
        job = self._job(req)
        if job is None:
            await self._not_found(req)
            return
        if _in_flight(job):
            job.cancelled = True
        await req.json(200, self._reply(req, job))

    def _job(self, req: Request) -> EmulatedJob | None:
        job = req.video.job(req.params["id"])
        return job if job is not None and job.family == self.name else None

    async def _not_found(self, req: Request) -> None:
        await req.json(404, gemini_error(404, f"Interaction {req.params['id']} not found."))

    def _reply(self, req: Request, job: EmulatedJob) -> dict[str, Any]:
        """The interaction as it stands now (no poll counted)."""
        if not _wants_video(job.body):
            return _answer(job)
        state = job.state()
        script = job.script
        status = _wire_status(job)
        reply = _envelope(job, status)
        if status in _OPEN or state == "cancelled":
            return reply
        if status in _STOPPED_SHORT:
            output = round(_TOKENS_PER_VIDEO_SECOND * script.clip_seconds / 2)
            reply["usage"] = _usage(_input_tokens(job.body), output)
            if status == "requires_continuation":
                reply["continuation_token"] = f"emu-continue-{job.id}"
        if state == "failed":
            reply["errors"] = [{"code": "INTERNAL", "message": script.error_message}]
        elif state == "filtered":
            reply["errors"] = [{"code": "SAFETY", "message": script.reason}]
        elif state == "succeeded" and status in ("completed", "idle"):
            blob = req.video.finish(job)
            item: dict[str, Any] = {"type": "video", "mime_type": "video/mp4"}
            if script.delivery == "inline":
                item["data"] = base64.b64encode(script.data()).decode("ascii")
            else:
                item["uri"] = file_uri(api_origin(req), blob)
            reply["steps"] = [{"type": "model_output", "content": [item]}]
            if script.output_video_field:
                reply["output_video"] = item
            output = round(_TOKENS_PER_VIDEO_SECOND * script.clip_seconds)
            reply["usage"] = _usage(_input_tokens(job.body), output)
        return reply


# ---- helpers (no I/O) -----------------------------------------------------------------------------------


async def _answer_fault(req: Request, fault: Fault) -> None:
    """A scripted error answer (or a "hang": none at all), with ``Retry-After`` where the fault has one."""
    req.record.fault = fault.kind
    if fault.kind == "hang":
        await req.exchange.gone.wait()
        return
    headers = [("retry-after", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
    await req.json(fault.status, gemini_error(fault.status, fault.message or default_message(fault.status)), headers)


def _in_flight(job: EmulatedJob) -> bool:
    """Whether the interaction can still be cancelled (a finished one stays as it is)."""
    if _wants_video(job.body):
        return not job.cancelled and _wire_status(job) in _OPEN
    return job.polls < 1 and not job.cancelled


def _wire_status(job: EmulatedJob) -> str:
    """The status the interaction shows now: the state's, or the script's ``final_status`` once its polls are
    done."""
    state = job.state()
    final = job.script.final_status
    if final is None or state in ("queued", "running", "cancelled"):
        return _STATUS[state]
    return final


def _wants_video(body: Mapping[str, Any]) -> bool:
    modalities = body.get("response_modalities")
    if isinstance(modalities, list) and any(str(m).lower() == "video" for m in modalities):
        return True
    return any(f.get("type") == "video" for f in _formats(body))


def _formats(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = body.get("response_format")
    items = raw if isinstance(raw, list) else [raw] if raw is not None else []
    return [f for f in items if isinstance(f, Mapping)]


def _blocks(body: Mapping[str, Any]) -> list[Any]:
    """The content blocks of ``input``, those inside conversation steps included."""
    raw = body.get("input")
    if not isinstance(raw, list):
        return []
    blocks: list[Any] = []
    for item in raw:
        if isinstance(item, Mapping) and item.get("type") in _TURNS:
            content = item.get("content")
            blocks.extend(content if isinstance(content, list) else [content])
        else:
            blocks.append(item)
    return blocks


def _invalid(body: Mapping[str, Any]) -> str | None:
    """What the real API would refuse in a create body, or None."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "* CreateInteractionRequest.model: model is required"
    raw = body.get("input")
    if isinstance(raw, str) and not raw.strip():
        return "* CreateInteractionRequest.input: input is empty"
    if not isinstance(raw, str) and (not isinstance(raw, list) or not raw):
        return "* CreateInteractionRequest.input: input is required"
    for block in _blocks(body):
        if not isinstance(block, Mapping) or block.get("type") not in _BLOCKS:
            kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
            return f"Invalid content block type: {kind!r}"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return "A text block needs a text field."
        if block["type"] in ("image", "video"):
            problem = _bad_media(block)
            if problem is not None:
                return problem
    for fmt in _formats(body):
        if fmt.get("type") == "video":
            problem = _bad_video_format(fmt)
            if problem is not None:
                return problem
    config = body.get("generation_config")
    video_config = config.get("video_config") if isinstance(config, Mapping) else None
    task = video_config.get("task") if isinstance(video_config, Mapping) else None
    if task is not None and task not in _TASKS:
        return f"Invalid video task: {task!r}"
    return _bad_images_for(task, body) if _wants_video(body) else None


def _bad_images_for(task: Any, body: Mapping[str, Any]) -> str | None:
    """A generation's image blocks against its task (unconfirmed which of these the real API refuses)."""
    images = [b for b in _blocks(body) if isinstance(b, Mapping) and b.get("type") == "image"]
    if task == "text_to_video" and images:
        return "text_to_video takes no image; use image_to_video or reference_to_video."
    if task == "image_to_video" and len(images) != 1:
        return f"image_to_video takes exactly one image (the first frame), got {len(images)}."
    if task == "reference_to_video" and not 1 <= len(images) <= _MAX_REFERENCES:
        return f"reference_to_video takes 1 to {_MAX_REFERENCES} reference images, got {len(images)}."
    if len(images) > _MAX_REFERENCES:
        return f"At most {_MAX_REFERENCES} images per video generation, got {len(images)}."
    return None


def _bad_media(block: Mapping[str, Any]) -> str | None:
    data, uri = block.get("data"), block.get("uri")
    if not (isinstance(uri, str) and uri) and not (isinstance(data, str) and data):
        return f"A {block['type']} block needs data or a uri."
    if isinstance(data, str) and data:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return f"Invalid base64 in the {block['type']} block."
        mime = block.get("mime_type")
        if mime == "video/mp4" and raw[4:8] != b"ftyp":
            return "The video/mp4 data is not an MP4 file."
        if block["type"] == "image":
            if mime not in _IMAGE_MAGIC:
                return f"Unsupported image mime_type {mime!r}; use image/png or image/jpeg."
            if not raw.startswith(_IMAGE_MAGIC[mime]):
                return f"The {mime} data is not a {mime.removeprefix('image/').upper()} file."
    return None


def _bad_video_format(fmt: Mapping[str, Any]) -> str | None:
    aspect, resolution = fmt.get("aspect_ratio"), fmt.get("resolution")
    duration, delivery = fmt.get("duration"), fmt.get("delivery")
    if aspect is not None and aspect not in _ASPECTS:
        return f"Unsupported aspect_ratio {aspect!r}; use 16:9 or 9:16."
    if resolution is not None and resolution not in _RESOLUTIONS:
        return f"Unsupported resolution {resolution!r}."
    if delivery is not None and delivery not in _DELIVERIES:
        return f"Unsupported delivery {delivery!r}."
    if duration is not None:
        text = duration if isinstance(duration, str) else ""
        if not (text.endswith("s") and text[:-1].isdigit() and 1 <= int(text[:-1]) <= 15):
            return f"Invalid duration {duration!r}; use a string such as \"6s\" (1 to 15 seconds)."
    return None


def _bad_previous(req: Request, body: Mapping[str, Any]) -> str | None:
    previous = body.get("previous_interaction_id")
    if previous is None:
        return None
    job = req.video.job(previous) if isinstance(previous, str) else None
    if job is None or job.family != Interactions.name or job.state() != "succeeded":
        return f"previous_interaction_id {previous!r} does not name a completed interaction."
    return None


def _created(job: EmulatedJob) -> str:
    # The job keeps a monotonic time; the wire wants wall-clock ISO 8601.
    wall = time.time() - (time.monotonic() - job.created)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def _envelope(job: EmulatedJob, status: str) -> dict[str, Any]:
    reply: dict[str, Any] = {"id": job.id, "model": job.model, "status": status, "created": _created(job),
                             "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if isinstance(job.body.get("previous_interaction_id"), str):
        reply["previous_interaction_id"] = job.body["previous_interaction_id"]
    return reply


def _answer(job: EmulatedJob) -> dict[str, Any]:
    """A question's interaction: in progress until its first poll, then the script's answer (or its fault)."""
    script: VideoScript = job.script
    if job.cancelled:
        return _envelope(job, "cancelled")
    if job.polls < 1:
        return _envelope(job, "in_progress")
    status = script.final_status or ("completed" if script.outcome == "ok" else "failed")
    if status not in ("completed", "idle") and (status in _OPEN or script.outcome == "ok"):
        # Still open, or ended without an answer (a stopped-short status with the usage so far, an unknown one).
        reply = _envelope(job, status)
        if status in _STOPPED_SHORT:
            reply["usage"] = _usage(_input_tokens(job.body), len(script.answer) // 8 + 1)
        return reply
    if script.outcome != "ok":
        reply = _envelope(job, status)
        code, message = ("SAFETY", script.reason) if script.outcome == "filtered" else ("INTERNAL",
                                                                                      script.error_message)
        reply["errors"] = [{"code": code, "message": message}]
        return reply
    reply = _envelope(job, status)
    reply["steps"] = [{"type": "model_output", "content": [{"type": "text", "text": script.answer}]}]
    reply["output_text"] = script.answer
    reply["usage"] = _usage(_input_tokens(job.body), len(script.answer) // 4 + 1)
    return reply


def _input_tokens(body: Mapping[str, Any]) -> int:
    raw = body.get("input")
    if isinstance(raw, str):
        return len(raw) // 4 + 1
    text = sum(len(b.get("text") or "") for b in _blocks(body) if isinstance(b, Mapping) and b.get("type") == "text")
    media = sum(1 for b in _blocks(body) if isinstance(b, Mapping) and b.get("type") in ("image", "video"))
    return text // 4 + 1 + media * _TOKENS_PER_VIDEO_BLOCK


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"total_input_tokens": input_tokens, "total_output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}


__all__ = ["Interactions"]
