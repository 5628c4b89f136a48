"""What does our machinery cost? CPU per streamed token against a bare httpx-sse loop, and ``%load_ext`` time.

1. CPU per streamed token. An emulator in a separate process (so its CPU is not counted) streams one model's
   long Markdown reply (``--tokens`` chunks of ``--chunk-chars`` characters at ``--tps`` chunks/s; the emulator
   counts one chunk as one output token). This process's CPU time (``time.process_time()``: every thread, the
   engine loop's and the view's included) is measured for:

   * bare (the ideal): one ``httpx.AsyncClient`` (made before timing) and ``httpx_sse.aconnect_sse`` POSTing the
     same OpenAI-style streamed chat-completions request, ``aiter_sse`` over every event to the end of the
     stream, each event's JSON decoded and its delta appended: the least a client that shows the text must do;
   * ours: a ``%%fuse -p openrouter:MODEL -j vote`` cell in a real IPython ``InteractiveShell`` with
     ``%load_ext fusion_magic`` and ``%config FusionMagics.view = 'widgets'``: our HTTP client, the stream
     parsed into events, the widget view fed by them (its Markdown rendered as it streams), the run log (SQLite)
     written, the result and its report. One member and the model-free vote (no judge call is sent), so every
     streamed token is the member's; the cell's fixed costs (planning, the view's widgets, the final report)
     are counted too, spread over the tokens.

   After a warm-up of each, the two alternate (``--reps`` pairs, order swapped every rep). We print CPU
   microseconds per token for each, ours split by thread (where the platform has per-thread clocks), and the
   median of the per-rep ratios ours/bare (1.00 is no overhead; target <= 1.5).

2. ``%load_ext fusion_magic`` over a bare IPython start. Fresh ``python -c`` processes, alternating: one makes
   an ``InteractiveShell``, the other makes one and runs ``%load_ext fusion_magic``. Whole-process wall time
   of each (``--starts`` pairs, after a warm-up of each); the median of the differences (target <= +0.1 s).
   The children's CPU time is printed beside it: on a busy machine it moves less than wall time does.

These machines are shared and noisy: compare side by side in one run. Missed targets are reported, not failed:
only an error exits non-zero.

    .venv/bin/python bench/bench_overhead.py [--tokens 3000] [--tps 1000] [--reps 7] [--starts 10]
    .venv/bin/python bench/bench_overhead.py --reps 3 --starts 5 --before 636c31e   # and an earlier commit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import baseline  # bench/baseline.py: --before

MODEL = "bench/long"
PROMPT = "Write at length about streams."
CPU_TARGET = 1.5
LOAD_TARGET_S = 0.1

_BARE_START = "from IPython.core.interactiveshell import InteractiveShell; shell = InteractiveShell.instance()"
_LOAD_START = _BARE_START + "; shell.run_line_magic('load_ext', 'fusion_magic')"


_SENTENCES = (
    "Streams carry tokens one by one, and every token is parsed, shown and logged on its way.",
    "A reader sees the answer grow while the model is still writing it.",
    "The parser keeps only what it needs: the text, the usage and the reason the stream ended.",
    "Nothing here is *slow* on its own, but a cost paid per token adds up over a long reply.",
)
_LIST = "- one event per chunk\n- one `delta` per event\n- one render per interval\n"


def reply_text(tokens: int, chunk_chars: int) -> str:
    """A reply of exactly ``tokens`` chunks of ``chunk_chars`` characters, shaped like a model's Markdown:
    paragraphs of sentences and, every third block, a short list (the view renders Markdown as it streams)."""
    blocks, size, n = [], 0, 0
    while size < tokens * chunk_chars:
        block = " ".join(_SENTENCES[(n + i) % len(_SENTENCES)] for i in range(3)) + "\n\n"
        if n % 3 == 2:
            block += _LIST + "\n"
        blocks.append(block)
        size += len(block)
        n += 1
    return "".join(blocks)[: tokens * chunk_chars]


def serve(conn: Connection, reply: str, tps: float, chunk_chars: int) -> None:
    """The emulator's process: script the model, send the environment back, serve until told to stop."""
    from fusion_magic.testing import Emulator, ModelScript

    with Emulator() as emu:
        emu.script(MODEL, ModelScript(reply=reply, tokens_per_s=tps, chunk_chars=chunk_chars))
        conn.send({**emu.env(), **emu.test_keys()})
        # Anything from the parent means stop; so does EOF (the parent went away).
        with contextlib.suppress(EOFError):
            conn.recv()


