"""%%video in JupyterLab, seen by a real browser: headless Chromium (Debian's, driven by Playwright) runs a
notebook against the loopback emulator with a pool of three video models (Gemini Omni, fal, and a Veo job the
safety filter withholds) and checks that the view tells the truth:

1. while the jobs run, every clip's tab says queued or running (never failed), with its elapsed time and its
   polls counting up, and the view opens on the first clip's tab (not on "Cost & latency");
2. a clip saved while another still runs plays in its tab: an HTML5 ``<video>`` with controls, no autoplay,
   no loop, whose metadata the browser loads (its duration is the clip's); the filtered clip says so, with
   the provider's reason, and has no player;
3. the finished run is the static report, whose ``<video>`` elements (a src relative to the notebook) load
   through the Jupyter server, and they still do after a save, a new server and a reopen (no kernel run);
4. no key is in the saved notebook.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra (jupyterlab,
playwright). Screenshots go to build/browser-test/video/. Run alone with
``.venv/bin/python -m pytest -q -s tests/test_browser_video.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
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
    saved_outputs,
    shot,
    wait_for,
    wait_kernel_idle,
    wait_text,
)

from fusion_magic.testing import Emulator, VideoScript

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # Two JupyterLab starts (20-30 s each on two cores), a kernel start and a run of about 40 s.
    pytest.mark.timeout(600),
]

NOTEBOOK = "video.ipynb"
VIDEO_SHOTS = SHOTS / "video"
OMNI = "gemini:gemini-omni-1.2-flash"
FAL = "fal:fal-ai/minimax/hailuo-02/standard/text-to-video"
VEO = "gemini:veo-3.1-generate-preview"  # withheld by the filter
TITLES = ["gemini-omni-1.2-flash", "minimax/hailuo-02/standard", "veo-3.1-generate-preview", "Cost & latency"]
REASON = "The audio track was blocked by the safety filter."
# Each saved clip's length: different, so a player that loads another clip's file reads the wrong duration.
CLIP_S = {OMNI: 3.0, FAL: 2.0}
POLL_S = 0.5
# Every job runs at least RUN_S (the "queued/running" phase is checked inside it); Omni runs OMNI_MORE_S
# longer, so fal's saved clip and Veo's filter are checked in the live view while Omni still runs.
RUN_S = 12.0
OMNI_MORE_S = 20.0
SETUP_CELL = f"%load_ext fusion_magic\n%config VideoMagics.poll = {POLL_S}"
VIDEO_CELL = f"%%video -p {OMNI},{FAL},{VEO} --seconds 6 -o clips\nA paper boat drifting down a rainy street"
HEADING = "Clips (2 of 3 saved)"
WAITING = ("planned", "submitting", "queued", "running")
# What each tab may say on its way, in the live view.
ALLOWED = {OMNI: {*WAITING, "downloading", "saved"}, FAL: {*WAITING, "downloading", "saved"},
           VEO: {*WAITING, "filtered"}}
# The <video> as the browser sees it: its attributes and how far it loaded.
PLAYER_JS = """v => ({controls: v.controls, autoplay: v.autoplay, loop: v.loop, preload: v.getAttribute('preload'),
    src: v.getAttribute('src'), current: v.currentSrc, ready: v.readyState, duration: v.duration,
    error: v.error ? v.error.code + ' ' + v.error.message : null})"""


# ---- the live view ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One clip's tab status line, as read: ``label · model · word · 12 s · 24 polls · ...``."""

    word: str
    elapsed: int | None
    polls: int
    text: str

    @classmethod
    def parse(cls, text: str) -> Clip:
        parts = [p.strip() for p in text.split("·")]
        elapsed = next((int(m[1]) for p in parts[3:] if (m := re.fullmatch(r"(\d+) s", p))), None)
        polls = next((int(m[1]) for p in parts[3:] if (m := re.fullmatch(r"(\d+) polls?", p))), 0)
        return cls(parts[2] if len(parts) > 2 else "", elapsed, polls, text)

    def __str__(self) -> str:
        return self.text


def clip_pane(output: Locator, model: str) -> Locator:
    """The live view's tab pane of ``model``'s clip (its status line names the model in a <code>)."""
    code = output.page.locator("code", has_text=re.compile(rf"^{re.escape(model)}$"))
    return output.locator(".widget-tab-contents > .widget-vbox").filter(has=code)


