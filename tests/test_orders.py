"""--orders N: the judge sees the same anonymous answers in N orders, at once; best-of keeps the answer most
orders picked, and the result says how often the pick held (position consistency). Every judge here is an
emulated model that reads the order of the answers from its request."""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.api import new_result, plan_fuse, start
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import CallCancelled, ConfigError, ReplayMissError
from fusion_magic.core.record import Response
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.fusion.report import html_report, markdown_report, text_report
from fusion_magic.fusion.result import FusionResult
from fusion_magic.fusion.view import FusionView
from fusion_magic.judge.judging import NO_ANALYSIS, VOTE_HAS_NO_ANALYSIS, VOTE_IGNORES_ORDERS, anonymise, orderings
from fusion_magic.testing import Emulator, Fault, ModelScript

FAST = Settings(max_retries=0, timeout=20)
POOL = ["openai:paris-bot", "openai:lyon-bot"]
_SHOWN = re.compile(r"### Answer ([A-Z]+) \(\d+ tokens\)\n(.*?)(?=\n\n### |\n\n## Task)", re.S)


def shown(body: Mapping[str, Any]) -> dict[str, str]:
    """The answers a judge request shows, by letter, in the order shown."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return dict(_SHOWN.findall(user))


def first_shown_judge(**extra: Any) -> Callable[[Mapping[str, Any]], str]:
    """A judge with a pure position bias: it picks whatever answer it is shown first."""

    def reply(body: Mapping[str, Any]) -> str:
        first = next(iter(shown(body)))
        return json.dumps({"reasoning": "The first one.", "winner": first, "best": first, "answer": "A synthesis.",
                           **extra})

    return reply


def content_judge(needle: str = "Paris") -> Callable[[Mapping[str, Any]], str]:
    """A judge that reads: it picks the answer that says ``needle``, wherever it stands."""

    def reply(body: Mapping[str, Any]) -> str:
        pick = next(label for label, text in shown(body).items() if needle in text)
        return json.dumps({"reasoning": f"{pick} says {needle}.", "winner": pick, "best": pick,
                           "answer": f"{needle}."})

    return reply


def script_pool(emu: Emulator, *extra: tuple[str, str]) -> None:
    emu.script("paris-bot", ModelScript(reply="Paris."))
    emu.script("lyon-bot", ModelScript(reply="Lyon."))
    for model, reply in extra:
        emu.script(model, ModelScript(reply=reply))


def judge_rows(r: FusionResult) -> list[int]:
    """Each judge call's ordering, from the ledger (a single judge call has none: the column is left out)."""
    ledger = r.ledger
    judged = ledger[ledger["role"] == "judge"]
    return [int(n) for n in judged["ordering"]] if "ordering" in ledger else [0] * len(judged)


def judged_orders(emu: Emulator, judge: str = "judge") -> list[list[str]]:
    """The answers each judge request showed, in the order shown (first the text of answer A)."""
    return [list(shown(q.body or {}).values()) for q in emu.requests if q.model == judge]


# --- the must-show pair ---------------------------------------------------------------------------------


def test_a_judge_that_picks_the_first_answer_is_caught(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=first_shown_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST)
    assert sorted(judged_orders(emulator_env)) == [["Lyon.", "Paris."], ["Paris.", "Lyon."]]  # swapped
    assert r.position_consistency == 0.5 and r.position_consistency < 1
    v = r.verdict
    assert v is not None and v.agreement == (1, 2) and sorted(v.orders, key=str) == sorted(POOL)
    # a tie: the first order's pick stands
    assert v.choice == v.orders[0] and r.answer == ("Paris." if v.choice == POOL[0] else "Lyon.")
    assert judge_rows(r) == [1, 2] and len(r.judge_responses) == 2
    assert "position consistency 1/2" in " ".join(text_report(r).split())


def test_a_judge_that_reads_is_consistent(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=content_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST)
    assert r.position_consistency == 1.0 and r.answer == "Paris." and r.verdict is not None
    assert r.verdict.orders == ["openai:paris-bot", "openai:paris-bot"] and r.verdict.agreement == (2, 2)
    assert judge_rows(r) == [1, 2]
    assert r.verdict.notes == ["This verdict (the labels, reasoning and analysis) is order 1's.", NO_ANALYSIS]
    assert ("orders:    position consistency 2/2; order 1: openai:paris-bot, order 2: openai:paris-bot"
            in text_report(r))


