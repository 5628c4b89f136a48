"""How the emulator is told to behave for video models: scripts, the jobs they run and the clips they serve.

A job advances by polls, not by a clock, so tests are exact: with ``VideoScript(polls=2)`` the first two
polls answer "running" and the third the outcome (and ``seconds`` adds a minimum wall time on top).

    emu.script("veo-3.1-generate-preview", VideoScript(polls=2, outcome="filtered"))
    emu.video_jobs("veo-3.1-generate-preview")   # how many jobs were submitted (paid) for the model

Clips are real MP4 files made with PyAV (``media.py``). A finished clip is served by the family that made
it; a "redirect" delivery answers the key-bearing URI with a 302 to ``/storage/`` on a *different host name*
(``localhost`` instead of ``127.0.0.1``), and the storage route refuses any request that carries a key, so
a client that forwards the key across the redirect fails loudly.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .media import clip_bytes
from .script import SCRIPTED, Fault, Scripts, fault_for

Outcome = Literal["ok", "filtered", "failed"]
# "redirect": a URI on the API host that 302s to the storage host; "uri": a URI served directly (fal's CDN
# link); "inline": the bytes in the poll response, base64.
Delivery = Literal["redirect", "uri", "inline"]


@dataclass
class DownloadFault:
    """One scripted failure of a clip's download (the request that streams its bytes, after any redirect).

    "reset": half the bytes, then the connection drops (a client that asks again with ``Range`` gets the rest);
    "drip": the first KiB, then one byte every ``drip_s`` for as long as the client listens; "status": answers
    ``status`` (404: the clip is gone). ``times`` limits it to the first N downloads of the clip (None: all)."""

    kind: Literal["reset", "drip", "status"]
    status: int = 404
    times: int | None = 1
    drip_s: float = 0.05


@dataclass
class VideoScript:
    """Behaviour of one emulated video model, per submitted job.

    ``submit_faults`` answer the submit with an error (``Fault("status", status=404)`` for a retired id, 400
    for a bad combination); ``poll_faults`` answer polls with one (``Fault("status", status=503, times=1)``
    tests that polls are retried). ``clip`` overrides the made clip (the download benchmark serves 200 MB).
    """

    polls: int = 1
    seconds: float = 0.0
    outcome: Outcome = "ok"
    delivery: Delivery = "redirect"
    clip_seconds: float = 2.0
    size: tuple[int, int] = (320, 180)
    audio: bool = False
    clip: bytes | None = field(default=None, repr=False)
    reason: str = "The generated video was blocked by the safety filter (the audio track)."
    error_message: str = "The video could not be generated: internal error in the video model."
    submit_faults: list[Fault] = field(default_factory=list)
    poll_faults: list[Fault] = field(default_factory=list)
    # Faults of the clip's download, by download (``DownloadFault``); ``ranges`` False: the host that serves the
    # bytes ignores ``Range`` and announces no ``Accept-Ranges`` (a resumed download must start over).
    download_faults: list[DownloadFault] = field(default_factory=list)
    ranges: bool = True
    # Interactions: whether the completed interaction carries the SDK's convenience field ``output_video``
    # (unconfirmed whether the server sends it) or only ``steps``.
    output_video_field: bool = False
    # Runway: how many of the job's first polls answer THROTTLED (over the organisation's concurrency: queued,
    # not an error); they count among ``polls``. Other families ignore it.
    throttled: int = 0
    # Interactions: the wire status the interaction shows once its scripted polls are done, instead of the
    # outcome's own ("completed", "failed"): "incomplete", "budget_exceeded", "requires_continuation",
    # "requires_action", "idle" (with the clip when the outcome is "ok"), "queued" or "in_progress" (it never
    # finishes), or any other string (a status newer than the client). None: the outcome's status.
    final_status: str | None = None
    # What the model answers when asked about a video (understanding through Interactions or generateContent).
    answer: str = f"{SCRIPTED} The clip shows a white square moving from left to right across a coloured background."

    def data(self) -> bytes:
        """The clip's bytes."""
        return self.clip if self.clip is not None else made_clip(self.clip_seconds, self.size, self.audio)


@functools.lru_cache(maxsize=16)
def made_clip(seconds: float, size: tuple[int, int], audio: bool) -> bytes:
    """A real MP4, made once per shape."""
    return clip_bytes(seconds=seconds, size=size, audio=audio)


State = Literal["queued", "running", "succeeded", "failed", "filtered", "cancelled"]


