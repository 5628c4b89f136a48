"""The contract of the video protocols: a generation job (submit, poll, download, cancel) and a question
about a video (a chat call with a video attached).

A generation is a paid, long-running job at the provider, so the contract is built around its id: ``submit``
returns a ``JobRef`` (everything needed to find the job again, nothing secret), which the caller persists
before anything else happens; ``poll`` reads its state; ``download`` streams a finished clip to disk.
Providers never sleep, retry or price: the job loop in ``fusion_magic.videos.jobs`` does.

    provider = make_video_provider(target, client)
    job = await provider.submit(VideoRequest(model="veo-3.1-generate-preview", prompt="a fox in snow"))
    status = await provider.poll(job)           # JobStatus(state="running", ...)
    await provider.download(status.clips[0], Path("videos/fox.mp4"))
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from ...core.errors import ProviderError
from ..base import ChatRequest, Usage

# Where a job is. "succeeded", "failed", "filtered" and "cancelled" are final. "filtered" is its own
# state: the provider's safety filter withheld the clip (not an error of ours, and not billed).
JobState = Literal["queued", "running", "succeeded", "failed", "filtered", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "filtered", "cancelled"})
# The code of the error a submit raises when its request left but its answer (the job id) never arrived: the
# provider may be running, and billing, a job nobody can find. The job loop keeps a receipt that says so and never
# submits that request again by itself.
SUBMIT_LOST = "submit_lost"


@dataclass(frozen=True)
class VideoRequest:
    """What one generation asks of one model. ``model`` is the provider-side name (no ``provider:``).

    ``None`` means "the model's default". ``image`` is a first frame read from disk and ``last_frame`` the
    frame the clip must end on (``--last-frame``: with ``image``, Veo 3.1's first+last-frame interpolation);
    ``previous_job`` is the id of an earlier job this one revises (Omni's ``previous_interaction_id``, the
    ``--edit`` flag); ``extend_uri`` is the URI a finished Veo operation named for an earlier clip, which this
    job extends (Veo's ``video.uri``, the ``--extend`` flag).
    """

    model: str
    prompt: str
    seconds: int | None = None
    aspect: str | None = None  # "16:9" | "9:16"
    resolution: str | None = None  # "720p", "1080p", ...
    negative: str | None = None
    image: Path | None = None
    previous_job: str | None = None
    last_frame: Path | None = None
    extend_uri: str | None = None
    # Reference images (``--reference``, up to three): what the clip's subject, style or scene should look like,
    # not a frame of it (Omni, Veo 3.1's reference-to-video, OpenRouter's input_references, Runway's references).
    references: tuple[Path, ...] = ()


@dataclass(frozen=True)
class JobRef:
    """A submitted job, as persisted in the clip's sidecar: enough to poll, download or cancel it later,
    from another process. Never holds a key (fal's URLs and Gemini's operation names carry none).

        JobRef.from_json(json.loads(JobRef("veo", "veo-3.1", "models/veo-3.1/operations/x").to_json()))
    """

    protocol: str  # "veo" | "interactions" | "fal"
    model: str
    job_id: str
    urls: Mapping[str, str] = field(default_factory=dict)  # fal: status_url, response_url, cancel_url

    def to_json(self) -> str:
        return json.dumps({"protocol": self.protocol, "model": self.model, "job_id": self.job_id,
                           "urls": dict(self.urls)}, sort_keys=True)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRef:
        urls = data.get("urls") or {}
        return cls(str(data["protocol"]), str(data["model"]), str(data["job_id"]),
                   {str(k): str(v) for k, v in urls.items()})

    @classmethod
    def from_json(cls, text: str) -> JobRef:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Clip:
    """One finished output: a URI to download, or the bytes themselves (inline delivery).

    ``needs_key``: the URI is on the provider's own host and wants the key (Gemini's files); a CDN link
    (fal) is fetched without it. A redirect is never followed with the key either way.
    """

    uri: str | None = None
    data: bytes | None = field(default=None, repr=False)
    mime: str = "video/mp4"
    needs_key: bool = True
    # False for a signed URL anyone holding it may use until it expires (OpenRouter's ``urls``, Runway's output):
    # it is downloaded at once and never written into a sidecar or a log; a resume polls the job again for a
    # fresh one.
    keep_uri: bool = True


def or_words(values: Sequence[object]) -> str:
    """``"4, 6 or 8"``: the values a refusal names as the ones a model takes ("" for none)."""
    words = [str(v) for v in values]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


@dataclass(frozen=True)
class VideoCaps:
    """What one video model accepts, in one place: every plan-time refusal, ``%video list`` and ``--estimate``
    read it. Filled from the provider's model list where it has one (OpenRouter's ``/videos/models``), else from
    the reference (``source`` says which). Empty tuples mean "not known: not checked".

        VideoCaps("google/veo-3.1", seconds=(4, 6, 8), resolutions=("720p", "1080p"), aspects=("16:9", "9:16"))
    """

    model: str
    seconds: tuple[int, ...] = ()
    # A range instead of a list (Runway's gen4.5: any whole number from 2 to 10); both None: see ``seconds``.
    min_seconds: int | None = None
    max_seconds: int | None = None
    resolutions: tuple[str, ...] = ()
    aspects: tuple[str, ...] = ()
    audio: bool | None = None
    first_frame: bool = False
    last_frame: bool = False
    references: int = 0  # how many reference images it takes (0: none)
    edit: bool = False
    extend: bool = False
    price_per_second: float | None = None
    source: str = ""

    def takes_seconds(self, seconds: int) -> bool:
        """Whether a clip of ``seconds`` is one this model makes (unknown lengths pass)."""
        if self.min_seconds is not None or self.max_seconds is not None:
            return (self.min_seconds or 0) <= seconds <= (self.max_seconds or seconds)
        return not self.seconds or seconds in self.seconds

    def seconds_words(self) -> str:
        """``"4, 6 or 8"``, ``"2 to 10"``, or ``"any"``."""
        if self.min_seconds is not None or self.max_seconds is not None:
            return f"{self.min_seconds or 1} to {self.max_seconds or 'any'}"
        return or_words(self.seconds) if self.seconds else "any"


@dataclass(frozen=True)
class JobStatus:
    """One poll's answer. ``progress`` is a short human phrase ("queue position 2", "40 %") or None;
    ``error`` is set when ``state`` is "failed"; ``reason`` is the provider's words when "filtered"."""

    state: JobState
    clips: tuple[Clip, ...] = ()
    error: ProviderError | None = None
    reason: str | None = None
    progress: str | None = None
    usage: Usage | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class VideoProvider(Protocol):
    """One video-generation wire protocol. Instances are cheap; the ``httpx.AsyncClient`` is the caller's.

    Every method raises a typed ``ProviderError`` (``core.errors``) on failure; a job that failed at the
    provider is not an exception but a ``JobStatus`` with state "failed".
    """

    protocol: ClassVar[str]
    # The recommended first poll interval in seconds (shared/reference/video-apis.md §0); the job loop
    # backs off from here.
    poll_interval: ClassVar[float]

    @classmethod
    def check_request(cls, request: VideoRequest) -> list[str]:
        """Refuse, before anything is sent, a request the model can never accept (a ``ConfigError`` with
        one line), and return notes for options the model ignores ("--negative: veo-x has no negative
        prompt; ignored")."""
        ...

    async def submit(self, request: VideoRequest) -> JobRef:
        """Start one paid job; returns once the provider accepted it. Never retried by the caller."""
        ...

    async def poll(self, job: JobRef) -> JobStatus:
        """The job's state now."""
        ...

    async def download(self, clip: Clip, dest: Path) -> int:
        """Stream ``clip`` to ``dest`` in bounded memory (inline bytes are written as they are); returns
        the number of bytes written. A partial file never stays at ``dest``."""
        ...

    async def cancel(self, job: JobRef) -> None:
        """Ask the provider to stop the job (best effort; some protocols have no cancel)."""
        ...

    async def list_models(self) -> list[str]:
        """The video models this key can use, asked of the provider at run time (provider-side names)."""
        ...


