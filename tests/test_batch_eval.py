"""Batch evaluations end to end on the emulator's four batch APIs (OpenAI, Anthropic, Gemini, OpenRouter): the
same accuracies as the live run, no member call live, the live cost at the batch rate, receipts that survive the
process, waves for the strategies that need earlier answers, and failed requests that fail their rows (or are
asked live with retry_live)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import pytest

from fusion_magic.calls.batch import BatchUpdate
from fusion_magic.calls.call import CallContext
from fusion_magic.calls.receipts import Receipts
from fusion_magic.calls.runlog import RunLog
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.core.runner import new_client
from fusion_magic.evaluation import EvalPlan, EvalResult, plan_evaluation, run_evaluation
from fusion_magic.evaluation.estimate import estimate_evaluation
from fusion_magic.judge.answers import answer_key
from fusion_magic.testing import Emulator, Fault, ModelScript

A, B, C, D = "openai:gpt-a", "anthropic:claude-b", "gemini:gemini-c", "openrouter:t/d"
JUDGE = "openai:judge-j"
PRICES = {A: (1.0, 2.0), B: (3.0, 15.0), C: (0.3, 2.5), JUDGE: (0.5, 1.0)}
FAST = Settings(max_retries=0, timeout=20, rounds=1, prices=PRICES)

QUESTIONS = pd.DataFrame({
    "id": ["q1", "q2", "q3", "q4"],
    "question": ["What is 2 + 2?", "What is 3 + 3?", "What is 10 - 3?", "What is 5 x 5?"],
    "reference": ["4", "6", "7", "25"],
})
KEY = {"2 + 2": "4", "3 + 3": "6", "10 - 3": "7", "5 x 5": "25"}
ANSWERS = {
    "gpt-a": {"2 + 2": "4", "3 + 3": "6", "10 - 3": "7", "5 x 5": "24"},
    "claude-b": {"2 + 2": "4", "3 + 3": "5", "10 - 3": "8", "5 x 5": "25"},
    "gemini-c": {"2 + 2": "4", "3 + 3": "7", "10 - 3": "7", "5 x 5": "25"},
    "t/d": {"2 + 2": "5", "3 + 3": "6", "10 - 3": "9", "5 x 5": "20"},
}
SAMPLES_A = {"2 + 2": ["3", "3", "4"], "3 + 3": ["6", "5", "5"], "10 - 3": ["7", "7", "7"], "5 x 5": ["24", "24", "25"]}
STRATEGIES = ["single", "self:3", "vote", "best-of", "debate"]


def texts(value: Any) -> str:
    """Every string of a request body, in order, whatever the family's shape (messages, contents, system)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "\n".join(texts(v) for k, v in value.items() if k not in ("model", "role", "type"))
    if isinstance(value, list):
        return "\n".join(texts(v) for v in value)
    return ""


def which(text: str) -> str:
    return next(k for k in KEY if k in text)


def seed_of(body: Mapping[str, Any]) -> int:
    config = body.get("generationConfig") or {}
    return int(body.get("seed") or config.get("seed") or 0)


def member(name: str) -> Callable[[Mapping[str, Any]], str]:
    def reply(body: Mapping[str, Any]) -> str:
        q = which(texts(body))
        seat = seed_of(body) % 1000
        value = SAMPLES_A[q][seat - 1] if name == "gpt-a" and 1 <= seat <= 3 else ANSWERS[name][q]
        return f"Final answer: {value}"

    return reply


def judge(body: Mapping[str, Any]) -> str:
    text = texts(body.get("messages"))
    fields = body["response_format"]["json_schema"]["schema"]["properties"]
    q = which(text.split("## Answers", 1)[0])
    if "winner" in fields:
        for label, answer in re.findall(r"### Answer ([A-Z]) \(\d+ tokens\)\n(.*?)(?=\n\n###|\n\n## Task)", text, re.S):
            if answer_key(answer) == KEY[q]:
                return json.dumps({"reasoning": "right", "winner": label})
        return json.dumps({"reasoning": "none is right", "winner": "A"})
    return json.dumps({"reasoning": "merged", "answer": f"Final answer: {'26' if q == '5 x 5' else KEY[q]}"})


def script(emu: Emulator, **extra: ModelScript) -> None:
    for name in ANSWERS:
        emu.script(name, ModelScript(reply=member(name)))
    emu.script("judge-j", ModelScript(reply=judge))
    for name, s in extra.items():
        emu.script(name, s)


