"""The Compare view of a ``%%video`` run in JupyterLab, seen by a real browser: headless Chromium (Debian's, driven
by Playwright) runs a notebook against the loopback emulator with three video models (Gemini Omni, fal and Veo,
clips of 4, 3 and 2 seconds) checked by a slow model, and checks that the grid plays the clips together:

1. in the live widget view, once the three clips are saved (while the check still runs), a "Compare" tab after
   the clips' tabs: its one play button starts every clip and their ``currentTime`` advance together (within a
   tolerance); pause stops them all; the one scrubber moves them all (a shorter clip to its last frame);
   played from the scrubber's place, a shorter clip holds its last frame while the longest goes on, and the
   grid stops when the longest ends;
2. the same in the static report that replaces the view when the run ends (a "Compare (3 clips)" section whose
   players load the saved files through the Jupyter server);
3. the same after a save, a new server and a reopen (no kernel run): the saved notebook keeps the grid and its
   fixed handlers, and each clip's label, model, cost, length and check score under it.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra (jupyterlab, playwright).
Screenshots go to build/browser-test/video-compare/. Run alone with
``.venv/bin/python -m pytest -q -s tests/test_browser_video_compare.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
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

from fusion_magic.testing import Emulator, ModelScript, VideoScript

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # Two JupyterLab starts (20-30 s each on two cores), a kernel start and a run of about 50 s.
    pytest.mark.timeout(600),
]

NOTEBOOK = "compare.ipynb"
COMPARE_SHOTS = SHOTS / "video-compare"
OMNI = "gemini:gemini-omni-1.2-flash"
FAL = "fal:fal-ai/minimax/hailuo-02/standard/text-to-video"
VEO = "gemini:veo-3.1-generate-preview"
CHECKER = "gemini:gemini-2.5-flash"
# Pool order is grid order. Each clip's length: different, so the scrubber spans the longest (Omni's) and the
# shortest (Veo's) ends first.
MODELS = [OMNI, FAL, VEO]
CLIP_S = [4.0, 3.0, 2.0]
SCORE = 7
RUN_S = 3.0
# The check runs after the three clips are saved: while it runs, the live view shows the Compare tab.
CHECK_S = 45.0
POLL_S = 0.5
SETUP_CELL = f"%load_ext fusion_magic\n%config VideoMagics.poll = {POLL_S}"
VIDEO_CELL = (f"%%video -p {','.join(MODELS)} --seconds 6 --check {CHECKER} -o clips\n"
              "A paper boat drifting down a rainy street")
HEADING = "Clips (3 of 3 saved)"
SECTION = "Compare (3 clips)"
# How far apart the clips' current times may be while they play together: the grid puts back a clip more than
# 0.25 s off, every 0.1 s.
SYNC_S = 0.35
# How close a clip is to where the scrubber put it, once the seek is done (a frame is 1/24 s).
SEEK_S = 0.1

GRID_JS = """g => ({
    videos: [...g.querySelectorAll('video')].map(v => ({t: v.currentTime, paused: v.paused, ended: v.ended,
        d: isFinite(v.duration) ? v.duration : -1, ready: v.readyState, seeking: v.seeking, muted: v.muted,
        controls: v.controls, autoplay: v.autoplay, loop: v.loop, src: v.currentSrc,
        error: v.error ? v.error.code + ' ' + v.error.message : null})),
    scrub: parseFloat(g.querySelector('input.fm-compare-scrub').value),
    max: parseFloat(g.querySelector('input.fm-compare-scrub').max),
    button: g.querySelector('button.fm-compare-play').textContent,
    time: (g.querySelector('.fm-compare-time') || {}).textContent})"""


# The report's Compare section starts open, above the clips' own sections.
ABOVE_JS = """r => { const d = r.querySelector('details.fm-compare-section'), c = r.querySelector(':scope > div');
    return !!d && d.open && !!c && !!(d.compareDocumentPosition(c) & Node.DOCUMENT_POSITION_FOLLOWING) }"""


def grid_state(grid: Locator) -> dict[str, Any]:
    """Every player of the grid at one instant (one evaluate), and the scrubber and button."""
    return dict(grid.evaluate(GRID_JS))


def times(state: dict[str, Any]) -> list[float]:
    return [round(v["t"], 3) for v in state["videos"]]


def spread(state: dict[str, Any], among: list[int] | None = None) -> float:
    ts = [state["videos"][i]["t"] for i in (among if among is not None else range(len(state["videos"])))]
    return max(ts) - min(ts)


def settled(state: dict[str, Any]) -> bool:
    return not any(v["seeking"] for v in state["videos"])


def scrub_to(grid: Locator, seconds: float) -> None:
    """Move the scrubber as a reader drags it: its value set, an ``input`` event (what the handler listens to)."""
    grid.locator("input.fm-compare-scrub").fill(f"{seconds}")


def assert_plays_in_sync(page: Page, grid: Locator, where: str) -> list[str]:
    """The grid's shared controls drive every clip together; returns what was seen, for the log."""
    log: list[str] = []
    state = wait_for(lambda: grid_state(grid),
                     lambda s: len(s["videos"]) == len(MODELS)
                     and all(v["ready"] >= 1 or v["error"] for v in s["videos"]),
                     f"{where}: the grid's three players to load their clips' metadata")
    assert not any(v["error"] for v in state["videos"]), f"{where}: a player cannot load its clip: {state}"
    durations = [v["d"] for v in state["videos"]]
    assert all(abs(d - s) <= 0.15 for d, s in zip(durations, CLIP_S, strict=True)), \
        f"{where}: the players' durations {durations} are not the clips' {CLIP_S}: {state}"
    assert not any(v["controls"] or v["autoplay"] or v["loop"] for v in state["videos"]), f"{where}: {state}"
    assert all(v["paused"] and v["t"] == 0 for v in state["videos"]), f"{where}: played before asked: {state}"
    assert abs(state["max"] - CLIP_S[0]) <= 0.15, f"{where}: the scrubber does not span the longest clip: {state}"

    # --- one play button starts them all, and they advance together --------------------------------------
    button = grid.locator("button.fm-compare-play")
    button.click()
    first = wait_for(lambda: grid_state(grid), lambda s: all(v["t"] >= 0.5 for v in s["videos"]),
                     f"{where}: every clip to play past 0.5 s after the shared play", timeout_s=20)
    later = wait_for(lambda: grid_state(grid), lambda s: s["videos"][0]["t"] >= first["videos"][0]["t"] + 0.6,
                     f"{where}: the clips to play on", timeout_s=20)
    log.append(f"{where}: playing {times(first)} -> {times(later)}, scrubber {later['scrub']:.2f}")
    for s in (first, later):
        assert not any(v["paused"] for v in s["videos"]), f"{where}: a clip is not playing: {s}"
        assert all(v["muted"] for v in s["videos"]), f"{where}: the grid plays with sound: {s}"
        assert spread(s) <= SYNC_S, f"{where}: the clips are {spread(s):.2f} s apart: {times(s)}"
    assert all(b["t"] > a["t"] + 0.3 for a, b in zip(first["videos"], later["videos"], strict=True)), \
        f"{where}: not every clip advanced: {times(first)} -> {times(later)}"
    assert abs(later["scrub"] - later["videos"][0]["t"]) <= 0.35 and later["scrub"] > 0.5, \
        f"{where}: the scrubber does not follow the clips: {later}"
    assert "Pause" in later["button"], f"{where}: the button reads {later['button']!r} while playing"

    # --- pause stops them all --------------------------------------------------------------------------------
    button.click()
    paused = wait_for(lambda: grid_state(grid), lambda s: all(v["paused"] for v in s["videos"]),
                      f"{where}: every clip to pause", timeout_s=10)
    assert "Play" in paused["button"] and spread(paused) <= SYNC_S, f"{where}: {paused}"

    # --- the scrubber moves them all; a shorter clip to its last frame ---------------------------------------
    scrub_to(grid, 1.0)
    moved = wait_for(lambda: grid_state(grid),
                     lambda s: settled(s) and all(abs(v["t"] - 1.0) <= SEEK_S for v in s["videos"]),
                     f"{where}: the scrubber to move every clip to 1.0 s", timeout_s=10)
    scrub_to(grid, 3.5)
    past = wait_for(lambda: grid_state(grid),
                    lambda s: settled(s) and all(abs(v["t"] - min(3.5, v["d"])) <= SEEK_S for v in s["videos"]),
                    f"{where}: the scrubber to move the clips to 3.5 s (a shorter one to its end)", timeout_s=10)
    assert all(v["paused"] for v in past["videos"]), f"{where}: the scrubber started a paused grid: {past}"
    log.append(f"{where}: scrubbed to 1.0 {times(moved)}, to 3.5 {times(past)}")

    # --- played from 1.0 s: the shortest clip holds its last frame while the others go on; all stop at the end -
    scrub_to(grid, 1.0)
    wait_for(lambda: grid_state(grid), lambda s: settled(s) and all(abs(v["t"] - 1.0) <= SEEK_S for v in s["videos"]),
             f"{where}: the clips back at 1.0 s", timeout_s=10)
    button.click()
    on = wait_for(lambda: grid_state(grid), lambda s: s["videos"][0]["t"] >= CLIP_S[2] + 0.5,
                  f"{where}: the longest clip to play past the shortest's end", timeout_s=20)
    shortest = on["videos"][2]
    assert shortest["t"] >= shortest["d"] - SEEK_S and shortest["paused"], \
        f"{where}: the shortest clip does not hold its last frame: {on}"
    assert spread(on, [0, 1]) <= SYNC_S and not on["videos"][0]["paused"], f"{where}: {times(on)}"
    end = wait_for(lambda: grid_state(grid), lambda s: "Play" in s["button"],
                   f"{where}: the grid to stop when the longest clip ends", timeout_s=20)
    assert all(v["paused"] for v in end["videos"]) and end["videos"][0]["ended"], f"{where}: {end}"
    assert abs(end["scrub"] - CLIP_S[0]) <= 0.15, f"{where}: the scrubber is not at the end: {end}"
    log.append(f"{where}: played from 1.0 {times(on)}, ended {times(end)}")
    shot(page, f"compare-{where.replace(' ', '-')}", COMPARE_SHOTS)
    return log


