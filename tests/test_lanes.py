"""The lanes: which tests conftest marks as needing a browser, the local model, a kernel, or a benchmark run.

The functions below are never run: ``needs`` reads their code, as it reads a real test's.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lanes import needs

import fusion_magic

ROOT = Path(__file__).resolve().parent.parent
FAST = "not browser and not local_model and not notebook and not bench"

# A cell a kernel runs: code, though it is a string.
PRELOAD_CELL = "from fusion_magic.providers.chat import local\nlocal.preload()"


class Item:
    """What ``needs`` reads of a collected test: its function, its name (with parameters) and its fixtures."""

    def __init__(self, function: Callable[..., Any], name: str | None = None,
                 fixtures: dict[str, Callable[..., Any]] | None = None) -> None:
        self.function = function
        self.name = name or function.__name__
        self.fixturenames = tuple(fixtures or {})
        self._fixtureinfo = type("Info", (), {"name2fixturedefs": {
            n: (type("Def", (), {"func": staticmethod(f)})(),) for n, f in (fixtures or {}).items()}})()


def drives_chromium() -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        p.chromium.launch(executable_path="/usr/bin/chromium")


def runs_the_local_model() -> None:
    fusion_magic.fuse("q", pool=["local:gemma3-270m"] * 2, judge="vote")


def only_names_the_local_model() -> None:
    assert fusion_magic.Response(model="local:gemma3-270m", label="gemma3-270m", status="ok").ok


def says_so_in_words_only() -> None:
    """Unlike the browser test (chromium, playwright) or a kernel under nbclient with NotebookClient(nb)."""
    # local.preload() would start the local model; run_cell_magic("fuse", "-p local:gemma3-270m") too.


def execute_in_a_kernel(cells: list[str]) -> None:
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    NotebookClient(new_notebook(cells=[new_code_cell(c) for c in cells])).execute()


def through_a_helper() -> None:
    execute_in_a_kernel(["1 + 1"])


def a_cell_that_preloads() -> None:
    execute_in_a_kernel([PRELOAD_CELL])


def warm_worker() -> None:
    from fusion_magic.providers.chat import local

    local.preload()


def with_an_autouse_fixture() -> None:
    assert True


def a_parametrized_benchmark(name: str) -> None:
    assert name


@pytest.mark.parametrize(("item", "expected"), [
    (Item(drives_chromium), {"browser"}),
    (Item(runs_the_local_model), {"local_model"}),
    (Item(only_names_the_local_model), set()),
    (Item(says_so_in_words_only), set()),
    (Item(through_a_helper), {"notebook"}),
    (Item(a_cell_that_preloads), {"notebook", "local_model"}),
    (Item(with_an_autouse_fixture, fixtures={"warm_worker": warm_worker}), {"local_model"}),
    (Item(a_parametrized_benchmark, "a_parametrized_benchmark[bench_local.py]"), {"local_model"}),
    (Item(a_parametrized_benchmark, "a_parametrized_benchmark[bench_fuse.py]"), set()),
], ids=lambda v: v.name if isinstance(v, Item) else None)
def test_needs_reads_the_code_a_test_runs(item: Item, expected: set[str]) -> None:
    assert needs(item) == expected  # type: ignore[arg-type]


def collected(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:randomly", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: every test deselected
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_fast_lane_leaves_out_the_browser_the_local_model_and_the_kernel() -> None:
    files = ["tests/test_browser.py", "tests/test_local.py", "tests/test_kernel.py"]
    assert len(collected(*files)) >= 20  # what `make test` runs of them
    # Every one of them is marked, and a test of the library itself (this file's) stays in the fast lane.
    fast = collected("-m", FAST, *files, "tests/test_lanes.py")
    assert fast and all(t.startswith("tests/test_lanes.py::") for t in fast)
