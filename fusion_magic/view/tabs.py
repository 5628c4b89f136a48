"""The tabs of a fused run's view. Each is a small class around one ``body`` widget, so a new kind of tab
(a video clip, a frame strip) is one more subclass handed to ``FusionView.add_pane``.

Every model-written string reaches a widget only through ``sanitize``: JupyterLab runs scripts found in
an ``ipywidgets.HTML`` value.

    pane = MemberPane("gpt-4o", "openai:gpt-4o")
    pane.start(response); pane.delta(response, now); pane.finish(response)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..core.ledger import ledger_with_totals
from ..core.record import CallRecord
from ..present.fold import block_boundary
from ..present.ledger_table import figures, ledger_html
from ..present.sanitize import escape_text, render_markdown
from ..present.wording import colour, status_word

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from ..core.record import Response

CallKey = tuple[int, str, str | None, int, int, str]


def call_key(r: Response) -> CallKey:
    """Identify one call. ``call_id`` alone would do if every engine path numbered its calls; the rest
    keeps two un-numbered calls (ids left at 0) from landing in the same section."""
    return (r.call_id, r.role, r.label, r.round, r.ordering, r.model)


def word_html(word: str, shade: str) -> str:
    """A state word in its colour, bold: how every view shows where a call or a job stands."""
    return f'<span style="color:{shade};font-weight:bold">{escape_text(word)}</span>'


def status_html(r: Response) -> str:
    """``r``'s status word in its colour (``done``, ``waiting for the first token``, ``late, done`` ...)."""
    return word_html(status_word(r), colour(r))


def close_tree(widget: widgets.Widget, *, children: bool = True) -> None:
    """Close ``widget``, its ``layout`` and ``style`` (``Widget.close`` leaves both open), and with ``children``
    everything below it."""
    stack, seen = [widget], set()
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        stack.extend(sub for sub in (getattr(w, "layout", None), getattr(w, "style", None))
                     if isinstance(sub, widgets.Widget))
        if children:
            stack.extend(getattr(w, "children", ()))
        w.close()


class Pane:
    """One tab: a title and the widget shown under it. Subclass it to add a kind of tab.

    pane = Pane("Notes", widgets.HTML("<p>notes</p>"))
    view.add_pane(pane)
    """

    def __init__(self, title: str, body: widgets.Widget) -> None:
        self.title = title
        self.body = body


class Throttled:
    """Re-render at most once per ``interval`` seconds; ``flush`` renders whatever is pending.

    Deltas can arrive hundreds of times a second across a pool, and each render sends a comm message;
    a few renders a second per call look just as live.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last: float | None = None
        self.dirty = False

    def due(self, now: float) -> bool:
        self.dirty = True
        return self.last is None or now - self.last >= self.interval

    def rendered(self, now: float | None) -> None:
        self.dirty = False
        if now is not None:
            self.last = now


class MarkdownStream:
    """Growing Markdown shown live: finished blocks are frozen into their own HTML widget, rendered and
    sent once; only the tail is re-rendered. A whole-text re-render on every update would cost
    O(length) in CPU on the engine thread and in comm bytes (a widget value is resent whole), so
    O(length²) over an answer; with frozen chunks each update costs O(chunk).

    stream = MarkdownStream(); box.children = (stream.body,)
    stream.show(text); stream.show(text, final=True)
    """

    def __init__(self, chunk_chars: int = 2000) -> None:
        self.chunk_chars = chunk_chars
        self.tail = widgets.HTML()
        self.body = widgets.VBox(children=(self.tail,))
        self._frozen: list[widgets.HTML] = []
        self._frozen_text = ""

    @property
    def html(self) -> str:
        """Everything shown, as one HTML string."""
        return "".join(w.value for w in (*self._frozen, self.tail))

    def show(self, text: str, *, final: bool = False, placeholder: str = "") -> None:
        if final or not text.startswith(self._frozen_text):
            # The final render is one piece so Markdown spanning chunks (loose lists, references)
            # comes out exact; a text that changed under us (a retried call) starts over.
            self._reset()
        if not final:
            self._freeze(text[len(self._frozen_text) :])
        tail = text[len(self._frozen_text) :]
        self.tail.value = render_markdown(tail) or ("" if self._frozen else placeholder)

    def _freeze(self, tail: str) -> None:
        if len(tail) <= self.chunk_chars:
            return
        cut = block_boundary(tail, before_end=True)
        if cut <= 0 and len(tail) > 4 * self.chunk_chars:
            cut = block_boundary(tail, any_line=True, before_end=True)
        if cut <= 0:
            return
        chunk = widgets.HTML(render_markdown(tail[:cut]))
        self._frozen.append(chunk)
        self._frozen_text += tail[:cut]
        self.body.children = (*self._frozen, self.tail)

    def _reset(self) -> None:
        if self._frozen:
            dropped, self._frozen = self._frozen, []
            self._frozen_text = ""
            self.body.children = (self.tail,)
            for chunk in dropped:
                close_tree(chunk)  # off the page now: its comm and registry entry go too


@dataclass
class Section:
    """One call's part of a tab: a heading line and the text."""

    response: Response
    heading: widgets.HTML
    text: widgets.HTML
    throttle: Throttled
    finished: bool = False
    stream: MarkdownStream | None = None


