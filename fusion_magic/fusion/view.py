"""The live view of a fused run: a status line over tabs (Overview, Fused, Judge, one per member, Cost &
latency), fed by engine events. Between the status line and the tabs: a follow-up's conversation so far, folded
to one line, and the files this turn attached (thumbnails and chips, ``present.attachments``). It opens on the
overview, where every member streams at once with its live
figures, and moves to the Fused tab when the judge starts (unless the reader chose another tab).

Events arrive on the engine's thread. Widget trait updates from a thread are fine in ipykernel (comm
messages are thread-safe enough, the way ``tqdm.notebook`` animates), but Output-widget context
managers are not, so nothing here uses them: every widget is an ``HTML`` whose value is built from
sanitized fragments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..core.attachment import Attachment
from ..core.events import CallDelta, CallFinished, CallStarted, EngineEvent
from ..present.attachments import Turn, attachments_html, thread_html
from ..present.sanitize import escape_text, render_markdown
from ..present.wording import degraded_html
from ..view.live import LiveView
from ..view.overview import OverviewPane, Row
from ..view.tabs import (
    CallKey,
    LedgerPane,
    MemberPane,
    Pane,
    Section,
    StreamingPane,
    Throttled,
    call_key,
    figures_html,
    status_html,
)
from .events import JudgeStarted, RunFinished, RunStarted, RunStopped, VerdictReady
from .report import degraded_summary, html_report, no_answer_words, text_report, turns_of, verdict_html

if TYPE_CHECKING:

    from ..core.record import Response
    from .result import FusionResult, Verdict

__all__ = ["FusionView"]


class FusionView(LiveView):
    """The widget view of one fused run, built before the run and fed its events as a listener.

    view = FusionView(); view.display()
    engine_listeners.append(view.handle)
    """

    def __init__(self, *, render_interval: float = 0.1, clock: Callable[[], float] = time.monotonic,
                 tick_s: float = 0.5) -> None:
        super().__init__(render_interval=render_interval, clock=clock, tick_s=tick_s)
        self._calls: dict[CallKey, Response] = {}
        self._finished: set[CallKey] = set()
        self._streaming: set[CallKey] = set()  # calls whose first token arrived

        self.run: RunStarted | None = None
        self.stopped: str | None = None
        self.result: FusionResult | None = None
        self.partial: FusionResult | None = None  # what an interrupted run had
        self.overview = OverviewPane(interval=render_interval)
        self.fused = FusedPane()
        self.judge = JudgePane(interval=render_interval)
        self.members: dict[str, MemberPane] = {}
        self.extra: list[Pane] = []
        self.ledger_pane = LedgerPane()
        # The conversation so far and this turn's attachments, above the tabs once the run starts (if any).
        self.context = widgets.HTML("")
        self.turns: list[Turn] = []
        self.attachments: tuple[Attachment, ...] = ()
        self._build()

    # --- public surface ----------------------------------------------------------------------------

    @property
    def panes(self) -> list[Pane]:
        """Every tab's pane, in tab order."""
        return [self.overview, self.fused, self.judge, *self.members.values(), *self.extra, self.ledger_pane]

    @property
    def finished(self) -> bool:
        return self.result is not None

    def add_pane(self, pane: Pane) -> None:
        """Add a tab of another kind (a video, say); it sits after the members, before the ledger."""
        with self._lock:
            self.extra.append(pane)
            self._relayout()

    def handle(self, event: EngineEvent) -> None:
        """The engine listener: apply one event to the widgets."""
        with self._lock:
            if isinstance(event, CallDelta):
                first = call_key(event.response) not in self._streaming
                self._on_delta(event.response)
                if first:
                    # A first token moves a call from waiting to streaming: the status line says so. Only then:
                    # deltas come hundreds of times a second, and the line changes with none of the others.
                    self._streaming.add(call_key(event.response))
                    self.status.value = self._status_html()
                return
            # Anything but a delta is a natural moment to show text that throttling held back.
            self._flush()
            if isinstance(event, RunStarted):
                self._on_run_started(event)
            elif isinstance(event, CallStarted):
                self._on_call_started(event.response)
            elif isinstance(event, CallFinished):
                self._on_call_finished(event.response)
            elif isinstance(event, JudgeStarted):
                self.judge.begin(event.judge, event.mode)
                self.fused.judging(event.judge, event.mode)
                self._show(self.fused)
            elif isinstance(event, VerdictReady):
                self.judge.show_verdict(event.verdict)
                self.fused.show_verdict(event.verdict)
            elif isinstance(event, RunFinished):
                self._on_run_finished(event.result)
            elif isinstance(event, RunStopped):
                self._stop_clock()
                if self._ledger_dirty:
                    self._refresh_ledger()
                self.stopped = event.reason
                self.fused.html.value = f"<p><i>no answer: the run stopped ({escape_text(event.reason)})</i></p>"
                if event.partial is not None:
                    # Interrupted: the saved output becomes the partial run's static report, like a
                    # finished one's, so a reopened notebook never shows a widget it cannot restore.
                    self.partial = event.partial
                    self._report_shown = None
                    self._update_display()
                    self._release_when_idle()
            self.status.value = self._status_html()

    def text(self) -> str:
        """The plain-text form: the full report once the run finished, else a short progress line."""
        with self._lock:
            if self.result is not None:
                return text_report(self.result)
            return self._progress()

    @classmethod
    def of(cls, result: FusionResult) -> FusionView:
        """A finished result as a view, built by replaying its calls as events (same path as live)."""
        view = cls(render_interval=0.0, tick_s=0.0)
        labels = tuple(r.label or r.model for r in result.members)
        models = tuple(r.model for r in result.members)
        earlier = turns_of(result)
        view.handle(RunStarted(result.prompt, result.mode, result.judge, labels, models, result.attachments,
                               tuple((t.prompt, t.answer, t.attachments) for t in earlier)))
        for r in result.calls:
            view.handle(CallStarted(r))
            view.handle(CallFinished(r))
        if result.verdict is not None:
            view.handle(VerdictReady(result.verdict))
        view.handle(RunFinished(result))
        return view

    def _build_report(self) -> tuple[str, str] | None:
        # An interrupted run's output becomes its partial report, like a finished one's.
        done = self.result if self.result is not None else self.partial
        return None if done is None else (html_report(done), text_report(done))

    def __repr__(self) -> str:
        return self._progress() if self.result is None else self.result.summary()

    # --- events --------------------------------------------------------------------------------------

    def show_context(self, attachments: Sequence[Attachment], turns: Sequence[Turn]) -> None:
        """Show ``turns`` (the conversation so far, folded) and ``attachments`` (this turn's) above the tabs."""
        with self._lock:
            self.attachments, self.turns = tuple(attachments), list(turns)
            html = "".join(part for part in (thread_html(self.turns), attachments_html(self.attachments)) if part)
            if html != self.context.value:
                self.context.value = html
            self._restack()

    def _above_tabs(self) -> tuple[widgets.Widget, ...]:
        return (self.context,) if self.context.value else ()

    def _on_run_started(self, event: RunStarted) -> None:
        self.run = event
        self.show_context(event.attachments, [_turn(item) for item in event.thread])
        self.judge.judge, self.judge.mode = event.judge, event.mode
        for label, model in zip(event.labels, event.models, strict=False):
            if label not in self.members:
                self.members[label] = MemberPane(label, model, interval=self.render_interval)
            self.overview.add(label, model)
        self.overview.render(self._clock())
        self._relayout()
        self._start_clock()

    def _on_call_started(self, r: Response) -> None:
        self._calls[call_key(r)] = r
        pane = self._pane_for(r)
        if pane is not None:
            pane.start(r)
            self.overview.started(_row_key(r), r, self._clock())

    def _on_delta(self, r: Response) -> None:
        self._calls.setdefault(call_key(r), r)
        pane = self._pane_for(r)
        if pane is not None:
            now = self._clock()
            pane.delta(r, now)
            if self.overview.delta(_row_key(r), r, now) and r.role == "judge":
                self.fused.judge_progress(self.overview.rows[_row_key(r)], now)

    def _on_call_finished(self, r: Response) -> None:
        self._calls[call_key(r)] = r
        self._finished.add(call_key(r))
        pane = self._pane_for(r)
        if pane is not None:
            pane.finish(r)
            self.overview.finished(_row_key(r), r, self._clock())
        self._ledger_dirty = True
        if self.result is not None:
            # A late member after the run finished: the ledger and the saved report should include it too.
            self._refresh_ledger()
            self._report_shown = None
            self._update_display()
            self._release_when_idle()

    def _on_run_finished(self, result: FusionResult) -> None:
        self._stop_clock()
        self.result = result
        self._report_shown = None
        # Whatever the events missed (a call cancelled before it streamed), the result has final state.
        for r in result.calls:
            key = call_key(r)
            self._calls[key] = r
            pane = self._pane_for(r)
            if pane is None or key in self._finished:
                continue
            if r.state.is_running:
                pane.start(r)  # still running (a late member): keep it live
            else:
                self._finished.add(key)
                pane.finish(r)
                self.overview.finished(_row_key(r), r, self._clock())
        if result.verdict is not None and self.judge.verdict is not result.verdict:
            self.judge.show_verdict(result.verdict)  # only when VerdictReady did not already show it
        self.fused.show_result(result)
        self._refresh_ledger()
        self._update_display()  # handle() redraws the status line after this event, as after any other
        self._release_when_idle()

    # --- helpers -------------------------------------------------------------------------------------

    def _loose_widgets(self) -> tuple[widgets.Widget, ...]:
        headings = (s.heading for pane in self.members.values() for s in pane.sections.values())
        return (self.context, *headings)

    def _running_calls(self) -> bool:
        return any(r.state.is_running for r in self._calls.values())

    def _show(self, pane: Pane) -> None:
        """Select ``pane``'s tab, but only while the reader is on the overview: a tab they chose stays."""
        panes = self.panes
        if pane in panes and self.tab.selected_index in (None, panes.index(self.overview)):
            self.tab.selected_index = panes.index(pane)

    def _tick(self, now: float) -> None:
        if self._ledger_dirty and self.result is None and self._showing(self.ledger_pane):
            # Only while the reader looks at it: a table built mid-run competes with the calls for the CPU.
            self._refresh_ledger()
        if self.result is None and self.stopped is None:
            self.overview.tick(now)
            judge = self.overview.rows.get("judge")
            if judge is not None:
                self.fused.judge_progress(judge, now)

    def _pane_for(self, r: Response) -> MemberPane | JudgePane | None:
        if r.role == "judge":
            return self.judge
        if r.label is None and r.role != "member":
            return None  # another kind of call (a video job): ledger only
        label = r.label or r.model
        pane = self.members.get(label)
        if pane is None:
            pane = self.members[label] = MemberPane(label, r.model, interval=self.render_interval)
            self._relayout()
        return pane

    def _flush(self) -> None:
        self.judge.flush()
        for member in self.members.values():
            member.flush()

    def _refresh_ledger(self) -> None:
        self._ledger_dirty = False
        wall = self.result.wall_s if self.result is not None and self.result.wall_s else None
        self.ledger_pane.refresh(self._calls.values(), wall)

    def _progress(self) -> str:
        if self.run is None:
            return "fusion_magic: waiting for the run to start"
        members = list(self.members.values())
        done = sum(1 for p in members if not p.running)
        streaming = sum(1 for p in members if p.sections and p.status == "streaming")
        now = f", {streaming} streaming" if streaming else ""
        return (
            f"fusion_magic: {self.run.mode}, judge {self.run.judge}: "
            f"{done}/{len(self.run.labels)} answers in{now}, judge {self.judge.state}"
        )

    def _status_html(self) -> str:
        if self.result is None and self.stopped is not None:
            return f"<p>{degraded_html(f'stopped: {self.stopped}', 'span')}</p>"
        if self.result is not None:
            r = self.result
            line = f"done in {r.wall_s:.2f} s · {r.n_ok}/{len(r.pool)} answers · {r.mode} · judge {r.judge}"
            degraded = degraded_summary(r)
            extra = f"<br>{degraded_html(degraded, 'span')}" if degraded else ""
            return f"<p><b>{escape_text(line)}</b>{extra}</p>"
        return f"<p><i>{escape_text(self._progress())}</i></p>"


