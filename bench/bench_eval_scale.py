"""Does evaluation scale? ``fusion_magic.evaluate`` of ``--questions`` questions x 4 strategies, live and cached.

An emulator in a separate process (so its server does not compete with ours for the GIL) serves a pool of three
emulated models and a judge. Each member answers every request after ``--ttft`` s and streams ``--chunks`` chunks
at ``--tps`` chunks/s, ending with the scored final line; the judge answers after ``--judge-ttft`` s with one fixed
verdict (``winner``/``best`` A and a merged answer), streamed the same way. The four strategies:

* ``single:<first member>``: one call;
* ``vote``: the three members at once, majority vote (they agree: no judge call);
* ``best-of`` and ``merge``: the three members at once, then the judge, which can start only after them.

So a question is 4 rows and 12 calls; ``concurrency`` C bounds the rows worked on at once (``evaluate``'s option:
a FIFO semaphore of rows, each row's members in parallel inside it).

Four runs, in this order, each checked (every row right; every call counted at the emulator):

1. plain: the same calls as raw streamed ``httpx`` requests on one event loop and one client made beforehand (each
   read to its end, so its connections are reused), rows in ``evaluate``'s order under an ``asyncio.Semaphore(C)``,
   each row's members at once and then its judge: the same dependency waves, 12 calls a question;
2. ``evaluate``, live, ``Settings(cache="on")`` into an empty cache: records every call. The members of single,
   vote, best-of and merge send the same requests (same model, prompt and seed), so a row that starts after another
   strategy of its question recorded a member takes that member from the cache: it may send a few calls fewer than
   12 a question, how many depends on timing;
3. plain again, sending exactly what run 2 sent;
4. ``evaluate`` again from the cache (``cache="replay"``: a miss would be an error), which must send nothing.

Two ideals for run 2:

* concurrency-limited, measured: the mean wall of runs 1 and 3 (one before, one after, so a machine that slows
  down or speeds up during the runs weighs on both sides alike). It pays what any client pays on this machine
  (loopback HTTP, the emulator's own time under the same load), so run 2 / that mean is what fusion_magic adds:
  the first figure (target <= 1.10).
* scripted: every row's scripted duration (a member call M = ttft + (chunks - 1) / tps, a judge call J likewise:
  single and vote M, best-of and merge M + J; a row's members that came from the cache cost nothing, so M only where
  one was sent, J only where the judge was), packed in ``evaluate``'s order onto C slots, each row starting the
  moment a slot is free: the makespan of that schedule. It leaves out every cost of a real request, so it is
  stricter; printed for every run, beside the bound no schedule can beat, max(total row time / C, longest row).

Run 4's wall is the second figure, with the CPU time this process spent (what bounds it: no call waits on the
network) and, for scale, the time merely to read and parse every cache entry once. The emulator's CPU time in each
run is printed too. These machines are shared and noisy: compare within one run. Missed targets are reported, not
failed; only an error exits non-zero.

    .venv/bin/python bench/bench_eval_scale.py [--questions 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import math
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

ANSWER = "42"
CHUNK_CHARS = 8
JUDGE_CHUNK_CHARS = 32  # the verdict is JSON of ~150 characters: a few chunks, as a member's reply is
MEMBERS = ("bench/s1", "bench/s2", "bench/s3")
JUDGE = "bench/judge"
STRATEGIES = ("single", "vote", "best-of", "merge")  # single: the first member alone
CALLS_PER_QUESTION = 1 + 3 + 4 + 4
RATIO_TARGET = 1.10
CACHE_TARGET_S = 10.0
# best-of reads ``winner``, merge ``best`` and ``answer``; neither needs more (without an analysis: noted).
VERDICT = json.dumps({"reasoning": "Every answer says 42; A puts it most plainly.", "winner": "A", "best": "A",
                      "answer": f"Six times seven.\nFinal answer: {ANSWER}"})


def reply_text(chunks: int) -> str:
    """A member's reply: ``chunks`` chunks of CHUNK_CHARS characters (at least enough for the final line) that ends
    with the scored final line."""
    tail = f"\nFinal answer: {ANSWER}"
    size = math.ceil(max(chunks * CHUNK_CHARS, len(tail)) / CHUNK_CHARS) * CHUNK_CHARS
    return ("Working it out. " * (size // 16 + 1))[: size - len(tail)] + tail


def chunks_of(text: str, size: int = CHUNK_CHARS) -> int:
    return math.ceil(len(text) / size)


def serve(conn: Connection, ttft: float, judge_ttft: float, tps: float, chunks: int) -> None:
    """The emulator's process: script the pool and the judge, send the environment back, then answer "count" with
    the number of requests served so far until told anything else (or the parent went away)."""
    from fusion_magic.testing import Emulator, ModelScript

    with Emulator() as emu:
        for name in MEMBERS:
            emu.script(name, ModelScript(reply=reply_text(chunks), ttft_s=ttft, tokens_per_s=tps,
                                         chunk_chars=CHUNK_CHARS))
        emu.script(JUDGE, ModelScript(reply=VERDICT, ttft_s=judge_ttft, tokens_per_s=tps,
                                      chunk_chars=JUDGE_CHUNK_CHARS))
        conn.send({**emu.env(), **emu.test_keys()})
        with contextlib.suppress(EOFError):
            while conn.recv() == "count":
                conn.send(len(emu.requests))


# What one row sent, in evaluate's order: (question's prompt, member models sent, whether its judge was sent).
Sends = tuple[str, tuple[str, ...], bool]


@dataclass(frozen=True)
class Timed:
    """One run: wall and CPU seconds, the calls its rows hold, the requests the emulator served, what each row
    sent (``Sends``, in ``evaluate``'s order)."""

    wall: float
    cpu: float
    emulator_cpu: float
    calls: int
    sent: int
    rows: tuple[Sends, ...] = ()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fifo_makespan(durations: list[float], slots: int) -> float:
    """When the last of ``durations`` ends if each starts, in order, the moment one of ``slots`` is free."""
    free = [0.0] * slots
    end = 0.0
    for d in durations:
        start = heapq.heappop(free)
        end = max(end, start + d)
        heapq.heappush(free, start + d)
    return end


class Plain:
    """The measured reference: raw streamed chat requests over one ``httpx`` client on one event loop."""

    def __init__(self) -> None:
        self.url = os.environ["OPENROUTER_BASE_URL"] + "/chat/completions"
        self.headers = {"authorization": f"Bearer {os.environ['OPENROUTER_API_KEY']}"}
        self.loop = asyncio.new_event_loop()
        # As many connections as the rows may hold open at once: the pool must not be the bottleneck.
        self.client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def run(self, rows: tuple[Sends, ...], concurrency: int) -> float:
        """Seconds to send ``rows``, at most ``concurrency`` at a time in order, each row's members at once, then
        its judge; every response read to its end."""
        return self.loop.run_until_complete(self._run(rows, concurrency))

    async def _run(self, rows: tuple[Sends, ...], concurrency: int) -> float:
        semaphore = asyncio.Semaphore(concurrency)

        async def call(model: str, prompt: str, expect: str) -> str:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
                    "stream_options": {"include_usage": True}}
            async with self.client.stream("POST", self.url, json=body, headers=self.headers) as response:
                response.raise_for_status()
                text = "".join([line async for line in response.aiter_lines()])
            if "[DONE]" not in text or expect not in text:
                raise RuntimeError(f"the plain request to {model} ended without {expect!r}")
            return text

        async def row(prompt: str, members: tuple[str, ...], judged: bool) -> None:
            async with semaphore:
                await asyncio.gather(*(call(model, prompt, ANSWER) for model in members))
                if judged:
                    await call(JUDGE, f"## Answers\n{prompt}\n\n## Task\nPick the best answer.", "winner")

        t0 = time.perf_counter()
        # Tasks made in order and a FIFO semaphore: rows start in evaluate's order, as its own do.
        await asyncio.gather(*(row(*sends) for sends in rows))
        return time.perf_counter() - t0


