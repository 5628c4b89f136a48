"""One generated clip as a tab: where its job stands, then the player, a filmstrip of keyframes, a link to
the file, its measured figures and what its check found (a model's score, or local:frames' spec checks).
And the overview of a whole run: one line per job (``JobLine``), every job at once. And, once three clips are
saved, the Compare tab (``ComparePane``): every saved clip in a grid, played in sync by one button and one scrubber
(``present.compare``).

The pane reads a ``videos.result.Video`` by duck typing (``view/`` sits below the job kinds). ``update`` is
called on every poll, so it sends a widget value only when that value changed, and reads the file into a
player only once per saved file.

    pane = VideoPane(video)
    pane.update(video)  # after each VideoUpdated
    lines = [clip_line(v, now) for v in videos]; overview_html(lines), overview_text(lines)
    compare = ComparePane(); compare.show(panes)  # the saved clips' panes, after each update
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..core.state import State
from ..present.compare import COMPARE_CLASS, GRID_COLUMNS, caption_html, controls_html, longest_seconds
from ..present.ledger_table import plain, shorten
from ..present.paths import file_href, shown_path
from ..present.sanitize import escape_text
from ..present.wording import FILTER_WORDS, clip_colour, clip_word, colour, pending_words, status_word
from .overview import Row
from .tabs import Pane, word_html

if TYPE_CHECKING:
    from ..videos.result import Video

__all__ = ["MAX_INLINE_BYTES", "ComparePane", "JobLine", "VideoPane", "call_line", "clip_elapsed", "clip_line",
           "overview_html", "overview_text"]

# Larger files are not sent over the comm: the whole value travels at once and freezes the browser
# (ipywidgets #3036), and it would bloat a notebook saved with its widget state.
MAX_INLINE_BYTES = 50 * 1024 * 1024

# Browsers play H.264 in an MP4 or a QuickTime file alike, but not under the "quicktime" MIME type that
# ipywidgets would guess for ".mov".
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".webm": "webm", ".ogv": "ogg"}
_IMAGE_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp"}


class VideoPane(Pane):
    """A clip's tab: status line, player (once saved), keyframe filmstrip, link, figures and check result.

    pane = VideoPane(video, clock=time.monotonic)
    pane.update(video)
    """

    def __init__(self, video: Video, *, clock: Callable[[], float] = time.monotonic,
                 max_inline_bytes: int = MAX_INLINE_BYTES) -> None:
        self.video = video
        self._clock = clock
        self.max_inline_bytes = max_inline_bytes
        self.status = widgets.HTML()
        self.player: widgets.Video | None = None
        self.player_box = widgets.VBox()
        self.filmstrip = widgets.HBox()
        self.details = widgets.HTML()
        self._played: Path | None = None  # the file the player (or its note) shows
        self._strip: tuple[Path, ...] = ()
        super().__init__(video.label, widgets.VBox(children=(self.status, self.player_box, self.filmstrip,
                                                             self.details)))
        self.update(video)

    @property
    def images(self) -> list[widgets.Image]:
        """The filmstrip's images, in keyframe order."""
        return [w for w in self.filmstrip.children if isinstance(w, widgets.Image)]

    def update(self, video: Video) -> None:
        """Show ``video`` as it is now; only the parts that changed are sent to the browser."""
        self.video = video
        # The player before the status: a tab that says "saved" has its clip already.
        saved = video.path if video.ok else None
        if saved != self._played:
            self._show_player(saved)
        self.status.value = self._status_html()  # traitlets sends only a changed value
        keyframes = tuple(video.keyframes) if video.ok else ()
        if keyframes != self._strip:
            self._strip = keyframes
            self.filmstrip.children = tuple(_thumbnail(p) for p in keyframes if p.is_file())
        self.details.value = self._details_html()

    def status_text(self) -> str:
        """The status line as plain words (what the HTML line says). A pending clip says where its job is and
        why this run stopped waiting: a note, never an error."""
        v = self.video
        state = v.state
        parts = [clip_word(state)]
        elapsed = self._elapsed()
        if elapsed is not None:
            parts.append(f"{elapsed:.0f} s")
        if v.polls:
            parts.append(f"{v.polls} poll{'s' if v.polls != 1 else ''}")
        if v.progress and state.is_running:
            parts.append(v.progress)
        if state is State.FILTERED:
            parts.append(f"{FILTER_WORDS}: {v.reason or 'no reason given'}")
        elif state is State.PENDING:
            parts.append(pending_words(v.note))
        elif state in (State.FAILED, State.CANCELLED) and v.error:
            parts.append(v.error)
        if v.reused:
            parts.append("from an earlier run, not paid again")
        return " · ".join(parts)

    def _elapsed(self) -> float | None:
        return clip_elapsed(self.video, self._clock())

    def _status_html(self) -> str:
        word, _, rest = self.status_text().partition(" · ")
        colour = clip_colour(self.video.state)
        tail = f" · {escape_text(rest)}" if rest else ""
        return (f'<p><b>{escape_text(self.video.label)}</b> · <code>{escape_text(self.video.model)}</code> · '
                f"{word_html(word, colour)}{tail}</p>")

    def _show_player(self, path: Path | None) -> None:
        self._played = path
        self.player = None
        if path is None:
            self.player_box.children = ()
            return
        try:
            size = path.stat().st_size
        except OSError:
            self.player_box.children = (widgets.HTML("<p><i>the saved file is missing</i></p>"),)
            return
        if size > self.max_inline_bytes:
            note = (f"<p><i>{size / 1e6:.0f} MB: too large to play here; "
                    "open the file with the link below</i></p>")
            self.player_box.children = (widgets.HTML(note),)
            return
        # autoplay and loop default to True; browsers block autoplay with sound, and a looping clip
        # with audio is noise while the reader looks at another one.
        self.player = widgets.Video(value=path.read_bytes(), format=_FORMATS.get(path.suffix.lower(), "mp4"),
                                    controls=True, autoplay=False, loop=False, width="640")
        self.player.layout.max_width = "100%"
        self.player_box.children = (self.player,)

    def _details_html(self) -> str:
        v = self.video
        lines = []
        if v.ok and v.path is not None:
            lines.append(f'<a href="{escape_text(file_href(v.path))}" target="_blank" rel="noopener">'
                         f"{escape_text(shown_path(v.path))}</a>")
        figures = [f"{v.seconds:.1f} s" if v.seconds is not None else "", v.resolution or ""]
        if v.cost_usd is not None:
            figures.append(f"${v.cost_usd:.2f}")
        if any(figures):
            lines.append(escape_text(" · ".join(f for f in figures if f)))
        words = v.check_words()
        if words is not None:
            badge = (' <span style="background:#2e7d32;color:#fff;padding:0 4px;border-radius:3px">'
                     f"{escape_text(v.best_words)}</span>") if v.best else ""
            reasons = f": {escape_text(v.score_reasons)}" if v.score_reasons else ""
            lines.append(f"<b>{escape_text(words)}</b>{badge}{reasons}")
        lines += [f"<i>{escape_text(n)}</i>" for n in v.notes]
        lines.append(f"<small>prompt: {escape_text(v.prompt)}</small>")
        return "<p>" + "<br>".join(lines) + "</p>"


