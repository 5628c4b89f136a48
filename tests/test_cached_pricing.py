"""Prompt tokens read from a provider's cache, or written to it, cost their own published rates, and the ledger
shows them.

Every expected figure here is worked out by hand from the vendors' published rates (USD per million tokens), never
from the price table under test:

* Anthropic (docs.claude.com/en/docs/about-claude/pricing, prompt caching): claude-sonnet-4-5 input $3, output $15,
  5-minute cache writes 1.25 x input = $3.75, cache hits 0.1 x input = $0.30.
* OpenAI (openai.com/api/pricing): gpt-4o input $2.50, cached input $1.25, output $10; gpt-4o-mini $0.15, cached
  $0.075, output $0.60; gpt-4.1 $2.00, cached $0.50; gpt-5 $1.25, cached $0.125.
* Gemini (ai.google.dev/gemini-api/docs/pricing, context caching, 2025-10): gemini-2.5-flash input $0.30, cached
  $0.075 (25%), output $2.50.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import fusion_magic
from fusion_magic.calls.cache import CallCache
from fusion_magic.calls.runlog import RunLog
from fusion_magic.calls.settings import Settings
from fusion_magic.core.ledger import COLUMNS, ledger_frame, with_totals
from fusion_magic.core.pricing import Price, price_for, price_record
from fusion_magic.core.record import CallRecord
from fusion_magic.present.ledger_table import CACHE_NOTE, figures, ledger_html, text_ledger
from fusion_magic.providers._http import WireContext
from fusion_magic.providers.base import ChatRequest, Message, Usage
from fusion_magic.providers.chat.anthropic import EventParser
from fusion_magic.testing import Emulator, ModelScript

M = 1e6


def usd(tokens: int, per_million: float) -> float:
    return tokens * per_million / M


# ---- Price.cost ------------------------------------------------------------------------------------------------


def test_anthropic_reads_cost_a_tenth_and_writes_a_quarter_more() -> None:
    price = price_for("anthropic:claude-sonnet-4-5-20250929")
    assert price is not None
    # 1200 prompt tokens: 1000 read from the cache, 150 written to it, 50 neither; 54 out.
    expected = usd(50, 3.00) + usd(1000, 0.30) + usd(150, 3.75) + usd(54, 15.00)
    assert price.cost(1200, 54, cached_input_tokens=1000, cache_write_input_tokens=150) == pytest.approx(expected)
    assert "1.25x" in price.cache_source and "0.1x" in price.cache_source  # the rule names its source
    # the same usage without the cache would cost more; with no cached part, what it always cost
    assert price.cost(1200, 54) == pytest.approx(usd(1200, 3.00) + usd(54, 15.00))
    assert price.cost(1200, 54, cached_input_tokens=0, cache_write_input_tokens=None) == price.cost(1200, 54)


@pytest.mark.parametrize(("model", "inp", "cached", "out"), [
    ("openai:gpt-4o", 2.50, 1.25, 10.00),          # 50%
    ("openai:gpt-4o-mini-2024-07-18", 0.15, 0.075, 0.60),
    ("openai:gpt-4.1", 2.00, 0.50, 8.00),          # 25%
    ("openai:gpt-5", 1.25, 0.125, 10.00),          # 10%
    ("openrouter:openai/gpt-4o", 2.50, 1.25, 10.00),
    ("gemini:gemini-2.5-flash", 0.30, 0.075, 2.50),  # 25%
])
def test_cached_input_costs_each_models_published_cached_rate(model: str, inp: float, cached: float,
                                                               out: float) -> None:
    price = price_for(model)
    assert price is not None
    expected = usd(2000 - 1536, inp) + usd(1536, cached) + usd(100, out)
    assert price.cost(2000, 100, cached_input_tokens=1536) == pytest.approx(expected)
    # no vendor but Anthropic charges for writing the cache: a written token costs the input rate
    assert price.cost(2000, 100, cache_write_input_tokens=500) == pytest.approx(usd(2000, inp) + usd(100, out))


def test_old_call_sites_keep_working() -> None:
    assert Price(3.00, 15.00, "vendor page").cost(input_tokens=1000, output_tokens=200) == pytest.approx(0.006)
    assert Price(3.00, 15.00, "page", 0.0, 0.0).cost(1000, 200) == pytest.approx(0.006)
    assert Price(per_second=0.40, source="vendor page").cost(video_seconds=8) == pytest.approx(3.2)
    assert Price(3.00, 15.00).cost(None, 200) is None  # unknown usage stays unknown
    assert Price(source="local").cost(1000, 1000, cached_input_tokens=900) == 0.0


def test_a_count_past_the_prompt_is_clamped_never_a_negative_charge() -> None:
    price = Price(3.00, 15.00, cached_input_per_mtok=0.30, cache_write_per_mtok=3.75)
    assert price.cost(100, 0, cached_input_tokens=500) == pytest.approx(usd(100, 0.30))
    assert price.cost(100, 0, cached_input_tokens=80, cache_write_input_tokens=80) == pytest.approx(
        usd(80, 0.30) + usd(20, 3.75))


# ---- price_record ---------------------------------------------------------------------------------------------


def test_price_record_bills_the_records_cached_and_written_tokens() -> None:
    r = CallRecord("anthropic:claude-sonnet-4-5", status="ok", input_tokens=3700, output_tokens=80,
                   cached_input_tokens=2500, cache_write_input_tokens=1100)
    price_record(r)
    assert r.cost_usd == pytest.approx(usd(100, 3.00) + usd(2500, 0.30) + usd(1100, 3.75) + usd(80, 15.00))
    assert r.cost_source.startswith("price table")


def test_the_providers_own_figure_still_wins() -> None:
    r = CallRecord("openrouter:anthropic/claude-sonnet-4.5", status="ok", input_tokens=3700, output_tokens=80,
                   cached_input_tokens=2500, cost_usd=0.00123, cost_source="provider")
    price_record(r)
    assert (r.cost_usd, r.cost_source) == (0.00123, "provider")


def test_a_model_without_a_cached_rate_bills_them_at_input_and_says_so() -> None:
    r = CallRecord("gemini:gemini-2.0-flash-lite", status="ok", input_tokens=1000, output_tokens=10,
                   cached_input_tokens=800)
    price_record(r)
    assert r.cost_usd == pytest.approx(usd(1000, 0.075) + usd(10, 0.30))
    assert "cached input at the input rate (no rate known)" in r.cost_source
    plain = CallRecord("gemini:gemini-2.0-flash-lite", status="ok", input_tokens=1000, output_tokens=10)
    price_record(plain)
    assert plain.cost_source.startswith("price table") and "input rate" not in plain.cost_source


def test_a_users_price_for_a_claude_model_takes_anthropics_multipliers() -> None:
    price = price_for("anthropic:claude-next", {"claude-next": (2.00, 10.00)})
    assert price is not None and price.source.startswith("user price")
    assert (price.cached_input_per_mtok, price.cache_write_per_mtok) == (pytest.approx(0.20), pytest.approx(2.50))
    other = price_for("openai:my-model", {"my-model": (1.00, 2.00)})
    assert other is not None and other.cached_input_per_mtok is None  # not known: the input rate, said so
    own = price_for("openai:my-model", {"my-model": Price(1.00, 2.00, cached_input_per_mtok=0.1)})
    assert own is not None and own.cost(1000, 0, cached_input_tokens=1000) == pytest.approx(usd(1000, 0.1))


# ---- Anthropic's usage --------------------------------------------------------------------------------------


def test_anthropic_cache_writes_are_parsed_apart_from_reads() -> None:
    parser = EventParser(WireContext("anthropic", "claude-sonnet-4-5"), request_id=None)
    start: dict[str, Any] = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4-5",
                                                                  "usage": {
        "input_tokens": 50, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 150,
        "cache_creation": {"ephemeral_5m_input_tokens": 150, "ephemeral_1h_input_tokens": 0}, "output_tokens": 1}}}
    (usage,) = parser.feed("message_start", json.dumps(start))
    assert isinstance(usage, Usage)
    # our input_tokens is the whole prompt (base + reads + writes), as OpenAI and Gemini report it
    assert usage == Usage(input_tokens=1200, output_tokens=1, cached_input_tokens=1000, cache_write_input_tokens=150)
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 54}}
    (last,) = parser.feed("message_delta", json.dumps(delta))
    assert isinstance(last, Usage) and last.cache_write_input_tokens == 150 and last.output_tokens == 54
    none_written = EventParser(WireContext("anthropic", "c"), request_id=None)
    start["message"]["usage"] = {"input_tokens": 40, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    (usage,) = none_written.feed("message_start", json.dumps(start))
    assert isinstance(usage, Usage) and usage.cache_write_input_tokens is None and usage.cached_input_tokens == 0


# ---- the ledger -----------------------------------------------------------------------------------------------


def calls() -> list[CallRecord]:
    a = CallRecord("anthropic:claude-sonnet-4-5", status="ok", input_tokens=1200, output_tokens=54, label="A",
                   cached_input_tokens=1000, cache_write_input_tokens=150, latency_s=1.0, call_id=1, attempts=1)
    b = CallRecord("openai:gpt-4o", status="ok", input_tokens=1300, output_tokens=60, label="B",
                   cached_input_tokens=1024, latency_s=1.2, call_id=2, attempts=1)
    j = CallRecord("openai:gpt-4o-mini", status="ok", input_tokens=900, output_tokens=30, role="judge",
                   latency_s=0.5, call_id=3, attempts=1)
    for r in (a, b, j):
        price_record(r)
    return [a, b, j]


def test_the_ledger_has_the_cached_column_and_writes_only_when_any() -> None:
    frame = ledger_frame(calls())
    at = list(frame.columns).index("cached_input_tokens")
    assert list(frame.columns)[at - 1:at + 2] == ["output_tokens", "cached_input_tokens", "cache_write_input_tokens"]
    assert list(frame["cached_input_tokens"].astype("object").where(frame["cached_input_tokens"].notna(), None)) \
        == [1000, 1024, None]
    assert str(frame["cache_write_input_tokens"].dtype) == "Int64"
    totals = with_totals(frame).iloc[-1]
    assert (totals["input_tokens"], totals["cached_input_tokens"], totals["cache_write_input_tokens"]) == (
        3400, 2024, 150)
    # no call wrote to a cache: no write column; a chat ledger without any caching is exactly COLUMNS
    no_writes = ledger_frame(calls()[1:])
    assert "cache_write_input_tokens" not in no_writes.columns and "cached_input_tokens" in no_writes.columns
    assert list(ledger_frame([CallRecord("openai:gpt-4o", status="ok")]).columns) == COLUMNS


def row_of(lines: list[str], start: str) -> list[str]:
    return next(line for line in lines if line.startswith(start)).split()


def test_the_tables_show_cached_tokens_only_when_a_call_has_some() -> None:
    shown = with_totals(ledger_frame(calls()), wall_s=2.0)
    lines = text_ledger(shown)
    header = lines[0].split()
    at = header.index("in")
    assert header[at:at + 5] == ["in", "tok", "cached", "out", "tok"]
    # call, status, tries, ttft, latency, then in tok, cached, out tok
    assert row_of(lines, "A ")[5:8] == ["1200", "1000", "54"]
    assert row_of(lines, "B ")[5:8] == ["1300", "1024", "60"]
    assert row_of(lines, "judge")[5:8] == ["900", "-", "30"]  # no cache figure from this call
    assert row_of(lines, "TOTAL")[8:11] == ["3400", "2024", "144"]  # TOTAL (3 calls)  3 ok ...
    # the rarer writes: a line under the row that wrote (and under the total)
    claude_at = next(i for i, line in enumerate(lines) if line.startswith("A "))
    assert "  written to the cache: 150 input tokens" in lines[claude_at + 1:claude_at + 3]
    assert lines.count("  written to the cache: 150 input tokens") == 2
    assert any(line.startswith("cached: of the input tokens") for line in lines)
    assert all(len(line) <= 100 for line in lines)
    html = ledger_html(shown)
    assert ">cached</th>" in html and ">written</th>" in html and ">1024</td>" in html and ">150</td>" in html
    assert CACHE_NOTE.split(";")[0] in html
    a, b, j = calls()
    assert figures(a).startswith("1200→54 tok (1000 cached, 150 written) · ")
    assert figures(b).startswith("1300→60 tok (1024 cached) · ")
    assert figures(j).startswith("900→30 tok · ")
    # no call read or wrote a cache (Anthropic reports 0 reads): neither column nor note
    zero = CallRecord("anthropic:claude-sonnet-4-5", status="ok", input_tokens=40, output_tokens=9,
                      cached_input_tokens=0)
    plain = with_totals(ledger_frame([j, zero]))
    assert "cached" not in "\n".join(text_ledger(plain)) and "cached" not in ledger_html(plain)
    assert "written" not in "\n".join(text_ledger(plain))
    assert not any("written" in line for line in text_ledger(with_totals(ledger_frame([b]))))


# ---- the cache and the run log keep the writes ------------------------------------------------------------


def test_the_cache_entry_and_the_run_log_keep_cache_writes(tmp_path: Path) -> None:
    a = calls()[0]
    cache = CallCache(tmp_path / "cache")
    request = ChatRequest(model="claude-sonnet-4-5", messages=(Message("user", "hi"),))
    cache.store(a.model, request, a)
    (entry,) = (tmp_path / "cache").rglob("*.json")
    data = json.loads(entry.read_text())
    assert (data["cached_input_tokens"], data["cache_write_input_tokens"]) == (1000, 150)

    log = RunLog(tmp_path / "log.sqlite")
    run_id = log.start_run("fuse", "hi", {})
    assert log.record_call(run_id, a)
    log.close()
    row = log.calls(run_id).iloc[0]
    assert (row["cached_input_tokens"], row["cache_write_input_tokens"]) == (1000, 150)


def test_an_older_run_log_gets_the_write_column_and_reads_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    log = RunLog(path)
    run_id = log.start_run("fuse", "hi", {})
    assert log.record_call(run_id, calls()[1])
    log.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE calls DROP COLUMN cache_write_input_tokens")  # as a log written before it
    conn.commit()
    conn.close()
    old = RunLog(path)
    assert old.calls(run_id).iloc[0]["cached_input_tokens"] == 1024  # read before any write of this version
    assert old.record_call(run_id, calls()[0])
    old.close()
    frame = old.calls(run_id).set_index("call_id")
    assert frame.loc[1, "cache_write_input_tokens"] == 150 and frame.loc[2, "cached_input_tokens"] == 1024
    assert frame["cache_write_input_tokens"].isna().loc[2]  # the row written before the column: empty


# ---- end to end: a three-turn thread over the loopback emulator ----------------------------------------------

CLAUDE, GPT, JUDGE = "anthropic:claude-sonnet-4-5", "openai:gpt-4o", "openai:gpt-4o-mini"
VERDICT = json.dumps({"reasoning": "A answers it.", "winner": "A"})
# Per turn: (prompt tokens, read from the cache, written to it, output tokens) for each model. Each turn repeats
# the last, so more of it is cached.
TURNS = [
    {"claude": (1500, 0, 1200, 40), "gpt": (1500, 0, 0, 45), "judge": (1900, 0, 0, 30)},
    {"claude": (2600, 1200, 1300, 50), "gpt": (2600, 1408, 0, 55), "judge": (3000, 1536, 0, 30)},
    {"claude": (3700, 2500, 1100, 60), "gpt": (3700, 2560, 0, 65), "judge": (4100, 2944, 0, 30)},
]


def billed(model: str, prompt: int, read: int, written: int, out: int) -> float:
    """What the vendor bills, by its published rates (this module's docstring)."""
    if model == CLAUDE:
        return usd(prompt - read - written, 3.00) + usd(read, 0.30) + usd(written, 3.75) + usd(out, 15.00)
    if model == GPT:
        return usd(prompt - read, 2.50) + usd(read, 1.25) + usd(out, 10.00)
    assert model == JUDGE
    return usd(prompt - read, 0.15) + usd(read, 0.075) + usd(out, 0.60)


def script_turn(emu: Emulator, turn: dict[str, tuple[int, int, int, int]]) -> None:
    for name, model, reply in (("claude", "claude-sonnet-4-5", "Claude's answer."),
                               ("gpt", "gpt-4o", "GPT's answer."), ("judge", "gpt-4o-mini", VERDICT)):
        prompt, read, written, out = turn[name]
        emu.script(model, ModelScript(reply=reply, input_tokens=prompt, output_tokens=out,
                                      cached_input_tokens=read or None, cache_write_tokens=written or None))


def test_a_three_turn_thread_bills_cached_tokens_at_the_published_rates(emulator_env: Emulator,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(max_retries=0, timeout=20)
    script_turn(emulator_env, TURNS[0])
    r = fusion_magic.fuse("What is 6 x 7?", pool=[CLAUDE, GPT], judge=JUDGE, mode="best-of", settings=settings)
    results = [r]
    for n, follow_up in ((1, "Why?"), (2, "Shorter, please.")):
        script_turn(emulator_env, TURNS[n])
        results.append(results[-1].ask(follow_up))
    totals = []
    for n, (result, turn) in enumerate(zip(results, TURNS, strict=True), 1):
        assert not result.degraded, result.warnings
        assert result.parent is (results[n - 2] if n > 1 else None)
        by_model = {c.model: c for c in result.calls}
        assert set(by_model) == {CLAUDE, GPT, JUDGE}
        for model, name in ((CLAUDE, "claude"), (GPT, "gpt"), (JUDGE, "judge")):
            call = by_model[model]
            prompt, read, written, out = turn[name]
            assert (call.input_tokens, call.output_tokens) == (prompt, out), (n, model)
            assert call.cached_input_tokens == read, (n, model)
            assert call.cache_write_input_tokens == (written or None), (n, model)
            assert call.cost_usd == pytest.approx(billed(model, prompt, read, written, out), rel=1e-9), (n, model)
        # the ledger shows what was cached, call by call, and the total
        frame = result.ledger
        claude_row = frame[frame["model"] == CLAUDE].iloc[0]
        if turn["claude"][1]:
            assert claude_row["cached_input_tokens"] == turn["claude"][1]
        lines = text_ledger(with_totals(frame))
        reads = sum(t[1] for t in turn.values())
        total_row = row_of(lines, "TOTAL")
        assert total_row[8:10] == ([str(sum(t[0] for t in turn.values())), str(reads)] if reads else
                                  [str(sum(t[0] for t in turn.values())), str(sum(t[3] for t in turn.values()))])
        if reads:
            assert row_of(lines, "gpt-4o ")[5:7] == [str(turn["gpt"][0]), str(turn["gpt"][1])]
        assert f"  written to the cache: {turn['claude'][2]} input tokens" in lines
        expected_total = sum(billed(m, *turn[k]) for m, k in ((CLAUDE, "claude"), (GPT, "gpt"), (JUDGE, "judge")))
        assert sum(c.cost_usd or 0 for c in result.calls) == pytest.approx(expected_total, rel=1e-9)
        assert with_totals(frame)["cost_usd"].iloc[-1] == pytest.approx(expected_total, rel=1e-9)
        totals.append(expected_total)
    # the later turns' requests repeat the thread, and ask Anthropic to cache it
    claude_bodies = [req.body for req in emulator_env.requests if req.path.startswith("/anthropic")]
    assert len(claude_bodies) == 3 and len(claude_bodies[-1]["messages"]) == 5
    assert claude_bodies[-1]["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    with capsys.disabled():
        print("\nthree-turn thread, billed at the published rates: "
              + ", ".join(f"turn {n} ${t:.6f}" for n, t in enumerate(totals, 1))
              + f"; without the cache turn 3 would be ${_uncached_total(TURNS[2]):.6f}")


def _uncached_total(turn: dict[str, tuple[int, int, int, int]]) -> float:
    return sum(billed(m, turn[k][0], 0, 0, turn[k][3]) for m, k in ((CLAUDE, "claude"), (GPT, "gpt"), (JUDGE, "judge")))
