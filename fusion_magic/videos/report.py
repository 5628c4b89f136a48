"""A finished ``%%video`` run as a document: plain text for a terminal, HTML for a saved notebook.

The HTML is what a notebook keeps once the live widget is gone, so it needs no widget state: each clip is
an HTML5 ``<video>`` pointing at the saved file (relative to the working directory, which is the
notebook's), never autoplaying or looping, with its keyframes inlined as small JPEGs. With three saved clips or
more, a "Compare" section above them plays them side by side in sync (``present.compare``: the same files, one
play/pause and one scrubber for all). Prompts, answers, reasons and errors are untrusted: every one goes through
``present.sanitize`` (HTML) or ``plain`` (text).

    print(text_report(result))
    html = html_report(result)
    degraded_summary(result)  # "DEGRADED: 1 of 3 clips failed: ...; 1 pending at the provider ..."
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.ledger import ledger_with_totals
from ..core.mime import HEAD_BYTES, IMAGE_TYPES, sniff
from ..core.state import State
from ..judge.report import verdict_html
from ..present.compare import MIN_CLIPS, compare_html
from ..present.fold import folded
from ..present.ledger_table import WIDTH, figures, ledger_html, plain, shorten, text_ledger, wrap
from ..present.paths import file_href, shown_path
from ..present.sanitize import escape_text, render_markdown
from ..present.wording import (
    FILTER_WORDS,
    clip_word,
    degraded_html,
    failure_detail,
    pending_words,
    status_word,
)
from .frames_check import CHECKER, MEASURES

if TYPE_CHECKING:
    import pandas as pd

    from ..core.record import CallRecord
    from .result import Video, VideoResult

__all__ = ["degraded_summary", "html_report", "text_report"]

_RULE = "=" * 72
_REASON_CHARS = 80


def degraded_summary(result: VideoResult) -> str | None:
    """What did not arrive, in one sentence, or None when nothing is missing: clips failed, filtered,
    cancelled or still pending, answers, checks or the judge that failed."""
    if not result.degraded:
        return None
    n = len(result.videos)
    parts: list[str] = []
    for state in (State.FAILED, State.FILTERED, State.CANCELLED):
        clips = [v for v in result.videos if v.state is state]
        if clips:
            names = ", ".join(f"{v.label} ({_clip_reason(v)})" if state is not State.CANCELLED else v.label
                              for v in clips)
            parts.append(f"{len(clips)} of {n} clip{'s' if n != 1 else ''} {clip_word(state)}: {names}")
    if result.pending:
        parts.append(f"{len(result.pending)} pending at the provider (%video resume fetches "
                     f"{'it' if len(result.pending) == 1 else 'them'})")
    for role, calls in (("answer", result.answers), ("check", result.failed_checks), ("judge", result.judge_calls)):
        parts += [f"{_check_title(r) if role == 'check' else role} by {r.model} failed ({_call_reason(r)})"
                  for r in calls if not r.ok]
    if result.verdict is not None and result.verdict.fallback:
        parts.append("the judge gave no usable verdict, so a vote chose the answer")
    return "DEGRADED: " + "; ".join(parts or ["see the ledger"]) + "."


# --- text ------------------------------------------------------------------------------------------


def text_report(result: VideoResult) -> str:
    """The run as plain text within ``WIDTH`` columns (model text excepted where a word is longer): clips,
    pending jobs, the answer, checks, the ledger, notes, then a ``DEGRADED`` line when something is missing."""
    out: list[str] = []
    if result.videos:
        out += _heading(f"Clips ({sum(v.ok for v in result.videos)} of {len(result.videos)} saved)")
        shared = _shared_prompt(result)
        if shared is not None:
            out += wrap(f"prompt: {shared}", "        ")
        for v in result.videos:
            out += wrap(f"- {v.label}: {v.describe()}", "    ")
            if shared is None:
                out += _indented(f"prompt: {v.prompt}")
            if v.state is State.PENDING:  # why it is pending is a note here, never an error
                out += _indented(f"job {v.job_id or '?'}: {pending_words(v.note)}")
            keyframes = sum(p.is_file() for p in v.keyframes) if v.ok else 0
            if keyframes:
                out.append(f"    {keyframes} keyframe{'s' if keyframes != 1 else ''}")
            if v.score_reasons:
                out += _indented(f"{v.reasons_label}: {v.score_reasons}")
            out += [line for note in v.notes for line in _indented(f"note: {note}")]
        out.append("")

    if result.answers or result.answer is not None:
        out += _heading("Answer")
        out += wrap(f"question: {result.prompt}", "          ")
        if result.source:
            out += wrap(f"about: {result.source}", "       ")
        out += wrap(_answered_by(result), "    ")
        out.append("")
        out += _text_block(result.answer or "(no answer)")
        out.append("")
        if len(result.answers) > 1:
            out += _heading(f"Answers ({len(result.answers)})")
            for r in result.answers:
                out += wrap(f"--- {r.model} · {status_word(r)} · {figures(r)} ---", "    ")
                out += _text_block(r.text or "(no text)")
                out.append("")

    if result.analysis is not None:
        out += _heading("Frames analysis (local:frames)")
        out += _text_block(_analysis_text(result.analysis))
        out.append("")

    if result.checks:
        out += _heading(_checks_heading(result.checks))
        if _is_spec(result.checks[0]):
            out += wrap(f"{CHECKER} checks {MEASURES}", "    ")
        for r in result.checks:
            out += wrap(f"- {_checked_clip(r)} by {r.model}: {status_word(r)} · {_check_figures(r)}", "    ")
        out.append("")

    out += _heading("Cost & latency")
    frame = _ledger(result)
    out += text_ledger(frame) if not frame.empty else ["no calls"]
    if result.wall_s:
        out.append(f"wall time: {result.wall_s:.1f} s")
    out.append("")

    if result.notes:
        out += _heading("Notes")
        out += [line for note in result.notes for line in wrap(f"- {note}", "  ")]
        out.append("")
    degraded = degraded_summary(result)
    if degraded:
        out += wrap(degraded, "  ")
    return "\n".join(out).rstrip() + "\n"


def _heading(title: str) -> list[str]:
    return [_RULE, *wrap(title), _RULE]


def _indented(text: str, indent: str = "    ") -> list[str]:
    """One of our lines (with untrusted parts) under a clip, wrapped at ``WIDTH``, every line indented."""
    return textwrap.wrap(" ".join(plain(text).split()), WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False) or [indent.rstrip()]


def _text_block(text: str) -> list[str]:
    """Model text for a terminal: control characters dropped, long prose lines wrapped under their
    indentation, fenced code kept line for line."""
    out: list[str] = []
    fenced = False
    for line in plain(text).strip().split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced or len(line) <= WIDTH or not line.strip():
            out.append(line.rstrip())
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(line.strip(), WIDTH, initial_indent=indent, subsequent_indent=indent,
                             break_long_words=False, break_on_hyphens=False)
    return out


# --- html --------------------------------------------------------------------------------------------


def html_report(result: VideoResult) -> str:
    """The run as an HTML fragment that needs no widget state; every untrusted string is escaped or
    sanitized, each clip plays only when asked (``controls``, no autoplay, no loop)."""
    h: list[str] = ['<div class="fusion-magic-report">']
    if result.videos:
        h.append(f"<h3>Clips ({sum(v.ok for v in result.videos)} of {len(result.videos)} saved)</h3>")
        shared = _shared_prompt(result)
        if shared is not None:
            h.append(f"<p><small>prompt: {escape_text(shared)}</small></p>")
        compare = _compare_section(result.videos)
        if compare:
            h.append(compare)
        h += [_clip_html(v, own_prompt=shared is None) for v in result.videos]

    if result.answers or result.answer is not None:
        h.append("<h3>Answer</h3>")
        about = f"<br>about: <code>{escape_text(result.source)}</code>" if result.source else ""
        h.append(f"<p><small>question: {escape_text(result.prompt)}{about}<br>"
                 f"{escape_text(_answered_by(result))}</small></p>")
        h.append(render_markdown(result.answer or "") or "<p><i>(no answer)</i></p>")
        if result.verdict is not None:
            judge = result.judge_calls[0].model if result.judge_calls else None
            h.append("<h4>Verdict</h4>" + verdict_html(result.verdict, judge))
        if len(result.answers) > 1:
            for r in result.answers:
                h.append(f"<details><summary><code>{escape_text(r.model)}</code> · {escape_text(status_word(r))}"
                         f" · {escape_text(figures(r))}</summary>"
                         f"{render_markdown(r.text) or '<p><i>(no text)</i></p>'}</details>")

    if result.analysis is not None:
        h.append("<h3>Frames analysis (local:frames)</h3>")
        h.append(f'<pre style="white-space:pre-wrap">{escape_text(_analysis_text(result.analysis))}</pre>')

    if result.checks:
        h.append(f"<h3>{escape_text(_checks_heading(result.checks))}</h3>")
        if _is_spec(result.checks[0]):
            h.append(f"<p><small>{escape_text(f'{CHECKER} checks {MEASURES}')}</small></p>")
        h.append("<ul>")
        h += [f"<li><b>{escape_text(_checked_clip(r))}</b> by <code>{escape_text(r.model)}</code>: "
              f"{escape_text(status_word(r))} · {escape_text(_check_figures(r))}</li>" for r in result.checks]
        h.append("</ul>")

    h.append("<h3>Cost &amp; latency</h3>")
    h.append(ledger_html(_ledger(result)))
    if result.wall_s:
        h.append(f"<p><small>wall time: {result.wall_s:.1f} s</small></p>")
    if result.notes:
        h.append("<h3>Notes</h3><ul>" + "".join(f"<li>{escape_text(n)}</li>" for n in result.notes) + "</ul>")
    degraded = degraded_summary(result)
    if degraded:
        h.append(degraded_html(degraded))
    h.append("</div>")
    return "\n".join(h)


def _clip_html(v: Video, *, own_prompt: bool = False) -> str:
    head = [f"<b>{escape_text(v.label)}</b>", f"<code>{escape_text(v.model)}</code>",
            f"<b>{escape_text(clip_word(v.state))}</b>"]
    head += [escape_text(f) for f in (f"{v.seconds:.1f} s" if v.seconds is not None else "", v.resolution or "",
                                      f"${v.cost_usd:.2f}" if v.cost_usd is not None else "") if f]
    if v.state is State.FILTERED:
        head.append(escape_text(f"{FILTER_WORDS}: {v.reason or 'no reason given'}"))  # after the word "filtered"
    elif v.state is State.PENDING:
        head.append(escape_text(f"job {v.job_id or '?'}: {pending_words(v.note)}"))
    elif v.error and v.state in (State.FAILED, State.CANCELLED):
        head.append(escape_text(v.error))
    parts = ['<div style="margin:0 0 1em 0">', "<p>" + " · ".join(head) + "</p>"]
    if own_prompt:
        parts.append(f"<p><small>prompt: {escape_text(v.prompt)}</small></p>")
    if v.ok and v.path is not None:
        src = escape_text(file_href(v.path))
        parts.append(f'<video controls preload="metadata" width="640" style="max-width:100%" src="{src}">'
                     f'<a href="{src}">{escape_text(shown_path(v.path))}</a></video>')
        strip = [_image_html(p) for p in v.keyframes]
        if any(strip):
            parts.append('<div style="display:flex;gap:4px;flex-wrap:wrap">' + "".join(strip) + "</div>")
        parts.append(f'<p><a href="{src}" target="_blank" rel="noopener">{escape_text(shown_path(v.path))}</a></p>')
    words = v.check_words()
    if words is not None:
        best = f" ({v.best_words})" if v.best else ""
        reasons = f": {escape_text(v.score_reasons)}" if v.score_reasons else ""
        parts.append(f"<p><b>{escape_text(words + best)}</b>{reasons}</p>")
    if v.notes:
        parts.append("<ul>" + "".join(f"<li>{escape_text(n)}</li>" for n in v.notes) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


def _compare_section(videos: list[Video]) -> str:
    """The saved clips side by side, played in sync (``present.compare``), under a "Compare (N clips)" fold that
    starts open; "" with fewer than ``MIN_CLIPS`` saved. Each player points at the file its own section does."""
    saved = [(v, file_href(v.path)) for v in videos if v.ok and v.path is not None]
    if len(saved) < MIN_CLIPS:
        return ""
    return folded(f"<b>Compare ({len(saved)} clips)</b>", compare_html(saved), open_=True, cls="fm-compare-section")


def _image_html(path: Path) -> str:
    """A keyframe inlined as a data URI (a saved notebook carries it); "" when the file is gone."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    mime = sniff(data[:HEAD_BYTES])
    if mime not in IMAGE_TYPES:
        return ""  # not an image a browser shows inline: no broken <img>
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:{mime};base64,{encoded}" width="96" alt="keyframe">'