class ComparePane(Pane):
    """The Compare tab: every saved clip in a grid of players without controls of their own, driven together by
    the shared play/pause button and scrubber over them (``present.compare``'s fixed handlers find the players
    through the body's ``fm-compare`` class), each clip's label, model, length, cost and check under it.

    A cell's player is a second ``Video`` widget on the bytes its clip's tab already read (no second read of
    the file); a clip its tab cannot play (too large, gone) says so and points at its tab.

    compare = ComparePane()
    compare.show([pane for pane in clip_panes if pane.video.ok])
    """

    def __init__(self) -> None:
        self.controls = widgets.HTML(controls_html(0.0))
        self.grid = widgets.GridBox(layout=widgets.Layout(grid_template_columns=GRID_COLUMNS, grid_gap="8px"))
        self._cells: dict[str, _CompareCell] = {}
        body = widgets.VBox(children=(self.controls, self.grid))
        body.add_class(COMPARE_CLASS)
        super().__init__("Compare", body)

    @property
    def players(self) -> list[widgets.Video]:
        """The grid's players, in clip order."""
        return [c.player for c in self._cells.values() if isinstance(c.player, widgets.Video)]

    @property
    def captions(self) -> list[str]:
        """What each cell says under its player, in clip order (HTML)."""
        return [c.caption.value for c in self._cells.values()]

    def show(self, panes: Sequence[VideoPane]) -> None:
        """Show the clips of ``panes`` that are saved, in that order; only what changed is sent."""
        saved = [p for p in panes if p.video.ok]
        cells: dict[str, _CompareCell] = {}
        for pane in saved:
            cell = self._cells.get(pane.video.label)
            if cell is None or cell.source is not pane.player:
                cell = _CompareCell.of(pane)
            cell.caption.value = caption_html(pane.video)
            cells[pane.video.label] = cell
        self._cells = cells
        children = tuple(c.box for c in cells.values())
        if tuple(self.grid.children) != children:
            self.grid.children = children
        # Sent only when the longest clip changed: a new value redraws the controls (and stops a playing grid).
        self.controls.value = controls_html(longest_seconds(p.video for p in saved))


@dataclass
class _CompareCell:
    """One clip in the grid: its player (or a note where its tab has none), its caption, the tab's player it
    was made from."""

    source: widgets.Video | None
    player: widgets.Widget
    caption: widgets.HTML
    box: widgets.VBox

    @classmethod
    def of(cls, pane: VideoPane) -> _CompareCell:
        source = pane.player
        player: widgets.Widget
        if source is None:
            player = widgets.HTML("<p><i>not playable here: see the clip's own tab</i></p>")
        else:
            player = widgets.Video(value=source.value, format=source.format, controls=False, autoplay=False,
                                   loop=False)
            player.layout.width = "100%"
        caption = widgets.HTML()
        return cls(source, player, caption, widgets.VBox(children=(player, caption)))


