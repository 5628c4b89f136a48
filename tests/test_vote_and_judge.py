"""The model-free parts of judging: final-answer extraction, vote, agreement, verdict parsing."""

from __future__ import annotations

import asyncio
import random

import pytest

from fusion_magic.calls.call import CallContext, prepare
from fusion_magic.calls.settings import Settings
from fusion_magic.core.record import Response
from fusion_magic.core.runner import new_client
from fusion_magic.judge import best_of, merge
from fusion_magic.judge.answers import answer_key
from fusion_magic.judge.judging import anonymise, decide
from fusion_magic.judge.verdict import Judgement
from fusion_magic.judge.verdicts import parse_json_verdict, reply_score
from fusion_magic.judge.vote import agree, vote
from fusion_magic.testing import Emulator, ModelScript


def ok(text: str, label: str, model: str | None = None) -> Response:
    return Response(model=model or f"m:{label}", text=text, status="ok", label=label)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", "42"),
        ("The answer is 42.", "42"),
        ("7 times 6 is 42", "42"),
        ("Final answer: **1,024**", "1024"),
        ("(B)", "B"),
        ("Yes, it is.", "yes"),
        ("Paris.", "paris"),
        ("A long explanation " * 10, None),
        ("Blah blah.\n#### 3.5", "3.5"),
    ],
)
def test_answer_key(text: str, value: str | None) -> None:
    assert answer_key(text) == value


def test_vote_majority_picks_first_answer_stating_the_winner() -> None:
    rs = [ok("The answer is 41.", "a"), ok("It is 42.", "b"), ok("Answer: 42", "c")]
    v = vote(rs)
    assert v.choice == "m:b" and v.answer == "It is 42." and "2 of 3" in v.reasoning


def test_vote_picks_nothing_among_free_text_answers() -> None:
    """Free text has no final value to count: the vote says so instead of picking the answer most like the
    others (which here would be one of two answers that agree with each other by wording alone)."""
    rs = [
        ok("The sky is blue because of Rayleigh scattering of sunlight by air molecules.", "a"),
        ok("Rayleigh scattering of sunlight by the air molecules makes the sky blue.", "b"),
        ok("Because the ocean reflects onto it, which is a common myth about colour.", "c"),
    ]
    v = vote(rs)
    assert v.undecided and v.choice is None and v.answer == ""
    assert v.reasoning.startswith("No majority: no two answers state the same final value")


def test_vote_ignores_failed_and_handles_none() -> None:
    failed = Response(model="m:x", text="partial 99", status="server", label="x")
    assert vote([failed, ok("5", "a")]).answer == "5"
    assert vote([failed]).answer == ""


def test_agree() -> None:
    assert agree([ok("It is 4.", "a"), ok("The answer is 4", "b")])
    assert not agree([ok("It is 4.", "a"), ok("It is 5.", "b")])


def test_anonymise_shuffles_per_call_and_keeps_attribution() -> None:
    rs = [ok(f"answer {i}", str(i)) for i in range(6)]
    orders = {tuple(c.response.label for c in anonymise(rs, random.Random(seed))) for seed in range(20)}
    assert len(orders) > 1
    cands = anonymise(rs, random.Random(1))
    assert [c.label for c in cands] == list("ABCDEF")
    assert sorted(c.response.label for c in cands) == sorted(r.label for r in rs)


def test_parse_json_verdict_is_tolerant() -> None:
    assert parse_json_verdict('{"winner": "A", "reasoning": "x"}') == {"winner": "A", "reasoning": "x"}
    fenced = 'Sure!\n```json\n{"winner": "B", "reasoning": "y"}\n```'
    assert parse_json_verdict(fenced) == {"winner": "B", "reasoning": "y"}
    assert parse_json_verdict("no json here") is None


def test_best_of_reads_labels_and_prose() -> None:
    cands = {"A": ok("first", "a"), "B": ok("second", "b")}
    v = best_of.read_verdict('{"reasoning": "B is right", "winner": "Answer B"}', cands, judge="j", mode="best-of")
    assert v.answer == "second" and v.choice == "m:b" and v.choice_label == "Answer B"
    v = best_of.read_verdict("I think the winner is B because...", cands, judge="j", mode="best-of")
    assert v.answer == "second"
    with pytest.raises(ValueError):
        best_of.read_verdict('{"winner": "Z"}', cands, judge="j", mode="best-of")


def test_merge_reads_answer_or_prose() -> None:
    v = merge.read_verdict('{"reasoning": "r", "answer": "fused"}', {}, judge="j", mode="merge")
    assert v.answer == "fused" and v.reasoning == "r"
    assert merge.read_verdict("just prose", {}, judge="j", mode="merge").answer == "just prose"
    with pytest.raises(ValueError):
        merge.read_verdict('{"reasoning": "r"}', {}, judge="j", mode="merge")


def test_merge_rejects_an_echoed_format() -> None:
    with pytest.raises(ValueError):
        merge.read_verdict('{"reasoning": "...", "answer": "..."}', {}, judge="j", mode="merge")


def test_an_undecided_vote_keeps_its_reason_and_the_tiebreak_note_says_it(emulator_env: Emulator) -> None:
    """The vote's reason is data (``Verdict.no_majority``); a tiebreak judge's note repeats it as it is."""
    texts = ["Final answer: 41", "Final answer: 42", "Final answer: 43"]
    v = vote([ok(t, chr(97 + i)) for i, t in enumerate(texts)])
    assert v.undecided and v.no_majority == "No majority: no two answers state the same final value " \
                                           "('41': 1, '42': 1, '43': 1)"
    assert v.reasoning.startswith(v.no_majority + ". The vote picks no answer")
    assert vote([ok("42", "a"), ok("42", "b")]).no_majority is None

    emulator_env.script("t/judge", ModelScript(reply='{"reasoning": "B is right.", "winner": "B"}'))
    settings = Settings(max_retries=0, timeout=20)
    tiebreak = prepare("openrouter:t/judge", settings)

    async def go() -> Judgement:
        async with new_client() as client:
            ctx = CallContext(client=client, settings=settings)
            answers = [ok(t, chr(65 + i)) for i, t in enumerate(texts)]
            return await decide(None, "best-of", "What is 6 x 7?", answers, members=answers, first_round=None,
                                ctx=ctx, rng=random.Random(0), timeout=20, tiebreak=tiebreak)

    judgement = asyncio.run(go())
    assert judgement.verdict.notes[0] == f"{v.no_majority}: openrouter:t/judge judged instead."


@pytest.mark.parametrize(("text", "out_of", "value", "in_json"), [
    ('{"score": 7, "reasons": []}', None, 7, True),
    ('Sure: ```json\n{"score": true}\n``` Score: 3', None, True, True),  # the JSON's own, as it is
    ('{"score": "high"} score: 4', None, "high", True),                  # prose does not overrule it
    ('{"reasons": ["a"]} Score: 7/10', 10, 7, False),                     # no score in the JSON: the prose's
    ("It fits. Score: 1", None, 1, False),
    ("Score: 7 or 8", None, None, False),                                 # hedged: none
    ("no score here", None, None, False),
])
def test_reply_score_reads_the_json_then_the_prose(text: str, out_of: int | None, value: object,
                                                   in_json: bool) -> None:
    found = reply_score(text, out_of=out_of)
    assert (found.value, found.in_json) == (value, in_json)
    if in_json:
        assert type(found.value) is type(value)  # as the JSON has it: true stays a bool, for each caller to judge
