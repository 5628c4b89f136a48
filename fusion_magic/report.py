"""A finished run as a document: plain text, Markdown, or sanitized HTML.

The text form is what terminal IPython, scripts and saved notebooks show, so its layout is stable:
fused answer, judge verdict, each member, the cost and latency table, warnings, then one
``DEGRADED: ...`` line when something failed. Model-written strings are untrusted: the HTML form sends
each through ``view.sanitize``, the Markdown form neutralizes raw HTML, the text form drops terminal
control characters.

    print(text_report(result))
    html = html_report(result)

The small ``*_html`` and ``status_word`` helpers are shared with the live widget view so both say the
same thing in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .ledger import with_totals
from .states import failure_detail, status_word
from .view.sanitize import escape_text, neutralize_markdown, render_markdown

if TYPE_CHECKING:
    import pandas as pd

    from .result import FusionResult, Response, Verdict

__all__ = [
    "degraded_summary",
    "figures",
    "html_report",
    "ledger_display",
    "ledger_html",
    "markdown_report",
    "status_word",
    "text_report",
    "verdict_html",
]

_RULE = "=" * 72
_MISSING = "-"

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


def degraded_summary(result: FusionResult) -> str | None:
    """What went wrong, in one line, or None when the run is not degraded."""
    if not result.degraded:
        return None
    parts: list[str] = []
    failed = result.failed
    if failed:
        names = ", ".join(f"{_who(r)} ({_status_detail(r)})" for r in failed)
        parts.append(f"{len(failed)} member call{'s' if len(failed) != 1 else ''} failed: {names}")
    for j in result.judge_responses:
        if not j.ok:
            parts.append(f"judge {j.model} failed ({_status_detail(j)})")
    if result.verdict is not None and result.verdict.fallback:
        parts.append("the verdict is a fallback (majority vote), not the judge's")
    return "DEGRADED: " + "; ".join(parts or ["see the ledger"])


def ledger_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The ledger (totals row included) as strings for display: fixed decimals, ``-``/``?`` for unknowns,
    short headers with units (``latency s``, ``cost $``)."""
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
    out["error"] = [_short(v) for v in frame["error"]]
    return out.reset_index(drop=True).rename(columns=_HEADERS)


COUNTED_NOTE = "~ tokens counted by fusion_magic: the server streamed no usage (output: text chunks; input: chars/4)"


def counted_note(frame: pd.DataFrame) -> str | None:
    """The footnote for ``~`` figures, when the ledger has any."""
    return COUNTED_NOTE if (frame["tokens_source"] == "counted").any() else None


def ledger_html(frame: pd.DataFrame) -> str:
    """The ledger as an HTML table built here, every cell escaped (errors may quote provider text)."""
    if frame.empty:
        return "<p><i>no calls yet</i></p>"
    shown = ledger_display(frame)
    # Figures stay on one line; only the free-text error column may wrap, so the table stays scannable.
    cell = 'style="white-space:nowrap;padding:2px 8px;text-align:{align}"'
    last = len(shown.columns) - 1
    head = "".join(f"<th {cell.format(align='left')}>{escape_text(c)}</th>" for c in shown.columns)
    rows = []
    for record in shown.itertuples(index=False):
        total = record[0] == "TOTAL"
        cells = "".join(
            f"<td {cell.format(align='left')}>{escape_text(v)}</td>" if i != last
            else f'<td style="padding:2px 8px;min-width:24em">{escape_text(v)}</td>'
            for i, v in enumerate(record)
        )
        rows.append(f'<tr style="font-weight:bold">{cells}</tr>' if total else f"<tr>{cells}</tr>")
    note = counted_note(frame)
    footnote = f'<p style="font-size:85%"><i>{escape_text(note)}</i></p>' if note else ""
    return (
        '<div style="overflow-x:auto"><table style="border-collapse:collapse;font-size:85%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{footnote}"
    )


def verdict_html(verdict: Verdict) -> str:
    """The judge's decision: mode, judge, choice, which label was which model, reasoning, notes."""
    items = [
        ("mode", escape_text(verdict.mode)),
        ("judge", f"<code>{escape_text(verdict.model)}</code>"),
        ("choice", escape_text(_choice(verdict))),
    ]
    if verdict.fallback:
        items.append(("fallback", "yes: the judge failed, this is a majority vote"))
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
    """The whole run as plain text: answer, verdict, members, ledger with totals, warnings, DEGRADED."""
    out: list[str] = []
    out += _heading(f"Fused answer ({result.mode}, judge {_plain(result.judge)})")
    out.append(_plain(result.answer).strip() or "(no answer)")
    out.append("")

    out += _heading("Judge")
    v = result.verdict
    if v is None:
        out.append("no verdict")
    else:
        out.append(f"mode:      {_plain(v.mode)}")
        out.append(f"judge:     {_plain(v.model)}")
        out.append(f"choice:    {_plain(_choice(v))}")
        if v.fallback:
            out.append("fallback:  yes: the judge failed, this is a majority vote")
        for i, (label, model) in enumerate(v.labels.items()):
            out.append(f"{'labels:' if i == 0 else '':<11}{_plain(label)} = {_plain(model)}")
        for i, note in enumerate(v.notes):
            out.append(f"{'notes:' if i == 0 else '':<11}{_plain(note)}")
        if v.reasoning.strip():
            out.append("reasoning:")
            out += _indent(_plain(v.reasoning).strip())
    out.append("")

    groups = _by_member(result.responses)
    out += _heading(f"Answers ({len(groups)})")
    for label, calls in groups:
        several = len(calls) > 1
        for r in calls:
            round_ = f" · round {r.round}" if several else ""
            out.append(f"--- {_plain(label)} · {_plain(r.model)}{round_} · {_plain(status_word(r))} ---")
            out.append(figures(r))
            out.append(_plain(r.text).strip() or "(no text)")
            out.append("")

    out += _heading("Cost & latency")
    frame = _ledger(result)
    out.append(_text_table(ledger_display(frame)) if not frame.empty else "no calls")
    if not frame.empty and (footnote := counted_note(frame)):
        out.append(footnote)
    out.append("")

    if result.warnings:
        out += _heading("Warnings")
        out += [f"- {_plain(w)}" for w in result.warnings]
        out.append("")
    degraded = degraded_summary(result)
    if degraded:
        out.append(_plain(degraded))
    return "\n".join(out).rstrip() + "\n"


