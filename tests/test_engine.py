"""The fused run end to end through real sockets: every call crosses the loopback emulator."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import pytest

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import BudgetError, CallCancelled, ConfigError, MissingKeyError, ReplayMissError
from fusion_magic.core.events import CallDelta, CallFinished, EngineEvent
from fusion_magic.fusion.estimate import check_budget, estimate
from fusion_magic.fusion.events import RunFinished, VerdictReady
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.testing import Emulator, Fault, ModelScript

POOL = ["openrouter:t/alpha", "anthropic:beta", "gemini:gamma"]
FAST = Settings(max_retries=0, timeout=20)


def user_text(body: Mapping[str, Any]) -> str:
    """The prompt text of any family's request body."""
    if "contents" in body:
        return "\n".join(p.get("text", "") for c in body["contents"] for p in c["parts"])
    return "\n".join(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
                     for m in body["messages"])


def pick_answer_with(needle: str):  # type: ignore[no-untyped-def]
    """A judge script that names the anonymous label of the answer containing ``needle``."""

    def reply(body: Mapping[str, Any]) -> str:
        text = user_text(body)
        for label, answer in re.findall(r"### Answer ([A-Z]) \(\d+ tokens\)\n(.*?)(?=\n\n###|\n\n## Task)", text,
                                        re.S):
            if needle in answer:
                return json.dumps({"reasoning": f"{label} has {needle}", "winner": label})
        return json.dumps({"reasoning": "none", "winner": "A"})

    return reply


def script_pool(emu: Emulator) -> None:
    emu.script("t/alpha", ModelScript(reply="It is 41."))
    emu.script("beta", ModelScript(reply="The answer is 42."))
    emu.script("gamma", ModelScript(reply="42, since 6 x 7 = 42."))


def test_best_of_picks_the_judges_choice_verbatim(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("t/judge", ModelScript(reply=pick_answer_with("answer is 42")))
    events: list[EngineEvent] = []
    r = fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge="openrouter:t/judge", mode="best-of",
                          settings=FAST, listeners=[events.append])
    assert r.answer == "The answer is 42."
    assert r.verdict is not None and r.verdict.choice == "anthropic:beta"
    assert r.verdict.choice_label in r.verdict.labels and "anthropic:beta" in r.verdict.labels[r.verdict.choice_label]
    assert not r.degraded and r.n_ok == 3
    assert [x.text for x in r.responses] == ["It is 41.", "The answer is 42.", "42, since 6 x 7 = 42."]
    # the judge saw anonymous answers only
    judge_req = next(q for q in emulator_env.requests if q.model == "t/judge")
    assert "beta" not in user_text(judge_req.body or {}) and "gamma" not in user_text(judge_req.body or {})
    assert judge_req.body is not None and judge_req.body["temperature"] == 0
    assert judge_req.body["response_format"]["type"] == "json_schema"
    # the ledger has a row per call, judge included, and OpenRouter's own cost
    ledger = r.ledger
    assert list(ledger["role"]) [-1] == "judge" and len(ledger) == 4
    alpha = ledger[ledger["model"] == "openrouter:t/alpha"].iloc[0]
    assert alpha["cost_source"] == "provider" and alpha["cost_usd"] > 0
    # events: deltas streamed, every call finished, one verdict, one run end
    assert any(isinstance(e, CallDelta) for e in events)
    assert sum(isinstance(e, CallFinished) for e in events) == 4
    assert isinstance(events[-1], RunFinished) and any(isinstance(e, VerdictReady) for e in events)


def test_all_members_start_together(emulator_env: Emulator) -> None:
    for name in ("s1", "s2", "s3", "s4"):
        emulator_env.script(name, ModelScript(reply="ok", ttft_s=0.5))
    pool = [f"openai:{n}" for n in ("s1", "s2", "s3", "s4")]
    r = fusion_magic.fuse("q", pool=pool, judge="vote", settings=FAST)
    reqs = emulator_env.requests
    # every request reached the server before any answer was complete: they ran concurrently
    assert max(q.started for q in reqs) < min(q.ended or 0 for q in reqs)
    assert r.n_ok == 4


