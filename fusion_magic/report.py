"""A finished run as a document: plain text, Markdown, or sanitized HTML.

The text form is what terminal IPython, scripts and saved notebooks show, so its layout is stable:
fused answer, judge verdict, each member, the cost and latency table, warnings, then a
``DEGRADED: ...`` sentence when something failed. It fits 100 columns: prose is wrapped (model code
blocks and tables are kept as written), the ledger's wide columns wrap in their cells, and an error
that must be shortened loses whole clauses, never half a word; the full text stays in the result
(``result.ledger``, ``Response.error``). Model-written strings are untrusted: the HTML form sends each
through ``view.sanitize``, the Markdown form neutralizes raw HTML and link syntax, the text form drops
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

from .ledger import with_totals
from .present.sanitize import escape_markdown, escape_text, neutralize_markdown, render_markdown
from .present.wording import CallState, describe_failure, failure_detail, state_of, status_word

if TYPE_CHECKING:
    import pandas as pd
    from markdown_it import MarkdownIt

    from .record import Response
    from .result import FusionResult, Verdict

__all__ = [
    "degraded_summary",
    "figures",
    "html_report",
    "ledger_display",
    "ledger_html",
    "markdown_report",
    "shorten",
    "status_word",
    "text_report",
    "verdict_html",
]

_RULE = "=" * 72
_MISSING = "-"
# The text report's width: a terminal or a saved notebook's text output shows it without wrapping.
WIDTH = 100
# A failure's reason on the DEGRADED line: its kind and the first clauses of its message.
_REASON_CHARS = 80

# Display headers: short enough for a terminal, units in the name.
_HEADERS = {
    "attempts": "tries",
    "ttft_s": "ttft s",
    "latency_s": "latency s",
    "input_tokens": "in tok",
    "output_tokens": "out tok",
    "cost_usd": "cost $",
    "cost_source": "source",
}
_NUMERIC = frozenset({"round", "tries", "ttft s", "latency s", "in tok", "out tok", "cost $"})


# --- shared wording -----------------------------------------------------------------------------------


def figures(r: Response) -> str:
    """Tokens, seconds and cost of one call: ``12→54 tok · 1.23 s · $0.000123``.

    Unknown figures read ``?`` (a cost is never shown as 0 when the price is unknown).
    """
    mark = "~" if r.tokens_source == "counted" else ""
    tokens = f"{mark}{_n(r.input_tokens)}→{mark}{_n(r.output_tokens)} tok"
    secs = "? s" if r.latency_s is None else f"{r.latency_s:.2f} s"
    cost = "cost ?" if r.cost_usd is None else f"${r.cost_usd:.6f}"
    return f"{tokens} · {secs} · {cost}"


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits ``limit`` characters, else its leading whole clauses and ``…``; ``""`` when even
    the first clause is too long.

    A clause ends at ``: ``, ``; ``, ``, ``, ``. `` or before a parenthesis, outside brackets, so a
    parenthetical is kept or dropped whole and no word or sentence is cut in the middle.

    >>> shorten("server: HTTP 503: The upstream provider returned an error", 20)
    'server: HTTP 503…'
    """
    if len(text) <= limit:
        return text
    best = ""
    depth = 0
    for i, ch in enumerate(text[:limit]):
        end = None
        if ch in "([{":
            if depth == 0 and text[i - 1 : i] == " ":
                end = i - 1
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0 and ch in ":;,." and text[i + 1 : i + 2] == " ":
            end = i
        if end is not None:
            clause = text[:end].rstrip(" :;,.")
            if clause and len(clause) < limit:
                best = clause
    return f"{best}…" if best else ""


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