def _text_table(shown: pd.DataFrame) -> str:
    # Built by hand rather than DataFrame.to_string (which right-aligns text) or tabulate (which pads
    # every header): text left, figures right, two spaces apart, trailing blanks trimmed.
    headers = [str(c) for c in shown.columns]
    rows = [[str(v) for v in row] for row in shown.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if h in _NUMERIC else c.ljust(w) for c, w, h in zip(cells, widths, headers, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _heading(title: str) -> list[str]:
    return [_RULE, title, _RULE]


def _indent(text: str, prefix: str = "    ") -> list[str]:
    return [prefix + line if line else "" for line in text.splitlines()]


# --- markdown ----------------------------------------------------------------------------------------


def markdown_report(result: FusionResult) -> str:
    """The whole run as Markdown; model text keeps its Markdown but any raw HTML in it is inert."""
    md: list[str] = []
    md.append("## Fused answer")
    md.append(f"*{_md_inline(result.mode)} · judge {_md_inline(result.judge)}*")
    md.append("")
    md.append(neutralize_markdown(result.answer.strip()) or "*(no answer)*")
    md.append("")

    md.append("## Judge")
    v = result.verdict
    if v is None:
        md.append("No verdict.")
    else:
        md.append(f"- **mode:** {_md_inline(v.mode)}")
        md.append(f"- **judge:** {_md_inline(v.model)}")
        md.append(f"- **choice:** {_md_inline(_choice(v))}")
        if v.fallback:
            md.append("- **fallback:** yes: the judge failed, this is a majority vote")
        for label, model in v.labels.items():
            md.append(f"- **{_md_inline(label)}** = {_md_inline(model)}")
        md += [f"- {_md_inline(n)}" for n in v.notes]
        if v.reasoning.strip():
            md += ["", "**Reasoning**", "", neutralize_markdown(v.reasoning.strip())]
    md.append("")

    md.append("## Answers")
    for label, calls in _by_member(result.responses):
        several = len(calls) > 1
        for r in calls:
            round_ = f" (round {r.round})" if several else ""
            md.append(f"### {_md_inline(label)}{round_}: {_md_inline(status_word(r))}")
            md.append(f"{_md_inline(r.model)} · {figures(r)}")
            md.append("")
            md.append(neutralize_markdown(r.text.strip()) or "*(no text)*")
            md.append("")

    md.append("## Cost & latency")
    frame = _ledger(result)
    if frame.empty:
        md.append("No calls.")
    else:
        shown = ledger_display(frame).map(_md_cell)
        md.append(shown.to_markdown(index=False))
        if note := counted_note(frame):
            md.append("")
            md.append(_md_inline(note))
    md.append("")

    if result.warnings:
        md.append("## Warnings")
        md += [f"- {_md_inline(w)}" for w in result.warnings]
        md.append("")
    degraded = degraded_summary(result)
    if degraded:
        md.append(f"**{_md_inline(degraded)}**")
    return "\n".join(md).rstrip() + "\n"


def _md_inline(value: object) -> str:
    # One line, no raw HTML, no Markdown structure that could open a block.
    return neutralize_markdown(" ".join(str(value).split())).replace("*", r"\*").replace("_", r"\_")


def _md_cell(value: object) -> str:
    return _md_inline(value).replace("|", r"\|")


# --- html --------------------------------------------------------------------------------------------


def html_report(result: FusionResult) -> str:
    """The whole run as an HTML fragment; every model-written string goes through ``view.sanitize``."""
    h: list[str] = ['<div class="fusion-magic-report">']
    h.append("<h3>Fused answer</h3>")
    h.append(f"<p><small>{escape_text(result.mode)} · judge <code>{escape_text(result.judge)}</code></small></p>")
    h.append(render_markdown(result.answer) or "<p><i>(no answer)</i></p>")

    h.append("<h3>Judge</h3>")
    h.append(verdict_html(result.verdict) if result.verdict is not None else "<p>no verdict</p>")

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


def _first_line(value: object, limit: int = 160) -> str:
    lines = _plain(value).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _short(value: object) -> str:
    import pandas as pd

    if value is None or value is pd.NA or _isnan(value):
        return ""
    return _first_line(value, 60)


def _isnan(value: object) -> bool:
    return isinstance(value, float) and value != value


def _n(v: int | None) -> str:
    return "?" if v is None else str(v)


def _status_detail(r: Response) -> str:
    return failure_detail(r)


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
