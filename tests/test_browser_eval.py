"""%fuse eval in JupyterLab, seen by a real browser: headless Chromium (Debian's, driven by Playwright) runs a
notebook that evaluates two emulated models (each right on some questions, wrong on others) with the
strategies single and vote, one row at a time, then shows ``ev.summary`` and ``ev.plot()``, and checks:

1. while the rows run, the progress bar is on screen and counts up ("k/18" and its fill both advance), and no
   output says failed or shows a traceback;
2. when the run ends the bar's output is one static line ("evaluated 18 of 18 rows in ... s"), the result's
   table and ``ev.summary`` read the accuracies, costs and calls the emulator was scripted to give, and the
   plot is an image the browser decoded (``naturalWidth > 0``);
3. after a save, a new server and a reopen (no cell run) the static line, both tables and the plot are still
   there, no widget error shows, and no key is in the saved file.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` and ``plot`` extras
(jupyterlab, playwright, matplotlib). Screenshots go to build/browser-test/eval/. Run alone with
``.venv/bin/python -m pytest -q -s tests/test_browser_eval.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import (
    SHOTS,
    assert_no_widget_errors,
    cell_output,
    run_all_cells,
    run_then_reopen,
    save_notebook,
    saved_outputs,
    shot,
    table_rows,
    wait_cell_done,
    wait_for,
    wait_text,
)

from fusion_magic.testing import Emulator, ModelScript

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # Two JupyterLab starts (20-30 s each on two cores), a kernel start and a run of about 10 s.
    pytest.mark.timeout(600),
]

NOTEBOOK = "eval.ipynb"
EVAL_SHOTS = SHOTS / "eval"

# The questions and their references; each model's wrong answers (every other answer is the reference).
QUESTIONS = {
    "What is 2 + 2?": "4",
    "What is 3 + 3?": "6",
    "What is 10 - 3?": "7",
    "What is 5 x 5?": "25",
    "What is the capital of France?": "Paris",
    "How many legs does a spider have?": "8",
}
ALPHA, BETA = "t/alpha", "t/beta"
WRONG = {
    ALPHA: {"What is 5 x 5?": "24"},  # right on 5 of 6
    BETA: {"What is 3 + 3?": "5", "What is 10 - 3?": "8", "What is the capital of France?": "Lyon"},  # 3 of 6
}
# OpenRouter reports each call's cost; powers of two, so every sum is exact and an extra call shows.
COST = {ALPHA: 2.0**-10, BETA: 2.0**-9}
POOL = [f"openrouter:{ALPHA}", f"openrouter:{BETA}"]
N = len(QUESTIONS)
# Where the two answers differ neither is a majority: the vote (no judge model to defer to) picks neither and
# the row is scored wrong. It is right where both are (2 + 2, the spider), and pays for both calls.
EXPECTED = {  # strategy: (correct of N, calls, cost per question)
    f"single:{POOL[0]}": (5, N, COST[ALPHA]),
    f"single:{POOL[1]}": (3, N, COST[BETA]),
    "vote": (2, 2 * N, COST[ALPHA] + COST[BETA]),
}
TOTAL = N * len(EXPECTED)
# Each call stays silent this long before it answers: one row at a time, 18 rows take about 10 s, long
# enough to watch the bar count.
TTFT_S = 0.55

SETUP_CELL = "%load_ext fusion_magic"
DATA_CELL = f"""import pandas as pd
questions = pd.DataFrame({{"id": {[f"q{i}" for i in range(1, N + 1)]!r},
                          "question": {list(QUESTIONS)!r},
                          "reference": {list(QUESTIONS.values())!r}}})"""
EVAL_CELL = f"%fuse eval questions -p {','.join(POOL)} -s single,vote -j vote --concurrency 1 -o ev"
SUMMARY_CELL = "ev.summary"
PLOT_CELL = "ev.plot()"
CELLS = [SETUP_CELL, DATA_CELL, EVAL_CELL, SUMMARY_CELL, PLOT_CELL]
EVAL, SUMMARY, PLOT = 2, 3, 4
FINAL = re.compile(rf"evaluated {TOTAL} of {TOTAL} rows in \d+\.\d s")
HEADLINE = f"Evaluation: {N} questions x {len(EXPECTED)} strategies x 1 repeat: {TOTAL} of {TOTAL} rows"
# Words no output may show while the rows run (nothing fails in this run).
BAD_WORDS = ("failed", "Traceback", "Error", "error")
IMAGE_JS = """i => ({src: (i.getAttribute('src') || '').slice(0, 22), complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight})"""


def member(wrong: Mapping[str, str]) -> Callable[[Mapping[str, Any]], str]:
    """A model that finds which question it was asked and answers it, wrongly where ``wrong`` says."""

    def reply(body: Mapping[str, Any]) -> str:
        text = next(m["content"] for m in body["messages"] if m["role"] == "user")
        question = next(q for q in QUESTIONS if q in text)
        return f"Final answer: {wrong.get(question, QUESTIONS[question])}"

    return reply


# ---- the live bar ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One reading of the eval cell: the progress bar's label and fill, or the text that replaced it."""

    shown: bool
    label: str
    done: int | None
    fill: float | None  # the bar's width, in % of the track
    text: str

    def __str__(self) -> str:
        return f"bar {self.label!r} {self.fill}%" if self.shown else f"no bar: {self.text[:200]!r}"


