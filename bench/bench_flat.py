"""Does a kernel stay flat? Hundreds of ``%%fuse`` cells in one IPython shell, and what they leave behind.

One process holds a real ``InteractiveShell`` with ``%load_ext fusion_magic`` and the widget view (as a notebook
kernel would; stdout goes to /dev/null, where a frontend would show the reports). An emulator in a separate
process (so its request log and server threads are not counted here) serves the models. The shell runs:

1. a warm-up cell (imports, the engine thread, the first connections, the run log);
2. one cell with a ``--big`` member pool (32 by default) and a judge: the most connections the kernel opens;
3. ``--cells`` ordinary cells in a row (3 members and a judge, short fast replies).

After the warm-up, after the big cell, halfway through and after the last cell we record: resident memory
(VmRSS, /proc/self/status), open sockets (links in /proc/self/fd that are ``socket:``; those that are TCP
connections to the provider's port, from /proc/net/tcp), every open file descriptor, asyncio tasks still pending on
fusion_magic's engine loop (``core.runner``'s one loop thread, counted on that loop), live Python threads, child
processes (``/proc/*/stat`` whose parent is us: the emulator's and multiprocessing's resource tracker are expected)
and ipywidgets still registered (a widget nobody closed stays in ipywidgets' module-level registry for the life of
the kernel). Before each record: ``gc.collect()`` and a short settle (``SETTLE_S``) so a view's clock thread that
was told to stop has ended. IPython's own display publisher (a terminal shell's, not a kernel's) keeps every
display output in its history; that is counted and dropped after each cell, as a kernel keeps none.

The ideal is flat: after the last cell, the same tasks, threads and child processes as after the warm-up
(growth 0); sockets at most the warm-up's plus what the connection pool may keep idle between cells
(``core.runner.HTTP_LIMITS.max_keepalive_connections``); resident memory from the halfway cell to the last
growing at most ``RSS_TARGET_MB`` (printed per cell too; the run log, sqlite and the allocator's arenas settle in
the first half, so the second half shows what every cell keeps); and every cell answered. Missed targets are
reported, not failed: only an error exits non-zero. ``--close-widgets`` is a diagnosis: it closes the widgets each
cell made, after it, to show how much of the growth the widgets left open account for.

    .venv/bin/python bench/bench_flat.py [--cells 200] [--big 32] [--close-widgets]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing as mp
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlsplit

MEMBERS = 3
RSS_TARGET_MB = 5.0
SETTLE_S = 0.3
JUDGE = "bench/judge"
JUDGE_REPLY = '{"reasoning": "Answer A is the most complete.", "winner": "A"}'


def member(i: int) -> str:
    return f"bench/m{i + 1:02d}"


def serve(conn: Connection, big: int) -> None:
    """The emulator's process: script the members and the judge, send the environment back, serve until told
    to stop (anything on the pipe, or EOF when the parent went away)."""
    from fusion_magic.testing import Emulator, ModelScript

    with Emulator() as emu:
        for i in range(max(big, MEMBERS)):
            # Short and fast: a first chunk after 10-40 ms, then four chunks at 400 chunks/s.
            emu.script(member(i), ModelScript(reply=f"Member {i + 1} says: the answer is {i + 1}.",
                                              ttft_s=0.01 * (1 + i % 4), tokens_per_s=400, chunk_chars=10))
        emu.script(JUDGE, ModelScript(reply=JUDGE_REPLY, ttft_s=0.01, tokens_per_s=400, chunk_chars=16))
        conn.send({**emu.env(), **emu.test_keys()})
        with contextlib.suppress(EOFError):
            conn.recv()


@dataclass(frozen=True)
class Snapshot:
    """What the process holds at one point."""

    label: str
    rss_kb: int
    sockets: int
    connections: int
    fds: int
    tasks: int
    threads: int
    children: tuple[str, ...]
    widgets: int
    thread_names: tuple[str, ...]


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> tuple[int, int]:
    """(open sockets, every open file descriptor) of this process."""
    sockets = fds = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            target = os.readlink(f"/proc/self/fd/{fd}")
            fds += 1
            sockets += target.startswith("socket:")
    return sockets, fds


def provider_connections(port: int) -> int:
    """Our TCP connections to the (emulated) provider's port: the HTTP connections open now."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                # rem_address is HEX_IP:HEX_PORT; field 9 is the socket's inode.
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    count += 1
    return count


def child_processes() -> tuple[str, ...]:
    """The command lines (cut short) of the processes whose parent is this one: the emulator's, multiprocessing's
    resource tracker, and any worker a run left behind."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            # The command name (field 2) is in parentheses and may hold spaces: the fields after it are plain.
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(command.split(" -c ", 1)[-1].strip()[:60])  # what a python -c child runs
    return tuple(sorted(found))


def pending_tasks() -> int:
    """Tasks not yet done on fusion_magic's engine loop, counted on that loop (not counting the count)."""
    from fusion_magic.core.runner import get_runner

    async def count() -> int:
        me = asyncio.current_task()
        return sum(1 for task in asyncio.all_tasks() if task is not me)

    return asyncio.run_coroutine_threadsafe(count(), get_runner().loop).result(timeout=10)


