"""Batch evaluations at scale: ``--questions`` (10,000) x 4 strategies through the emulator's batch APIs.

An emulator in a separate process (its memory and its server thread are not ours) serves OpenAI's, Anthropic's,
Gemini's and OpenRouter's batch APIs, every model answering right. ``fusion_magic.evaluate(..., batch=True)`` runs
four strategies:

    single:openai:bench-a     one OpenAI call per question
    single:gemini:bench-c     one Gemini call per question (Gemini takes at most 5,000 a batch: split)
    vote                      openai bench-a, anthropic bench-b, openrouter bench/d (OpenRouter: 10,000 a batch)
    best-of                   the same pool, then the judge openai:bench-j in a second wave

so 9 calls per question (90,000 at 10,000 questions). Printed:

* the wall time and the batches per provider, each batch's requests and bytes against the API's limits;
* memory: this process's peak resident memory above its start, against what the result holds when the run is
  over (the rows, the calls and their text): ``peak / held`` near 1 means nothing was held twice on the way
  (the request files are streamed to disk, the results read line by line), and per call in KB;
* resume: the same evaluation stopped (cancelled) once wave 1 is accepted, then run again: batches re-attached,
  request ids submitted twice (target 0), rows complete.

    .venv/bin/python bench/bench_batch.py [--questions 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ANSWER = "42"
POOL = ["openai:bench-a", "anthropic:bench-b", "openrouter:bench/d"]
SINGLES = ["single:openai:bench-a", "single:gemini:bench-c"]
JUDGE = "openai:bench-j"
PRICES = {"openai:bench-a": (1.0, 2.0), "anthropic:bench-b": (3.0, 15.0), "gemini:bench-c": (0.3, 2.5),
          "openai:bench-j": (0.5, 1.0)}
FAMILIES = ("openai", "anthropic", "gemini", "openrouter")
HELD_RATIO_TARGET = 1.5


def judge_reply(body: Any) -> str:
    import json

    return json.dumps({"reasoning": "all agree", "winner": "A"})


def serve(conn: Connection) -> None:
    """The emulator's process: script the models, send the environment, then answer the parent's questions about
    its batches (creations, request ids submitted twice, hold/release) until told to stop."""
    from fusion_magic.testing import Emulator, ModelScript

    with Emulator() as emu:
        for name in ("bench-a", "bench-b", "bench-c", "bench/d"):
            emu.script(name, ModelScript(reply=f"Six times seven.\nFinal answer: {ANSWER}"))
        emu.script("bench-j", ModelScript(reply=judge_reply))
        emu.batches.polls_to_finish = 2
        conn.send({**emu.env(), **emu.test_keys()})
        with contextlib.suppress(EOFError):
            while True:
                command = conn.recv()
                if command == "stop":
                    return
                if command == "creations":
                    conn.send(emu.batches.creations())
                elif command == "twice":
                    conn.send(sum(n - 1 for f in FAMILIES for n in Counter(emu.batches.submitted_ids(f)).values()
                                  if n > 1))
                elif command == "clear":
                    emu.batches.clear()
                    conn.send(True)
                elif command == "hold":
                    emu.batches.hold()
                    conn.send(True)
                elif command == "release":
                    emu.batches.release()
                    conn.send(True)
                elif command == "sizes":
                    conn.send([(b.family, b.model, len(b.items)) for b in emu.batches.batches()])


def rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss: KB on Linux)."""
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def ask(conn: Connection, command: str) -> Any:
    conn.send(command)
    return conn.recv()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--poll", type=float, default=0.2, help="first poll of a batch after this many s")
    ns = parser.parse_args()
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=serve, args=(theirs,), daemon=True)
    child.start()
    here = Path.cwd()
    try:
        if not ours.poll(120):
            raise RuntimeError("the emulator process did not start within 120 s")
        os.environ.update(ours.recv())
        with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
            os.chdir(tmp)
            os.environ["FUSION_MAGIC_RUN_LOG"] = str(Path(tmp) / "fusion_runs.sqlite")
            os.environ["FUSION_MAGIC_CACHE_DIR"] = str(Path(tmp) / "cache")
            try:
                return run(ns, ours)
            finally:
                os.chdir(here)
    finally:
        with contextlib.suppress(Exception):
            ours.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()