class StreamingPane(Pane):
    """A tab whose calls stream into sections: re-rendered at most every ``interval`` while text
    arrives, always in full when a call finishes or on ``flush``. Subclasses provide ``_section`` and
    ``_render``."""

    sections: dict[CallKey, Section]

    def _section(self, r: Response) -> Section:
        raise NotImplementedError

    def _render(self, r: Response, now: float | None) -> None:
        raise NotImplementedError

    def delta(self, r: Response, now: float) -> None:
        if self._section(r).throttle.due(now):
            self._render(r, now)

    def finish(self, r: Response) -> None:
        self._section(r).finished = True
        self._render(r, None)

    def flush(self) -> None:
        for section in self.sections.values():
            if section.throttle.dirty:
                self._render(section.response, None)


class MemberPane(StreamingPane):
    """A pool member's tab: a status header, then its text streaming live; debate rounds stack below.

    pane = MemberPane("gemma3-270m #2", "local:gemma3-270m")
    pane.start(r); pane.delta(r, time.monotonic()); pane.finish(r)
    """

    def __init__(self, label: str, model: str, *, interval: float = 0.1) -> None:
        self.label = label
        self.model = model
        self.interval = interval
        self.header = widgets.HTML(self._header_html(None))
        self.sections: dict[CallKey, Section] = {}
        super().__init__(label, widgets.VBox(children=(self.header,)))

    @property
    def status(self) -> str:
        """The latest call's status word; ``queued`` before any call started."""
        latest = self._latest()
        return "queued" if latest is None else status_word(latest.response)

    @property
    def running(self) -> bool:
        """True until the latest call finished (queued, waiting for its first token, or streaming)."""
        latest = self._latest()
        return latest is None or latest.response.state.is_running

    @property
    def text(self) -> str:
        """The latest call's raw text (what the model wrote, unsanitized: for tests and code, not HTML)."""
        latest = self._latest()
        return "" if latest is None else latest.response.text

    def start(self, r: Response) -> None:
        self._section(r)
        self._render(r, None)

    def _latest(self) -> Section | None:
        return next(reversed(self.sections.values()), None)

    def _section(self, r: Response) -> Section:
        key = call_key(r)
        section = self.sections.get(key)
        if section is None:
            stream = MarkdownStream()
            section = Section(r, widgets.HTML(), stream.tail, Throttled(self.interval), stream=stream)
            self.sections[key] = section
            self._relayout()
        section.response = r
        return section

    def _relayout(self) -> None:
        children: list[widgets.Widget] = [self.header]
        several = len(self.sections) > 1
        for section in self.sections.values():
            if several:
                # The heading appears for every round once a second one exists, so round 0 gets one too.
                self._render_heading(section, several=True)
                children.append(section.heading)
            children.append(section.stream.body if section.stream else section.text)
        self.body.children = tuple(children)

    def _render(self, r: Response, now: float | None) -> None:
        section = self.sections[call_key(r)]
        if section.stream is not None:
            section.stream.show(r.text, final=section.finished, placeholder=_placeholder(r))
        section.throttle.rendered(now)
        self._render_heading(section, several=len(self.sections) > 1)
        if section is self._latest():
            self.header.value = self._header_html(r)

    def _render_heading(self, section: Section, *, several: bool) -> None:
        if not several:
            return
        r = section.response
        section.heading.value = f"<h4>Round {r.round}</h4><p>{status_html(r)}{figures_html(r)}</p>"

    def _header_html(self, r: Response | None) -> str:
        status = status_html(r if r is not None else CallRecord(model=self.model, status="queued"))
        figs = "" if r is None else figures_html(r)
        return f"<p><b>{escape_text(self.label)}</b> · <code>{escape_text(self.model)}</code> · {status}{figs}</p>"


def figures_html(r: Response) -> str:
    """Tokens, time and cost once a call has any to show: a call still waiting has only question marks."""
    return "" if r.state.is_running and not r.text else f" · {escape_text(figures(r))}"


def _placeholder(r: Response) -> str:
    """What a member's text area says before any text: never "(no text)" for a call still running."""
    if r.state.is_running:
        return f"<p><i>{escape_text(status_word(r))}…</i></p>"
    return "<p><i>(no text)</i></p>"


class LedgerPane(Pane):
    """The cost and latency table with its totals row, refreshed as calls finish.

    pane = LedgerPane()
    pane.refresh(calls, wall_s=3.2); pane.frame
    """

    def __init__(self) -> None:
        self.html = widgets.HTML("<p><i>no calls yet</i></p>")
        self.frame: pd.DataFrame | None = None
        super().__init__("Cost & latency", self.html)

    def refresh(self, calls: Iterable[Response], wall_s: float | None = None) -> None:
        # Rows in call order: the engine numbers calls as they start.
        frame = ledger_with_totals(sorted(calls, key=lambda r: r.call_id), wall_s)
        self.frame = frame
        self.html.value = ledger_html(frame)
