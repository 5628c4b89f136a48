"""One ``--estimate`` format for every job kind: a row per call (or clip) and a total line.

``%%fuse --estimate`` (``fusion/estimate.py``) and ``%%video --estimate`` (``videos/estimate.py``) each turn
their projection into ``CostRow``s; this module words them, so both read the same way: what each call is,
which model, what is counted (tokens, or seconds of video), where the price comes from, and what it costs.

    rows = [CostRow("judge", "openai:gpt-4o-mini", tokens_counted(1, 2382, 2048), "price table", 0.0016)]
    print(estimate_text(rows, 0.0016, basis="output counted at the max_tokens cap, so an upper bound"))

Attached files add lines after the total (``media_lines``): one per file with its tokens on each vendor, and the
counting rule of each kind:

    chart.png: 1 image (1024x1024), ~765 tok on OpenAI, ~1,399 on Anthropic, ~1,032 on Gemini
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

NO_PRICE = "no price known"
_HEADERS = ("call", "model", "counted", "price", "cost")


@dataclass(frozen=True)
class CostRow:
    """One projected call or clip: ``call`` what it is (``member gpt-4o``, ``judge``, ``clip``), ``model`` its
    id, ``counted`` what its cost is reckoned from, ``source`` where its price comes from (empty: none is
    known), ``usd`` the projected cost (None: unknown, never 0)."""

    call: str
    model: str
    counted: str
    source: str
    usd: float | None


def money(usd: float | None) -> str:
    """``$0.60`` for whole cents, ``$0.0103`` below them (a token-priced call often costs a fraction of a
    cent), ``unknown`` for None."""
    if usd is None:
        return "unknown"
    cents = usd * 100
    return f"${usd:.2f}" if abs(cents - round(cents)) < 1e-9 else f"${usd:.4f}"


def tokens_counted(calls: int, input_tokens: int, output_tokens: int) -> str:
    """``2 calls: 809 in + 384 out tokens``"""
    return f"{calls} call{'s' if calls != 1 else ''}: {input_tokens} in + {output_tokens} out tokens"


def seconds_counted(seconds: float, per_second: float | None) -> str:
    """``6 s x $0.10/s`` (``?`` for an unknown rate)"""
    rate = "?" if per_second is None else f"${per_second:.2f}/s"
    return f"{seconds:g} s x {rate}"


def estimate_text(rows: Sequence[CostRow], total: float | None, *, basis: str = "", price_hint: str = "",
                  unknown: str = "", notes: Sequence[str] = ()) -> str:
    """The projection as text: a title, a table (text left, cost right), ``Total: ...`` and ``notes``.

    ``basis`` says what the figures assume; ``price_hint`` where a missing price is added (named in the total
    line when one is missing); ``unknown`` why the total is unknown, where that is not a missing price."""
    title = "Projected cost (nothing sent" + (f"; {basis}" if basis else "") + "):"
    cells = [(r.call, r.model, r.counted, r.source or NO_PRICE, money(r.usd)) for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(_HEADERS)]

    def line(values: Sequence[str]) -> str:
        *text, cost = values
        return "  ".join([*(v.ljust(w) for v, w in zip(text, widths, strict=False)), cost.rjust(widths[-1])])

    lines = [title, line(_HEADERS), "  ".join("-" * w for w in widths), *(line(c) for c in cells)]
    missing = list(dict.fromkeys(r.model for r in rows if r.usd is None))
    if total is not None:
        lines.append(f"Total: {money(total)}")
    elif unknown:
        lines.append(f"Total: unknown ({unknown})")
    else:
        add = f"; add one with {price_hint}" if price_hint else ""
        lines.append(f"Total: unknown ({NO_PRICE} for {', '.join(missing) or 'a call'}{add})")
    return "\n".join([*lines, *notes])


@dataclass(frozen=True)
class MediaCount:
    """An attachment's input tokens ``where`` (a vendor, ``OpenAI``, or a model id where a vendor's models count it
    differently); ``approx`` marks a rough figure (``~``)."""

    where: str
    tokens: int
    approx: bool


@dataclass(frozen=True)
class MediaRow:
    """One attachment the calls send: ``name`` (with its turn when a thread's earlier turn attached it), ``what``
    it is (``1 image (1024x768)``, ``3 pages``), and its tokens on each vendor."""

    name: str
    what: str
    counts: Sequence[MediaCount]


# The attachment lines' width: the text report's (present.ledger_table.WIDTH).
_WIDTH = 100


def media_lines(rows: Sequence[MediaRow], rules: Sequence[str] = (), *, thread: bool = False) -> list[str]:
    """The lines an estimate adds for its attachments (none without any): a heading, a line per file
    (``chart.png: 1 image (1024x768), ~765 tok on OpenAI, ~1,049 on Anthropic, 1,032 on Gemini``), then the rule
    used for each kind and vendor, wrapped within 100 columns."""
    if not rows:
        return []
    heading = "Attachments, in each call's input tokens above (every call sends them"
    heading += ", and a thread's earlier turns', in full; a provider's prompt cache may bill a repeat for less):" \
        if thread else "):"
    lines = textwrap.wrap(heading, _WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    for row in rows:
        counts = ", ".join(f"{'~' if c.approx else ''}{c.tokens:,}{' tok' if i == 0 else ''} on {c.where}"
                           for i, c in enumerate(row.counts))
        lines.extend(textwrap.wrap(f"{row.name}: {row.what}, {counts}", _WIDTH, initial_indent="  ",
                                   subsequent_indent="    ", break_on_hyphens=False))
    if rules:
        lines.append("Counted by each vendor's rule (~: approximate):")
        for rule in rules:
            lines.extend(textwrap.wrap(rule, _WIDTH, initial_indent="  ", subsequent_indent="    ",
                                       break_on_hyphens=False))
    return lines


__all__ = ["NO_PRICE", "CostRow", "MediaCount", "MediaRow", "estimate_text", "media_lines", "money",
           "seconds_counted", "tokens_counted"]
