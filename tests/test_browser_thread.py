"""Attachments and a follow-up in JupyterLab, seen by a real browser: headless Chromium (Debian's, driven by
Playwright) runs a notebook against the loopback emulator (no keys) that draws a small matplotlib chart, asks
about it with ``%%fuse --attach chart.png``, then asks a follow-up with ``%%fuse --continue r``.

While each run is live, the widget view shows what it has above the tabs: the chart's thumbnail (an image the
browser decoded, at most 96 px high) on the first run, the folded "Conversation so far (1 turn)" on the second.
Once finished, each cell's static report shows the same; the notebook is saved, the server restarted, and the
reopened notebook (static output only) shows them again, the thread folded until clicked, with the first turn's
prompt and thumbnail inside it.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra (jupyterlab,
playwright, matplotlib comes with the notebook kernel's environment). It fails, never skips, when one is
missing. Screenshots go to build/browser-test/thread/. Run alone with
``.venv/bin/python -m pytest -q -s tests/test_browser_thread.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
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
    wait_cell_done,
    wait_for,
    wait_text,
)

from fusion_magic.testing import Emulator, ModelScript

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # Two JupyterLab starts (20-30 s each on two cores), a kernel start and two runs.
    pytest.mark.timeout(600),
]

NOTEBOOK = "thread.ipynb"
THREAD_SHOTS = SHOTS / "thread"
MEMBERS = ["slow1", "slow2"]
POOL = "openai:slow1,anthropic:slow2"
FIRST_PROMPT = "What does this chart show?"
SECOND_PROMPT = "Why does it rise at the end?"
FIRST_ANSWER = "Sales rise from 1 to 5 over four quarters."
SECOND_ANSWER = "Because the fourth quarter had the holiday season."
CHART_CELL = """\
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot([1, 2, 3, 4], [1, 4, 2, 5], marker="o")
ax.set_title("sales")
fig.savefig("chart.png", dpi=100)
plt.close(fig)"""
CELLS = [
    "%load_ext fusion_magic",
    CHART_CELL,
    f"%%fuse -p {POOL} -j gemini:judge -m merge -o r --attach chart.png\n{FIRST_PROMPT}",
    f"%%fuse --continue r -o r2\n{SECOND_PROMPT}",
]
FIRST, SECOND = 2, 3  # the two %%fuse cells
# The members stay silent this long: the live view is checked inside it, before the static report replaces it.
TTFT_S = 8.0
THREAD_TITLE = "Conversation so far (1 turn)"


def judge_reply(body: Mapping[str, Any]) -> str:
    """The merge judge: the second turn's answer once the conversation has the follow-up, else the first's."""
    follow_up = SECOND_PROMPT in json.dumps(body)
    return json.dumps({"reasoning": "both agree", "answer": SECOND_ANSWER if follow_up else FIRST_ANSWER})


@pytest.fixture
def thread_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        for model in MEMBERS:
            emu.script(model, ModelScript(reply="The line goes up. " * 6, ttft_s=TTFT_S, tokens_per_s=20))
        emu.script("judge", ModelScript(reply=judge_reply))
        yield emu


def test_attachment_and_follow_up_in_jupyterlab_with_chromium(thread_emulator: Emulator, tmp_path: Path) -> None:
    run_then_reopen(tmp_path, thread_emulator, CELLS, NOTEBOOK, THREAD_SHOTS,
                    run=lambda page, path: run_and_save(page, thread_emulator, path), reopened=check_reopened)


# ---- what the page shows -------------------------------------------------------------------------------------


def assert_thumbnail(img: Locator, where: str) -> None:
    """``img`` is on screen and Chromium decoded it: a real picture, shown at most 96 px high."""
    img.wait_for(state="visible")
    complete, natural_w, natural_h, shown_h = img.evaluate(
        "i => [i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().height]")
    assert complete and natural_w > 0 and natural_h > 0, f"{where}: the thumbnail did not decode"
    assert max(natural_w, natural_h) <= 160, f"{where}: the thumbnail is {natural_w}x{natural_h}, not shrunk"
    assert 0 < shown_h <= 96.5, f"{where}: the thumbnail is shown {shown_h} px high"
    src = img.get_attribute("src") or ""
    assert re.match(r"data:image/(png|jpeg);base64,", src), f"{where}: the thumbnail's source is {src[:60]!r}"


def assert_first_report(output: Locator, where: str) -> None:
    """The first run's static report: the chart's thumbnail above the fused answer, no thread."""
    text = wait_text(output, lambda t: FIRST_ANSWER in t, f"{where}: the first run's report")
    assert "Fused answer" in text and "Conversation so far" not in text, f"{where}: {text[:2000]!r}"
    assert "chart.png" in text and text.index("chart.png") < text.index("Fused answer"), f"{where}: {text[:2000]!r}"
    assert_thumbnail(output.locator(".fusion-magic-report img.fm-thumb").first, f"{where}, first report")


def assert_second_report(page: Page, output: Locator, where: str) -> None:
    """The follow-up's static report: the thread folded to one line above the new answer; unfolded, the first
    turn's prompt, its thumbnail and its answer."""
    text = wait_text(output, lambda t: SECOND_ANSWER in t, f"{where}: the follow-up's report")
    assert text.index(THREAD_TITLE) < text.index("Fused answer") < text.index(SECOND_ANSWER), text[:2000]
    thread = output.locator("details.fm-thread").first
    summary = thread.locator("summary").first
    assert summary.is_visible() and THREAD_TITLE in summary.inner_text(), f"{where}: no folded thread"
    earlier = thread.get_by_text(FIRST_PROMPT).first
    assert not earlier.is_visible(), f"{where}: the thread is not folded"
    # The answer's paragraph (the copy button's hidden source holds the same text).
    new_answer = output.locator("p", has_text=re.compile(rf"^\s*{re.escape(SECOND_ANSWER)}\s*$")).first
    assert new_answer.is_visible(), f"{where}: the new answer is not on screen"
    summary.click()
    assert earlier.is_visible(), f"{where}: the first prompt does not unfold"
    assert thread.get_by_text(FIRST_ANSWER).first.is_visible(), f"{where}: the first answer does not unfold"
    assert_thumbnail(thread.locator("img.fm-thumb").first, f"{where}, the first turn in the thread")
    shot(page, f"thread-unfolded-{where.replace(' ', '-')}", THREAD_SHOTS)
    summary.click()  # fold it again: the page looks as it did


