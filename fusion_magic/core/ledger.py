"""The cost and latency ledger: one row per call, as a pandas DataFrame.

A row is built from a ``CallRecord`` of any kind; a video job becomes a row the same way
(``role="video"``), so the columns stay general: what was called, in which role and round, how it ended,
usage, time and money. ``cached_input_tokens`` is the part of ``input_tokens`` the provider read from its prompt
cache (billed at its cached rate). Usage in units other than tokens gets its columns only when some call has it,
and so do prompt tokens written to a cache (Anthropic), a judge's ordering (``--orders``) and a note (why a video
job is pending: a note, never an error).

    frame = with_totals(ledger_frame(records), wall_s=3.2)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .record import CallRecord

COLUMNS = [
    "model",
    "role",
    "round",
    "status",
    "late",
    "attempts",
    "ttft_s",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "tokens_source",
    "cost_usd",
    "cost_source",
    "error",
]

# Video generation's usage: a column each, placed before the cost, present only when some row has it
# (a chat-only ledger keeps exactly COLUMNS).
USAGE_COLUMNS = ("video_seconds", "clips")
# Columns present only when some row has one, each after the column named: the judge's ordering with
# --orders (never a debate round), prompt tokens written to the provider's cache (Anthropic; billed at its
# cache-write rate), a note (a pending job's: where it is, not what went wrong), and the provider's batch that
# answered a call (a batch evaluation's).
OPTIONAL_COLUMNS = {"ordering": "round", "cache_write_input_tokens": "cached_input_tokens", "note": "error",
                    "batch_id": "status"}
# Token counts the totals row sums.
_SUMMED_TOKENS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_input_tokens")


def _role(r: CallRecord) -> str:
    """The role and the label, the role said once when the label already starts with it ("check omni")."""
    if r.label is None:
        return r.role
    return r.label if r.label.split(" ", 1)[0] == r.role else f"{r.role} {r.label}"


def ledger_rows(responses: Iterable[CallRecord]) -> list[dict[str, object]]:
    """Plain dict rows, in call order, with every usage unit (None where the call has none)."""
    return [
        {
            "model": r.model,
            "role": _role(r),
            "round": r.round,
            "ordering": r.ordering or None,
            "status": r.status,
            "late": r.late,
            "attempts": r.attempts,
            "ttft_s": r.ttft_s,
            "latency_s": r.latency_s,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cached_input_tokens": r.cached_input_tokens,
            "cache_write_input_tokens": r.cache_write_input_tokens,
            "tokens_source": r.tokens_source,
            "video_seconds": r.video_seconds,
            "clips": r.clips,
            "cost_usd": r.cost_usd,
            "cost_source": r.cost_source,
            "error": r.error,
            "note": r.note,
            "batch_id": r.batch_id,
        }
        for r in responses
    ]


_INT_COLUMNS = frozenset((*_SUMMED_TOKENS, "attempts", "round", "ordering", "clips"))
_FLOAT_COLUMNS = frozenset(("ttft_s", "latency_s", "video_seconds", "cost_usd"))


def ledger_frame(responses: Iterable[CallRecord]) -> pd.DataFrame:
    """The ledger as a DataFrame with nullable numeric columns (unknown stays <NA>, never 0): ``COLUMNS``,
    plus a ``USAGE_COLUMNS`` column for each unit some call was billed in, and each ``OPTIONAL_COLUMNS``
    column some call has."""
    return _frame(ledger_rows(responses))


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    import pandas as pd

    used = [c for c in USAGE_COLUMNS if any(row[c] is not None for row in rows)]
    at = COLUMNS.index("cost_usd")
    columns = [*COLUMNS[:at], *used, *COLUMNS[at:]]
    for name, after in OPTIONAL_COLUMNS.items():
        if any(row[name] is not None for row in rows):
            columns.insert(columns.index(after) + 1, name)
    # Each column built once in its final dtype: a frame built as objects, then converted column by column,
    # cost a view about 10 ms per refresh.
    data: dict[str, object] = {}
    for col in columns:
        values: list[Any] = [row[col] for row in rows]
        if col in _INT_COLUMNS:
            data[col] = pd.array(values, dtype=pd.Int64Dtype())
        elif col in _FLOAT_COLUMNS:
            data[col] = pd.array(values, dtype=pd.Float64Dtype())
        else:
            data[col] = values
    return pd.DataFrame(data, columns=columns)


# The last few ledgers with totals, keyed on their rows: a finished run's view, its HTML report and its text
# report each need the same one, and building it is most of what the end of a cell costs.
_RECENT: dict[tuple[object, ...], pd.DataFrame] = {}
_RECENT_MAX = 8


def ledger_with_totals(responses: Iterable[CallRecord], wall_s: float | None = None) -> pd.DataFrame:
    """``with_totals(ledger_frame(responses), wall_s)``, built once for the same rows (a copy each time)."""
    rows = ledger_rows(responses)
    key = (wall_s, *(tuple(row.values()) for row in rows))
    frame = _RECENT.get(key)
    if frame is None:
        frame = _with_totals_of_rows(rows, wall_s)
        if len(_RECENT) >= _RECENT_MAX:
            _RECENT.pop(next(iter(_RECENT)), None)
        _RECENT[key] = frame
    return frame.copy()


def _with_totals_of_rows(rows: list[dict[str, object]], wall_s: float | None) -> pd.DataFrame:
    """``with_totals`` worked out on the plain rows, then one frame: the same frame, without the pandas
    masks, group-bys and concatenation that made it the slowest step of a finished run's report."""
    import pandas as pd

    frame = _frame(rows)
    if not rows:
        return frame
    present = set(frame.columns)

    def number(value: object) -> float:
        return 0.0 if value is None or value != value else float(value)  # type: ignore[arg-type]

    costs = [row["cost_usd"] for row in rows]
    known = all(c is not None and c == c for c in costs)
    slowest: dict[object, float] = {}
    judges: list[float] = []
    for row in rows:
        role, latency = str(row["role"]), number(row["latency_s"])
        if role.startswith("member"):
            slowest[row["round"]] = max(slowest.get(row["round"], 0.0), latency)
        elif role == "judge":
            judges.append(latency)
    critical = sum(slowest.values()) + (max(judges) if judges else 0.0)
    total: dict[str, object] = {
        "model": "TOTAL",
        "role": f"{len(rows)} call{'s' if len(rows) != 1 else ''}",
        "status": f"{sum(1 for row in rows if row['status'] == 'ok')} ok",
        "late": any(bool(row["late"]) for row in rows),
        "attempts": int(sum(number(row["attempts"]) for row in rows)),
        "latency_s": wall_s,
        **{col: int(sum(number(row[col]) for row in rows)) for col in _SUMMED_TOKENS if col in present},
        "tokens_source": "counted" if any(row["tokens_source"] == "counted" for row in rows) else "reported",
        "cost_usd": float(sum(costs)) if known else None,  # type: ignore[arg-type]
        "cost_source": "sum" if known else _unknown_cost(frame),
    }
    if "video_seconds" in present:
        total["video_seconds"] = float(sum(number(row["video_seconds"]) for row in rows))
    if "clips" in present:
        total["clips"] = int(sum(number(row["clips"]) for row in rows))
    extra = [total]
    if wall_s is not None:
        extra.append({"model": "overhead", "role": "wall - critical path", "status": "", "late": False,
                      "latency_s": wall_s - critical, "tokens_source": "", "cost_usd": 0.0, "cost_source": ""})
    columns = {}
    for name in frame.columns:
        # What a summary row leaves out is <NA>, in the column's own dtype (as with_totals' astype makes it).
        summary = [row.get(name) for row in extra]
        values = [*frame[name].tolist(), *(pd.NA if v is None else v for v in summary)]
        columns[name] = pd.Series(values, dtype=frame[name].dtype)
    return pd.DataFrame(columns)