class Bare:
    """The ideal: one streamed chat request read with httpx-sse, on one client and one event loop."""

    def __init__(self, reply: str, tokens: int) -> None:
        import httpx

        self.reply = reply
        self.url = os.environ["OPENROUTER_BASE_URL"] + "/chat/completions"
        self.headers = {"authorization": f"Bearer {os.environ['OPENROUTER_API_KEY']}"}
        self.body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
                     "stream_options": {"include_usage": True}, "max_tokens": tokens}
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(timeout=60)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def run(self) -> float:
        """CPU seconds of this process to read the whole stream."""
        t0 = time.process_time()
        text = self.loop.run_until_complete(self._read())
        cpu = time.process_time() - t0
        if text != self.reply:
            raise RuntimeError(f"the bare stream read {len(text)} characters, expected {len(self.reply)}")
        return cpu

    async def _read(self) -> str:
        from httpx_sse import aconnect_sse

        parts = []
        async with aconnect_sse(self.client, "POST", self.url, json=self.body, headers=self.headers) as source:
            source.response.raise_for_status()
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    continue  # the terminator: nothing follows it, and the loop ends with the stream
                for choice in json.loads(event.data).get("choices") or ():
                    parts.append((choice.get("delta") or {}).get("content") or "")
        return "".join(parts)


class Ours:
    """A ``%%fuse`` cell with the widget view, in a real InteractiveShell."""

    def __init__(self, reply: str, tokens: int) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.reply, self.tokens = reply, tokens
        self.shell = InteractiveShell.instance()
        self.shell.run_line_magic("load_ext", "fusion_magic")
        self.shell.run_line_magic("config", "FusionMagics.view = 'widgets'")
        # The provider's default output cap would cut a long reply short: ask for the whole of it, as bare does.
        self.line = f"-p openrouter:{MODEL} -j vote --max-tokens {tokens} -o r"
        self.sink = io.StringIO()  # the shell has no frontend: the view's final update prints the report
        self.by_thread: defaultdict[str, float] = defaultdict(float)  # CPU seconds per thread name, summed over runs

    def run(self) -> float:
        """CPU seconds of this process (every thread) for the whole cell."""
        self.sink.seek(0)
        self.sink.truncate()
        with contextlib.redirect_stdout(self.sink):
            before = thread_cpu()
            t0 = time.process_time()
            self.shell.run_cell_magic("fuse", self.line, PROMPT)
            cpu = time.process_time() - t0
            after = thread_cpu()
        for key, seconds in after.items():  # a thread started during the cell counts from zero
            self.by_thread[key[1]] += seconds - before.get(key, 0.0)
        result = self.shell.user_ns["r"]
        (response,) = result.responses
        if response.text != self.reply or response.output_tokens != self.tokens or result.judge_responses:
            raise RuntimeError(f"the cell's member answered {len(response.text or '')} characters and "
                               f"{response.output_tokens} tokens (expected {len(self.reply)} and {self.tokens}), "
                               f"error: {response.error!r}")
        return cpu


def thread_cpu() -> dict[tuple[int, str], float]:
    """CPU seconds so far of each live thread of this process, by (id, name), where the platform can say."""
    seconds: dict[tuple[int, str], float] = {}
    if not hasattr(time, "pthread_getcpuclockid"):
        return seconds
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        # A thread may end between enumerate() and the clock read: it is left out (its CPU is in the total).
        with contextlib.suppress(OSError, OverflowError):
            seconds[thread.ident, thread.name] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return seconds


