"""The answer reader and the default scorer, case by case (``fusion_magic.judge.answers``), and the vote that
counts what it reads. Each case is (answer, accepted references, expected): True right, False wrong, None
unscorable. None of the wrong answers may score right; ``tests/test_properties_answers.py`` generalises.
"""

from __future__ import annotations

import pytest

from fusion_magic.core.record import Response
from fusion_magic.judge.answers import answer_key, final_span, labelled_number, score
from fusion_magic.judge.vote import vote

CASES: list[tuple[str, str, bool | None]] = [
    # The six, and what the last-number reader got wrong.
    ("Final answer: 2y", "2x", False),
    ("3/4", "4", False),
    ("not 5", "5", False),
    ("x^2+1", "1", False),
    ("Final answer: 0.5", "1/2", True),
    ("2 x 10^3", "2000", True),
    ("3 hours and 6 minutes.", "6", None),
    ("3 hours and 6 minutes.", "186", None),
    ("5.6 grams (1.5 g).", "1.5", False),
    # Numbers in every exact form.
    ("3.0", "3", True),
    ("1,000", "1000", True),
    ("Final answer: 1,000 metres", "1000", True),
    ("Final answer: 0.50", "0.5", True),
    ("Final answer: 2.0", "2", True),
    ("2e3", "2000", True),
    ("2×10³", "2000", True),
    ("1e-08", "0.00000001", True),
    ("$1,000", "1000", True),
    ("1.5 million", "1500000", True),
    ("50%", "0.5", True),
    ("50%", "50", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("seven", "7", True),
    ("twenty-one", "21", True),
    ("3rd", "3", True),
    ("about 5", "5", True),
    ("Final answer: 41", "42", False),
    ("Final answer: 20", "2", False),
    ("Final answer: 9007199254740993", "9007199254740992", False),
    ("4.2", "42", False),
    ("fourteen", "4", False),
    ("1/4", "4", False),
    ("81/9.", "9", False),
    ("2/4", "0.5", False),
    # Signs.
    ("-5", "5", False),
    ("−5", "-5", True),
    ("+5", "5", True),
    ("The temperature is -40 degrees", "-40", True),
    # Units after a number.
    ("12 km", "12", True),
    ("12 kilometres", "12 km", True),
    ("12 miles", "12 km", False),
    ("180 minutes", "180", True),
    ("3 hours", "180 minutes", False),
    # Negated, hedged, ranges, questions.
    ("5 or 6", "5", False),
    ("either 5 or 6", "6", False),
    ("It is not 5", "5", False),
    ("Final answer: not 5", "5", False),
    ("probably 5", "5", False),
    ("maybe Paris", "Paris", False),
    ("5-6", "5", False),
    ("between 5 and 6", "5", False),
    ("Paris?", "Paris", False),
    ("Paris, or maybe Lyon", "Paris", False),
    ("I don't know", "5", False),
    ("5, not 6", "5", True),
    ("5 because 4 or 6 would be odd", "5", True),
    # Text: SQuAD normalisation (case, punctuation, articles, accents).
    ("Final answer: **Paris**.", "Paris", True),
    ("  PARIS  ", "paris", True),
    ("The Pacific Ocean", "Pacific Ocean", True),
    ("São Paulo", "Sao Paulo", True),
    ("Shakespeare", "William Shakespeare|Shakespeare", True),
    ("Lyon", "Paris", False),
    ("Mars", "Jupiter", False),
    ("Paris, France", "Paris", True),
    ("The capital of France is a lovely city on the Seine with many museums, called Paris.", "Paris", None),
    # Expressions compare by value, variables included.
    ("2x", "2y", False),
    ("y = 2x", "2x", True),
    ("1 + x^2", "x^2+1", True),
    ("2*x", "2x", True),
    ("x^2", "x^3", False),
    ("Answer: 2", "2x", False),
    # Lettered choices with explanations, and by the option's text.
    ("Final answer: B) Paris, because it is the capital", "B", True),
    ("The answer is B", "B", True),
    ("(C)", "B", False),
    ("B or C", "B", False),
    ("A and C", "A", False),
    ("Option c.", "C", True),
    ("Not A", "A", False),
    ("Paris", "B", None),
    # Yes or no.
    ("Yes, it is.", "yes", True),
    ("No", "yes", False),
    ("True", "yes", True),
    ("Yes or no, it depends", "yes", False),
    # Dates.
    ("July 4, 1776", "1776-07-04", True),
    ("4 July 1776", "July 4, 1776", True),
    ("July 5, 1776", "1776-07-04", False),
    ("1776", "July 4, 1776", False),
    # Lists, in order.
    ("2, 3, 5", "2, 3, 5", True),
    ("2, 3 and 5", "2, 3, 5", True),
    ("2, 3, 7", "2, 3, 5", False),
    ("2, 3", "2, 3, 5", False),
    # Answers that quote the question.
    ("What is 6 times 7? 6 times 7 is 42.", "42", True),
    ("7 times 6 is 42", "42", True),
    ("6 x 7 = 42", "42", True),
    ("The capital of France is Paris", "Paris", True),
    ("How many legs does a spider have? 6 legs.", "8", False),
    # Where the final answer is.
    ("Final answer: 42\n\nI hope that helps", "42", True),
    ("Some working: 40 + 2.\nFinal answer:\n42", "42", True),
    ("The answer is 42, not 41.", "42", True),
    ("Final answer: 42 is wrong, it's 41", "42", False),
    ("", "42", None),
]


@pytest.mark.parametrize(("answer", "reference", "expected"), CASES)
def test_a_closed_form_answer_is_right_only_when_it_is_right(answer: str, reference: str,
                                                             expected: bool | None) -> None:
    s = score(answer, reference.split("|"))
    assert s.correct is expected, s
    if expected is not True:
        assert s.why, "a wrong or unscorable answer says why"


def test_there_are_enough_cases_and_none_of_the_wrong_ones_scores_right() -> None:
    assert len(CASES) >= 40
    wrong = [(a, r) for a, r, e in CASES if e is not True]
    assert len(wrong) >= 40
    assert not [(a, r) for a, r in wrong if score(a, r.split("|")).correct]


def test_a_choice_named_by_its_text_is_read_from_the_question() -> None:
    question = "Which is the capital of France?\nA) Lyon\nB) Paris\nC) Nice"
    assert score("Paris", ["B"], question=question).correct is True
    assert score("Lyon", ["B"], question=question).correct is False
    assert score("Marseille", ["B"], question=question).correct is None


def test_the_final_span_is_the_last_marked_one_or_a_short_reply() -> None:
    assert final_span("Answer: 3\nWait, no.\nFinal answer: 4") == "4"
    assert final_span("It is \\boxed{\\frac{1}{2}} then") == "\\frac{1}{2}"
    assert final_span("Paris.") == "Paris."
    assert final_span("word " * 20) is None


def test_a_number_after_a_label_is_read_like_an_answer() -> None:
    assert labelled_number("Score: 7/10", "score", out_of=10).value == 7  # type: ignore[union-attr]
    assert labelled_number('{"reasons": []} score = 1', "score").value == 1  # type: ignore[union-attr]
    assert labelled_number("score: 7 or 8", "score") is None
    assert labelled_number("score: not 1", "score") is None
    assert labelled_number("no grade here", "score") is None


def _ok(text: str, label: str) -> Response:
    return Response(model=f"m:{label}", text=text, status="ok", label=label)


def test_the_vote_counts_the_value_the_scorer_reads() -> None:
    """The issue's case: over "The answer is 2x.", "2y" and "It is 2y", two say 2y (the last-number reader said
    "3 of 3 say '2'" and returned the minority's answer)."""
    v = vote([_ok("The answer is 2x.", "a"), _ok("2y", "b"), _ok("It is 2y", "c")])
    assert v.answer == "2y" and v.choice == "m:b" and not v.undecided
    assert "2 of 3 say '2y'" in v.reasoning
    assert [answer_key(t) for t in ("The answer is 2x.", "2y", "It is 2y")] == ["2x", "2y", "2y"]


def test_the_vote_takes_a_plurality_and_says_it_is_not_a_majority() -> None:
    v = vote([_ok("42", "a"), _ok("Final answer: 42.0", "b"), _ok("41", "c"), _ok("40", "d"), _ok("39", "e")])
    assert v.choice == "m:a" and "2 of 5 say '42'" in v.reasoning and "plurality, not a majority" in v.reasoning


@pytest.mark.parametrize("texts", [
    ["The sky looks blue because of Rayleigh scattering of sunlight by the molecules of the air around us.",
     "Sunlight is scattered by air; short wavelengths scatter the most, so the sky we see is mostly blue.",
     "Blue light scatters more than red light in the atmosphere, which is why the daytime sky looks blue."],
    ["41", "42", "43"],
    ["42", "42", "41", "41"],
    ["not 5", "5 or 6", "maybe 7"],
])
def test_with_no_majority_the_vote_says_so_and_picks_nothing(texts: list[str]) -> None:
    v = vote([_ok(t, chr(97 + i)) for i, t in enumerate(texts)])
    assert v.undecided and v.answer == "" and v.choice is None
    assert v.reasoning.startswith("No majority")


def test_one_answer_is_the_vote() -> None:
    v = vote([_ok("An essay about the sea and its many moods, written at length by one model alone.", "a")])
    assert v.answer.startswith("An essay") and not v.undecided


@pytest.mark.parametrize(("answer", "reference", "expected"), [
    ("Working: 6 x 7.\nFinal answer: 42\n\nI hope this answer helps.", "42", True),
    ("Working: 6 x 7.\nFinal answer: 41\n\nI hope this answer helps.", "42", False),
    ("The answer is 42.", "42", True),
    ("Working it out.\nAnswer: 42", "42", True),
    ("Working it out.\nanswer = 42", "42", True),
    ("Working it out, the answer: 42", "42", True),
])
def test_a_bare_answer_word_in_prose_is_no_final_answer_marker(answer: str, reference: str,
                                                               expected: bool | None) -> None:
    """A closing sentence that uses the word "answer" ("I hope this answer helps.") is not the final answer;
    a bare "answer" marks one only when "is", ":" or "=" follows."""
    assert score(answer, [reference]).correct is expected


def test_the_vote_does_not_count_a_closing_sentence_as_the_value() -> None:
    tail = "\n\nI hope this answer helps."
    texts = [f"Some working.\nFinal answer: {n}{tail}" for n in (41, 42, 43)]
    assert [answer_key(t) for t in texts] == ["41", "42", "43"]
    v = vote([_ok(t, chr(97 + i)) for i, t in enumerate(texts)])
    assert v.undecided and v.choice is None


def test_normalising_keeps_numbers_whole() -> None:
    from fusion_magic.judge.answers import normalise
    assert normalise("The answer: -5, not 3.5.") == "answer -5 not 3.5"
    assert normalise("3-5 well-known") == "3 - 5 well known"  # no sign: a hyphen between words, an operator
    assert normalise("2^3") == "2 ^ 3" != normalise("2*3")  # between numbers (dropped, the two read alike)
    assert normalise("-5") != normalise("5")


@pytest.mark.parametrize("answer", ["2xy", "2πr", "Final answer: 2πr", "2ab", "2pr"])
def test_letters_written_onto_a_number_are_a_term_not_that_number(answer: str) -> None:
    """"2xy" scored right for "2" (the letters read as a unit, "2 xy"): the "2y for 2x" class of flattering
    score. Only a known unit may be written onto its number."""
    assert score(answer, ["2"]).correct is not True
    key = answer_key(answer)
    assert key is not None and key != "2" and answer_key(key) == key


@pytest.mark.parametrize(("answer", "reference"), [("2cm", "2"), ("5kg", "5"), ("3ms", "3"), ("2GB", "2"),
                                                   ("2 apples", "2"), ("42nd", "42")])
def test_a_known_unit_written_onto_its_number_still_reads_as_the_number(answer: str, reference: str) -> None:
    assert score(answer, [reference]).correct is True


def test_a_product_of_letters_of_any_script_is_no_expression() -> None:
    """"A·Ð" read as the expression "að", which read again was nothing: a vote's key must read as itself."""
    key = answer_key("A·Ð")
    assert key is None or answer_key(key) == key
