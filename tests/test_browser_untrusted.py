"""Untrusted text everywhere it shows, seen by a real browser: headless Chromium (Debian's, driven by Playwright)
runs a notebook against the loopback emulator where everything a provider or a user's file system hands us is
hostile HTML: a member's answer, the judge's analysis, an attachment's file name, a video provider's error
message and a batch's error entry. Each is shown live (the widget views, the batch progress), in the static
reports, in ``to_markdown()`` rendered by Jupyter, and again after a save and a reopen.

Every payload would set ``window.__pwned`` (or open a dialog) if a browser ran it, and carries an ``<img
src=x>``: the test asserts that no payload ran, no dialog opened and no such element exists, live and reopened.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra. It fails, never skips,
when one is missing. Screenshots go to build/browser-test/untrusted/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import SHOTS, assert_no_widget_errors, run_all_cells, run_then_reopen, save_notebook, shot, wait_for

from fusion_magic.testing import Emulator, ModelScript, VideoScript

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    pytest.mark.timeout(600),
]

NOTEBOOK = "untrusted.ipynb"
UNTRUSTED_SHOTS = SHOTS / "untrusted"
EVIL = '<img src=x onerror="window.__pwned=1;alert(1)">'
EVIL_MD = "[click](javascript:window.__pwned=1) <script>window.__pwned=1</script>"
FILE = "<img src=x onerror=window.__pwned=1>.txt"
VEO = "veo-3.1-fast-generate-preview"
CELLS = [
    "%load_ext fusion_magic",
    f"""import pandas as pd
open({FILE!r}, "w").write({"notes about Paris " + EVIL!r})
qs = pd.DataFrame({{"question": ["Capital of France?"], "reference": ["Paris"]}})""",
    f'%%fuse -p openai:evil,anthropic:calm -j gemini:judge -o r --attach "{FILE}"\nSummarise the notes.',
    "from IPython.display import Markdown\nMarkdown(r.to_markdown())",
    f"%%video -p gemini:{VEO} -o v --poll 0.05\nA paper boat",
    "%fuse eval qs -p openai:evil --strategies single --batch --poll 0.05 -o ev",
]
PWNED_JS = """() => ({pwned: window.__pwned === 1,
                     imgs: document.querySelectorAll('.jp-OutputArea img[src="x"]').length,
                     scripts: [...document.querySelectorAll('.jp-OutputArea script')].filter(
                         s => s.textContent.includes('__pwned')).length})"""


def judge_reply(body: Mapping[str, Any]) -> str:
    """A judge whose verdict and analysis are hostile: every string a report shows."""
    return json.dumps({"reasoning": f"Both say Paris. {EVIL}", "winner": "A",
                       "analysis": {"consensus": [f"Paris {EVIL}"], "contradictions": [],
                                    "partial_coverage": [], "unique": [], "blind_spots": [EVIL_MD]}})


@pytest.fixture
def hostile_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        emu.script("evil", ModelScript(reply=f"Paris. {EVIL} {EVIL_MD}"))
        emu.script("calm", ModelScript(reply="Paris."))
        emu.script("judge", ModelScript(reply=judge_reply))
        emu.script(VEO, VideoScript(polls=1, outcome="failed", error_message=f"The model failed: {EVIL}"))
        emu.batches.fail_next("openai", f"The batch failed: {EVIL}")
        yield emu


def test_hostile_text_is_inert_everywhere_it_shows(hostile_emulator: Emulator, tmp_path: Path) -> None:
    run_then_reopen(tmp_path, hostile_emulator, CELLS, NOTEBOOK, UNTRUSTED_SHOTS, run=run_and_save,
                    reopened=lambda page: assert_inert_page(page, "reopened"))


def assert_inert_page(page: Page, where: str) -> None:
    """No payload ran, no dialog opened, no hostile element exists; the hostile words are shown as text."""
    page.wait_for_timeout(500)  # an onerror fires as soon as the element is parsed: give it the chance
    state = page.evaluate(PWNED_JS)
    assert not state["pwned"], f"{where}: a payload ran"
    assert state["imgs"] == 0 and state["scripts"] == 0, f"{where}: hostile elements in the DOM: {state}"
    text = page.locator(".jp-Notebook").inner_text()
    assert "onerror" in text, f"{where}: the hostile words are not shown as text"
    assert_no_widget_errors(page)
    shot(page, f"untrusted-{where}", UNTRUSTED_SHOTS)


def run_and_save(page: Page, path: Path) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    run_all_cells(page)
    # The batch evaluation is the last cell: its static line says it evaluated 1 of 1 rows.
    wait_for(lambda: page.locator(".jp-Notebook").inner_text(), lambda t: "of 1 rows" in t and "[6]" in t,
             "the notebook to run to its last cell", timeout_s=180)
    assert_inert_page(page, "live")
    assert dialogs == [], f"a payload opened a dialog: {dialogs}"
    save_notebook(page, NOTEBOOK)
    saved = path.read_text(encoding="utf-8")
    assert "onerror" in saved  # the words were kept (escaped), not dropped
