"""%%fuse in JupyterLab, seen by a real browser: headless Chromium (Debian's, driven by Playwright) runs a
notebook against the loopback emulator, watches the live view while the models are still silent, checks the
finished report, saves, restarts the server and checks what a reopened notebook shows.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra (jupyterlab,
playwright). Screenshots go to build/browser-test/. Run alone with
``.venv/bin/python -m pytest -q -s tests/test_browser.py``.
"""

from __future__ import annotations

import json
import re
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
    saved_outputs,
    shot,
    wait_for,
    wait_kernel_idle,
    wait_text,
)

from fusion_magic.testing import Emulator, ModelScript

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # Two JupyterLab starts (20-30 s each on two cores), a kernel start and a run.
    pytest.mark.timeout(600),
]

NOTEBOOK = "fuse.ipynb"
FUSE_CELL = "%%fuse -p openai:slow1,anthropic:slow2 -j gemini:judge -m merge -o r\nWhat is the capital of France?"
# The members stay silent this long: the whole "waiting for the first token" phase is checked inside it.
TTFT_S = 8.0
ANSWER = "Paris."


def fuse_output(page: Page) -> Locator:
    return cell_output(page, 1)


def assert_static_report(output: Locator, where: str) -> None:
    """The finished run as the static HTML report: the Fused answer first, then Judge, Answers, the ledger."""
    text = output.inner_text()
    headings = ["Fused answer", "Judge", "Answers", "Cost & latency"]
    missing = [h for h in headings if h not in text]
    assert not missing, f"{where}: no static report (missing {missing}); the cell output reads: {text[:2000]!r}"
    places = [text.index(h) for h in headings]
    assert places == sorted(places), f"{where}: report sections out of order: {text[:2000]!r}"
    fused_part = text[places[0]:places[1]]
    assert ANSWER in fused_part, f"{where}: the fused answer {ANSWER!r} is not under 'Fused answer': {fused_part!r}"
    answer = output.locator("p", has_text=re.compile(rf"^\s*{re.escape(ANSWER)}\s*$")).first
    assert answer.is_visible(), f"{where}: the fused answer {ANSWER!r} is not visible"
    total = output.locator("td, th", has_text=re.compile(r"^\s*TOTAL\s*$")).first
    assert total.is_visible(), f"{where}: the ledger's TOTAL row is not visible: {text[:2000]!r}"
    assert "overhead" in text, f"{where}: the ledger has no 'overhead' row: {text[:2000]!r}"
    assert "Error displaying widget" not in text, f"{where}: {text[:2000]!r}"


# ---- the test ----------------------------------------------------------------------------------------------


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        for model in ("slow1", "slow2"):
            emu.script(model, ModelScript(reply="Paris is the capital of France.", ttft_s=TTFT_S, tokens_per_s=20))
        emu.script("judge", ModelScript(reply=json.dumps({"reasoning": "both agree", "answer": ANSWER})))
        yield emu


def test_fuse_in_jupyterlab_with_chromium(slow_emulator: Emulator, tmp_path: Path) -> None:
    problems = run_then_reopen(tmp_path, slow_emulator, ["%load_ext fusion_magic", FUSE_CELL], NOTEBOOK, SHOTS,
                               run=lambda page, path: run_and_save(page, slow_emulator, path),
                               reopened=check_reopened)
    assert not problems, "\n".join(problems)


def check_reopened(page: Page) -> None:
    """The saved notebook on a fresh server: the static report, no widget error."""
    output = fuse_output(page)
    wait_text(output, lambda t: ANSWER in t, "the saved output")
    shot(page, "3-reopened")
    assert_static_report(output, "after reopening")
    assert_no_widget_errors(page)


def run_and_save(page: Page, emu: Emulator, path: Path) -> list[str]:
    """Run all cells, check the live view, the finished report and the saved file; return the failures
    that were left for the end."""
    run_all_cells(page)
    output = fuse_output(page)

    # --- while both members are still waiting for their first token (TTFT_S) --------------------------
    tab = output.locator(".widget-tab")
    tab.first.wait_for()
    status = output.locator(".widget-vbox:has(> .widget-tab) > .widget-html").first
    status_text = wait_text(status, lambda t: "answers in" in t, "the status line")
    # A member pane says "queued" until its request is sent; within the silent phase it must say waiting.
    panes = wait_text(tab.first, lambda t: "waiting for the first token" in t, "a member to say it is waiting",
                      timeout_s=TTFT_S)
    shot(page, "1-waiting")
    assert "0/2 answers in" in status_text and "streaming" not in status_text, status_text
    assert "failed" not in panes.lower(), f"a tab says failed while waiting: {panes[:2000]!r}"
    assert "waiting for the first token" in panes, f"no member says it is waiting: {panes[:2000]!r}"
    members = [q.model for q in emu.requests if q.model in ("slow1", "slow2")]
    assert sorted(members) == ["slow1", "slow2"], f"the emulator saw {members}"
    # Tab titles: a wrong title is reported at the end, so one run still checks everything after it.
    expected = ["Fused", "Judge", "slow1", "slow2", "Cost & latency"]
    labels = output.locator(".widget-tab .lm-TabBar-tabLabel")
    problems: list[str] = []
    try:
        wait_for(lambda: [t.strip() for t in labels.all_inner_texts()], lambda t: t == expected,
                 f"the live view's tab titles to read {expected}", timeout_s=TTFT_S)
    except AssertionError as exc:
        problems.append(str(exc))

    # --- finished: the live view gives way to the static report ----------------------------------------
    wait_text(output, lambda t: "Fused answer" in t or "done in" in t, "the run to finish")
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]")).wait_for()
    wait_kernel_idle(page)
    shot(page, "2-finished")
    assert_static_report(output, "after the run")
    assert_no_widget_errors(page)

    # --- saved to disk ---------------------------------------------------------------------------------
    dirty = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty", has_text=NOTEBOOK)
    dirty.wait_for()
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    dirty.wait_for(state="detached")
    saved = wait_for(lambda: saved_outputs(path), lambda s: ANSWER in s, f"{ANSWER!r} in the saved outputs")
    assert "TOTAL" in saved, f"the saved outputs have no ledger: {saved[:2000]!r}"
    text = path.read_text(encoding="utf-8")
    for key in emu.test_keys().values():
        assert key not in text, "an API key was saved in the notebook"
    return problems
