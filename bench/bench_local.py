"""Does running the local model in worker processes, behind %%fuse, cost generation speed, and do three
local seats reach what the cores allow?

1. One seat. Two sides, each a process with the same model loaded the same way (same buffers, same threads):

   - ``%%fuse``: a ``%%fuse -p local:gemma3-270m -j vote`` cell in a real InteractiveShell, so the worker
     process, the pipe, the engine loop, the vote and the text view are all counted;
   - ``direct``: llama-cpp-python called directly in a plain child process (``--direct``), the same prompt
     string, max_tokens, stop strings and sampling settings.

   At temperature 0 both generate the same tokens. Repetitions alternate which side goes first. Figures:
   median tokens/s of the member call (call start to last token) and of the whole cell, each over direct
   (1.00 is ideal); worker start and model load times, separately.

2. Three seats (the default offline pool: three seats of local:gemma3-270m, the vote) against three direct
   calls one after another in one process with every core (its prompt cache serves calls two and three).
   Each repetition asks a new question, so each side processes a new prompt as a notebook does; temperature
   0, so both sides generate the same tokens. The seats run in three workers sharing the cores
   (``cpu.allot_threads``: on 2 cores, 1 thread each). What the cores allow: the same three calls, each alone
   in its own process at the seats' thread count (each processes the prompt, as each worker must), packed
   perfectly onto the cores: max(longest call, total thread-seconds / cores). Figures: wall of the cell over
   the sequential calls (below 1.00 is a gain), over what the cores allow (1.00 is ideal), and, for the
   record, the same cell with ``FUSION_MAGIC_LOCAL_WORKERS=1`` (one worker, seats take turns: the old way).

3. For the record, direct speed with llama.cpp's extra buffer types off and on, alternating, one thread each:
   decode (a prefilled count to exactly 64 tokens) and prompt processing (a new 300-token prompt), in tokens
   per second and per CPU-second (with one thread, the work done, whatever else the machine runs). The worker
   turns them on unless the CPU has AMX (``cpu.choose_extra_buffers``; the figures behind that in
   ``native.py``). ``--q4-0`` repeats it on the bundled model requantized to Q4_0, whose matrices llama.cpp
   repacks (in the bundled Q4_K_M file only 13 MiB of 235 are).

    .venv/bin/python bench/bench_local.py [--reps 7] [--seat-reps 21] [--max-tokens 128] [--q4-0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import IO, Any

# The few-shot prompt teaches the base model to answer briefly; this question draws one of its longer
# answers (about 20 tokens at temperature 0), so prompt processing does not dominate.
PROMPT = "Describe, in detail and at length, how a steam engine works, step by step."
LOCAL = "local:gemma3-270m"
SEATS = 3
# Tokens per decode call in the extra-buffer comparison: enough for a steady rate, at one thread in a few seconds.
BUFFER_DECODE_TOKENS = 64
# One question per repetition of the three-seat comparison: each cell is a new prompt, as in a notebook.
QUESTIONS = (
    "Why is the sky blue?", "How does a steam engine work?", "What causes the seasons on Earth?",
    "Why does ice float on water?", "How do airplanes stay in the air?", "What is photosynthesis?",
    "How do vaccines train the immune system?", "Why do cats purr?", "What is a black hole?",
)


def job_message(max_tokens: int, prompt: str = PROMPT, seed: int = 1) -> dict[str, Any]:
    """The worker's job for a seat's call, as %%fuse builds it (the seat's seed is moot at temperature 0)."""
    from fusion_magic.providers.base import ChatRequest, Message
    from fusion_magic.providers.chat.local.provider import job_for

    job = job_for(ChatRequest("gemma3-270m", (Message("user", prompt),), max_tokens=max_tokens, temperature=0.0,
                              seed=seed))
    return job.to_wire()


# ---- the direct side: a plain process with llama-cpp-python ------------------------------------------


def direct_child(extra_bufts: str, threads: int | None, model: str | None) -> None:
    """Serve timed generations over stdin/stdout: one JSON job in, one JSON result out. ``extra_bufts`` is
    on, off, or auto (the worker's own rule for this CPU); ``model`` a GGUF path (default: the bundled one)."""
    started = time.perf_counter()
    from fusion_magic.providers.chat.local import cpu, native
    from fusion_magic.providers.chat.local.files import bundled_gguf

    imported = time.perf_counter()
    if extra_bufts == "auto":
        choice = cpu.choose_extra_buffers(cpu.read_cpuinfo())
    else:
        choice = cpu.BufferChoice(extra_bufts == "on", f"--extra-bufts {extra_bufts}")
    loaded = native.load(model or str(bundled_gguf()), n_threads=threads, choice=choice)
    llm = loaded.llm
    print(json.dumps({"import_s": imported - started, "load_s": time.perf_counter() - imported,
                      "buffers": loaded.buffers, "threads": llm.n_threads}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        tokens = llm.tokenize(job["prompt"].encode("utf-8"), add_bos=True, special=False)
        kwargs = native.completion_kwargs(max_tokens=job["max_tokens"], temperature=job["temperature"],
                                          seed=job["seed"], stop=tuple(job["stop"]))
        start, cpu_start = time.perf_counter(), time.process_time()
        first, text = 0.0, []
        for chunk in llm.create_completion(tokens, **kwargs):
            if chunk["choices"][0]["text"]:
                first = first or time.perf_counter() - start
                text.append(chunk["choices"][0]["text"])
        elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        n = native.output_tokens(llm, len(tokens), job["max_tokens"])
        print(json.dumps({"tokens": n, "prompt_tokens": len(tokens), "elapsed": elapsed, "cpu_s": cpu_s,
                          "first": first, "text": "".join(text)}), flush=True)


class Direct:
    """A ``--direct`` child process: llama-cpp-python with the model loaded, no fusion_magic in the way."""

    def __init__(self, extra_bufts: str = "auto", threads: int | None = None, model: str | None = None) -> None:
        flags = ["--extra-bufts", extra_bufts] + (["--threads", str(threads)] if threads else [])
        flags += ["--model", model] if model else []
        self.proc = subprocess.Popen([sys.executable, __file__, "--direct", *flags], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        out: IO[str] = self.proc.stdout  # type: ignore[assignment]
        line = out.readline()
        if not line:
            raise RuntimeError("the direct child died")
        return dict(json.loads(line))

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


# ---- the %%fuse side ---------------------------------------------------------------------------------


def fuse_cell(shell: Any, max_tokens: int) -> dict[str, Any]:
    start = time.perf_counter()
    shell.run_cell_magic("fuse", f"-p {LOCAL} -j vote --max-tokens {max_tokens} --temperature 0 -o r", PROMPT)
    wall = time.perf_counter() - start
    result = shell.user_ns["r"]
    member = result.responses[0]
    if member.status != "ok":
        raise RuntimeError(f"the member failed: {member.error}")
    return {"tokens": member.output_tokens, "elapsed": member.latency_s, "first": member.ttft_s or 0.0,
            "wall": wall, "text": member.text}


def seats_cell(shell: Any, question: str, max_tokens: int) -> tuple[float, list[int]]:
    """Wall time of a ``%%fuse`` cell with the default offline pool (three local seats, the vote), and each
    seat's output tokens."""
    pool = ",".join([LOCAL] * SEATS)
    start = time.perf_counter()
    shell.run_cell_magic("fuse", f"-p {pool} -j vote --max-tokens {max_tokens} --temperature 0 -o r", question)
    wall = time.perf_counter() - start
    result = shell.user_ns["r"]
    failed = [m.error for m in result.responses if m.status != "ok"]
    if failed:
        raise RuntimeError(f"a seat failed: {failed[0]}")
    return wall, [int(m.output_tokens or 0) for m in result.responses]


def one_seat_section(shell: Any, direct: Direct, job: dict[str, Any], reps: int, max_tokens: int) -> None:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    quiet = io.StringIO
    rates: dict[str, list[float]] = {"%%fuse call": [], "%%fuse cell": [], "direct": []}
    # Tokens after the first over the time after the first: generation speed without prompt processing.
    decode: dict[str, list[float]] = {"fuse": [], "direct": []}
    with redirect_stdout(quiet()), redirect_stderr(quiet()):
        fuse_cell(shell, max_tokens)  # warm-up: page the weights in, fill each side's prompt cache
    direct.run(job)
    print(f"{'rep':>3}  {'side':<8} {'tokens':>6} {'first (ms)':>10} {'tok/s call':>10} {'tok/s cell':>10} "
          f"{'decode tok/s':>12}")
    for rep in range(reps):
        order = ("fuse", "direct") if rep % 2 == 0 else ("direct", "fuse")
        texts = {}
        for side in order:
            if side == "fuse":
                with redirect_stdout(quiet()), redirect_stderr(quiet()):
                    got = fuse_cell(shell, max_tokens)
                rates["%%fuse call"].append(got["tokens"] / got["elapsed"])
                rates["%%fuse cell"].append(got["tokens"] / got["wall"])
                cell = f"{got['tokens'] / got['wall']:>10.1f}"
            else:
                got = direct.run(job)
                rates["direct"].append(got["tokens"] / got["elapsed"])
                cell = f"{'':>10}"
            texts[side] = got["text"].strip()
            decode[side].append((got["tokens"] - 1) / max(got["elapsed"] - got["first"], 1e-9))
            print(f"{rep + 1:>3}  {side:<8} {got['tokens']:>6} {got['first'] * 1000:>10.1f} "
                  f"{got['tokens'] / got['elapsed']:>10.1f} {cell} {decode[side][-1]:>12.1f}")
        if texts["fuse"] != texts["direct"]:
            print("     note: the two sides generated different text this repetition")

    med = {side: statistics.median(values) for side, values in rates.items()}
    print()
    print("median tokens/s  " + "   ".join(f"{side} {value:.1f}" for side, value in med.items()))
    print(f"ratio %%fuse call/direct = {med['%%fuse call'] / med['direct']:.3f}   "
          f"ratio %%fuse cell/direct = {med['%%fuse cell'] / med['direct']:.3f}   (ideal 1.00, floor 0.90)")
    fuse_decode, direct_decode = statistics.median(decode["fuse"]), statistics.median(decode["direct"])
    print(f"median decode tokens/s  %%fuse {fuse_decode:.1f}   direct {direct_decode:.1f}   "
          f"ratio {fuse_decode / direct_decode:.3f}")


def seats_section(shell: Any, direct: Direct, reps: int, max_tokens: int) -> None:
    """Three local seats in one cell against three sequential direct calls, and what the cores allow."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from fusion_magic.providers.chat.local import cpu

    quiet = io.StringIO
    cores = cpu.usable_cores()
    per_seat = cpu.allot_threads(cores, SEATS, cpu.thread_setting())
    # Each alone in its own process at the seats' thread count, like the three workers.
    solo = [Direct("auto", threads=per_seat) for _ in range(SEATS)]
    print(f"{cores} cores; {SEATS} seats in {SEATS} workers, {per_seat} thread(s) per seat while all generate "
          f"(cpu.allot_threads); the sequential calls use {direct.info['threads']} threads")

    def one_worker_cell(question: str) -> tuple[float, list[int]]:
        os.environ[cpu.WORKERS_ENV] = "1"  # read at each submit: the seats take turns on the oldest worker
        try:
            return seats_cell(shell, question, max_tokens)
        finally:
            del os.environ[cpu.WORKERS_ENV]

    walls: dict[str, list[float]] = {"seats": [], "one worker": [], "sequential": [], "cores allow": []}
    with redirect_stdout(quiet()), redirect_stderr(quiet()):
        seats_cell(shell, "Warm up.", max_tokens)  # every worker has run once
    for d in solo:
        d.run(job_message(max_tokens, "Warm up."))
    print(f"{'rep':>3}  {'side':<12} {'wall (s)':>8}  tokens per call")
    for rep in range(reps):
        question = f"{QUESTIONS[rep % len(QUESTIONS)]}"
        jobs = [job_message(max_tokens, question, seed=i + 1) for i in range(SEATS)]
        sides = ["seats", "sequential", "cores allow", "one worker"]
        # Rotated, so that no side always runs first (or after the same side) on a busy machine.
        for side in sides[rep % len(sides):] + sides[:rep % len(sides)]:
            if side in ("seats", "one worker"):
                with redirect_stdout(quiet()), redirect_stderr(quiet()):
                    wall, tokens = (seats_cell(shell, question, max_tokens) if side == "seats"
                                    else one_worker_cell(question))
            elif side == "sequential":
                start = time.perf_counter()
                got = [direct.run(job) for job in jobs]
                wall, tokens = time.perf_counter() - start, [g["tokens"] for g in got]
            else:
                elapsed, tokens = [], []
                for d, job in zip(solo, jobs, strict=True):
                    start = time.perf_counter()  # timed as the sequential calls are: from here, pipe included
                    tokens.append(d.run(job)["tokens"])
                    elapsed.append(time.perf_counter() - start)
                wall = max(max(elapsed), per_seat * sum(elapsed) / cores)
            walls[side].append(wall)
            print(f"{rep + 1:>3}  {side:<12} {wall:>8.3f}  {tokens}")
    for d in solo:
        d.close()

    # Ratios within each repetition, then their median: the sides of one repetition ran minutes closer together
    # than those of different ones, which matters on a shared machine.
    def ratio(side: str, over: str) -> float:
        return statistics.median(a / b for a, b in zip(walls[side], walls[over], strict=True))

    print()
    print("median wall (s): " + "   ".join(f"{side} {statistics.median(v):.3f}" for side, v in walls.items()))
    print(f"three local seats / three sequential direct calls = {ratio('seats', 'sequential'):.3f}   "
          f"({cores} cores, {per_seat} thread(s) per seat; below 1.00 is a gain)")
    print(f"what the cores allow / three sequential direct calls = {ratio('cores allow', 'sequential'):.3f}   "
          f"(three calls at {per_seat} thread(s) each, packed onto {cores} cores: the bound)")
    print(f"three local seats / what the cores allow = {ratio('seats', 'cores allow'):.3f}   (ideal 1.00)")
    print(f"three local seats in one worker (FUSION_MAGIC_LOCAL_WORKERS=1) / three sequential direct calls = "
          f"{ratio('one worker', 'sequential'):.3f}   (for the record: the seats took turns before)")


def counting_job(max_tokens: int) -> dict[str, Any]:
    """A prefilled count the model continues to exactly ``max_tokens`` at temperature 0: the same work each time."""
    from fusion_magic.providers.base import ChatRequest, Message
    from fusion_magic.providers.chat.local.provider import job_for

    prefill = ", ".join(str(i) for i in range(1, 61)) + ","
    request = ChatRequest("gemma3-270m", (Message("user", "Count from 1 to 500, separated by commas."),
                                          Message("assistant", prefill)), max_tokens=max_tokens, temperature=0.0)
    return job_for(request).to_wire()


def prompt_job(rep: int) -> dict[str, Any]:
    """A new prompt of about 300 tokens and one token out: prompt processing, nothing served from the cache
    (it differs from every other prompt from its second token on)."""
    words = " ".join(f"item{rep}-{i}" for i in range(60))
    return {"model": "gemma3-270m", "prompt": f"{rep}: {words}", "stop": [], "max_tokens": 1, "temperature": 0.0,
            "seed": 0, "schema": None}


def buffers_section(reps: int, max_tokens: int, model: str | None = None, label: str = "the bundled model",
                    tag: str = "") -> None:
    """Extra buffer types off against on, one thread each (as the seats run; and with one thread the CPU time
    is the work done, whatever else the machine is running): decode and prompt processing."""
    from fusion_magic.providers.chat.local import cpu

    choice = cpu.choose_extra_buffers(cpu.read_cpuinfo())
    print(f"llama.cpp's extra buffer types, direct, {label}, 1 thread, alternating "
          f"(the worker's rule here: {choice.note()}):")
    sides = {"off": Direct("off", threads=1, model=model), "on (llama.cpp default)": Direct("on", threads=1,
                                                                                            model=model)}
    decode_job = counting_job(min(max_tokens, BUFFER_DECODE_TOKENS))
    rates: dict[str, dict[str, list[float]]] = {name: {"decode": [], "decode cpu": [], "prompt": [],
                                                       "prompt cpu": []} for name in sides}
    for d in sides.values():
        d.run(decode_job)  # warm-up
    for rep in range(reps):
        for name in (list(sides) if rep % 2 == 0 else list(reversed(sides))):
            got = sides[name].run(decode_job)
            rates[name]["decode"].append(got["tokens"] / got["elapsed"])
            rates[name]["decode cpu"].append(got["tokens"] / got["cpu_s"])
            got = sides[name].run(prompt_job(rep))
            rates[name]["prompt"].append(got["prompt_tokens"] / got["elapsed"])
            rates[name]["prompt cpu"].append(got["prompt_tokens"] / got["cpu_s"])
    for name, d in sides.items():
        med = {kind: statistics.median(values) for kind, values in rates[name].items()}
        print(f"  extra buffers {name:<24} buffers {d.info['buffers']!s:<34} decode {med['decode']:.1f} tok/s "
              f"({med['decode cpu']:.1f} per CPU-second), prompt {med['prompt']:.0f} tok/s "
              f"({med['prompt cpu']:.0f} per CPU-second)")
        d.close()

    def ratio(kind: str) -> float:
        off, on = rates.values()
        return statistics.median(a / b for a, b in zip(off[kind], on[kind], strict=True))

    print(f"  {tag}ratio off/on = {ratio('decode'):.3f} (decode tok/s)   prompt tok/s {ratio('prompt'):.3f}   "
          f"per CPU-second: decode {ratio('decode cpu'):.3f}, prompt {ratio('prompt cpu'):.3f}   "
          "(below 1.00: on is faster)")


def requantized_q4_0(directory: str) -> str:
    """The bundled model requantized to Q4_0, whose matrices llama.cpp repacks (the bundled Q4_K_M file has
    few it can): what a user's ``local:/path/model.gguf`` of the commonest kind gets from extra buffers."""
    import ctypes

    import llama_cpp.llama_cpp as llama_capi

    from fusion_magic.providers.chat.local.files import bundled_gguf

    out = os.path.join(directory, "gemma3-270m-q4_0.gguf")
    params = llama_capi.llama_model_quantize_default_params()
    params.ftype = llama_capi.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True  # speed is all that is measured; the quality lost to requantizing is moot
    # The quantizer prints a line per tensor to fd 2, past Python's sys.stderr: out of the report.
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            code = llama_capi.llama_model_quantize(str(bundled_gguf()).encode(), out.encode(), ctypes.byref(params))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if code != 0:
        raise RuntimeError("llama.cpp could not requantize the bundled model")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seat-reps", type=int, default=None,
                        help="repetitions of the three-seat comparison (default: 3 x --reps; its calls are short)")
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--extra-bufts", choices=("on", "off", "auto"), default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--q4-0", action="store_true",
                        help="also compare extra buffers on the bundled model requantized to Q4_0 (about 30 s)")
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.direct:
        direct_child(ns.extra_bufts, ns.threads, ns.model)
        return

    from IPython.core.interactiveshell import InteractiveShell

    from fusion_magic.providers.chat import local

    job = job_message(ns.max_tokens)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; prompt {PROMPT!r}, "
          f"max_tokens {ns.max_tokens}, temperature 0")

    start = time.perf_counter()
    local.preload(count=SEATS)  # every seat's worker, so no figure counts a model load
    worker = local.current_worker(local.DEFAULT_MODEL)
    assert worker is not None and worker.info is not None
    print(f"workers: {len(local.workers(local.DEFAULT_MODEL))} ready {time.perf_counter() - start:.2f} s after start "
          f"(the first: python + llama_cpp import {worker.info['import_s']:.2f} s, "
          f"model load {worker.info['load_s']:.2f} s); {worker.info['threads']} threads; {worker.note}")
    direct = Direct("auto")
    print(f"direct:  llama_cpp import {direct.info['import_s']:.2f} s, model load {direct.info['load_s']:.2f} s; "
          f"buffers {direct.info['buffers']}; {direct.info['threads']} threads")

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fusion_magic")
    shell.run_line_magic("config", "FusionMagics.view = 'text'")

    print()
    print("one seat:")
    one_seat_section(shell, direct, job, ns.reps, ns.max_tokens)
    print()
    print("three seats:")
    seats_section(shell, direct, ns.seat_reps or 3 * ns.reps, ns.max_tokens)
    direct.close()
    print()
    buffers_section(ns.reps, ns.max_tokens)
    if ns.q4_0:
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            print()
            buffers_section(ns.reps, ns.max_tokens, requantized_q4_0(directory),
                            "the bundled model requantized to Q4_0", tag="Q4_0 ")


if __name__ == "__main__":
    main()
