"""How fast does Ctrl-C / a kernel interrupt close every in-flight request? (The design asks: < 1 s.)

Eight emulated members that never answer; the main thread is interrupted 0.5 s into the run (as a kernel
interrupt does); we print the time from the interrupt until the emulator saw the last connection close.

    .venv/bin/python bench/bench_interrupt.py [--reps 5]
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import os
import statistics
import threading
import time

import fusion_magic
from fusion_magic.testing import Emulator, Fault, ModelScript

MEMBERS = 8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    ns = parser.parse_args()
    delays = []
    with Emulator() as emu:
        os.environ.update(emu.env())
        os.environ.update(emu.test_keys())
        families = ["openrouter", "openai", "anthropic", "gemini"]
        pool = [f"{families[i % 4]}:hang{i}" for i in range(MEMBERS)]
        for i in range(MEMBERS):
            emu.script(f"hang{i}", ModelScript(faults=[Fault("hang")]))
        for _ in range(ns.reps):
            emu.reset()
            for i in range(MEMBERS):
                emu.script(f"hang{i}", ModelScript(faults=[Fault("hang")]))
            fired: list[float] = []

            def interrupt(fired: list[float] = fired) -> None:
                fired.append(time.monotonic())
                _thread.interrupt_main()

            threading.Timer(0.5, interrupt).start()
            with contextlib.suppress(KeyboardInterrupt):
                fusion_magic.fuse("never answered", pool=pool, judge="vote")
            emu.wait_for(lambda reqs: len(reqs) == MEMBERS and all(q.ended for q in reqs), timeout=10)
            last_close = max(q.ended or 0 for q in emu.requests)
            delays.append(last_close - fired[0])
    print(f"{MEMBERS} hanging members over 4 protocols, interrupted 0.5 s in; "
          "seconds until the server saw the last connection close:")
    print("  " + "  ".join(f"{d:.3f}" for d in delays))
    print(f"median {statistics.median(delays):.3f} s, max {max(delays):.3f} s (target < 1 s)")


if __name__ == "__main__":
    main()
