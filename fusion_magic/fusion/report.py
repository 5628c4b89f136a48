"""A finished run as a document: plain text, Markdown, or sanitized HTML.

The text form is what terminal IPython, scripts and saved notebooks show, so its layout is stable:
fused answer, judge verdict, each member, the cost and latency table, warnings, then a
``DEGRADED: ...`` sentence when something failed. It fits 100 columns: prose is wrapped (model code
blocks and tables are kept as written), the ledger's wide columns wrap in their cells, and an error
that must be shortened loses whole clauses, never half a word; the full text stays in the result
(``result.ledger``, ``Response.error``). Model-written strings are untrusted: the HTML form sends each
through ``present.sanitize``, the Markdown form neutralizes raw HTML and link syntax, the text form drops
terminal control characters.

A run that had attachments shows them above the answer (thumbnails and chips in HTML, their names in text and
Markdown); a follow-up shows the conversation so far above it too, folded in HTML, a line per turn in text, in
full in Markdown (``thread_markdown``, the ``.md`` export).

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

from ..core.ledger import ledger_with_totals
from ..core.state import State
from ..judge.report import (
    NOTHING_FOUND,
    UNSTATED,
    analysis_columns,
    analysis_html,
    analysis_lists,
    choice_words,
    no_answer_words,
    verdict_fields,
    verdict_html,
)
from ..present.attachments import (
    Turn,
    attachments_html,
    attachments_line,
    chip_text,
    thread_html,
    thread_title,
    thumbnail,
)
from ..present.fold import REPORT_STYLE, capped_markdown, copy_button, folded
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
from ..present.sanitize import escape_markdown, escape_text, neutralize_markdown
from ..present.wording import colour, degraded_html, failure_detail, status_word

if TYPE_CHECKING:
    import pandas as pd
    from markdown_it import MarkdownIt

    from ..core.attachment import Attachment
    from ..core.record import Response
    from ..judge.analysis import JudgeAnalysis
    from .result import FusionResult

__all__ = ["analysis_html", "degraded_summary", "html_report", "markdown_report", "summary_line", "text_report",
           "thread_markdown", "turns_of", "verdict_html"]

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
    cancelled = [r for r in result.failed if r.state is State.CANCELLED]
    # Withheld by the provider's safety filter: the same word as a filtered clip, not a failure of the model.
    filtered = [r for r in result.failed if r.state is State.FILTERED]
    failed = [r for r in result.failed if r.state not in (State.CANCELLED, State.FILTERED)]
    if failed:
        names = ", ".join(f"{_who(r)} ({_reason(r)})" for r in failed)
        parts.append(f"{len(failed)} member call{'s' if len(failed) != 1 else ''} failed: {names}")
    if filtered:
        names = ", ".join(_who(r) for r in filtered)
        parts.append(f"{len(filtered)} member call{'s' if len(filtered) != 1 else ''} filtered by the provider: "
                     f"{names}")
    if cancelled:
        names = ", ".join(_who(r) for r in cancelled)
        parts.append(f"{len(cancelled)} member call{'s' if len(cancelled) != 1 else ''} cancelled: {names}")
    judge_failed = [j for j in result.judge_responses if not j.ok]
    parts += [f"judge {j.model} cancelled" if j.state is State.CANCELLED
              else f"judge {j.model} failed ({_reason(j)})" for j in judge_failed]
    if result.verdict is not None and result.verdict.fallback:
        if judge_failed:
            parts[-1] += ", so a vote chose the answer"
        elif result.judge_responses:
            parts.append("the judge gave no usable verdict, so a vote chose the answer")
        else:
            parts.append("no answer reached the judge")
    return "DEGRADED: " + "; ".join(parts or ["see the ledger"]) + "."


def summary_line(result: FusionResult, *, degraded: bool = True, ledger: pd.DataFrame | None = None) -> str:
    """The run in one line, under the answer: what decided it, how many answers, time, cost, degraded or not
    (``degraded=False`` leaves that word to the ``DEGRADED: ...`` sentence the reports put right below it).
    ``ledger``: the run's ledger with totals, when the caller has it already.

    ``best-of · judge anthropic:claude-sonnet-4-5 chose Answer A = openai:gpt-4o · 3/3 answers · 2.31 s ·
    $0.001234``
    """
    v = result.verdict
    if v is None:
        decided = "no verdict"
    elif v.undecided:
        decided = "the vote found no majority"
    else:
        who = "the vote" if v.model == "vote" else f"judge {v.model}"
        if v.fallback:
            who = f"a vote (in place of {result.judge})"
        if v.mode in ("merge", "debate") and not v.fallback and not v.choice:
            decided = f"{who} merged the answers"
        else:
            agreed = f" ({v.votes[0]} of {v.votes[1]} agreed)" if v.votes else ""
            decided = f"{who} chose {choice_words(v)}{agreed}"
    parts = [result.mode, decided, f"{result.n_ok}/{len(result.pool)} answers"]
    if result.wall_s:
        parts.append(f"{result.wall_s:.2f} s")
    parts.append(_total_cost(_ledger(result) if ledger is None else ledger))
    if degraded and result.degraded:
        parts.append("DEGRADED")
    return " · ".join(parts)


def _total_cost(frame: pd.DataFrame) -> str:
    """The totals row's cost, in words: ``$0.001234``, why it is unknown, or that no call was made."""
    if frame.empty:
        return "no calls"
    import pandas as pd

    # A scan of two columns: a boolean mask and an index lookup cost a pandas round trip each.
    totals = [cost for model, cost in zip(frame["model"], frame["cost_usd"], strict=True) if model == "TOTAL"]
    cost = None if not totals or totals[0] is None or totals[0] is pd.NA else float(totals[0])
    return "cost unknown (see the ledger)" if cost is None else f"${cost:.6f}"


