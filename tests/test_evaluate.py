"""Evaluation runs end to end through the loopback emulator: exact accuracy, cost and calls per strategy,
bad data refused before any call, an interrupt that keeps finished rows, a resume from the cache."""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fusion_magic.calls.cache import CallCache
from fusion_magic.calls.call import CallContext
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.core.runner import new_client
from fusion_magic.evaluation import (
    BUNDLED_QUESTIONS,
    CLOSED_INSTRUCTION,
    EvalPlan,
    EvalResult,
    EvalRow,
    load_questions,
    new_result,
    plan_evaluation,
    run_evaluation,
    wilson_interval,
)
from fusion_magic.evaluation.engine import instruction_for
from fusion_magic.judge.answers import answer_key, score
from fusion_magic.testing import Emulator, Fault, ModelScript

FAST = Settings(max_retries=0, timeout=20, rounds=1)
A, B, JUDGE = "openrouter:t/a", "openrouter:t/b", "openrouter:t/judge"
# Costs that are exact in binary, so sums compare with ==: an off-by-one call is off by a whole unit.
UNIT = 2.0**-10
COST = {"t/a": UNIT, "t/b": 2 * UNIT, "t/judge": UNIT / 2}

QUESTIONS = pd.DataFrame({
    "id": ["q1", "q2", "q3", "q4"],
    "question": ["What is 2 + 2?", "What is 3 + 3?", "What is 10 - 3?", "What is 5 x 5?"],
    "reference": ["4", "6", "7", "25"],
})
KEY = {"2 + 2": "4", "3 + 3": "6", "10 - 3": "7", "5 x 5": "25"}
# Model a alone: right on 3 of 4. Model b: right on 2 of 4.
ANSWERS_A = {"2 + 2": "4", "3 + 3": "6", "10 - 3": "7", "5 x 5": "24"}
ANSWERS_B = {"2 + 2": "4", "3 + 3": "5", "10 - 3": "8", "5 x 5": "25"}
# Model a sampled with seeds 1, 2, 3 (self:3): the majority is right on 1 of 4 (q3 only).
SAMPLES_A = {"2 + 2": ["3", "3", "4"], "3 + 3": ["6", "5", "5"], "10 - 3": ["7", "7", "7"], "5 x 5": ["24", "24", "25"]}


