"""How much time does fusion add? A pool of 8 emulated models with staggered latencies and a judge.

Ideal wall time = slowest member + judge (members run fully in parallel, the judge starts the instant
the last member ends). We print the ratio of the measured wall time of a %%fuse cell (run in a real
InteractiveShell, with the widget view attached, so parsing, events and rendering are all counted) to
that ideal, per repetition and as a median. 1.00 is perfect.

    .venv/bin/python bench/bench_fuse.py [--reps 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import time

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    ns = parser.parse_args()
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
        for _ in range(ns.reps):
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
            rows.append((cell_wall, api_wall, slowest, judge, slowest + judge, api_ideal))
    print(f"{MEMBERS} emulated members (first token after 0.1-0.8 s, then 0.2 s of streaming) + a judge (0.3 s)")
    print("(ideal = that run's slowest member + its judge, as measured; api/ideal uses the API run's own)")
    print(f"{'cell_s':>8} {'api_s':>8} {'slowest':>8} {'judge':>7} {'ideal':>7} {'cell/ideal':>10} {'api/ideal':>9}")
    for cell_wall, api_wall, slowest, judge, ideal, api_ideal in rows:
        print(f"{cell_wall:8.3f} {api_wall:8.3f} {slowest:8.3f} {judge:7.3f} {ideal:7.3f} "
              f"{cell_wall / ideal:10.3f} {api_wall / api_ideal:9.3f}")
    cell = statistics.median(c / i for c, _, _, _, i, _ in rows)
    api = statistics.median(a / i for _, a, _, _, _, i in rows)
    print(f"median ratio, %%fuse cell with widget view: wall / (slowest member + judge) = {cell:.3f}  (ideal 1.000)")
    print(f"median ratio, fusion_magic.fuse() without view:                          = {api:.3f}")


if __name__ == "__main__":
    main()