def _unknown_cost(frame: pd.DataFrame) -> str:
    """Why the total is unknown: a model we have no price for, or a priced call that ended (cancelled, failed)
    before it reported what it used."""
    from .pricing import price_for

    unknown = frame[frame["cost_usd"].isna()]
    used = unknown["input_tokens"].fillna(0) + unknown["output_tokens"].fillna(0) > 0
    if used.any() or any(price_for(str(model)) is None for model in unknown["model"]):
        return "unknown (a price is missing)"
    return "unknown (a call ended before it reported its usage)"


def with_totals(frame: pd.DataFrame, wall_s: float | None = None) -> pd.DataFrame:
    """The ledger plus a totals row. Total cost is unknown (<NA>) if any row's cost is unknown.

    The totals row's ``latency_s`` is the run's wall time when given; then an "overhead" row follows
    whose ``latency_s`` is wall time minus the critical path (the slowest member of each round, plus the
    judge): the time fusion itself added.
    """
    import pandas as pd

    if frame.empty:
        return frame
    costs = frame["cost_usd"]
    total_cost = pd.NA if costs.isna().any() else float(costs.sum())
    members = frame[frame["role"].str.startswith("member")]
    judges = frame[frame["role"] == "judge"]
    # Rounds run one after another (debate), members within a round side by side.
    slowest_per_round = members.groupby("round")["latency_s"].max().fillna(0)
    # Judge calls of several orderings (--orders) run side by side: the slowest one is on the critical path.
    critical = float(slowest_per_round.sum()) + (float(judges["latency_s"].fillna(0).max()) if not judges.empty
                                                 else 0.0)
    total = {
        "model": "TOTAL",
        "role": f"{len(frame)} call{'s' if len(frame) != 1 else ''}",
        "round": pd.NA,
        "status": f"{int((frame['status'] == 'ok').sum())} ok",
        "late": bool(frame["late"].any()),
        "attempts": int(frame["attempts"].fillna(0).sum()),
        "ttft_s": pd.NA,
        "latency_s": wall_s if wall_s is not None else pd.NA,
        **{col: int(frame[col].fillna(0).sum()) for col in _SUMMED_TOKENS if col in frame},
        "tokens_source": "counted" if (frame["tokens_source"] == "counted").any() else "reported",
        "cost_usd": total_cost,
        "cost_source": "sum" if total_cost is not pd.NA else _unknown_cost(frame),
        "error": pd.NA,
    }
    for name in OPTIONAL_COLUMNS:
        if name in frame and name not in total:
            total[name] = pd.NA
    if "video_seconds" in frame:
        total["video_seconds"] = float(frame["video_seconds"].fillna(0).sum())
    if "clips" in frame:
        total["clips"] = int(frame["clips"].fillna(0).sum())
    extra = [total]
    if wall_s is not None:
        extra.append({
            "model": "overhead", "role": "wall - critical path", "round": pd.NA, "status": "",
            "late": False, "attempts": pd.NA, "ttft_s": pd.NA, "latency_s": wall_s - critical,
            "input_tokens": pd.NA, "output_tokens": pd.NA, "tokens_source": "", "cost_usd": 0.0,
            "cost_source": "", "error": pd.NA,
        })
    # Columns the summary rows leave out (the overhead row's usage) come out as <NA>.
    out = pd.concat([frame, pd.DataFrame(extra, columns=frame.columns)], ignore_index=True)
    return out.astype(frame.dtypes.to_dict())