def first_user_text(body: Mapping[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def which(text: str) -> str:
    """The question (its arithmetic) a prompt asks."""
    return next(k for k in KEY if k in text)


def member(answers: Mapping[str, str], samples: Mapping[str, list[str]] | None = None) -> Callable[
        [Mapping[str, Any]], str]:
    def reply(body: Mapping[str, Any]) -> str:
        q = which(first_user_text(body))
        # Seeds 1..k are self-consistency seats; repeat r adds r * 1000 (0 mod 1000: a seat with no seed).
        seed = body.get("seed") or 0
        seat = seed % 1000
        value = answers[q] if seat == 0 or samples is None else samples[q][seat - 1]
        # Worded apart in a later repeat (the same final value), as a real model's sample would be.
        return f"Final answer: {value}" + (" (again)" if seed >= 1000 else "")

    return reply


def judge(body: Mapping[str, Any]) -> str:
    """best-of: picks the right answer when there is one; merge: writes the key, except on q4; debate:
    writes model b's answer; a rubric: 1 when the answer says "blue"."""
    text = "\n".join(m["content"] for m in body["messages"])
    fields = body["response_format"]["json_schema"]["schema"]["properties"]
    if "score" in fields:
        graded = text.split("## Answer to grade\n", 1)[1]
        return json.dumps({"reasoning": "checked", "score": int("blue" in graded.lower())})
    q = which(text.split("## Answers", 1)[0])
    if "winner" in fields:
        for label, answer in re.findall(r"### Answer ([A-Z]) \(\d+ tokens\)\n(.*?)(?=\n\n###|\n\n## Task)", text, re.S):
            if answer_key(answer) == KEY[q]:
                return json.dumps({"reasoning": "right", "winner": label})
        return json.dumps({"reasoning": "none is right", "winner": "A"})
    if "first round" in text:
        return json.dumps({"reasoning": "debated", "answer": f"Final answer: {ANSWERS_B[q]}"})
    return json.dumps({"reasoning": "merged", "answer": f"Final answer: {'26' if q == '5 x 5' else KEY[q]}"})


def script(emu: Emulator, **extra: ModelScript) -> None:
    emu.script("t/a", ModelScript(reply=member(ANSWERS_A, SAMPLES_A), cost_usd=COST["t/a"]))
    emu.script("t/b", ModelScript(reply=member(ANSWERS_B), cost_usd=COST["t/b"]))
    emu.script("t/judge", ModelScript(reply=judge, cost_usd=COST["t/judge"]))
    for name, s in extra.items():
        emu.script(name, s)


def run(plan: EvalPlan, *, cache: CallCache | None = None, result: EvalResult | None = None,
        on_row: Any = None) -> EvalResult:
    async def go() -> EvalResult:
        async with new_client() as client:
            ctx = CallContext(client=client, settings=plan.settings, cache=cache)
            return await run_evaluation(plan, ctx, on_row=on_row, result=result)

    return asyncio.run(go())


def by_strategy(result: EvalResult) -> dict[str, dict[Any, Any]]:
    return {str(row["strategy"]): row for row in result.summary.to_dict("records")}


def test_each_strategy_gets_its_exact_accuracy_cost_and_calls(emulator_env: Emulator) -> None:
    script(emulator_env)
    plan = plan_evaluation(QUESTIONS, FAST, pool=[A, B], judge=JUDGE,
                           strategies=["single", "self:3", "vote", "best-of", "merge", "debate"])
    progress: list[tuple[int, int]] = []
    result = run(plan, on_row=lambda done, total, row: progress.append((done, total)))

    expected = {
        # strategy: (correct of 4, calls, cost in UNITs)
        f"single:{A}": (3, 4, 4 * 1),
        f"single:{B}": (2, 4, 4 * 2),
        "self:3": (1, 12, 12 * 1),  # 3 samples of a per question
        # a and b agree on q1; on q2-q4 the vote has no majority and defers to the evaluation's judge (best-of)
        "vote": (4, 11, 4 * 1 + 4 * 2 + 3 * 0.5),
        "best-of": (4, 12, 4 * 1 + 4 * 2 + 4 * 0.5),  # the judge picks the right answer where there is one
        "merge": (3, 12, 4 * 1 + 4 * 2 + 4 * 0.5),  # the judge's own answer, wrong on q4
        # q1 agrees at once (2 + judge); q2-q4 disagree and revise once (2 + 2 + judge): 3 + 3 * 5 = 18 calls
        "debate": (2, 18, 7 * 1 + 7 * 2 + 4 * 0.5),
    }
    summary = by_strategy(result)
    assert list(summary) == list(expected)
    for name, (correct, calls, units) in expected.items():
        row = summary[name]
        assert (row["n"], row["correct"], row["calls"], row["failed"]) == (4, correct, calls, 0), name
        assert row["accuracy"] == correct / 4, name
        assert row["total_cost_usd"] == units * UNIT, name
        assert row["mean_cost_usd"] == units * UNIT / 4, name
        lo, hi = wilson_interval(correct, 4)
        assert (row["ci_low"], row["ci_high"]) == (lo, hi)
    # Every call of the summary reached the emulator, and nothing else did.
    assert len(emulator_env.requests) == sum(calls for _, calls, _ in expected.values()) == 73
    # The rows: one per question and strategy, scored against the reference.
    rows = result.rows
    assert len(rows) == 4 * 7 and not result.interrupted
    single_a = rows[rows["strategy"] == f"single:{A}"]
    assert list(single_a["extracted"]) == ["4", "6", "7", "24"]
    assert list(single_a["correct"]) == [True, True, True, False]
    assert list(rows[rows["strategy"] == "self:3"]["extracted"]) == ["3", "5", "7", "24"]
    assert progress == [(n, 28) for n in range(1, 29)]
    # Models over HTTP are asked for a "Final answer:" line, which the scoring finds.
    asked = first_user_text(emulator_env.requests[0].body or {})
    assert asked.startswith(QUESTIONS["question"][0]) and asked.endswith(CLOSED_INSTRUCTION)


def test_the_local_model_gets_the_bare_question_by_default(emulator_env: Emulator) -> None:
    local = "local:gemma3-270m"
    plan = plan_evaluation(QUESTIONS, FAST, pool=[local, A], strategies=[f"single:{local}", "self:3", "vote"])
    # single and self:3 ask only the local model (its few-shot prompt already asks for a brief answer);
    # vote also asks a model over HTTP, so it gets the instruction.
    assert [instruction_for(s, plan.instruction) for s in plan.strategies] == [None, None, CLOSED_INSTRUCTION]
    assert instruction_for(plan.strategies[0], "Be brief.") == "Be brief."


def test_bad_data_is_one_config_error_and_no_call(emulator_env: Emulator, tmp_path: Path) -> None:
    script(emulator_env)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    blank_csv = tmp_path / "blank.csv"
    blank_csv.write_text("", encoding="utf-8")
    neither = tmp_path / "neither.csv"
    neither.write_text("question,reference,rubric\nWhat is 2 + 2?,4,\nWhat is 3 + 3?,,\n", encoding="utf-8")
    not_json = tmp_path / "bad.jsonl"
    not_json.write_text('{"question": "2+2?", "reference": "4"}\n{"question": \n', encoding="utf-8")
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (pd.DataFrame({"prompt": ["2+2?"], "reference": ["4"]}), {}, "no 'question' column"),
        (pd.DataFrame({"question": ["2+2?"]}), {}, "'reference' (or 'answer') column or a 'rubric'"),
        (empty, {}, "has no questions"),
        (blank_csv, {}, "has no questions"),
        (neither, {}, "row 2 has neither a reference nor a rubric"),
        (not_json, {}, "line 2 is not JSON"),
        (tmp_path / "missing.csv", {}, "no questions file"),
        (pd.DataFrame({"id": ["x", "x"], "question": ["a?", "b?"], "answer": ["1", "2"]}), {}, "used by more"),
        (QUESTIONS, {"strategies": ["self:1"]}, "at least 2 samples"),
        (QUESTIONS, {"strategies": ["majority"]}, "unknown strategy 'majority'"),
        (QUESTIONS, {"repeats": 0}, "repeats must be"),
        (QUESTIONS, {"pool": ["nosuch:model"]}, "nosuch"),
        (pd.DataFrame({"question": ["Why?"], "rubric": ["mentions blue"]}), {"judge": "vote"}, "need a judge model"),
    ]
    for data, keywords, words in cases:
        with pytest.raises(ConfigError) as err:
            plan_evaluation(data, FAST, **{"pool": [A, B], "judge": JUDGE, **keywords})
        message = str(err.value)
        assert words in message and "\n" not in message, message
    assert emulator_env.requests == []


def test_an_interrupt_keeps_finished_rows_and_the_cache_resumes_only_the_rest(
    emulator_env: Emulator, tmp_path: Path
) -> None:
    # Model a's third request (q3) never answers, so the run is interrupted while it waits.
    script(emulator_env, **{"t/a": ModelScript(reply=member(ANSWERS_A), cost_usd=UNIT,
                                                faults=[Fault("hang", skip=2, times=1)])})
    cache = CallCache(tmp_path / "cache", "on")
    plan = plan_evaluation(QUESTIONS, FAST.with_(cache="on"), pool=[A], strategies=[f"single:{A}"],
                           concurrency=1)
    partial = new_result(plan)

    async def interrupted() -> None:
        async with new_client() as client:
            ctx = CallContext(client=client, settings=plan.settings, cache=cache)
            task = asyncio.create_task(run_evaluation(plan, ctx, result=partial))
            while len(emulator_env.requests) < 3:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(interrupted())
    assert partial.interrupted and [e.question.id for e in partial.entries] == ["q1", "q2"]
    assert list(partial.rows["correct"]) == [True, True] and "interrupted" in partial.to_text()

    # Resume: the same plan with the cache on asks only what had not finished.
    emulator_env.script("t/a", ModelScript(reply=member(ANSWERS_A), cost_usd=UNIT))
    before = len(emulator_env.requests)
    resumed = run(plan, cache=cache)
    new = emulator_env.requests[before:]
    assert sorted(which(first_user_text(q.body)) for q in new) == ["10 - 3", "5 x 5"]
    assert not resumed.interrupted and len(resumed.entries) == 4
    assert list(resumed.rows["cached"]) == [True, True, False, False]
    assert list(resumed.rows["paid_usd"]) == [0.0, 0.0, UNIT, UNIT]
    # The strategy's cost counts replayed calls at their recorded cost, exactly (2**-10 is binary-exact).
    assert by_strategy(resumed)[f"single:{A}"]["total_cost_usd"] == 4 * UNIT
    assert by_strategy(resumed)[f"single:{A}"]["correct"] == 3


def test_a_second_run_from_the_cache_makes_no_new_calls(emulator_env: Emulator, tmp_path: Path) -> None:
    script(emulator_env)
    cache = CallCache(tmp_path / "cache", "on")
    plan = plan_evaluation(QUESTIONS, FAST.with_(cache="on"), pool=[A, B], judge=JUDGE,
                           strategies=["self:3", "best-of"], repeats=2)
    first = run(plan, cache=cache)
    calls = len(emulator_env.requests)
    assert calls == 2 * 4 * (3 + 3)  # repeats x questions x (3 samples + a, b and the judge)
    # Each repeat is its own sample: repeat 1 shifts every seed, so it is not a replay of repeat 0.
    seeds = sorted({q.body.get("seed") for q in emulator_env.requests if q.model == "t/a"}, key=str)
    assert seeds == [1, 1000, 1001, 1002, 1003, 2, 3, None]
    assert all(e.error is None for e in first.entries)
    again = run(plan, cache=cache)
    assert len(emulator_env.requests) == calls  # everything replayed
    assert all(again.rows["cached"])
    # Replayed calls count at their recorded cost, exactly: the summary is the first run's to the last bit.
    pd.testing.assert_frame_equal(first.summary.drop(columns="mean_latency_s"),
                                  again.summary.drop(columns="mean_latency_s"), check_exact=True)
    assert list(again.rows["paid_usd"]) == [0.0] * len(again.rows)
    assert again.summary["mean_latency_s"].isna().all()  # a replay's latency is not the strategy's


def test_passing_the_same_result_again_runs_only_the_missing_rows(emulator_env: Emulator) -> None:
    script(emulator_env)
    plan = plan_evaluation(QUESTIONS, FAST, pool=[A], strategies=[f"single:{A}"])
    result = run(plan)
    assert len(emulator_env.requests) == 4
    result.entries = [e for e in result.entries if e.question.id != "q2"]
    run(plan, result=result)
    assert len(emulator_env.requests) == 5 and len(result.entries) == 4


def test_open_questions_are_scored_by_a_rubric_judge_call(emulator_env: Emulator) -> None:
    emulator_env.script("t/a", ModelScript(replies=["The sky is blue because of Rayleigh scattering.",
                                                    "Because it reflects the sea."], cost_usd=UNIT))
    emulator_env.script("t/judge", ModelScript(reply=judge, cost_usd=UNIT / 2))
    data = [{"id": "sky", "question": "Why is the sky blue?", "rubric": "Names Rayleigh scattering"},
            {"id": "sky2", "question": "Why is the sky blue, briefly?", "rubric": "Names Rayleigh scattering"}]
    plan = plan_evaluation(data, FAST, pool=[A], strategies=[f"single:{A}"], rubric_judge=JUDGE, concurrency=1)
    result = run(plan)
    rows = result.rows
    assert list(rows["correct"]) == [True, False] and list(rows["kind"]) == ["open", "open"]
    # The scoring call is recorded as a call, priced apart from the strategy's.
    assert list(rows["scoring_cost_usd"]) == [UNIT / 2, UNIT / 2] and list(rows["cost_usd"]) == [UNIT, UNIT]
    assert [r.role for r in result.calls] == ["member", "scorer", "member", "scorer"]
    assert result.scoring_cost_usd == UNIT and "2 judge calls" in result.to_text()
    scored = next(q for q in emulator_env.requests if q.model == "t/judge").body or {}
    assert scored["temperature"] == 0 and scored["response_format"]["type"] == "json_schema"
    # The closed-form instruction is only for closed questions.
    asked = first_user_text(next(q for q in emulator_env.requests if q.model == "t/a").body or {})
    assert asked == "Why is the sky blue?"


def test_a_failed_call_is_a_wrong_answer_with_its_reason(emulator_env: Emulator) -> None:
    script(emulator_env, **{"t/b": ModelScript(faults=[Fault("status", status=500)])})
    plan = plan_evaluation(QUESTIONS, FAST, pool=[A, B], strategies=["single"])
    result = run(plan)
    b = by_strategy(result)[f"single:{B}"]
    assert (b["n"], b["correct"], b["failed"]) == (4, 0, 4)
    assert pd.isna(b["total_cost_usd"])  # a failed call has no known price: the total is unknown, not 0
    errors = result.rows[result.rows["strategy"] == f"single:{B}"]["error"]
    assert all(e.startswith("no answer (server") for e in errors)


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4901625, 0.9433178), abs=1e-7)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775328), abs=1e-7)
    assert wilson_interval(10, 10) == pytest.approx((0.7224672, 1.0), abs=1e-7)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize(("answer", "reference", "correct"), [
    ("3.0", "3", True),
    ("1,000", "1000", True),
    ("Final answer: 1,000 metres", "1000", True),
    ("12 km", "12", True),
    ("Final answer: **Paris**.", "Paris", True),
    ("  PARIS  ", "paris", True),
    ("The Pacific Ocean", "Pacific Ocean", True),
    ("Pacific", "Pacific Ocean|Pacific", True),
    ("São Paulo", "Sao Paulo", True),
    ("Ulan Bator", "Ulaanbaatar|Ulan Bator", True),
    ("Final answer: 0.50", "0.5", True),
    ("The answer is 42.", "42", True),
    ("Final answer: 41", "42", False),
    ("Lyon", "Paris", False),
    ("The capital of France is a lovely city on the Seine with many museums, called Paris.", "Paris", None),
])
def test_normalised_matching(answer: str, reference: str, correct: bool | None) -> None:
    references = [r for r in reference.split("|")]
    assert score(answer, references).correct is correct