class LiveReader:
    """Reads every clip's status line; keeps every reading, so a state the view showed for a moment (say,
    "failed") is still seen at the end."""

    def __init__(self, output: Locator) -> None:
        self.output = output
        self.seen: list[dict[str, Clip]] = []

    def read(self) -> dict[str, Clip]:
        clips = {}
        for model in ALLOWED:
            status = clip_pane(self.output, model).locator(".widget-html").first
            clips[model] = Clip.parse(" ".join(status.inner_text().split()))
        self.seen.append(clips)
        return clips

    def wait(self, ok: Any, what: str, timeout_s: float = 90.0) -> dict[str, Clip]:
        return wait_for(self.read, ok, what, timeout_s)

    def assert_truthful(self) -> None:
        """Every word every tab showed is one that clip could truly be in."""
        for reading in self.seen:
            for model, clip in reading.items():
                assert clip.word in ALLOWED[model], f"{model}'s tab said {clip.word!r}: {clip.text!r}"


def running(clip: Clip) -> bool:
    return clip.word in ("queued", "running") and clip.elapsed is not None and clip.polls >= 1


def player(video: Locator) -> dict[str, Any]:
    return dict(video.evaluate(PLAYER_JS))


def assert_plays(video: Locator, seconds: float, where: str) -> dict[str, Any]:
    """A player with controls, no autoplay, no loop, whose metadata the browser loaded: the clip's length."""
    state = player(video)
    assert state["controls"] and not state["autoplay"] and not state["loop"], f"{where}: {state}"
    state = wait_for(lambda: player(video), lambda s: s["ready"] >= 1 or s["error"] is not None,
                     f"{where}: the browser to load the clip's metadata")
    assert state["error"] is None and state["ready"] >= 1, f"{where}: the browser cannot load the clip: {state}"
    assert abs(state["duration"] - seconds) <= 0.5, f"{where}: duration {state['duration']}, not {seconds}: {state}"
    return state


# ---- the static report -----------------------------------------------------------------------------------


def report_clip(output: Locator, model: str) -> Locator:
    """The report's block of ``model``'s clip."""
    code = output.page.locator("code", has_text=re.compile(rf"^{re.escape(model)}$"))
    return output.locator(".fusion-magic-report > div").filter(has=code)


def assert_report(output: Locator, where: str) -> None:
    """The finished run as the static HTML report: no widget left, two players that load their clips through
    the server, the filtered clip with its reason and no player."""
    text = output.inner_text()
    assert HEADING in text, f"{where}: no static report ({HEADING!r}); the cell output reads: {text[:2000]!r}"
    assert output.locator(".widget-tab").count() == 0, f"{where}: the live widget is still shown"
    assert "Cost & latency" in text and "TOTAL" in text, f"{where}: no ledger: {text[:2000]!r}"
    assert output.locator("video").count() == len(CLIP_S), f"{where}: {output.inner_html()[:3000]!r}"
    for model, seconds in CLIP_S.items():
        block = report_clip(output, model)
        block_text = " ".join(block.inner_text().split())
        assert "saved" in block_text and f"{seconds:.1f} s" in block_text, f"{where}: {model}: {block_text!r}"
        video = block.locator("video")
        assert video.count() == 1, f"{where}: {model} has {video.count()} players: {block.inner_html()[:2000]!r}"
        state = assert_plays(video, seconds, f"{where}, {model}")
        assert state["preload"] == "metadata", f"{where}, {model}: {state}"
        # The src is relative to the notebook and resolved by JupyterLab to the server's files route.
        assert "/files/videos/" in state["current"] and ".mp4" in state["current"], f"{where}, {model}: {state}"
    block = report_clip(output, VEO)
    block_text = " ".join(block.inner_text().split())
    assert "filtered" in block_text and REASON in block_text, f"{where}: the filtered clip reads {block_text!r}"
    assert block.locator("video").count() == 0, f"{where}: the filtered clip has a player"


# ---- the test ----------------------------------------------------------------------------------------------


@pytest.fixture
def video_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        emu.script(OMNI.split(":", 1)[1], VideoScript(seconds=RUN_S + OMNI_MORE_S, clip_seconds=CLIP_S[OMNI]))
        emu.script(FAL.split(":", 1)[1], VideoScript(seconds=RUN_S, clip_seconds=CLIP_S[FAL]))
        emu.script(VEO.split(":", 1)[1], VideoScript(seconds=RUN_S, outcome="filtered", reason=REASON))
        yield emu


def test_video_in_jupyterlab_with_chromium(video_emulator: Emulator, tmp_path: Path) -> None:
    problems = run_then_reopen(tmp_path, video_emulator, [SETUP_CELL, VIDEO_CELL], NOTEBOOK, VIDEO_SHOTS,
                               run=lambda page, path: run_and_save(page, video_emulator, path),
                               reopened=check_reopened)
    assert not problems, "\n".join(problems)


