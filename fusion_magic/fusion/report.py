"""A finished run as a document: plain text, Markdown, or sanitized HTML.

The text form is what terminal IPython, scripts and saved notebooks show, so its layout is stable:
fused answer, judge verdict, each member, the cost and latency table, warnings, then a
``DEGRADED: ...`` sentence when something failed. It fits 100 columns: prose is wrapped (model code
blocks and tables are kept as written), the ledger's wide columns wrap in their cells, and an error
that must be shortened loses whole clauses, never half a word; the full text stays in the result
(``result.ledger``, ``Response.error``). Model-written strings are untrusted: the HTML form sends each
through ``present.sanitize``, the Markdown form neutralizes raw HTML and link syntax, the text form drops
terminal control characters.

Each fact is said once, where it belongs: a failed call's own status on its row and in its section,
the verdict's fallback (and why) in the Judge section, and who failed, in short, on the DEGRADED line.

    print(text_report(result))
    html = html_report(result)

The small ``*_html`` and ``status_word`` helpers are shared with the live widget view so both say the
same thing in the same words.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from ..core.ledger import with_totals
from ..present.ledger_table import (
    OVERHEAD_NOTE,
    WIDTH,
    counted_note,
    figures,
    ledger_display,
    ledger_html,
    plain,
    shorten,
    text_ledger,
    wrap,
)
from ..present.sanitize import escape_markdown, escape_text, neutralize_markdown, render_markdown
from ..present.wording import CallState, failure_detail, state_of, status_word

if TYPE_CHECKING:
    import pandas as pd
    from markdown_it import MarkdownIt

    from ..core.record import Response
    from ..judge.analysis import JudgeAnalysis
    from .result import FusionResult, Verdict

__all__ = ["analysis_html", "degraded_summary", "html_report", "markdown_report", "text_report", "verdict_html"]

_RULE = "=" * 72
# A failure's reason on the DEGRADED line: its kind and the first clauses of its message.
_REASON_CHARS = 80


# --- shared wording -----------------------------------------------------------------------------------


def degraded_summary(result: FusionResult) -> str | None:
    """What went wrong, in one sentence, or None when the run is not degraded: who failed and, in short,
    why (the call's own status has the full text), and whether a vote stood in for the judge."""
    if not result.degraded:
        return None
    parts: list[str] = []
    # Cancelled is not a failure of the model (the user stopped the run): said apart, without a reason.
    cancelled = [r for r in result.failed if state_of(r) is CallState.CANCELLED]
    failed = [r for r in result.failed if state_of(r) is not CallState.CANCELLED]
    if failed:
        names = ", ".join(f"{_who(r)} ({_reason(r)})" for r in failed)
        parts.append(f"{len(failed)} member call{'s' if len(failed) != 1 else ''} failed: {names}")
    if cancelled:
        names = ", ".join(_who(r) for r in cancelled)
        parts.append(f"{len(cancelled)} member call{'s' if len(cancelled) != 1 else ''} cancelled: {names}")
    judge_failed = [j for j in result.judge_responses if not j.ok]
    parts += [f"judge {j.model} cancelled" if state_of(j) is CallState.CANCELLED
              else f"judge {j.model} failed ({_reason(j)})" for j in judge_failed]
    if result.verdict is not None and result.verdict.fallback:
        if judge_failed:
            parts[-1] += ", so a vote chose the answer"
        elif result.judge_responses:
            parts.append("the judge gave no usable verdict, so a vote chose the answer")
        else:
            parts.append("no answer reached the judge")
    return "DEGRADED: " + "; ".join(parts or ["see the ledger"]) + "."


def verdict_html(verdict: Verdict, judge: str | None = None) -> str:
    """The judge's decision: mode, judge, choice, which label was which model, reasoning, notes.

    ``judge`` is the judge the run asked for; a fallback vote names it as the judge it stands in for.
    """
    items = [
        ("mode", escape_text(verdict.mode)),
        ("judge", f"<code>{escape_text(verdict.model)}</code>{escape_text(_fallback_words(verdict, judge))}"),
        ("choice", escape_text(_choice(verdict))),
    ]
    best = _ranked_best(verdict)
    if best:
        items.append(("ranked best", escape_text(best)))
    orders = _orders(verdict)
    if orders:
        items.append(("orders", escape_text(orders)))
    rows = "".join(f"<li><b>{k}</b>: {v}</li>" for k, v in items)
    parts = [f"<ul>{rows}</ul>"]
    if verdict.labels:
        pairs = "".join(
            f"<tr><td>{escape_text(label)}</td><td><code>{escape_text(model)}</code></td></tr>"
            for label, model in verdict.labels.items()
        )
        parts.append(f"<table><thead><tr><th>label</th><th>model</th></tr></thead><tbody>{pairs}</tbody></table>")
    if verdict.analysis is not None:
        parts.append(analysis_html(verdict.analysis))
    if verdict.reasoning:
        parts.append(f"<h4>Reasoning</h4>{render_markdown(verdict.reasoning)}")
    if verdict.notes:
        parts.append("<ul>" + "".join(f"<li>{escape_text(n)}</li>" for n in verdict.notes) + "</ul>")
    return "".join(parts)


def analysis_html(analysis: JudgeAnalysis) -> str:
    """The judge's analysis as a compact "who said what": the contradictions as a table (a row per topic,
    a column per member), then consensus, points only one answer made, blind spots and failed members as
    short lists. Every string is escaped: the judge's text and the model ids are shown as plain text."""
    parts = ["<h4>Who said what</h4>"]
    if analysis.contradictions:
        columns = _columns(analysis)
        head = "".join(f"<th><code>{escape_text(m)}</code></th>" for m in columns)
        rows = "".join(
            f"<tr><td>{escape_text(c.topic)}</td>"
            + "".join(f"<td>{escape_text(c.stances.get(m, _UNSTATED))}</td>" for m in columns)
            + "</tr>"
            for c in analysis.contradictions
        )
        parts.append(f"<table><thead><tr><th>contradiction</th>{head}</tr></thead><tbody>{rows}</tbody></table>")
    for title, items in _analysis_lists(analysis):
        lis = "".join(
            f"<li><code>{escape_text(who)}</code>: {escape_text(what)}</li>" if who else f"<li>{escape_text(what)}</li>"
            for who, what in items
        )
        parts.append(f"<p><b>{escape_text(title)}</b></p><ul>{lis}</ul>")
    if analysis.empty:
        parts.append(f"<p><i>{escape_text(_NOTHING_FOUND)}</i></p>")
    return "".join(parts)


def no_answer_words(verdict: Verdict | None) -> str:
    """What stands where the fused answer would: why there is none."""
    if verdict is not None and verdict.undecided:
        return "no answer: no majority among the answers, so the vote picked none; -j MODEL has a judge weigh them"
    return "no answer"


# --- text ------------------------------------------------------------------------------------------


def text_report(result: FusionResult) -> str:
    """The whole run as plain text at most ``WIDTH`` columns wide (model code blocks and tables, and
    words longer than a line, excepted): answer, verdict, members, ledger with totals, warnings, DEGRADED."""
    out: list[str] = []
    out += _heading(f"Fused answer ({result.mode}, judge {plain(result.judge)})")
    out += _fit(plain(result.answer).strip() or f"({no_answer_words(result.verdict)})")
    out.append("")

    out += _heading("Judge")
    v = result.verdict
    if v is None:
        out.append("no verdict")
    else:
        out += _field("mode:", v.mode)
        out += _field("judge:", v.model + _fallback_words(v, result.judge))
        out += _field("choice:", _choice(v))
        best = _ranked_best(v)
        if best:
            out += _field("best:", best)
        orders = _orders(v)
        if orders:
            out += _field("orders:", orders)
        for i, (label, model) in enumerate(v.labels.items()):
            out += _field("labels:" if i == 0 else "", f"{label} = {model}")
        for i, note in enumerate(v.notes):
            out += _field("notes:" if i == 0 else "", note)
        if v.analysis is not None:
            out += _analysis_text(v.analysis)
        if v.reasoning.strip():
            out.append("reasoning:")
            out += _fit(plain(v.reasoning).strip(), indent="    ")
    out.append("")

    groups = _by_member(result.responses)
    out += _heading(f"Answers ({len(groups)})")
    for label, calls in groups:
        several = len(calls) > 1
        for r in calls:
            round_ = f" · round {r.round}" if several else ""
            out += wrap(f"--- {label} · {r.model}{round_} ---")
            status = plain(f"{status_word(r)} · {figures(r)}")
            # A long failure reads better whole, with the figures on their own line than after it.
            out += [status] if len(status) <= WIDTH else [*wrap(status_word(r), "  "), figures(r)]
            out += _fit(plain(r.text).strip() or "(no text)")
            out.append("")

    out += _heading("Cost & latency")
    frame = _ledger(result)
    out += text_ledger(frame) if not frame.empty else ["no calls"]
    out.append("")

    if result.warnings:
        out += _heading("Warnings")
        for w in result.warnings:
            out += wrap(f"- {w}", "  ")
        out.append("")
    degraded = degraded_summary(result)
    if degraded:
        out += wrap(degraded, "  ")
    return "\n".join(out).rstrip() + "\n"


def _analysis_text(analysis: JudgeAnalysis) -> list[str]:
    """The analysis for a terminal: a table would not fit 100 columns with several members, so each
    contradiction lists its stances under it."""
    out = ["who said what:"]
    for c in analysis.contradictions:
        out += _indented(f"- contradiction: {c.topic}", "  ")
        for m in _columns(analysis):
            out += _indented(f"{m}: {c.stances.get(m, _UNSTATED)}", "      ")
    for title, items in _analysis_lists(analysis):
        out.append(f"  {title}:")
        for who, what in items:
            out += _indented(f"- {who}: {what}" if who else f"- {what}", "    ")
    if analysis.empty:
        out += _indented(_NOTHING_FOUND, "  ")
    return out


def _indented(text: str, indent: str) -> list[str]:
    """One of our lines holding model text, wrapped at WIDTH under ``indent``; a list item's continuation
    lines align under its text."""
    hang = indent + ("  " if text.startswith("- ") else "")
    return textwrap.wrap(" ".join(plain(text).split()), WIDTH, initial_indent=indent, subsequent_indent=hang,
                         break_on_hyphens=False) or [indent.rstrip()]


def _heading(title: str) -> list[str]:
    return [_RULE, *wrap(title), _RULE]


def _field(name: str, value: str) -> list[str]:
    """``name`` in an 11-column gutter, ``value`` wrapped beside it."""
    gutter = f"{name:<11}"
    return textwrap.wrap(" ".join(plain(value).split()), WIDTH, initial_indent=gutter,
                         subsequent_indent=" " * len(gutter), break_on_hyphens=False) or [name]


# Indentation, blockquote markers and a list marker: what a wrapped line's continuation lines align under.
_LEAD = re.compile(r"[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+)?")


def _fit(text: str, indent: str = "") -> list[str]:
    """Model text for a terminal: prose lines wrapped at WIDTH under their own indentation or list
    marker; code blocks, tables and HTML blocks kept line for line (wrapping would change them)."""
    verbatim = _verbatim_lines(text)
    out: list[str] = []
    for n, line in enumerate(text.split("\n")):
        if not line.strip():
            out.append("")
            continue
        if n in verbatim or len(indent) + len(line) <= WIDTH:
            out.append(indent + line)
            continue
        lead = _LEAD.match(line)
        prefix = lead.group() if lead else ""
        hang = re.sub(r"[^ \t>]", " ", prefix)
        out += textwrap.wrap(line[len(prefix):], WIDTH, initial_indent=indent + prefix,
                             subsequent_indent=indent + hang, break_long_words=False, break_on_hyphens=False)
    return out


def _verbatim_lines(text: str) -> set[int]:
    tokens = _block_parser().parse(text)
    return {
        n
        for t in tokens
        if t.type in ("fence", "code_block", "table_open", "html_block") and t.map is not None
        for n in range(*t.map)
    }


@lru_cache(maxsize=1)
def _block_parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


# --- markdown ----------------------------------------------------------------------------------------


def markdown_report(result: FusionResult) -> str:
    """The whole run as Markdown; model text keeps its Markdown but raw HTML, stray list markers and
    links to anything but a web page are inert; our own strings are escaped to read as plain text."""
    md: list[str] = []
    md.append("## Fused answer")
    md.append(f"*{escape_markdown(result.mode)} · judge {escape_markdown(result.judge)}*")
    md.append("")
    md.append(neutralize_markdown(result.answer.strip())
              or f"*({escape_markdown(no_answer_words(result.verdict))})*")
    md.append("")

    md.append("## Judge")
    v = result.verdict
    if v is None:
        md.append("No verdict.")
    else:
        md.append(f"- **mode:** {escape_markdown(v.mode)}")
        md.append(f"- **judge:** {escape_markdown(v.model + _fallback_words(v, result.judge))}")
        md.append(f"- **choice:** {escape_markdown(_choice(v))}")
        best = _ranked_best(v)
        if best:
            md.append(f"- **ranked best:** {escape_markdown(best)}")
        orders = _orders(v)
        if orders:
            md.append(f"- **orders:** {escape_markdown(orders)}")
        for label, model in v.labels.items():
            md.append(f"- **{escape_markdown(label)}** = {escape_markdown(model)}")
        md += [f"- {escape_markdown(n)}" for n in v.notes]
        if v.analysis is not None:
            md += ["", *_analysis_markdown(v.analysis)]
        if v.reasoning.strip():
            md += ["", "**Reasoning**", "", neutralize_markdown(v.reasoning.strip())]
    md.append("")

    md.append("## Answers")
    for label, calls in _by_member(result.responses):
        several = len(calls) > 1
        for r in calls:
            round_ = f" (round {r.round})" if several else ""
            md.append(f"### {escape_markdown(label)}{round_}")
            md.append(escape_markdown(f"{r.model} · {status_word(r)} · {figures(r)}"))
            md.append("")
            md.append(neutralize_markdown(r.text.strip()) or "*(no text)*")
            md.append("")

    md.append("## Cost & latency")
    frame = _ledger(result)
    if frame.empty:
        md.append("No calls.")
    else:
        md.append(ledger_display(frame).map(escape_markdown).to_markdown(index=False))
        for note in (counted_note(frame), OVERHEAD_NOTE if (frame["model"] == "overhead").any() else None):
            if note:
                md += ["", escape_markdown(note)]
    md.append("")

    if result.warnings:
        md.append("## Warnings")
        md += [f"- {escape_markdown(w)}" for w in result.warnings]
        md.append("")
    degraded = degraded_summary(result)
    if degraded:
        md.append(f"**{escape_markdown(degraded)}**")
    return "\n".join(md).rstrip() + "\n"


def _analysis_markdown(analysis: JudgeAnalysis) -> list[str]:
    """The analysis as Markdown: the contradictions as a table, the rest as short lists; every string is
    escaped to read as plain text (a ``|`` in a stance cannot break the table)."""
    md = ["**Who said what**", ""]
    if analysis.contradictions:
        columns = _columns(analysis)
        md.append("| contradiction | " + " | ".join(escape_markdown(m) for m in columns) + " |")
        md.append("|" + " --- |" * (len(columns) + 1))
        md += ["| " + " | ".join([escape_markdown(c.topic),
                                  *(escape_markdown(c.stances.get(m, _UNSTATED)) for m in columns)]) + " |"
               for c in analysis.contradictions]
        md.append("")
    for title, items in _analysis_lists(analysis):
        md.append(f"*{escape_markdown(title)}*")
        md += [f"- {escape_markdown(who)}: {escape_markdown(what)}" if who else f"- {escape_markdown(what)}"
               for who, what in items]
        md.append("")
    if analysis.empty:
        md += [escape_markdown(_NOTHING_FOUND), ""]
    return md


# --- html --------------------------------------------------------------------------------------------


def html_report(result: FusionResult) -> str:
    """The whole run as an HTML fragment; every model-written string goes through ``present.sanitize``."""
    h: list[str] = ['<div class="fusion-magic-report">']
    h.append("<h3>Fused answer</h3>")
    h.append(f"<p><small>{escape_text(result.mode)} · judge <code>{escape_text(result.judge)}</code></small></p>")
    h.append(render_markdown(result.answer) or f"<p><i>({escape_text(no_answer_words(result.verdict))})</i></p>")

    h.append("<h3>Judge</h3>")
    h.append(verdict_html(result.verdict, result.judge) if result.verdict is not None else "<p>no verdict</p>")

    h.append("<h3>Answers</h3>")
    for label, calls in _by_member(result.responses):
        several = len(calls) > 1
        for r in calls:
            round_ = f" · round {r.round}" if several else ""
            h.append(
                f"<details open><summary><b>{escape_text(label)}</b>{round_} · "
                f"<code>{escape_text(r.model)}</code> · {escape_text(status_word(r))} · "
                f"{escape_text(figures(r))}</summary>"
                f"{render_markdown(r.text) or '<p><i>(no text)</i></p>'}</details>"
            )

    h.append("<h3>Cost &amp; latency</h3>")
    h.append(ledger_html(_ledger(result)))
    if result.warnings:
        h.append("<h3>Warnings</h3><ul>")
        h += [f"<li>{escape_text(w)}</li>" for w in result.warnings]
        h.append("</ul>")
    degraded = degraded_summary(result)
    if degraded:
        h.append(f"<p><b>{escape_text(degraded)}</b></p>")
    h.append("</div>")
    return "\n".join(h)


# --- helpers -----------------------------------------------------------------------------------------


def _reason(r: Response) -> str:
    """Why ``r`` failed, short: its kind and as many whole clauses of the message as fit."""
    return shorten(failure_detail(r), _REASON_CHARS) or r.status


def _fallback_words(v: Verdict, judge: str | None) -> str:
    if not v.fallback:
        return ""
    instead = judge if judge and judge != v.model else "the judge"
    return f" (fallback, in place of {instead})"


def _who(r: Response) -> str:
    name = r.label or r.model
    return f"{name} round {r.round}" if r.round else name


_UNSTATED = "—"
_NOTHING_FOUND = "The judge found no consensus, contradiction, unique point or blind spot to report."


def _columns(analysis: JudgeAnalysis) -> list[str]:
    """The table's columns: the judged members in pool order, then any member a stance names besides."""
    named = [m for c in analysis.contradictions for m in c.stances]
    return list(dict.fromkeys([*analysis.models, *named]))


def _analysis_lists(analysis: JudgeAnalysis) -> list[tuple[str, list[tuple[str, str]]]]:
    """The analysis's short lists that have items, titled: (title, [(member or "", text)])."""
    lists: list[tuple[str, list[tuple[str, str]]]] = [
        ("all agree", [("", point) for point in analysis.consensus]),
        ("only one answer", [(u.model, u.point) for u in analysis.unique]),
        ("no answer covered", [("", point) for point in analysis.blind_spots]),
        ("failed members", list(analysis.failed)),
    ]
    return [(title, items) for title, items in lists if items]


def _ranked_best(v: Verdict) -> str | None:
    """A merging judge's pick of the best single answer, as "Answer B = model"."""
    if not v.best_label:
        return None
    model = v.labels.get(v.best_label)
    return f"{v.best_label} = {model}" if model else v.best_label


def _orders(v: Verdict) -> str | None:
    """``--orders``: "position consistency 2/3; order 1: X, order 2: Y, order 3: Z", or None for one order."""
    if not v.orders:
        return None
    agreement = v.agreement
    measured = (f"position consistency {agreement[0]}/{agreement[1]}" if agreement is not None and agreement[1] >= 2
                else "position consistency not measured (fewer than two orders named a best answer)")
    picks = ", ".join(f"order {i}: {pick or 'no pick'}" for i, pick in enumerate(v.orders, start=1))
    return f"{measured}; {picks}"


def _choice(v: Verdict) -> str:
    if v.choice_label and v.choice:
        return f"{v.choice_label} = {v.choice}"
    if v.choice:
        return v.choice
    return "merged answer" if v.mode in ("merge", "debate") else "none"


def _by_member(responses: Iterable[Response]) -> list[tuple[str, list[Response]]]:
    """Member calls grouped by pool label (first-seen order), rounds in call order."""
    groups: dict[str, list[Response]] = {}
    for r in sorted(responses, key=lambda r: (r.call_id, r.round)):
        groups.setdefault(r.label or r.model, []).append(r)
    return list(groups.items())


def _ledger(result: FusionResult) -> pd.DataFrame:
    return with_totals(result.ledger, result.wall_s or None)