def bench(ns: argparse.Namespace, conn: Connection, emulator: int,
          cache_dir: Path) -> tuple[Timed, Timed, Timed, Timed]:
    import pandas as pd

    import fusion_magic
    from fusion_magic.calls.settings import Settings
    from fusion_magic.evaluation import CLOSED_INSTRUCTION, load_questions

    def served() -> int:
        conn.send("count")
        count: int = conn.recv()
        return count

    def questions(n: int, prefix: str = "") -> pd.DataFrame:
        return pd.DataFrame({
            "id": [f"q{i + 1}" for i in range(n)],
            "question": [f"{prefix}Question {i + 1}: what is six times seven?" for i in range(n)],
            "reference": [ANSWER] * n,
        })

    pool = [f"openrouter:{name}" for name in MEMBERS]
    strategies = [f"single:{pool[0]}", *STRATEGIES[1:]]
    data = questions(ns.questions)

    def evaluate(frame: pd.DataFrame, cache: str, expect_sent: int | None) -> Timed:
        settings = Settings(max_retries=0, cache=cache, cache_dir=str(cache_dir))
        before = served()
        t0, c0, e0 = time.perf_counter(), time.process_time(), cpu_seconds(emulator)
        result = fusion_magic.evaluate(frame, settings=settings, pool=pool, judge=f"openrouter:{JUDGE}",
                                       strategies=strategies, concurrency=ns.concurrency)
        wall, cpu, emulated = time.perf_counter() - t0, time.process_time() - c0, cpu_seconds(emulator) - e0
        sent = served() - before
        rows = len(frame) * len(strategies)
        calls = sum(len(row.calls) for row in result.entries)
        wrong = [row for row in result.entries if not row.correct]
        if len(result.entries) != rows or calls != CALLS_PER_QUESTION * len(frame) or wrong:
            detail = "; ".join(sorted({f"{row.strategy}: {row.error or row.why or row.answer[:40]}" for row in wrong}))
            raise RuntimeError(f"cache {cache}: {len(result.entries)} rows of {rows}, {calls} calls of "
                               f"{CALLS_PER_QUESTION * len(frame)}, {len(wrong)} not right ({detail[:300]})")
        # A call the cache answered says so in its cost source; every other one was sent.
        order = {key: i for i, key in enumerate((q, s) for q in frame["id"] for s in strategies)}
        sends = []
        for row in sorted(result.entries, key=lambda row: order[row.question.id, row.strategy]):
            live = [r for r in row.calls if not r.cost_source.startswith("cache")]
            members = tuple(r.model.removeprefix("openrouter:") for r in live if r.role != "judge")
            sends.append((row.question.prompt(CLOSED_INSTRUCTION), members, any(r.role == "judge" for r in live)))
        counted = sum(len(members) + judged for _, members, judged in sends)
        if sent != counted or (expect_sent is not None and sent != expect_sent):
            raise RuntimeError(f"cache {cache}: the emulator served {sent} requests, the rows sent {counted}"
                               + ("" if expect_sent is None else f", expected {expect_sent}"))
        return Timed(wall, cpu, emulated, calls, sent, tuple(sends))

    plain = Plain()

    def reference(rows: tuple[Sends, ...]) -> Timed:
        before = served()
        c0, e0 = time.process_time(), cpu_seconds(emulator)
        wall = plain.run(rows, ns.concurrency)
        expected = sum(len(members) + judged for _, members, judged in rows)
        timed = Timed(wall, time.process_time() - c0, cpu_seconds(emulator) - e0, expected, served() - before)
        if timed.sent != expected:
            raise RuntimeError(f"the plain run sent {timed.sent} requests of {expected}")
        return timed

    every = tuple((question.prompt(CLOSED_INSTRUCTION), members, judged) for question in load_questions(data)
                  for members, judged in ((MEMBERS[:1], False), (MEMBERS, False), (MEMBERS, True), (MEMBERS, True)))
    try:
        # Warm-up, on questions of their own (nothing of it in the cache the runs read): imports, the engine
        # thread, connections, the run log; and the plain client's connections.
        warm = evaluate(questions(2, "Warm-up. "), "off", 2 * CALLS_PER_QUESTION)
        plain.run(warm.rows, ns.concurrency)
        first = reference(every)
        live = evaluate(data, "on", None)
        second = reference(live.rows)
        cached = evaluate(data, "replay", 0)
    finally:
        plain.close()
    return first, live, second, cached


