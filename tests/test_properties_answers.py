"""Property tests (hypothesis) for the answer reader behind the evaluation's scorers and the vote
(``fusion_magic.judge.answers``): it reads any text, its normal forms are fixed points, equivalent forms of a
number match, and **a wrong answer is never scored right**, however it is dressed.

``tests/test_answers.py`` has the hand-written cases.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from typing import Any

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from fusion_magic.core.record import Response
from fusion_magic.judge.answers import answer_key, clean, final_span, normalise, score
from fusion_magic.judge.vote import vote

_ANSWER_PIECES = ["42", "42.0", "-3", "1,000", "0.5", "7", "3/4", "2x", "x^2", "+", "Final answer:", "The answer is",
                  "####", "=>", "**", "answer =", "=", "is", "not", "or", "maybe", "yes", "No", "true", "B", "(c)",
                  "d)", "Paris", "the", "an", "km", "%", "São", "\n", " ", ".", ",", "!", "?", "١٢", "\\boxed{", "}",
                  "$", "²", "−", "×", "10^3", "e5", "seven", "because"]
answer_text = st.one_of(st.lists(st.sampled_from(_ANSWER_PIECES), max_size=12).map(" ".join), st.text(max_size=60))

# Ways a model dresses a value: {v} is the value.
_DRESS = ["{v}", "{v}.", "**{v}**", "Final answer: {v}", "The answer is {v}.", "Some working.\nFinal answer: {v}",
          "Answer: {v}", "#### {v}", "It is {v}", "{v}, because it follows.", "\\boxed{{{v}}}", "`{v}`"]


@settings(max_examples=400)
@given(answer_text)
@example(text="\\boxed{")
@example(text="9^9^9^9 = x")
def test_reading_never_raises(text: str) -> None:
    """The reader takes any text: a span or None, a key or None, a three-valued score."""
    span = final_span(text)
    assert span is None or isinstance(span, str)
    key = answer_key(text)
    assert key is None or (isinstance(key, str) and key)
    assert score(text, [text, "42"]).correct in (True, False, None)
    assert isinstance(clean(text), str)


_MARKERS = re.compile(r"final answer|answer|####|=>|\bis\b|=", re.IGNORECASE)


@settings(max_examples=400)
@given(answer_text)
@example(text="0.00000001")
@example(text="Answer: **B**.")
@example(text="The sky is blue")
@example(text="42 e5")
def test_normal_forms_are_fixed_points(text: str) -> None:
    """"the form two equal answers share": normalising a normal form changes nothing, and a vote's key read
    again is the same key (otherwise an answer already in that form counts as another value). Out of scope: a
    key that still holds marker words ("answer is x"), which reads as marked again."""
    assert normalise(normalise(text)) == normalise(text)
    key = answer_key(text)
    if key is not None:
        assume(not _MARKERS.search(key))
        assert answer_key(key) == key


def _fractions() -> st.SearchStrategy[Fraction]:
    return st.builds(Fraction, st.integers(-10**12, 10**12), st.sampled_from([1, 1, 1, 2, 4, 5, 8, 10, 100, 1000]))


def _decimal(f: Fraction) -> str:
    whole, rest = divmod(abs(f.numerator) * 10**6 // f.denominator, 10**6)
    text = f"{whole}.{rest:06d}".rstrip("0").rstrip(".")
    return ("-" if f < 0 else "") + text


def _forms(f: Fraction) -> list[str]:
    """Exact ways of writing ``f`` (its denominator divides 1000, so the decimal is exact)."""
    forms = [_decimal(f), f"{_decimal(f)}0" if "." in _decimal(f) else f"{_decimal(f)}.0",
             f"{f.numerator}/{f.denominator}" if f.denominator != 1 else str(f.numerator)]
    if f.denominator == 1:
        forms += [f"{f.numerator:,}", f"{f.numerator} km", f"{f.numerator}e0"]
        if f.numerator and f.numerator % 1000 == 0:
            forms.append(f"{f.numerator // 1000} x 10^3")
    return forms


@settings(max_examples=300)
@given(_fractions(), st.data())
@example(f=Fraction(1, 2), data=None)
def test_equivalent_forms_of_a_number_match(f: Fraction, data: Any) -> None:
    """"math-equivalence checks for numbers (thousands separators, fractions, decimals, scientific notation,
    signs, units after a number)": any two exact forms of one number match, however the answer is dressed."""
    forms = _forms(f)
    if data is None:
        pairs = [(a, b) for a in forms for b in forms]
        dress = "Final answer: {v}"
    else:
        pairs = [(data.draw(st.sampled_from(forms)), data.draw(st.sampled_from(forms)))]
        dress = data.draw(st.sampled_from(_DRESS))
    for answer, reference in pairs:
        assert score(dress.format(v=answer), [reference]).correct is True, (dress, answer, reference)


