"""Scorers a user can choose, end to end through the loopback emulator: ``scorer=`` on ``evaluate()``,
``--scorer`` on ``%fuse eval``, a ``scorer`` column per row, three-valued scores (right, wrong, unscorable) with
the reason on each row, and accuracy over the scored rows with the unscorable count and rate beside it."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.evaluation import Scorer, score_closed
from fusion_magic.testing import Emulator, ModelScript

FAST = Settings(max_retries=0, timeout=20, rounds=1)
A, JUDGE = "openrouter:t/a", "openrouter:t/judge"

# What model a says to each question (by a word of the question), and the reference.
SAID = {
    "sum": ("Final answer: 2y", "2x"),            # wrong: the old reader took "2" from both
    "half": ("Final answer: 0.5", "1/2"),         # right: one number in two forms
    "time": ("3 hours and 6 minutes.", "186"),    # unscorable: two numbers, neither the answer
    "legs": ("not 8", "8"),                        # wrong: negated
    "capital": ("Paris, the city of light.", "Paris"),
}
QUESTIONS = pd.DataFrame({
    "id": list(SAID),
    "question": [f"Question about {k}?" for k in SAID],
    "reference": [ref for _, ref in SAID.values()],
})


def member(body: Mapping[str, Any]) -> str:
    text = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return next(said for k, (said, _) in SAID.items() if k in text)


def grader(body: Mapping[str, Any]) -> str:
    """A judge that grades 1 exactly when the graded answer names Paris or 0.5."""
    text = "\n".join(m["content"] for m in body["messages"])
    graded = text.split("## Answer to grade\n", 1)[1].split("\n\n## Task", 1)[0]
    return json.dumps({"reasoning": "compared", "score": int("Paris" in graded or "0.5" in graded)})


@pytest.fixture
def scripted(emulator_env: Emulator) -> Emulator:
    emulator_env.script("t/a", ModelScript(reply=member))
    emulator_env.script("t/judge", ModelScript(reply=grader))
    return emulator_env


def run(**options: Any) -> Any:
    return fusion_magic.evaluate(QUESTIONS, pool=[A], strategies=[f"single:{A}"], settings=FAST, **options)


def test_the_default_scorer_is_three_valued_and_says_why(scripted: Emulator) -> None:
    r = run()
    rows = r.rows.set_index("question_id")
    assert list(rows["correct"].astype(object).where(rows["correct"].notna(), None)) == [False, True, None, False,
                                                                                          True]
    assert rows.loc["sum", "extracted"] == "2y" and "expression" in rows.loc["sum", "why"]
    assert "several numbers" in rows.loc["time", "why"] and "negated" in rows.loc["legs", "why"]
    assert set(rows["scorer"]) == {"match"}
    # Accuracy over the four scored rows (2 right), the unscorable one beside it, never in it.
    s = r.summary.iloc[0]
    assert (s["n"], s["correct"], s["unscorable"]) == (4, 2, 1)
    assert s["accuracy"] == 0.5 and math.isclose(s["unscorable_rate"], 0.2)
    text = r.to_text()
    assert "1 (20%)" in text and "could not be scored" in text


@pytest.mark.parametrize(("scorer", "expected"), [
    ("exact", [False, False, False, False, False]),
    ("includes", [False, False, False, True, True]),  # lenient: "not 8" includes 8 (why match is the default)
    ("numeric", [None, True, None, False, None]),  # "not 8" is wrong: a negated answer is never right
    ("re:Final answer: (\\S+)", [False, True, None, None, None]),
])
def test_a_chosen_scorer(scripted: Emulator, scorer: str, expected: list[bool | None]) -> None:
    rows = run(scorer=scorer).rows
    got = [None if pd.isna(v) else bool(v) for v in rows["correct"]]
    assert got == expected, list(zip(rows["answer"], rows["why"], strict=True))
    assert set(rows["scorer"]) == {scorer}


def test_a_function_scorer_and_its_errors(scripted: Emulator) -> None:
    def starts_alike(answer: str, reference: str) -> bool | None:
        if answer.startswith("not"):
            return None
        if answer.startswith("3"):
            raise ValueError("cannot read hours")
        return answer[:1].lower() == reference[:1].lower()

    rows = run(scorer=starts_alike).rows.set_index("question_id")
    assert rows.loc["capital", "correct"] == True  # noqa: E712  (a pandas boolean)
    assert pd.isna(rows.loc["legs", "correct"]) and "could not score" in rows.loc["legs", "why"]
    assert pd.isna(rows.loc["time", "correct"]) and "raised ValueError: cannot read hours" in rows.loc["time", "why"]
    assert set(rows["scorer"]) == {"starts_alike"}


def test_judge_scorer_is_a_recorded_model_grade(scripted: Emulator) -> None:
    r = run(scorer=f"judge:{JUDGE}")
    rows = r.rows.set_index("question_id")
    assert [bool(v) for v in rows["correct"]] == [False, True, False, False, True]
    assert all(n == 1 for n in (len(e.scoring_calls) for e in r.entries))
    graded = [q for q in scripted.requests if q.model == "t/judge"]
    assert len(graded) == 5
    sent = ["\n".join(m["content"] for m in (q.body or {})["messages"]) for q in graded]
    assert any("## Reference answer\n2x" in text and "Final answer: 2y" in text for text in sent)


def test_a_scorer_column_chooses_per_row(scripted: Emulator) -> None:
    data = QUESTIONS.assign(scorer=["match", "numeric", "match", "includes", f"judge:{JUDGE}"])
    r = fusion_magic.evaluate(data, pool=[A], strategies=[f"single:{A}"], settings=FAST)
    rows = r.rows.set_index("question_id")
    assert list(rows["scorer"]) == ["match", "numeric", "match", "includes", f"judge:{JUDGE}"]
    assert rows.loc["legs", "correct"] == True  # noqa: E712  (includes, as this row asked)
    assert len([q for q in scripted.requests if q.model == "t/judge"]) == 1


def test_each_scorer_is_parsed_once(scripted: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's scorer and every row's own are read once, when planned, not again per row."""
    parsed: list[str] = []
    real = Scorer.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Scorer], spec: object) -> Scorer:
        if not isinstance(spec, Scorer):
            parsed.append(str(spec))
        return real(cls, spec)  # type: ignore[no-any-return]

    monkeypatch.setattr(Scorer, "parse", classmethod(counting))
    data = QUESTIONS.assign(scorer=[None, "numeric", None, "includes", "re:(\\d+)"])
    r = fusion_magic.evaluate(data, pool=[A], strategies=[f"single:{A}"], settings=FAST, scorer="exact",
                              repeats=2)
    assert len(r.rows) == 10
    assert dict(zip(r.rows["question_id"], r.rows["scorer"], strict=True)) == dict(
        zip(SAID, ["exact", "numeric", "exact", "includes", "re:(\\d+)"], strict=True))
    assert sorted(parsed) == sorted(["exact", "numeric", "includes", "re:(\\d+)"])


