"""How much time does fusion add? A pool of 8 emulated models with staggered latencies and a judge.

Ideal wall time = slowest member + judge (members run fully in parallel, the judge starts the instant
the last member ends). We print the ratio of the measured wall time of a %%fuse cell (run in a real
InteractiveShell, with the widget view attached, so parsing, events and rendering are all counted) to
that ideal, per repetition and as a median. 1.00 is perfect.

    .venv/bin/python bench/bench_fuse.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from IPython.core.interactiveshell import InteractiveShell

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
        shell.run_cell_magic("fuse", line, "Explain the bench.")  # warm-up: connections, imports
        ratios, rows = [], []
        for _ in range(ns.reps):
            t0 = time.perf_counter()
            shell.run_cell_magic("fuse", line, "Explain the bench.")
            wall = time.perf_counter() - t0
            r = shell.user_ns["r"]
            slowest = max(x.latency_s or 0 for x in r.responses)
            judge = sum(x.latency_s or 0 for x in r.judge_responses)
            ideal = slowest + judge
            ratios.append(wall / ideal)
            rows.append((wall, slowest, judge, ideal, wall / ideal))
    print(f"%%fuse, {MEMBERS} emulated members (ttft 0.1-0.8 s, 0.2 s streaming each) + judge, widget view on")
    print(f"{'wall_s':>8} {'slowest':>8} {'judge':>7} {'ideal':>7} {'ratio':>6}")
    for wall, slowest, judge, ideal, ratio in rows:
        print(f"{wall:8.3f} {slowest:8.3f} {judge:7.3f} {ideal:7.3f} {ratio:6.3f}")
    print(f"median ratio wall / (slowest member + judge) = {statistics.median(ratios):.3f}  (ideal 1.000)")


if __name__ == "__main__":
    main()
