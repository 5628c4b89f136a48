"""OpenRouter's own server-side fusion as an evaluation strategy (``openrouter-fusion`` and
``openrouter-fusion:<preset>``), the baseline ours is measured against: what goes on the wire, the presets and the
refusals, OpenRouter's analysis read into the call's record and mapped into ours (partial coverage included), our
judge's own partial coverage, the cache key per preset, and the analysis shown with model text inert. Every model
is the loopback emulator's."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
import pandas as pd
import pytest
from html_checks import assert_inert

import fusion_magic
from fusion_magic.calls.cache import request_key
from fusion_magic.calls.call import CallContext, prepare, run_call
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.core.runner import new_client
from fusion_magic.evaluation import plan_evaluation
from fusion_magic.evaluation.strategies import (
    FUSION_PRESETS,
    OPENROUTER_FUSION_MODEL,
    expand_names,
    fusion_extra,
    fusion_note,
)
from fusion_magic.judge import best_of
from fusion_magic.judge.analysis import (
    LOCAL_MAX_ITEMS,
    Contradiction,
    PartialCoverage,
    UniquePoint,
    analysis_schema,
    bounded_for_local,
    from_openrouter,
    read_analysis,
)
from fusion_magic.judge.report import analysis_html
from fusion_magic.providers._http import WireContext
from fusion_magic.providers.base import ChatRequest, Finished, Message, ProviderAnalysis, TextDelta
from fusion_magic.providers.chat.openai_compat import FUSION_TYPE, ChunkParser, OpenAICompatProvider, fusion_result
from fusion_magic.providers.registry import resolve_endpoint
from fusion_magic.testing import Emulator, ModelScript
from fusion_magic.testing.families.openrouter import FusionScript, default_analysis

FAST = Settings(max_retries=0, timeout=20, rounds=1)
FUSION = "openrouter/fusion"
QUALITY_PANEL = ["anthropic/claude-opus-latest", "openai/gpt-latest", "google/gemini-pro-latest"]
BUDGET_PANEL = ["google/gemini-flash-latest", "deepseek/deepseek-v3.2", "moonshotai/kimi-latest"]
EVIL = "<img src=x onerror=alert(1)>"

QUESTIONS = pd.DataFrame({"id": ["q1", "q2"], "question": ["What is 2 + 2?", "What is 3 + 3?"],
                          "reference": ["4", "6"]})


def arithmetic(body: Mapping[str, Any]) -> str:
    """Answers both questions right."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return "Final answer: 4" if "2 + 2" in user else "Final answer: 6"


def fusion_requests(emu: Emulator) -> list[Mapping[str, Any]]:
    return [q.body or {} for q in emu.requests if q.model == FUSION]


# --- the strategy in an evaluation ---------------------------------------------------------------------------


def test_each_preset_asks_openrouter_fusion_once_per_question(emulator_env: Emulator) -> None:
    emulator_env.script(FUSION, ModelScript(reply=arithmetic, cost_usd=0.25))
    emulator_env.script("t/a", ModelScript(reply="Final answer: 5", cost_usd=0.5))
    r = fusion_magic.evaluate(QUESTIONS, pool=["openrouter:t/a"], settings=FAST,
                              strategies=["single", "openrouter-fusion", "openrouter-fusion:budget"])

    summary = {row["strategy"]: row for row in r.summary.to_dict("records")}
    assert list(summary) == ["single:openrouter:t/a", "openrouter-fusion", "openrouter-fusion:budget"]
    for name in ("openrouter-fusion", "openrouter-fusion:budget"):
        # One call per question, priced at what OpenRouter reports for the whole run (panel and analyst).
        assert (summary[name]["correct"], summary[name]["calls"], summary[name]["total_cost_usd"]) == (2, 2, 0.5)
    assert summary["single:openrouter:t/a"]["correct"] == 0

    # The wire: the router's alias, streamed, fusion forced on every question; a preset as the plugin's slug.
    bodies = fusion_requests(emulator_env)
    assert len(bodies) == 4
    default = [b for b in bodies if "plugins" not in b]
    budget = [b for b in bodies if "plugins" in b]
    assert len(default) == len(budget) == 2
    for body in bodies:
        assert body["model"] == FUSION and body["stream"] is True and body["tool_choice"] == "required"
    assert all(b["plugins"] == [{"id": "fusion", "preset": "general-budget"}] for b in budget)

    # Each row's note says how the panel went; the call keeps the whole result OpenRouter sent.
    rows = r.rows
    for name, panel in (("openrouter-fusion", QUALITY_PANEL), ("openrouter-fusion:budget", BUDGET_PANEL)):
        assert list(rows[rows["strategy"] == name]["note"]) == ["OpenRouter Fusion: 3 panel models, 0 failed"] * 2
        entries = [e for e in r.entries if e.strategy == name]
        assert len(entries) == 2
        for entry in entries:
            (call,) = entry.calls
            assert call.provider_analysis is not None and call.provider_analysis["type"] == FUSION_TYPE
            assert [x["model"] for x in call.provider_analysis["responses"]] == panel
            analysis = from_openrouter(call.provider_analysis)
            assert analysis is not None and analysis.models == panel and analysis.partial_coverage
            # The response names the concrete model that answered (the analyst), not the alias.
            assert call.served_model == "anthropic/claude-opus-latest"