def test_the_magic_flag(shell: InteractiveShell, emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=content_judge()))
    out = shell.run_cell_magic("fuse", "-p openai:paris-bot,openai:lyon-bot -j openai:judge --orders 2 -o r",
                               "Capital of France?")
    assert isinstance(out, FusionResult) and shell.user_ns["r"] is out
    assert out.position_consistency == 1.0 and judge_rows(out) == [1, 2]
    assert "position consistency 2/2" in out._repr_mimebundle_()["text/html"]
    assert len([q for q in emulator_env.requests if q.model == "judge"]) == 2


# --- more answers, more orders ------------------------------------------------------------------------------


def test_three_answers_in_three_orders_put_each_answer_first_once(emulator_env: Emulator) -> None:
    script_pool(emulator_env, ("rome-bot", "Rome."))
    emulator_env.script("judge", ModelScript(reply=first_shown_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=[*POOL, "openai:rome-bot"], judge="openai:judge", orders=3,
                          settings=FAST)
    orders = judged_orders(emulator_env)
    assert sorted(o[0] for o in orders) == ["Lyon.", "Paris.", "Rome."]
    assert r.verdict is not None and r.verdict.agreement == (1, 3)
    assert r.position_consistency == pytest.approx(1 / 3)


def test_more_orders_than_exist_are_capped_with_a_note(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=content_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=5, settings=FAST)
    assert judge_rows(r) == [1, 2] and r.verdict is not None
    assert r.verdict.notes[0] == "--orders 5: 2 answers have only 2 different orders, so the judge ran 2 times."


def test_orderings_are_distinct_rotations_then_reversals() -> None:
    answers = [Response(model=f"m:{i}", text=f"answer {i}", status="ok", label=str(i)) for i in range(4)]
    first = anonymise(answers, random.Random(3))
    orders = orderings(first, 8)
    seen = [tuple(c.response.label for c in order) for order in orders]
    assert len(set(seen)) == 8 and seen[0] == tuple(c.response.label for c in first)
    assert all([c.label for c in order] == list("ABCD") for order in orders)
    # the first four put every answer in every position once
    assert all(len({s[k] for s in seen[:4]}) == 4 for k in range(4))
    assert len(orderings(first[:3], 8)) == 6 and len(orderings(first[:2], 8)) == 2 and len(orderings(first[:1], 8)) == 1


def test_one_answer_is_judged_once(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("lyon-bot", ModelScript(faults=[Fault("status", status=503)]))
    emulator_env.script("judge", ModelScript(reply=content_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST)
    assert judge_rows(r) == [0] and r.position_consistency is None and r.verdict is not None
    assert r.verdict.notes[0] == "--orders 2: 1 answer has only 1 different order, so the judge ran once."


# --- merge, the vote, failures ------------------------------------------------------------------------------


def test_merge_keeps_the_first_orders_synthesis_and_measures_the_best_pick(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=first_shown_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", mode="merge", orders=2,
                          settings=FAST)
    assert r.answer == "A synthesis." and r.position_consistency == 0.5
    assert r.verdict is not None and "This verdict (the merged answer, reasoning and analysis) is order 1's." in (
        r.verdict.notes)


def test_merge_without_a_best_pick_measures_nothing(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=json.dumps({"reasoning": "r", "answer": "Paris."})))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", mode="merge", orders=2,
                          settings=FAST)
    assert r.answer == "Paris." and r.position_consistency is None and r.verdict is not None
    assert r.verdict.orders == [None, None] and r.verdict.agreement is None
    assert ("position consistency not measured (fewer than two orders named a best answer); order 1: no pick, "
            "order 2: no pick") in html_report(r)


def test_the_vote_ignores_orders(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="vote", orders=3, settings=FAST)
    assert r.verdict is not None and r.verdict.notes == [VOTE_IGNORES_ORDERS, VOTE_HAS_NO_ANALYSIS]
    assert r.judge_responses == [] and r.position_consistency is None


def test_an_order_that_fails_is_a_note(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    # whichever judge request arrives second fails
    emulator_env.script("judge", ModelScript(reply=content_judge(), faults=[Fault("status", status=500, skip=1,
                                                                                   times=1)]))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST)
    assert r.answer == "Paris." and r.verdict is not None and not r.verdict.fallback
    assert r.position_consistency is None and sorted(r.verdict.orders, key=str) == [None, "openai:paris-bot"]
    assert any(n.startswith("Order ") and "gave no verdict: the judge's call failed (server" in n
               for n in r.verdict.notes)
    assert r.degraded and sorted(judge_rows(r)) == [1, 2]


def test_every_order_failing_falls_back_to_the_vote(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(faults=[Fault("status", status=500)]))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST)
    assert r.verdict is not None and r.verdict.fallback and len(r.judge_responses) == 2
    assert r.verdict.reasoning.startswith("Fell back to a vote because the judge's call failed (server")
    assert "in each of the 2 orders of the answers" in r.verdict.reasoning