def run(ns: argparse.Namespace, conn: Connection) -> int:
    import gc

    import pandas as pd

    import fusion_magic
    from fusion_magic.calls.settings import Settings
    from fusion_magic.providers.batch.anthropic import AnthropicBatch
    from fusion_magic.providers.batch.gemini import GeminiBatch
    from fusion_magic.providers.batch.openai import OpenAIBatch
    from fusion_magic.providers.batch.openrouter import OpenRouterBatch

    limits = {"openai": OpenAIBatch, "anthropic": AnthropicBatch, "gemini": GeminiBatch,
              "openrouter": OpenRouterBatch}
    n = ns.questions
    questions = pd.DataFrame({"id": [f"q{i}" for i in range(n)],
                              "question": [f"Question {i}: what is six times seven?" for i in range(n)],
                              "reference": [ANSWER] * n})
    settings = Settings(max_retries=0, prices=PRICES)
    options: dict[str, Any] = {"pool": POOL, "judge": JUDGE, "strategies": [*SINGLES, "vote", "best-of"],
                               "batch": True, "poll_s": ns.poll}
    per_question = 2 + 3 + 4
    gc.collect()
    base_peak, base_now = rss_mb(), current_rss_mb()

    t0 = time.perf_counter()
    result = fusion_magic.evaluate(questions, settings=settings, **options)
    wall = time.perf_counter() - t0
    peak_growth = max(rss_mb(), base_peak) - base_now
    gc.collect()
    held = current_rss_mb() - base_now
    calls = len(result.calls)
    rows_ok = len(result.entries) == 4 * n and not result.rows["error"].notna().any()
    accuracy = result.summary.set_index("strategy")["accuracy"]
    sizes = ask(conn, "sizes")
    print(f"{n:,} questions x 4 strategies ({', '.join(result.strategies)}) = {len(result.entries):,} rows, "
          f"{calls:,} calls ({per_question} per question), every row scored: {rows_ok}; accuracy "
          f"{', '.join(f'{k} {v:.3f}' for k, v in accuracy.items())}")
    print(f"wall time, submit to last row (polls from {ns.poll:g} s, emulated batches finish at the 2nd poll): "
          f"{wall:.1f} s")
    by_family: dict[str, list[int]] = {}
    for family, _, count in sizes:
        by_family.setdefault(family, []).append(count)
    within = True
    for family, counts in by_family.items():
        api = limits[family]
        within &= max(counts) <= api.max_requests
        print(f"  {family}: {len(counts)} batches, requests {sorted(counts)} (limit {api.max_requests:,} and "
              f"{api.max_bytes / 2**20:.0f} MB a batch)")
    print(f"every batch within its API's request limit: {within}")
    cost = result.summary["total_cost_usd"]
    print(f"cost of the priced strategies at the batch rate: ${float(cost.dropna().sum()):.4f}")
    print(f"memory: baseline {base_now:.0f} MB; peak growth during the run {peak_growth:.0f} MB; held by the "
          f"result after it {held:.0f} MB ({held * 1024 / calls:.2f} KB a call)")
    print(f"memory ratio, peak growth / held by the result = {peak_growth / held if held > 0 else float('nan'):.2f}"
          f"  (target <= {HELD_RATIO_TARGET:g})")
    del result
    gc.collect()

    # Resume: the same evaluation stopped once wave 1 is accepted, then asked again (the emulator forgets the
    # first run's batches, so "twice" counts only this pair of runs).
    ask(conn, "clear")
    ask(conn, "hold")
    before = ask(conn, "creations")
    job = fusion_magic.evaluate(questions, settings=settings, background=True, **options)
    deadline = time.monotonic() + 600
    wave1 = len([b for b in sizes if b[1] != "bench-j"])
    while ask(conn, "creations") < before + wave1:
        if time.monotonic() > deadline:
            raise RuntimeError("wave 1 was not accepted within 600 s")
        time.sleep(0.2)
    time.sleep(1.0)  # the receipts of the last accepted batch are written as its answer arrives
    job.cancel()
    with contextlib.suppress(BaseException):
        job.result()
    stopped_at = ask(conn, "creations")
    ask(conn, "release")
    t0 = time.perf_counter()
    again = fusion_magic.evaluate(questions, settings=settings, **options)
    resume_wall = time.perf_counter() - t0
    created = ask(conn, "creations") - stopped_at
    twice = ask(conn, "twice")
    complete = len(again.entries) == 4 * n and not again.rows["error"].notna().any()
    tally = again.batch
    assert tally is not None
    print(f"resume: stopped after wave 1 was accepted ({stopped_at - before} batches); the run again re-attached "
          f"{tally.reattached}, submitted {created} (the judges' wave), rows complete: {complete}, "
          f"{resume_wall:.1f} s")
    print(f"request ids submitted twice by the stopped run and the run again = {twice}  (target <= 0)")
    return 0 if rows_ok and complete and within else 1


if __name__ == "__main__":
    raise SystemExit(main())