def test_the_note_counts_failed_panel_models_and_a_missing_analysis(emulator_env: Emulator) -> None:
    emulator_env.script(FUSION, FusionScript(reply=arithmetic, failed_models=("openai/gpt-latest",), no_analysis=True))
    r = fusion_magic.evaluate(QUESTIONS, pool=["openrouter:t/a"], settings=FAST, strategies=["openrouter-fusion"])
    assert list(r.rows["note"]) == ["OpenRouter Fusion: 3 panel models, 1 failed; no analysis (its analyst failed)"] * 2
    assert list(r.rows["correct"]) == [True, True]


def test_a_failed_fusion_run_is_said_in_the_note(emulator_env: Emulator) -> None:
    emulator_env.script(FUSION, FusionScript(reply=arithmetic, failure_reason="insufficient_credits"))
    r = fusion_magic.evaluate(QUESTIONS, pool=["openrouter:t/a"], settings=FAST, strategies=["openrouter-fusion"])
    assert list(r.rows["note"]) == ["OpenRouter Fusion failed: insufficient_credits"] * 2


# --- names, presets, refusals ----------------------------------------------------------------------------------


def test_names_expand_to_one_spelling_per_preset() -> None:
    names = ["openrouter-fusion", "openrouter-fusion:quality", "openrouter-fusion:general-budget",
             "openrouter-fusion:budget", "openrouter-fusion:FAST", "openrouter-fusion:general-high"]
    assert expand_names(names, ["openrouter:t/a"]) == [
        "openrouter-fusion", "openrouter-fusion:budget", "openrouter-fusion:fast", "openrouter-fusion:high"]
    assert FUSION_PRESETS == {"quality": None, "high": "general-high", "budget": "general-budget",
                              "fast": "general-fast"}
    assert fusion_extra(None) == {"tool_choice": "required"}
    assert fusion_extra("general-fast") == {"tool_choice": "required",
                                            "plugins": [{"id": "fusion", "preset": "general-fast"}]}


def test_an_unknown_preset_is_one_line_at_plan_time(emulator_env: Emulator) -> None:
    with pytest.raises(ConfigError) as err:
        plan_evaluation(QUESTIONS, FAST, pool=["openrouter:t/a"], strategies=["openrouter-fusion:turbo"])
    message = str(err.value)
    assert "\n" not in message and "turbo" in message and "budget" in message
    assert emulator_env.requests == []