@dataclass
class EmulatedJob:
    """One submitted job: who asked for what, and how far it got."""

    id: str
    family: str
    model: str
    script: VideoScript
    body: Any
    created: float = field(default_factory=time.monotonic)
    polls: int = 0
    cancelled: bool = False
    blob: str | None = None  # the storage name of its clip, once finished

    def advance(self) -> State:
        """Count one poll and say the state it sees."""
        self.polls += 1
        return self.state()

    def state(self) -> State:
        if self.cancelled:
            return "cancelled"
        if self.polls <= self.script.polls or time.monotonic() - self.created < self.script.seconds:
            return "queued" if self.polls <= 1 and self.script.polls > 1 else "running"
        return "succeeded" if self.script.outcome == "ok" else self.script.outcome


class VideoBook(Scripts["VideoScript"]):
    """Video scripts, jobs and stored clips of one Emulator (``Request.video``). Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, EmulatedJob] = {}
        self._blobs: dict[str, bytes] = {}
        self._direct: set[str] = set()
        self._submits: dict[str, int] = {}
        self._faults: dict[tuple[str, str], int] = {}
        self._blob_jobs: dict[str, EmulatedJob] = {}
        self._downloads: dict[str, int] = {}
        self._ids = itertools.count(1)

    def script(self, model: str) -> VideoScript:
        with self._lock:
            return self._scripts.get(model) or VideoScript()

    def _forget(self) -> None:
        self._jobs.clear()
        self._blobs.clear()
        self._direct.clear()
        self._submits.clear()
        self._faults.clear()
        self._blob_jobs.clear()
        self._downloads.clear()

    def fault(self, model: str, which: Literal["submit", "poll"]) -> Fault | None:
        """The scripted fault for this request to ``model``, counting requests per model and kind."""
        script = self.script(model)
        faults: Sequence[Fault] = script.submit_faults if which == "submit" else script.poll_faults
        with self._lock:
            nth = self._faults.get((model, which), 0)
            self._faults[(model, which)] = nth + 1
        return fault_for(faults, nth)

    def requests(self, model: str, which: Literal["submit", "poll"]) -> int:
        """How many submit (or poll) requests for ``model`` reached its family, faulted or not."""
        with self._lock:
            return self._faults.get((model, which), 0)

    def submit(self, family: str, model: str, body: Any, *, prefix: str = "") -> EmulatedJob:
        """Accept one job (a paid submission) and return it."""
        script = self.script(model)
        with self._lock:
            n = next(self._ids)
            job = EmulatedJob(f"{prefix}{n:04d}emu{n * 7919 % 100000:05d}", family, model, script, body)
            self._jobs[job.id] = job
            self._submits[model] = self._submits.get(model, 0) + 1
            return job

    def job(self, job_id: str) -> EmulatedJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def forget(self, job_id: str) -> None:
        """The provider no longer keeps this job (expired, or stored with ``store: false``): a poll of it,
        or an interaction that continues it, is then refused as a real API refuses an unknown id."""
        with self._lock:
            self._jobs.pop(job_id, None)

    def jobs(self, model: str | None = None) -> list[EmulatedJob]:
        with self._lock:
            return [j for j in self._jobs.values() if model is None or j.model == model]

    def submissions(self, model: str) -> int:
        """How many jobs were submitted for ``model`` (each one is paid at a real provider)."""
        with self._lock:
            return self._submits.get(model, 0)

    def store(self, name: str, data: bytes, *, redirect: bool = True) -> str:
        """Keep ``data`` under ``name`` on the storage host; returns the name. ``redirect`` False: the API
        host serves it itself instead of redirecting to storage (``VideoScript(delivery="uri")``)."""
        with self._lock:
            self._blobs[name] = data
            if not redirect:
                self._direct.add(name)
        return name

    def redirects(self, name: str) -> bool:
        """Whether the API host answers a download of ``name`` with a redirect to the storage host."""
        with self._lock:
            return name not in self._direct

    def blob(self, name: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(name)

    def finish(self, job: EmulatedJob) -> str:
        """The storage name of a succeeded job's clip, stored on first ask."""
        if job.blob is None:
            job.blob = self.store(f"{job.family}-{job.id}", job.script.data(),
                                  redirect=job.script.delivery != "uri")
        with self._lock:
            self._blob_jobs[job.blob] = job
        return job.blob

    def download(self, name: str) -> tuple[VideoScript | None, DownloadFault | None]:
        """Count one download of the stored clip ``name``: the script of the job that made it (None for a blob
        no job made) and the download fault this request gets, if any."""
        with self._lock:
            job = self._blob_jobs.get(name)
            nth = self._downloads.get(name, 0)
            self._downloads[name] = nth + 1
        if job is None:
            return None, None
        fault = next((f for f in job.script.download_faults if f.times is None or nth < f.times), None)
        return job.script, fault

    def downloads(self, name: str) -> int:
        """How many requests asked for the bytes of stored clip ``name``."""
        with self._lock:
            return self._downloads.get(name, 0)


__all__ = ["Delivery", "DownloadFault", "EmulatedJob", "Outcome", "VideoBook", "VideoScript", "made_clip"]
