"""Gemini's Interactions API (Omni Flash): ``/gemini/v1beta/interactions`` and ``/gemini/v1/interactions``
(shared/reference/video-apis.md §3). Finished clips are downloaded through ``gemini_files``."""

from __future__ import annotations

from collections.abc import Sequence

from ..registry import Route
from .gemini import GeminiAuth


class Interactions(GeminiAuth):
    """Background interactions: create, get, cancel."""

    name = "gemini-interactions"

    def routes(self) -> Sequence[Route]:
        return []


__all__ = ["Interactions"]