def live_widgets() -> int:
    from ipywidgets.widgets import widget

    return len(widget._instances)


def snapshot(label: str, port: int) -> Snapshot:
    gc.collect()
    time.sleep(SETTLE_S)
    sockets, fds = open_fds()
    return Snapshot(label, rss_kb(), sockets, provider_connections(port), fds, pending_tasks(),
                    threading.active_count(), child_processes(), live_widgets(),
                    tuple(sorted(t.name for t in threading.enumerate())))


@dataclass
class Run:
    """What the cells left: the snapshots, (RSS KB, sockets) after every ordinary cell, the most sockets open
    during the large cell, the display outputs IPython's history kept, and what went wrong in a cell."""

    snaps: list[Snapshot]
    per_cell: list[tuple[int, int]]
    big_sockets: int
    history_outputs: int
    failures: list[str]


def bench(ns: argparse.Namespace, port: int) -> Run:
    """Run the cells in one shell and record what they leave."""
    from IPython.core.interactiveshell import InteractiveShell
    from ipywidgets.widgets import widget

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fusion_magic")
    shell.run_line_magic("config", "FusionMagics.view = 'widgets'")
    small = f"-p {','.join(f'openrouter:{member(i)}' for i in range(MEMBERS))} -j openrouter:{JUDGE} -m best-of -o r"
    large = f"-p {','.join(f'openrouter:{member(i)}' for i in range(ns.big))} -j openrouter:{JUDGE} -m best-of -o r"
    failures: list[str] = []
    kept_outputs = 0

    def cell(line: str, prompt: str, what: str) -> None:
        nonlocal kept_outputs
        before = set(widget._instances)
        # The shell has no frontend: the view's final update prints the report, which a notebook would show.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            try:
                shell.run_cell_magic("fuse", line, prompt)
            except Exception as exc:  # a cell that fails is a finding to report, and the kernel goes on
                failures.append(f"{what}: {type(exc).__name__}: {exc}")
                return
            finally:
                # IPython's own display publisher (a terminal's) keeps every display output in its history; a
                # kernel's (ipykernel: store_display_history=False by default) keeps none. Counted, then dropped,
                # so what is measured is what a kernel would hold.
                outputs = shell.history_manager.outputs
                kept_outputs += sum(len(kept) for kept in outputs.values())
                outputs.clear()
                if ns.close_widgets:
                    # What the view would do once its report replaced the live widget: close every widget it made
                    # (ipywidgets' close() leaves a widget's layout and style open; they are in the registry too).
                    for key in set(widget._instances) - before:
                        made = widget._instances.get(key)
                        if made is not None:
                            made.close()
        result = shell.user_ns["r"]
        if result.n_ok != len(result.pool) or not result.answer.strip():
            failures.append(f"{what}: {result.n_ok} of {len(result.pool)} members answered, answer "
                            f"{result.answer[:40]!r}")

    snaps = []
    cell(small, "Warm up the kernel.", "the warm-up cell")
    snaps.append(snapshot("after warm-up", port))
    # The most sockets open at once during the large cell, sampled every 5 ms (the sampler is joined before the
    # next record, so it is not counted there).
    most, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            most[0] = max(most[0], open_fds()[0])

    sampler = threading.Thread(target=sample, name="bench-socket-sampler")
    sampler.start()
    try:
        cell(large, "One question for a large pool.", f"the {ns.big}-member cell")
    finally:
        done.set()
        sampler.join()
    snaps.append(snapshot(f"after the {ns.big}-member cell", port))
    per_cell = []
    half = ns.cells // 2
    for i in range(1, ns.cells + 1):
        cell(small, f"Question {i}: what is the answer?", f"cell {i}")
        per_cell.append((rss_kb(), open_fds()[0]))
        if i == half:
            snaps.append(snapshot(f"after cell {i}", port))
    snaps.append(snapshot(f"after cell {ns.cells}", port))
    return Run(snaps, per_cell, most[0], kept_outputs, failures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200, help="ordinary cells in a row (3 members + a judge)")
    parser.add_argument("--big", type=int, default=32, help="members of the one large cell")
    parser.add_argument("--close-widgets", action="store_true",
                        help="a diagnosis, not the kernel as it is: after each cell close the widgets it made, "
                             "to see what the widgets left open account for")
    ns = parser.parse_args()
    if ns.cells < 2 or ns.big < 1:
        parser.error("--cells must be at least 2 and --big at least 1")
    ctx = mp.get_context("spawn")
    ours_end, theirs_end = ctx.Pipe()
    child = ctx.Process(target=serve, args=(theirs_end, ns.big), daemon=True)
    child.start()
    theirs_end.close()  # the child's end: held here too it would be one more socket of ours
    here = Path.cwd()
    started = time.perf_counter()
    try:
        if not ours_end.poll(120):
            raise RuntimeError("the emulator process did not start within 120 s")
        os.environ.update(ours_end.recv())
        port = urlsplit(os.environ["OPENROUTER_BASE_URL"]).port
        assert port is not None
        with tempfile.TemporaryDirectory(prefix="bench_flat_") as tmp:
            os.chdir(tmp)
            # The run log is written as a user's would be (every run and call), into this folder, then removed.
            os.environ["FUSION_MAGIC_RUN_LOG"] = str(Path(tmp) / "fusion_runs.sqlite")
            try:
                run = bench(ns, port)
            finally:
                os.chdir(here)
    finally:
        ours_end.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()
    report(ns, run, time.perf_counter() - started)
    return 0