def test_merge_uses_the_judges_synthesis(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge-m", ModelScript(reply=json.dumps({"reasoning": "B and C agree", "answer": "42."})))
    r = fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge="anthropic:judge-m", mode="merge", settings=FAST)
    assert r.answer == "42." and r.verdict is not None and r.verdict.reasoning == "B and C agree"
    body = next(q for q in emulator_env.requests if q.model == "judge-m").body or {}
    assert body["output_config"]["format"]["type"] == "json_schema"


def test_debate_revises_then_judge_sees_first_and_last_round(emulator_env: Emulator) -> None:
    emulator_env.script("d1", ModelScript(replies=["It is 41.", "You are right, it is 42."]))
    emulator_env.script("d2", ModelScript(replies=["It is 42.", "It is 42."]))
    emulator_env.script("dj", ModelScript(reply=json.dumps({"reasoning": "converged", "answer": "42"})))
    r = fusion_magic.fuse("6 x 7?", pool=["openai:d1", "openai:d2"], judge="openai:dj", mode="debate",
                          rounds=3, settings=FAST)
    rounds = sorted({x.round for x in r.responses})
    assert rounds == [0, 1]  # agreed after round 1: no round 2 or 3
    revision = [q for q in emulator_env.requests if q.model == "d1"][1].body or {}
    assert "It is 42." in user_text(revision) and revision["messages"][-2]["role"] == "assistant"
    judge_text = user_text(next(q for q in emulator_env.requests if q.model == "dj").body or {})
    assert "first round" in judge_text and "final round" in judge_text and "It is 41." in judge_text
    assert r.answer == "42"
    assert set(r.ledger["round"].dropna()) == {0, 1}


def test_failed_member_fails_its_own_tab_only(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gamma", ModelScript(reply="partial answer that breaks", faults=[
        Fault("cut", after_chunks=2)]))
    r = fusion_magic.fuse("6 x 7?", pool=POOL, judge="vote", settings=FAST)
    gamma = next(x for x in r.responses if x.model == "gemini:gamma")
    assert gamma.status == "protocol" and gamma.text  # what arrived is kept
    # 41 against 42: the vote has no majority and says so rather than pick one of the two.
    assert r.degraded and r.n_ok == 2 and r.verdict is not None and r.verdict.undecided and r.answer == ""
    assert "DEGRADED" in r.to_text()


def test_retries_are_seen_in_the_request_log(emulator_env: Emulator) -> None:
    emulator_env.script("flaky", ModelScript(reply="fine", faults=[Fault("status", status=503, retry_after=0.05,
                                                                           times=2)]))
    r = fusion_magic.complete("openrouter:flaky", "hi")
    assert r.status == "ok" and r.text == "fine" and r.attempts == 3
    assert [q.status for q in emulator_env.requests if q.model == "flaky"] == [503, 503, 200]


def test_bad_request_is_never_retried(emulator_env: Emulator) -> None:
    emulator_env.script("bad", ModelScript(faults=[Fault("status", status=400, message="bad field")]))
    r = fusion_magic.complete("openai:bad", "hi")
    assert r.status == "bad_request" and "bad field" in (r.error or "") and r.http_status == 400
    assert len([q for q in emulator_env.requests if q.model == "bad"]) == 1


def test_quorum_judges_early_and_keeps_stragglers_late(emulator_env: Emulator) -> None:
    emulator_env.script("q1", ModelScript(reply="4"))
    emulator_env.script("q2", ModelScript(reply="4"))
    emulator_env.script("slow", ModelScript(reply="5", ttft_s=3.0))
    r = fusion_magic.fuse("2+2?", pool=["openai:q1", "openai:q2", "openai:slow"], judge="vote", quorum=2,
                          settings=FAST)
    slow = next(x for x in r.responses if x.model == "openai:slow")
    assert slow.late and slow.status != "ok" and r.answer == "4"  # judged before the straggler finished
    # the straggler keeps running and fills its record in place
    deadline = time.monotonic() + 10
    while slow.status != "ok" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow.status == "ok" and slow.text == "5" and slow.late


