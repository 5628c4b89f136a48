"""How fast, and in how little memory, does a finished Veo clip come down?

An emulator in a separate process (so its copy of the clip is not counted here) serves one scripted Veo model
whose clip is ``--mb`` MB of bytes, delivered as Gemini does: a key-bearing file URI that 302s to a storage
host. Each rep times two downloads of the same bytes to the same disk, in alternating order:

* ours:  ``VeoProvider.download`` (the key to the API host only, the redirect followed by hand, 1 MiB chunks
  through a ``.part`` file); submit and poll are not timed;
* plain: ``httpx.AsyncClient().stream("GET", storage_url)`` + ``aiter_bytes()`` written to a file (the ideal).

It prints MB/s of each, the throughput ratio ours/plain (target >= 0.8) and this process's peak RSS growth
during our download, sampled from /proc/self/statm every 10 ms (target < 50 MB). Missed targets are
reported, not failed: only an error exits non-zero.

    .venv/bin/python bench/bench_download.py [--mb 200] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

MB = 1_000_000
MODEL = "veo-bench-download"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def serve(conn: Connection, size: int) -> None:
    """The emulator's process: script the clip, send the environment back, serve until told to stop."""
    from fusion_magic.testing import Emulator, VideoScript

    with Emulator() as emu:
        emu.script(MODEL, VideoScript(polls=0, delivery="redirect", clip=os.urandom(size)))
        conn.send({**emu.env(), **emu.test_keys()})
        # Anything from the parent means stop; so does EOF (the parent went away).
        with contextlib.suppress(EOFError):
            conn.recv()


class RssPeak:
    """This process's resident set size, sampled every 10 ms in a thread; ``growth`` is peak - start."""

    def __init__(self) -> None:
        self.start = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss())

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


async def timed(fn: Callable[[], Awaitable[int]], size: int) -> tuple[float, int]:
    """Seconds taken and RSS growth; checks that all ``size`` bytes arrived."""
    with RssPeak() as mem:
        t0 = time.perf_counter()
        written = await fn()
        elapsed = time.perf_counter() - t0
    if written != size:
        raise RuntimeError(f"downloaded {written} bytes, expected {size}")
    return elapsed, mem.growth


async def bench(size: int, reps: int, workdir: Path) -> list[tuple[float, int, float, int]]:
    from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
    from fusion_magic.providers.video.base import VideoRequest
    from fusion_magic.providers.video.veo import VeoProvider

    endpoint = resolve_endpoint(BUILTIN["gemini"])
    rows: list[tuple[float, int, float, int]] = []
    async with httpx.AsyncClient() as client:
        provider = VeoProvider(endpoint, client)

        async def ours() -> tuple[float, int]:
            status = await provider.poll(await provider.submit(VideoRequest(MODEL, "bench")))
            if status.state != "succeeded":
                raise RuntimeError(f"job ended {status.state}: {status.error or status.reason}")
            dest = workdir / "ours.mp4"
            try:
                return await timed(lambda: provider.download(status.clips[0], dest), size)
            finally:
                dest.unlink(missing_ok=True)

        async def plain() -> tuple[float, int]:
            status = await provider.poll(await provider.submit(VideoRequest(MODEL, "bench")))
            uri = status.clips[0].uri
            assert uri is not None
            hop = await client.get(uri, headers={"x-goog-api-key": endpoint.api_key or ""})
            storage_url = hop.headers["location"]  # untimed: the ideal starts at the storage host
            dest = workdir / "plain.mp4"

            async def fetch() -> int:
                written = 0
                async with httpx.AsyncClient() as bare, bare.stream("GET", storage_url) as response:
                    response.raise_for_status()
                    with open(dest, "wb") as out:
                        async for chunk in response.aiter_bytes():
                            out.write(chunk)
                            written += len(chunk)
                return written

            try:
                return await timed(fetch, size)
            finally:
                dest.unlink(missing_ok=True)

        await ours()  # warm-up: imports, connections, page cache
        await plain()
        for rep in range(reps):
            if rep % 2 == 0:
                a, b = await ours(), await plain()
            else:
                b, a = await plain(), await ours()
            rows.append((*a, *b))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="clip size in MB (10^6 bytes)")
    parser.add_argument("--reps", type=int, default=3)
    ns = parser.parse_args()
    size = ns.mb * MB
    ctx = mp.get_context("spawn")
    ours_end, theirs_end = ctx.Pipe()
    child = ctx.Process(target=serve, args=(theirs_end, size), daemon=True)
    child.start()
    try:
        if not ours_end.poll(120):
            raise RuntimeError("the emulator process did not start within 120 s")
        os.environ.update(ours_end.recv())
        with tempfile.TemporaryDirectory(prefix="bench_download_") as tmp:
            rows = asyncio.run(bench(size, ns.reps, Path(tmp)))
    finally:
        ours_end.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()

    print(f"{ns.mb} MB clip, emulator in another process (redirect delivery), {ns.reps} reps, alternating order")
    print(f"{'rep':>3} {'ours_s':>7} {'ours_MB/s':>9} {'ours_rss_MB':>11} {'plain_s':>7} {'plain_MB/s':>10} "
          f"{'plain_rss_MB':>12} {'ratio':>6}")
    for i, (ours_s, ours_mem, plain_s, plain_mem) in enumerate(rows, 1):
        print(f"{i:>3} {ours_s:7.3f} {ns.mb / ours_s:9.1f} {ours_mem / MB:11.1f} {plain_s:7.3f} "
              f"{ns.mb / plain_s:10.1f} {plain_mem / MB:12.1f} {plain_s / ours_s:6.3f}")
    ratio = statistics.median(plain_s / ours_s for ours_s, _, plain_s, _ in rows)
    growth = max(ours_mem for _, ours_mem, _, _ in rows) / MB
    print(f"throughput ours/plain (median) = {ratio:.3f}  (target >= 0.8)")
    print(f"peak RSS growth during our download = {growth:.1f} MB = {growth / ns.mb:.3f} of the clip "
          f"(target < 50 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
