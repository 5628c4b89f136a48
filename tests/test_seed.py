"""``--seed N``: repeatable runs. Seat i sends seed N + i, the judge N, and the judge's order of the anonymous
answers is drawn from N; the same seed sends the same requests, another seed other ones. Checked on the wire,
through the loopback emulator, for %%fuse, fuse(), python -m fusion_magic and the evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.__main__ import main
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.evaluation import BUNDLED_QUESTIONS
from fusion_magic.testing import Emulator, ModelScript, RecordedRequest, content_judge
from fusion_magic.testing.judges import shown_answers

FAST = Settings(max_retries=0, timeout=20)
# Three families that carry a seed (OpenAI and OpenRouter in the body, Gemini in generationConfig), one
# model each, so each seat's request is found by its model.
POOL = ["openai:s-a", "openrouter:t/s-b", "gemini:s-c"]
MODELS = ["s-a", "t/s-b", "s-c"]
JUDGE = "openai:s-judge"
ANSWERS = {"s-a": "It is 41.", "t/s-b": "The answer is 42.", "s-c": "42, since 6 x 7 = 42."}


def script(emu: Emulator) -> None:
    for model, reply in ANSWERS.items():
        emu.script(model, ModelScript(reply=reply))
    emu.script("s-judge", ModelScript(reply=content_judge("answer is 42")))


def seed_of(request: RecordedRequest) -> int | None:
    """The seed a request carried, in its family's place."""
    body: Mapping[str, Any] = request.body or {}
    if "generationConfig" in body:
        return body["generationConfig"].get("seed")
    return body.get("seed")


def sent(emu: Emulator) -> dict[str, list[Any]]:
    """Every request body the emulator received, by model, in arrival order."""
    bodies: dict[str, list[Any]] = {}
    for q in emu.requests:
        bodies.setdefault(q.model or "", []).append(q.body)
    return bodies


def judge_order(emu: Emulator) -> list[str]:
    """The answers the judge was shown, in the order shown (the last judge request)."""
    judge = [q for q in emu.requests if q.model == "s-judge"][-1]
    return list(shown_answers(judge.body or {}).values())


# ---- %%fuse, fuse() and python -m fusion_magic ---------------------------------------------------------


def test_the_seed_reaches_every_seat_and_the_judge(shell: InteractiveShell, emulator_env: Emulator) -> None:
    script(emulator_env)
    shell.run_cell_magic("fuse", f"-p {','.join(POOL)} -j {JUDGE} --seed 7 -o r", "What is 6 x 7?")
    seeds = {q.model: seed_of(q) for q in emulator_env.requests}
    assert seeds == {"s-a": 7, "t/s-b": 8, "s-c": 9, "s-judge": 7}
    assert shell.user_ns["r"].answer == "The answer is 42."


def test_without_a_seed_nothing_changes(emulator_env: Emulator) -> None:
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, settings=FAST)
    assert {q.model: seed_of(q) for q in emulator_env.requests} == dict.fromkeys([*MODELS, "s-judge"])
    emulator_env.reset()
    fusion_magic.fuse("q", pool=["openai:s-a"], self_n=3, judge="vote", settings=FAST)
    assert sorted(seed_of(q) or 0 for q in emulator_env.requests) == [1, 2, 3]  # a seed per seat, as before


def test_self_sampling_seats_count_up_from_the_seed(emulator_env: Emulator) -> None:
    emulator_env.script("s-a", ModelScript(reply="It is 42."))
    fusion_magic.fuse("q", pool=["openai:s-a"], self_n=3, judge="vote", seed=100, settings=FAST)
    bodies = [q.body or {} for q in emulator_env.requests]
    assert sorted(b["seed"] for b in bodies) == [100, 101, 102]
    assert {b["temperature"] for b in bodies} == {0.8}  # still sampled: the seats differ by their seeds


def test_the_same_seed_sends_the_same_requests(emulator_env: Emulator) -> None:
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=3, settings=FAST)
    first, first_order = sent(emulator_env), judge_order(emulator_env)
    emulator_env.reset()
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=3, settings=FAST)
    assert sent(emulator_env) == first  # every request byte for byte, the judge's too
    assert judge_order(emulator_env) == first_order and sorted(first_order) == sorted(ANSWERS.values())


def test_every_ordering_of_the_judge_sends_the_seed(emulator_env: Emulator) -> None:
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=3, orders=3, settings=FAST)
    first = sent(emulator_env)["s-judge"]
    assert [b["seed"] for b in first] == [3, 3, 3]
    emulator_env.reset()
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=3, orders=3, settings=FAST)
    # The orderings run at once, so they arrive in any order: the same three requests.
    assert sorted(map(repr, sent(emulator_env)["s-judge"])) == sorted(map(repr, first))