BAR_JS = """o => {
    const bar = o.querySelector('.widget-hprogress');
    const fill = bar && bar.querySelector('.progress-bar');
    const box = bar && bar.getBoundingClientRect();
    return {shown: !!bar && box.width > 0 && box.height > 0,
            label: bar ? (bar.querySelector('.widget-label') || {}).textContent || '' : '',
            fill: fill ? parseFloat(fill.style.width) : null,
            text: o.innerText};
}"""


class BarReader:
    """Reads the eval cell's bar; keeps every reading and every distinct text any output showed, so something
    shown for a moment (a traceback, a count going back) is still seen at the end."""

    def __init__(self, page: Page) -> None:
        self.output = cell_output(page, EVAL)
        self.outputs = page.locator(".jp-Notebook .jp-OutputArea")
        self.seen: list[Bar] = []
        self.texts: list[str] = []

    def read(self) -> Bar:
        raw = self.output.evaluate(BAR_JS)
        m = re.fullmatch(rf"(\d+)/{TOTAL}", raw["label"].strip())
        bar = Bar(bool(raw["shown"]), raw["label"].strip(), int(m[1]) if m else None, raw["fill"], raw["text"])
        self.seen.append(bar)
        if bar.shown:  # the finished outputs have a "failed" column, rightly
            text = " ".join(self.outputs.all_inner_texts())
            if not self.texts or self.texts[-1] != text:
                self.texts.append(text)
        return bar

    def wait(self, ok: Callable[[Bar], bool], what: str, timeout_s: float = 90.0) -> Bar:
        return wait_for(self.read, ok, what, timeout_s)

    def assert_truthful(self) -> None:
        """Every label read "k/18" and the count never went back; no output said failed or showed a traceback."""
        labels = [b.label for b in self.seen if b.shown]
        counts = [b.done for b in self.seen if b.shown and b.done is not None]
        assert len(counts) == len(labels), f"the bar's label is not 'k/{TOTAL}': {labels}"
        assert counts == sorted(counts), f"the bar's count went back: {labels}"
        for text in self.texts:
            bad = [w for w in BAD_WORDS if w in text]
            assert not bad, f"an output said {bad} while the rows ran: {text[:2000]!r}"


def counting(bar: Bar, after: Bar | None = None) -> bool:
    """The bar shows a count between the first row and the last, its fill drawn; past ``after``'s on both."""
    if not bar.shown or bar.done is None or bar.fill is None or not 1 <= bar.done < TOTAL:
        return False
    return after is None or (bar.done > (after.done or 0) and bar.fill > (after.fill or 0))


# ---- the finished outputs ------------------------------------------------------------------------------------


def result_table(page: Page) -> list[dict[str, str]]:
    """The rows of the EvalResult's own table (the eval cell's returned value)."""
    return table_rows(cell_output(page, EVAL).locator("table").first)


def summary_table(page: Page) -> list[dict[str, str]]:
    """The rows of ``ev.summary`` (a pandas frame's HTML)."""
    return table_rows(cell_output(page, SUMMARY).locator("table").first)


def assert_result_table(rows: list[dict[str, str]], where: str) -> None:
    """The eval cell's table: one row per strategy, accuracy to 3 places, costs to 6, calls, none failed."""
    got = {r["strategy"]: r for r in rows}
    assert list(got) == list(EXPECTED), f"{where}: the strategies read {list(got)}: {rows}"
    for name, (correct, calls, per_question) in EXPECTED.items():
        want = {"n": str(N), "accuracy": f"{correct / N:.3f}", "cost $": f"{per_question * N:.6f}",
                "$/question": f"{per_question:.6f}", "calls": str(calls), "failed": "0"}
        row = {k: got[name][k] for k in want}
        assert row == want, f"{where}: {name} reads {got[name]}, not {want}"


def assert_summary_table(rows: list[dict[str, str]], where: str) -> None:
    """``ev.summary``: the same figures as numbers, accuracy as pandas shows a float (6 significant digits)."""
    got = {r["strategy"]: r for r in rows}
    assert list(got) == list(EXPECTED), f"{where}: ev.summary's strategies read {list(got)}: {rows}"
    for name, (correct, calls, per_question) in EXPECTED.items():
        row = got[name]
        want = {"n": N, "correct": correct, "calls": calls, "failed": 0, "unscorable": 0}
        assert {k: int(row[k]) for k in want} == want, f"{where}: ev.summary's {name} reads {row}"
        assert float(row["accuracy"]) == round(correct / N, 6), f"{where}: {name}'s accuracy reads {row}"
        assert float(row["total_cost_usd"]) == round(per_question * N, 6), f"{where}: {name}'s cost reads {row}"


