"""A verdict as the reports and views show it: the judge's decision and its analysis ("who said what"), for
every job kind that judges answers (a fused run's Judge tab and report, the fused answer about a video).
Every string is escaped here: model ids, the judge's reasoning and its analysis are untrusted text.

    html = verdict_html(result.verdict, judge="openai:gpt-4o")
"""

from __future__ import annotations

from ..present.sanitize import escape_text, render_markdown
from .analysis import JudgeAnalysis
from .verdict import Verdict


def verdict_html(verdict: Verdict, judge: str | None = None) -> str:
    """The judge's decision: mode, judge, choice, which label was which model, reasoning, notes.

    ``judge`` is the judge the run asked for; a fallback vote names it as the judge it stands in for.
    """
    rows = "".join(f"<li><b>{escape_text(k)}</b>: {_field_html(k, v, verdict)}</li>"
                   for k, v in verdict_fields(verdict, judge))
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


def verdict_fields(v: Verdict, judge: str | None = None) -> list[tuple[str, str]]:
    """The verdict's decision as (field, plain text) pairs, in the order every report shows them: mode, judge
    (with the fallback's words: ``judge`` is the judge the run asked for), choice, then ranked best and orders
    when there are any. Not escaped: each report escapes for its own format.

        verdict_fields(v, "openai:gpt-4o")   # [("mode", "best-of"), ("judge", "vote (fallback, ...)"), ...]
    """
    fields = [("mode", v.mode), ("judge", v.model + fallback_words(v, judge)), ("choice", choice_words(v))]
    best = ranked_best(v)
    if best:
        fields.append(("ranked best", best))
    orders = orders_words(v)
    if orders:
        fields.append(("orders", orders))
    return fields


def _field_html(name: str, value: str, v: Verdict) -> str:
    """A field's value as HTML: the judge's model id as code, the rest as text."""
    if name == "judge" and value.startswith(v.model):
        return f"<code>{escape_text(v.model)}</code>{escape_text(value[len(v.model):])}"
    return escape_text(value)


def analysis_html(analysis: JudgeAnalysis) -> str:
    """The judge's analysis as a compact "who said what": the contradictions as a table (a row per topic,
    a column per member), then consensus, points only some answers made, points only one answer made, blind
    spots and failed members as short lists. Every string is escaped: the judge's text and the model ids are
    shown as plain text."""
    parts = ["<h4>Who said what</h4>"]
    if analysis.contradictions:
        columns = analysis_columns(analysis)
        head = "".join(f"<th><code>{escape_text(m)}</code></th>" for m in columns)
        rows = "".join(
            f"<tr><td>{escape_text(c.topic)}</td>"
            + "".join(f"<td>{escape_text(c.stances.get(m, UNSTATED))}</td>" for m in columns)
            + "</tr>"
            for c in analysis.contradictions
        )
        parts.append(f"<table><thead><tr><th>contradiction</th>{head}</tr></thead><tbody>{rows}</tbody></table>")
    for title, items in analysis_lists(analysis):
        lis = "".join(
            f"<li><code>{escape_text(who)}</code>: {escape_text(what)}</li>" if who else f"<li>{escape_text(what)}</li>"
            for who, what in items
        )
        parts.append(f"<p><b>{escape_text(title)}</b></p><ul>{lis}</ul>")
    if analysis.empty:
        parts.append(f"<p><i>{escape_text(NOTHING_FOUND)}</i></p>")
    return "".join(parts)


def no_answer_words(verdict: Verdict | None) -> str:
    """What stands where the fused answer would: why there is none."""
    if verdict is not None and verdict.undecided:
        return "no answer: no majority among the answers, so the vote picked none; -j MODEL has a judge weigh them"
    return "no answer"


def fallback_words(v: Verdict, judge: str | None) -> str:
    if not v.fallback:
        return ""
    instead = judge if judge and judge != v.model else "the judge"
    return f" (fallback, in place of {instead})"


UNSTATED = "—"
NOTHING_FOUND = ("The judge found no consensus, contradiction, partly covered or unique point, or blind spot to "
                 "report.")


def analysis_columns(analysis: JudgeAnalysis) -> list[str]:
    """The table's columns: the judged members in pool order, then any member a stance names besides."""
    named = [m for c in analysis.contradictions for m in c.stances]
    return list(dict.fromkeys([*analysis.models, *named]))


def analysis_lists(analysis: JudgeAnalysis) -> list[tuple[str, list[tuple[str, str]]]]:
    """The analysis's short lists that have items, titled: (title, [(member or "", text)])."""
    lists: list[tuple[str, list[tuple[str, str]]]] = [
        ("all agree", [("", point) for point in analysis.consensus]),
        ("only some answers", [(", ".join(p.models), p.point) for p in analysis.partial_coverage]),
        ("only one answer", [(u.model, u.point) for u in analysis.unique]),
        ("no answer covered", [("", point) for point in analysis.blind_spots]),
        ("failed members", list(analysis.failed)),
    ]
    return [(title, items) for title, items in lists if items]


def ranked_best(v: Verdict) -> str | None:
    """A merging judge's pick of the best single answer, as "Answer B = model"."""
    if not v.best_label:
        return None
    model = v.labels.get(v.best_label)
    return f"{v.best_label} = {model}" if model else v.best_label


def orders_words(v: Verdict) -> str | None:
    """``--orders``: "position consistency 2/3; order 1: X, order 2: Y, order 3: Z", or None for one order."""
    if not v.orders:
        return None
    agreement = v.agreement
    measured = (f"position consistency {agreement[0]}/{agreement[1]}" if agreement is not None and agreement[1] >= 2
                else "position consistency not measured (fewer than two orders named a best answer)")
    picks = ", ".join(f"order {i}: {pick or 'no pick'}" for i, pick in enumerate(v.orders, start=1))
    return f"{measured}; {picks}"


def choice_words(v: Verdict) -> str:
    if v.choice_label and v.choice:
        return f"{v.choice_label} = {v.choice}"
    if v.choice:
        return v.choice
    return "merged answer" if v.mode in ("merge", "debate") else "none"


__all__ = ["NOTHING_FOUND", "UNSTATED", "analysis_columns", "analysis_html", "analysis_lists", "choice_words",
           "fallback_words", "no_answer_words", "orders_words", "ranked_best", "verdict_fields", "verdict_html"]
