"""Gemini's Files API (``/gemini/v1beta/files``, ``/gemini/upload/v1beta/files``): generated clips are
downloaded from here, and large videos are uploaded here before a question about them.

Download: ``GET /gemini/v1beta/files/{id}:download?alt=media`` wants the key and answers with a 302 to the
storage host (``testing/video.py``), as the real API does (shared/reference/video-apis.md §2.5).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..registry import Request, Route
from ..video import send_blob, storage_url
from .gemini import GeminiAuth, gemini_error

_FILES = "/gemini/v1beta/files"
_DOWNLOAD_VERB = ":download"


def file_uri(origin: str, name: str) -> str:
    """The URI a finished clip is reported at: ``{origin}/gemini/v1beta/files/{name}:download?alt=media``."""
    return f"{origin}{_FILES}/{name}{_DOWNLOAD_VERB}?alt=media"


class GeminiFiles(GeminiAuth):
    """Files API routes. ``delivery="redirect"`` clips 302 to the storage host; ``"uri"`` ones are served here."""

    name = "gemini-files"

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", f"{_FILES}/{{name}}{_DOWNLOAD_VERB}", self.download),
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
        await send_blob(req, data)


__all__ = ["GeminiFiles", "file_uri"]