def test_the_judge_order_is_the_seeds(emulator_env: Emulator) -> None:
    script(emulator_env)
    orders = []
    for seed in (1, 1, 2, 3, 4, 5):
        emulator_env.reset()
        script(emulator_env)
        fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=seed, settings=FAST)
        orders.append(judge_order(emulator_env))
    assert orders[0] == orders[1]  # the same seed, the same order
    assert len({tuple(o) for o in orders[1:]}) > 1  # other seeds, other orders (3! of them to draw from)


def test_different_seeds_send_different_requests(emulator_env: Emulator) -> None:
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=3, settings=FAST)
    three = sent(emulator_env)
    emulator_env.reset()
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=4, settings=FAST)
    four = sent(emulator_env)
    for model in [*MODELS, "s-judge"]:
        assert three[model] != four[model], model
    assert {q.model: seed_of(q) for q in emulator_env.requests} == {"s-a": 4, "t/s-b": 5, "s-c": 6, "s-judge": 4}


def test_a_seeded_run_replays_from_the_cache(emulator_env: Emulator) -> None:
    script(emulator_env)
    first = fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=5, cache="on", settings=FAST)
    n = len(emulator_env.requests)
    again = fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=5, cache="replay", settings=FAST)
    assert len(emulator_env.requests) == n  # nothing sent: every request, the judge's included, was recorded
    assert again.answer == first.answer and all(r.cost_source.startswith("cache") for r in again.calls)


def test_debate_revisions_keep_the_seats_seeds(emulator_env: Emulator) -> None:
    emulator_env.script("d-a", ModelScript(replies=["It is 41.", "It is 42."]))
    emulator_env.script("d-b", ModelScript(reply="It is 42."))
    emulator_env.script("s-judge", ModelScript(reply=content_judge("42")))
    fusion_magic.fuse("6 x 7?", pool=["openai:d-a", "openai:d-b"], judge=JUDGE, mode="debate", rounds=1, seed=20,
                      settings=FAST)
    seeds = [(q.model, seed_of(q)) for q in emulator_env.requests]
    assert sorted(seeds) == [("d-a", 20), ("d-a", 20), ("d-b", 21), ("d-b", 21), ("s-judge", 20)]


def test_python_m_takes_the_seed(emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    script(emulator_env)
    assert main(["-p", ",".join(POOL), "-j", "vote", "--seed", "11", "What is 6 x 7?"]) == 0
    assert {q.model: seed_of(q) for q in emulator_env.requests} == {"s-a": 11, "t/s-b": 12, "s-c": 13}
    capsys.readouterr()


# ---- a bad seed: one line, no call ----------------------------------------------------------------------


def magic_line(shell: InteractiveShell, line: str, cell: str = "hi") -> str:
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("fuse", line, cell)
    assert type(info.value) is UsageError  # IPython prints subclasses with a traceback
    return str(info.value)


@pytest.mark.parametrize(("flag", "line"), [
    ("--seed -1", "--seed must be a whole number from 0 to 2000000000"),
    ("--seed 3000000000", "--seed must be a whole number from 0 to 2000000000"),
    ("--seed 1.5", "argument --seed: invalid int value: '1.5'"),
    ("--seed x", "argument --seed: invalid int value: 'x'"),
])
def test_a_bad_seed_in_the_magic(shell: InteractiveShell, emulator_env: Emulator, flag: str, line: str) -> None:
    assert magic_line(shell, f"-p openai:a,openai:b -j vote {flag}") == line
    assert magic_line(shell, f"-p openai:a,openai:b -j vote --estimate {flag}") == line
    with pytest.raises(UsageError, match=f"^{line}$"):
        shell.run_line_magic("fuse", f"eval bundled -p openai:a -s single {flag}")
    assert emulator_env.requests == []


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, 2**31])
def test_a_bad_seed_keyword(emulator_env: Emulator, capsys: pytest.CaptureFixture[str], seed: Any) -> None:
    line = "--seed must be a whole number from 0 to 2000000000"
    with pytest.raises(ConfigError, match=f"^{line}$"):
        fusion_magic.fuse("hi", pool=["openai:a", "openai:b"], judge="vote", seed=seed)
    with pytest.raises(ConfigError, match=f"^{line}$"):
        fusion_magic.evaluate(BUNDLED_QUESTIONS, pool=["openai:a"], strategies=["single"], seed=seed)
    capsys.readouterr()
    assert main(["-p", "openai:a,openai:b", "-j", "vote", "--seed", "-1", "hi"]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"
    assert emulator_env.requests == []


def test_zero_is_a_seed(emulator_env: Emulator) -> None:
    script(emulator_env)
    fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge=JUDGE, seed=0, settings=FAST)
    assert {q.model: seed_of(q) for q in emulator_env.requests} == {"s-a": 0, "t/s-b": 1, "s-c": 2, "s-judge": 0}


