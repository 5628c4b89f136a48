"""The live view of a ``%%video`` run: a status line and an overview of every job at once (one line each: seat
label, model, state word in its colour, elapsed time, and once saved the clip's length and cost) over tabs (one
per clip, Compare once three clips are saved (``view.video.ComparePane``: all of them in a grid, played in sync),
one per model answering a question, the Answer, the Check, Cost & latency), fed by the run's events; built like
``fusion.view``.

The overview is re-rendered on every event and on every tick of the view's clock (``view.live``): a clip's
job reports on every poll, but a model asked about a video may say nothing for tens of seconds.

Events arrive on the listener's thread (``core.events.OffloadedListener``); widget trait updates from a
thread are fine, Output-widget context managers are not, so every pane is built from ``HTML``, ``Video``
and ``Image`` widgets whose values are set from sanitized fragments. When the run ends the display is
replaced by the static report (``videos.report.html_report``), which a saved notebook shows without widget
state.

    view = VideoView(); view.display()
    listeners.append(OffloadedListener(view.handle))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..core.events import CallDelta, CallFinished, CallStarted, EngineEvent
from ..core.names import seat_labels
from ..core.record import CallRecord
from ..judge.report import verdict_html
from ..present.compare import MIN_CLIPS
from ..present.sanitize import escape_text, render_markdown
from ..present.wording import clip_word, degraded_html
from ..view.live import LiveView
from ..view.overview import Row
from ..view.tabs import LedgerPane, MemberPane, Pane, call_key, figures_html, status_html
from ..view.video import ComparePane, JobLine, VideoPane, call_line, clip_line, overview_html, overview_text
from .events import VideoRunFinished, VideoRunStarted, VideoUpdated
from .frames_check import CHECKER, MEASURES
from .report import degraded_summary, html_report, text_report

if TYPE_CHECKING:

    from .result import Video, VideoResult

__all__ = ["AnswerPane", "CheckPane", "VideoView"]


class VideoView(LiveView):
    """The widget view of one ``%%video`` run, built before the run and fed its events as a listener.

    view = VideoView(); view.display()
    engine_listeners.append(view.handle)
    """

    def __init__(self, *, render_interval: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 tick_s: float = 0.5) -> None:
        super().__init__(render_interval=render_interval, clock=clock, tick_s=tick_s)
        self._calls: dict[object, CallRecord] = {}  # every call seen (clips by label), for the ledger
        self._started_at: float | None = None
        self._asking: dict[str, Row] = {}  # each understander's latest call and when it started, for the overview

        self.run: VideoRunStarted | None = None
        self.result: VideoResult | None = None
        self.stopped = False
        self.clips: dict[str, VideoPane] = {}
        self.compare: ComparePane | None = None  # once MIN_CLIPS clips are saved
        self.understanders: dict[str, MemberPane] = {}
        self.answer: AnswerPane | None = None
        self.check: CheckPane | None = None
        self.ledger_pane = LedgerPane()
        self._finishing = False  # applying the run's final state: the report is built once, after it
        self._build()

    # --- public surface ----------------------------------------------------------------------------

    @property
    def panes(self) -> list[Pane]:
        """Every tab's pane, in tab order."""
        compare = [self.compare] if self.compare is not None else []
        extra = [p for p in (self.answer, self.check) if p is not None]
        return [*self.clips.values(), *compare, *self.understanders.values(), *extra, self.ledger_pane]

    @property
    def finished(self) -> bool:
        return self.result is not None

    def handle(self, event: EngineEvent) -> None:
        """The listener: apply one event to the widgets."""
        with self._lock:
            if not isinstance(event, CallDelta):
                for member in self.understanders.values():
                    member.flush()  # any other event is a natural moment to show text throttling held back
            if isinstance(event, VideoRunStarted):
                self._on_run_started(event)
            elif isinstance(event, VideoUpdated):
                self._on_video(event.video)
            elif isinstance(event, CallStarted):
                self._on_call(event.response, started=True)
            elif isinstance(event, CallDelta):
                pane = self._understander(event.response)
                if pane is not None:
                    pane.delta(event.response, self._clock())
            elif isinstance(event, CallFinished):
                self._on_call(event.response, started=False)
            elif isinstance(event, VideoRunFinished):
                self._on_run_finished(event.result, event.stopped)
            self.status.value = self._status_html()  # traitlets sends it only when it changed

    def text(self) -> str:
        """The plain-text form: the full report once the run finished, else the progress line and the overview
        (a line per job)."""
        with self._lock:
            if self.result is not None:
                return text_report(self.result)
            return "\n".join([self._progress(), *overview_text(self.overview())])

    def overview(self) -> list[JobLine]:
        """Every job of the run as it stands now, one line each: the clips, then the models asked about a video."""
        with self._lock:
            now = self._clock()
            lines = [clip_line(p.video, now) for p in self.clips.values()]
            for key, pane in self.understanders.items():
                lines.append(call_line(self._asking.get(key) or Row.queued(pane.title, pane.model), now))
            return lines

    @classmethod
    def of(cls, result: VideoResult) -> VideoView:
        """A finished result as a view, built by replaying it as events (the same path as live)."""
        view = cls(render_interval=0.0, tick_s=0.0)
        check = result.checks[0].model if result.checks else None
        view.handle(VideoRunStarted(result.prompt, tuple(result.videos), tuple(r.model for r in result.answers),
                                    result.source, check))
        for video in result.videos:
            view.handle(VideoUpdated(video))
        for r in [*result.answers, *result.checks, *result.judge_calls]:
            view.handle(CallStarted(r))
            view.handle(CallFinished(r))
        view.handle(VideoRunFinished(result))
        return view

    def _build_report(self) -> tuple[str, str] | None:
        return None if self.result is None else (html_report(self.result), text_report(self.result))

    def _tick(self, now: float) -> None:
        if self.result is None:
            if self._ledger_dirty and self._showing(self.ledger_pane):
                # Only while the reader looks at it: a table built mid-run competes with the jobs for the CPU.
                self._refresh_ledger()
            self.status.value = self._status_html()

    def __repr__(self) -> str:
        return self._progress() if self.result is None else self.result.summary()

    # --- events --------------------------------------------------------------------------------------

    def _on_run_started(self, event: VideoRunStarted) -> None:
        self.run = event
        self._started_at = self._clock()
        self._start_clock()
        for video in event.videos:
            self._clip(video)
        titles = _short_names(event.understand)
        for model in event.understand:
            if model not in self.understanders:
                self.understanders[model] = MemberPane(titles[model], model, interval=self.render_interval)
        if event.understand:
            self.answer = AnswerPane()
        if event.check:
            self.check = CheckPane(event.check)
        self._relayout()

    def _on_video(self, video: Video) -> None:
        self._clip(video).update(video)
        self._refresh_compare()
        if video.record.call_id:  # numbered when submitted, as in VideoResult.calls
            self._calls[("clip", video.label)] = video.record
            if video.final:
                self._ledger_changed()
        if self.check is not None:
            self.check.show(self._videos())

    def _on_call(self, r: CallRecord, *, started: bool) -> None:
        self._calls[call_key(r)] = r
        if r.role == "judge" and self.answer is not None:
            self.answer.judge_call(r)
        elif r.role == "check" and self.check is not None:
            self.check.call(r)
            self.check.show(self._videos())
        else:
            pane = self._understander(r)
            if pane is not None:
                (pane.start if started else pane.finish)(r)
                self._asked(r)
        if not started:
            self._ledger_changed()

    def _on_run_finished(self, result: VideoResult, stopped: bool) -> None:
        self._stop_clock()
        self.result, self.stopped = result, stopped
        self._report_shown = None
        # Whatever the events missed, the result holds the final state.
        self._finishing = True
        try:
            for video in result.videos:
                self._on_video(video)
        finally:
            self._finishing = False
        for r in [*result.answers, *result.checks, *result.judge_calls]:
            self._calls[call_key(r)] = r
            pane = self._understander(r)
            if pane is not None:
                pane.finish(r)
                self._asked(r)
        if self.answer is not None:
            self.answer.show_result(result)
        self._refresh_ledger()
        self._update_display()
        self._release_when_idle()

    # --- helpers -------------------------------------------------------------------------------------

    def _clip(self, video: Video) -> VideoPane:
        pane = self.clips.get(video.label)
        if pane is None:
            pane = self.clips[video.label] = VideoPane(video, clock=self._clock)
            self._relayout()
        return pane

    def _refresh_compare(self) -> None:
        """The Compare tab, after the clips' tabs, once ``MIN_CLIPS`` clips are saved; its figures follow theirs."""
        panes = list(self.clips.values())
        if sum(p.video.ok for p in panes) < MIN_CLIPS:
            if self.compare is not None:  # a saved clip is never unsaved; should one be, the grid goes
                self.compare = None
                self._relayout()
            return
        if self.compare is None:
            self.compare = ComparePane()
            self.compare.show(panes)
            self._relayout()
        else:
            self.compare.show(panes)

    def _understander(self, r: CallRecord) -> MemberPane | None:
        if r.role != "understand":
            return None
        key = r.label if r.label in self.understanders else r.model
        pane = self.understanders.get(key)
        if pane is None:
            pane = self.understanders[key] = MemberPane(key, r.model, interval=self.render_interval)
            self._relayout()
        return pane

    def _asked(self, r: CallRecord) -> None:
        """Keep an understander's latest call, and when this view saw it start, for its overview line."""
        key = r.label if r.label in self.understanders else r.model
        row = self._asking.get(key)
        if row is None or call_key(row.response) != call_key(r):
            pane = self.understanders.get(key)
            row = self._asking[key] = Row(pane.title if pane else r.label or r.model, r.model, r,
                                          started=self._clock())
        row.response = r

    def _videos(self) -> list[Video]:
        return [p.video for p in self.clips.values()]

    def _running_calls(self) -> bool:
        return any(r.state.is_running for r in self._calls.values())

    def _ledger_changed(self) -> None:
        self._ledger_dirty = True
        if self.result is not None and not self._finishing:
            # A call that ended after the run: the ledger and the saved report include it.
            self._refresh_ledger()
            self._report_shown = None
            self._update_display()
            self._release_when_idle()

    def _refresh_ledger(self) -> None:
        self._ledger_dirty = False
        # A clip's record may also have come as a call event: count each record once.
        unique = {id(r): r for r in self._calls.values()}
        self.ledger_pane.refresh(unique.values())

    def _progress(self) -> str:
        if self.run is None:
            return "fusion_magic: waiting for the video run to start"
        parts = []
        videos = self._videos()
        if videos:
            ready = sum(v.ok for v in videos)
            parts.append(f"{ready} of {len(videos)} clip{'s' if len(videos) != 1 else ''} ready")
            waiting = [clip_word(v.state) for v in videos if not v.final]
            if waiting:
                parts.append(", ".join(f"{waiting.count(s)} {s}" for s in dict.fromkeys(waiting)))
        if self.understanders:
            done = sum(not p.running for p in self.understanders.values())
            parts.append(f"{done} of {len(self.understanders)} answers in")
        if self._started_at is not None:
            parts.append(f"{self._clock() - self._started_at:.0f} s")
        return "fusion_magic: " + " · ".join(parts)

    def _status_html(self) -> str:
        jobs = overview_html(self.overview())
        r = self.result
        if r is None:
            return f"<p><i>{escape_text(self._progress())}</i></p>{jobs}"
        parts = [f"{'stopped after' if self.stopped else 'done in'} {r.wall_s:.1f} s"]
        if r.videos:
            parts.append(f"{sum(v.ok for v in r.videos)} of {len(r.videos)} clips saved")
        if r.answers:
            parts.append(f"{sum(a.ok for a in r.answers)} of {len(r.answers)} answers")
        if r.best is not None:
            parts.append(f"{r.best.best_words}: {r.best.label}")
        degraded = degraded_summary(r)
        extra = f"<br>{degraded_html(degraded, 'span')}" if degraded else ""
        return f"<p><b>{escape_text(' · '.join(parts))}</b>{extra}</p>{jobs}"


