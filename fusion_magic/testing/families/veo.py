"""Gemini Veo: ``POST /gemini/v1beta/models/{model}:predictLongRunning`` and operation polling
(shared/reference/video-apis.md §2). Finished clips are downloaded through ``gemini_files``."""

from __future__ import annotations

from collections.abc import Sequence

from ..registry import Route
from .gemini import GeminiAuth


class Veo(GeminiAuth):
    """Veo's long-running operations."""

    name = "gemini-veo"

    def routes(self) -> Sequence[Route]:
        return []


__all__ = ["Veo"]