def read_entries(cache_dir: Path) -> tuple[int, float]:
    """(entries, seconds) to read and parse every cache entry once: the least any lookup of them all costs."""
    t0 = time.perf_counter()
    paths = list(cache_dir.rglob("*.json"))
    for path in paths:
        json.loads(path.read_text(encoding="utf-8"))
    return len(paths), time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16, help="rows answered at once (evaluate's option)")
    parser.add_argument("--ttft", type=float, default=0.15, help="each member call's first chunk after this many s")
    parser.add_argument("--judge-ttft", type=float, default=0.15, help="the judge's first chunk after this many s")
    parser.add_argument("--tps", type=float, default=50.0, help="chunks per second after the first")
    parser.add_argument("--chunks", type=int, default=4, help="chunks per member reply (at least 3: the final line)")
    ns = parser.parse_args()
    if min(ns.questions, ns.concurrency, ns.chunks) < 1 or min(ns.ttft, ns.judge_ttft) < 0 or ns.tps <= 0:
        parser.error("--questions, --concurrency, --chunks and --tps must be positive, the ttfts not negative")
    ctx = mp.get_context("spawn")
    ours_end, theirs_end = ctx.Pipe()
    child = ctx.Process(target=serve, args=(theirs_end, ns.ttft, ns.judge_ttft, ns.tps, ns.chunks), daemon=True)
    child.start()
    theirs_end.close()
    here = Path.cwd()
    try:
        if not ours_end.poll(120):
            raise RuntimeError("the emulator process did not start within 120 s")
        os.environ.update(ours_end.recv())
        with tempfile.TemporaryDirectory(prefix="bench_eval_scale_") as tmp:
            os.chdir(tmp)
            # The run log is written as a user's would be, into this folder (then removed), not the user's own.
            os.environ["FUSION_MAGIC_RUN_LOG"] = str(Path(tmp) / "fusion_runs.sqlite")
            cache_dir = Path(tmp) / "cache"
            try:
                assert child.pid is not None
                first, live, second, cached = bench(ns, ours_end, child.pid, cache_dir)
                entries, reading = read_entries(cache_dir)
            finally:
                os.chdir(here)
    finally:
        with contextlib.suppress(OSError):
            ours_end.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()
    report(ns, (first, live, second, cached), entries, reading)
    return 0