class AnswerPane(Pane):
    """The answer to the question: a placeholder while the models answer, the judge's state while it
    fuses, then the answer (Markdown, sanitized) and the verdict.

    pane = AnswerPane()
    pane.judge_call(r); pane.show_result(result)
    """

    PLACEHOLDER = "<p><i>waiting for the answers…</i></p>"

    def __init__(self) -> None:
        self.info = widgets.HTML("")
        self.html = widgets.HTML(self.PLACEHOLDER)
        self.text: str | None = None
        super().__init__("Answer", widgets.VBox(children=(self.info, self.html)))

    def judge_call(self, r: CallRecord) -> None:
        self.info.value = f"<p><b>judge</b> <code>{escape_text(r.model)}</code> · {status_html(r)}{figures_html(r)}</p>"

    def show_result(self, result: VideoResult) -> None:
        self.text = result.answer
        body = render_markdown(result.answer or "") or "<p><i>(no answer)</i></p>"
        if result.verdict is not None:
            judge = result.judge_calls[0].model if result.judge_calls else None
            body += "<hr><h4>Verdict</h4>" + verdict_html(result.verdict, judge)
        self.html.value = body


class CheckPane(Pane):
    """The check of each saved clip: a model's score out of 10, or with ``local:frames`` the spec checks
    passed (a "Spec check" tab that never calls them a score); the reasons, the best one marked; and the calls.

    pane = CheckPane("gemini:gemini-2.5-flash")
    pane.call(r); pane.show(videos)
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.spec = model == CHECKER
        self.calls: dict[object, CallRecord] = {}
        self.html = widgets.HTML()
        super().__init__("Spec check" if self.spec else "Check", self.html)
        self.show(())

    def call(self, r: CallRecord) -> None:
        self.calls[call_key(r)] = r

    def show(self, videos: Iterable[Video]) -> None:
        rows = []
        for v in videos:
            words = v.check_words()
            if words is not None:
                best = f" <b>({escape_text(v.best_words)})</b>" if v.best else ""
                reasons = f"<br><small>{escape_text(v.score_reasons)}</small>" if v.score_reasons else ""
                rows.append(f"<li><b>{escape_text(v.label)}</b>: {escape_text(words)}{best}{reasons}</li>")
            else:
                word = ("not checked" if self.spec else "not scored") if v.final else "waiting for the clip"
                rows.append(f"<li><b>{escape_text(v.label)}</b>: <i>{word}</i></li>")
        calls = "".join(f"<li><code>{escape_text(r.model)}</code> · {status_html(r)}{figures_html(r)}</li>"
                        for r in self.calls.values())
        measures = f": {escape_text(MEASURES)}" if self.spec else ""
        self.html.value = (f"<p>checked by <code>{escape_text(self.model)}</code>{measures}</p><ul>{''.join(rows)}</ul>"
                           + (f"<p>calls</p><ul>{calls}</ul>" if calls else ""))


def _short_names(models: Iterable[str]) -> dict[str, str]:
    """Each model's tab title (``core.names.seat_labels``): the short name, or the whole id where two would
    read the same."""
    models = list(dict.fromkeys(models))
    return dict(zip(models, seat_labels(models), strict=True))
