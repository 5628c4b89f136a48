"""The ledger with totals a view and a report build (``ledger_with_totals``, worked out on plain rows) is the
frame ``with_totals(ledger_frame(...))`` gives, value for value and dtype for dtype, for every kind of ledger:
members and a judge, a failed call, a missing price, a video job, debate rounds with orderings, counted and
cached tokens; with and without the run's wall time."""

from __future__ import annotations

import pandas as pd
import pytest

from fusion_magic.core import ledger as L
from fusion_magic.core.record import CallRecord

OK = {"status": "ok", "input_tokens": 10, "output_tokens": 20, "cost_usd": 0.001, "cost_source": "price",
      "latency_s": 1.0, "ttft_s": 0.2, "attempts": 1}


def recs(kind: str) -> list[CallRecord]:
    if kind == "plain":
        return [CallRecord(model="openai:a", call_id=1, label="a", **OK),
                CallRecord(model="openai:b", call_id=2, label="b", **{**OK, "latency_s": 2.0}),
                CallRecord(model="openai:j", call_id=3, role="judge", **OK)]
    if kind == "failed":
        return [CallRecord(model="openai:a", call_id=1, label="a", **OK),
                CallRecord(model="x:b", call_id=2, label="b", status="failed", error="server: HTTP 500: boom",
                           attempts=3)]
    if kind == "unknown":
        return [CallRecord(model="nowhere:zz", call_id=1, label="a", status="ok", input_tokens=5, output_tokens=5,
                           latency_s=0.5)]
    if kind == "video":
        return [CallRecord(model="fal:v", call_id=1, role="video", label="v", status="ok", video_seconds=8.0, clips=1,
                           cost_usd=0.4, latency_s=30.0, note="x")]
    if kind == "debate":
        return [*(CallRecord(model="openai:a", call_id=i, label="a", round=i // 2, **OK) for i in range(4)),
                CallRecord(model="openai:j", call_id=9, role="judge", ordering=1, **OK),
                CallRecord(model="openai:j", call_id=10, role="judge", ordering=2, **{**OK, "latency_s": None})]
    assert kind == "counted"
    return [CallRecord(model="local:g", call_id=1, label="g", status="ok", tokens_source="counted", output_tokens=3,
                       cost_usd=0.0, cached_input_tokens=2, cache_write_input_tokens=4, late=True)]


@pytest.mark.parametrize("kind", ["plain", "failed", "unknown", "video", "debate", "counted"])
@pytest.mark.parametrize("wall", [None, 3.5])
def test_fast_totals_equal_with_totals(kind: str, wall: float | None) -> None:
    rs = recs(kind)
    old = L.with_totals(L.ledger_frame(rs), wall)
    new = L._with_totals_of_rows(L.ledger_rows(rs), wall)
    pd.testing.assert_frame_equal(old, new)
    pd.testing.assert_frame_equal(L.ledger_with_totals(rs, wall), old)  # and again from the memo

