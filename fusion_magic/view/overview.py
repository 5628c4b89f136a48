"""The overview tab: every call of a run at once, one line of figures and one line of its latest text each,
filling live, so eight members streaming are watched without a click.

Token counts while a call streams are our own: the larger of the text chunks seen (one token each on
llama.cpp, Ollama and vLLM) and the characters / 4, marked ``~``; the provider's figure replaces it when the
call ends. The rate is tokens over the time since the first token, so a slow start does not hide a fast
stream. Elapsed time is measured by this view's clock from the moment it saw the call start.

    overview = OverviewPane()
    overview.add("gpt-4o", "openai:gpt-4o")
    overview.started("gpt-4o", r, now); overview.delta("gpt-4o", r, now); overview.finished("gpt-4o", r, now)
    overview.tick(now)   # a clock tick: elapsed times advance while nothing streams
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..core.pricing import approx_tokens
from ..core.record import CallRecord
from ..present.sanitize import escape_text
from .tabs import Pane, Throttled, status_html

if TYPE_CHECKING:
    from ..core.record import Response

# The latest text shown under each call: about two lines of a notebook cell, cut at the front.
TAIL_CHARS = 160


@dataclass
class Row:
    """One call as the overview shows it: its latest record (a queued one before it started) and this view's
    clock readings of its start, first token and end."""

    label: str
    model: str
    response: Response
    started: float | None = None
    first_token: float | None = None
    ended: float | None = None
    chunks: int = 0

    @classmethod
    def queued(cls, label: str, model: str) -> Row:
        return cls(label, model, CallRecord(model=model, label=label, status="queued"))

    def tokens(self) -> tuple[int, bool] | None:
        """Output tokens so far and whether we counted them (``~``); None before any text."""
        r = self.response
        if not r.state.is_running and r.output_tokens is not None:
            return r.output_tokens, r.tokens_source == "counted"
        if not r.text:
            return None
        return max(self.chunks, approx_tokens(r.text)), True

    def elapsed(self, now: float) -> float | None:
        """Seconds since the call started, by ``now`` while it runs; the call's own latency once it ended."""
        r = self.response
        if not r.state.is_running and r.latency_s is not None:
            return r.latency_s
        if self.started is None:
            return None
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def rate(self, now: float) -> float | None:
        """Output tokens per second since the first token; None in the first half second (too short to tell)."""
        counted = self.tokens()
        if counted is None or self.first_token is None:
            return None
        end = self.ended if self.ended is not None else now
        span = end - self.first_token
        r = self.response
        if not r.state.is_running and r.latency_s is not None and r.ttft_s is not None:
            span = r.latency_s - r.ttft_s  # the call's own clock, once it has one
        return counted[0] / span if span >= 0.5 and counted[0] > 1 else None

    def figures(self, now: float) -> list[str]:
        """``["~42 tok", "35 tok/s", "2.1 s"]``: what is known so far."""
        out = []
        counted = self.tokens()
        if counted is not None:
            out.append(f"{'~' if counted[1] else ''}{counted[0]} tok")
        rate = self.rate(now)
        if rate is not None:
            out.append(f"{rate:.0f} tok/s")
        elapsed = self.elapsed(now)
        if elapsed is not None:
            out.append(f"{elapsed:.1f} s")
        return out


class OverviewPane(Pane):
    """The "Overview" tab: one row per call (members, then the judge once it starts), re-rendered at most
    every ``interval`` seconds while text arrives, and on every start, end and clock tick."""

    def __init__(self, title: str = "Overview", *, interval: float = 0.1) -> None:
        self.rows: dict[str, Row] = {}
        self.throttle = Throttled(interval)
        self.html = widgets.HTML(self._html(0.0))
        super().__init__(title, self.html)

    def add(self, key: str, model: str, label: str | None = None) -> None:
        """A row for a call that has not started yet (a member in the pool): shown as queued."""
        if key not in self.rows:
            self.rows[key] = Row.queued(label or key, model)

    def started(self, key: str, r: Response, now: float) -> None:
        row = self._row(key, r)
        if row.started is None or row.ended is not None:  # a debate's next round starts the clock again
            row.started, row.first_token, row.ended, row.chunks = now, None, None, 0
        self.render(now)

    def delta(self, key: str, r: Response, now: float) -> bool:
        """Count a chunk of ``r``'s text; re-render unless throttled. Returns whether it rendered."""
        row = self._row(key, r)
        row.chunks += 1
        if row.first_token is None:
            row.first_token = now
        if row.started is None:
            row.started = now
        if not self.throttle.due(now):
            return False
        self.render(now)
        return True

    def finished(self, key: str, r: Response, now: float) -> None:
        row = self._row(key, r)
        row.ended = now
        self.render(now)

    def tick(self, now: float) -> None:
        """Re-render when anything is still running, so elapsed times advance while no text arrives."""
        if self.running:
            self.render(now)

    def render(self, now: float) -> None:
        self.html.value = self._html(now)
        self.throttle.rendered(now)

    @property
    def running(self) -> int:
        return sum(1 for row in self.rows.values() if row.response.state.is_running)

    def _row(self, key: str, r: Response) -> Row:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = Row(key, r.model, r)
        row.response = r
        return row

    def _html(self, now: float) -> str:
        if not self.rows:
            return "<p><i>waiting for the run to start</i></p>"
        lines = "".join(_row_html(row, now) for row in self.rows.values())
        return f'<div class="fusion-magic-overview" style="max-width:60rem">{lines}</div>'


def _row_html(row: Row, now: float) -> str:
    r = row.response
    # Only the tail is shown: collapsing whitespace over a long answer on every render would cost O(text).
    text = " ".join(r.text[-4 * TAIL_CHARS :].split())
    tail = ("…" + text[-TAIL_CHARS:]) if len(text) > TAIL_CHARS else text
    head = (
        f'<b>{escape_text(row.label)}</b> <code style="font-size:85%">{escape_text(row.model)}</code> · '
        + " · ".join([status_html(r), *(escape_text(f) for f in row.figures(now))])
    )
    body = f'<div style="color:#555;font-size:90%;min-height:1.2em">{escape_text(tail)}</div>'
    return f'<div class="fusion-magic-row" style="margin:0 0 .45em 0">{head}{body}</div>'


__all__ = ["OverviewPane", "Row"]