def _turn(item: tuple[str, str, tuple[Attachment, ...]]) -> Turn:
    """An earlier turn from ``RunStarted.thread``: (prompt, fused answer, that turn's attachments)."""
    return Turn(*item)


def _row_key(r: Response) -> str:
    """The overview's row for a call: its member's, or the judge's (one per ordering with ``--orders``)."""
    if r.role == "judge":
        return f"judge · order {r.ordering}" if r.ordering else "judge"
    return r.label or r.model


class FusedPane(Pane):
    """The fused answer; a placeholder until the verdict arrives (saying how the judge is doing once it runs).

    pane = FusedPane()
    pane.show_verdict(verdict)
    """

    PLACEHOLDER = "<p><i>waiting for the judge…</i></p>"

    def __init__(self) -> None:
        self.html = widgets.HTML(self.PLACEHOLDER)
        self.answer: str | None = None
        self._judging = "the judge is deciding"
        super().__init__("Fused", self.html)

    def judging(self, judge: str, mode: str) -> None:
        self._judging = f"the judge <code>{escape_text(judge)}</code> is deciding ({escape_text(mode)})"
        if self.answer is None:
            self.html.value = f"<p><i>{self._judging}…</i></p>"

    def judge_progress(self, row: Row, now: float) -> None:
        """The judge's live figures under the placeholder, until the verdict replaces it."""
        if self.answer is not None:
            return
        self.html.value = f"<p><i>{self._judging}… {escape_text(' · '.join(row.figures(now)))}</i></p>"

    def show_verdict(self, verdict: Verdict) -> None:
        self._show(verdict.answer, verdict.mode, verdict.model, verdict)

    def show_result(self, result: FusionResult) -> None:
        self._show(result.answer, result.mode, result.judge, result.verdict)

    def _show(self, answer: str, mode: str, judge: str, verdict: Verdict | None) -> None:
        self.answer = answer
        missing = no_answer_words(verdict) if verdict is not None and verdict.undecided else "the judge gave no answer"
        body = render_markdown(answer) or f"<p><i>({escape_text(missing)})</i></p>"
        self.html.value = (
            f"{body}<hr><p><small>{escape_text(mode)} · judge <code>{escape_text(judge)}</code></small></p>"
        )