def run(plan: EvalPlan, listeners: list[Any] | None = None) -> EvalResult:
    async def go() -> EvalResult:
        async with new_client() as client:
            ctx = CallContext(client=client, settings=plan.settings, listeners=list(listeners or []))
            return await run_evaluation(plan, ctx)

    return asyncio.run(go())


def plan(batch: bool, **more: Any) -> EvalPlan:
    extra: dict[str, Any] = {"batch": True, "poll_s": 0.01} if batch else {}
    return plan_evaluation(QUESTIONS, FAST, pool=[A, B, C, D], judge=JUDGE, strategies=STRATEGIES, seed=7,
                           **extra, **more)


def chat_requests(emu: Emulator) -> list[str]:
    """The live chat calls the emulator served (batch routes aside)."""
    live = ("/chat/completions", "/v1/messages", ":streamGenerateContent", ":generateContent")
    return [r.path for r in emu.requests if r.path.endswith(live)]


def test_a_batch_run_scores_exactly_as_the_live_run_at_the_batch_rate(emulator_env: Emulator) -> None:
    script(emulator_env)
    live = run(plan(batch=False))
    live_calls = len(chat_requests(emulator_env))
    emulator_env.reset()
    script(emulator_env)
    updates: list[BatchUpdate] = []
    batched = run(plan(batch=True), [lambda e: updates.append(e) if isinstance(e, BatchUpdate) else None])

    assert chat_requests(emulator_env) == []  # not one call went live
    l_sum, b_sum = live.summary.set_index("strategy"), batched.summary.set_index("strategy")
    assert list(b_sum.index) == list(l_sum.index)
    for column in ("n", "correct", "accuracy", "calls", "failed"):
        assert list(b_sum[column]) == list(l_sum[column]), column
    assert set(b_sum["via"]) == {"batch"} and set(l_sum["via"]) == {"live"}
    assert list(batched.rows["answer"]) == list(live.rows["answer"])
    # Every call priced at half: OpenAI, Anthropic and Gemini from the price table x 0.5; OpenRouter's whole-batch
    # cost shared by tokens (the emulator's cost is proportional to tokens, so the share is exact).
    for name in l_sum.index:
        assert b_sum.loc[name, "total_cost_usd"] == pytest.approx(l_sum.loc[name, "total_cost_usd"] / 2, rel=1e-9)
    sources = {c.cost_source for c in batched.calls}
    assert any("batch rate" in s for s in sources) and any("shared out by tokens" in s for s in sources)
    assert all(c.batch_id for c in batched.calls)
    # The same calls, in waves: members first, then what needs their answers (debate's revisions, the judges).
    assert len(batched.calls) == live_calls
    waves = {u.wave for u in updates}
    assert waves == {1, 2, 3}
    providers = {u.provider for u in updates}
    assert providers == {"openai", "anthropic", "gemini", "openrouter"}
    text = batched.to_text()
    assert "via" in text and "Batch: " in text and "requests at the batch rate" in text


def test_calls_without_a_batch_api_run_live_beside_the_batches(emulator_env: Emulator) -> None:
    script(emulator_env, **{"llama3.2": ModelScript(reply=member("claude-b"))})
    p = plan_evaluation(QUESTIONS, FAST, pool=[A, "ollama:llama3.2"], judge=JUDGE,
                        strategies=["single", "best-of"], seed=7, batch=True, poll_s=0.01)
    result = run(p)
    live = chat_requests(emulator_env)
    assert live and all("/ollama/" in path for path in live)
    summary = result.summary.set_index("strategy")
    assert summary.loc[f"single:{A}", "via"] == "batch"
    assert summary.loc["single:ollama:llama3.2", "via"] == "live"
    assert summary.loc["best-of", "via"] == "batch+live"
    assert result.batch is not None and result.batch.live["ollama:llama3.2"] == 8
    assert "Live beside the batches (no batch API): ollama:llama3.2 8." in result.to_text()


