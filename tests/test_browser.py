"""%%fuse in JupyterLab, seen by a real browser: headless Chromium (Debian's, driven by Playwright) runs a
notebook against the loopback emulator with eight members, watches the live view while the models are still
silent and then while all eight stream (every member's text and token count on the overview, without a click,
the counts advancing), checks the finished report (one screen, the answer first, the rest unfolding, the copy
button), saves, restarts the server and checks the same on the reopened notebook.

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
MEMBERS = [f"slow{i}" for i in range(1, 9)]
PROVIDERS = ["openai", "anthropic", "gemini", "openrouter"]
POOL = ",".join(f"{PROVIDERS[i % 4]}:{m}" for i, m in enumerate(MEMBERS))
FUSE_CELL = f"%%fuse -p {POOL} -j gemini:judge -m merge -o r\nWhat is the capital of France?"
# The members stay silent this long: the whole "waiting for the first token" phase is checked inside it.
TTFT_S = 8.0
# Then they stream this slowly for about 8 s: long enough to read the overview twice while all eight stream.
TOKENS_PER_S = 10
REPLY = "Paris is the capital of France. " * 10
ANSWER = "Paris."
# A laptop's screen: the finished output, folded, must fit in it.
SCREEN_PX = 800


def fuse_output(page: Page) -> Locator:
    return cell_output(page, 1)


def assert_static_report(page: Page, output: Locator, where: str) -> None:
    """The finished run as the static HTML report: one screen, the Fused answer first with its one-line summary,
    then Judge, Answers, the ledger folded; each unfolds; the copy button puts the answer on the clipboard."""
    text = output.inner_text()
    headings = ["Fused answer", "Judge", "Answers (8)", "Cost & latency"]
    missing = [h for h in headings if h not in text]
    assert not missing, f"{where}: no static report (missing {missing}); the cell output reads: {text[:2000]!r}"
    places = [text.index(h) for h in headings]
    assert places == sorted(places), f"{where}: report sections out of order: {text[:2000]!r}"
    fused_part = text[places[0]:places[1]]
    assert ANSWER in fused_part, f"{where}: the fused answer {ANSWER!r} is not under 'Fused answer': {fused_part!r}"
    assert "8/8 answers" in fused_part, f"{where}: no one-line summary under the answer: {fused_part!r}"
    answer = output.locator("p", has_text=re.compile(rf"^\s*{re.escape(ANSWER)}\s*$")).first
    assert answer.is_visible(), f"{where}: the fused answer {ANSWER!r} is not visible"
    box = output.bounding_box()
    assert box is not None and box["height"] <= SCREEN_PX, f"{where}: the output is {box} high, over {SCREEN_PX} px"
    assert "Error displaying widget" not in text, f"{where}: {text[:2000]!r}"

    # Folded: the ledger's TOTAL row and a member's answer show only once their section is opened.
    total = output.locator("td, th", has_text=re.compile(r"^\s*TOTAL\s*$")).first
    assert not total.is_visible(), f"{where}: the ledger is not folded"
    for section in ("Judge", "Answers (8)", "Cost & latency"):
        output.locator("summary", has_text=section).first.click()
    assert total.is_visible(), f"{where}: the ledger's TOTAL row is not visible once unfolded"
    assert "overhead" in output.inner_text(), f"{where}: the ledger has no 'overhead' row"
    member = output.locator("details:has(> summary:has-text('slow8'))").first
    assert member.is_visible(), f"{where}: no member slow8 under Answers"
    member.locator("summary").first.click()
    assert member.get_by_text(REPLY.strip()[:40]).first.is_visible(), f"{where}: slow8's answer does not unfold"
    assert "both agree" in output.inner_text(), f"{where}: the judge's reasoning does not unfold"
    shot(page, f"unfolded-{where.replace(' ', '-')}")

    # The copy button: the answer as written on the clipboard (the page may read it back: permission granted).
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.evaluate("navigator.clipboard.writeText('')")
    button = output.locator("button.fm-copy").first
    button.click()
    wait_for(lambda: button.inner_text(), lambda t: t == "Copied", f"{where}: the copy button to say Copied",
             timeout_s=10)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == ANSWER, f"{where}: the clipboard holds {copied!r}, not the answer"


def overview_counts(output: Locator) -> dict[str, int]:
    """Each member's live token count as the overview shows it (visible rows only)."""
    counts: dict[str, int] = {}
    for row in output.locator(".fusion-magic-row").all():
        if not row.is_visible():
            continue
        text = row.inner_text()
        found = re.search(r"^(slow\d).*?~?(\d+) tok", text, re.S)
        if found:
            counts[found.group(1)] = int(found.group(2))
    return counts


# ---- the test ----------------------------------------------------------------------------------------------


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        for model in MEMBERS:
            emu.script(model, ModelScript(reply=REPLY, ttft_s=TTFT_S, tokens_per_s=TOKENS_PER_S))
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
    assert_static_report(page, output, "after reopening")
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
    assert "0/8 answers in" in status_text and "streaming" not in status_text, status_text
    assert "failed" not in panes.lower(), f"a tab says failed while waiting: {panes[:2000]!r}"
    assert "waiting for the first token" in panes, f"no member says it is waiting: {panes[:2000]!r}"
    members = [q.model for q in emu.requests if q.model in MEMBERS]
    assert sorted(members) == MEMBERS, f"the emulator saw {members}"
    # Tab titles: a wrong title is reported at the end, so one run still checks everything after it.
    expected = ["Overview", "Fused", "Judge", *MEMBERS, "Cost & latency"]
    labels = output.locator(".widget-tab .lm-TabBar-tabLabel")
    problems: list[str] = []
    try:
        wait_for(lambda: [t.strip() for t in labels.all_inner_texts()], lambda t: t == expected,
                 f"the live view's tab titles to read {expected}", timeout_s=TTFT_S)
    except AssertionError as exc:
        problems.append(str(exc))

    # --- all eight streaming: each member's text and count on the overview, no click, counts advancing ---
    first = wait_for(lambda: overview_counts(output), lambda c: sorted(c) == MEMBERS and min(c.values()) >= 3,
                     "every member's token count on the overview", timeout_s=TTFT_S + 10)
    shot(page, "1b-streaming")
    rows = output.locator(".fusion-magic-row")

    def shown_rows() -> list[str]:
        return [rows.nth(i).inner_text() for i in range(rows.count()) if rows.nth(i).is_visible()]

    # The counts and the text are drawn by the same clock, but a count of three tokens may show before the text
    # reaches a whole phrase on a loaded machine: wait for the phrase, a few frames at most.
    shown = wait_for(shown_rows, lambda rs: len(rs) == len(MEMBERS) and all("Paris is the capital" in r for r in rs),
                     "every member's text on the overview", timeout_s=5)
    assert len(shown) == len(MEMBERS)
    wait_for(lambda: overview_counts(output), lambda c: all(c.get(m, 0) > first[m] for m in MEMBERS),
             f"every member's count to advance past {first}", timeout_s=10)

    # --- finished: the live view gives way to the static report ----------------------------------------
    wait_text(output, lambda t: "Fused answer" in t or "done in" in t, "the run to finish")
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]")).wait_for()
    wait_kernel_idle(page)
    shot(page, "2-finished")
    assert_static_report(page, output, "after the run")
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