def test_the_same_run_under_the_cache_replays_every_order(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=first_shown_judge()))
    first = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST,
                              cache="on")
    sent = len(emulator_env.requests)
    again = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST,
                              cache="on")
    assert len(emulator_env.requests) == sent  # nothing sent: the same orders, the same requests
    assert all(j.cost_source.startswith("cache") for j in again.judge_responses)
    assert again.verdict is not None and first.verdict is not None and again.verdict.orders == first.verdict.orders


def test_the_reports_and_the_view_say_it(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=first_shown_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST)
    assert r.verdict is not None
    a, b = r.verdict.orders
    line = f"position consistency 1/2; order 1: {a}, order 2: {b}"
    assert line in " ".join(text_report(r).split()) and line in markdown_report(r)
    assert f"<li><b>orders</b>: {line}</li>" in html_report(r)
    view = FusionView.of(r)
    judge_tab = "".join(str(w.value) for w in view.judge.body.children)
    assert line in judge_tab and "raw judge output</b> · order 1" in judge_tab and "· order 2" in judge_tab


# --- the option -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orders", [0, 9, -1])
def test_a_bad_count_is_one_line_and_no_call(shell: InteractiveShell, emulator_env: Emulator, orders: int) -> None:
    line = "--orders must be between 1 and 8"
    with pytest.raises(ConfigError, match=f"^{line}$"):
        fusion_magic.fuse("q", pool=POOL, judge="vote", orders=orders)
    with pytest.raises(UsageError, match=f"^{line}$"):
        shell.run_cell_magic("fuse", f"-p openai:a,openai:b -j vote --orders {orders}", "q")
    assert emulator_env.requests == []


def test_the_default_is_one_judge_call(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=content_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST)
    assert judge_rows(r) == [0] and r.position_consistency is None and r.verdict is not None
    assert r.verdict.orders == [] and r.verdict.agreement is None


def test_cancelled_while_the_orders_are_judged_keeps_every_judge_call(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(faults=[Fault("hang")]))
    options = FuseOptions(pool=tuple(POOL), judge="openai:judge", orders=2)
    plan = plan_fuse("Capital of France?", FAST, options)
    partial = new_result(plan)
    job = start(plan, (), partial)
    for _ in range(400):  # until both orders' requests reached the judge (no time is asserted)
        if len([q for q in emulator_env.requests if q.model == "judge"]) == 2:
            break
        threading.Event().wait(0.05)
    assert job.cancel()
    with pytest.raises(CallCancelled):
        job.result()
    assert partial.verdict is None and sorted(j.ordering for j in partial.judge_responses) == [1, 2]
    assert [j.status for j in partial.judge_responses] == ["cancelled", "cancelled"]


def test_order_one_is_the_single_judge_call_and_a_replay_miss_still_raises(emulator_env: Emulator) -> None:
    """The first ordering sends the request a run without --orders sends (so it replays from the same
    recording); an ordering missing from a replay raises the miss, as a single judge call would."""
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=content_judge()))
    fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST, cache="on")
    sent = len(emulator_env.requests)
    with pytest.raises(ReplayMissError):
        fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST,
                          cache="replay")
    assert len(emulator_env.requests) == sent
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", orders=2, settings=FAST, cache="on")
    assert [j.cost_source.startswith("cache") for j in sorted(r.judge_responses, key=lambda j: j.ordering)] == [
        True, False]


def test_rejudge_takes_orders_too(shell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script("a", ModelScript(reply="Paris."))
    emulator_env.script("b", ModelScript(reply="Lyon."))
    shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote -o r", "Capital of France?")
    emulator_env.script("judge", ModelScript(reply=content_judge()))
    again = shell.run_line_magic("fuse", "rejudge -j openai:judge --orders 2 r")
    assert again.position_consistency == 1.0
    assert len([c for c in again.judge_responses if c.role == "judge"]) == 2