def test_a_failed_request_fails_its_row_or_is_asked_live(emulator_env: Emulator) -> None:
    failing = ModelScript(reply=member("gpt-a"), faults=[Fault(kind="status", status=500, skip=1, times=1)])
    script(emulator_env, **{"gpt-a": failing})
    p = plan_evaluation(QUESTIONS, FAST, pool=[A], strategies=[f"single:{A}"], batch=True, poll_s=0.01)
    result = run(p)
    rows = result.rows
    assert rows["error"].notna().sum() == 1
    assert chat_requests(emulator_env) == []
    assert result.batch is not None and result.batch.failed_requests == 1
    assert "(--retry-live asks them again live)" in result.to_text()

    emulator_env.reset()
    script(emulator_env, **{"gpt-a": failing})
    again = run(plan_evaluation(QUESTIONS, FAST, pool=[A], strategies=[f"single:{A}"],
                                batch=True, poll_s=0.01, retry_live=True, seed=3))
    assert again.rows["error"].isna().all()
    assert len(chat_requests(emulator_env)) == 1  # the one the batch failed, asked live
    retried = [c for c in again.calls if c.note and c.note.startswith("asked live")]
    assert len(retried) == 1 and retried[0].batch_id is None


def test_receipts_let_a_new_runner_reattach_without_submitting_again(emulator_env: Emulator) -> None:
    script(emulator_env)
    emulator_env.batches.hold()
    p = plan_evaluation(QUESTIONS, FAST, pool=[A, B], strategies=["single"], batch=True, poll_s=0.01)

    async def first_then_stop() -> None:
        async with new_client() as client:
            ctx = CallContext(client=client, settings=p.settings)
            task = asyncio.create_task(run_evaluation(p, ctx))
            while emulator_env.batches.creations() < 2:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(first_then_stop())
    path = p.settings.run_log_path()
    assert path is not None
    receipts = Receipts(RunLog(path), p.identity).open_receipts()
    assert sorted(r.provider for r in receipts) == ["anthropic", "openai"]
    assert all(r.batch_id and len(r.custom_ids) == 4 for r in receipts)

    emulator_env.batches.release()
    result = run(p)
    assert emulator_env.batches.creations() == 2  # re-attached: nothing submitted again
    assert len(result.entries) == 8 and result.rows["error"].isna().all()
    assert result.batch is not None and result.batch.reattached == 2
    assert Receipts(RunLog(path), p.identity).open_receipts() == []  # used up: a later run starts afresh


def test_batch_mode_is_refused_in_one_line_where_it_cannot_work(emulator_env: Emulator) -> None:
    with pytest.raises(ConfigError, match="none of these models' providers has a batch API"):
        plan_evaluation(QUESTIONS, FAST, pool=["ollama:llama3.2"], strategies=["single"], batch=True)
    with pytest.raises(ConfigError, match="run log"):
        plan_evaluation(QUESTIONS, FAST.with_(run_log="off"), pool=[A], strategies=["single"], batch=True)
    with pytest.raises(ConfigError, match="--retry-live applies to batch evaluations"):
        plan_evaluation(QUESTIONS, FAST, pool=[A], strategies=["single"], retry_live=True)
    assert emulator_env.requests == []


def test_the_estimate_shows_live_and_batch_cost_side_by_side(emulator_env: Emulator) -> None:
    est = estimate_evaluation(plan(batch=False))
    rows = {r["strategy"]: r for r in est.rows}
    single_a = rows[f"single:{A}"]
    assert single_a["batch_usd"] == pytest.approx(single_a["live_usd"] / 2)
    assert single_a["batched_share"] == 1.0
    assert rows[f"single:{D}"]["live_usd"] is None  # no price for t/d: unknown, never 0
    text = str(est)
    assert "live" in text and "batch" in text and "Total: unknown live" in text
    assert emulator_env.requests == []


def test_the_ledger_and_the_run_log_name_the_batch_that_answered_each_call(emulator_env: Emulator) -> None:
    import fusion_magic

    script(emulator_env)
    result = fusion_magic.evaluate(QUESTIONS, settings=FAST, pool=[A], strategies=[f"single:{A}"], batch=True,
                                   poll_s=0.01)
    ledger = result.ledger
    assert list(ledger.columns).index("batch_id") == list(ledger.columns).index("status") + 1
    batch_id = result.batches[0].batch_id
    assert set(ledger["batch_id"]) == {batch_id}
    path = FAST.run_log_path()
    assert path is not None and result.run_id is not None
    logged = RunLog(path).calls(result.run_id)
    assert set(logged["batch_id"]) == {batch_id}
    # A live run's ledger keeps the columns it always had.
    assert "batch_id" not in fusion_magic.evaluate(QUESTIONS, settings=FAST, pool=[A],
                                                   strategies=[f"single:{A}"]).ledger.columns