def ledger_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The ledger (totals row included) as strings for display: fixed decimals, ``-``/``?`` for unknowns,
    short headers with units (``latency s``, ``cost $``), and each error's first line without the
    ``provider:model kind:`` prefix the row already shows."""
    import pandas as pd

    def fmt(value: object, spec: str, missing: str = _MISSING) -> str:
        return missing if value is None or value is pd.NA or _isnan(value) else format(value, spec)

    out = pd.DataFrame(index=frame.index)
    out["model"] = [_plain(v) for v in frame["model"]]
    out["role"] = [_plain(v) for v in frame["role"]]
    out["round"] = [fmt(v, "d", "") for v in frame["round"]]
    out["status"] = [_plain(v) for v in frame["status"]]
    out["late"] = ["late" if bool(v) else "" for v in frame["late"]]
    out["attempts"] = [fmt(v, "d") for v in frame["attempts"]]
    out["ttft_s"] = [fmt(v, ".2f") for v in frame["ttft_s"]]
    out["latency_s"] = [fmt(v, ".2f") for v in frame["latency_s"]]
    # "~": counted by us from the stream because the server reported no usage (see COUNTED_NOTE).
    counted = ["~" if source == "counted" else "" for source in frame["tokens_source"]]
    out["input_tokens"] = [mark + fmt(v, "d") for mark, v in zip(counted, frame["input_tokens"], strict=True)]
    out["output_tokens"] = [mark + fmt(v, "d") for mark, v in zip(counted, frame["output_tokens"], strict=True)]
    out["cost_usd"] = [fmt(v, ".6f", "?") for v in frame["cost_usd"]]
    out["cost_source"] = [_plain(v) for v in frame["cost_source"]]
    out["error"] = [
        _row_error(model, status, error)
        for model, status, error in zip(frame["model"], frame["status"], frame["error"], strict=True)
    ]
    return out.reset_index(drop=True).rename(columns=_HEADERS)


COUNTED_NOTE = "~ tokens counted by fusion_magic: the server streamed no usage (output: text chunks; input: chars/4)"
OVERHEAD_NOTE = "overhead: wall time minus the critical path (the slowest member of each round, plus the judge)"


def counted_note(frame: pd.DataFrame) -> str | None:
    """The footnote for ``~`` figures, when the ledger has any."""
    return COUNTED_NOTE if (frame["tokens_source"] == "counted").any() else None


# Figures and one-word columns stay on one line; names, sources and errors wrap, which lets the table
# shrink to a narrow panel instead of pushing the error column off it. A model id may break after its
# "/" and ":" (<wbr>); an error may break anywhere, as it can quote a long unbroken token (JSON, a URL).
# table-layout:auto overrides JupyterLab's `table-layout: fixed`, which would make every column as wide.
_CELL_NOWRAP = "padding:2px 6px;vertical-align:top;white-space:nowrap;text-align:{align}"
_CELL_WRAP = "padding:2px 6px;vertical-align:top;white-space:normal;overflow-wrap:{wrap};text-align:left"
_CELL_STYLES = {
    "model": _CELL_WRAP.format(wrap="break-word"),
    "role": _CELL_WRAP.format(wrap="break-word"),
    "source": _CELL_WRAP.format(wrap="break-word"),
    "error": _CELL_WRAP.format(wrap="anywhere"),
}


def ledger_html(frame: pd.DataFrame) -> str:
    """The ledger as an HTML table built here, every cell escaped (errors may quote provider text). It
    fits the width it is given: no fixed minimum, the text columns wrap."""
    if frame.empty:
        return "<p><i>no calls yet</i></p>"
    shown = ledger_display(frame)
    columns = list(shown.columns)
    styles = [
        _CELL_STYLES.get(c) or _CELL_NOWRAP.format(align="right" if c in _NUMERIC else "left") for c in columns
    ]

    def cell(column: str, value: object) -> str:
        text = escape_text(value)
        return text.replace("/", "/<wbr>").replace(":", ":<wbr>") if column == "model" else text

    head = "".join(f'<th style="{st}">{escape_text(c)}</th>' for c, st in zip(columns, styles, strict=True))
    rows = []
    for record in shown.itertuples(index=False):
        cells = "".join(
            f'<td style="{st}">{cell(c, v)}</td>' for c, v, st in zip(columns, record, styles, strict=True)
        )
        rows.append(f'<tr style="font-weight:bold">{cells}</tr>' if record[0] == "TOTAL" else f"<tr>{cells}</tr>")
    notes = [n for n in (counted_note(frame), OVERHEAD_NOTE if (frame["model"] == "overhead").any() else None) if n]
    footnote = "".join(f'<p style="font-size:85%"><i>{escape_text(n)}</i></p>' for n in notes)
    return (
        '<div style="overflow-x:auto;max-width:100%"><table style="border-collapse:collapse;font-size:85%;'
        f'table-layout:auto;width:100%"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f"</div>{footnote}"
    )


def verdict_html(verdict: Verdict, judge: str | None = None) -> str:
    """The judge's decision: mode, judge, choice, which label was which model, reasoning, notes.

    ``judge`` is the judge the run asked for; a fallback vote names it as the judge it stands in for.
    """
    items = [
        ("mode", escape_text(verdict.mode)),
        ("judge", f"<code>{escape_text(verdict.model)}</code>{escape_text(_fallback_words(verdict, judge))}"),
        ("choice", escape_text(_choice(verdict))),
    ]
    rows = "".join(f"<li><b>{k}</b>: {v}</li>" for k, v in items)
    parts = [f"<ul>{rows}</ul>"]
    if verdict.labels:
        pairs = "".join(
            f"<tr><td>{escape_text(label)}</td><td><code>{escape_text(model)}</code></td></tr>"
            for label, model in verdict.labels.items()
        )
        parts.append(f"<table><thead><tr><th>label</th><th>model</th></tr></thead><tbody>{pairs}</tbody></table>")
    if verdict.reasoning:
        parts.append(f"<h4>Reasoning</h4>{render_markdown(verdict.reasoning)}")
    if verdict.notes:
        parts.append("<ul>" + "".join(f"<li>{escape_text(n)}</li>" for n in verdict.notes) + "</ul>")
    return "".join(parts)


# --- text ------------------------------------------------------------------------------------------


def text_report(result: FusionResult) -> str:
    """The whole run as plain text at most ``WIDTH`` columns wide (model code blocks and tables, and
    words longer than a line, excepted): answer, verdict, members, ledger with totals, warnings, DEGRADED."""
    out: list[str] = []
    out += _heading(f"Fused answer ({result.mode}, judge {_plain(result.judge)})")
    out += _fit(_plain(result.answer).strip() or "(no answer)")
    out.append("")

    out += _heading("Judge")
    v = result.verdict
    if v is None:
        out.append("no verdict")
    else:
        out += _field("mode:", v.mode)
        out += _field("judge:", v.model + _fallback_words(v, result.judge))
        out += _field("choice:", _choice(v))
        for i, (label, model) in enumerate(v.labels.items()):
            out += _field("labels:" if i == 0 else "", f"{label} = {model}")
        for i, note in enumerate(v.notes):
            out += _field("notes:" if i == 0 else "", note)
        if v.reasoning.strip():
            out.append("reasoning:")
            out += _fit(_plain(v.reasoning).strip(), indent="    ")
    out.append("")

    groups = _by_member(result.responses)
    out += _heading(f"Answers ({len(groups)})")
    for label, calls in groups:
        several = len(calls) > 1
        for r in calls:
            round_ = f" · round {r.round}" if several else ""
            out += _wrap(f"--- {label} · {r.model}{round_} ---")
            status = _plain(f"{status_word(r)} · {figures(r)}")
            # A long failure reads better whole, with the figures on their own line than after it.
            out += [status] if len(status) <= WIDTH else [*_wrap(status_word(r), "  "), figures(r)]
            out += _fit(_plain(r.text).strip() or "(no text)")
            out.append("")

    out += _heading("Cost & latency")
    frame = _ledger(result)
    out += _text_ledger(frame) if not frame.empty else ["no calls"]
    out.append("")

    if result.warnings:
        out += _heading("Warnings")
        for w in result.warnings:
            out += _wrap(f"- {w}", "  ")
        out.append("")
    degraded = degraded_summary(result)
    if degraded:
        out += _wrap(degraded, "  ")
    return "\n".join(out).rstrip() + "\n"


# The text ledger: one line per call (more only where a name or source wraps), each failed call's error
# on the line under it. The model id and role merge into "call" (the tab's label; the Answers section
# pairs it with the model id), the late flag into status; result.ledger keeps every column.
_TEXT_COLUMNS = ("call", "status", "tries", "ttft s", "latency s", "in tok", "out tok", "cost $", "source")
# The columns that wrap when the table is too wide, in the order they give way, and how far.
_MIN_WIDTHS = {"source": 12, "call": 14}
_ERROR_PREFIX = "  error: "


def _text_ledger(frame: pd.DataFrame) -> list[str]:
    shown = ledger_display(frame)
    rows: list[list[str]] = []
    errors: list[str] = []
    for rec in shown.to_dict("records"):
        model, role, status = str(rec["model"]), str(rec["role"]), str(rec["status"])
        summary_row = model in ("TOTAL", "overhead")
        if model == "TOTAL":
            call = f"TOTAL ({role})"
        elif model == "overhead":
            call = "overhead"
        else:
            call = role.removeprefix("member ") if role.startswith("member ") else (model if role == "member" else role)
            call += f", round {rec['round']}" if rec["round"] not in ("", "0") else ""
        late = ", late" if rec["late"] and not summary_row else ""
        rows.append([call, status + late, *(str(rec[c]) for c in _TEXT_COLUMNS[2:])])
        errors.append(str(rec["error"]))
    head, blocks = _text_table(list(_TEXT_COLUMNS), rows)
    out = head
    for block, error in zip(blocks, errors, strict=True):
        out += block
        if error:
            out += _error_lines(error)
    for note in (counted_note(frame), OVERHEAD_NOTE if (frame["model"] == "overhead").any() else None):
        if note:
            out += _wrap(note, "  ")
    return out


def _error_lines(error: str) -> list[str]:
    room = WIDTH - len(_ERROR_PREFIX)
    short = shorten(error, room)
    if short:
        return [_ERROR_PREFIX + short]
    return _wrap(_ERROR_PREFIX + error, " " * len(_ERROR_PREFIX))


def _text_table(headers: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    # Built by hand rather than DataFrame.to_string (which right-aligns text) or tabulate (which pads
    # every header): text left, figures right, two spaces apart, trailing blanks trimmed. When the
    # natural widths pass WIDTH, the wrapping columns give way in _MIN_WIDTHS order, each to its minimum.
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    shrinkable = [i for i, h in enumerate(headers) if h in _MIN_WIDTHS]
    for name, least in _MIN_WIDTHS.items():
        i = headers.index(name)
        excess = sum(widths) + 2 * (len(widths) - 1) - WIDTH
        widths[i] -= max(0, min(excess, widths[i] - least))

    def lines(cells: list[str]) -> list[str]:
        wrapped = [
            textwrap.wrap(c, w, break_on_hyphens=True) or [""] if i in shrinkable else [c]
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        out = []
        for n in range(max(len(w) for w in wrapped)):
            parts = []
            for w, width, h in zip(wrapped, widths, headers, strict=True):
                piece = w[n] if n < len(w) else ""
                parts.append(piece.rjust(width) if h in _NUMERIC else piece.ljust(width))
            out.append("  ".join(parts).rstrip())
        return out

    return [*lines(headers), "  ".join("-" * w for w in widths)], [lines(r) for r in rows]


def _heading(title: str) -> list[str]:
    return [_RULE, *_wrap(title), _RULE]


def _wrap(text: str, indent: str = "") -> list[str]:
    """One of our own lines (names, statuses, errors) wrapped at WIDTH; later lines start with ``indent``."""
    # Hyphens are no place to break: model ids and labels are full of them.
    return textwrap.wrap(" ".join(_plain(text).split()), WIDTH, subsequent_indent=indent,
                         break_on_hyphens=False) or [""]


def _field(name: str, value: str) -> list[str]:
    """``name`` in an 11-column gutter, ``value`` wrapped beside it."""
    gutter = f"{name:<11}"
    return textwrap.wrap(" ".join(_plain(value).split()), WIDTH, initial_indent=gutter,
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
    md.append(neutralize_markdown(result.answer.strip()) or "*(no answer)*")
    md.append("")

    md.append("## Judge")
    v = result.verdict
    if v is None:
        md.append("No verdict.")
    else:
        md.append(f"- **mode:** {escape_markdown(v.mode)}")
        md.append(f"- **judge:** {escape_markdown(v.model + _fallback_words(v, result.judge))}")
        md.append(f"- **choice:** {escape_markdown(_choice(v))}")
        for label, model in v.labels.items():
            md.append(f"- **{escape_markdown(label)}** = {escape_markdown(model)}")
        md += [f"- {escape_markdown(n)}" for n in v.notes]
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


# --- html --------------------------------------------------------------------------------------------


def html_report(result: FusionResult) -> str:
    """The whole run as an HTML fragment; every model-written string goes through ``view.sanitize``."""
    h: list[str] = ['<div class="fusion-magic-report">']
    h.append("<h3>Fused answer</h3>")
    h.append(f"<p><small>{escape_text(result.mode)} · judge <code>{escape_text(result.judge)}</code></small></p>")
    h.append(render_markdown(result.answer) or "<p><i>(no answer)</i></p>")

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

# C0/C1 controls except tab and newline: a model can emit ANSI escapes that clear or rewrite a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(value: object) -> str:
    return _CONTROL.sub("", "" if value is None else str(value).replace("\r\n", "\n"))


def _row_error(model: object, status: object, error: object) -> str:
    # The same words as the call's status line (states.failure_detail), less the kind the row shows.
    import pandas as pd

    if error is None or error is pd.NA or _isnan(error) or not str(error).strip():
        return ""
    kind = _plain(status)
    detail = describe_failure(kind, _plain(error))
    return "" if detail == kind else detail.removeprefix(f"{kind}: ")


def _reason(r: Response) -> str:
    """Why ``r`` failed, short: its kind and as many whole clauses of the message as fit."""
    return shorten(failure_detail(r), _REASON_CHARS) or r.status


def _fallback_words(v: Verdict, judge: str | None) -> str:
    if not v.fallback:
        return ""
    instead = judge if judge and judge != v.model else "the judge"
    return f" (fallback, in place of {instead})"


def _isnan(value: object) -> bool:
    return isinstance(value, float) and value != value


def _n(v: int | None) -> str:
    return "?" if v is None else str(v)


def _who(r: Response) -> str:
    name = r.label or r.model
    return f"{name} round {r.round}" if r.round else name


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
