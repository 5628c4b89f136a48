"""Call records as tables and figures a person reads: text within 100 columns, escaped HTML that fits a
notebook panel. Any job kind's ledger goes through these.

    figures(r)                      # "12→54 tok · 1.23 s · $0.000123", "1200→54 tok (1000 cached) · ..."
    ledger_html(with_totals(ledger_frame(calls), wall_s=3.2))
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING

from .sanitize import escape_text
from .wording import describe_failure, note_words

if TYPE_CHECKING:
    import pandas as pd

    from ..core.record import CallRecord


_MISSING = "-"


# The text report's width: a terminal or a saved notebook's text output shows it without wrapping.
WIDTH = 100


# Display headers: short enough for a terminal, units in the name.
_HEADERS = {
    "ordering": "order",
    "attempts": "tries",
    "ttft_s": "ttft s",
    "latency_s": "latency s",
    "input_tokens": "in tok",
    "cached_input_tokens": "cached",
    "cache_write_input_tokens": "written",
    "output_tokens": "out tok",
    "video_seconds": "video s",
    "clips": "clips",
    "cost_usd": "cost $",
    "cost_source": "source",
}


_NUMERIC = frozenset({"round", "order", "tries", "ttft s", "latency s", "in tok", "cached", "written", "out tok",
                      "video s", "clips", "cost $"})

# Parts of the input a call read from the provider's prompt cache and wrote to it (core.ledger), shown as columns
# after the input only where some call has any.
_CACHE_COLUMNS = ("cached_input_tokens", "cache_write_input_tokens")


def figures(r: CallRecord) -> str:
    """Usage, seconds and cost of one call: ``12→54 tok · 1.23 s · $0.000123``; a video call shows its
    usage in its own units (``8 s of video · 41.20 s · $3.200000``).

    Unknown figures read ``?`` (a cost is never shown as 0 when the price is unknown).
    """
    usage = " · ".join(r.usage_figures(mark_counted=True))
    secs = "? s" if r.latency_s is None else f"{r.latency_s:.2f} s"
    cost = "cost ?" if r.cost_usd is None else f"${r.cost_usd:.6f}"
    return f"{usage} · {secs} · {cost}"


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


def ledger_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The ledger (totals row included) as strings for display: fixed decimals, ``-``/``?`` for unknowns,
    short headers with units (``latency s``, ``cost $``), each error's first line without the
    ``provider:model kind:`` prefix the row already shows, and each note in ``wording``'s words (a pending
    job's note is a note, never an error)."""
    import pandas as pd

    return pd.DataFrame(display_columns(frame))


def display_columns(frame: pd.DataFrame) -> dict[str, list[str]]:
    """``ledger_display``'s columns as plain lists, header to cells: what the HTML and text tables are built
    from. Read column by column into Python lists once; a DataFrame built and walked per table cost a view
    tens of milliseconds at the end of every run."""
    import pandas as pd

    col = {name: frame[name].tolist() for name in frame.columns}

    def fmt(value: object, spec: str, missing: str = _MISSING) -> str:
        return missing if value is None or value is pd.NA or _isnan(value) else format(value, spec)

    out: dict[str, list[str]] = {}
    out["model"] = [plain(v) for v in col["model"]]
    out["role"] = [plain(v) for v in col["role"]]
    out["round"] = [fmt(v, "d", "") for v in col["round"]]
    if "ordering" in col:
        out["ordering"] = [fmt(v, "d", "") for v in col["ordering"]]
    out["status"] = [plain(v) for v in col["status"]]
    out["late"] = ["late" if v is not pd.NA and bool(v) else "" for v in col["late"]]
    out["attempts"] = [fmt(v, "d") for v in col["attempts"]]
    out["ttft_s"] = [fmt(v, ".2f") for v in col["ttft_s"]]
    out["latency_s"] = [fmt(v, ".2f") for v in col["latency_s"]]
    # "~": counted by us from the stream because the server reported no usage (see COUNTED_NOTE).
    counted = ["~" if source == "counted" else "" for source in col["tokens_source"]]
    out["input_tokens"] = [mark + fmt(v, "d") for mark, v in zip(counted, col["input_tokens"], strict=True)]
    # Of the input, what the provider read from its prompt cache and wrote to it: a column each, only when some
    # call has any (see CACHE_NOTE).
    for name in _CACHE_COLUMNS:
        if _any_count(frame, name):
            out[name] = [fmt(_number(v), "d") for v in col[name]]
    out["output_tokens"] = [mark + fmt(v, "d") for mark, v in zip(counted, col["output_tokens"], strict=True)]
    # Usage in other units: only ledgers that have it carry the column (see core.ledger.USAGE_COLUMNS).
    if "video_seconds" in col:
        out["video_seconds"] = [fmt(v, ".1f") for v in col["video_seconds"]]
    if "clips" in col:
        out["clips"] = [fmt(v, "d") for v in col["clips"]]
    out["cost_usd"] = [fmt(v, ".6f", "?") for v in col["cost_usd"]]
    out["cost_source"] = [plain(v) for v in col["cost_source"]]
    out["error"] = [
        _row_error(model, status, error)
        for model, status, error in zip(col["model"], col["status"], col["error"], strict=True)
    ]
    if "note" in col:
        out["note"] = [note_words(plain(status), plain(note) if _present(note) else None)
                       for status, note in zip(col["status"], col["note"], strict=True)]
    return {_HEADERS.get(name, name): cells for name, cells in out.items()}