# --- text ------------------------------------------------------------------------------------------


def text_report(result: FusionResult) -> str:
    """The whole run as plain text at most ``WIDTH`` columns wide (model code blocks and tables, and
    words longer than a line, excepted): answer, verdict, members, ledger with totals, warnings, DEGRADED."""
    out: list[str] = _context_text(result)
    out += _heading(f"Fused answer ({result.mode}, judge {plain(result.judge)})")
    out += _fit(plain(result.answer).strip() or f"({no_answer_words(result.verdict)})")
    out.append("")
    frame = _ledger(result)
    out += wrap(plain(summary_line(result, degraded=False, ledger=frame)), "  ")
    degraded = degraded_summary(result)
    if degraded:
        out += wrap(degraded, "  ")
    out.append("")

    out += _heading("Judge")
    v = result.verdict
    if v is None:
        out.append("no verdict")
    else:
        for name, value in verdict_fields(v, result.judge):
            out += _field(f"{name}:", value)
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
    out += text_ledger(frame) if not frame.empty else ["no calls"]
    out.append("")

    if result.warnings:
        out += _heading("Notes")
        for w in result.warnings:
            out += wrap(f"- {w}", "  ")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# An earlier turn's prompt or answer on the text report's thread lines: one line each, cut at a word.
_TURN_LINE = WIDTH - 12


def _context_text(result: FusionResult) -> list[str]:
    """What the text report says above the answer: for a follow-up, a line per earlier turn (its prompt, what it
    attached, the start of its fused answer) and this turn's prompt; then what this turn attached."""
    out: list[str] = []
    earlier = result.turns[:-1]
    if earlier:
        out += wrap(f"{thread_title(len(earlier))}:")
        for n, run in enumerate(earlier, 1):
            out += _indented(f"Turn {n}: {_one_line(run.prompt)}", "  ")
            if run.attachments:
                out += _indented(attachments_line(run.attachments), "    ")
            out += _indented(f"fused answer: {_one_line(run.answer) or '(none)'}", "    ")
        out += _indented(f"Turn {len(earlier) + 1} (this one): {_one_line(result.prompt)}", "")
    if result.attachments:
        out += _indented(attachments_line(result.attachments), "")
    return [*out, ""] if out else out


def _one_line(text: str, width: int = _TURN_LINE) -> str:
    """``text`` on one line, cut at a word with ``…`` past ``width`` characters."""
    return textwrap.shorten(" ".join(plain(text).split()), width, placeholder=" …", break_on_hyphens=False)


def _analysis_text(analysis: JudgeAnalysis) -> list[str]:
    """The analysis for a terminal: a table would not fit 100 columns with several members, so each
    contradiction lists its stances under it."""
    out = ["who said what:"]
    for c in analysis.contradictions:
        out += _indented(f"- contradiction: {c.topic}", "  ")
        for m in analysis_columns(analysis):
            out += _indented(f"{m}: {c.stances.get(m, UNSTATED)}", "      ")
    for title, items in analysis_lists(analysis):
        out.append(f"  {title}:")
        for who, what in items:
            out += _indented(f"- {who}: {what}" if who else f"- {what}", "    ")
    if analysis.empty:
        out += _indented(NOTHING_FOUND, "  ")
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
    gutter = f"{name:<11}" if len(name) < 11 else f"{name} "  # "ranked best:" is longer than the gutter
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