def test_deadline_fires_with_what_arrived(emulator_env: Emulator) -> None:
    emulator_env.script("fast", ModelScript(reply="yes"))
    emulator_env.script("hung", ModelScript(faults=[Fault("hang")]))
    r = fusion_magic.fuse("ok?", pool=["openai:fast", "openai:hung"], judge="vote", deadline=2.0,
                          settings=FAST.with_(timeout=5))
    hung = next(x for x in r.responses if x.model == "openai:hung")
    assert hung.late and r.answer == "yes"


def test_judge_failure_falls_back_to_vote(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("broken-judge", ModelScript(faults=[Fault("status", status=500)]))
    r = fusion_magic.fuse("6 x 7?", pool=POOL, judge="openrouter:broken-judge", settings=FAST)
    assert r.verdict is not None and r.verdict.fallback and r.degraded
    assert r.answer in ("The answer is 42.", "42, since 6 x 7 = 42.")
    assert r.ledger.iloc[-1]["status"] == "server"


def test_unparseable_judge_falls_back(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("chatty", ModelScript(reply="I refuse to pick."))
    r = fusion_magic.fuse("6 x 7?", pool=POOL, judge="openai:chatty", settings=FAST)
    assert r.verdict is not None and r.verdict.fallback and "no usable verdict" in r.verdict.reasoning


def test_rejudge_calls_only_the_judge(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    first = fusion_magic.fuse("6 x 7?", pool=POOL, judge="vote", settings=FAST)
    n = len(emulator_env.requests)
    emulator_env.script("rj", ModelScript(reply=pick_answer_with("6 x 7")))
    again = fusion_magic.rejudge(first, mode="best-of", judge="openrouter:rj", settings=FAST)
    assert [q.model for q in emulator_env.requests[n:]] == ["rj"]
    assert again.answer == "42, since 6 x 7 = 42." and again.mode == "best-of"


def test_the_same_rejudge_under_the_cache_is_answered_from_it(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("rj", ModelScript(reply=pick_answer_with("6 x 7")))
    first = fusion_magic.fuse("6 x 7?", pool=POOL, judge="vote", settings=FAST, cache="on")
    n = len(emulator_env.requests)
    recorded = fusion_magic.rejudge(first, mode="best-of", judge="openrouter:rj", settings=FAST, cache="on")
    assert [q.model for q in emulator_env.requests[n:]] == ["rj"]
    replayed = fusion_magic.rejudge(first, mode="best-of", judge="openrouter:rj", settings=FAST, cache="on")
    assert [q.model for q in emulator_env.requests[n:]] == ["rj"]  # nothing new reached the server
    judge_call = replayed.judge_responses[-1]
    assert judge_call.cost_source.startswith("cache") and judge_call.cost_usd == 0.0
    assert replayed.answer == recorded.answer and replayed.verdict is not None
    assert replayed.verdict.choice == recorded.verdict.choice  # the same shuffle, so the same request


def test_missing_key_fails_before_any_call(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in emulator.env().items():
        monkeypatch.setenv(k, v)
    with pytest.raises(MissingKeyError, match="ANTHROPIC_API_KEY"):
        fusion_magic.fuse("q", pool=["openai:x", "anthropic:y"], keys={"openai": "k"})
    assert emulator.requests == []


def test_bad_ids_and_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="provider:model"):
        fusion_magic.fuse("q", pool=["gpt-4o"])
    with pytest.raises(ConfigError, match="unknown provider"):
        fusion_magic.fuse("q", pool=["nope:x"])
    with pytest.raises(ConfigError, match="quorum"):
        fusion_magic.fuse("q", pool=["local:gemma3-270m"] * 2, judge="vote", quorum=5)
    with pytest.raises(ConfigError, match="empty"):
        fusion_magic.fuse("  ", pool=["local:gemma3-270m"])


def test_estimate_and_budget_make_no_call(emulator_env: Emulator) -> None:
    plan = fusion_magic.api.plan_fuse("Explain entropy.", options=FuseOptions(
        pool=("openai:gpt-4o", "anthropic:claude-sonnet-4-5"), judge="openai:gpt-4o-mini", max_tokens=100))
    est = estimate(plan)
    assert est.total_usd is not None and 0 < est.total_usd < 0.05
    with pytest.raises(BudgetError, match="above --budget"):
        check_budget(est, 0.000001)
    check_budget(est, 1.0)
    unknown = estimate(fusion_magic.api.plan_fuse("x", options=FuseOptions(pool=("openai:some-new-model",),
                                                                           judge="vote")))
    assert unknown.total_usd is None
    with pytest.raises(BudgetError, match="cannot be checked"):
        check_budget(unknown, 1.0)
    assert emulator_env.requests == []


def test_unknown_price_is_unknown_not_zero(emulator_env: Emulator) -> None:
    emulator_env.script("mystery-model", ModelScript(reply="hi"))
    r = fusion_magic.complete("openai:mystery-model", "hi")
    assert r.status == "ok" and r.cost_usd is None and r.cost_source == "unknown"
    emulator_env.script("gpt-4o", ModelScript(reply="hi", input_tokens=1000, output_tokens=100))
    r = fusion_magic.complete("openai:gpt-4o", "hi")
    assert r.cost_usd == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)


def test_cache_records_then_replays_offline(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    first = fusion_magic.fuse("6 x 7?", pool=POOL, judge="vote", cache="on", settings=FAST)
    n = len(emulator_env.requests)
    again = fusion_magic.fuse("6 x 7?", pool=POOL, judge="vote", cache="replay", settings=FAST)
    assert len(emulator_env.requests) == n  # nothing sent
    assert [x.text for x in again.responses] == [x.text for x in first.responses]
    assert all(x.cost_usd == 0 for x in again.responses)
    with pytest.raises(ReplayMissError):
        fusion_magic.fuse("a different prompt", pool=POOL, judge="vote", cache="replay", settings=FAST)
    for path in Settings().cache_path().rglob("*.json"):
        text = path.read_text()
        assert all(v not in text for v in emulator_env.test_keys().values())


def test_afuse_runs_on_the_callers_loop(emulator_env: Emulator) -> None:
    script_pool(emulator_env)

    async def main() -> Any:
        return await fusion_magic.afuse("6 x 7?", pool=POOL, judge="vote", settings=FAST)

    r = asyncio.run(main())
    assert r.n_ok == 3 and r.answer


def test_background_returns_at_once(emulator_env: Emulator) -> None:
    emulator_env.script("bg", ModelScript(reply="later", ttft_s=0.5))
    job = fusion_magic.fuse("q", pool=["openai:bg", "openai:bg"], judge="vote", background=True, settings=FAST)
    assert not job.done()
    assert job.result(timeout=10).answer == "later"


def test_self_sampling_gives_each_seat_a_seed(emulator_env: Emulator) -> None:
    r = fusion_magic.fuse("q", pool=["openai:s"], self_n=3, judge="vote", settings=FAST)
    seeds = [q.body["seed"] for q in emulator_env.requests if q.body]
    assert sorted(seeds) == [1, 2, 3] and len(r.responses) == 3
    assert [x.label for x in r.responses] == ["s #1", "s #2", "s #3"]


def test_keys_never_reach_results(emulator_env: Emulator) -> None:
    emulator_env.script("authfail", ModelScript(faults=[Fault("status", status=401)]))
    r = fusion_magic.fuse("q", pool=["openrouter:authfail", "anthropic:ok"], judge="vote", settings=FAST)
    blob = r.to_text() + r.to_markdown() + r.ledger.to_csv() + repr(r)
    for key in emulator_env.test_keys().values():
        assert key not in blob
    assert r.responses[0].status == "auth"


def test_same_short_name_from_two_vendors_keeps_both(emulator_env: Emulator) -> None:
    emulator_env.script("a/m", ModelScript(reply="from a"))
    emulator_env.script("b/m", ModelScript(reply="from b"))
    r = fusion_magic.fuse("q", pool=["openrouter:a/m", "openrouter:b/m"], judge="vote", settings=FAST)
    assert [x.label for x in r.responses] == ["openrouter:a/m", "openrouter:b/m"]
    assert r.n_ok == 2 and {x.text for x in r.members} == {"from a", "from b"}


def test_cache_replays_a_model_judge_and_debate(emulator_env: Emulator) -> None:
    emulator_env.script("c1", ModelScript(replies=["It is 41.", "It is 42."]))
    emulator_env.script("c2", ModelScript(reply="It is 42."))
    emulator_env.script("cj", ModelScript(reply='{"reasoning": "r", "answer": "42"}'))
    kw = {"pool": ["openai:c1", "openai:c2"], "judge": "anthropic:cj", "mode": "debate", "settings": FAST}
    first = fusion_magic.fuse("6 x 7?", cache="on", **kw)
    n = len(emulator_env.requests)
    again = fusion_magic.fuse("6 x 7?", cache="replay", **kw)
    assert len(emulator_env.requests) == n and again.answer == first.answer == "42"
    assert [x.text for x in again.responses] == [x.text for x in first.responses]


def test_cancel_during_the_judge_also_cancels_late_members(emulator_env: Emulator) -> None:
    emulator_env.script("quick", ModelScript(reply="1"))
    emulator_env.script("straggler", ModelScript(faults=[Fault("hang")]))
    emulator_env.script("slow-judge", ModelScript(faults=[Fault("hang")]))
    job = fusion_magic.fuse("q", pool=["openai:quick", "openai:straggler"], judge="openai:slow-judge", quorum=1,
                            settings=FAST, background=True)
    emulator_env.wait_for(lambda reqs: any(q.model == "slow-judge" for q in reqs), timeout=5)
    assert job.cancel()
    # Both connections must close: wait until both have, not until the first one did.
    gone = emulator_env.wait_for(
        lambda reqs: {q.model for q in reqs if q.model in ("straggler", "slow-judge") and q.disconnected}
        == {"straggler", "slow-judge"}, timeout=5)
    assert gone
    with pytest.raises(CallCancelled):
        job.result()


def test_bad_key_or_url_is_a_config_error_before_any_call(emulator_env: Emulator,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test\u200b")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY contains"):
        fusion_magic.fuse("q", pool=["openai:x", "anthropic:y"])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://[::1")
    with pytest.raises(ConfigError, match="not a valid URL"):
        fusion_magic.complete("openai:x", "q")
    assert emulator_env.requests == []


def test_debate_round_failure_keeps_the_earlier_answers(emulator_env: Emulator) -> None:
    # round 0 answers, then every revision fails: the round-0 answers still count and are judged
    emulator_env.script("f1", ModelScript(reply="It is 41.", faults=[Fault("status", status=400, skip=1)]))
    emulator_env.script("f2", ModelScript(reply="It is 42.", faults=[Fault("status", status=400, skip=1)]))
    r = fusion_magic.fuse("6 x 7?", pool=["openai:f1", "openai:f2"], judge="vote", mode="debate", rounds=1,
                          settings=FAST)
    assert [x.status for x in r.responses] == ["ok", "ok", "bad_request", "bad_request"]
    assert r.n_ok == 2 and r.degraded and r.verdict is not None and "No majority" in r.verdict.reasoning


def test_a_straggler_still_waiting_is_late_not_failed(emulator_env: Emulator) -> None:
    emulator_env.script("on-time", ModelScript(reply="yes"))
    emulator_env.script("waiting", ModelScript(reply="yes", ttft_s=3.0))
    r = fusion_magic.fuse("ok?", pool=["openai:on-time", "openai:waiting"], judge="vote", quorum=1, settings=FAST)
    late = next(x for x in r.responses if x.late)
    assert late.status in ("waiting", "streaming") and not r.failed and not r.degraded


def test_rejudge_sees_a_late_answer(emulator_env: Emulator) -> None:
    from fusion_magic.calls.call import CallContext
    from fusion_magic.core.runner import get_runner
    from fusion_magic.fusion.engine import rejudge

    emulator_env.script("p1", ModelScript(reply="It is 41."))
    emulator_env.script("p2", ModelScript(reply="It is 42.", ttft_s=1.0))
    emulator_env.script("p3", ModelScript(reply="42", ttft_s=1.0))
    first = fusion_magic.fuse("6 x 7?", pool=["openai:p1", "openai:p2", "openai:p3"], judge="vote", quorum=1,
                              settings=FAST)
    assert first.answer == "It is 41."
    deadline = time.monotonic() + 10
    while not all(x.ok for x in first.responses) and time.monotonic() < deadline:
        time.sleep(0.05)  # the stragglers fill their records in place on the engine thread
    again = get_runner().run(lambda client: rejudge(first, FAST, CallContext(client=client, settings=FAST),
                                                    judge="vote"))
    assert again.answer == "It is 42." and not any(x.late for x in again.responses)


def test_judge_order_is_reshuffled_per_call_on_the_wire(emulator_env: Emulator) -> None:
    import random

    from fusion_magic.api import plan_fuse
    from fusion_magic.calls.call import CallContext
    from fusion_magic.core.runner import get_runner
    from fusion_magic.fusion.engine import run_fusion

    script_pool(emulator_env)
    emulator_env.script("oj", ModelScript(reply='{"reasoning": "r", "winner": "A"}'))
    plan = plan_fuse("6 x 7?", FAST, FuseOptions.defaults(FAST).with_(pool=POOL, judge="openai:oj"))
    orders = []
    for seed in range(6):
        get_runner().run(lambda client, seed=seed: run_fusion(plan, CallContext(client=client, settings=FAST),
                                                            rng=random.Random(seed)))
        text = user_text([q for q in emulator_env.requests if q.model == "oj"][-1].body or {})
        orders.append(tuple(re.findall(r"### Answer [A-Z] \(\d+ tokens\)\n([^\n]+)", text)))
    assert len(set(orders)) > 1 and all(sorted(o) == sorted(orders[0]) for o in orders)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("VLLM_BASE_URL", "http://xn--zz.com/v1", "not a valid URL"),
        ("VLLM_BASE_URL", "ftp://host/v1", "must start with http"),
        ("VLLM_BASE_URL", "http://user:secret-token@[::1/v1?key=secret-token", "not a valid URL"),
    ],
)
def test_bad_base_urls_are_one_line_and_never_echo_credentials(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=message) as info:
        fusion_magic.complete("vllm:x", "q")
    assert "secret-token" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "base"),
    [
        (":11434", "http://127.0.0.1:11434/v1"),
        ("localhost", "http://localhost:11434/v1"),
        ("0.0.0.0", "http://127.0.0.1:11434/v1"),
        ("gpu-box:8080", "http://gpu-box:8080/v1"),
        ("https://ollama.com", "https://ollama.com/v1"),
    ],
)
def test_ollama_host_forms(monkeypatch: pytest.MonkeyPatch, host: str, base: str) -> None:
    from fusion_magic.providers.registry import BUILTIN, resolve_endpoint

    monkeypatch.setenv("OLLAMA_HOST", host)
    assert resolve_endpoint(BUILTIN["ollama"]).base_url == base


def test_setup_errors_are_not_swallowed_as_failed_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # llama.cpp missing is the user's setup, not a model failing: the run stops with the install hint.
    import sys

    import llama_cpp  # noqa: F401  (make test installs the local extra: missing is a failure, not a skip)

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ConfigError, match="pip install"):
        fusion_magic.fuse("q", pool=[f"local:{tmp_path / 'other.gguf'}"] * 2, judge="vote", settings=FAST)