def check_reopened(page: Page) -> None:
    """The saved notebook on a fresh server, no kernel run: the report's players still load."""
    output = cell_output(page, 1)
    wait_text(output, lambda t: HEADING in t, "the saved output")
    assert_report(output, "after reopening")
    shot(page, "4-reopened", VIDEO_SHOTS)
    assert_no_widget_errors(page)


def run_and_save(page: Page, emu: Emulator, path: Path) -> list[str]:
    """Run all cells, check the live view while the jobs run and as they end, the finished report and the
    saved file; return the failures that were left for the end."""
    run_all_cells(page)
    output = cell_output(page, 1)
    live = LiveReader(output)

    # --- every job running ------------------------------------------------------------------------------
    output.locator(".widget-tab").first.wait_for()
    first = live.wait(lambda c: all(running(x) for x in c.values()), "every clip's tab to say queued/running")
    shot(page, "1-running", VIDEO_SHOTS)
    later = live.wait(lambda c: all(running(x) and x.polls > first[m].polls
                                    and (x.elapsed or 0) > (first[m].elapsed or 0) for m, x in c.items()),
                      "every running clip's elapsed time and polls to count up", timeout_s=RUN_S)
    print("running:", {m: str(c) for m, c in first.items()}, "->", {m: str(c) for m, c in later.items()})
    live.assert_truthful()
    assert sorted(j.model for j in emu.video.jobs()) == sorted(m.split(":", 1)[1] for m in ALLOWED)
    problems: list[str] = []
    # The tab shown at first is the first clip's (nobody chose another): not "Cost & latency", which says
    # "no calls yet" while three paid jobs run.
    current = output.locator(".widget-tab .lm-TabBar-tab.lm-mod-current").first.inner_text().strip()
    if current != TITLES[0]:
        problems.append(f"the live view opens on the {current!r} tab, not the first clip's ({TITLES[0]!r})")
    labels = output.locator(".widget-tab .lm-TabBar-tabLabel")
    try:
        wait_for(lambda: [t.strip() for t in labels.all_inner_texts()], lambda t: t == TITLES,
                 f"the live view's tab titles to read {TITLES}", timeout_s=10)
    except AssertionError as exc:
        problems.append(str(exc))

    # --- fal's clip saved and Veo's filtered, while Omni still runs ----------------------------------------
    ended = live.wait(lambda c: c[FAL].word == "saved" and c[VEO].word == "filtered",
                      "fal's clip to be saved and Veo's to be filtered", timeout_s=RUN_S + OMNI_MORE_S)
    assert running(ended[OMNI]), f"Omni should still run while the others ended: {ended[OMNI]}"
    assert f"withheld by the provider's filter: {REASON}" in ended[VEO].text, ended[VEO].text
    assert clip_pane(output, VEO).locator("video").count() == 0, "the filtered clip has a player"
    output.locator(".widget-tab .lm-TabBar-tab", has_text="minimax/hailuo-02/standard").click()
    video = clip_pane(output, FAL).locator("video")
    # The status line and the player are separate widgets: the browser may draw "saved" a moment before the
    # player's model arrives.
    count = wait_for(video.count, lambda n: n > 0, "fal's saved clip to get a player", timeout_s=30)
    assert count == 1, f"fal's saved clip has {count} players"
    state = assert_plays(video, CLIP_S[FAL], "the live view, fal")
    print("live player:", {k: v for k, v in state.items() if k not in ("src", "current")})
    omni = live.read()[OMNI]
    assert running(omni), f"Omni ended before fal's player was checked: {omni} (raise OMNI_MORE_S)"
    shot(page, "2-one-saved-one-filtered", VIDEO_SHOTS)

    # --- finished: the live view gives way to the static report -------------------------------------------
    wait_text(output, lambda t: HEADING in t, "the run to finish", timeout_s=OMNI_MORE_S + 90)
    live.assert_truthful()
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]")).wait_for()
    wait_kernel_idle(page)
    assert_report(output, "after the run")
    shot(page, "3-finished", VIDEO_SHOTS)
    assert_no_widget_errors(page)

    # --- saved to disk ---------------------------------------------------------------------------------
    dirty = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty", has_text=NOTEBOOK)
    dirty.wait_for()
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    dirty.wait_for(state="detached")
    saved = wait_for(lambda: saved_outputs(path), lambda s: HEADING in s, f"{HEADING!r} in the saved outputs")
    assert "application/vnd.jupyter.widget-view+json" not in saved, "the saved output is still the widget"
    assert "<video controls" in saved and "videos/" in saved, f"no players in the saved output: {saved[:2000]!r}"
    text = path.read_text(encoding="utf-8")
    for key in emu.test_keys().values():
        assert key not in text, "an API key was saved in the notebook"
    json.loads(text)  # the file is whole
    return problems