def report(ns: argparse.Namespace, run: Run, wall: float) -> None:
    from fusion_magic.core.runner import HTTP_LIMITS

    first, _, half, last = run.snaps
    keepalive = HTTP_LIMITS.max_keepalive_connections or 0
    cells = ns.cells - ns.cells // 2
    total = ns.cells + 2
    print(f"one IPython shell, widget view, emulator in another process; a warm-up cell, one {ns.big}-member cell "
          f"with a judge, then {ns.cells} cells of {MEMBERS} members + a judge ({wall:.0f} s in all)")
    if ns.close_widgets:
        print("--close-widgets: the widgets each cell made were closed after it (a diagnosis, not the kernel as is)")
    print(f"{'':28} {'RSS MB':>7} {'sockets':>7} {'to API':>6} {'fds':>5} {'tasks':>5} {'threads':>7} "
          f"{'children':>8} {'widgets':>7}")
    for s in run.snaps:
        print(f"{s.label:28} {s.rss_kb / 1024:7.1f} {s.sockets:7d} {s.connections:6d} {s.fds:5d} {s.tasks:5d} "
              f"{s.threads:7d} {len(s.children):8d} {s.widgets:7d}")
    print("(sockets: every socket of ours; to API: our TCP connections to the emulated provider)")
    print(f"child processes at the end: {'; '.join(last.children) or 'none'}")
    if last.thread_names != first.thread_names:
        print(f"threads after warm-up: {', '.join(first.thread_names)}")
        print(f"threads at the end:    {', '.join(last.thread_names)}")
    most = max(n for _, n in run.per_cell)
    print(f"sockets: at most {run.big_sockets} open during the {ns.big}-member cell, at most {most} after any "
          f"ordinary cell; bound between cells: the {first.sockets - first.connections} that are no HTTP connection "
          f"+ the pool's {keepalive} idle keep-alive connections (core.runner.HTTP_LIMITS) = "
          f"{first.sockets - first.connections + keepalive}")
    print(f"live ipywidgets (ipywidgets' registry, until closed): {first.widgets} after the warm-up, {last.widgets} "
          f"after {ns.cells} cells: {(last.widgets - half.widgets) / cells:.1f} more a cell from cell "
          f"{ns.cells // 2} on")
    print(f"display outputs IPython's terminal history kept (dropped after each cell; a kernel keeps none): "
          f"{run.history_outputs} in {total} cells")
    print(f"RSS {half.rss_kb / 1024:.1f} MB after cell {ns.cells // 2}, {last.rss_kb / 1024:.1f} MB after cell "
          f"{ns.cells}: {(last.rss_kb - half.rss_kb) / cells:.1f} KB a cell")
    for failure in run.failures[:5]:
        print(f"a cell failed: {failure}")
    if len(run.failures) > 5:
        print(f"... and {len(run.failures) - 5} more failed cells")
    answered = (total - len(run.failures)) / total
    print(f"flat after {ns.cells} cells: cells answered / cells run = {answered:.3f}  ({total - len(run.failures)} of "
          f"{total}; target 1)")
    print(f"flat after {ns.cells} cells: RSS growth cells {ns.cells // 2}->{ns.cells} = "
          f"{(last.rss_kb - half.rss_kb) / 1024:.1f} MB  (target <= {RSS_TARGET_MB:g} MB)")
    print(f"flat after {ns.cells} cells: open sockets growth = {last.sockets - first.sockets}  "
          f"(target <= {keepalive}: the pool's idle connections)")
    print(f"flat after {ns.cells} cells: pending tasks growth = {last.tasks - first.tasks}  (target 0)")
    print(f"flat after {ns.cells} cells: threads growth = {last.threads - first.threads}  (target 0)")
    workers = len(last.children) - len(first.children)
    print(f"flat after {ns.cells} cells: worker processes growth = {workers}  (target 0)")


if __name__ == "__main__":
    raise SystemExit(main())
