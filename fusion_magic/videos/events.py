"""The events a ``%%video`` run adds to the call events (``fusion_magic.core.events``).

Questions about a video and checks are ordinary calls: they stream ``CallStarted``/``CallDelta``/
``CallFinished`` with ``record.role`` "understand", "check" or "judge". Generation jobs report through
``VideoUpdated`` each time a clip's state, progress or file changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.events import EngineEvent

if TYPE_CHECKING:
    from .result import Video, VideoResult


@dataclass(frozen=True)
class VideoRunStarted(EngineEvent):
    """A run is about to start: the clips it will make (in tab order) and the models that will answer a
    question (``understand``: model ids; ``source``: the file or URL asked about); ``check``: the model that
    checks each clip; ``resumed``: a ``%video resume`` (its clips were submitted by earlier runs)."""

    prompt: str
    videos: tuple[Video, ...]
    understand: tuple[str, ...] = ()
    source: str | None = None
    check: str | None = None
    resumed: bool = False


@dataclass(frozen=True)
class VideoUpdated(EngineEvent):
    """A clip's job changed: state, progress, polls, its file, its score. ``video`` is the live object."""

    video: Video


@dataclass(frozen=True)
class VideoRunFinished(EngineEvent):
    """The run is complete (or stopped: ``stopped`` True, with what had arrived)."""

    result: VideoResult
    stopped: bool = False


__all__ = ["VideoRunFinished", "VideoRunStarted", "VideoUpdated"]