def test_the_bundled_questions_load_and_their_references_match_themselves() -> None:
    questions = load_questions(BUNDLED_QUESTIONS)
    assert len(questions) >= 36 and all(q.kind == "closed" for q in questions)
    assert {q.topic for q in questions} == {"arithmetic", "capitals", "units", "facts"}
    for q in questions:
        for ref in q.references:
            assert score(f"Final answer: {ref}.", q.references).correct, q.id
    assert all(len(line.splitlines()) == 1 for line in BUNDLED_QUESTIONS.read_text(encoding="utf-8").splitlines())


def test_questions_from_csv_jsonl_and_a_frame(tmp_path: Path) -> None:
    csv = tmp_path / "q.csv"
    csv.write_text("Question,Answer,topic\nWhat is sodium's symbol?,NA,chem\nHow much?,3.0,\n", encoding="utf-8")
    loaded = load_questions(str(csv))
    assert [(q.id, q.reference, q.topic, q.kind) for q in loaded] == [("1", "NA", "chem", "closed"),
                                                                      ("2", "3.0", None, "closed")]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"id": 7, "question": "Why?", "rubric": "says why"}\n\n', encoding="utf-8")
    (open_q,) = load_questions(jsonl)
    assert (open_q.id, open_q.kind, open_q.rubric, open_q.prompt()) == ("7", "open", "says why", "Why?")
    framed = load_questions(pd.DataFrame({"question": ["2+2?"], "reference": [4.0]}))
    assert framed[0].reference == "4" and framed[0].prompt().startswith("2+2?\n\n")