def clip_elapsed(v: Video, now: float) -> float | None:
    """Seconds since the clip's job was submitted (or re-attached to), by ``now`` while it runs; its record's
    latency once this run stopped waiting for it; None before it started."""
    if not v.state.is_running and v.record.latency_s is not None:
        return v.record.latency_s
    if v.started is None:
        return None
    return max(0.0, now - v.started)


# How much of an error, a filter's reason or a progress note one overview line shows (the tab has it all).
_DETAIL_CHARS = 70


@dataclass(frozen=True)
class JobLine:
    """One job of a run in the overview: its seat label, model, state word (and its colour), elapsed seconds,
    and what there is to say next to them (a saved clip's length and cost, why it failed or is pending)."""

    label: str
    model: str
    word: str
    colour: str
    elapsed: float | None = None
    details: tuple[str, ...] = ()

    def text(self, widths: tuple[int, int, int] = (0, 0, 0)) -> str:
        """The line as plain text, its first columns padded to ``widths`` (label, model, word)."""
        cells = [self.label.ljust(widths[0]), self.model.ljust(widths[1]), self.word.ljust(widths[2]),
                 _seconds(self.elapsed).rjust(6)]
        return plain("  ".join(cells) + "".join(f"  {d}" for d in self.details)).rstrip()


def clip_line(v: Video, now: float) -> JobLine:
    """A clip's overview line: ``veo #1 · gemini:veo-3.1 · saved · 41 s · 8.0 s clip · $3.20``."""
    state = v.state
    details: list[str] = []
    if state is State.DONE:
        if v.seconds is not None:
            details.append(f"{v.seconds:.1f} s clip")
        if v.reused:
            details.append("from an earlier run, not paid again")
        elif v.cost_usd is not None:
            details.append(f"${v.cost_usd:.2f}")
        else:
            details.append("cost unknown")
        words = v.check_words()
        if words is not None:
            details.append(words + (f" ({v.best_words})" if v.best else ""))
    elif state is State.FILTERED:
        details.append(_short(v.reason or "no reason given"))  # "filtered" says by whom
    elif state is State.PENDING:
        details.append(_short(pending_words(None)))
    elif state in (State.FAILED, State.CANCELLED) and v.error:
        details.append(_short(v.error))
    elif state.is_running and v.progress:
        details.append(_short(v.progress))
    return JobLine(v.label, v.model, clip_word(state), clip_colour(state), clip_elapsed(v, now), tuple(details))


def call_line(row: Row, now: float) -> JobLine:
    """A call's overview line (a model answering a question about a video): its status word, elapsed time
    (``Row.elapsed``), and its cost once done."""
    r = row.response
    elapsed = row.elapsed(now)
    word = status_word(r)
    details: list[str] = []
    if r.state is State.DONE and r.cost_usd is not None:
        details.append(f"${r.cost_usd:.4f}")
    head, sep, rest = word.partition(": ")
    if sep:  # "failed: timeout: ...": the word, then the reason, shortened
        word = head
        details.append(_short(rest))
    return JobLine(row.label, r.model, word, colour(r), elapsed, tuple(details))


def overview_html(lines: Sequence[JobLine]) -> str:
    """Every job on one row of a compact table: label, model, state word in its colour, elapsed, details."""
    if not lines:
        return ""
    cell = 'style="padding:0 .8em 0 0;vertical-align:top;white-space:nowrap"'
    rows = []
    for line in lines:
        details = escape_text(" · ".join(line.details))
        word = word_html(line.word, line.colour)
        rows.append(f"<tr><td {cell}><b>{escape_text(line.label)}</b></td>"
                    f'<td {cell}><code style="font-size:85%">{escape_text(line.model)}</code></td>'
                    f"<td {cell}>{word}</td>"
                    f'<td {cell[:-1]};text-align:right">{escape_text(_seconds(line.elapsed))}</td>'
                    f'<td style="padding:0;vertical-align:top">{details}</td></tr>')
    return ('<table class="fusion-magic-jobs" style="border-collapse:collapse;font-size:90%;margin:.2em 0 .6em 0">'
            + "".join(rows) + "</table>")


def overview_text(lines: Sequence[JobLine], indent: str = "  ") -> list[str]:
    """Every job on one line, its columns aligned: what a terminal shows for the overview."""
    widths = (max((len(x.label) for x in lines), default=0), max((len(x.model) for x in lines), default=0),
              max((len(x.word) for x in lines), default=0))
    return [indent + line.text(widths) for line in lines]


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} s"


def _short(text: str) -> str:
    text = " ".join(plain(text).split())
    return shorten(text, _DETAIL_CHARS) or text[: _DETAIL_CHARS - 1] + "…"


def _thumbnail(path: Path) -> widgets.Image:
    return widgets.Image(value=path.read_bytes(), format=_IMAGE_FORMATS.get(path.suffix.lower(), "jpeg"),
                         width="96")