def assert_plot(page: Page, where: str) -> dict[str, Any]:
    """The plot cell shows one PNG that the browser decoded."""
    images = cell_output(page, PLOT).locator("img")
    count = wait_for(images.count, lambda n: n > 0, f"{where}: the plot's <img>", timeout_s=30)
    assert count == 1, f"{where}: the plot cell has {count} images"
    image = images.first
    image.scroll_into_view_if_needed()
    state: dict[str, Any] = wait_for(lambda: dict(image.evaluate(IMAGE_JS)), lambda s: s["complete"],
                                     f"{where}: the plot image to load", timeout_s=30)
    assert state["src"].startswith("data:image/png"), f"{where}: the plot is not a PNG: {state}"
    assert state["width"] > 0 and state["height"] > 0, f"{where}: the browser could not decode the plot: {state}"
    return state


def assert_finished(page: Page, where: str) -> None:
    """The bar gave way to the static line; both tables and the plot show what the emulator was scripted to do."""
    output = cell_output(page, EVAL)
    text = output.inner_text()
    assert FINAL.search(text), f"{where}: no static line ({FINAL.pattern!r}); the eval cell reads {text[:2000]!r}"
    assert output.locator(".widget-hprogress, .jupyter-widgets").count() == 0, f"{where}: a widget is still shown"
    assert HEADLINE in text, f"{where}: no headline {HEADLINE!r}: {text[:2000]!r}"
    assert_result_table(result_table(page), where)
    assert_summary_table(summary_table(page), where)
    state = assert_plot(page, where)
    print(f"{where}: plot {state['width']}x{state['height']}")
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0, f"{where}: stderr or an error shows: {errors.all_inner_texts()}"


# ---- the test ----------------------------------------------------------------------------------------------


@pytest.fixture
def eval_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        for model in (ALPHA, BETA):
            emu.script(model, ModelScript(reply=member(WRONG[model]), ttft_s=TTFT_S, cost_usd=COST[model]))
        yield emu


def test_eval_in_jupyterlab_with_chromium(eval_emulator: Emulator, tmp_path: Path) -> None:
    run_then_reopen(tmp_path, eval_emulator, CELLS, NOTEBOOK, EVAL_SHOTS,
                    run=lambda page, path: run_and_save(page, eval_emulator, path), reopened=check_reopened)


def check_reopened(page: Page) -> None:
    """The saved notebook on a fresh server, no kernel run: the static line, the tables and the plot."""
    wait_text(cell_output(page, EVAL), lambda t: FINAL.search(t) is not None, "the saved static line")
    assert_finished(page, "after reopening")
    shot(page, "3-reopened", EVAL_SHOTS)
    assert_no_widget_errors(page)


def run_and_save(page: Page, emu: Emulator, path: Path) -> None:
    """Run all cells, watch the bar count, check the finished outputs and the saved file."""
    run_all_cells(page)
    reader = BarReader(page)

    # --- the rows run: the bar is on screen and counts ----------------------------------------------------
    cell_output(page, EVAL).locator(".widget-hprogress").first.wait_for()
    first = reader.wait(counting, f"the bar to count its first rows (k/{TOTAL}, 0 < k < {TOTAL})")
    shot(page, "1-running", EVAL_SHOTS)
    later = reader.wait(lambda b: counting(b, after=first), "the bar's count and fill to advance", timeout_s=60)
    print(f"running: {first} -> {later}")

    # --- finished: the static line, the tables, the plot ---------------------------------------------------
    wait_text(cell_output(page, EVAL), lambda t: FINAL.search(t) is not None, "the run to finish")
    reader.read()
    reader.assert_truthful()
    wait_cell_done(page, PLOT)
    assert_finished(page, "after the run")
    shot(page, "2-finished", EVAL_SHOTS)
    assert_no_widget_errors(page)
    asked = sorted(q.model or "" for q in emu.requests)
    assert asked == sorted([ALPHA] * 2 * N + [BETA] * 2 * N), f"the emulator saw {asked}"

    # --- saved to disk ---------------------------------------------------------------------------------
    save_notebook(page, NOTEBOOK)
    saved = wait_for(lambda: saved_outputs(path, EVAL), lambda s: FINAL.search(s) is not None,
                     f"{FINAL.pattern!r} in the saved outputs")
    assert "application/vnd.jupyter.widget-view+json" not in saved, f"the saved bar is still a widget: {saved[:2000]}"
    assert "image/png" in saved_outputs(path, PLOT), "the saved plot cell has no PNG"
    text = path.read_text(encoding="utf-8")
    for key in emu.test_keys().values():
        assert key not in text, "an API key was saved in the notebook"
    json.loads(text)  # the file is whole