# Values of several kinds, each with the key two equal values share, so "different" is decidable here.
_WORDS = ["Paris", "Lyon", "Tokyo", "New York", "Sao Paulo", "Jupiter", "Mars", "blue", "red", "Au", "Ag"]
_LETTERS = list("ABCDE")


@st.composite
def _value(draw: Any) -> tuple[str, tuple[str, object]]:
    kind = draw(st.sampled_from(["number", "word", "letter", "expression", "bool"]))
    if kind == "number":
        f = draw(_fractions())
        return draw(st.sampled_from(_forms(f))), ("number", f)
    if kind == "word":
        w = draw(st.sampled_from(_WORDS))
        return w, ("word", normalise(w))
    if kind == "letter":
        c = draw(st.sampled_from(_LETTERS))
        return c, ("letter", c)
    if kind == "bool":
        b = draw(st.sampled_from(["yes", "no"]))
        return b, ("bool", b)
    a, b = draw(st.integers(1, 9)), draw(st.integers(0, 9))
    var = draw(st.sampled_from("xyn"))
    power = draw(st.sampled_from(["", "^2"]))
    return f"{a}{var}{power}+{b}" if b else f"{a}{var}{power}", ("expression", (a, var, power, b))


@settings(max_examples=600)
@given(_value(), _value(), st.sampled_from(_DRESS))
@example(answer=("2y", ("expression", (2, "y", "", 0))), reference=("2x", ("expression", (2, "x", "", 0))),
         dress="Final answer: {v}")
@example(answer=("3/4", ("number", Fraction(3, 4))), reference=("4", ("number", Fraction(4))), dress="{v}")
@example(answer=("-5", ("number", Fraction(-5))), reference=("5", ("number", Fraction(5))), dress="{v}")
def test_a_different_answer_is_never_scored_right(answer: tuple[str, tuple[str, object]],
                                                  reference: tuple[str, tuple[str, object]], dress: str) -> None:
    """"A wrong reference never matches a generated answer that differs from it": whatever the answer's kind
    and dress, a value that is not the reference's is wrong or unscorable, never right."""
    (said, said_id), (wanted, wanted_id) = answer, reference
    assume(said_id != wanted_id)
    assert score(dress.format(v=said), [wanted]).correct is not True, (dress.format(v=said), wanted)


@settings(max_examples=300)
@given(_value(), _value(), st.sampled_from(["not {v}", "It is not {v}", "{v} or {w}", "either {v} or {w}",
                                            "maybe {v}", "probably {v}", "{v}?", "Final answer: {v} or {w}",
                                            "Final answer: not {v}", "between {v} and {w}", "{v}, or maybe {w}"]))
def test_a_negated_or_hedged_answer_is_never_right(value: tuple[str, tuple[str, object]],
                                                   other: tuple[str, tuple[str, object]], hedge: str) -> None:
    """"a negated or hedged answer ("not 5", "5 or 6") is never scored right", nor counted by a vote."""
    v, w = value[0], other[0]
    assume(value[1] != other[1] and value[1][0] != "bool")
    text = hedge.format(v=v, w=w)
    assert score(text, [v]).correct is not True, text
    assert answer_key(text) is None, text


def _responses(texts: list[str]) -> list[Response]:
    return [Response(model=f"openai:m{i}", text=t, status="ok", label=f"m{i}", call_id=i + 1)
            for i, t in enumerate(texts)]


@settings(max_examples=300)
@given(st.lists(st.one_of(answer_text, _value().map(lambda v: v[0])), min_size=1, max_size=6),
       st.randoms(use_true_random=False))
def test_the_vote_counts_what_the_scorer_reads_and_order_does_not_change_it(texts: list[str], rnd: Any) -> None:
    """``vote``: the winning value is the one most answers state (``answer_key``), the fused answer states it and
    is the first answer that does, whatever the order; with no such value it is undecided and picks nothing."""
    responses = _responses(texts)
    ok = [r for r in responses if r.text.strip()]
    verdict = vote(responses)
    if not ok:
        assert verdict.choice is None
        return
    if len(ok) == 1:
        assert verdict.answer == ok[0].text
        return
    counted = Counter(k for r in ok if (k := answer_key(r.text)) is not None)
    top = counted.most_common(2)
    decided = bool(top) and top[0][1] >= 2 and (len(top) == 1 or top[1][1] < top[0][1])
    assert verdict.undecided is (not decided)
    shuffled = list(responses)
    rnd.shuffle(shuffled)
    again = vote(shuffled)
    if decided:
        value = top[0][0]
        assert answer_key(verdict.answer) == value and answer_key(again.answer) == value
        assert f"say {value!r}" in verdict.reasoning
        first = next(r for r in shuffled if r.text.strip() and answer_key(r.text) == value)
        assert again.choice == first.model
    else:
        assert verdict.answer == "" and verdict.choice is None and again.undecided