@pytest.mark.parametrize(("scorer", "message"), [
    ("fuzzy", "unknown scorer 'fuzzy'"),
    ("re:(", "the pattern does not compile"),
    (42, "a scorer is match, exact"),
    ("judge:nowhere:x", "nowhere"),
])
def test_a_bad_scorer_is_one_line_before_any_call(scripted: Emulator, scorer: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(scorer=scorer)
    assert scripted.requests == []


def test_a_bad_scorer_in_a_row_names_the_row(scripted: Emulator) -> None:
    data = QUESTIONS.assign(scorer=["match", "fuzzy", None, None, None])
    with pytest.raises(ConfigError, match="question 'half': unknown scorer 'fuzzy'"):
        fusion_magic.evaluate(data, pool=[A], strategies=[f"single:{A}"], settings=FAST)
    assert scripted.requests == []


def test_the_magic_takes_scorer(shell: InteractiveShell, scripted: Emulator) -> None:
    shell.user_ns["qs"] = QUESTIONS
    shell.run_line_magic("fuse", f"eval qs -p {A} -s single:{A} --scorer numeric -o ev")
    assert set(shell.user_ns["ev"].rows["scorer"]) == {"numeric"}
    with pytest.raises(UsageError, match=r"^unknown scorer 'fuzzy'"):
        shell.run_line_magic("fuse", f"eval qs -p {A} -s single:{A} --scorer fuzzy")


def test_choice_scorer_reads_letters_and_refuses_other_references() -> None:
    choice = Scorer.parse("choice")
    question = "Capital of France?\nA) Lyon\nB) Paris"
    assert score_closed(choice, "Final answer: B) Paris", ["B"], question=question).correct is True
    assert score_closed(choice, "Paris", ["B"], question=question).correct is True
    assert score_closed(choice, "A", ["B"], question=question).correct is False
    assert score_closed(choice, "Paris", ["Paris"]).correct is None


@pytest.mark.parametrize(("answer", "reference", "expected"), [
    ("Final answer: 5, or maybe 6", "5", False),   # hedged
    ("Final answer: 5 km", "5 m", False),          # another unit
    ("Final answer: 50%", "0.5", True),            # a percent read as its fraction
    ("Final answer: 1,000", "1000", True),
    ("Final answer: 41", "42", False),
    ("Final answer: Paris", "42", False),
    ("3 hours and 6 minutes.", "186", None),       # several numbers
    ("Final answer: 42", "Paris", None),           # the reference is not a number
])
def test_the_numeric_scorer_reads_the_answer_as_match_does(answer: str, reference: str,
                                                           expected: bool | None) -> None:
    """``numeric`` only adds that the reference must be a number: hedges, negations, units and percents are
    read by the same reader as ``match``."""
    s = score_closed(Scorer.parse("numeric"), answer, [reference])
    assert s.correct is expected, s
    if expected is None and reference == "Paris":
        assert s.why == "the reference is not a number"


@pytest.mark.parametrize(("answer", "reference", "expected"), [
    ("-5", "5", False),            # the sign is part of the number
    ("5", "-5", False),
    ("3.5", "35", False),          # so is the decimal point
    ("1.5", "1 5", False),
    ("-5", "-5", True),
    ("The answer: 3.5!", "answer 3.5", True),
    ("  PARIS.", "paris", True),
])
def test_the_exact_scorer_keeps_numbers_whole(answer: str, reference: str, expected: bool) -> None:
    assert score_closed(Scorer.parse("exact"), answer, [reference]).correct is expected


def test_includes_finds_a_number_only_with_its_sign() -> None:
    includes = Scorer.parse("includes")
    assert score_closed(includes, "It is -5 degrees.", ["5"]).correct is False
    assert score_closed(includes, "It is -5 degrees.", ["-5"]).correct is True


@pytest.mark.parametrize(("reply", "expected"), [
    ("It names Rayleigh scattering. Score: 1", True),
    ("It does not. score = 0.", False),
    ("Hard to say. Score: 1 or 0", None),
    ("Score: not 1", None),
    ("I cannot grade this.", None),
])
def test_a_judge_without_json_is_read_like_an_answer(emulator_env: Emulator, reply: str,
                                                     expected: bool | None) -> None:
    """The rubric judge's fallback: a 0/1 in prose is read by the answers' reader, so a hedged or negated grade is
    no grade (unscorable), never a guess."""
    emulator_env.script("t/a", ModelScript(reply="Because of Rayleigh scattering."))
    emulator_env.script("t/judge", ModelScript(reply=reply))
    data = [{"id": "sky", "question": "Why is the sky blue?", "rubric": "Names Rayleigh scattering"}]
    r = fusion_magic.evaluate(data, pool=[A], strategies=[f"single:{A}"], rubric_judge=JUDGE, settings=FAST)
    got = r.rows["correct"].iloc[0]
    assert (None if pd.isna(got) else bool(got)) is expected
    if expected is None:
        assert r.rows["why"].iloc[0] == "the scorer gave no 0/1 score" and r.summary["unscorable"].iloc[0] == 1


@pytest.mark.parametrize("scorer", ["match", "exact"])
def test_an_operator_between_numbers_is_part_of_the_answer(scorer: str) -> None:
    """Normalising dropped the operator between two numbers, so "2*3" scored right against "2^3"."""
    parsed = Scorer.parse(scorer)
    assert score_closed(parsed, "Final answer: 2*3" if scorer == "match" else "2*3", ["2^3"]).correct is False
    assert score_closed(parsed, "Final answer: 3:4" if scorer == "match" else "3:4", ["3/4"]).correct is not True
    assert score_closed(parsed, "Final answer: 2^3" if scorer == "match" else "2 ^ 3", ["2^3"]).correct is True
