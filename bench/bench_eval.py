"""How much time does evaluation add? ``fusion_magic.evaluate`` on emulated questions at bounded concurrency.

An emulator in a separate process (so its server thread does not compete with ours for the GIL) serves
``--members`` emulated models; each answers every request after ``--ttft`` s, then streams its reply in
``--chunks`` chunks at ``--tps`` chunks/s. ``fusion_magic.evaluate`` runs ``--questions`` closed questions
with the strategy ``single`` (each member alone: one call per question per member, no judge) at concurrency
``--concurrency``, so it makes Q x M calls, each one row.

Two ideals:

* scripted: ceil(calls / C) waves x one call's scripted time (ttft + (chunks - 1) / tps), derived from the
  scripts: what perfect waves of C calls would take;
* plain: the same number of raw streamed ``httpx`` requests to the same emulator at the same concurrency
  (``asyncio.gather`` under a semaphore of C, one client made before timing), each read to its end, timed
  side by side with the evaluation in alternating order.

We print evaluate/scripted and evaluate/plain per rep and as medians (1.00 is perfect). These machines are
shared and noisy: compare side by side in one run. Missed targets are reported, not failed: only an error
exits non-zero.

    .venv/bin/python bench/bench_eval.py [--questions 16] [--members 2] [--concurrency 4] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

ANSWER = "42"
CHUNK_CHARS = 8
SCRIPTED_TARGET = 1.10
PLAIN_TARGET = 1.10


def reply_text(chunks: int) -> str:
    """A reply of exactly ``chunks`` chunks of CHUNK_CHARS characters that ends with the scored final line."""
    tail = f"\nFinal answer: {ANSWER}"
    size = max(chunks * CHUNK_CHARS, len(tail))
    size = math.ceil(size / CHUNK_CHARS) * CHUNK_CHARS
    return ("Thinking it through. " * (size // 21 + 1))[: size - len(tail)] + tail


def serve(conn: Connection, names: list[str], ttft: float, tps: float, chunks: int) -> None:
    """The emulator's process: script the members, send the environment back, serve until told to stop."""
    from fusion_magic.testing import Emulator, ModelScript

    with Emulator() as emu:
        for name in names:
            emu.script(name, ModelScript(reply=reply_text(chunks), ttft_s=ttft, tokens_per_s=tps,
                                         chunk_chars=CHUNK_CHARS))
        conn.send({**emu.env(), **emu.test_keys()})
        # Anything from the parent means stop; so does EOF (the parent went away).
        with contextlib.suppress(EOFError):
            conn.recv()


class Plain:
    """The plain reference: raw streamed chat requests over one ``httpx`` client on one event loop."""

    def __init__(self) -> None:
        self.url = os.environ["OPENROUTER_BASE_URL"] + "/chat/completions"
        self.headers = {"authorization": f"Bearer {os.environ['OPENROUTER_API_KEY']}"}
        self.loop = asyncio.new_event_loop()
        # As many connections as the evaluation may hold open: the pool must not be the bottleneck.
        self.client = httpx.AsyncClient(timeout=60)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def run(self, calls: list[tuple[str, str]], concurrency: int) -> float:
        """Seconds to send every (model, prompt) of ``calls``, at most ``concurrency`` at a time, each to its end."""
        return self.loop.run_until_complete(self._run(calls, concurrency))

    async def _run(self, calls: list[tuple[str, str]], concurrency: int) -> float:
        semaphore = asyncio.Semaphore(concurrency)

        async def one(model: str, prompt: str) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
                    "stream_options": {"include_usage": True}}
            async with semaphore, self.client.stream("POST", self.url, json=body, headers=self.headers) as response:
                response.raise_for_status()
                text = ""
                async for line in response.aiter_lines():
                    text += line
                if "[DONE]" not in text or ANSWER not in text:
                    raise RuntimeError(f"the plain request to {model} ended without its answer")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(model, prompt) for model, prompt in calls))
        return time.perf_counter() - t0


