"""Gemini's Files API (``/gemini/v1beta/files``, ``/gemini/upload/v1beta/files``): generated clips are
downloaded from here, and large videos are uploaded here before a question about them.

Download: ``GET /gemini/v1beta/files/{id}:download?alt=media`` wants the key and answers with a 302 to the
storage host (``testing/video.py``), as the real API does (shared/reference/video-apis.md §2.5).

Upload (§4.1): ``POST /gemini/upload/v1beta/files`` with ``X-Goog-Upload-Command: start`` (and the key) answers
with a session URL in ``x-goog-upload-url``, ``…/gemini/upload/v1beta/files?upload_id=…`` like Google's; the
chunks are POSTed there (the same route: the command tells them apart), each at the offset received so far,
answered ``x-goog-upload-status: active``, the last ``final`` with the File. A file is a job of the emulator's
VideoBook, scripted under ``upload_key(display_name)``: ``polls`` GETs answer PROCESSING, then it is ACTIVE, or
FAILED with ``error_message`` when the outcome is "failed"; ``submit_faults`` answer the start and
``poll_faults`` the chunks (without an upload status, so a client sends the chunk again).

    emu.script(upload_key("talk.mp4"), VideoScript(polls=3))                    # three GETs see PROCESSING
    emu.script(upload_key("bad.mp4"), VideoScript(outcome="failed", error_message="Unsupported codec."))
    monkeypatch.setattr(GeminiFiles, "session_on_other_host", True)            # a session URL on another host

Uploaded bytes are kept in the VideoBook under ``gemini-files-{id}``, so they cannot be downloaded back (the
real API serves only generated files); a deleted file is a cancelled job.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._wire import default_message
from ..registry import Request, Route
from ..video import STORAGE_PREFIX, api_origin, send_blob, storage_url
from ..video_script import EmulatedJob
from .gemini import FILE_STATES, FILES_FAMILY, GeminiAuth, duration_text, gemini_error, no_file, probe, uploaded_file

_FILES = "/gemini/v1beta/files"
_UPLOAD = "/gemini/upload/v1beta/files"
_DOWNLOAD_VERB = ":download"
# Google announces this granularity; the emulator accepts any chunk size, as small test chunks need.
_GRANULARITY = str(256 << 10)
_KEPT = dt.timedelta(hours=48)


def file_uri(origin: str, name: str) -> str:
    """The URI a finished clip is reported at: ``{origin}/gemini/v1beta/files/{name}:download?alt=media``."""
    return f"{origin}{_FILES}/{name}{_DOWNLOAD_VERB}?alt=media"


def upload_key(display_name: str) -> str:
    """The name a ``VideoScript`` for uploads of ``display_name`` is set under (``emu.script(upload_key(...), ...)``);
    ``emu.video_jobs(upload_key(...))`` counts the uploads finished under that name."""
    return f"upload:{display_name}"


@dataclass
class _Session:
    """One resumable upload in progress."""

    display_name: str
    mime: str
    size: int
    origin: str  # the API host's, for the File's URI
    other_host: bool
    data: bytearray = field(default_factory=bytearray)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _timestamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class GeminiFiles(GeminiAuth):
    """Files API routes. ``delivery="redirect"`` clips 302 to the storage host; ``"uri"`` ones are served here."""

    name = FILES_FAMILY
    # Hand out upload session URLs on the other host name (localhost for 127.0.0.1), which refuse a key: a
    # client that sends the key wherever the server points fails loudly. A test sets it with monkeypatch.
    session_on_other_host: ClassVar[bool] = False

    def __init__(self) -> None:
        # By upload id, unique across every emulator that shares this family (ids never repeat).
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def routes(self) -> Sequence[Route]:
        return [
            # First: ``{name}`` below would also match ``abc:download``.
            Route("GET", f"{_FILES}/{{name}}{_DOWNLOAD_VERB}", self.download),
            # The session URL carries no key (the upload id is the capability), so the start checks it itself.
            Route("POST", _UPLOAD, self.upload, auth=False),
            Route("GET", f"{_FILES}/{{name}}", self.get),
            Route("DELETE", f"{_FILES}/{{name}}", self.delete),
        ]

    async def download(self, req: Request) -> None:
        name = req.params["name"]
        data = req.video.blob(name)
        if data is None:
            await req.json(404, gemini_error(404, f"File {name} not found or expired."))
            return
        if req.video.redirects(name):
            await req.exchange.start(302, [("location", storage_url(req, name)), ("content-length", "0")])
            await req.exchange.finish()
            return
        await send_blob(req, data, name=name)

    # ---- upload ---------------------------------------------------------------------------------------

    async def upload(self, req: Request) -> None:
        """The start of a resumable upload, or one of its chunks (by ``X-Goog-Upload-Command``)."""
        command = req.headers.get("x-goog-upload-command", "").strip().lower()
        if command == "start":
            await self._start(req)
        else:
            await self._chunk(req, {c.strip() for c in command.split(",")})

    async def _start(self, req: Request) -> None:
        if not await self.authorize(req):
            return
        protocol = req.headers.get("x-goog-upload-protocol", "").lower()
        length = req.headers.get("x-goog-upload-header-content-length", "")
        mime = req.headers.get("x-goog-upload-header-content-type", "")
        meta = req.body.get("file") if isinstance(req.body, dict) else None
        display = (meta.get("display_name") or meta.get("displayName")) if isinstance(meta, dict) else None
        problem = None
        if protocol != "resumable":
            problem = f"emulator: X-Goog-Upload-Protocol must be resumable (got {protocol!r})"
        elif not length.isdigit():
            problem = "X-Goog-Upload-Header-Content-Length is missing or not a number"
        elif not mime:
            problem = "X-Goog-Upload-Header-Content-Type is missing"
        elif req.raw_body and not isinstance(req.body, dict):
            problem = "Invalid JSON payload received."
        elif display is not None and not isinstance(display, str):
            problem = "file.display_name must be a string"
        if problem is not None:
            await req.json(400, gemini_error(400, problem))
            return
        display_name = display or f"upload-{req.seq}"
        fault = req.video.fault(upload_key(display_name), "submit")
        if fault is not None:
            await req.json(fault.status, gemini_error(fault.status, fault.message or default_message(fault.status)))
            return
        upload_id = uuid.uuid4().hex
        other = self.session_on_other_host
        origin = storage_url(req, "").removesuffix(STORAGE_PREFIX) if other else api_origin(req)
        with self._lock:
            self._sessions[upload_id] = _Session(display_name, mime, int(length), api_origin(req), other)
        session = f"{origin}{_UPLOAD}?upload_id={upload_id}&upload_protocol=resumable"
        await req.exchange.start(200, [("x-goog-upload-url", session), ("x-goog-upload-status", "active"),
                                       ("x-goog-upload-chunk-granularity", _GRANULARITY),
                                       ("x-guploader-uploadid", upload_id), ("content-length", "0")])
        await req.exchange.finish()

    async def _chunk(self, req: Request, commands: set[str]) -> None:
        with self._lock:
            session = self._sessions.get(req.query.get("upload_id", ""))
        if session is None:
            await req.json(404, gemini_error(404, "No such upload session (a missing or unknown upload_id)."))
            return
        if session.other_host and (self.presented_key(req) or req.headers.get("authorization")):
            await req.json(400, gemini_error(400, "upload session on another host received a key"))
            return
        fault = req.video.fault(upload_key(session.display_name), "poll")
        if fault is not None:
            await req.json(fault.status, gemini_error(fault.status, fault.message or default_message(fault.status)))
            return
        received = len(session.data)
        if commands == {"query"}:
            await self._status(req, "active", received)
            return
        if not commands or not commands <= {"upload", "finalize"}:
            await req.json(400, gemini_error(400, f"unknown X-Goog-Upload-Command {sorted(commands)}"))
            return
        offset = req.headers.get("x-goog-upload-offset", "")
        if offset != str(received):
            # A client that lost track of what arrived: the real server asks it to query, and sends nothing.
            await req.json(400, gemini_error(400, f"X-Goog-Upload-Offset {offset or '(none)'} does not match the "
                                                  f"{received} bytes received"))
            return
        if "upload" in commands:
            session.data.extend(req.raw_body)
        if len(session.data) > session.size or ("finalize" in commands and len(session.data) != session.size):
            self._drop(req)
            await req.json(400, gemini_error(400, f"upload of {len(session.data)} bytes does not match the "
                                                  f"announced {session.size}"))
            return
        if "finalize" not in commands:
            await self._status(req, "active", len(session.data))
            return
        self._drop(req)
        job = self._file(req, session)
        await req.json(200, {"file": render(job)}, [("x-goog-upload-status", "final")])

    def _drop(self, req: Request) -> None:
        with self._lock:
            self._sessions.pop(req.query.get("upload_id", ""), None)

    @staticmethod
    async def _status(req: Request, status: str, received: int) -> None:
        await req.exchange.start(200, [("x-goog-upload-status", status),
                                       ("x-goog-upload-size-received", str(received)), ("content-length", "0")])
        await req.exchange.finish()

    def _file(self, req: Request, session: _Session) -> EmulatedJob:
        """Keep the uploaded bytes as a new file (a job that advances by GETs)."""
        data = bytes(session.data)
        job = req.video.submit(self.name, upload_key(session.display_name), None)
        job.blob = req.video.store(f"{self.name}-{job.id}", data, redirect=False)
        now = _now()
        measured = probe(data)
        job.body = {
            "file": {
                "name": f"files/{job.id}",
                "displayName": session.display_name,
                "mimeType": session.mime,
                "sizeBytes": str(len(data)),
                "createTime": _timestamp(now),
                "updateTime": _timestamp(now),
                "expirationTime": _timestamp(now + _KEPT),
                "sha256Hash": base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode(),
                "uri": f"{session.origin}{_FILES}/{job.id}",
                "source": "UPLOADED",
            },
            # Output only, and only once the file is ACTIVE.
            "videoMetadata": {"videoDuration": duration_text(measured[0])} if measured else None,
        }
        return job

    # ---- status and delete ----------------------------------------------------------------------------

    async def get(self, req: Request) -> None:
        """The File; each GET is one poll of its processing."""
        job = uploaded_file(req, req.params["name"])
        if job is None:
            await req.json(*no_file(req.params["name"]))
            return
        job.advance()
        await req.json(200, render(job))

    async def delete(self, req: Request) -> None:
        job = uploaded_file(req, req.params["name"])
        if job is None:
            await req.json(*no_file(req.params["name"]))
            return
        job.cancelled = True
        await req.json(200, {})


def render(job: EmulatedJob) -> dict[str, Any]:
    """The File resource of an uploaded file as it is now (without counting a poll)."""
    state = FILE_STATES.get(job.state(), "PROCESSING")
    file: dict[str, Any] = {**job.body["file"], "state": state}
    if state == "ACTIVE" and job.body.get("videoMetadata"):
        file["videoMetadata"] = job.body["videoMetadata"]
    if state == "FAILED":
        file["error"] = {"code": 3, "message": job.script.error_message}
    return file


__all__ = ["GeminiFiles", "file_uri", "render", "upload_key"]