def test_the_result_as_text_html_and_plot(emulator_env: Emulator) -> None:
    script(emulator_env)
    plan = plan_evaluation(QUESTIONS, FAST, pool=[A, B], judge=JUDGE, strategies=["single", "best-of"])
    result = run(plan)
    text = result.to_text()
    assert text.splitlines()[0].startswith("Evaluation: 4 questions x 3 strategies x 1 repeat: 12 of 12 rows")
    assert "best-of" in text and "0.750" in text and "1.000" in text
    html = result._repr_html_()
    assert "<script" not in html and "best-of" in html
    assert "| best-of |" in result.to_markdown()
    assert set(result.ledger["role"]) == {"member a", "member b", "judge"}
    # The plot: one point per strategy at (mean cost, accuracy), labelled, and a PNG for the notebook.
    fig = result.plot()
    [ax] = fig.axes
    points = [tuple(float(v) for v in line.get_xydata()[0]) for line in ax.lines if line.get_marker() == "o"]
    summary = result.summary.set_index("strategy")
    expected = [(float(summary.loc[n, "mean_cost_usd"]), float(summary.loc[n, "accuracy"])) for n in summary.index]
    assert sorted(points) == sorted(expected)  # the emulator's costs are binary-exact
    assert sorted(t.get_text() for t in ax.texts) == sorted(summary.index)
    png = fig._repr_png_()  # what IPython shows for a cell ending in r.plot()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000


