"""Questions about a video through Gemini's ``streamGenerateContent`` (shared/reference/video-apis.md §4).

A ``VideoQuestion`` is a chat request whose last user turn carries a video, put before the text as the docs
advise. A small local file goes inline (base64); a larger one is uploaded through the Files API first
(``gemini_files``: resumable upload, then a wait until it is ``ACTIVE``) and referred to by its URI; a URL
(``https://``, a YouTube link, a Files API URI) is referred to as it is. Streaming and its parsing are the
chat provider's.

    provider = GeminiVideoProvider(endpoint, client)
    question = VideoQuestion(model="gemini-2.5-flash", messages=(Message("user", "What happens?"),),
                             video=VideoSource(path=Path("clip.mp4"), start_s=12.5, fps=2))
    text = "".join([e.text async for e in provider.stream(question) if isinstance(e, TextDelta)])

An uploaded file is deleted once the answer is complete: it is of no further use to this call, and the user's
quota holds only so many files. A call that fails or is cancelled leaves it (no network call on the way out
of a cancel); the API deletes it after 48 hours. A retry of the same call reuses it instead of uploading again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import math
import os
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from ...core.errors import ConfigError, ProtocolError, ProviderError
from .._http import WireContext
from ..base import ChatRequest, Endpoint, ProviderEvent
from ..chat.gemini import GeminiProvider, classifier
from ..gemini_files import CHUNK_BYTES, delete_file, upload_file, wait_active
from .base import VideoQuestion, VideoSource

# The whole request must stay under 20 MB for inline data (the docs' prose; their table says 100 MB, the
# reference says to trust the smaller figure). Base64 makes a file a third larger, so about 15 MB of video.
INLINE_LIMIT = 20 << 20
# What the JSON around the video and the text adds, with room to spare.
_ENVELOPE_BYTES = 4096
# videoMetadata.fps must be in (0, 24].
MAX_FPS = 24.0
_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be"})


@dataclass(frozen=True)
class _Prepared(VideoQuestion):
    """A question whose video part is ready to send (read and encoded, or uploaded)."""

    part: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _seconds(value: float) -> str:
    """A protobuf duration: ``12.5`` -> ``"12.5s"``, ``40`` -> ``"40s"``."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"


def video_metadata(source: VideoSource) -> dict[str, Any]:
    """``video_metadata`` for the clip window and the sampling rate, empty when none is set."""
    meta: dict[str, Any] = {}
    if source.start_s is not None:
        meta["start_offset"] = _seconds(source.start_s)
    if source.end_s is not None:
        meta["end_offset"] = _seconds(source.end_s)
    if source.fps is not None:
        meta["fps"] = source.fps
    return meta


def check_source(source: VideoSource) -> None:
    """Refuse, before anything is sent, a source the API can never accept (a ``ConfigError``, one line)."""
    if (source.path is None) == (source.url is None):
        raise ConfigError("a video question needs exactly one video: a file path or a URL")
    if source.fps is not None and not 0 < source.fps <= MAX_FPS:
        raise ConfigError(f"fps must be above 0 and at most {MAX_FPS:g} (got {source.fps:g})")
    for name, value in (("start", source.start_s), ("end", source.end_s)):
        if value is not None and (value < 0 or not math.isfinite(value)):
            raise ConfigError(f"the {name} offset must be a number of seconds >= 0 (got {value:g})")
    if source.start_s is not None and source.end_s is not None and source.end_s <= source.start_s:
        raise ConfigError(f"the end offset ({source.end_s:g}s) must come after the start ({source.start_s:g}s)")


def inline_part(data: bytes, source: VideoSource) -> dict[str, Any]:
    """The video as ``inline_data`` (base64)."""
    part: dict[str, Any] = {"inline_data": {"mime_type": source.mime,
                                            "data": base64.b64encode(data).decode("ascii")}}
    if meta := video_metadata(source):
        part["video_metadata"] = meta
    return part


def file_part(uri: str, mime: str | None, source: VideoSource) -> dict[str, Any]:
    """The video as ``file_data``: a Files API URI, a YouTube link or another URL."""
    data: dict[str, Any] = {"file_uri": uri}
    if mime is not None:
        data["mime_type"] = mime
    part: dict[str, Any] = {"file_data": data}
    if meta := video_metadata(source):
        part["video_metadata"] = meta
    return part