def bench(ns: argparse.Namespace, names: list[str]) -> list[tuple[float, float]]:
    import pandas as pd

    import fusion_magic
    from fusion_magic.calls.settings import Settings
    from fusion_magic.evaluation import CLOSED_INSTRUCTION

    questions = pd.DataFrame({
        "id": [f"q{i + 1}" for i in range(ns.questions)],
        "question": [f"Question {i + 1}: what is six times seven?" for i in range(ns.questions)],
        "reference": [ANSWER] * ns.questions,
    })
    pool = [f"openrouter:{name}" for name in names]
    total = ns.questions * len(names)
    settings = Settings(max_retries=0)

    def evaluate() -> float:
        t0 = time.perf_counter()
        result = fusion_magic.evaluate(questions, settings=settings, pool=pool, strategies=["single"],
                                       concurrency=ns.concurrency)
        wall = time.perf_counter() - t0
        calls = sum(len(row.calls) for row in result.entries)
        if len(result.entries) != total or calls != total or not all(row.correct for row in result.entries):
            errors = {row.error for row in result.entries if row.error}
            raise RuntimeError(f"the evaluation made {len(result.entries)} rows and {calls} calls, expected "
                               f"{total} correct ones; errors: {errors}")
        return wall

    prompts = [(name, f"{q}\n\n{CLOSED_INSTRUCTION}") for q in questions["question"] for name in names]
    plain = Plain()
    try:
        evaluate()  # warm-up: imports, the engine thread, connections, the run log
        plain.run(prompts, ns.concurrency)
        rows = []
        for rep in range(ns.reps):
            if rep % 2 == 0:
                a = evaluate()
                b = plain.run(prompts, ns.concurrency)
            else:
                b = plain.run(prompts, ns.concurrency)
                a = evaluate()
            rows.append((a, b))
    finally:
        plain.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--members", type=int, default=2, help="pool models (strategy single: one call each)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ttft", type=float, default=0.2, help="each call's first chunk after this many s")
    parser.add_argument("--tps", type=float, default=100.0, help="chunks per second after the first")
    parser.add_argument("--chunks", type=int, default=20, help="chunks per reply")
    ns = parser.parse_args()
    if min(ns.questions, ns.members, ns.concurrency, ns.reps, ns.chunks) < 1 or ns.ttft < 0 or ns.tps <= 0:
        parser.error("--questions, --members, --concurrency, --reps, --chunks and --tps must be positive")
    names = [f"bench/e{i + 1}" for i in range(ns.members)]
    ctx = mp.get_context("spawn")
    ours_end, theirs_end = ctx.Pipe()
    child = ctx.Process(target=serve, args=(theirs_end, names, ns.ttft, ns.tps, ns.chunks), daemon=True)
    child.start()
    here = Path.cwd()
    try:
        if not ours_end.poll(120):
            raise RuntimeError("the emulator process did not start within 120 s")
        os.environ.update(ours_end.recv())
        with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
            os.chdir(tmp)
            # The run log is written as a user's would be, into this folder (then removed), not the user's own.
            os.environ["FUSION_MAGIC_RUN_LOG"] = str(Path(tmp) / "fusion_runs.sqlite")
            try:
                rows = bench(ns, names)
            finally:
                os.chdir(here)
    finally:
        ours_end.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()

    chunks = math.ceil(len(reply_text(ns.chunks)) / CHUNK_CHARS)
    call_s = ns.ttft + (chunks - 1) / ns.tps
    total = ns.questions * ns.members
    waves = math.ceil(total / ns.concurrency)
    ideal = waves * call_s
    print(f"{ns.questions} questions x {ns.members} members (strategy single) = {total} calls at concurrency "
          f"{ns.concurrency}; each call: first chunk after {ns.ttft:g} s, {chunks} chunks at {ns.tps:g}/s = "
          f"{call_s:.3f} s; emulator in another process; {ns.reps} reps, alternating order")
    print(f"(scripted ideal = {waves} waves x {call_s:.3f} s = {ideal:.3f} s; plain = raw httpx requests, "
          "asyncio.gather under the same concurrency)")
    print(f"{'rep':>3} {'eval_s':>7} {'plain_s':>7} {'ideal':>6} {'eval/ideal':>10} {'eval/plain':>10} "
          f"{'plain/ideal':>11}")
    for i, (ev, pl) in enumerate(rows, 1):
        print(f"{i:>3} {ev:7.3f} {pl:7.3f} {ideal:6.3f} {ev / ideal:10.3f} {ev / pl:10.3f} {pl / ideal:11.3f}")
    scripted = statistics.median(ev / ideal for ev, _ in rows)
    plain = statistics.median(ev / pl for ev, pl in rows)
    per_call = statistics.median((ev - pl) / total * 1000 for ev, pl in rows)
    print(f"median time added per call over plain: {per_call:.1f} ms")
    print(f"median ratio, fusion_magic.evaluate(): wall / scripted ideal (waves x call) = {scripted:.3f}  "
          f"(target <= {SCRIPTED_TARGET:.2f})")
    print(f"median ratio, fusion_magic.evaluate(): wall / plain asyncio.gather of httpx = {plain:.3f}  "
          f"(target <= {PLAIN_TARGET:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