def cpu_per_token(ns: argparse.Namespace) -> tuple[list[tuple[float, float]], dict[str, float]]:
    """(ours, bare) CPU seconds per rep, after a warm-up of each; and ours' CPU seconds by thread, summed."""
    reply = reply_text(ns.tokens, ns.chunk_chars)
    ctx = mp.get_context("spawn")
    ours_end, theirs_end = ctx.Pipe()
    child = ctx.Process(target=serve, args=(theirs_end, reply, ns.tps, ns.chunk_chars), daemon=True)
    child.start()
    here = Path.cwd()
    try:
        if not ours_end.poll(120):
            raise RuntimeError("the emulator process did not start within 120 s")
        os.environ.update(ours_end.recv())
        with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
            os.chdir(tmp)
            # The run log is written as a user's would be, into this folder (then removed), not the user's own.
            os.environ["FUSION_MAGIC_RUN_LOG"] = str(Path(tmp) / "fusion_runs.sqlite")
            try:
                ours, bare = Ours(reply, ns.tokens), Bare(reply, ns.tokens)
                try:
                    ours.run()  # warm-up: imports, the engine thread, the connection, the run log
                    bare.run()
                    ours.by_thread.clear()
                    rows = []
                    for rep in range(ns.reps):
                        if rep % 2 == 0:
                            a = ours.run()
                            b = bare.run()
                        else:
                            b = bare.run()
                            a = ours.run()
                        rows.append((a, b))
                finally:
                    bare.close()
            finally:
                os.chdir(here)
    finally:
        ours_end.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()
    return rows, ours.by_thread


@dataclass(frozen=True)
class Start:
    """One fresh process: its wall time, start to exit, and its CPU time (user + system)."""

    wall: float
    cpu: float


