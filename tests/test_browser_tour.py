"""The README's tour, taken by a real browser: headless Chromium (Debian's, driven by Playwright) runs one notebook
in JupyterLab against the loopback emulator (scripted answers, no key) and photographs what a reader would see:

1. ``fuse-streaming.png``: a ``%%fuse`` cell while its three members stream (the overview filling, the tabs);
2. ``fuse-judge.png``: the finished report with its Judge section open: the verdict and the who-said-what table;
3. ``fuse-ledger.png``: the same report with its Cost & latency section open: the ledger, a row per call;
4. ``video-compare.png``: a ``%%video`` pool's live view on its Compare tab, the clips side by side, while the
   check still runs;
5. ``eval-plot.png``: ``%fuse eval`` over two models and a vote, and ``ev.plot()``;
6. ``thread.png``: a ``%%fuse --attach chart.png`` cell and its ``--continue`` follow-up, the thread unfolded.

Each picture is checked before it is kept: the page shows what the caption will say (every member streaming, the
table's stances, the ledger's rows and total, the three clips loaded at the scrubber's place, the plot decoded,
the thread's first turn with its thumbnail). Pictures are cropped to their cells (Playwright element and clip
screenshots), PNG, each under 200 KB. Only a run whose every check passed writes them, with a provenance record
per file (MANIFEST.json: the test, the date, the commit, the file's SHA-256) that tests/test_readme_screenshots.py
reads.

They go to build/browser-test/tour/; the README's copies are refreshed with
``FUSION_MAGIC_SHOTS=docs/screenshots .venv/bin/python -m pytest -q -s tests/test_browser_tour.py``.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` and ``plot`` extras (jupyterlab,
playwright, matplotlib).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser import (
    SHOTS,
    assert_no_widget_errors,
    cell_output,
    run_all_cells,
    run_in_browser,
    table_rows,
    wait_cell_done,
    wait_for,
    wait_text,
)
from PIL import Image
from test_browser_eval import DATA_CELL, IMAGE_JS, QUESTIONS, member
from test_browser_thread import (
    CHART_CELL,
    FIRST_ANSWER,
    FIRST_PROMPT,
    SECOND_ANSWER,
    SECOND_PROMPT,
    THREAD_TITLE,
    assert_thumbnail,
    judge_reply,
)
from test_browser_video_compare import (
    CHECKER,
    CLIP_S,
    HEADING,
    MODELS,
    POLL_S,
    RUN_S,
    SCORE,
    SEEK_S,
    VIDEO_CELL,
    grid_state,
    scrub_to,
    settled,
)

from fusion_magic.testing import Emulator, ModelScript, VideoScript, content_judge
from fusion_magic.testing.judges import by_prompt

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # One JupyterLab start, a kernel start and nine cells: a fused run, a video pool whose check takes CHECK_S,
    # an evaluation and a two-turn conversation.
    pytest.mark.timeout(900),
]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "tour.ipynb"
# Where the pictures go: this variable (a folder, relative to the repository), else build/browser-test/tour/.
SHOTS_VAR = "FUSION_MAGIC_SHOTS"
TOUR_SHOTS = SHOTS / "tour"
MANIFEST = "MANIFEST.json"
MAX_BYTES = 200_000
# Kept in full colour under this size; above it the picture is reduced to 256 colours (text stays sharp).
FULL_COLOUR_BYTES = 150_000
# The file browser folded away, an output area about 950 px wide: readable where the README shows it (GitHub
# scales wider pictures down). Tall enough that two cells fit whole.
VIEWPORT = (1100, 2400)

# ---- the notebook --------------------------------------------------------------------------------------------

GPT, CLAUDE, GEMINI = "openai:gpt-4o", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-pro"
JUDGE = "openai:gpt-4.1"
QUESTION = "How many moons does Mars have, and where did they come from?"
ANSWERS = {
    GPT: "Mars has two moons, Phobos and Deimos. Both are small and lumpy, and for a long time astronomers "
         "took them for captured asteroids from the nearby belt, although their near-circular orbits are hard "
         "to explain that way.",
    CLAUDE: "Two: Phobos and Deimos. A growing body of evidence says they formed from debris thrown up by a "
            "giant impact on Mars, which fits their circular, equatorial orbits. Phobos is spiralling inward "
            "and will break apart in about 50 million years.",
    GEMINI: "Mars has two small moons, Phobos and Deimos. Their origin is still open: captured asteroids and "
            "debris from an impact both have support, and JAXA's MMX mission plans to bring back a sample of "
            "Phobos to settle it.",
}
MERGED = ("Mars has two moons, Phobos and Deimos. Where they came from is still debated: their lumpy shapes "
          "look like captured asteroids, but their circular, equatorial orbits fit debris from a giant impact "
          "better; JAXA's MMX mission plans to bring back a sample of Phobos to settle it.")
# The judge's analysis, given by what each answer says (``content_judge``): a row per topic in the table.
ORIGIN = "Where the moons came from"
ORBITS = "What the orbits say"
STANCES = {
    ORIGIN: {"still open": "still open", "giant impact": "debris of a giant impact",
             "captured asteroid": "captured asteroids"},
    ORBITS: {"hard to explain": "hard to square with capture", "fits their circular": "fit an impact origin"},
}
# Each member's first token comes after its own wait, then it streams at its own pace: the overview fills
# unevenly, and all three stream together for several seconds (the picture is taken then).
PACE = {GPT: (1.0, 6.0), CLAUDE: (1.5, 5.0), GEMINI: (2.0, 7.0)}  # (seconds to the first token, tokens/s)
FUSE_CELL = f"%%fuse -p {GPT},{CLAUDE},{GEMINI} -j {JUDGE} -m merge -o r\n{QUESTION}"

# The clips are made while the check waits this long: the live view keeps its Compare tab meanwhile.
CHECK_S = 30.0
SCRUB_S = 1.5

LLAMA, MISTRAL = "meta-llama/llama-3.3-70b-instruct", "mistralai/mistral-small-3.2-24b-instruct"
EVAL_POOL = [f"openrouter:{LLAMA}", f"openrouter:{MISTRAL}"]
WRONG = {LLAMA: {"What is 5 x 5?": "24"},
         MISTRAL: {"What is 3 + 3?": "5", "What is 10 - 3?": "8", "What is the capital of France?": "Lyon"}}
# What OpenRouter reports per call. Close to each other, so both singles sit left of the vote (their sum) on the
# plot and their labels have room to its right.
EVAL_COST = {LLAMA: 0.00012, MISTRAL: 0.0001}
EVAL_ROWS = len(QUESTIONS) * 3  # two singles and the vote
EVAL_CELL = f"%fuse eval questions -p {','.join(EVAL_POOL)} --strategies single,vote -j vote --concurrency 2 -o ev"
EVAL_DONE = re.compile(rf"evaluated {EVAL_ROWS} of {EVAL_ROWS} rows in \d+\.\d s")

SMALL, SMALL2, CHAT_JUDGE = "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini"
ATTACH_CELL = f"%%fuse -p {SMALL},{SMALL2} -j {CHAT_JUDGE} -m merge -o chat --attach chart.png\n{FIRST_PROMPT}"
FOLLOW_CELL = f"%%fuse --continue chat -o chat2\n{SECOND_PROMPT}"

CELLS = [f"%load_ext fusion_magic\n%config VideoMagics.poll = {POLL_S}", FUSE_CELL, VIDEO_CELL, DATA_CELL,
         EVAL_CELL, "ev.plot()", CHART_CELL, ATTACH_CELL, FOLLOW_CELL]
FUSE, VIDEO, EVAL, PLOT, ATTACH, FOLLOW = 1, 2, 4, 5, 7, 8


def name(model_id: str) -> str:
    """The model as the emulator is scripted for it (the id without its provider)."""
    return model_id.split(":", 1)[1]


@pytest.fixture
def tour_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        for model, text in ANSWERS.items():
            ttft, rate = PACE[model]
            emu.script(name(model), ModelScript(reply=text, ttft_s=ttft, tokens_per_s=rate))
        emu.script(name(JUDGE), ModelScript(reply=content_judge(
            "giant impact", merged=MERGED, contradictions=STANCES,
            consensus=["Mars has two moons, Phobos and Deimos."],
            unique={"50 million years": "Phobos will break apart in about 50 million years.",
                    "MMX": "A sample return (JAXA's MMX) should settle the question."},
            blind_spots=["None says when the moons were found (Asaph Hall, 1877)."])))
        for model, seconds in zip(MODELS, CLIP_S, strict=True):
            emu.script(name(model), VideoScript(seconds=RUN_S, clip_seconds=seconds))
        check = json.dumps({"score": SCORE, "reasons": ["0:01 a paper boat"]})
        emu.script(name(CHECKER), ModelScript(reply=check, ttft_s=CHECK_S))
        for model in (LLAMA, MISTRAL):
            emu.script(model, ModelScript(reply=member(WRONG[model]), ttft_s=0.1, cost_usd=EVAL_COST[model]))
        chat = by_prompt({"chart": "A line chart of sales over four quarters: 1, 4, 2 and 5, ending at its highest.",
                          "rise": "The fourth quarter holds the holiday season, when sales usually peak."})
        for model in (SMALL, SMALL2):
            emu.script(name(model), ModelScript(reply=chat, tokens_per_s=40))
        emu.script(name(CHAT_JUDGE), ModelScript(reply=judge_reply))
        yield emu


# ---- pictures ------------------------------------------------------------------------------------------------


def small_png(raw: bytes) -> bytes:
    """``raw`` (a screenshot) as a small PNG: full colour when that is small enough, else 256 colours."""
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    if out.tell() > FULL_COLOUR_BYTES:
        out = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            out, "PNG", optimize=True)
    data = out.getvalue()
    assert len(data) < MAX_BYTES, f"a screenshot of {image.size} is {len(data)} bytes even in 256 colours"
    return data


def calm(page: Page) -> None:
    """The page as a reader leaves it: the first cell selected (so the cell photographed is not drawn as the
    active one, with its blue bar and toolbar) and the mouse away from everything."""
    cell(page, 0).locator(".jp-InputPrompt").click()
    page.mouse.move(0, 0)


def fold_file_browser(page: Page) -> None:
    """Fold JupyterLab's left side panel (the file browser), as a reader does for room: clicking its open tab."""
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").first.click()
    page.locator("#jp-left-stack").wait_for(state="hidden")