COUNTED_NOTE = "~ tokens counted by fusion_magic: the server streamed no usage (output: text chunks; input: chars/4)"


OVERHEAD_NOTE = "overhead: wall time minus the critical path (the slowest member of each round, plus the judge)"


CACHE_NOTE = "cached: of the input tokens, those the provider read from its prompt cache (billed at its cached rate)"
WRITTEN_NOTE = ("written to the cache: of the input tokens, those the provider wrote to its prompt cache (Anthropic "
                "bills them at 1.25x its input rate)")


def counted_note(frame: pd.DataFrame) -> str | None:
    """The footnote for ``~`` figures, when the ledger has any."""
    return COUNTED_NOTE if (frame["tokens_source"] == "counted").any() else None


def cache_note(frame: pd.DataFrame) -> str | None:
    """The footnote for cached and written input tokens, each part when some call has any."""
    parts = [note for name, note in zip(_CACHE_COLUMNS, (CACHE_NOTE, WRITTEN_NOTE), strict=True)
             if _any_count(frame, name)]
    return "; ".join(parts) or None


def _notes(frame: pd.DataFrame) -> list[str]:
    """The ledger's footnotes, in order: counted tokens, the cache, the overhead row."""
    overhead = OVERHEAD_NOTE if (frame["model"] == "overhead").any() else None
    return [n for n in (counted_note(frame), cache_note(frame), overhead) if n]


def _any_count(frame: pd.DataFrame, name: str) -> bool:
    """Whether column ``name`` (absent from an older ledger) has a count above 0."""
    return name in frame and any((_number(v) or 0) > 0 for v in frame[name])


def _number(value: object) -> int | None:
    """A count cell as an int (None for <NA>, NaN and None)."""
    if value is None or _isnan(value):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


# Figures and one-word columns stay on one line; names, sources and errors wrap, which lets the table
# shrink to a narrow panel instead of pushing the error column off it. A model id may break after its
# "/" and ":" (<wbr>); an error may break anywhere, as it can quote a long unbroken token (JSON, a URL).
# table-layout:auto overrides JupyterLab's `table-layout: fixed`, which would make every column as wide.
_CELL_NOWRAP = "padding:2px 6px;vertical-align:top;white-space:nowrap;text-align:{align}"


_CELL_WRAP = "padding:2px 6px;vertical-align:top;white-space:normal;overflow-wrap:{wrap};text-align:left"


# An error or a note is long prose: it wraps at words, within a width that keeps it readable. ("anywhere"
# let the browser squeeze the column to one character, and its header wrapped letter by letter.)
_PROSE = _CELL_WRAP.format(wrap="break-word") + ";min-width:14em"

_CELL_STYLES = {
    "model": _CELL_WRAP.format(wrap="break-word"),
    "role": _CELL_WRAP.format(wrap="break-word"),
    "source": _CELL_WRAP.format(wrap="break-word"),
    "error": _PROSE,
    "note": _PROSE,
}
# A header is one or two short words: never broken.
_HEAD_STYLE = "padding:2px 6px;vertical-align:bottom;white-space:nowrap;text-align:{align}"


def ledger_html(frame: pd.DataFrame) -> str:
    """The ledger as an HTML table built here, every cell escaped (errors may quote provider text). It
    fits the width it is given: no fixed minimum, the text columns wrap."""
    if frame.empty:
        return "<p><i>no calls yet</i></p>"
    shown = display_columns(frame)
    columns = list(shown)
    styles = [
        _CELL_STYLES.get(c) or _CELL_NOWRAP.format(align="right" if c in _NUMERIC else "left") for c in columns
    ]

    def cell(column: str, value: object) -> str:
        text = escape_text(value)
        return text.replace("/", "/<wbr>").replace(":", ":<wbr>") if column == "model" else text

    head = "".join(f'<th style="{_HEAD_STYLE.format(align="right" if c in _NUMERIC else "left")}">{escape_text(c)}'
                   "</th>" for c in columns)
    rows = []
    for record in zip(*shown.values(), strict=True):
        cells = "".join(
            f'<td style="{st}">{cell(c, v)}</td>' for c, v, st in zip(columns, record, styles, strict=True)
        )
        rows.append(f'<tr style="font-weight:bold">{cells}</tr>' if record[0] == "TOTAL" else f"<tr>{cells}</tr>")
    notes = _notes(frame)
    footnote = "".join(f'<p style="font-size:85%"><i>{escape_text(n)}</i></p>' for n in notes)
    return (
        '<div style="overflow-x:auto;max-width:100%"><table style="border-collapse:collapse;font-size:85%;'
        f'table-layout:auto;width:100%"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f"</div>{footnote}"
    )


