"""The teaching notebook's scripted helpers in fusion_magic.testing.judges, through real runs against the emulator:
``first_answer_judge`` (a judge with a pure position bias, which ``--orders N`` must catch) and ``by_question``
(one scripted member that answers each question of a notebook its own way, in a debate too)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.fusion.report import text_report
from fusion_magic.fusion.result import FusionResult
from fusion_magic.judge import best_of, merge
from fusion_magic.judge.analysis import Contradiction
from fusion_magic.testing import SCRIPTED, Emulator, ModelScript
from fusion_magic.testing.judges import (
    by_question,
    content_judge,
    debater,
    first_answer_judge,
    requested_fields,
    shown_answers,
)

FAST = Settings(max_retries=0, timeout=20)
POOL = ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]
ANSWERS = {
    "gpt-4.1-mini": "Steel is heavier: it is far denser than feathers.",
    "claude-haiku-4-5": "Neither: they weigh the same, one kilogram each.",
    "gemini-2.5-flash": "The feathers: it takes a huge pile of them to make a kilogram.",
}
QUESTION = "Which is heavier, a kilogram of feathers or a kilogram of steel?"
JUDGES = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]


def wire(model_id: str) -> str:
    return model_id.split(":", 1)[1]


def script_pool(emu: Emulator) -> None:
    for model, text in ANSWERS.items():
        emu.script(model, ModelScript(reply=text))


def judge_bodies(emu: Emulator, judge: str) -> list[Mapping[str, Any]]:
    return [q.body or {} for q in emu.requests if q.model == wire(judge)]


def run(judge: str, prompt: str = QUESTION, **options: Any) -> FusionResult:
    result: FusionResult = fusion_magic.fuse(prompt, pool=POOL, judge=judge, settings=FAST, **options)
    return result


# --- first_answer_judge --------------------------------------------------------------------------------------


@pytest.mark.parametrize("judge", JUDGES)
def test_the_first_answer_judge_picks_whatever_is_shown_first_and_orders_catch_it(emulator_env: Emulator,
                                                                                   judge: str) -> None:
    script_pool(emulator_env)
    emulator_env.script(wire(judge), ModelScript(reply=first_answer_judge()))
    r = run(judge, orders=3, seed=1)
    bodies = judge_bodies(emulator_env, judge)
    firsts = [next(iter(shown_answers(body).values())) for body in bodies]
    assert sorted(firsts) == sorted(ANSWERS.values())  # three orders: each answer shown first once
    by_text = {m.text: m.model for m in r.members}
    assert r.verdict is not None and not r.verdict.fallback
    # every order picked the answer it showed first: three orders, three different picks
    assert sorted(r.verdict.orders, key=str) == sorted(by_text[t] for t in firsts)
    assert r.position_consistency == pytest.approx(1 / 3) and r.verdict.agreement == (1, 3)
    assert "position consistency 1/3" in " ".join(text_report(r).split())
    # the content-reading judge on the same answers holds its pick in every order
    emulator_env.script(wire(judge), ModelScript(reply=content_judge("weigh the same")))
    steady = run(judge, orders=3, seed=1)
    assert steady.position_consistency == 1.0 and steady.answer == ANSWERS["claude-haiku-4-5"]


def test_its_reasoning_says_it_is_scripted_and_why_it_picked(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=first_answer_judge()))
    r = run("openai:gpt-4.1", seed=3)
    [body] = judge_bodies(emulator_env, "openai:gpt-4.1")
    first_text = next(iter(shown_answers(body).values()))
    assert r.answer == first_text and r.verdict is not None
    assert r.verdict.choice_label == "Answer A"  # the letters follow the order shown
    assert r.verdict.reasoning == (f"{SCRIPTED} Answer A is shown first, and this judge always picks the "
                                   "first answer.")
    emulator_env.script("gpt-4.1", ModelScript(reply=first_answer_judge(reasoning="Answer {winner} reads best.")))
    assert run("openai:gpt-4.1").verdict.reasoning == "Answer A reads best."  # type: ignore[union-attr]


@pytest.mark.parametrize("judge", JUDGES)
@pytest.mark.parametrize(("mode", "module"), [("best-of", best_of), ("merge", merge)])
def test_it_answers_exactly_the_fields_the_schema_asks_for(emulator_env: Emulator, judge: str, mode: str,
                                                           module: Any) -> None:
    script_pool(emulator_env)
    emulator_env.script(wire(judge), ModelScript(reply=first_answer_judge(merged="One kilogram each.")))
    r = run(judge, mode=mode)
    [body] = judge_bodies(emulator_env, judge)
    asked = tuple(module.schema(list(shown_answers(body)))["properties"])
    assert requested_fields(body) == asked
    assert r.verdict is not None and tuple(json.loads(r.verdict.raw)) == asked and not r.verdict.fallback
    first_model = r.verdict.labels["Answer A"]  # "model (short name)"
    if mode == "best-of":
        assert r.verdict.choice is not None and first_model.startswith(f"{r.verdict.choice} ")
    else:
        assert r.answer == "One kilogram each." and r.verdict.best_label == "Answer A"


def test_its_analysis_is_the_same_in_every_order_while_the_pick_moves(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=first_answer_judge(
        consensus=["All compare a kilogram with a kilogram."],
        contradictions={"Which is heavier": {"same": "Neither.", "Steel": "Steel.", "feathers:": "Feathers."}},
        unique={"denser": "Brings in density.", "kilogram": "said by every answer: no unique point"},
    )))
    r = run("openai:gpt-4.1", orders=3, seed=1)
    assert r.position_consistency == pytest.approx(1 / 3)
    stances = {"openai:gpt-4.1-mini": "Steel.", "anthropic:claude-haiku-4-5": "Neither.",
               "gemini:gemini-2.5-flash": "Feathers."}
    for body in judge_bodies(emulator_env, "openai:gpt-4.1"):
        # each order's verdict JSON, read back through that order's letters, says the same thing
        shown = shown_answers(body)
        reply = json.loads(first_answer_judge(contradictions={"Which is heavier": {
            "same": "Neither.", "Steel": "Steel.", "feathers:": "Feathers."}})(body))
        by_letter = reply["analysis"]["contradictions"][0]["stances"]
        assert sorted(by_letter.values()) == sorted(stances.values()) and set(by_letter) == set(shown)
    a = r.analysis
    assert a is not None and a.consensus == ["All compare a kilogram with a kilogram."]
    assert a.contradictions == [Contradiction("Which is heavier", stances)]
    assert [(u.model, u.point) for u in a.unique] == [("openai:gpt-4.1-mini", "Brings in density.")]


def test_without_items_the_analysis_is_empty_and_can_be_left_out(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=first_answer_judge()))
    r = run("openai:gpt-4.1")
    assert r.verdict is not None and not r.verdict.fallback
    [sent] = judge_bodies(emulator_env, "openai:gpt-4.1")
    reply = json.loads(first_answer_judge()(sent))
    assert reply["analysis"] == {"consensus": [], "contradictions": [], "partial_coverage": [], "unique": [],
                                 "blind_spots": []}
    assert "analysis" not in json.loads(first_answer_judge(analysis=False)(sent))


def test_a_request_without_answers_is_refused() -> None:
    with pytest.raises(ValueError, match="shows no answers"):
        first_answer_judge()({"messages": [{"role": "user", "content": "What is 2 + 2?"}]})


# --- by_question ---------------------------------------------------------------------------------------------


def test_by_question_answers_each_question_its_own_way(emulator_env: Emulator) -> None:
    member = by_question({"CRANBERRY": "Final answer: 2", "feathers": ANSWERS["gpt-4.1-mini"]},
                         otherwise="No idea.")
    for model in ANSWERS:
        emulator_env.script(model, ModelScript(reply=member))
    cranberry = fusion_magic.fuse("How many r's are in cranberry?", pool=POOL, judge="vote", settings=FAST)
    assert [m.text for m in cranberry.members] == ["Final answer: 2"] * 3  # matched case-insensitively
    assert cranberry.verdict is not None and cranberry.verdict.votes == (3, 3)
    other = fusion_magic.fuse("What is 2 + 2?", pool=POOL, judge="vote", settings=FAST)
    assert {m.text for m in other.members} == {"No idea."}


def test_by_question_reads_the_question_in_a_debate_and_a_debater_revises(emulator_env: Emulator) -> None:
    for model, text in ANSWERS.items():
        reply = (debater(text, "I was wrong: they weigh the same, one kilogram each.")
                 if model == "gemini-2.5-flash" else text)
        emulator_env.script(model, ModelScript(reply=by_question({"feathers": reply}, otherwise="Off topic.")))
    emulator_env.script("claude-sonnet-4-5", ModelScript(reply=content_judge("weigh the same")))
    r = run("anthropic:claude-sonnet-4-5", mode="debate", rounds=1)
    revised = [(c.round, c.text) for c in r.responses if c.model == "gemini:gemini-2.5-flash"]
    assert revised == [(0, ANSWERS["gemini-2.5-flash"]), (1, "I was wrong: they weigh the same, one kilogram each.")]
    # the revision request's last user turn shows the other answers, not the question: still answered on topic
    assert all(c.text != "Off topic." for c in r.responses)
    assert r.verdict is not None and not r.verdict.fallback


def test_by_question_reads_gemini_contents_and_anthropic_messages() -> None:
    member = by_question({"cranberry": "Final answer: 2"}, otherwise="No idea.")
    gemini = {"contents": [{"role": "user", "parts": [{"text": "How many r's in cranberry?"}]}]}
    anthropic = {"system": "Be brief.", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "How many r's in cranberry?"}]}]}
    assert member(gemini) == member(anthropic) == "Final answer: 2"
    assert member({"messages": []}) == "No idea."
