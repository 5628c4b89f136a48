"""A pool of more than 26 members (#22 asks for 32): the anonymous labels run on past Z as a spreadsheet's
columns do (A..Z, AA, AB, ...), and a judge that names "Answer AD" is read back to the answer it was shown
under that label. Real runs against the emulator: %%fuse and fuse() with 32 members, a judge model reading
the request (``content_judge``), best-of, merge, the vote, debate and --orders."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from typing import Any

import jsonschema
import pytest
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.calls.call import CallContext, prepare
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ProtocolError
from fusion_magic.core.record import Response
from fusion_magic.fusion.report import markdown_report, text_report
from fusion_magic.fusion.result import FusionResult
from fusion_magic.judge import best_of, merge
from fusion_magic.judge.judging import VOTE_IGNORES_ORDERS, anonymise, judge_request, orderings, shuffle_rng
from fusion_magic.judge.labels import answer_label, answer_labels, label_index, named, read_label, unnamed
from fusion_magic.providers.base import TextDelta
from fusion_magic.providers.chat import local
from fusion_magic.testing import Emulator, ModelScript
from fusion_magic.testing.judges import content_judge, shown_answers

FAST = Settings(max_retries=0, timeout=30)
SIZE = 32
POOL = [f"openai:member-{n:02d}" for n in range(1, SIZE + 1)]
JUDGE = "openai:judge"
QUESTION = "What is the capital of France?"
BEST = "The capital of France is Paris."
SEED = 7
# The 30th label shown: past Z, and two letters that are not the same.
BEST_SHOWN_AS = "AD"


def wire(model_id: str) -> str:
    return model_id.split(":", 1)[1]


def best_seat(mode: str) -> int:
    """The pool seat whose answer the judge's first order shows 30th ("Answer AD") in a ``--seed SEED`` run: the
    run's shuffle is seeded from the question, mode, judge and pool (``shuffle_rng``), and shuffles the answers in
    pool order. The tests check the request itself showed it so, so a change in the seeding fails here, loudly."""
    rng = shuffle_rng(CallContext(client=None, settings=FAST), QUESTION, mode, JUDGE, *POOL, seed=SEED)
    seats = list(range(SIZE))
    rng.shuffle(seats)
    return seats[label_index(BEST_SHOWN_AS)]


def script_pool(emu: Emulator, best: int) -> dict[str, str]:
    """Every member answers; only seat ``best`` says Paris. Returns model id -> answer."""
    answers = {model: (BEST if i == best else f"Member {i + 1:02d} says the capital of France is Lyon-{i + 1}.")
               for i, model in enumerate(POOL)}
    for model, text in answers.items():
        emu.script(wire(model), ModelScript(reply=text))
    return answers


def judge_bodies(emu: Emulator) -> list[Mapping[str, Any]]:
    return [q.body or {} for q in emu.requests if q.model == wire(JUDGE)]


def schema_of(body: Mapping[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = body["response_format"]["json_schema"]["schema"]
    return schema


# --- the label helper ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "label"), [(0, "A"), (1, "B"), (25, "Z"), (26, "AA"), (27, "AB"), (29, "AD"),
                                              (31, "AF"), (51, "AZ"), (52, "BA"), (701, "ZZ"), (702, "AAA"),
                                              (18277, "ZZZ"), (18278, "AAAA")])
def test_labels_run_on_past_z_as_a_spreadsheet_s_columns(index: int, label: str) -> None:
    assert answer_label(index) == label
    assert label_index(label) == index


def test_every_label_reads_back_to_its_index_and_no_two_are_alike() -> None:
    labels = answer_labels(20_000)
    assert len(set(labels)) == len(labels)
    assert all(label_index(label) == i for i, label in enumerate(labels))
    assert labels[:3] == ["A", "B", "C"] and labels[26:29] == ["AA", "AB", "AC"]


@pytest.mark.parametrize("bad", ["", "a", "A1", "Answer A", " A", "É"])
def test_what_is_no_label_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="no answer label"):
        label_index(bad)


def test_a_negative_index_has_no_label() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        answer_label(-1)


def test_a_judge_s_spelling_of_a_two_letter_label_is_read() -> None:
    shown = answer_labels(SIZE)
    for said in ("AB", "ab", "Answer AB", "answer ab.", "(AB)", " Answer  AB ", "Answer (AB)."):
        assert read_label(said, shown) == "AB", said
    assert read_label("AG", shown) is None  # the 33rd: not shown
    assert read_label("A B", shown) is None and read_label(27, shown) is None
    assert named("AD") == "Answer AD" and unnamed(named("AD")) == "AD"


def test_best_of_reads_a_two_letter_winner_in_json_and_in_prose() -> None:
    candidates = {label: Response(model=f"m{label}", text=f"text {label}", status="ok")
                  for label in answer_labels(SIZE)}
    v = best_of.read_verdict('{"reasoning": "r", "winner": "Answer AD"}', candidates, judge="j", mode="best-of")
    assert v.choice == "mAD" and v.choice_label == "Answer AD"
    v = best_of.read_verdict("No JSON here. The winner is Answer AB.", candidates, judge="j", mode="best-of")
    assert v.choice == "mAB"
    m = merge.read_verdict('{"reasoning": "r", "best": "af", "answer": "x"}', candidates, judge="j", mode="merge")
    assert m.best_label == "Answer AF"
    with pytest.raises(ValueError, match="no winner"):
        best_of.read_verdict('{"winner": "AG"}', candidates, judge="j", mode="best-of")


@pytest.mark.parametrize("module", [best_of, merge])
def test_the_schema_enums_allow_exactly_the_labels_shown(module: Any) -> None:
    labels = answer_labels(SIZE)
    schema = module.schema(labels)
    pick = "winner" if module is best_of else "best"
    assert schema["properties"][pick]["enum"] == labels
    analysis = schema["properties"]["analysis"]["properties"]
    assert analysis["unique"]["items"]["properties"]["label"]["enum"] == labels
    assert analysis["partial_coverage"]["items"]["properties"]["labels"]["items"]["enum"] == labels
    assert analysis["contradictions"]["items"]["properties"]["stances"]["required"] == labels
    verdict = {"reasoning": "r", "analysis": {"consensus": [], "contradictions": [], "partial_coverage": [],
                                              "unique": [{"label": "AD", "point": "p"}], "blind_spots": []},
               pick: "AD", **({"answer": "x"} if module is merge else {})}
    jsonschema.validate(verdict, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**verdict, pick: "AG"}, schema)


def test_orderings_of_32_answers_relabel_past_z() -> None:
    responses = [Response(model=f"m{i}", text=f"answer {i}", status="ok") for i in range(SIZE)]
    candidates = anonymise(responses, random.Random(1))
    assert [c.label for c in candidates] == answer_labels(SIZE)
    orders = orderings(candidates, 8)
    assert len(orders) == 8
    for k, order in enumerate(orders):
        assert [c.label for c in order] == answer_labels(SIZE)
        assert order[0].response is candidates[k].response  # rotations: each order puts another answer first


# --- whole runs with 32 members -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["best-of", "merge"])
def test_a_judge_picks_the_30th_answer_of_32_in_two_orders(emulator_env: Emulator, mode: str) -> None:
    best = best_seat(mode)
    answers = script_pool(emulator_env, best)
    emulator_env.script(wire(JUDGE), ModelScript(reply=content_judge("Paris")))
    r: FusionResult = fusion_magic.fuse(QUESTION, pool=POOL, judge=JUDGE, mode=mode, orders=2, seed=SEED,
                                        settings=FAST)
    winner = POOL[best]

    first, second = judge_bodies(emulator_env)
    # What the judge was shown: 32 answers labelled A..AF, the best under "Answer AD", then (the second order,
    # a rotation by one) under "Answer AC"; the schema's enums are those 32 labels and no other.
    for body, where in ((first, "AD"), (second, "AC")):
        shown = shown_answers(body)
        assert list(shown) == answer_labels(SIZE) and shown[where] == BEST
        pick = "winner" if mode == "best-of" else "best"
        enum = schema_of(body)["properties"][pick]
        assert enum["enum"] == answer_labels(SIZE)
        jsonschema.validate(json.loads(content_judge("Paris")(body))[pick], enum)

    v = r.verdict
    assert v is not None and not v.fallback and not r.degraded
    assert v.orders == [winner, winner] and r.position_consistency == 1.0
    if mode == "best-of":
        assert r.answer == BEST and v.choice == winner and v.choice_label == "Answer AD"
    else:
        assert r.answer == BEST and v.best_label == "Answer AD"
    # The label table: all 32, in the order shown, each naming the member shown under it.
    assert list(v.labels) == [named(label) for label in answer_labels(SIZE)]
    # Each row reads "openai:member-09 (member-09)": the model, then the member's label in the pool.
    members = {named_as: model.split(" (")[0] for named_as, model in v.labels.items()}
    assert members["Answer AD"] == winner
    assert all(answers[members[named(label)]] == text for label, text in shown_answers(first).items())
    text = text_report(r)
    assert f"Answer AF = {v.labels['Answer AF']}" in text and "Answer AG" not in text
    assert "Traceback" not in text
    assert all(f"**{named(label)}**" in markdown_report(r) for label in answer_labels(SIZE))
    # The analysis, written by label, lands on the members: the best is the one that states Paris.
    assert r.analysis is not None and r.analysis.unique[0].model == winner
    assert len(r.analysis.contradictions[0].stances) == SIZE


def test_the_magic_with_32_members_runs_and_reports_without_a_traceback(
        shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    best = best_seat("best-of")
    script_pool(emulator_env, best)
    emulator_env.script(wire(JUDGE), ModelScript(reply=content_judge("Paris")))
    outcome = shell.run_cell(f"%%fuse -p {','.join(POOL)} -j {JUDGE} -m best-of --orders 2 --seed {SEED} -o r\n"
                             f"{QUESTION}")
    captured = capsys.readouterr()
    assert outcome.success, outcome.error_in_exec or outcome.error_before_exec
    assert "Traceback" not in captured.out + captured.err
    r = shell.user_ns["r"]
    assert isinstance(r, FusionResult) and r.answer == BEST and r.verdict is not None
    assert r.verdict.choice == POOL[best] and r.verdict.choice_label == "Answer AD"
    assert len(r.verdict.labels) == SIZE and r.position_consistency == 1.0
    html = r._repr_mimebundle_()["text/html"]
    assert all(f"<td>{named(label)}</td>" in html for label in answer_labels(SIZE))


def test_the_vote_over_32_members_ignores_orders(emulator_env: Emulator) -> None:
    # 17 say 4, 15 say 5: a majority the vote finds without labels.
    for i, model in enumerate(POOL):
        emulator_env.script(wire(model), ModelScript(reply=f"Final answer: {4 if i % 2 == 0 or i < 2 else 5}"))
    r = fusion_magic.fuse("What is 2 + 2?", pool=POOL, judge="vote", orders=2, settings=FAST)
    v = r.verdict
    assert v is not None and v.model == "vote" and r.answer == "Final answer: 4"
    assert v.votes == (17, SIZE) and VOTE_IGNORES_ORDERS in v.notes
    assert len(v.labels) == SIZE and not judge_bodies(emulator_env)


def test_a_debate_of_32_members_shows_each_31_others_labelled_past_z(emulator_env: Emulator) -> None:
    best = 29
    script_pool(emulator_env, best)
    emulator_env.script(wire(JUDGE), ModelScript(reply=content_judge("Paris")))
    r = fusion_magic.fuse(QUESTION, pool=POOL, judge=JUDGE, mode="debate", rounds=1, orders=2, settings=FAST)
    revisions = [q.body or {} for q in emulator_env.requests
                 if (q.model or "").startswith("member-") and len((q.body or {}).get("messages", [])) > 2]
    assert len(revisions) == SIZE
    last_turn = revisions[0]["messages"][-1]["content"]
    others = last_turn if isinstance(last_turn, str) else " ".join(p.get("text", "") for p in last_turn)
    assert "### Answer AE\n" in others and "### Answer AF\n" not in others  # 31 others: A..AE
    assert r.answer == BEST and r.verdict is not None and not r.verdict.fallback
    assert r.verdict.labels[r.verdict.best_label or ""].startswith(POOL[best])
    judged = shown_answers(judge_bodies(emulator_env)[0])
    assert list(judged) == answer_labels(SIZE)


# --- the local judge ----------------------------------------------------------------------------------------


def test_the_local_judge_s_grammar_holds_32_labels() -> None:
    """The bundled model judges 32 answers under the schema it is sent: llama.cpp builds the grammar from it (the
    worker's bounds on top), and what the model writes parses and validates against that schema, whose enums and
    required stances run from A to AF. The 270M model often copies its few-shot example: flagged as a protocol
    error, yet still written under the grammar, so it validates too."""
    target = prepare("local:gemma3-270m", FAST)
    answers = [Response(model=f"m{i}", text=BEST if i == 5 else f"Lyon-{i}.", status="ok") for i in range(SIZE)]
    request = judge_request(target, "best-of", QUESTION, anonymise(answers, random.Random(3)))
    assert request.json_schema is not None
    assert request.json_schema["properties"]["winner"]["enum"] == answer_labels(SIZE)
    texts: list[str] = []

    async def judged() -> ProtocolError | None:
        try:
            async for event in local.LocalProvider().stream(request):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
        except ProtocolError as exc:
            return exc
        return None

    copied = asyncio.run(judged())
    verdict = json.loads("".join(texts))
    jsonschema.validate(verdict, request.json_schema)
    assert verdict["winner"] in answer_labels(SIZE)
    for item in verdict["analysis"]["contradictions"]:
        assert list(item["stances"]) == answer_labels(SIZE)
    assert copied is None or "copied its few-shot example" in str(copied)