def test_it_needs_an_openrouter_key(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    with pytest.raises(ConfigError, match="OPENROUTER_API_KEY"):
        plan_evaluation(QUESTIONS, FAST, pool=["openai:t/a"], strategies=["openrouter-fusion"])
    assert emulator_env.requests == []


def test_the_plan_names_the_router_as_its_model(emulator_env: Emulator) -> None:
    plan = plan_evaluation(QUESTIONS, FAST, pool=["openrouter:t/a"], strategies=["openrouter-fusion:budget"])
    (strategy,) = plan.strategies
    assert strategy.models == [OPENROUTER_FUSION_MODEL] and not strategy.local_only
    assert strategy.extra == fusion_extra("general-budget")


# --- the wire, both ways -----------------------------------------------------------------------------------------


def test_extra_fields_reach_openrouter_only_and_never_override_ours() -> None:
    request = ChatRequest(model=FUSION, messages=(Message("user", "hi"),),
                          extra={"plugins": [{"id": "fusion"}], "tool_choice": "required", "stream": False})
    settings = Settings(keys={"openrouter": "sk-or-x", "openai": "sk-x"})
    openrouter = OpenAICompatProvider(resolve_endpoint(prepare("openrouter:m", settings).spec, settings.keys), None)
    body = openrouter.body(request)  # type: ignore[arg-type]
    assert body["plugins"] == [{"id": "fusion"}] and body["tool_choice"] == "required" and body["stream"] is True
    openai = OpenAICompatProvider(resolve_endpoint(prepare("openai:m", settings).spec, settings.keys), None)
    assert "plugins" not in openai.body(request)  # type: ignore[arg-type]


def item(**analysis: Any) -> dict[str, Any]:
    return {"type": FUSION_TYPE, "id": "st_1", "status": "completed", "analysis": analysis,
            "responses": [{"model": "openai/gpt-5", "content": "4"}]}


def test_the_stream_parser_reads_the_result_from_a_delta_annotation() -> None:
    parser = ChunkParser(WireContext("openrouter", FUSION), request_id=None)
    result = item(consensus=["4"])
    chunks = [
        {"id": "gen-1", "model": "anthropic/claude-opus-4.5", "choices": [{"index": 0, "delta": {"content": "4"}}]},
        {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": "", "annotations": [
            {"type": "url_citation", "url_citation": {"url": "https://example.com"}}, result]}}]},
        {"id": "gen-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    events = [e for c in chunks for e in parser.feed(json.dumps(c))]
    assert events == [TextDelta("4"), ProviderAnalysis(result)]
    assert parser.finish() == Finished("stop", "anthropic/claude-opus-4.5", "gen-1")
    # Nested under its type, the way url_citation nests, it reads the same; other annotations are not it.
    assert fusion_result({"annotations": [{"type": FUSION_TYPE, FUSION_TYPE: result}]}) == result
    assert fusion_result({"annotations": [{"type": "url_citation"}, "junk", 3]}) is None
    assert fusion_result({"content": "no annotations"}) is None


def test_the_emulated_router_sends_its_result_streamed_and_not(emulator_env: Emulator) -> None:
    emulator_env.script(FUSION, ModelScript(reply="Paris."))
    settings = Settings(max_retries=0, timeout=20)
    target = prepare(f"openrouter:{FUSION}", settings)
    request = ChatRequest(model=FUSION, messages=(Message("user", "Capital of France?"),),
                          extra=fusion_extra("general-budget"))

    async def go() -> Any:
        async with new_client() as client:
            return await run_call(target, request, ctx=CallContext(client=client, settings=settings))

    r = asyncio.run(go())
    assert r.ok and r.text == "Paris." and r.provider_analysis is not None
    assert r.provider_analysis["status"] == "completed"
    assert [x["model"] for x in r.provider_analysis["responses"]] == BUDGET_PANEL
    assert r.provider_analysis["analysis"] == default_analysis(BUDGET_PANEL)

    # Not streamed: the same result as the message's annotation.
    url = f"{emulator_env.env()['OPENROUTER_BASE_URL']}/chat/completions"
    body = {"model": FUSION, "messages": [{"role": "user", "content": "Capital of France?"}], "stream": False,
            "plugins": [{"id": "fusion", "analysis_models": ["openai/gpt-5", "x-ai/grok-4"]}]}
    reply = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-or-x"}).json()
    message = reply["choices"][0]["message"]
    assert message["content"] == "Paris."
    result = fusion_result(message)
    assert result is not None and [x["model"] for x in result["responses"]] == ["openai/gpt-5", "x-ai/grok-4"]
    # A plugin alone configures a run but starts none (OpenRouter's docs): another model answers plainly.
    plain = httpx.post(url, json={**body, "model": "openai/gpt-5"}, headers={"Authorization": "Bearer k"}).json()
    assert "annotations" not in plain["choices"][0]["message"]
    # A preset OpenRouter's schema does not list is its 400.
    bad = httpx.post(url, json={**body, "plugins": [{"id": "fusion", "preset": "general-turbo"}]},
                     headers={"Authorization": "Bearer k"})
    assert bad.status_code == 400 and "general-turbo" in bad.json()["error"]["message"]


def test_a_scripted_analysis_reaches_the_record_as_sent(emulator_env: Emulator) -> None:
    scripted = {"consensus": ["Paris."], "contradictions": [], "partial_coverage": [
        {"point": "The Seine.", "models": ["openai/gpt-latest"]}], "unique_insights": [], "blind_spots": []}
    emulator_env.script(FUSION, FusionScript(reply="Final answer: 4", analysis=scripted))
    r = fusion_magic.evaluate(QUESTIONS.iloc[:1], pool=["openrouter:t/a"], settings=FAST,
                              strategies=["openrouter-fusion"])
    (entry,) = r.entries
    (call,) = entry.calls
    assert call.provider_analysis is not None and call.provider_analysis["analysis"] == scripted
    a = from_openrouter(call.provider_analysis)
    assert a is not None and a.partial_coverage == [PartialCoverage("The Seine.", ("openai/gpt-latest",))]


# --- OpenRouter's analysis as ours ---------------------------------------------------------------------------------


def test_openrouter_analysis_maps_into_ours() -> None:
    result = {
        "type": FUSION_TYPE, "status": "completed",
        "analysis": {
            "consensus": ["All panel models agree the request is asking for a concise summary."],
            "contradictions": [{"topic": "Recommended approach", "stances": [
                {"model": "openai/gpt-5", "stance": "Favors an incremental rollout."},
                {"model": "anthropic/claude-sonnet-4.5", "stance": "Favors a single coordinated migration."},
                {"model": "openai/gpt-5", "stance": "a second stance of one model is dropped"}]},
                "a bare string is dropped", {"topic": "no stances"}],
            "partial_coverage": [{"models": ["openai/gpt-5"], "point": "Only one model addressed the rollback."},
                                 {"models": [], "point": "nobody"}, {"models": ["x"], "point": 3}],
            "unique_insights": [{"insight": "Highlighted a backwards-compatibility risk.",
                                 "model": "anthropic/claude-sonnet-4.5"}, {"insight": "no model"}],
            "blind_spots": ["No model considered the impact on existing API consumers.", 7],
        },
        "responses": [{"model": "openai/gpt-5", "content": "..."}, {"model": "anthropic/claude-sonnet-4.5"}],
        "failed_models": [{"model": "google/gemini-2.5-pro", "error": "Provider returned error", "status_code": 502}],
    }
    a = from_openrouter(result)
    assert a is not None
    assert a.consensus == ["All panel models agree the request is asking for a concise summary."]
    assert a.contradictions == [Contradiction("Recommended approach", {
        "openai/gpt-5": "Favors an incremental rollout.",
        "anthropic/claude-sonnet-4.5": "Favors a single coordinated migration."})]
    assert a.partial_coverage == [PartialCoverage("Only one model addressed the rollback.", ("openai/gpt-5",))]
    assert a.unique == [UniquePoint("anthropic/claude-sonnet-4.5", "Highlighted a backwards-compatibility risk.")]
    assert a.blind_spots == ["No model considered the impact on existing API consumers."]
    assert a.models == ["openai/gpt-5", "anthropic/claude-sonnet-4.5", "google/gemini-2.5-pro"]
    assert a.failed == [("google/gemini-2.5-pro", "Provider returned error")]
    # No analysis to map: the analyst failed, the run failed, or it is not a result at all.
    assert from_openrouter({"type": FUSION_TYPE, "status": "completed", "responses": []}) is None
    assert from_openrouter({"status": "incomplete", "failure_reason": "all_panels_failed"}) is None
    assert from_openrouter(None) is None and from_openrouter({"analysis": "text"}) is None


def test_openrouter_analysis_shows_inert_with_its_partial_coverage() -> None:
    a = from_openrouter(item(consensus=[EVIL], partial_coverage=[{"point": EVIL, "models": [EVIL, "openai/gpt-5"]}],
                             contradictions=[{"topic": EVIL, "stances": [{"model": EVIL, "stance": EVIL}]}],
                             unique_insights=[{"insight": EVIL, "model": EVIL}], blind_spots=[EVIL]))
    assert a is not None
    html = analysis_html(a)
    assert "only some answers" in html and "openai/gpt-5" in html
    assert_inert(html)


def test_fusion_note_words() -> None:
    from fusion_magic.core.record import CallRecord

    r = CallRecord(model=OPENROUTER_FUSION_MODEL, status="ok")
    assert fusion_note(r) == "OpenRouter Fusion: no analysis returned"
    r.cost_source = "cache (recorded cost $0.01)"
    assert fusion_note(r) == "OpenRouter Fusion: replayed from the cache, which keeps no analysis"
    r.provider_analysis = item(consensus=["x"])
    assert fusion_note(r) == "OpenRouter Fusion: 1 panel model, 0 failed"
    r.provider_analysis = {"status": "error", "error": "all panel models failed", "failure_reason": "all_panels_failed"}
    assert fusion_note(r) == "OpenRouter Fusion failed: all_panels_failed"
    failed = CallRecord(model=OPENROUTER_FUSION_MODEL, status="server")
    assert fusion_note(failed) is None


# --- our judge's partial coverage -------------------------------------------------------------------------------


def test_our_judge_is_asked_for_partial_coverage_bounded_like_the_rest() -> None:
    schema = analysis_schema(["A", "B", "C"])
    partial = schema["properties"]["partial_coverage"]
    assert schema["required"] == list(schema["properties"]) and "partial_coverage" in schema["required"]
    assert partial["items"]["properties"]["labels"]["items"]["enum"] == ["A", "B", "C"]
    assert partial["items"]["required"] == ["point", "labels"] and partial["items"]["additionalProperties"] is False
    # No length keyword for the hosted judges (Anthropic refuses them); the local judge's grammar gets them.
    assert "maxItems" not in json.dumps(schema)
    local = bounded_for_local(best_of.schema(["A", "B"]))["properties"]["analysis"]["properties"]["partial_coverage"]
    assert local["maxItems"] == LOCAL_MAX_ITEMS and local["items"]["properties"]["point"]["maxLength"] > 0


def test_partial_coverage_letters_become_members() -> None:
    names = {"A": "openai:gpt-4o", "B": "anthropic:claude-sonnet-4-5", "C": "gemini:gemini-2.5-flash"}
    a = read_analysis({"consensus": [], "contradictions": [], "unique": [], "blind_spots": [], "partial_coverage": [
        {"point": "Cites a source.", "labels": ["A", "(C)", "A", "Q"]},
        {"point": "nobody", "labels": ["Q"]}, {"point": "", "labels": ["A"]}, "junk"]}, names)
    assert a is not None
    assert a.partial_coverage == [PartialCoverage("Cites a source.", ("openai:gpt-4o", "gemini:gemini-2.5-flash"))]
    # An older judge that writes no partial_coverage reads as before.
    old = read_analysis({"consensus": ["x"], "contradictions": [], "unique": [], "blind_spots": []}, names)
    assert old is not None and old.partial_coverage == [] and not old.empty


def partial_judge(body: Mapping[str, Any]) -> str:
    """A best-of judge whose analysis credits the Paris answers with a point the Lyon one misses."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    letters = dict(re.findall(r"### Answer ([A-Z]) \(\d+ tokens\)\n(.*?)(?=\n\n### |\n\n## Task)", user, re.S))
    paris = sorted(label for label, text in letters.items() if "Paris" in text)
    analysis = {"consensus": [], "contradictions": [], "unique": [], "blind_spots": [],
                "partial_coverage": [{"point": "Names the capital.", "labels": paris}]}
    return json.dumps({"reasoning": "Paris.", "analysis": analysis, "winner": paris[0]})


def test_a_scripted_judge_partial_coverage_reads_back_with_model_ids(emulator_env: Emulator) -> None:
    emulator_env.script("paris-bot", ModelScript(reply="Paris."))
    emulator_env.script("paris-too", ModelScript(reply="Paris, France."))
    emulator_env.script("lyon-bot", ModelScript(reply="Lyon."))
    emulator_env.script("judge", ModelScript(reply=partial_judge))
    pool = ["openai:paris-bot", "openai:paris-too", "openai:lyon-bot"]
    r = fusion_magic.fuse("Capital of France?", pool=pool, judge="openai:judge", settings=FAST)
    assert r.analysis is not None
    assert r.analysis.partial_coverage == [PartialCoverage("Names the capital.",
                                                           ("openai:paris-bot", "openai:paris-too"))]
    judge_body = next(q.body for q in emulator_env.requests if q.model == "judge") or {}
    assert "partial_coverage" in judge_body["response_format"]["json_schema"]["schema"]["properties"]["analysis"][
        "properties"]
    assert '"partial_coverage"' in judge_body["messages"][-1]["content"]


# --- the cache ------------------------------------------------------------------------------------------------


def test_the_cache_key_differs_per_preset_and_not_for_plain_requests() -> None:
    base = ChatRequest(model=FUSION, messages=(Message("user", "2+2?"),))
    keys = {name: request_key(OPENROUTER_FUSION_MODEL, ChatRequest(model=FUSION, messages=base.messages,
                                                                   extra=fusion_extra(slug)))
            for name, slug in FUSION_PRESETS.items()}
    assert len(set(keys.values())) == len(keys)
    # A request with no extra keeps the key it always had (recordings made before still replay).
    assert request_key(OPENROUTER_FUSION_MODEL, base) not in keys.values()
    before = {"v": 1, "model": "openrouter:m", "messages": [["user", "2+2?"]], "max_tokens": None,
              "temperature": None, "seed": None, "stop": [], "schema": None}
    blob = json.dumps(before, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert request_key("openrouter:m", base) == hashlib.sha256(blob.encode()).hexdigest()
    assert request_key("openrouter:m", base) == request_key("openrouter:m", ChatRequest(model=FUSION,
                                                                                         messages=base.messages,
                                                                                         extra={}))
