"""Does the async provider cost generation speed? ``LocalProvider.stream()`` versus llama-cpp-python.

Both sides run the same Llama object, prompt string, max_tokens, seed, stop strings and sampling
settings at temperature 0 (so both generate the same tokens); repetitions alternate which goes first.
The provider side is timed from calling ``stream()`` to its ``Finished`` event, consumed by an asyncio
loop, so the worker thread, the queue hand-off and the loop's wake-ups are all counted. Tokens are
counted the same way on both sides. The figure is the ratio of median tokens/s, provider/direct:
1.00 is ideal.

    .venv/bin/python bench/bench_local.py [--reps 7] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from fusion_magic.providers import local
from fusion_magic.providers.base import ChatRequest, Finished, Message, TextDelta, Usage


def request(max_tokens: int) -> ChatRequest:
    # A prefilled count: the model continues it greedily to max_tokens, so every run is equally long.
    prefill = ", ".join(str(i) for i in range(1, 31)) + ","
    return ChatRequest(
        local.DEFAULT_MODEL,
        (Message("user", "Count from 1 to 500, separated by commas."), Message("assistant", prefill)),
        temperature=0.0, seed=1, max_tokens=max_tokens,
    )


async def via_provider(req: ChatRequest) -> tuple[float, float, int, str]:
    """(seconds to first text, seconds in all, output tokens, text)."""
    start = time.perf_counter()
    first, tokens, text = 0.0, 0, []
    async for event in local.LocalProvider().stream(req):
        if isinstance(event, TextDelta):
            first = first or time.perf_counter() - start
            text.append(event.text)
        elif isinstance(event, Usage):
            tokens = event.output_tokens or 0
        elif isinstance(event, Finished):
            return first, time.perf_counter() - start, tokens, "".join(text)
    raise RuntimeError("the stream ended without Finished")


def direct(req: ChatRequest) -> tuple[float, float, int, str]:
    """The same generation written the way a llama-cpp-python user would: prompt string in, chunks out."""
    job = local._job_for(req)
    llm = local._load(req.model).llm
    start = time.perf_counter()
    n_prompt = len(llm.tokenize(job.prompt.encode("utf-8"), add_bos=True, special=True))
    first, text = 0.0, []
    for chunk in llm.create_completion(job.prompt, **local._completion_kwargs(job, job.max_tokens)):
        if chunk["choices"][0]["text"]:
            first = first or time.perf_counter() - start
            text.append(chunk["choices"][0]["text"])
    elapsed = time.perf_counter() - start
    return first, elapsed, local._output_tokens(llm, n_prompt, job.max_tokens), "".join(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=128)
    ns = parser.parse_args()
    req = request(ns.max_tokens)

    start = time.perf_counter()
    path = local.preload()
    print(f"model {path} loaded in {time.perf_counter() - start:.2f} s; {local._threads()} threads; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")

    rates: dict[str, list[float]] = {"provider": [], "direct": []}
    firsts: dict[str, list[float]] = {"provider": [], "direct": []}
    with asyncio.Runner() as runner:
        runner.run(via_provider(req))  # warm-up: page the weights in, fill the prompt cache
        direct(req)
        print(f"{'rep':>3}  {'side':<8} {'tokens':>6} {'first (ms)':>10} {'tok/s':>7}")
        for rep in range(ns.reps):
            order = ("provider", "direct") if rep % 2 == 0 else ("direct", "provider")
            texts = {}
            for side in order:
                first, elapsed, tokens, text = runner.run(via_provider(req)) if side == "provider" else direct(req)
                texts[side] = text
                rates[side].append(tokens / elapsed)
                firsts[side].append(first * 1000)
                print(f"{rep + 1:>3}  {side:<8} {tokens:>6} {first * 1000:>10.1f} {tokens / elapsed:>7.1f}")
            if texts["provider"].lstrip() != texts["direct"].lstrip():
                print("     note: the two sides generated different text this repetition")

    med = {side: statistics.median(values) for side, values in rates.items()}
    print()
    print(f"median tokens/s  provider {med['provider']:.1f}   direct {med['direct']:.1f}")
    print(f"median first text (ms)  provider {statistics.median(firsts['provider']):.1f}   "
          f"direct {statistics.median(firsts['direct']):.1f}")
    print(f"ratio provider/direct = {med['provider'] / med['direct']:.3f}  (ideal 1.00)")


if __name__ == "__main__":
    main()
