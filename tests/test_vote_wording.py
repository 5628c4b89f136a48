"""What the vote and the emulator's scripted judge say when there are few answers: no "the other 0", no
"1 others", no "do" for one answer. (An older vote said "the most similar to the other N" even for one answer.)"""

from __future__ import annotations

import json
import re

import pytest

from fusion_magic.core.record import Response
from fusion_magic.judge.vote import vote
from fusion_magic.testing import SCRIPTED
from fusion_magic.testing.judges import content_judge

MISCOUNTED = re.compile(r"\bother 0\b|\b[01] others\b|\bthe other 1\b|\b1 answers\b|\b0 answers\b")


def ok(text: str, label: str) -> Response:
    return Response(model=f"m:{label}", text=text, status="ok", label=label)


def failed(label: str) -> Response:
    return Response(model=f"m:{label}", text="", status="server", error="server: HTTP 503", label=label)


def test_no_answer_and_one_answer_are_said_plainly() -> None:
    for answers in ([], [failed("a")], [failed("a"), failed("b")]):
        v = vote(answers)
        assert v.reasoning == "No answer arrived, so there is nothing to vote on." and v.choice is None
    v = vote([ok("4", "a"), failed("b")])
    assert v.reasoning == "One answer arrived, so the vote takes it." and (v.choice, v.answer) == ("m:a", "4")


@pytest.mark.parametrize("texts", [
    [], ["4"], ["4", "4"], ["4", "5"], ["4", "4", "5"], ["A long essay.", "Another essay."], ["4", "essay"],
])
def test_the_votes_counts_never_read_wrong(texts: list[str]) -> None:
    v = vote([ok(t, chr(ord("a") + i)) for i, t in enumerate(texts)])
    assert not MISCOUNTED.search(v.reasoning), v.reasoning
    if texts == ["4", "4"]:
        assert "2 of 2 say '4'" in v.reasoning


def judge_body(*answers: str) -> dict[str, object]:
    shown = "\n\n".join(f"### Answer {chr(ord('A') + i)} (3 tokens)\n{a}" for i, a in enumerate(answers))
    return {"messages": [{"role": "user", "content": f"## Answers\n{shown}\n\n## Task\nPick one."}]}


def test_the_scripted_judge_counts_the_other_answers_right() -> None:
    judge = content_judge("Paris")

    def reasoning(*answers: str) -> str:
        return str(json.loads(judge(judge_body(*answers)))["reasoning"])

    assert reasoning("Paris.") == f"{SCRIPTED} Answer A states 'Paris' most directly."
    assert reasoning("Paris.", "Lyon.") == f"{SCRIPTED} Answer A states 'Paris'; Answer B does not."
    assert reasoning("Lyon.", "Paris.", "Nice.") == f"{SCRIPTED} Answer B states 'Paris'; Answer A and Answer C do not."