def report(ns: argparse.Namespace, runs: tuple[Timed, Timed, Timed, Timed], entries: int, reading: float) -> None:
    first, live, second, cached = runs
    plain = (first.wall + second.wall) / 2
    member_chunks = chunks_of(reply_text(ns.chunks))
    judge_chunks = chunks_of(VERDICT, JUDGE_CHUNK_CHARS)
    member_s = ns.ttft + (member_chunks - 1) / ns.tps
    judge_s = ns.judge_ttft + (judge_chunks - 1) / ns.tps
    durations = [member_s * bool(members) + judge_s * judged for _, members, judged in live.rows]
    scripted = fifo_makespan(durations, ns.concurrency)
    bound = max(sum(durations) / ns.concurrency, max(durations))
    every = [member_s, member_s, member_s + judge_s, member_s + judge_s] * ns.questions
    print(f"{ns.questions} questions x 4 strategies ({', '.join(STRATEGIES)}) = {4 * ns.questions} rows, "
          f"{live.calls} calls, concurrency {ns.concurrency} rows; emulator in another process")
    print(f"scripted: a member call {ns.ttft:g} s + {member_chunks - 1} chunks at {ns.tps:g}/s = {member_s:.3f} s, "
          f"the judge {ns.judge_ttft:g} s + {judge_chunks - 1} chunks = {judge_s:.3f} s; a row: single and vote "
          f"{member_s:.3f} s, best-of and merge {member_s + judge_s:.3f} s")
    print(f"the live run sent {live.sent} of its {live.calls} calls (the rest: members another strategy of the same "
          f"question had just recorded); the plain runs sent {first.sent} before it and the same {second.sent} "
          "after it")
    print(f"scripted schedule of what was sent (rows in evaluate's order onto {ns.concurrency} slots) = "
          f"{scripted:.3f} s (all {live.calls} sent: {fifo_makespan(every, ns.concurrency):.3f} s); no schedule "
          f"beats max(row time / C, longest row) = {bound:.3f} s")
    print(f"{'run':40} {'wall_s':>7} {'cpu_s':>6} {'emulator cpu_s':>14} {'sent':>5} {'ms cpu/call':>11} "
          f"{'/scripted':>9}")
    for name, timed in (("plain httpx, the same waves", first), ("evaluate, live, cache on (recording)", live),
                        ("plain httpx, what evaluate sent", second), ("evaluate from the cache (replay)", cached)):
        print(f"{name:40} {timed.wall:7.2f} {timed.cpu:6.2f} {timed.emulator_cpu:14.2f} {timed.sent:5d} "
              f"{timed.cpu / timed.calls * 1000:11.2f} {timed.wall / scripted:9.3f}")
    print(f"from the cache: {cached.cpu:.2f} s of this process's CPU in {cached.wall:.2f} s of wall "
          f"({cached.cpu / cached.wall:.0%}): bound by this process's CPU, {cached.wall / cached.calls * 1000:.2f} ms "
          f"a call (request key, entry read, run-log row, events, scoring), no network; merely reading and parsing "
          f"the {entries} entries once takes {reading:.2f} s (calls that ask the same share an entry)")
    print(f"cache / live wall = {cached.wall / live.wall:.3f}")
    print(f"evaluate {ns.questions} x 4: wall / scripted schedule = {live.wall / scripted:.3f}  (plain httpx: "
          f"{plain / scripted:.3f}; record)")
    print(f"evaluate {ns.questions} x 4: wall / concurrency-limited ideal = {live.wall / plain:.3f}  "
          f"(ideal: plain httpx with the same waves, the mean of {first.wall:.2f} s before and {second.wall:.2f} s "
          f"after; target <= {RATIO_TARGET:.2f})")
    print(f"evaluate {ns.questions} x 4 from the cache: {cached.wall:.2f} s  (target < {CACHE_TARGET_S:g} s)")


if __name__ == "__main__":
    raise SystemExit(main())
