"""The options of one ``%%video`` run, each declared once (``core/option.py``): its default, check, flag, help
line and, where it has a session default, its ``%config VideoMagics`` trait.

Flags and traits (``ipython/video.py``, generated from these fields) and the ``video()``/``avideo()``
keywords (``api.py``) all build a ``VideoOptions``; a bad value is a ``ConfigError`` with one line naming the
flag, before any file is read or any call is made. Checks that relate two options are ``__post_init__``'s.

    options = VideoOptions(models=("gemini:gemini-omni-1.2-flash",), seconds=6, aspect="9:16")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

from ..calls.settings import ANSWER_MODES
from ..core.errors import ConfigError
from ..core.option import check_options, check_that, one_of, option, positive_number, whole_number

ASPECTS = ("16:9", "9:16")
RESOLUTIONS = ("360p", "480p", "540p", "720p", "768p", "1080p", "2k", "4k")
# Reference images a clip may take: Omni's and Veo 3.1's limit, and what fits a request.
MAX_REFERENCES = 3
DEFAULT_OUT_DIR = "videos"
# Jobs take from seconds to several minutes (Veo: about 6 minutes at peak, reference §2).
DEFAULT_TIMEOUT_S = 600.0


class VideoKeywords(TypedDict, total=False):
    """The option keywords of ``video()``/``avideo()`` for a type checker: each is the ``VideoOptions`` field of
    the same name (``tests/test_options.py`` holds them to the fields, name and type)."""

    models: Sequence[str]
    seconds: int | None
    aspect: str | None
    resolution: str | None
    negative: str | None
    image: str | Path | None
    last_frame: str | Path | None
    references: Sequence[str | Path]
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


def _seconds_from_start(flag: str) -> Any:
    return check_that(lambda v: math.isfinite(v) and v >= 0,
                      f"{flag} must be seconds from the start of the video (>= 0), not {{value!r}}")


def _check_fps(fps: float) -> None:
    positive_number("--fps")(fps)
    if fps > 24:
        raise ConfigError(f"--fps must be at most 24 (Gemini samples up to 24 frames a second), not {fps:g}")


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

    # The pool is -p/--pool in every magic (the field keeps its name: video(models=...), %config
    # VideoMagics.models); -m/--models, its old flags, parse until core.option.RENAMED_UNTIL, and until then
    # the mode is --mode alone here.
    models: tuple[str, ...] = option(
        (), "-p", "--pool", metavar="IDS", group="Generate", items="provider:model id", renamed=("-m", "--models"),
        help="comma-separated ids (default with GEMINI_API_KEY: gemini-omni-1.2-flash)",
        check=check_that(lambda ms: all(isinstance(m, str) and m.strip() for m in ms), "-p/--pool: empty model id"),
        config="Default generation pool; empty picks one for the keys set.")
    seconds: int | None = option(
        None, "--seconds", metavar="N", group="Generate", help="clip length",
        check=whole_number(1, None, "--seconds must be a whole number of seconds above 0, not {value!r}"))
    aspect: str | None = option(None, "--aspect", metavar="16:9|9:16", group="Generate", help="aspect ratio",
                                check=one_of("--aspect", ASPECTS))
    resolution: str | None = option(None, "--resolution", metavar="RES", group="Generate",
                                    help="720p, 1080p, ... (what the model offers)",
                                    check=one_of("--resolution", RESOLUTIONS, str.lower))
    negative: str | None = option(None, "--negative", metavar="TEXT", group="Generate",
                                  help="what to avoid, where the model takes it (a note says when it does not)")
    # ruff's RUF009 takes option() for a call in a default; it returns a dataclasses.field, as field() does.
    image: Path | None = option(
        None, "--image", metavar="PATH", group="Generate", help="a PNG or JPEG first frame")
    last_frame: Path | None = option(
        None, "--last-frame", metavar="PATH", group="Generate",
        help="a PNG or JPEG last frame, with --image (Veo 3.1: 8 s; some fal models)")
    references: tuple[Path, ...] = option(
        (), "--reference", metavar="PATHS", group="Generate", items="image path",
        help=f"up to {MAX_REFERENCES} PNG or JPEG reference images (subject, style), comma-separated",
        check=check_that(lambda refs: len(refs) <= MAX_REFERENCES,
                         f"--reference takes at most {MAX_REFERENCES} images"))
    out_dir: Path = option(
        Path(DEFAULT_OUT_DIR), "--out-dir", metavar="DIR", group="Run",
        help="where clips go, inside the working folder (default videos/)",
        config="Where clips and sidecars go (inside the working folder).")
    estimate: bool = option(False, "--estimate", group="Run",
                            help="print the cost per clip; submit nothing, need no key")
    budget: float | None = option(None, "--budget", metavar="USD", group="Run",
                                  help="a hard cap: refuse to submit when the estimate is above USD",
                                  check=positive_number("--budget"))
    timeout: float = option(DEFAULT_TIMEOUT_S, "-t", "--timeout", metavar="SECONDS", group="Run",
                            help="stop waiting after this long (the jobs stay resumable; default 600)",
                            check=positive_number("--timeout"),
                            config="Seconds to wait for jobs before leaving them pending.")
    understand: str | None = option(
        None, "--understand", metavar="PATH_OR_URL", group="Understand",
        help="ask the cell's question about this video (several -p: the judge fuses)",
        check=check_that(lambda v: bool(v.strip()), "--understand needs a file path or a URL"))
    start: float | None = option(None, "--start", metavar="SECONDS", group="Understand",
                                 help="watch from here", check=_seconds_from_start("--start"))
    end: float | None = option(None, "--end", metavar="SECONDS", group="Understand", help="watch up to here",
                               check=_seconds_from_start("--end"))
    fps: float | None = option(None, "--fps", metavar="FPS", group="Understand",
                               help="frames per second to sample (Gemini; up to 24)", check=_check_fps)
    check: str | None = option(
        None, "--check", metavar="ID", group="Generate",
        help="a model scores each clip 0-10 against the prompt (local:frames: the spec)")
    judge: str | None = option(
        None, "-j", "--judge", metavar="ID", group="Understand",
        help="judge for several answers, or vote (default: %config FusionMagics.judge)")
    mode: str | None = option(None, "--mode", metavar="MODE", choices=ANSWER_MODES, group="Understand",
                              help="how the judge fuses several answers: {choices}",
                              check=one_of("--mode", ANSWER_MODES))
    new: bool = option(False, "--new", group="Generate",
                       help="pay for a fresh clip even if this same request has one already")
    poll_s: float | None = option(
        None, "--poll", metavar="SECONDS", group="Run", help="poll interval (default: each provider's recommended one)",
        check=positive_number("--poll"), trait="poll", config="Poll interval in seconds (default: each provider's).")
    edit_of: tuple[str, str] | None = None  # (model id, job id) of the clip --edit revises
    extend_of: ExtendOf | None = None

    def __post_init__(self) -> None:
        check_options(self)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ConfigError(f"--end ({self.end:g} s) must come after --start ({self.start:g} s)")
        if (self.start is not None or self.end is not None or self.fps is not None) and not self.understand:
            raise ConfigError("--start, --end and --fps apply to --understand; add --understand PATH_OR_URL")
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
        if "references" in values:
            refs = values["references"]
            values["references"] = tuple(Path(r) for r in ([refs] if isinstance(refs, str | Path) else refs))
        return cls(**values)


__all__ = ["ASPECTS", "DEFAULT_OUT_DIR", "DEFAULT_TIMEOUT_S", "MAX_REFERENCES", "RESOLUTIONS", "ExtendOf",
           "VideoKeywords", "VideoOptions"]