def test_plot_without_matplotlib_is_one_line(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from fusion_magic.present import figure

    script(emulator_env)
    result = run(plan_evaluation(QUESTIONS, FAST, pool=[A], strategies=["single"]))
    figure._shown_figure_class.cache_clear()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if it were not installed
    try:
        with pytest.raises(ConfigError, match=r"fusion_magic\[plot\]"):
            result.plot()
    finally:
        figure._shown_figure_class.cache_clear()


def test_rows_of_an_unfinished_result_are_typed_and_empty() -> None:
    empty = EvalResult(questions=load_questions(QUESTIONS), strategies=["vote"], repeats=1, judge="vote")
    assert list(empty.rows.columns)[:4] == ["question_id", "topic", "kind", "strategy"] and empty.rows.empty
    summary = empty.summary.iloc[0]
    assert summary["n"] == 0 and summary["calls"] == 0
    assert isinstance(EvalRow, type)


def test_a_vote_with_no_majority_abstains_and_is_scored_wrong_with_its_reason(emulator_env: Emulator) -> None:
    """With the vote judge, ``vote`` has no one to defer to: where a and b disagree it abstains (the attempt's
    ``abstained``), scored wrong with the vote's reason in the note."""
    script(emulator_env)
    plan = plan_evaluation(QUESTIONS, FAST, pool=[A, B], judge="vote", strategies=["vote"])
    rows = run(plan).rows.set_index("question_id")
    assert rows.loc["q1", "correct"] == True  # noqa: E712  (a and b agree on 4)
    for q in ("q2", "q3", "q4"):
        assert rows.loc[q, "correct"] == False and rows.loc[q, "answer"] == ""  # noqa: E712
        assert rows.loc[q, "why"] == "no answer: the vote found no majority"
        assert rows.loc[q, "note"].startswith("No majority: no two answers state the same final value")
        assert pd.isna(rows.loc[q, "error"])