def assert_captions(grid: Locator, where: str, scored: bool) -> None:
    """Each clip's label, model, length, cost (and check score, once the check ran) under its player."""
    captions = [" ".join(t.split()) for t in grid.locator(".fm-compare-caption").all_inner_texts()]
    assert len(captions) == len(MODELS), f"{where}: {captions}"
    for caption, model, seconds in zip(captions, MODELS, CLIP_S, strict=True):
        assert model in caption and f"{seconds:.1f} s" in caption and "$" in caption, f"{where}: {caption!r}"
        if scored:
            assert f"score {SCORE}/10" in caption, f"{where}: no check score: {caption!r}"


# ---- the test ----------------------------------------------------------------------------------------------


@pytest.fixture
def compare_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        for model, seconds in zip(MODELS, CLIP_S, strict=True):
            emu.script(model.split(":", 1)[1], VideoScript(seconds=RUN_S, clip_seconds=seconds))
        reply = json.dumps({"score": SCORE, "reasons": ["0:01 a paper boat"]})
        emu.script(CHECKER.split(":", 1)[1], ModelScript(reply=reply, ttft_s=CHECK_S))
        yield emu


def test_compare_plays_in_sync_in_jupyterlab_with_chromium(compare_emulator: Emulator, tmp_path: Path) -> None:
    log = run_then_reopen(tmp_path, compare_emulator, [SETUP_CELL, VIDEO_CELL], NOTEBOOK, COMPARE_SHOTS,
                          run=run_and_save, reopened=check_reopened)
    print("\n".join(log))


