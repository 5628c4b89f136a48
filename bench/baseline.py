"""Before and after, side by side in one run: a benchmark script run against an earlier commit's fusion_magic and
against this checkout's, in alternating order, so both halves see the same machine at the same time.

The earlier commit is checked out into a temporary ``git worktree`` (removed afterwards); the script itself is
this checkout's, run with ``PYTHONPATH`` pointing at that worktree, so the same measurement reads both versions.
Each run prints one line ``ROWS <json>`` (its per-rep rows), which is all this module reads.

    rows = side_by_side(Path("bench/bench_fuse.py"), ["--reps", "3"], "636c31e", rounds=2)
    rows["before"], rows["after"]

Not a benchmark itself (no ``bench_`` prefix): ``bench_fuse.py`` and ``bench_video.py`` use it for ``--before``;
``run_all.BEFORE`` names the commit ``make bench`` compares with.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROWS = "ROWS "


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """``rev`` checked out (detached) into a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench_before_") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), rev], check=True,
                       capture_output=True, text=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                           capture_output=True, text=True)


def rows_line(rows: Sequence[dict[str, Any]]) -> str:
    """The line a run prints for :func:`side_by_side` to read."""
    return ROWS + json.dumps(list(rows))


def _run(script: Path, args: Sequence[str], package: Path | None, timeout: float) -> list[dict[str, Any]]:
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, str(script), *args, "--rows-json"], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(ROWS)]
    if proc.returncode != 0 or not lines:
        side = f"at {package}" if package else "this checkout"
        raise RuntimeError(f"{script.name} {' '.join(args)} ({side}) exited {proc.returncode}:\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    rows: list[dict[str, Any]] = json.loads(lines[-1][len(ROWS):])
    return rows


def side_by_side(script: Path, args: Sequence[str], rev: str, *, rounds: int = 2,
                 timeout: float = 240.0) -> dict[str, list[dict[str, Any]]]:
    """``script args`` run ``rounds`` times at ``rev`` ("before") and here ("after"), alternating which goes first;
    each side's rows, in order."""
    out: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with worktree(rev) as tree:
        for i in range(rounds):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            for side in order:
                out[side] += _run(script, args, tree if side == "before" else None, timeout)
    return out


def commit(rev: str = "HEAD") -> str:
    """``rev``'s short hash (``rev`` itself if git cannot say)."""
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True)
    return proc.stdout.strip() or rev