def markdown_report(result: FusionResult, *, thread: bool = True) -> str:
    """The whole run as Markdown; model text keeps its Markdown but raw HTML, stray list markers and
    links to anything but a web page are inert; our own strings are escaped to read as plain text. A follow-up
    (``thread``) starts with the conversation so far, as ``thread_markdown`` writes it."""
    if thread and result.parent is not None:
        return thread_markdown(result.turns)
    return _report_markdown(result, attached=True)


def _report_markdown(result: FusionResult, *, attached: bool) -> str:
    """One run's report as Markdown; ``attached``: name its attachments under the heading."""
    md: list[str] = []
    md.append("## Fused answer")
    md.append(f"*{escape_markdown(result.mode)} · judge {escape_markdown(result.judge)}*")
    md.append("")
    if attached and result.attachments:
        md += [f"*{escape_markdown(attachments_line(result.attachments))}*", ""]
    md.append(neutralize_markdown(result.answer.strip())
              or f"*({escape_markdown(no_answer_words(result.verdict))})*")
    md.append("")
    frame = _ledger(result)
    md.append(f"*{escape_markdown(summary_line(result, degraded=False, ledger=frame))}*")
    md.append("")
    degraded = degraded_summary(result)
    if degraded:
        md += [f"**{escape_markdown(degraded)}**", ""]

    md.append("## Judge")
    v = result.verdict
    if v is None:
        md.append("No verdict.")
    else:
        md += [f"- **{name}:** {escape_markdown(value)}" for name, value in verdict_fields(v, result.judge)]
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
    if frame.empty:
        md.append("No calls.")
    else:
        md.append(ledger_display(frame).map(escape_markdown).to_markdown(index=False))
        for note in (counted_note(frame), OVERHEAD_NOTE if (frame["model"] == "overhead").any() else None):
            if note:
                md += ["", escape_markdown(note)]
    md.append("")

    if result.warnings:
        md.append("## Notes")
        md += [f"- {escape_markdown(w)}" for w in result.warnings]
        md.append("")
    return "\n".join(md).rstrip() + "\n"


def thread_markdown(runs: list[FusionResult]) -> str:
    """A conversation as Markdown (the ``.md`` export): each earlier turn's prompt, its attachments (an image as
    its thumbnail, a file by name, kind and size) and its fused answer, then the last turn's prompt and
    attachments and its whole report. Prompts and model text are made inert as in ``markdown_report``."""
    if not runs:
        return ""
    md: list[str] = []
    if len(runs) > 1:
        md += [f"# Conversation ({len(runs)} turns)", ""]
    for n, run in enumerate(runs[:-1], 1):
        md += _turn_markdown(n, run)
        md += [f"**Fused answer** *({escape_markdown(run.mode)} · judge {escape_markdown(run.judge)})*", "",
               neutralize_markdown(run.answer.strip()) or f"*({escape_markdown(no_answer_words(run.verdict))})*",
               ""]
    last = runs[-1]
    if len(runs) > 1:
        md += _turn_markdown(len(runs), last)
    md.append(_report_markdown(last, attached=len(runs) == 1))
    return "\n".join(md).rstrip() + "\n"


def _turn_markdown(n: int, run: FusionResult) -> list[str]:
    md = [f"## Turn {n}", "", "**You**", "", neutralize_markdown(run.prompt.strip()) or "*(no prompt)*", ""]
    if run.attachments:
        md += ["**Attached**", "", *_attachments_markdown(run.attachments), ""]
    return md


def _attachments_markdown(attachments: Iterable[Attachment]) -> list[str]:
    """A list item per attachment: an image's thumbnail (a small ``data:`` image, as the HTML report shows it)
    then its name, kind and size; a PDF or a text file by name, kind and size."""
    items = []
    for a in attachments:
        thumb = thumbnail(a)
        url = thumb.data_url if thumb is not None else None
        image = f"![{escape_markdown(a.name)}]({url}) " if url else ""
        items.append(f"- {image}{escape_markdown(chip_text(a))}")
    return items


def _analysis_markdown(analysis: JudgeAnalysis) -> list[str]:
    """The analysis as Markdown: the contradictions as a table, the rest as short lists; every string is
    escaped to read as plain text (a ``|`` in a stance cannot break the table)."""
    md = ["**Who said what**", ""]
    if analysis.contradictions:
        columns = analysis_columns(analysis)
        md.append("| contradiction | " + " | ".join(escape_markdown(m) for m in columns) + " |")
        md.append("|" + " --- |" * (len(columns) + 1))
        md += ["| " + " | ".join([escape_markdown(c.topic),
                                  *(escape_markdown(c.stances.get(m, UNSTATED)) for m in columns)]) + " |"
               for c in analysis.contradictions]
        md.append("")
    for title, items in analysis_lists(analysis):
        md.append(f"*{escape_markdown(title)}*")
        md += [f"- {escape_markdown(who)}: {escape_markdown(what)}" if who else f"- {escape_markdown(what)}"
               for who, what in items]
        md.append("")
    if analysis.empty:
        md += [escape_markdown(NOTHING_FOUND), ""]
    return md