# ---- the test's two halves -------------------------------------------------------------------------------------


def run_and_save(page: Page, emu: Emulator, path: Path) -> None:
    """Run all cells; check each live view while its members are silent, then its static report; save."""
    run_all_cells(page)

    # --- the first run, live: the chart's thumbnail above the tabs ----------------------------------------
    first = cell_output(page, FIRST)
    first.locator(".widget-tab").first.wait_for()
    live_img = first.locator(".widget-html img.fm-thumb").first
    assert_thumbnail(live_img, "the first run's live view")
    head = wait_text(first, lambda t: "waiting for the first token" in t, "the first run's members to wait",
                     timeout_s=TTFT_S)
    assert "chart.png" in head and "Conversation so far" not in head, head[:2000]
    shot(page, "1-live-attachment", THREAD_SHOTS)
    sent = [q for q in emu.requests if q.model in MEMBERS]
    assert sent and all("data:image/png" in json.dumps(q.body) or '"image"' in json.dumps(q.body) for q in sent), (
        "the chart did not reach every member")

    # Run All has queued the follow-up: the kernel goes from this cell to the next without being idle.
    prompt = page.locator(".jp-Notebook .jp-Cell").nth(FIRST).locator(".jp-InputPrompt")
    prompt.filter(has_text=re.compile(r"\[\d+\]")).wait_for()
    assert_first_report(first, "after the first run")
    assert_no_widget_errors(page)

    # --- the follow-up, live: the thread folded above the tabs ----------------------------------------------
    second = cell_output(page, SECOND)
    wait_for(lambda: second.locator(".widget-tab").count(), lambda n: n > 0, "the follow-up's live view",
             timeout_s=60)
    live_thread = second.locator(".widget-html details.fm-thread").first
    live_thread.wait_for(state="visible")
    live_summary = live_thread.locator("summary").first
    wait_text(second, lambda t: "waiting for the first token" in t, "the follow-up's members to wait",
              timeout_s=TTFT_S)
    assert THREAD_TITLE in live_summary.inner_text(), live_summary.inner_text()
    earlier = live_thread.get_by_text(FIRST_PROMPT).first
    assert not earlier.is_visible(), "the live thread is not folded"
    live_summary.click()
    assert earlier.is_visible(), "the live thread's first prompt does not unfold"
    assert live_thread.get_by_text(FIRST_ANSWER).first.is_visible(), "the live thread has no first answer"
    shot(page, "2-live-thread", THREAD_SHOTS)

    wait_cell_done(page, SECOND)
    shot(page, "3-finished", THREAD_SHOTS)
    assert_second_report(page, second, "after the follow-up")
    assert_first_report(first, "after the follow-up")
    assert_no_widget_errors(page)

    # --- saved: the static reports, small ---------------------------------------------------------------
    save_notebook(page, NOTEBOOK)
    saved = wait_for(lambda: saved_outputs(path, SECOND), lambda s: SECOND_ANSWER in s, "the follow-up saved")
    assert THREAD_TITLE in saved and "fm-thumb" in saved, saved[:2000]
    assert "fm-thumb" in saved_outputs(path, FIRST)
    chart = (path.parent / "chart.png").read_bytes()
    assert len(chart) > 5_000, "the chart was not drawn"
    size = path.stat().st_size
    assert size < 150_000, f"the saved notebook is {size} bytes: the thumbnails are not small"


def check_reopened(page: Page) -> None:
    """The saved notebook on a fresh server, no cell run: the same thumbnail and thread, from static output."""
    first, second = cell_output(page, FIRST), cell_output(page, SECOND)
    assert_first_report(first, "after reopening")
    assert_second_report(page, second, "after reopening")
    assert not page.locator(".widget-tab").count(), "a reopened notebook shows a widget"
    shot(page, "4-reopened", THREAD_SHOTS)
    assert_no_widget_errors(page)
