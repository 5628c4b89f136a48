"""The scripted judge and debater of fusion_magic.testing.judges, through real runs against the emulator: the judge
reads the anonymous answers of each family's request shape, picks by content whatever the order, answers with
exactly the fields the mode's schema asks for, and names answers by the letters of that request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.fusion.result import FusionResult
from fusion_magic.judge import best_of, merge
from fusion_magic.judge.analysis import Contradiction, UniquePoint
from fusion_magic.judge.judging import NO_ANALYSIS
from fusion_magic.testing import SCRIPTED, Emulator, Fault, ModelScript
from fusion_magic.testing.judges import (
    NOT_ADDRESSED,
    content_judge,
    debater,
    request_text,
    requested_fields,
    shown_answers,
)

FAST = Settings(max_retries=0, timeout=20)
POOL = ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]
ANSWERS = {
    "gpt-4.1-mini": "About 17%: 0.0099 / 0.0594 = 1/6, by Bayes' theorem.",
    "claude-haiku-4-5": "1 in 6, about 17%. Of 10,000 people, 99 of 594 positives are real; a second test: 80%.",
    "gemini-2.5-flash": "About 95%: 0.99 / (0.99 + 0.05).",
}
# One judge per chat family: OpenAI messages, Anthropic system + messages, Gemini contents.
JUDGES = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"]


def wire(model_id: str) -> str:
    return model_id.split(":", 1)[1]


def script_pool(emu: Emulator) -> None:
    for model, text in ANSWERS.items():
        emu.script(model, ModelScript(reply=text))


def judge_bodies(emu: Emulator, judge: str) -> list[Mapping[str, Any]]:
    return [q.body or {} for q in emu.requests if q.model == wire(judge)]


def run(emu: Emulator, judge: str, **options: Any) -> FusionResult:
    result: FusionResult = fusion_magic.fuse("A positive screen: how likely is the disease?", pool=POOL,
                                             judge=judge, settings=FAST, **options)
    return result


# --- picking by content, in every family's request shape -----------------------------------------------


@pytest.mark.parametrize("judge", JUDGES)
def test_it_picks_the_preferred_answer_in_every_order(emulator_env: Emulator, judge: str) -> None:
    script_pool(emulator_env)
    emulator_env.script(wire(judge), ModelScript(reply=content_judge("80%")))
    r = run(emulator_env, judge, orders=3)
    # three orders of three answers: each answer was shown first once, and the pick never moved
    firsts = [next(iter(shown_answers(body).values())) for body in judge_bodies(emulator_env, judge)]
    assert sorted(firsts) == sorted(ANSWERS.values())
    assert r.answer == ANSWERS["claude-haiku-4-5"] and r.verdict is not None and not r.verdict.fallback
    assert r.verdict.orders == ["anthropic:claude-haiku-4-5"] * 3 and r.position_consistency == 1.0
    assert not r.degraded


@pytest.mark.parametrize("judge", JUDGES)
@pytest.mark.parametrize(("mode", "module"), [("best-of", best_of), ("merge", merge), ("debate", merge)])
def test_it_answers_exactly_the_fields_the_schema_asks_for(emulator_env: Emulator, judge: str, mode: str,
                                                           module: Any) -> None:
    script_pool(emulator_env)
    emulator_env.script(wire(judge), ModelScript(reply=content_judge("80%", merged="One in six.")))
    r = run(emulator_env, judge, mode=mode, rounds=1)
    [body] = judge_bodies(emulator_env, judge)
    asked = tuple(module.schema(list(shown_answers(body)))["properties"])
    assert requested_fields(body) == asked
    assert r.verdict is not None and tuple(json.loads(r.verdict.raw)) == asked
    assert r.verdict.notes == [] and r.analysis is not None
    if mode == "best-of":
        assert r.answer == ANSWERS["claude-haiku-4-5"] and r.verdict.choice == "anthropic:claude-haiku-4-5"
    else:
        assert r.answer == "One in six." and r.verdict.best_label is not None
        assert r.verdict.labels[r.verdict.best_label].startswith("anthropic:claude-haiku-4-5")


@pytest.mark.parametrize("judge", JUDGES)
def test_it_reads_the_answers_of_each_request_shape(emulator_env: Emulator, judge: str) -> None:
    script_pool(emulator_env)
    emulator_env.script(wire(judge), ModelScript(reply=content_judge("80%")))
    run(emulator_env, judge)
    [body] = judge_bodies(emulator_env, judge)
    assert "## Question\nA positive screen" in request_text(body)
    assert sorted(shown_answers(body).values()) == sorted(ANSWERS.values())
    # a member's request shows no answers: it is no judge request
    member = next(q.body or {} for q in emulator_env.requests if q.model == "gemini-2.5-flash")
    assert request_text(member) == "" and shown_answers(member) == {}


def test_a_request_without_a_schema_gets_every_field() -> None:
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "## Question\nq?\n\n## Answers\n### Answer A (3 tokens)\nParis.\n\n"
                                 "### Answer B (3 tokens)\nLyon.\n\n## Task\nPick one."}]}]}
    assert shown_answers(body) == {"A": "Paris.", "B": "Lyon."}
    reply = json.loads(content_judge("paris")(body))  # case-insensitive
    assert set(reply) == {"reasoning", "analysis", "winner", "best", "answer"}
    assert reply["winner"] == reply["best"] == "A" and reply["answer"] == "Paris."


# --- the analysis, by letter -----------------------------------------------------------------------------


def test_the_analysis_names_the_models_through_the_letters(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=content_judge(
        "80%",
        reasoning="Answer {winner} adds the second test.",
        consensus=["All use a 5% false-positive rate."],
        contradictions={"Probability after one positive": {"17%": "About 17%.", "95%": "About 95%."},
                        "Method": {"Bayes": "Bayes' theorem."}},
        unique={"80%": "A second test gives 80%.", "17%": "said by two answers: no unique point"},
        blind_spots=["None asks who is tested."],
    )))
    r = run(emulator_env, "openai:gpt-4.1")
    a, v = r.analysis, r.verdict
    assert a is not None and v is not None and v.choice_label is not None
    assert v.reasoning == f"{v.choice_label} adds the second test."
    assert a.consensus == ["All use a 5% false-positive rate."] and a.blind_spots == ["None asks who is tested."]
    assert a.contradictions == [
        Contradiction("Probability after one positive", {
            "openai:gpt-4.1-mini": "About 17%.", "anthropic:claude-haiku-4-5": "About 17%.",
            "gemini:gemini-2.5-flash": "About 95%."}),
        Contradiction("Method", {
            "openai:gpt-4.1-mini": "Bayes' theorem.", "anthropic:claude-haiku-4-5": NOT_ADDRESSED,
            "gemini:gemini-2.5-flash": NOT_ADDRESSED}),
    ]
    assert a.unique == [UniquePoint("anthropic:claude-haiku-4-5", "A second test gives 80%.")]
    assert a.models == POOL and a.failed == []


def test_the_default_analysis_says_who_states_the_preferred_text(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=content_judge("80%")))
    r = run(emulator_env, "openai:gpt-4.1")
    a, v = r.analysis, r.verdict
    assert a is not None and v is not None and v.choice_label is not None
    assert a.contradictions == [Contradiction("Whether the answer states '80%'", {
        "openai:gpt-4.1-mini": "Does not state '80%'.", "anthropic:claude-haiku-4-5": "States '80%'.",
        "gemini:gemini-2.5-flash": "Does not state '80%'."})]
    assert a.unique == [UniquePoint("anthropic:claude-haiku-4-5", "The only answer that states '80%'.")]
    assert a.consensus == [] and a.blind_spots == []
    others = sorted(label for label in v.labels if label != v.choice_label)
    assert v.reasoning == f"{SCRIPTED} {v.choice_label} states '80%'; {others[0]} and {others[1]} do not."


def test_a_reasoning_callable_writes_about_the_answers_that_arrived(emulator_env: Emulator) -> None:
    def reasoning(winner: str, shown: Mapping[str, str]) -> str:
        wrong = [label for label, text in shown.items() if "95%" in text]
        return f"{winner} is best of {len(shown)}" + (f"; {wrong[0]} ignores the prevalence." if wrong else ".")

    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=content_judge("80%", reasoning=reasoning)))
    full = run(emulator_env, "openai:gpt-4.1")
    assert full.verdict is not None and full.verdict.choice_label is not None
    best = full.verdict.choice_label.removeprefix("Answer ")
    wrong = next(label for label, model in full.verdict.labels.items() if model.startswith("gemini:"))
    assert full.verdict.reasoning == f"{best} is best of 3; {wrong.removeprefix('Answer ')} ignores the prevalence."
    emulator_env.script("gemini-2.5-flash", ModelScript(faults=[Fault("status", status=503)]))
    shaky = run(emulator_env, "openai:gpt-4.1")
    assert shaky.degraded and shaky.verdict is not None and shaky.verdict.choice_label is not None
    assert shaky.verdict.reasoning == f"{shaky.verdict.choice_label.removeprefix('Answer ')} is best of 2."


def test_without_analysis_fusion_magic_notes_it(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=content_judge("80%", analysis=False)))
    r = run(emulator_env, "openai:gpt-4.1")
    assert r.answer == ANSWERS["claude-haiku-4-5"] and r.analysis is None
    assert r.verdict is not None and r.verdict.notes == [NO_ANALYSIS] and "analysis" not in json.loads(r.verdict.raw)


# --- ties, misses, debates --------------------------------------------------------------------------------


def test_a_tie_is_broken_by_content_not_position(emulator_env: Emulator) -> None:
    """Two answers say "17%": the one saying it most often wins, in whichever order they are shown."""
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1-mini", ModelScript(reply="17%, not 95%: 17% is 1/6."))
    emulator_env.script("gpt-4.1", ModelScript(reply=content_judge("17%")))
    r = run(emulator_env, "openai:gpt-4.1", orders=3)
    assert r.verdict is not None and r.verdict.orders == ["openai:gpt-4.1-mini"] * 3
    assert r.answer == "17%, not 95%: 17% is 1/6." and r.position_consistency == 1.0
    assert r.analysis is not None and r.analysis.unique == []  # two answers state it: nobody's unique point


def test_a_judge_that_finds_no_preferred_answer_fails_and_the_vote_stands_in(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gpt-4.1", ModelScript(reply=content_judge("42")))
    r = run(emulator_env, "openai:gpt-4.1")
    assert r.verdict is not None and r.verdict.fallback and r.degraded
    assert r.verdict.reasoning.startswith("Fell back to a vote because the judge's call failed (server")
    assert "no answer says '42'" in (r.judge_responses[0].error or "")


def test_an_empty_preference_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        content_judge("  ")


def test_a_debater_revises_and_the_judge_reads_its_final_round(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("gemini-2.5-flash", ModelScript(reply=debater(ANSWERS["gemini-2.5-flash"],
                                                                      "I revise: about 17%, 1 in 6.")))
    emulator_env.script("gemini-2.5-pro", ModelScript(reply=content_judge(
        "80%", merged="One in six.",
        contradictions={"Probability": {"17%": "About 17%.", "95%": "About 95%."}})))
    before = run(emulator_env, "gemini:gemini-2.5-pro")  # no debate: the first answer, however many requests came
    assert [m.text for m in before.members if m.model == "gemini:gemini-2.5-flash"] == [ANSWERS["gemini-2.5-flash"]]
    r = run(emulator_env, "gemini:gemini-2.5-pro", mode="debate", rounds=1)
    gemini = [c for c in r.responses if c.model == "gemini:gemini-2.5-flash"]
    assert [(c.round, c.text) for c in gemini] == [(0, ANSWERS["gemini-2.5-flash"]),
                                                   (1, "I revise: about 17%, 1 in 6.")]
    body = judge_bodies(emulator_env, "gemini:gemini-2.5-pro")[-1]
    assert "first round" in request_text(body) and "I revise: about 17%, 1 in 6." in shown_answers(body).values()
    assert r.answer == "One in six." and r.analysis is not None
    assert r.analysis.contradictions[0].stances["gemini:gemini-2.5-flash"] == "About 17%."
