"""The IPython face of video: ``%%video`` (cell) and ``%video list|resume|help`` (line). Thin on purpose:
parse the line, plan and start the run through the api, show the view, wait in the cell (``wait.py``),
return the result.

An interrupt stops waiting, not the paid jobs: it ends in one line saying which clips are still at the
provider and that ``%video resume`` (or the same cell again) fetches them without paying twice.

    %%video -p gemini:gemini-omni-1.2-flash --seconds 6 -o r
    A paper boat drifting down a rainy street
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Dict, Enum
from traitlets.config import Configurable

from ..calls.settings import Settings
from ..videos.options import ExtendOf, VideoOptions
from . import args as _args
from .declared import config_traits, config_values, given_options
from .magics import FusionMagics, friendly_errors, print_notes, widgets_wanted
from .wait import CellInterrupted, in_background, start_then_view, wait_in_cell

if TYPE_CHECKING:
    from ..api import ResumePlan, VideoJob
    from ..core.events import Listener
    from ..videos.plan import VideoPlan
    from ..videos.result import VideoResult

# The api, the video engine, its plans and results are imported inside the methods that use them: %load_ext
# only registers the magics (see magics.py, #22).


class VideoInterrupted(CellInterrupted):
    """A ``%%video`` cell stopped by an interrupt: one line (no traceback) saying what is still at the
    provider; ``partial`` holds what had arrived (``wait.CellInterrupted``)."""


@magics_class
class VideoMagics(Magics, Configurable):
    """Magics for video. Settable with ``%config VideoMagics.NAME = ...``; keys, endpoints, the judge and its
    mode come from ``%config FusionMagics``.

        %config VideoMagics.models = ["gemini:gemini-omni-1.2-flash"]
        %config VideoMagics.prices = {"veo-3.1-generate": 0.40}   # USD per second of video
    """

    shell: Any

    # The run's options that have a session default (declared with config= in videos/options.py): models,
    # out_dir, timeout and poll, generated from their declarations (see FusionMagics).
    locals().update(config_traits(VideoOptions))
    prices = Dict(help="Video prices, USD per second of output: {model: usd}.").tag(config=True)
    view = Enum(["auto", "widgets", "text"], "auto", help="auto: widgets in Jupyter kernels, text elsewhere.").tag(
        config=True)

    def __init__(self, shell: Any) -> None:
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.shell.configurables.append(self)
        self.last: VideoResult | VideoJob | None = None
        self.last_view: Any = None

    def settings(self) -> Settings:
        """The fused run's settings (keys, endpoints, judge, mode, prices), with our per-second prices."""
        from ..core.pricing import Price

        fusion = next((c for c in self.shell.configurables if isinstance(c, FusionMagics)), None)
        base = fusion.settings() if fusion is not None else Settings()
        video_prices: dict[str, Any] = {}
        for model, usd in self.prices.items():
            if not isinstance(usd, int | float) or isinstance(usd, bool) or usd < 0:
                raise UsageError(f"VideoMagics.prices[{model!r}] must be USD per second of video, e.g. 0.40")
            video_prices[str(model)] = Price(per_second=float(usd), source="user price (%config VideoMagics.prices)")
        return base.with_(prices={**base.prices, **video_prices}) if video_prices else base


    @no_var_expand
    @line_cell_magic
    @friendly_errors
    def video(self, line: str, cell: str | None = None) -> Any:
        if cell is None:
            return self._line(line)
        from ..api import plan_video
        from ..videos.estimate import VideoEstimate

        args = _args.parse_video_line(line)
        print_notes(args.notes)
        settings = self.settings()
        given = dict(args.given)
        configured = config_values(self, VideoOptions)
        models = configured.pop("models")
        for name, value in configured.items():
            if value is not None:
                given.setdefault(name, value)
        # The configured pool generates; a question about a video, or a revision, picks its own models.
        revising = args.edit is not None or args.extend is not None
        if models and "models" not in given and "understand" not in given and not revising:
            given["models"] = models
        if args.edit is not None:
            given["edit_of"] = self._edit_of(args.edit)
        if args.extend is not None:
            given["extend_of"] = self._extend_of(args.extend)
        options = VideoOptions.from_keywords(given)  # type: ignore[arg-type]
        body = _args.strip_markers(cell)
        prompt = body if args.no_interpolate else _args.interpolate(body, self.shell.user_ns, note=print)
        plan = plan_video(prompt, settings, options)
        if options.estimate:
            return VideoEstimate.of(plan)
        for note in plan.notes:
            print(note)
        job, listeners = self._start(plan)
        if args.background:
            self.last = job
            in_background(self.shell, job, args.out)
            return None
        return self._wait(job, listeners, args.out)

    def _wait(self, job: VideoJob, listeners: list[Listener], out: str | None) -> VideoResult:
        """Wait in the cell; an interrupt stops waiting, keeps what arrived and says what is still pending."""

        def stopped(seconds: float, finished: bool) -> CellInterrupted:
            partial = job.partial
            assert partial is not None  # start() made it
            if out:
                self.shell.push({out: partial})
            self.last = partial
            return VideoInterrupted(interrupted_line(partial, seconds, out), partial)

        result = wait_in_cell(job, listeners, stopped)
        result._shown_live = self.last_view is not None
        self.last = result
        if out:
            self.shell.push({out: result})
        return result

    def _start(self, plan: VideoPlan | ResumePlan) -> tuple[VideoJob, list[Listener]]:
        """Start ``plan`` with a live view when the frontend has widgets (progress lines on stderr otherwise)."""
        from ..api import start

        self.last_view = None
        if not widgets_wanted(self.shell, self.view):
            from ..videos.progress import ProgressPrinter

            # Called on the engine thread, not offloaded: an event carries the live Video, and a printer
            # running later would read a later state (a short "queued" would never be printed).
            listeners: list[Listener] = [ProgressPrinter(sys.stderr)]
            return start(plan, listeners), listeners
        from ..videos.view import VideoView

        def view() -> Listener:
            self.last_view = VideoView()
            self.last_view.display()
            return self.last_view.handle

        return start_then_view(lambda listeners: start(plan, listeners), view)

    def _result(self, flag: str, name: str) -> VideoResult:
        """The result ``--edit``/``--extend`` works on: variable ``name``'s, or the last one."""
        from ..api import VideoJob
        from ..videos.result import VideoResult

        source = self.shell.user_ns.get(name) if name else self.last
        if isinstance(source, VideoJob) and source.done():
            source = source.result()
        if not isinstance(source, VideoResult):
            where = f"variable {name!r}" if name else "the last %%video result"
            raise UsageError(f"{flag}: {where} is not a finished VideoResult (run %%video -o NAME first)")
        return source

    def _extend_of(self, name: str) -> ExtendOf:
        """The Veo clip ``--extend`` continues: the last result's, or variable ``name``'s."""
        from ..videos.plan import extension_source

        return extension_source(self._result("--extend", name))

    def _edit_of(self, name: str) -> tuple[str, str]:
        """The (model id, job id) of the clip ``--edit`` revises: the last result's, or variable ``name``'s."""
        source = self._result("--edit", name)
        clips = [source.best] if source.best is not None else []
        clips += [v for v in source.videos if v.ok]
        # Omni revises through previous_interaction_id; OpenRouter's video models through previous_job_id.
        editable = ("gemini:gemini-omni", "openrouter:")
        clip = next((v for v in clips if v is not None and v.job_id and v.model.startswith(editable)), None)
        if clip is None or clip.job_id is None:
            raise UsageError("--edit revises a clip made by a Gemini Omni model or an OpenRouter video model (its "
                             "job id); this result has none")
        return clip.model, clip.job_id

    def _line(self, line: str) -> Any:
        command, ns = _args.parse_video_line_magic(line)
        if command == "help":
            print(_args.VIDEO_HELP)
            return None
        from ..api import list_video_models, plan_resume

        if command == "list":
            return list_video_models(self.settings())
        # The line's options over the %config ones; plan_resume checks them as %%video does (-t 0 is refused).
        given = {**config_values(self, VideoOptions), **given_options(ns, VideoOptions)}
        out_dir = given["out_dir"]
        plan = plan_resume(out_dir, self.settings(), timeout=given["timeout"], poll_s=given["poll_s"])
        for line in plan.skipped:
            print(line)
        if not plan.jobs:
            print(f"No pending jobs in {out_dir}/.")
            return None
        return self._wait(*self._start(plan), ns.out)


def interrupted_line(partial: VideoResult, seconds: float, out: str | None) -> str:
    """``fusion_magic: video interrupted after 4.2 s: 1 of 2 clips saved, 1 still at the provider (%video
    resume fetches it without paying again); the partial result is in r``"""
    saved = sum(v.ok for v in partial.videos)
    parts = []
    if partial.videos:
        parts.append(f"{saved} of {len(partial.videos)} clip{'s' if len(partial.videos) != 1 else ''} saved")
    pending = len(partial.pending)
    if pending:
        parts.append(f"{pending} still at the provider (%video resume fetches "
                     f"{'it' if pending == 1 else 'them'} without paying again)")
    if partial.answers:
        parts.append(f"{sum(r.ok for r in partial.answers)} of {len(partial.answers)} answers done")
    kept = f"the partial result is in {out}" if out else "not stored (add -o NAME)"
    return f"fusion_magic: video interrupted after {seconds:.1f} s: {', '.join(parts) or 'nothing done'}; {kept}"


VideoMagics.video.__doc__ = _args.VIDEO_HELP

__all__ = ["VideoInterrupted", "VideoMagics", "interrupted_line"]