class JudgePane(StreamingPane):
    """The judge: who and how, its raw text streaming live (a section per call: one per ordering with
    ``--orders``), then the verdict, the label mapping, position consistency and the analysis ("who said
    what"), all from ``report.verdict_html``.

    pane = JudgePane()
    pane.begin("openai:gpt-4o", "best-of"); pane.show_verdict(verdict)
    """

    def __init__(self, *, interval: float = 0.1) -> None:
        self.interval = interval
        self.info = widgets.HTML("<p><i>the judge starts when the pool is done</i></p>")
        self.decision = widgets.HTML("")
        self.sections: dict[CallKey, Section] = {}
        self.verdict: Verdict | None = None
        self.judge: str | None = None
        self.mode: str | None = None
        self.state = "waiting"
        super().__init__("Judge", widgets.VBox(children=(self.info, self.decision)))

    @property
    def raw(self) -> str:
        """All judge calls' raw text, in order (unsanitized: for tests and code, not HTML)."""
        return "\n".join(s.response.text for s in self.sections.values())

    def begin(self, judge: str, mode: str) -> None:
        self.judge, self.mode = judge, mode
        self.state = "judging"
        self._render_info()

    def start(self, r: Response) -> None:
        self._section(r)
        if self.state == "waiting":
            self.state = "judging"
            self._render_info()
        self._render(r, None)

    def show_verdict(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.judge = self.judge or verdict.model
        self.mode = self.mode or verdict.mode
        self.state = "decided"
        self._render_info()
        self.decision.value = "<h4>Verdict</h4>" + verdict_html(verdict, self.judge)

    def _render_info(self) -> None:
        self.info.value = (
            f"<p><b>judge</b> <code>{escape_text(self.judge or '?')}</code> · "
            f"<b>mode</b> {escape_text(self.mode or '?')} · {escape_text(self.state)}</p>"
        )

    def _section(self, r: Response) -> Section:
        key = call_key(r)
        section = self.sections.get(key)
        if section is None:
            section = Section(r, widgets.HTML(), widgets.HTML(), Throttled(self.interval))
            self.sections[key] = section
            children: list[widgets.Widget] = [self.info, self.decision]
            for s in self.sections.values():
                children += [s.heading, s.text]
            self.body.children = tuple(children)
        section.response = r
        return section

    def _render(self, r: Response, now: float | None) -> None:
        section = self.sections[call_key(r)]
        # With --orders each ordering's call has its own section, numbered by its ordering.
        order = f" · order {r.ordering}" if r.ordering else ""
        section.heading.value = (
            f"<p><b>raw judge output</b>{order} <code>{escape_text(r.model)}</code> · "
            f"{status_html(r)}{figures_html(r)}</p>"
        )
        # Raw, not rendered: this is the judge's working text (often JSON), shown as written.
        section.text.value = f'<pre style="white-space:pre-wrap">{escape_text(r.text)}</pre>' if r.text else ""
        section.throttle.rendered(now)