def element_png(page: Page, element: Locator) -> bytes:
    """One element, cropped to its box."""
    calm(page)
    element.scroll_into_view_if_needed()
    return small_png(element.screenshot(animations="disabled", caret="hide"))


def region_png(page: Page, first: Locator, last: Locator) -> bytes:
    """From the top of ``first`` to the bottom of ``last`` (cells of one notebook), as one picture: both are
    scrolled into the viewport together, or this fails saying so."""
    calm(page)
    first.evaluate("e => e.scrollIntoView({block: 'start'})")
    top, bottom = first.bounding_box(), last.bounding_box()
    assert top is not None and bottom is not None, "a cell to photograph is not on the page"
    left = min(top["x"], bottom["x"])
    right = max(top["x"] + top["width"], bottom["x"] + bottom["width"])
    end = bottom["y"] + bottom["height"]
    assert end <= VIEWPORT[1], f"the cells span {end - top['y']:.0f} px: more than the viewport shows"
    raw = page.screenshot(clip={"x": left, "y": top["y"], "width": right - left, "height": end - top["y"]},
                          animations="disabled", caret="hide")
    return small_png(raw)


def cell(page: Page, n: int) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell").nth(n)


def commit() -> str:
    """The commit the pictures were taken at (``-dirty`` when tracked files had changes), as bench/ says it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("-dirty" if dirty else "")


def target_folder() -> Path:
    value = os.environ.get(SHOTS_VAR, "").strip()
    if not value:
        return TOUR_SHOTS
    folder = Path(value)
    return folder if folder.is_absolute() else ROOT / folder


def publish(pictures: Mapping[str, bytes], folder: Path, test: str) -> Path:
    """Write ``pictures`` into ``folder`` and their provenance into its MANIFEST.json (entries for other files
    are kept: another test may have made them). Returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    entries: dict[str, dict[str, Any]] = {}
    if path.exists():
        entries = {e["file"]: e for e in json.loads(path.read_text(encoding="utf-8"))["screenshots"]}
    when, at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit()
    for file, data in pictures.items():
        (folder / file).write_bytes(data)
        width, height = Image.open(io.BytesIO(data)).size
        entries[file] = {"file": file, "test": test, "date": when, "commit": at,
                         "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                         "width": width, "height": height}
    manifest = {"about": "Screenshots taken by the browser tests (tests/test_browser_tour.py); "
                         "tests/test_readme_screenshots.py checks each file against its entry.",
                "screenshots": list(entries.values())}
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


# ---- what each picture must show -----------------------------------------------------------------------------


def streaming(output: Locator) -> dict[str, int]:
    """Each member the overview shows streaming, with its live token count."""
    counts: dict[str, int] = {}
    for row in output.locator(".fusion-magic-row").all():
        if row.is_visible():
            found = re.search(r"^(\S+).*?· streaming · ~?(\d+) tok", row.inner_text(), re.S)
            if found:
                counts[found.group(1)] = int(found.group(2))
    return counts


def fuse_streaming(page: Page) -> bytes:
    output = cell_output(page, FUSE)
    output.locator(".widget-tab").first.wait_for()
    members = sorted(name(m) for m in ANSWERS)
    wait_for(lambda: streaming(output), lambda c: sorted(c) == members and min(c.values()) >= 4,
             "all three members streaming on the overview", timeout_s=60)
    picture = element_png(page, cell(page, FUSE))
    after = streaming(output)
    assert sorted(after) == members, f"a member stopped streaming while the picture was taken: {after}"
    titles = [t.strip() for t in output.locator(".widget-tab .lm-TabBar-tabLabel").all_inner_texts()]
    assert titles == ["Overview", "Fused", "Judge", *(name(m) for m in ANSWERS), "Cost & latency"], titles
    return picture


def open_section(output: Locator, cls: str) -> Locator:
    """Unfold the report's section ``details.<cls>`` (folding the others) and return it."""
    for other in output.locator("details.fm-judge[open], details.fm-members[open], details.fm-ledger[open]").all():
        other.locator("summary").first.click()
    section = output.locator(f"details.{cls}").first
    section.locator("summary").first.click()
    wait_for(lambda: section.get_attribute("open"), lambda v: v is not None, f"the {cls} section to open")
    return section


def fuse_judge(page: Page) -> bytes:
    output = cell_output(page, FUSE)
    wait_text(output, lambda t: "Fused answer" in t, "the fused run's report")
    judge = open_section(output, "fm-judge")
    text = judge.inner_text()
    assert "Who said what" in text and "Asaph Hall" in text, f"the Judge section reads {text[:2000]!r}"
    table = judge.locator("table", has_text="contradiction").first
    rows = {r["contradiction"]: r for r in table_rows(table)}
    assert rows[ORIGIN] == {"contradiction": ORIGIN, GPT: "captured asteroids", CLAUDE: "debris of a giant impact",
                            GEMINI: "still open"}, rows
    assert rows[ORBITS][GEMINI] == "not addressed", rows
    assert "giant impact" in output.locator("p", has_text="Mars has two moons").first.inner_text()
    return element_png(page, output)


def fuse_ledger(page: Page) -> bytes:
    output = cell_output(page, FUSE)
    ledger = open_section(output, "fm-ledger")
    rows = table_rows(ledger.locator("table").first)
    models = [r["model"] for r in rows]
    assert models[:5] == [GPT, CLAUDE, GEMINI, JUDGE, "TOTAL"], models
    costs = [r["cost $"] for r in rows[:5]]
    assert all(re.fullmatch(r"\d+\.\d+", c) for c in costs), f"a call's cost or the total is unknown: {rows}"
    return element_png(page, output)


def video_compare(page: Page) -> bytes:
    output = cell_output(page, VIDEO)
    tab = output.locator(".widget-tab .lm-TabBar-tab", has_text=re.compile(r"^Compare$"))
    tab.wait_for(timeout=120_000)
    tab.click()
    grid = output.locator(".widget-tab .fm-compare")
    wait_for(lambda: grid_state(grid), lambda s: len(s["videos"]) == len(MODELS)
             and all(v["ready"] >= 1 for v in s["videos"]), "the three clips' metadata in the Compare tab")
    scrub_to(grid, SCRUB_S)
    # Every player has the frame at the scrubber's place (readyState 2: current data), so none is blank.
    state = wait_for(lambda: grid_state(grid),
                     lambda s: settled(s) and all(v["ready"] >= 2 and abs(v["t"] - min(SCRUB_S, v["d"])) <= SEEK_S
                                                  for v in s["videos"]),
                     f"every clip at {SCRUB_S} s", timeout_s=20)
    picture = element_png(page, cell(page, VIDEO))
    assert not any(v["error"] for v in state["videos"]), state
    assert HEADING not in output.inner_text(), "the run ended before the live Compare tab was photographed"
    return picture


def eval_plot(page: Page) -> bytes:
    output = cell_output(page, EVAL)
    wait_text(output, lambda t: EVAL_DONE.search(t) is not None, "the evaluation to finish", timeout_s=CHECK_S + 120)
    image = cell_output(page, PLOT).locator("img").first
    image.wait_for(timeout=60_000)
    state = wait_for(lambda: dict(image.evaluate(IMAGE_JS)), lambda s: s["complete"], "the plot to load")
    assert state["src"].startswith("data:image/png") and state["width"] > 0, f"the plot did not decode: {state}"
    strategies = [r["strategy"] for r in table_rows(output.locator("table").first)]
    assert strategies == [f"single:{EVAL_POOL[0]}", f"single:{EVAL_POOL[1]}", "vote"], strategies
    return region_png(page, cell(page, EVAL), cell(page, PLOT))


def thread(page: Page) -> bytes:
    first, second = cell_output(page, ATTACH), cell_output(page, FOLLOW)
    wait_text(second, lambda t: SECOND_ANSWER in t, "the follow-up's report", timeout_s=120)
    wait_cell_done(page, FOLLOW)
    assert FIRST_ANSWER in first.inner_text(), first.inner_text()[:2000]
    assert_thumbnail(first.locator(".fusion-magic-report img.fm-thumb").first, "the attaching cell")
    summary = second.locator("details.fm-thread > summary").first
    assert THREAD_TITLE in summary.inner_text(), summary.inner_text()
    summary.click()
    earlier = second.locator("details.fm-thread").first
    assert earlier.get_by_text(FIRST_PROMPT).first.is_visible(), "the thread does not unfold"
    assert_thumbnail(earlier.locator("img.fm-thumb").first, "the first turn in the thread")
    return region_png(page, cell(page, ATTACH), cell(page, FOLLOW))


# ---- the test ----------------------------------------------------------------------------------------------


def test_tour_screenshots_in_jupyterlab(tour_emulator: Emulator, tmp_path: Path,
                                        request: pytest.FixtureRequest) -> None:
    pictures: dict[str, bytes] = {}

    def tour(page: Page, path: Path) -> None:
        fold_file_browser(page)
        run_all_cells(page)
        pictures["fuse-streaming.png"] = fuse_streaming(page)
        pictures["fuse-judge.png"] = fuse_judge(page)
        pictures["fuse-ledger.png"] = fuse_ledger(page)
        pictures["video-compare.png"] = video_compare(page)
        pictures["eval-plot.png"] = eval_plot(page)
        pictures["thread.png"] = thread(page)
        assert_no_widget_errors(page)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
        assert errors.count() == 0, f"a cell raised: {errors.all_inner_texts()}"

    run_in_browser(tmp_path, tour_emulator, CELLS, NOTEBOOK, TOUR_SHOTS, run=tour, viewport=VIEWPORT)
    manifest = publish(pictures, target_folder(), request.node.nodeid)
    for file, data in pictures.items():
        print(f"screenshot: {manifest.parent / file} ({len(data)} bytes)")
