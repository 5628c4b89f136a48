"""The options of one ``%%video`` run, each with its default and check in one place.

Flags (``ipython/video.py``) and the ``video()``/``avideo()`` keywords (``api.py``) both build a
``VideoOptions``; a bad value is a ``ConfigError`` with one line naming the flag, before any file is read
or any call is made.

    options = VideoOptions(models=("gemini:gemini-omni-1.2-flash",), seconds=6, aspect="9:16")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

from ..calls.settings import ANSWER_MODES, check_choice
from ..core.errors import ConfigError

ASPECTS = ("16:9", "9:16")
RESOLUTIONS = ("360p", "480p", "540p", "720p", "768p", "1080p", "4k")
DEFAULT_OUT_DIR = "videos"
# Jobs take from seconds to several minutes (Veo: about 6 minutes at peak, reference §2).
DEFAULT_TIMEOUT_S = 600.0


class VideoKeywords(TypedDict, total=False):
    """The option keywords of ``video()``/``avideo()``: each is the ``VideoOptions`` field of the same name."""

    models: Sequence[str]
    seconds: int | None
    aspect: str | None
    resolution: str | None
    negative: str | None
    image: str | Path | None
    last_frame: str | Path | None
    out_dir: str | Path
    estimate: bool
    budget: float | None
    timeout: float
    understand: str | None
    start: float | None
    end: float | None
    fps: float | None
    check: str | None
    judge: str | None
    mode: str | None
    new: bool
    poll_s: float | None


@dataclass(frozen=True)
class ExtendOf:
    """The clip ``--extend`` continues: the model id that made it, the URI its finished Veo operation named (what
    Veo's ``video.uri`` takes back; never a storage redirect's target, never with a key), its measured length,
    and its file name (for messages)."""

    model: str
    uri: str
    seconds: float | None = None
    file: str | None = None


@dataclass(frozen=True)
class VideoOptions:
    """Every option of one video run, checked when built.

    ``models``: the generation pool, or with ``understand`` the models that answer the question (empty:
    picked for the keys that are set). ``edit_of`` is filled by the magic from ``--edit``: the job id and
    model of the clip being revised; ``extend_of`` from ``--extend``: the Veo clip being extended.
    ``last_frame`` is the frame a clip ends on (with ``image``, the first). ``new`` pays for fresh jobs even
    when this same request already has a clip or a pending job in ``out_dir``. ``poll_s`` overrides each
    protocol's recommended poll interval.
    """

    models: tuple[str, ...] = ()
    seconds: int | None = None
    aspect: str | None = None
    resolution: str | None = None
    negative: str | None = None
    image: Path | None = None
    last_frame: Path | None = None
    out_dir: Path = Path(DEFAULT_OUT_DIR)
    estimate: bool = False
    budget: float | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    understand: str | None = None
    start: float | None = None
    end: float | None = None
    fps: float | None = None
    check: str | None = None
    judge: str | None = None
    mode: str | None = None
    new: bool = False
    poll_s: float | None = None
    edit_of: tuple[str, str] | None = None  # (model id, job id) of the clip --edit revises
    extend_of: ExtendOf | None = None

    def __post_init__(self) -> None:
        _positive_int("--seconds", self.seconds)
        if self.aspect is not None:
            check_choice("--aspect", self.aspect, ASPECTS)
        if self.resolution is not None:
            check_choice("--resolution", self.resolution.lower(), RESOLUTIONS)
        for flag, value in (("--budget", self.budget), ("--timeout", self.timeout), ("--fps", self.fps),
                            ("--poll", self.poll_s)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{flag} must be a positive number, not {value!r}")
        for flag, value in (("--start", self.start), ("--end", self.end)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{flag} must be seconds from the start of the video (>= 0), not {value!r}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"--end ({self.end:g} s) must come after --start ({self.start:g} s)")
        if self.fps is not None and self.fps > 24:
            raise ConfigError(f"--fps must be at most 24 (Gemini samples up to 24 frames a second), not {self.fps:g}")
        if (self.start is not None or self.end is not None or self.fps is not None) and not self.understand:
            raise ConfigError("--start, --end and --fps apply to --understand; add --understand PATH_OR_URL")
        if self.mode is not None:
            check_choice("--mode", self.mode, ANSWER_MODES)
        if self.understand is not None and not self.understand.strip():
            raise ConfigError("--understand needs a file path or a URL")
        if self.understand and self.check:
            raise ConfigError("--check checks generated clips; with --understand the models answer about the given "
                              "video instead (drop one of them)")
        if self.understand and (self.image or self.edit_of or self.last_frame or self.extend_of):
            raise ConfigError("--image, --last-frame, --edit and --extend are for generating; with --understand "
                              "nothing is generated")
        if self.edit_of and self.extend_of:
            raise ConfigError("--edit (Omni revises a clip) and --extend (Veo continues one): one at a time")
        if self.extend_of and (self.image or self.last_frame):
            raise ConfigError("--extend continues the clip from where it ends: drop --image and --last-frame")
        if self.last_frame is not None and self.image is None:
            raise ConfigError("--last-frame needs --image: the clip runs from the first frame to the last")
        generation_only = {"--seconds": self.seconds, "--aspect": self.aspect, "--resolution": self.resolution,
                           "--negative": self.negative}
        given = [flag for flag, value in generation_only.items() if value is not None]
        if self.understand and given:
            raise ConfigError(f"{', '.join(given)} set how clips are generated; with --understand nothing is "
                              "generated (drop them or --understand)")
        if any(not isinstance(m, str) or not m.strip() for m in self.models):
            raise ConfigError("-m/--models: empty model id")

    @property
    def generating(self) -> bool:
        """True for a generation run (with or without --check), False for a question about a video."""
        return self.understand is None

    def with_(self, **changes: Any) -> VideoOptions:
        return replace(self, **changes)

    @classmethod
    def from_keywords(cls, given: VideoKeywords) -> VideoOptions:
        """Options from ``video()`` keywords (None or absent: the default)."""
        values: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if "models" in values:
            models = values["models"]
            values["models"] = (models,) if isinstance(models, str) else tuple(models)
        for name in ("image", "last_frame", "out_dir"):
            if name in values:
                values[name] = Path(values[name])
        return cls(**values)


def _positive_int(flag: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ConfigError(f"{flag} must be a whole number of seconds above 0, not {value!r}")


__all__ = ["ASPECTS", "DEFAULT_OUT_DIR", "DEFAULT_TIMEOUT_S", "RESOLUTIONS", "ExtendOf", "VideoKeywords",
           "VideoOptions"]
