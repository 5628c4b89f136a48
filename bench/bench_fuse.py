"""How much time does fusion add? A pool of 8 emulated models with staggered latencies and a judge.

Ideal wall time = slowest member + judge (members run fully in parallel, the judge starts the instant
the last member ends). We print the ratio of the measured wall time of a %%fuse cell (run in a real
InteractiveShell, with the widget view attached, so parsing, events and rendering are all counted) to
that ideal, per repetition and as a median. 1.00 is perfect.

    .venv/bin/python bench/bench_fuse.py [--reps 5]
    .venv/bin/python bench/bench_fuse.py --reps 3 --before 636c31e   # and an earlier commit, side by side
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import time
from pathlib import Path

import baseline  # bench/baseline.py: --before
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.testing import Emulator, ModelScript

MEMBERS = 8
JUDGE_REPLY = '{"reasoning": "Answer A is the most complete.", "winner": "A"}'


def scripts(emu: Emulator) -> list[str]:
    ids = []
    for i in range(MEMBERS):
        name = f"bench/m{i + 1}"
        # Staggered: first token after 0.1-0.8 s, then 40 chunks at 200 chunks/s (0.2 s of streaming).
        emu.script(name, ModelScript(reply="word " * 64, ttft_s=0.1 * (i + 1), tokens_per_s=200, chunk_chars=8))
        ids.append(f"openrouter:{name}")
    emu.script("bench/judge", ModelScript(reply=JUDGE_REPLY, ttft_s=0.3, tokens_per_s=400, chunk_chars=8))
    return ids


def measure(reps: int) -> list[dict[str, float]]:
    """``reps`` rows of the cell and the bare API, side by side in this process (after one warm-up cell)."""
    with Emulator() as emu:
        os.environ.update(emu.env())
        os.environ.update(emu.test_keys())
        ids = scripts(emu)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "fusion_magic")
        shell.run_line_magic("config", "FusionMagics.view = 'widgets'")
        line = f"-p {','.join(ids)} -j openrouter:bench/judge -m best-of -o r"
        sink = io.StringIO()  # the shell has no frontend: the view's final update prints the report
        with contextlib.redirect_stdout(sink):
            shell.run_cell_magic("fuse", line, "Explain the bench.")  # warm-up: connections, imports
        rows = []
        for _ in range(reps):
            # Side by side in one run: the magic with the widget view, then the bare API, alternating.
            with contextlib.redirect_stdout(sink):
                t0 = time.perf_counter()
                shell.run_cell_magic("fuse", line, "Explain the bench.")
                cell_wall = time.perf_counter() - t0
            r = shell.user_ns["r"]
            slowest = max(x.latency_s or 0 for x in r.responses)
            judge = sum(x.latency_s or 0 for x in r.judge_responses)
            t0 = time.perf_counter()
            bare = fusion_magic.fuse("Explain the bench.", pool=ids, judge="openrouter:bench/judge", mode="best-of")
            api_wall = time.perf_counter() - t0
            api_ideal = max(x.latency_s or 0 for x in bare.responses) + sum(
                x.latency_s or 0 for x in bare.judge_responses)
            rows.append({"cell": cell_wall, "api": api_wall, "slowest": slowest, "judge": judge,
                         "ideal": slowest + judge, "api_ideal": api_ideal})
    return rows


def table(rows: list[dict[str, float]]) -> None:
    print(f"{'cell_s':>8} {'api_s':>8} {'slowest':>8} {'judge':>7} {'ideal':>7} {'cell/ideal':>10} {'api/ideal':>9}")
    for r in rows:
        print(f"{r['cell']:8.3f} {r['api']:8.3f} {r['slowest']:8.3f} {r['judge']:7.3f} {r['ideal']:7.3f} "
              f"{r['cell'] / r['ideal']:10.3f} {r['api'] / r['api_ideal']:9.3f}")


def medians(rows: list[dict[str, float]]) -> tuple[float, float]:
    """The median cell/ideal and fuse()/ideal of ``rows``."""
    return (statistics.median(r["cell"] / r["ideal"] for r in rows),
            statistics.median(r["api"] / r["api_ideal"] for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also run this benchmark against fusion_magic at REV (a git "
                        "commit), alternating with this checkout's, and print both")
    parser.add_argument("--rounds", type=int, default=2, help="with --before: runs of --reps reps per side")
    parser.add_argument("--rows-json", action="store_true", help=argparse.SUPPRESS)  # for baseline.side_by_side
    ns = parser.parse_args()
    if ns.rows_json:
        print(baseline.rows_line(measure(ns.reps)))
        return
    print(f"{MEMBERS} emulated members (first token after 0.1-0.8 s, then 0.2 s of streaming) + a judge (0.3 s)")
    print("(ideal = that run's slowest member + its judge, as measured; api/ideal uses the API run's own)")
    if ns.before:
        sides = baseline.side_by_side(Path(__file__), ["--reps", str(ns.reps)], ns.before, rounds=ns.rounds)
        rows = sides["after"]
        for side, label in (("before", f"before ({baseline.commit(ns.before)})"), ("after", "after (this checkout)")):
            print(f"{label}, {len(sides[side])} reps in {ns.rounds} runs alternating with the other side:")
            table(sides[side])
        cell_before, api_before = medians(sides["before"])
        print(f"before {baseline.commit(ns.before)}: median ratio, %%fuse cell with widget view = {cell_before:.3f}; "
              f"fuse() without view = {api_before:.3f}")
    else:
        rows = measure(ns.reps)
        table(rows)
    cell, api = medians(rows)
    print(f"median ratio, %%fuse cell with widget view: wall / (slowest member + judge) = {cell:.3f}  (ideal 1.000)")
    print(f"median ratio, fusion_magic.fuse() without view:                          = {api:.3f}")


if __name__ == "__main__":
    main()
