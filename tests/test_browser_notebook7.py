"""%%fuse in Jupyter Notebook 7, seen by a real browser: the checks of tests/test_browser.py (JupyterLab) on the
other front end people open notebooks in. Headless Chromium (Debian's, driven by Playwright) runs the same
notebook against the loopback emulator with the same eight slow members, in Notebook 7 (the ``notebook``
package, served by ``jupyter notebook``), and checks:

1. the live widget view while the members are silent: the tabs with their titles, the status line, every member
   waiting for its first token;
2. while all eight stream: each member's text and token count on the overview, without a click, the counts
   advancing;
3. the finished run: the static report (one screen, the answer first, the rest unfolding, the copy button);
4. saved, a fresh Notebook 7 server, the notebook reopened with no cell run: the static report again, never
   "Error displaying widget".

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra (notebook, playwright).
Screenshots go to build/browser-test/notebook7/. Run alone with
``.venv/bin/python -m pytest -q -s tests/test_browser_notebook7.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

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
    wait_cell_done,
    wait_for,
    wait_text,
)
from test_browser import (
    ANSWER,
    FUSE_CELL,
    MEMBERS,
    REPLY,
    TOKENS_PER_S,
    TTFT_S,
    assert_static_report,
    overview_counts,
)

from fusion_magic.testing import Emulator, ModelScript

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # Two Notebook 7 starts (20-30 s each on two cores), a kernel start and a run.
    pytest.mark.timeout(600),
]

NOTEBOOK = "fuse.ipynb"
NB7_SHOTS = SHOTS / "notebook7"
TABS = ["Overview", "Fused", "Judge", *MEMBERS, "Cost & latency"]


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    """The Lab test's emulator: eight members silent for TTFT_S, then streaming slowly; a merging judge."""
    with Emulator() as emu:
        for model in MEMBERS:
            emu.script(model, ModelScript(reply=REPLY, ttft_s=TTFT_S, tokens_per_s=TOKENS_PER_S))
        emu.script("judge", ModelScript(reply=json.dumps({"reasoning": "both agree", "answer": ANSWER})))
        yield emu


def test_fuse_in_notebook7_with_chromium(slow_emulator: Emulator, tmp_path: Path) -> None:
    run_then_reopen(tmp_path, slow_emulator, ["%load_ext fusion_magic", FUSE_CELL], NOTEBOOK, NB7_SHOTS,
                    run=lambda page, path: run_and_save(page, slow_emulator, path), reopened=check_reopened,
                    kind="notebook")


def run_and_save(page: Page, emu: Emulator, path: Path) -> None:
    """Run all cells in Notebook 7; check the live view, the finished report and the saved file."""
    assert "/notebooks/" in page.url and page.locator("#jp-main-statusbar").count() == 0, (
        f"not Notebook 7's page: {page.url}")
    run_all_cells(page)
    output = cell_output(page, 1)

    # --- silent members: the live widget with its tabs --------------------------------------------------
    output.locator(".widget-tab").first.wait_for()
    status = output.locator(".widget-vbox:has(> .widget-tab) > .widget-html").first
    status_text = wait_text(status, lambda t: "answers in" in t, "the status line")
    panes = wait_text(output.locator(".widget-tab").first, lambda t: "waiting for the first token" in t,
                      "a member to say it is waiting", timeout_s=TTFT_S)
    labels = output.locator(".widget-tab .lm-TabBar-tabLabel")
    titles = wait_for(lambda: [t.strip() for t in labels.all_inner_texts()], lambda t: t == TABS,
                      f"the live view's tab titles to read {TABS}", timeout_s=TTFT_S)
    shot(page, "1-waiting", NB7_SHOTS)
    assert "0/8 answers in" in status_text and "streaming" not in status_text, status_text
    assert "failed" not in panes.lower(), f"a tab says failed while waiting: {panes[:2000]!r}"
    assert titles == TABS
    asked = sorted(q.model or "" for q in emu.requests if q.model in MEMBERS)
    assert asked == MEMBERS, f"the emulator saw {asked}"

    # --- all eight streaming: each member's text and count on the overview, the counts advancing --------
    first = wait_for(lambda: overview_counts(output), lambda c: sorted(c) == MEMBERS and min(c.values()) >= 3,
                     "every member's token count on the overview", timeout_s=TTFT_S + 10)
    rows = output.locator(".fusion-magic-row")

    def shown_rows() -> list[str]:
        return [rows.nth(i).inner_text() for i in range(rows.count()) if rows.nth(i).is_visible()]

    wait_for(shown_rows, lambda rs: len(rs) == len(MEMBERS) and all("Paris is the capital" in r for r in rs),
             "every member's text on the overview", timeout_s=5)
    shot(page, "2-streaming", NB7_SHOTS)
    wait_for(lambda: overview_counts(output), lambda c: all(c.get(m, 0) > first[m] for m in MEMBERS),
             f"every member's count to advance past {first}", timeout_s=10)

    # --- finished: the live view gives way to the static report -------------------------------------------
    wait_text(output, lambda t: "Fused answer" in t, "the run to finish")
    wait_cell_done(page, 1)
    shot(page, "3-finished", NB7_SHOTS)
    assert_static_report(page, output, "after the run in Notebook 7")
    assert_no_widget_errors(page)

    # --- saved to disk ---------------------------------------------------------------------------------
    save_notebook(page, NOTEBOOK)
    saved = wait_for(lambda: saved_outputs(path), lambda s: ANSWER in s, f"{ANSWER!r} in the saved outputs")
    assert "TOTAL" in saved, f"the saved outputs have no ledger: {saved[:2000]!r}"
    assert "application/vnd.jupyter.widget-view+json" not in saved, "the saved output is still the widget"
    text = path.read_text(encoding="utf-8")
    assert not any(key in text for key in emu.test_keys().values()), "an API key was saved in the notebook"


def check_reopened(page: Page) -> None:
    """The saved notebook on a fresh Notebook 7 server, no cell run: the static report, no widget error."""
    output = cell_output(page, 1)
    wait_text(output, lambda t: ANSWER in t, "the saved output")
    shot(page, "4-reopened", NB7_SHOTS)
    assert output.locator(".widget-tab").count() == 0, "the reopened notebook shows a widget"
    assert_static_report(page, output, "after reopening in Notebook 7")
    assert_no_widget_errors(page)