# The text ledger: one line per call (more only where a name or source wraps), each failed call's error
# (or a pending job's note) on the line under it. The model id and role merge into "call" (the tab's label;
# the Answers section pairs it with the model id), the late flag into status; result.ledger keeps every column.
_TEXT_COLUMNS = ("call", "status", "tries", "ttft s", "latency s", "in tok", "out tok", "cost $", "source")


# Usage columns a ledger has only when some call was billed in that unit; they go before the cost.
_TEXT_USAGE_COLUMNS = ("video s", "clips")


# The columns that wrap when the table is too wide, in the order they give way, and how far.
_MIN_WIDTHS = {"source": 12, "call": 14}


_ERROR_PREFIX = "  error: "
_NOTE_PREFIX = "  note: "
_WRITTEN_PREFIX = "  written to the cache: "


def text_ledger(frame: pd.DataFrame) -> list[str]:
    """The ledger as lines of text within ``WIDTH`` columns, each failed call's error (or note), and the input
    tokens it wrote to a prompt cache, under its row."""
    shown = display_columns(frame)
    at = _TEXT_COLUMNS.index("cost $")
    usage = [c for c in _TEXT_USAGE_COLUMNS if c in shown]
    columns = [*_TEXT_COLUMNS[:at], *usage, *_TEXT_COLUMNS[at:]]
    if "cached" in shown:  # reads from a prompt cache: a narrow column; writes (rarer) go under their row
        columns.insert(columns.index("in tok") + 1, "cached")
    rows: list[list[str]] = []
    errors: list[str] = []
    notes: list[str] = []
    written: list[str] = []
    for values in zip(*shown.values(), strict=True):
        rec = dict(zip(shown, values, strict=True))
        model, role, status = str(rec["model"]), str(rec["role"]), str(rec["status"])
        summary_row = model in ("TOTAL", "overhead")
        if model == "TOTAL":
            call = f"TOTAL ({role})"
        elif model == "overhead":
            call = "overhead"
        else:
            call = role.removeprefix("member ") if role.startswith("member ") else (model if role == "member" else role)
            order = str(rec.get("order", ""))
            if order not in ("", "0"):  # a judge's ordering (--orders); a debate round otherwise
                call += f", order {order}"
            elif rec["round"] not in ("", "0"):
                call += f", round {rec['round']}"
        late = ", late" if rec["late"] and not summary_row else ""
        rows.append([call, status + late, *(str(rec[c]) for c in columns[2:])])
        errors.append(str(rec["error"]))
        notes.append(str(rec.get("note", "")))
        written.append(str(rec.get("written", "")))
    head, blocks = _text_table(columns, rows)
    out = head
    for block, error, row_note, row_written in zip(blocks, errors, notes, written, strict=True):
        out += block
        if row_written not in ("", _MISSING, "0"):
            out += [f"{_WRITTEN_PREFIX}{row_written} input tokens"]
        if error:
            out += _error_lines(error)
        if row_note:
            out += _error_lines(row_note, _NOTE_PREFIX)
    for note in _notes(frame):
        out += wrap(note, "  ")
    return out


def _error_lines(error: str, prefix: str = _ERROR_PREFIX) -> list[str]:
    room = WIDTH - len(prefix)
    short = shorten(error, room)
    if short:
        return [prefix + short]
    return wrap(prefix + error, " " * len(prefix))


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


# C0/C1 controls except tab and newline: a model can emit ANSI escapes that clear or rewrite a terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value: object) -> str:
    return _CONTROL.sub("", "" if value is None else str(value).replace("\r\n", "\n"))


def _row_error(model: object, status: object, error: object) -> str:
    # The same words as the call's status line (wording.failure_detail), less the kind the row shows.
    if not _present(error):
        return ""
    kind = plain(status)
    detail = describe_failure(kind, plain(error))
    return "" if detail == kind else detail.removeprefix(f"{kind}: ")


def _present(value: object) -> bool:
    """A cell with text in it (not None, <NA>, NaN or blank)."""
    import pandas as pd

    return not (value is None or value is pd.NA or _isnan(value) or not str(value).strip())


def _isnan(value: object) -> bool:
    return isinstance(value, float) and value != value


def wrap(text: str, indent: str = "") -> list[str]:
    """One of our own lines (names, statuses, errors) wrapped at WIDTH; later lines start with ``indent``."""
    # Hyphens are no place to break: model ids and labels are full of them.
    return textwrap.wrap(" ".join(plain(text).split()), WIDTH, subsequent_indent=indent,
                         break_on_hyphens=False) or [""]


__all__ = [
    "CACHE_NOTE",
    "COUNTED_NOTE",
    "OVERHEAD_NOTE",
    "WIDTH",
    "WRITTEN_NOTE",
    "cache_note",
    "counted_note",
    "display_columns",
    "figures",
    "ledger_display",
    "ledger_html",
    "plain",
    "shorten",
    "text_ledger",
    "wrap",
]