# --- html --------------------------------------------------------------------------------------------


def html_report(result: FusionResult) -> str:
    """The whole run as an HTML fragment that fits one screen: the fused answer first (long ones folded under
    "show all") with a copy button, the one-line summary, then the judge, the members, the ledger and the notes
    folded below it. Every model-written string goes through ``present.sanitize``."""
    h: list[str] = [f'<div class="fusion-magic-report" style="{REPORT_STYLE}">']
    # A follow-up's earlier turns, folded to one line, then what this turn attached: above the new answer.
    h += [part for part in (thread_html(turns_of(result)), attachments_html(result.attachments)) if part]
    h.append('<div style="display:flex;align-items:baseline;gap:.8em">'
             f'<h3 style="margin:.3em 0">Fused answer</h3>{copy_button(result.answer) if result.answer else ""}</div>')
    missing = f"<p><i>({escape_text(no_answer_words(result.verdict))})</i></p>"
    h.append(capped_markdown(result.answer, empty=missing))
    frame = _ledger(result)
    h.append(f'<p class="fm-summary"><small>{escape_text(summary_line(result, degraded=False, ledger=frame))}'
             "</small></p>")
    degraded = degraded_summary(result)
    if degraded:
        h.append(degraded_html(degraded))

    v = result.verdict
    judge_line = "no verdict" if v is None else f"{v.mode} · {choice_words(v)}"
    h.append(folded(f"<b>Judge</b> · {escape_text(judge_line)}",
                    verdict_html(v, result.judge) if v is not None else "<p>no verdict</p>", cls="fm-judge"))

    groups = _by_member(result.responses)
    answers: list[str] = []
    for label, calls in groups:
        several = len(calls) > 1
        for r in calls:
            round_ = f" · round {r.round}" if several else ""
            answers.append(folded(
                f"<b>{escape_text(label)}</b>{round_} · <code>{escape_text(r.model)}</code> · "
                f'<span style="color:{colour(r)}">{escape_text(status_word(r))}</span> · {escape_text(figures(r))}',
                capped_markdown(r.text, empty="<p><i>(no text)</i></p>")))
    h.append(folded(f"<b>Answers ({len(groups)})</b> · {escape_text(_states_words(result.responses))}",
                    "".join(answers) or "<p>no answers</p>", cls="fm-members"))

    n_calls = len(frame[~frame["model"].isin(["TOTAL", "overhead"])]) if not frame.empty else 0
    h.append(folded(f"<b>Cost &amp; latency</b> · {n_calls} call{'s' if n_calls != 1 else ''} · "
                    f"{escape_text(_total_cost(frame))}", ledger_html(frame), cls="fm-ledger"))
    if result.warnings:
        notes = "".join(f"<li>{escape_text(w)}</li>" for w in result.warnings)
        h.append(folded(f"<b>Notes ({len(result.warnings)})</b>", f"<ul>{notes}</ul>", cls="fm-notes"))
    h.append("</div>")
    return "\n".join(h)


def turns_of(result: FusionResult) -> list[Turn]:
    """The turns before ``result`` in its thread (none for a first run), as ``present.attachments`` shows them."""
    return [Turn(run.prompt, run.answer, run.attachments) for run in result.turns[:-1]]


def _states_words(responses: Iterable[Response]) -> str:
    """How the member calls ended, counted: ``3 done, 1 failed``."""
    counts: dict[str, int] = {}
    for r in responses:
        word = status_word(r).split(":")[0]
        counts[word] = counts.get(word, 0) + 1
    return ", ".join(f"{n} {word}" for word, n in counts.items()) or "none"


# --- helpers -----------------------------------------------------------------------------------------


def _reason(r: Response) -> str:
    """Why ``r`` failed, short: its kind and as many whole clauses of the message as fit."""
    return shorten(failure_detail(r), _REASON_CHARS) or r.status


def _who(r: Response) -> str:
    name = r.label or r.model
    return f"{name} round {r.round}" if r.round else name


def _by_member(responses: Iterable[Response]) -> list[tuple[str, list[Response]]]:
    """Member calls grouped by pool label (first-seen order), rounds in call order."""
    groups: dict[str, list[Response]] = {}
    for r in sorted(responses, key=lambda r: (r.call_id, r.round)):
        groups.setdefault(r.label or r.model, []).append(r)
    return list(groups.items())


def _ledger(result: FusionResult) -> pd.DataFrame:
    return ledger_with_totals(result.calls, result.wall_s or None)
