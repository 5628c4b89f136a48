"""Does running the local model in a worker process, behind %%fuse, cost generation speed?

Two sides, each a process with the same model loaded the same way (plain CPU buffers, same threads):

- ``%%fuse``: a ``%%fuse -p local:gemma3-270m -j vote`` cell in a real InteractiveShell, so the worker
  process, the pipe, the engine loop, the vote and the text view are all counted;
- ``direct``: llama-cpp-python called directly in a plain child process (``--direct``), the same prompt
  string, max_tokens, stop strings and sampling settings.

At temperature 0 both generate the same tokens. Repetitions alternate which side goes first. Figures:
median tokens/s of the member call (call start to last token) and of the whole cell, each over direct
(1.00 is ideal); worker start and model load times, separately. Then, for the record, direct speed with
llama.cpp's extra buffer types on (its default; the AMX crash path) and off (what fusion_magic uses).

    .venv/bin/python bench/bench_local.py [--reps 7] [--max-tokens 128]
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
# answers (about 40 tokens at temperature 0), so prompt processing does not dominate.
PROMPT = "Describe, in detail and at length, how a steam engine works, step by step."


def job_message(max_tokens: int) -> dict[str, Any]:
    """The worker's job for the cell's member call, as %%fuse builds it (minus the seat's seed, moot at 0)."""
    from fusion_magic.providers.base import ChatRequest, Message
    from fusion_magic.providers.chat.local.provider import job_for

    job = job_for(ChatRequest("gemma3-270m", (Message("user", PROMPT),), max_tokens=max_tokens, temperature=0.0))
    return job.to_wire()


# ---- the direct side: a plain process with llama-cpp-python ------------------------------------------


def direct_child(extra_bufts: bool) -> None:
    """Serve timed generations over stdin/stdout: one JSON job in, one JSON result out."""
    started = time.perf_counter()
    from fusion_magic.providers.chat.local import native
    from fusion_magic.providers.chat.local.files import bundled_gguf

    imported = time.perf_counter()
    os.environ["FUSION_MAGIC_LOCAL_EXTRA_BUFTS"] = "1" if extra_bufts else "0"
    loaded = native.load(str(bundled_gguf()))
    llm = loaded.llm
    print(json.dumps({"import_s": imported - started, "load_s": time.perf_counter() - imported,
                      "buffers": loaded.buffers}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        tokens = llm.tokenize(job["prompt"].encode("utf-8"), add_bos=True, special=False)
        kwargs = native.completion_kwargs(max_tokens=job["max_tokens"], temperature=job["temperature"],
                                          seed=job["seed"], stop=tuple(job["stop"]))
        start = time.perf_counter()
        first, text = 0.0, []
        for chunk in llm.create_completion(tokens, **kwargs):
            if chunk["choices"][0]["text"]:
                first = first or time.perf_counter() - start
                text.append(chunk["choices"][0]["text"])
        elapsed = time.perf_counter() - start
        n = native.output_tokens(llm, len(tokens), job["max_tokens"])
        print(json.dumps({"tokens": n, "elapsed": elapsed, "first": first, "text": "".join(text)}), flush=True)


class Direct:
    def __init__(self, extra_bufts: bool) -> None:
        flag = ["--extra-bufts"] if extra_bufts else []
        self.proc = subprocess.Popen([sys.executable, __file__, "--direct", *flag], stdin=subprocess.PIPE,
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
    shell.run_cell_magic("fuse", f"-p local:gemma3-270m -j vote --max-tokens {max_tokens} --temperature 0 -o r",
                         PROMPT)
    wall = time.perf_counter() - start
    result = shell.user_ns["r"]
    member = result.responses[0]
    if member.status != "ok":
        raise RuntimeError(f"the member failed: {member.error}")
    return {"tokens": member.output_tokens, "elapsed": member.latency_s, "first": member.ttft_s or 0.0,
            "wall": wall, "text": member.text}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--extra-bufts", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.direct:
        direct_child(ns.extra_bufts)
        return

    import io
    from contextlib import redirect_stderr, redirect_stdout

    from IPython.core.interactiveshell import InteractiveShell

    from fusion_magic.providers.chat import local

    job = job_message(ns.max_tokens)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; prompt {PROMPT!r}, "
          f"max_tokens {ns.max_tokens}, temperature 0")

    start = time.perf_counter()
    local.preload()
    worker = local.current_worker(local.DEFAULT_MODEL)
    assert worker is not None and worker.info is not None
    print(f"worker: ready {time.perf_counter() - start:.2f} s after start "
          f"(python + llama_cpp import {worker.info['import_s']:.2f} s, model load {worker.info['load_s']:.2f} s); "
          f"buffers {worker.info['buffers']}; {worker.info['threads']} threads")
    direct = Direct(extra_bufts=False)
    print(f"direct:  llama_cpp import {direct.info['import_s']:.2f} s, model load {direct.info['load_s']:.2f} s; "
          f"buffers {direct.info['buffers']}")

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fusion_magic")
    shell.run_line_magic("config", "FusionMagics.view = 'text'")
    quiet = io.StringIO

    rates: dict[str, list[float]] = {"%%fuse call": [], "%%fuse cell": [], "direct": []}
    # Tokens after the first over the time after the first: generation speed without prompt processing.
    decode: dict[str, list[float]] = {"fuse": [], "direct": []}
    with redirect_stdout(quiet()), redirect_stderr(quiet()):
        fuse_cell(shell, ns.max_tokens)  # warm-up: page the weights in, fill each side's prompt cache
    direct.run(job)
    print(f"{'rep':>3}  {'side':<8} {'tokens':>6} {'first (ms)':>10} {'tok/s call':>10} {'tok/s cell':>10} "
          f"{'decode tok/s':>12}")
    for rep in range(ns.reps):
        order = ("fuse", "direct") if rep % 2 == 0 else ("direct", "fuse")
        texts = {}
        for side in order:
            if side == "fuse":
                with redirect_stdout(quiet()), redirect_stderr(quiet()):
                    got = fuse_cell(shell, ns.max_tokens)
                rates["%%fuse call"].append(got["tokens"] / got["elapsed"])
                rates["%%fuse cell"].append(got["tokens"] / got["wall"])
                cell = f"{got['tokens'] / got['wall']:>10.1f}"
            else:
                got = direct.run(job)
                rates["direct"].append(got["tokens"] / got["elapsed"])
                cell = f"{'':>10}"
            texts[side] = got["text"].strip()
            decode[side].append((got["tokens"] - 1) / (got["elapsed"] - got["first"]))
            print(f"{rep + 1:>3}  {side:<8} {got['tokens']:>6} {got['first'] * 1000:>10.1f} "
                  f"{got['tokens'] / got['elapsed']:>10.1f} {cell} {decode[side][-1]:>12.1f}")
        if texts["fuse"] != texts["direct"]:
            print("     note: the two sides generated different text this repetition")
    direct.close()

    med = {side: statistics.median(values) for side, values in rates.items()}
    print()
    print("median tokens/s  " + "   ".join(f"{side} {value:.1f}" for side, value in med.items()))
    print(f"ratio %%fuse call/direct = {med['%%fuse call'] / med['direct']:.3f}   "
          f"ratio %%fuse cell/direct = {med['%%fuse cell'] / med['direct']:.3f}   (ideal 1.00, floor 0.90)")
    fuse_decode, direct_decode = statistics.median(decode["fuse"]), statistics.median(decode["direct"])
    print(f"median decode tokens/s  %%fuse {fuse_decode:.1f}   direct {direct_decode:.1f}   "
          f"ratio {fuse_decode / direct_decode:.3f}")

    print()
    print("llama.cpp's extra buffer types, direct, same prompt, alternating:")
    sides = {"off (fusion_magic)": Direct(extra_bufts=False), "on (llama.cpp default)": Direct(extra_bufts=True)}
    extra: dict[str, list[float]] = {name: [] for name in sides}
    for d in sides.values():
        d.run(job)  # warm-up
    for rep in range(ns.reps):
        for name in (list(sides) if rep % 2 == 0 else list(reversed(sides))):
            got = sides[name].run(job)
            extra[name].append(got["tokens"] / got["elapsed"])
    for name, d in sides.items():
        print(f"  extra buffers {name:<24} buffers {d.info['buffers']!s:<34} "
              f"median {statistics.median(extra[name]):.1f} tok/s")
        d.close()
    off, on = (statistics.median(v) for v in extra.values())
    print(f"  ratio off/on = {off / on:.3f}")


if __name__ == "__main__":
    main()