# --- helpers -----------------------------------------------------------------------------------------


def _shared_prompt(result: VideoResult) -> str | None:
    """The prompt every clip was made from, or None when they differ (a resume fetches jobs of several cells:
    then each clip says its own). Each clip keeps the prompt its job was submitted with."""
    prompts = {v.prompt for v in result.videos}
    return prompts.pop() if len(prompts) == 1 else None


def _answered_by(result: VideoResult) -> str:
    names = ", ".join(f"{r.model} ({status_word(r)})" for r in result.answers) or "no model"
    line = f"answered by {names}"
    if result.verdict is not None:
        line += f"; fused by judge {result.verdict.model} ({result.verdict.mode})"
        if result.verdict.fallback:
            line += ", a vote in place of the judge"
    return line


def _is_spec(r: CallRecord) -> bool:
    return r.model == CHECKER


def _check_figures(r: CallRecord) -> str:
    """A check's figures: a model's tokens, seconds and cost; local:frames reads no tokens and costs nothing
    (its "?→? tok" would read as unknown usage), so its clip and seconds only."""
    if not _is_spec(r):
        return figures(r)
    secs = "" if r.latency_s is None else f"{r.latency_s:.2f} s · "
    return f"{secs}free (local analysis)"


def _checked_clip(r: CallRecord) -> str:
    """The clip a check looked at (its label is "check <clip>" or "spec <clip>")."""
    return (r.label or "").partition(" ")[2] or "?"


def _check_title(r: CallRecord) -> str:
    return "spec check" if _is_spec(r) else "check"


def _checks_heading(checks: list[CallRecord]) -> str:
    # One checker per run: its kind names the section.
    return _check_title(checks[0]).capitalize()


def _analysis_text(analysis: object) -> str:
    describe = getattr(analysis, "describe", None)
    return str(describe() if callable(describe) else analysis)


def _clip_reason(v: Video) -> str:
    text = v.reason if v.state is State.FILTERED else v.error
    return shorten(plain(text or "no reason given"), _REASON_CHARS) or "see the ledger"


def _call_reason(r: CallRecord) -> str:
    return shorten(failure_detail(r), _REASON_CHARS) or r.status


def _ledger(result: VideoResult) -> pd.DataFrame:
    # No wall time here: with_totals' "overhead" row measures a fused run's critical path (members and
    # judge), which a video run does not have; the wall time is said on its own line instead.
    return ledger_with_totals(result.calls)