def report_grid(output: Locator) -> Locator:
    return output.locator(".fusion-magic-report .fm-compare")


def assert_report(output: Locator, where: str) -> None:
    text = output.inner_text()
    assert HEADING in text and SECTION in text, f"{where}: no Compare section: {text[:2000]!r}"
    assert output.locator(".widget-tab").count() == 0, f"{where}: the live widget is still shown"
    assert output.locator(".fusion-magic-report").evaluate(ABOVE_JS), f"{where}: the Compare section is not open " \
        "above the clips' own sections"
    grid = report_grid(output)
    assert grid.count() == 1, f"{where}: {grid.count()} grids"
    assert grid.locator("video").count() == len(MODELS)
    assert_captions(grid, where, scored=True)


def run_and_save(page: Page, path: Path) -> list[str]:
    run_all_cells(page)
    output = cell_output(page, 1)
    log: list[str] = []

    # --- the live view: the Compare tab once the three clips are saved, while the check runs ----------------
    tab = output.locator(".widget-tab .lm-TabBar-tab", has_text=re.compile(r"^Compare$"))
    tab.wait_for(timeout=90_000)
    titles = [t.strip() for t in output.locator(".widget-tab .lm-TabBar-tabLabel").all_inner_texts()]
    assert titles.index("Compare") == len(MODELS), f"the Compare tab is not after the clips' tabs: {titles}"
    tab.click()
    live = output.locator(".widget-tab .fm-compare")
    assert live.count() == 1
    assert_captions(live, "the live view", scored=False)
    log += assert_plays_in_sync(page, live, "the live view")
    running = " ".join(output.inner_text().split())
    assert HEADING not in running, "the run ended before the live grid was checked (raise CHECK_S)"

    # --- the static report that replaces the view ------------------------------------------------------------
    wait_text(output, lambda t: HEADING in t, "the run to finish", timeout_s=CHECK_S + 90)
    wait_cell_done(page, 1)
    assert_report(output, "after the run")
    grid = report_grid(output)
    srcs = [v["src"] for v in grid_state(grid)["videos"]]
    log += assert_plays_in_sync(page, grid, "the report")
    assert all("/files/videos/" in s and ".mp4" in s for s in srcs), f"the report's players: {srcs}"
    assert_no_widget_errors(page)

    # --- saved: the grid and its fixed handlers are in the file ------------------------------------------------
    save_notebook(page, NOTEBOOK)
    saved = wait_for(lambda: saved_outputs(path), lambda s: SECTION in s, f"{SECTION!r} in the saved outputs")
    assert "application/vnd.jupyter.widget-view+json" not in saved, "the saved output is still the widget"
    assert saved.count("fm-compare-clip") == len(MODELS) and "onclick" in saved and "oninput" in saved
    text = path.read_text(encoding="utf-8")
    assert not any(key in text for key in Emulator.test_keys().values()), "an API key was saved in the notebook"
    return log


def check_reopened(page: Page) -> None:
    """The saved notebook on a fresh server, no kernel run: the Compare section still plays in sync."""
    output = cell_output(page, 1)
    wait_text(output, lambda t: SECTION in t, "the saved output")
    assert_report(output, "after reopening")
    for line in assert_plays_in_sync(page, report_grid(output), "after reopening"):
        print(line)
    assert_no_widget_errors(page)