def start(code: str, env: dict[str, str]) -> Start:
    """Run one fresh ``python -c code`` process to its exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # -P: the current folder is not put ahead of PYTHONPATH, so with --before the "before" side imports that
    # commit's fusion_magic even when this runs from the repository root.
    subprocess.run([sys.executable, "-P", "-c", code], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   env=env, timeout=120)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Start(wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def load_ext_starts(ns: argparse.Namespace, env: dict[str, str]) -> list[tuple[Start, Start]]:
    """(with %load_ext, bare) per pair, after one warm-up of each (the OS file cache)."""
    start(_LOAD_START, env)
    start(_BARE_START, env)
    rows = []
    for rep in range(ns.starts):
        if rep % 2 == 0:
            a = start(_LOAD_START, env)
            b = start(_BARE_START, env)
        else:
            b = start(_BARE_START, env)
            a = start(_LOAD_START, env)
        rows.append((a, b))
    return rows


def measure(ns: argparse.Namespace) -> list[dict[str, Any]]:
    """One run of both figures, as rows (``baseline.side_by_side`` carries them across processes): a "cpu" row per
    rep (ours and bare, CPU seconds), one "threads" row (ours' CPU seconds per token by thread), and a "start" row
    per pair of fresh processes (wall and CPU seconds, with %load_ext and without)."""
    # The fresh IPython starts get the environment this process was given, without the emulator's.
    env = dict(os.environ)
    cpu, by_thread = cpu_per_token(ns)
    rows: list[dict[str, Any]] = [{"kind": "cpu", "ours": ours, "bare": bare} for ours, bare in cpu]
    rows.append({"kind": "threads", "us": {name: seconds / (ns.reps * ns.tokens) * 1e6
                                           for name, seconds in by_thread.items()}})
    rows += [{"kind": "start", "ext_wall": ext.wall, "bare_wall": plain.wall, "ext_cpu": ext.cpu,
              "bare_cpu": plain.cpu} for ext, plain in load_ext_starts(ns, env)]
    return rows


def medians(rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """The two figures of ``rows``: median ours/bare CPU per token, median seconds %load_ext adds."""
    return (statistics.median(r["ours"] / r["bare"] for r in rows if r["kind"] == "cpu"),
            statistics.median(r["ext_wall"] - r["bare_wall"] for r in rows if r["kind"] == "start"))


def report(rows: Sequence[dict[str, Any]], tokens: int) -> None:
    """Both tables of ``rows``, with their medians (the summary lines are main's)."""
    cpu = [r for r in rows if r["kind"] == "cpu"]
    print(f"{'rep':>3} {'ours_ms':>8} {'bare_ms':>8} {'ours_us/tok':>11} {'bare_us/tok':>11} {'ours/bare':>9}")
    for i, r in enumerate(cpu, 1):
        print(f"{i:>3} {r['ours'] * 1e3:8.1f} {r['bare'] * 1e3:8.1f} {r['ours'] / tokens * 1e6:11.1f} "
              f"{r['bare'] / tokens * 1e6:11.1f} {r['ours'] / r['bare']:9.3f}")
    ours_us = statistics.median(r["ours"] for r in cpu) / tokens * 1e6
    bare_us = statistics.median(r["bare"] for r in cpu) / tokens * 1e6
    print(f"CPU per streamed token (median): ours {ours_us:.1f} us, bare httpx-sse {bare_us:.1f} us")
    threads = [r["us"] for r in rows if r["kind"] == "threads"]
    per_thread = {name: statistics.mean(t.get(name, 0.0) for t in threads) for t in threads for name in t}
    shown = sorted(((name, us) for name, us in per_thread.items() if us >= 0.5), key=lambda item: -item[1])
    if shown:
        print("ours by thread (mean per token): " + ", ".join(f"{name} {us:.1f} us" for name, us in shown))
    starts = [r for r in rows if r["kind"] == "start"]
    print(f"{'pair':>4} {'load_s':>7} {'bare_s':>7} {'added_s':>8} {'added_cpu_s':>11}")
    for i, r in enumerate(starts, 1):
        print(f"{i:>4} {r['ext_wall']:7.3f} {r['bare_wall']:7.3f} {r['ext_wall'] - r['bare_wall']:+8.3f} "
              f"{r['ext_cpu'] - r['bare_cpu']:+11.3f}")
    # CPU time moves less than wall time when the machine is busy: a check on the wall figure, not the figure.
    added_cpu = statistics.median(r["ext_cpu"] - r["bare_cpu"] for r in starts)
    print(f"(median CPU time added by %load_ext, user + system: {added_cpu:+.3f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=3000, help="chunks (tokens) in the streamed reply")
    parser.add_argument("--chunk-chars", type=int, default=4, help="characters per chunk")
    parser.add_argument("--tps", type=float, default=1000.0, help="chunks per second the emulator streams")
    parser.add_argument("--reps", type=int, default=7, help="pairs of streamed runs, ours and bare")
    parser.add_argument("--starts", type=int, default=10, help="pairs of fresh IPython starts, with and without")
    parser.add_argument("--before", metavar="REV", help="also run this benchmark against fusion_magic at REV (a git "
                        "commit), alternating with this checkout's, and print both")
    parser.add_argument("--rounds", type=int, default=2, help="with --before: runs per side")
    parser.add_argument("--rows-json", action="store_true", help=argparse.SUPPRESS)  # for baseline.side_by_side
    ns = parser.parse_args()
    if min(ns.tokens, ns.chunk_chars, ns.reps, ns.starts, ns.rounds) < 1 or ns.tps <= 0:
        parser.error("--tokens, --chunk-chars, --tps, --reps, --starts and --rounds must be positive")
    if ns.rows_json:
        print(baseline.rows_line(measure(ns)))
        return 0

    print(f"one emulated member (another process) streams {ns.tokens} tokens of {ns.chunk_chars} characters at "
          f"{ns.tps:g}/s; this process's CPU time, {ns.reps} reps alternating, after a warm-up")
    print("(ours = a %%fuse -j vote cell with the widget view in an InteractiveShell; bare = httpx-sse "
          "aconnect_sse/aiter_sse, each event's JSON decoded)")
    print(f"then {ns.starts} pairs of fresh processes, alternating: python -c 'InteractiveShell.instance()' with and "
          "without %load_ext fusion_magic (whole-process wall time)")
    if ns.before:
        args = [f"--{name.replace('_', '-')}={getattr(ns, name)}" for name in ("tokens", "chunk_chars", "tps", "reps",
                                                                              "starts")]
        sides = baseline.side_by_side(Path(__file__), args, ns.before, rounds=ns.rounds)
        rows = sides["after"]
        for side, label in (("before", f"before ({baseline.commit(ns.before)})"), ("after", "after (this checkout)")):
            print(f"\n{label}, {ns.rounds} runs alternating with the other side:")
            report(sides[side], ns.tokens)
        cpu_before, load_before = medians(sides["before"])
        print(f"before {baseline.commit(ns.before)}: CPU per streamed token, ours/bare httpx-sse = {cpu_before:.3f}; "
              f"%load_ext fusion_magic over bare IPython start = {load_before:+.3f} s")
    else:
        rows = measure(ns)
        print()
        report(rows, ns.tokens)
    cpu_ratio, added = medians(rows)
    print(f"CPU per streamed token, ours/bare httpx-sse (median) = {cpu_ratio:.3f}  (target <= {CPU_TARGET:.1f})")
    print(f"%load_ext fusion_magic over bare IPython start (median) = {added:+.3f} s  "
          f"(target <= +{LOAD_TARGET_S:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