def url_part(source: VideoSource, base_url: str) -> dict[str, Any]:
    """``file_data`` for ``source.url``; a bare ``files/abc`` becomes the file's full URI on the API host."""
    url = (source.url or "").strip()
    if url.startswith("files/"):
        return file_part(f"{base_url.rstrip('/')}/v1beta/{url}", source.mime, source)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise ConfigError(f"not a usable video URL: {url[:80]!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"a video URL must start with https:// (got {url[:80]!r})")
    # The docs send a YouTube link without a MIME type: the page is not a video file.
    mime = None if parsed.host.lower() in _YOUTUBE_HOSTS else source.mime
    return file_part(url, mime, source)


def fits_inline(size: int, request: ChatRequest, limit: int) -> bool:
    """Whether a file of ``size`` bytes, base64-encoded with the request's text around it, stays under ``limit``."""
    text = sum(len(m.content.encode()) for m in request.messages)
    return 4 * math.ceil(size / 3) + text + _ENVELOPE_BYTES <= limit


def _read_b64(path: Path, source: VideoSource) -> dict[str, Any]:
    return inline_part(path.read_bytes(), source)


class GeminiVideoProvider(GeminiProvider):
    """Answers a ``VideoQuestion`` with Gemini (a plain ``ChatRequest`` is answered as the chat provider does).

    The limits are class attributes so a test (or a user with a slow uplink) can change them.
    """

    protocol: ClassVar[str] = "gemini_video"
    inline_limit: ClassVar[int] = INLINE_LIMIT
    upload_chunk: ClassVar[int] = CHUNK_BYTES
    # The Files API's processing: 2-5 s between polls in the SDK samples; a long video takes minutes.
    active_interval: ClassVar[float] = 2.0
    active_timeout: ClassVar[float] = 300.0

    def __init__(self, endpoint: Endpoint, client: httpx.AsyncClient) -> None:
        super().__init__(endpoint, client)
        # Uploads of this call by (path, size, mtime): the call policy retries on the same instance, and a
        # retry after a failed answer should not upload the same video again.
        self._uploaded_videos: dict[tuple[str, int, int], dict[str, Any]] = {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body = super().body(request)
        if not isinstance(request, VideoQuestion) or request.video is None:
            return body
        if isinstance(request, _Prepared):
            part: Mapping[str, Any] = request.part
        else:  # a body built outside stream() (a preview): URLs and files small enough to inline
            part = self._direct_part(request, request.video)
        contents: list[dict[str, Any]] = body["contents"]
        users = [c for c in contents if c["role"] == "user"]
        if users:
            users[-1]["parts"].insert(0, dict(part))  # the docs: the video before the text
        else:
            contents.append({"role": "user", "parts": [dict(part)]})
        return body

    def _direct_part(self, request: ChatRequest, source: VideoSource) -> dict[str, Any]:
        check_source(source)
        if source.url is not None:
            return url_part(source, self.endpoint.base_url)
        path = Path(source.path or "")
        if not fits_inline(_stat(path).st_size, request, self.inline_limit):
            raise ConfigError(f"the video {str(path)!r} is too large to send inline; it is uploaded when asked")
        return _read_b64(path, source)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Upload the video if it must be (errors here come before any event, so the call may be retried),
        then stream the answer as the chat provider does; delete the upload once the answer is complete."""
        if not isinstance(request, VideoQuestion) or request.video is None:
            async with contextlib.aclosing(super().stream(request)) as plain:
                async for event in plain:
                    yield event
            return
        ctx = WireContext(self.endpoint.provider, request.model, self.endpoint.api_key)
        part, upload_key = await self._prepare(request, request.video, ctx)
        fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(VideoQuestion)}
        prepared = _Prepared(**fields, part=part)
        async with contextlib.aclosing(super().stream(prepared)) as events:
            async for event in events:
                yield event
        if upload_key is not None:
            file = self._uploaded_videos.pop(upload_key)
            # Best effort: the answer is complete whatever the delete says.
            with contextlib.suppress(ProviderError):
                await delete_file(self.client, self.endpoint, file["name"], ctx=ctx, classify=classifier(ctx))

    async def _prepare(self, request: ChatRequest, source: VideoSource, ctx: WireContext
                       ) -> tuple[dict[str, Any], tuple[str, int, int] | None]:
        """The video part, and the key of the upload it refers to (None when nothing was uploaded)."""
        check_source(source)
        if source.url is not None:
            return url_part(source, self.endpoint.base_url), None
        path = Path(source.path or "")
        stat = _stat(path)
        if fits_inline(stat.st_size, request, self.inline_limit):
            # At most ~15 MB: reading and encoding it is quick, but not so quick the loop should wait on it.
            return await asyncio.to_thread(_read_b64, path, source), None
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        file = self._uploaded_videos.get(key)
        if file is None:
            classify = classifier(ctx)
            file = await upload_file(self.client, self.endpoint, path, source.mime, ctx=ctx, classify=classify,
                                     chunk=self.upload_chunk)
            if file.get("state") != "ACTIVE":
                try:
                    file = await wait_active(self.client, self.endpoint, file["name"], ctx=ctx, classify=classify,
                                             interval=self.active_interval, timeout=self.active_timeout)
                except ProviderError as exc:
                    if exc.code == "FAILED":  # of no use to anyone: clear it now rather than in 48 h
                        with contextlib.suppress(ProviderError):
                            await delete_file(self.client, self.endpoint, file["name"], ctx=ctx, classify=classify)
                    raise
            self._uploaded_videos[key] = file
        uri = file.get("uri")
        if not isinstance(uri, str) or not uri:
            raise ctx.error(ProtocolError, f"the Files API gave no URI for {file['name']}")
        mime = file.get("mimeType") if isinstance(file.get("mimeType"), str) else source.mime
        return file_part(uri, mime, source), key


def _stat(path: Path) -> os.stat_result:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read the video {str(path)!r}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise ConfigError(f"the video {str(path)!r} is not a file")
    return stat


__all__ = [
    "INLINE_LIMIT",
    "GeminiVideoProvider",
    "check_source",
    "file_part",
    "fits_inline",
    "inline_part",
    "url_part",
    "video_metadata",
]
