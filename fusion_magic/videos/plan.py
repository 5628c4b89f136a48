"""Plan a ``%%video`` run before anything is paid: resolve every model and key, check every file and
option, price the run and hold it to ``--budget``.

Everything a user can get wrong fails here as one ``ConfigError`` line and costs no network call: a missing
or non-video file, an ``--out-dir`` outside the working folder, an unknown video model, a value the model
never accepts, a budget below the estimate, an ``--extend`` by a model that cannot extend.

    options = VideoOptions(models=("gemini:veo-3.1-fast-generate-preview",), seconds=4)
    plan = plan_video("a paper boat in the rain", Settings(), options)
    plan.estimate_usd
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..calls.call import Target, prepare
from ..calls.settings import ANSWER_MODES, Settings
from ..core.errors import BudgetError, ConfigError
from ..core.mime import FRAME_TYPES, sniff_file
from ..core.names import seat_labels, short_name
from ..core.pricing import Price, price_for
from ..providers.registry import PROTOCOLS, provider_class, provider_spec
from ..providers.video import Task, is_omni, video_protocol
from ..providers.video.base import VideoRequest, VideoSource
from ..providers.video.veo import CURRENT_MODELS, MAX_EXTEND_INPUT_S
from . import sidecar
from .options import ExtendOf, VideoOptions
from .result import VideoResult

FRAMES = "local:frames"
# Seconds a model makes when none is asked for, for the estimate (the providers' documented defaults).
DEFAULT_SECONDS = {"veo": 8, "interactions": 6, "fal": 5}
DEFAULT_OMNI = "gemini:gemini-omni-1.2-flash"
DEFAULT_UNDERSTAND = "gemini:gemini-2.5-flash"
DEFAULT_FAL = "fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video"


@dataclass(frozen=True)
class ClipPlan:
    """One clip to generate: the model, its resolved target, the request, and where its files go."""

    model_id: str
    label: str
    target: Target
    request: VideoRequest
    key: str  # sidecar.request_key: the same request finds its earlier job
    stem: str
    price: Price | None
    estimate_usd: float | None
    notes: tuple[str, ...] = ()
    # What the clip is billed for when that is not its length (a Veo extension: the 7 s it adds, not the whole
    # clip it returns); None: its length.
    billed_seconds: int | None = None


@dataclass(frozen=True)
class Asker:
    """A model that watches a video: answers the question (``--understand``) or checks a clip (``--check``).
    ``target`` is None for ``local:frames`` (no provider: PyAV in a child process)."""

    model_id: str
    label: str
    target: Target | None

    @property
    def offline(self) -> bool:
        return self.target is None


@dataclass(frozen=True)
class VideoPlan:
    """A checked run: nothing in it can fail for a reason the user could have fixed first."""

    prompt: str
    options: VideoOptions
    settings: Settings
    out_dir: Path
    clips: tuple[ClipPlan, ...] = ()
    askers: tuple[Asker, ...] = ()
    source: VideoSource | None = None
    check: Asker | None = None
    judge: str = "vote"
    mode: str = "best-of"
    estimate_usd: float | None = 0.0
    notes: tuple[str, ...] = ()


def plan_video(prompt: str, settings: Settings, options: VideoOptions) -> VideoPlan:
    """Check and resolve one run; ``ConfigError``/``BudgetError`` with one line, nothing sent."""
    prompt = prompt.strip()
    if not prompt:
        what = "the question about the video" if options.understand else "what to generate"
        raise ConfigError(f"%%video needs a prompt in the cell body: {what}")
    out_dir = _out_dir(options.out_dir)
    needs_key = not options.estimate
    settings = with_provider_prices(settings, options.models)
    notes: list[str] = []
    if options.understand is not None:
        source = _source(options)
        models = options.models or (DEFAULT_UNDERSTAND if settings.has_key("gemini") else FRAMES,)
        askers = tuple(_asker(m, settings, needs_key, source) for m in _unique(models))
        clipped = source.start_s is not None or source.end_s is not None or source.fps is not None
        notes.extend(f"{a.model_id}: --start/--end/--fps are not sent (Omni's video input has no such fields); "
                     "it watches the whole video" for a in askers
                     if clipped and a.target is not None and a.target.spec.protocol == "interactions")
        if options.budget:
            notes.append("questions are billed per token (about 300 tokens per second of video for Gemini); "
                         "--budget covers generation only")
        judge = options.judge or settings.judge or "vote"
        if judge != "vote":
            prepare(judge, settings, require_key=needs_key)  # a bad judge id: one line now, not after the answers
        mode = options.mode or settings.mode
        if len(askers) > 1 and mode not in ANSWER_MODES:
            raise ConfigError(f"the session's mode is {mode} (%config FusionMagics.mode), which asks models to revise "
                              f"their answers; answers about a video are fused with --mode "
                              f"{' or '.join(ANSWER_MODES)}")
        plan = VideoPlan(prompt, options, settings, out_dir, askers=askers, source=source, judge=judge,
                         mode=mode, estimate_usd=None, notes=tuple(notes))
        return plan
    models = options.models or _default_generators(settings, options)
    image = _image(options.image)
    last_frame = _image(options.last_frame, "--last-frame")
    references = tuple(_image(Path(r), "--reference") for r in options.references)
    if options.extend_of is not None:
        _check_extend_input(options.extend_of)
    clips: list[ClipPlan] = []
    labels = tab_labels(models)
    for n, (model_id, label) in enumerate(zip(models, labels, strict=True)):
        seat = models[:n].count(model_id)  # the same model twice: two clips, two sidecars
        clips.append(_clip(model_id, label, prompt, (image, last_frame), settings, options, needs_key, seat,
                           references=tuple(r for r in references if r is not None)))
    check = None
    if options.check:
        check = _asker(options.check, settings, needs_key, None)
    estimate = _total(clips)
    if options.budget is not None:
        unknown = [c.model_id for c in clips if c.estimate_usd is None]
        if unknown:
            raise ConfigError(f"--budget: the price of {', '.join(unknown)} is unknown, so the cap cannot be "
                              "enforced; set %config VideoMagics.prices = {'MODEL': USD_PER_SECOND} or drop --budget")
        assert estimate is not None
        if estimate > options.budget:
            raise BudgetError(f"the estimate ${estimate:.2f} is above --budget ${options.budget:.2f}; nothing was "
                              "submitted (fewer models, fewer seconds or a cheaper model)")
    if check is not None and not check.offline:
        notes.append(f"the check by {check.model_id} is billed per token and is not in the estimate")
    for clip in clips:
        notes.extend(clip.notes)
    return VideoPlan(prompt, options, settings, out_dir, clips=tuple(clips), check=check,
                     estimate_usd=estimate, notes=tuple(dict.fromkeys(notes)))


def with_provider_prices(settings: Settings, models: tuple[str, ...]) -> Settings:
    """Prices a protocol keeps per model id (fal's per endpoint, Runway's and OpenRouter's per full id), under the
    user's own: every later step (the estimate, the ledger) prices through ``settings.prices``. A model's protocol
    is its video protocol (OpenRouter's chat key speaks ``openrouter_video`` for a clip)."""
    found: dict[str, Price] = {}
    protocols: set[str] = set()
    for model_id in (*models, DEFAULT_FAL):
        provider, _, model = model_id.partition(":")
        spec = provider_spec(provider)  # a plugin's unit prices count too
        if spec is None:
            continue
        try:
            protocols.add(video_protocol(provider, model, "generate"))
        except ConfigError:
            protocols.add(spec.protocol)
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            continue
        table = getattr(PROTOCOLS.provider_class(protocol), "unit_prices", None)
        if table is not None:
            found.update(table())
    return settings.with_(prices={**found, **settings.prices}) if found else settings


def _default_generators(settings: Settings, options: VideoOptions) -> tuple[str, ...]:
    if options.edit_of is not None:
        return (options.edit_of[0],)
    if options.extend_of is not None:
        return (options.extend_of.model,)
    if settings.has_key("gemini"):
        return (DEFAULT_OMNI,)
    if settings.has_key("fal"):
        return (DEFAULT_FAL,)
    raise ConfigError("%%video needs a video model: set GEMINI_API_KEY (Omni, Veo) or FAL_KEY and pass -m MODEL; "
                      "offline, ask about a video with --understand FILE -m local:frames")


def _clip(model_id: str, label: str, prompt: str, frames: tuple[Path | None, Path | None], settings: Settings,
          options: VideoOptions, needs_key: bool, seat: int = 0, references: tuple[Path, ...] = ()) -> ClipPlan:
    target = _target(model_id, settings, needs_key, "generate")
    previous = None
    if options.edit_of is not None:
        edit_model, previous = options.edit_of
        # Omni revises through previous_interaction_id, OpenRouter's video models through previous_job_id (the
        # same model only); the model's own table says whether it can.
        same_openrouter = target.spec.protocol == "openrouter_video" and edit_model == model_id
        if not (is_omni(target.model) or same_openrouter):
            raise ConfigError(f"--edit revises a clip through Omni's previous_interaction_id or OpenRouter's "
                              f"previous_job_id on the model that made it; {model_id} cannot (the clip was made by "
                              f"{edit_model}): use -m {edit_model} or drop --edit")
    extend = options.extend_of
    if extend is not None and target.spec.protocol != "veo":
        raise ConfigError(f"--extend continues a Veo clip through Veo's video.uri; {model_id} cannot (the clip was "
                          f"made by {extend.model}): use -m {extend.model} or drop --extend")
    image, last_frame = frames
    request = VideoRequest(model=target.model, prompt=prompt, seconds=options.seconds, aspect=options.aspect,
                           resolution=options.resolution.lower() if options.resolution else None,
                           negative=options.negative, image=image, previous_job=previous, last_frame=last_frame,
                           extend_uri=extend.uri if extend is not None else None, references=references)
    cls = provider_class(target.spec)
    notes = tuple(f"{model_id}: {note}" for note in cls.check_request(request))
    key = sidecar.request_key(model_id, request, seat)
    price = price_for(model_id, settings.prices, resolution=request.resolution)
    billing = getattr(cls, "billed_seconds", None)
    billed: int | None = billing(request) if billing is not None else None
    seconds = billed or request.seconds or default_seconds(target, request.model)
    estimate = None if price is None else price.cost(video_seconds=seconds, clips=1)
    return ClipPlan(model_id, label, target, request, key, sidecar.clip_stem(prompt, model_id, key), price,
                    estimate, notes, billed)


def extension_source(result: VideoResult) -> ExtendOf:
    """What ``--extend`` continues in ``result``: its best clip, else its first finished one, that a Veo model
    made, with the URI Veo's operation named for it (kept in the clip's sidecar). ``ConfigError`` with one line
    saying what to do when there is none."""
    clips = [result.best] if result.best is not None else []
    clips += [v for v in result.videos if v.ok]
    clip = next((v for v in clips if v is not None and v.ok and _made_by_veo(v.model)), None)
    if clip is None:
        made = ", ".join(dict.fromkeys(v.model for v in result.videos)) or "none"
        raise ConfigError("--extend continues a clip made by a Gemini Veo model (%%video -m "
                          f"gemini:{CURRENT_MODELS[-1]} first); this result has no finished one (its clips: "
                          f"{made}; an Omni clip is revised with --edit)")
    side = sidecar.read(clip.sidecar) if clip.sidecar is not None else None
    name = clip.path.name if clip.path is not None else clip.model
    if side is None or not side.clip_uri:
        raise ConfigError(f"--extend: {name} has no Veo URI in its sidecar (it came back inline, or was saved "
                          "before URIs were kept), and Veo extends only a URI it returned: make it again with --new")
    seconds = clip.seconds if clip.seconds is not None else side.seconds
    return ExtendOf(model=clip.model, uri=side.clip_uri, seconds=seconds, file=name)


def _made_by_veo(model_id: str) -> bool:
    provider, _, model = model_id.partition(":")
    try:
        return video_protocol(provider, model, "generate") == "veo"
    except ConfigError:
        return False


def _check_extend_input(extend: ExtendOf) -> None:
    """Veo extends a clip of at most 141 s (§2.3): a longer one is refused here, not after a paid submit."""
    if extend.seconds is not None and extend.seconds > MAX_EXTEND_INPUT_S:
        raise ConfigError(f"--extend: Veo extends clips of up to {MAX_EXTEND_INPUT_S:g} s; "
                          f"{extend.file or 'this clip'} is {extend.seconds:g} s")


def default_seconds(target: Target, model: str) -> int:
    """The length a model makes when none is asked for: the protocol's own figure for the model (fal's
    table), else the provider's documented default."""
    own = getattr(provider_class(target.spec), "default_seconds", None)
    seconds = own(model) if own is not None else None
    return seconds or DEFAULT_SECONDS.get(target.spec.protocol, 8)


def _target(model_id: str, settings: Settings, needs_key: bool, task: Task) -> Target:
    # Whether the model can do the task at all is decided before its key is looked up: a model that cannot
    # (Sora, shut down) is one line about that, not a request for a key it would never use.
    unkeyed = prepare(model_id, settings, require_key=False)
    protocol = video_protocol(unkeyed.spec.name, unkeyed.model, task)
    target = prepare(model_id, settings, require_key=needs_key) if needs_key else unkeyed
    return replace(target, spec=replace(target.spec, protocol=protocol))


def _asker(model_id: str, settings: Settings, needs_key: bool, source: VideoSource | None) -> Asker:
    model_id = model_id.strip()
    label = short_name(model_id)
    if model_id == FRAMES:
        if source is not None and source.path is None:
            raise ConfigError("local:frames analyses a local file; download the video first or use a Gemini model "
                              "for a URL")
        return Asker(model_id, "frames", None)
    return Asker(model_id, label, _target(model_id, settings, needs_key, "understand"))


def _source(options: VideoOptions) -> VideoSource:
    assert options.understand is not None
    where = options.understand.strip()
    if where.startswith(("http://", "https://")):
        return VideoSource(url=where, start_s=options.start, end_s=options.end, fps=options.fps)
    path = Path(where).expanduser()
    if not path.is_file():
        raise ConfigError(f"--understand: no such file: {where}")
    from .analyse import probe

    problem = probe(path)
    if problem is not None:
        raise ConfigError(f"--understand: {where} is not a video we can read ({problem})")
    mime = sniff_file(path) or ""  # the bytes' type, not the name's (core.mime)
    if not mime.startswith("video/"):  # a container the sniffer does not name (probe read it): MP4's family
        mime = "video/mp4"
    return VideoSource(path=path, mime=mime, start_s=options.start, end_s=options.end, fps=options.fps)


def _image(image: Path | None, flag: str = "--image") -> Path | None:
    if image is None:
        return None
    path = image.expanduser()
    if not path.is_file():
        raise ConfigError(f"{flag}: no such file: {image}")
    if sniff_file(path) not in FRAME_TYPES:
        which = {"--image": "the first frame", "--last-frame": "the last frame"}.get(flag, "a reference")
        raise ConfigError(f"{flag}: {image} is not a PNG or JPEG image ({which} must be one)")
    return path


def _out_dir(out_dir: Path) -> Path:
    """``--out-dir`` resolved, and inside the working folder: a clip is never written somewhere the user
    did not expect (``../../``, an absolute system path)."""
    cwd = Path.cwd().resolve()
    resolved = (cwd / out_dir.expanduser()).resolve()
    if resolved != cwd and cwd not in resolved.parents:
        raise ConfigError(f"--out-dir {out_dir} is outside the working folder {cwd}; use a folder inside it "
                          "(the default is videos/)")
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(f"--out-dir {out_dir} exists and is not a folder")
    # Created only when the first clip arrives; but a folder that cannot be created or written must be
    # refused now, before a job is paid for whose receipt could not be kept.
    existing = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out-dir {out_dir}: cannot write in {existing} (permissions, or a file in the way)")
    return resolved


def tab_labels(models: tuple[str, ...]) -> list[str]:
    """Tab titles (``core.names.seat_labels``): the short name; the whole id where two models share one (two
    fal models both named text-to-video); numbered when a model appears twice."""
    return seat_labels(models)


def _unique(models: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.strip() for m in models))


def _total(clips: list[ClipPlan]) -> float | None:
    if any(c.estimate_usd is None for c in clips):
        return None
    return sum(c.estimate_usd or 0.0 for c in clips)


__all__ = ["FRAMES", "Asker", "ClipPlan", "VideoPlan", "default_seconds", "extension_source",
           "plan_video", "tab_labels", "with_provider_prices"]
