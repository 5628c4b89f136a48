"""fal's queue API (shared/reference/video-apis.md §5): ``/fal/{owner}/{alias}/...``; results on the storage host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from ..registry import Family, Route


class Fal(Family):
    """The queue: submit, status, result, cancel. Key: ``Authorization: Key $FAL_KEY``."""

    name = "fal"
    env: ClassVar[Mapping[str, str]] = {"FAL_BASE_URL": "/fal"}
    test_keys: ClassVar[Mapping[str, str]] = {"FAL_KEY": "fal-test-id:fal-test-secret"}

    def routes(self) -> Sequence[Route]:
        return []


__all__ = ["Fal"]