@dataclass(frozen=True)
class VideoSource:
    """The video a question is about: a local file or a URL (``https://``, a YouTube link, a Files API URI).

    ``start_s``/``end_s`` clip the part the model watches and ``fps`` its sampling rate, where the
    protocol supports them (Gemini's ``videoMetadata``).
    """

    path: Path | None = None
    url: str | None = None
    mime: str = "video/mp4"
    start_s: float | None = None
    end_s: float | None = None
    fps: float | None = None


@dataclass(frozen=True)
class VideoQuestion(ChatRequest):
    """A chat request with a video attached to its last user turn: what understanding sends.

    Being a ``ChatRequest``, it runs through the same call policy (``calls.run_call``: retries, timeout,
    pricing, events, cache) as any chat call; only the protocols that can watch video accept it.
    """

    video: VideoSource | None = None
    # An Omni interaction that already holds the video (the one that generated the clip): the Interactions
    # protocol continues it instead of uploading the clip again. Other protocols ignore it and send ``video``.
    previous_interaction: str | None = None


__all__ = [
    "FINAL_STATES",
    "SUBMIT_LOST",
    "Clip",
    "JobRef",
    "JobState",
    "JobStatus",
    "VideoCaps",
    "VideoProvider",
    "VideoQuestion",
    "VideoRequest",
    "VideoSource",
    "or_words",
]