# ---- evaluation ----------------------------------------------------------------------------------------

QUESTIONS = pd.DataFrame({"id": ["q1", "q2"], "question": ["What is 2 + 2?", "What is 3 + 3?"],
                          "reference": ["4", "6"]})


def script_eval(emu: Emulator) -> None:
    emu.script("s-a", ModelScript(reply="Final answer: 4"))
    emu.script("t/s-b", ModelScript(reply="Final answer: 6"))
    emu.script("s-judge", ModelScript(reply=content_judge("Final answer")))


def test_evaluate_with_a_seed_seeds_every_strategy(emulator_env: Emulator) -> None:
    script_eval(emulator_env)
    fusion_magic.evaluate(QUESTIONS, pool=["openai:s-a", "openrouter:t/s-b"], judge=JUDGE, repeats=2, seed=40,
                          strategies=["single", "self:3", "best-of"], settings=FAST)
    seeds: dict[str, list[int]] = {}
    for q in emulator_env.requests:
        seed = seed_of(q)
        assert seed is not None, q.model  # every call of a seeded evaluation is seeded
        seeds.setdefault(q.model or "", []).append(seed)
    # Per question (2): single sends the seed (repeat 1: + 1000); self:3's seats 40..42; best-of's seats
    # 40 and 41, its judge 40 in both repeats.
    single, self_3, best_of_a, best_of_b = [40, 1040], [40, 41, 42, 1040, 1041, 1042], [40, 1040], [41, 1041]
    assert sorted(seeds["s-a"]) == sorted([*single, *self_3, *best_of_a] * 2)
    assert sorted(seeds["t/s-b"]) == sorted([*single, *best_of_b] * 2)
    assert seeds["s-judge"] == [40] * 4


def test_evaluate_without_a_seed_is_unchanged(emulator_env: Emulator) -> None:
    script_eval(emulator_env)
    fusion_magic.evaluate(QUESTIONS, pool=["openai:s-a"], repeats=2, strategies=["single"], settings=FAST)
    assert sorted(seed_of(q) or 0 for q in emulator_env.requests) == [0, 0, 1000, 1000]


def test_the_same_evaluation_seed_sends_the_same_requests(emulator_env: Emulator) -> None:
    def bodies(seed: int) -> list[str]:
        emulator_env.reset()
        script_eval(emulator_env)
        fusion_magic.evaluate(QUESTIONS, pool=["openai:s-a", "openrouter:t/s-b"], judge=JUDGE, repeats=2,
                              seed=seed, strategies=["best-of"], settings=FAST)
        return sorted(repr(q.body) for q in emulator_env.requests)

    assert bodies(9) == bodies(9)
    assert bodies(9) != bodies(10)


def test_eval_magic_takes_the_seed(shell: InteractiveShell, emulator_env: Emulator) -> None:
    script_eval(emulator_env)
    shell.user_ns["questions"] = QUESTIONS
    try:
        shell.run_line_magic("fuse", "eval questions -p openai:s-a -s single --seed 6 -o out")
    finally:
        shell.user_ns.pop("questions", None)
    assert [seed_of(q) for q in emulator_env.requests] == [6, 6]
    assert len(shell.user_ns["out"].rows) == 2


def test_a_later_repeat_shuffles_by_the_seed(emulator_env: Emulator) -> None:
    def judge_orders(seed: int) -> list[list[str]]:
        emulator_env.reset()
        for model, reply in ANSWERS.items():
            emulator_env.script(model, ModelScript(reply=f"Final answer: {reply}"))
        emulator_env.script("s-judge", ModelScript(reply=content_judge("Final answer")))
        # One row at a time: repeat 0's judge request comes before repeat 1's.
        fusion_magic.evaluate(QUESTIONS.head(1), pool=POOL, judge=JUDGE, repeats=2, seed=seed, concurrency=1,
                              strategies=["best-of"], settings=FAST)
        return [list(shown_answers(q.body or {}).values()) for q in emulator_env.requests if q.model == "s-judge"]

    runs = [judge_orders(seed) for seed in (1, 1, 2, 3, 4, 5)]
    assert runs[0] == runs[1]
    assert len({tuple(run[1]) for run in runs[1:]}) > 1  # repeat 1's order is drawn from the seed too
