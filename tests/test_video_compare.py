"""The Compare view of a ``%%video`` run: with three saved clips or more, a grid that plays them side by side in
sync (one play/pause button, one scrubber), each clip's label, model, length, cost and check under it; in the live
widget view (a "Compare" tab after the clips' tabs) and in the static report a saved notebook keeps (a "Compare
(N clips)" section that starts open, above the clips' own sections).

The grid's only script is two fixed handler strings (``present.compare``), which ``assert_inert`` accepts verbatim
on their own tag and attribute, as it does the copy button's; every model id, label and file name is escaped.
The sync itself runs in a browser: tests/test_browser_video_compare.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets
import pytest
from html_checks import Tags, assert_inert
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.core.record import CallRecord
from fusion_magic.ipython.video import VideoMagics
from fusion_magic.present.compare import (
    COMPARE_CLASS,
    MIN_CLIPS,
    PLAY_HANDLER,
    SCRUB_HANDLER,
    caption_html,
    clip_figures,
    compare_html,
    controls_html,
)
from fusion_magic.present.sanitize import escape_text
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.testing.media import make_clip
from fusion_magic.videos.events import VideoRunFinished, VideoRunStarted, VideoUpdated
from fusion_magic.videos.report import html_report
from fusion_magic.videos.result import Video, VideoResult
from fusion_magic.videos.view import VideoView
from fusion_magic.view.video import ComparePane, VideoPane

EVIL = "<img src=x onerror=alert(1)>"
OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
FAL = "fal-ai/minimax/hailuo-02/standard/text-to-video"
POOL = f"gemini:{OMNI},gemini:{VEO},fal:{FAL}"
MODELS = [f"gemini:{OMNI}", f"gemini:{VEO}", f"fal:{FAL}"]
CLIP_S = {OMNI: 1.0, VEO: 1.5, FAL: 2.0}  # different lengths: the scrubber spans the longest


# --- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The notebook's folder, with three saved clips of different lengths under clips/."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    for n, seconds in enumerate((1.0, 1.5, 2.0)):
        make_clip(tmp_path / "clips" / f"c{n}.mp4", seconds=seconds)
    return tmp_path


def saved(video: Video, path: Path, seconds: float, cost: float | None, call_id: int) -> Video:
    """``video`` as the engine leaves it once its file is downloaded and measured."""
    video.status, video.path, video.seconds, video.resolution = "ok", path, seconds, "320x180"
    video.record = CallRecord(model=video.model, role="generate", label=video.label, status="ok", call_id=call_id,
                              latency_s=30.0, video_seconds=seconds, cost_usd=cost, cost_source="price table")
    return video


def three_saved(workdir: Path) -> list[Video]:
    clips = workdir / "clips"
    a = saved(Video(MODELS[0], "omni #1", "a boat"), clips / "c0.mp4", 1.0, 0.35, 1)
    b = saved(Video(MODELS[1], "veo #1", "a boat"), clips / "c1.mp4", 1.5, 0.6, 2)
    c = saved(Video(MODELS[2], "hailuo #1", "a boat"), clips / "c2.mp4", 2.0, None, 3)
    a.score, a.score_reasons, a.best = 8.0, "the boat floats", True
    b.score = 6.0
    return [a, b, c]


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return [(tag, dict(attrs)) for tag, attrs in parser.tags]


def compare_section(html: str) -> str:
    """The report's Compare section (its ``<details>``), "" when it has none."""
    found = re.search(r'<details class="fm-compare-section" open>.*?</details>', html, re.S)
    return found[0] if found else ""


def html_values(widget: widgets.Widget) -> Iterator[str]:
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


def all_html(widget: widgets.Widget) -> str:
    return "\n".join(html_values(widget))


def videos_in(widget: widgets.Widget) -> list[widgets.Video]:
    found = [widget] if isinstance(widget, widgets.Video) else []
    for child in getattr(widget, "children", ()):
        found += videos_in(child)
    return found


# --- the static report -----------------------------------------------------------------------------------


def test_the_report_compares_three_saved_clips_above_their_own_sections(workdir: Path) -> None:
    html = html_report(VideoResult(prompt="a boat", videos=three_saved(workdir)))
    section = compare_section(html)
    assert section, html[:2000]
    assert "<summary><b>Compare (3 clips)</b></summary>" in section
    # Above the clips' own sections, under the "Clips" heading.
    assert html.index("<h3>Clips (3 of 3 saved)</h3>") < html.index(section) < html.index("<p><b>omni #1</b>")

    found = tags(section)
    players = [a for t, a in found if t == "video"]
    assert players == [{"class": "fm-compare-clip", "muted": None, "playsinline": None, "preload": "metadata",
                        "src": f"clips/c{n}.mp4", "style": "width:100%;display:block;background:#000"}
                       for n in range(3)]  # no controls of their own, no autoplay, no loop; the files the
    # clips' own players point at (relative to the notebook), not data URLs
    own = [a["src"] for t, a in tags(html[html.index(section) + len(section):]) if t == "video"]
    assert own == [f"clips/c{n}.mp4" for n in range(3)]
    (button,) = [a for t, a in found if t == "button"]
    (scrub,) = [a for t, a in found if t == "input"]
    assert button["onclick"] == PLAY_HANDLER and button["class"] == "fm-compare-play"
    assert scrub["oninput"] == SCRUB_HANDLER and scrub["type"] == "range"
    assert (scrub["min"], scrub["max"], scrub["value"]) == ("0", "2.00", "0")  # the longest clip
    assert ">0.0 / 2.0 s</span>" in section
    assert next(a["class"] for t, a in found if t == "div") == COMPARE_CLASS

    # Each clip's label, model, length, cost and check score under its player, in pool order.
    text = re.sub(r"<[^>]+>", " ", section)
    text = " ".join(text.split())
    assert "omni #1 · gemini:gemini-omni-1.2-flash 1.0 s · $0.35 · score 8/10 (best)" in text
    assert "veo #1 · gemini:veo-3.1-fast-generate-preview 1.5 s · $0.60 · score 6/10" in text
    assert f"hailuo #1 · fal:{FAL} 2.0 s · cost unknown" in text  # not checked: no score word
    assert f"hailuo #1 · fal:{FAL} 2.0 s · cost unknown ·" not in text
    assert_inert(section)


def test_no_compare_with_fewer_than_three_saved_clips(workdir: Path) -> None:
    assert MIN_CLIPS == 3
    videos = three_saved(workdir)
    videos[2].status, videos[2].error = "failed", "server: HTTP 500"
    html = html_report(VideoResult(prompt="a boat", videos=videos))
    assert not compare_section(html) and "fm-compare" not in html and "Compare (" not in html
    assert len([t for t, _ in tags(html) if t == "video"]) == 2  # the clips' own players only
    # A fourth, saved: four in the grid.
    fourth = saved(Video(MODELS[0], "omni #2", "a boat"), workdir / "clips" / "c0.mp4", 1.0, 0.35, 4)
    videos[2].status = "ok"
    html = html_report(VideoResult(prompt="a boat", videos=[*videos, fourth]))
    assert "Compare (4 clips)" in html
    assert len([t for t, a in tags(compare_section(html)) if t == "video"]) == 4


def test_hostile_model_ids_labels_and_file_names_are_escaped(workdir: Path) -> None:
    videos = three_saved(workdir)
    odd = workdir / "clips" / 'my "boat" #1 <b>.mp4'
    (workdir / "clips" / "c0.mp4").rename(odd)
    videos[0].path = odd
    videos[0].model = "gemini:" + EVIL
    videos[1].label = EVIL
    videos[1].score_reasons = EVIL
    videos[2].notes = [EVIL]
    html = html_report(VideoResult(prompt=EVIL, videos=videos))
    section = compare_section(html)
    assert EVIL not in html and EVIL not in section
    assert escape_text(EVIL) in section  # shown as text, where it was
    src = [a["src"] for t, a in tags(section) if t == "video"]
    assert src[0] == "clips/my%20%22boat%22%20%231%20%3Cb%3E.mp4"
    assert_inert(section)
    # Nothing untrusted reaches a handler: both stay the fixed strings.
    found = tags(section)
    assert [a["onclick"] for t, a in found if t == "button"] == [PLAY_HANDLER]
    assert [a["oninput"] for t, a in found if t == "input"] == [SCRUB_HANDLER]
    assert sum(name.startswith("on") for _, a in found for name in a) == 2


def test_a_clip_outside_the_working_folder_keeps_its_path_in_the_grid(workdir: Path,
                                                                      tmp_path_factory: pytest.TempPathFactory
                                                                      ) -> None:
    videos = three_saved(workdir)
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "boat.mp4"
    (workdir / "clips" / "c2.mp4").rename(elsewhere)
    videos[2].path = elsewhere
    section = compare_section(html_report(VideoResult(prompt="p", videos=videos)))
    assert f'src="{elsewhere.as_posix()}"' in section
    assert_inert(section)


def test_figures_say_what_is_known() -> None:
    clip = Video(MODELS[0], "omni #1", "p", seconds=None, reused=True)
    clip.spec, clip.score, clip.best = (5, 6), 5.0, True
    assert clip_figures(clip) == "length unknown · from an earlier run, not paid again · spec 5/6 checks passed " \
                                 "(best spec)"
    clip = Video(MODELS[0], "omni #1", "p", seconds=4.0)
    assert clip_figures(clip) == "4.0 s · cost unknown"  # no check ran: no score word at all
    assert "score" not in caption_html(clip)


# --- assert_inert: exactly the fixed handlers --------------------------------------------------------------


def test_assert_inert_accepts_the_grid_and_refuses_any_other_handler(workdir: Path) -> None:
    videos = three_saved(workdir)
    grid = compare_html([(v, f"clips/c{n}.mp4") for n, v in enumerate(videos)])
    assert_inert(grid)
    assert_inert(controls_html(3.0))
    play = escape_text(PLAY_HANDLER)
    scrub = escape_text(SCRUB_HANDLER)
    bad = [
        # Another handler on the same elements, or the fixed ones where they do not belong.
        grid.replace(play, escape_text(PLAY_HANDLER + ";alert(1)")),
        grid.replace(scrub, "alert(1)"),
        grid.replace('oninput="', 'onchange="', 1),
        f'<button type="button" onclick="{scrub}">x</button>',
        f'<input class="fm-compare-scrub" type="range" oninput="{play}">',
        f'<div onclick="{play}">x</div>',
        f'<span oninput="{scrub}">x</span>',
        # A player of the grid with a handler, autoplay, controls, another source or class, or a script URL.
        grid.replace('<video class="fm-compare-clip"', f'<video onplay="{play}" class="fm-compare-clip"', 1),
        grid.replace('<video class="fm-compare-clip"', '<video autoplay class="fm-compare-clip"', 1),
        grid.replace('<video class="fm-compare-clip"', '<video controls class="fm-compare-clip"', 1),
        grid.replace('src="clips/c0.mp4"', 'src="javascript:alert(1)"'),
        grid.replace('src="clips/c0.mp4"', 'src="//evil.example/x.mp4"'),
        grid.replace('src="clips/c0.mp4"', 'src="data:video/mp4;base64,AAAA"'),
        grid.replace('preload="metadata"', 'preload="auto"', 1),
        grid.replace('class="fm-compare-clip" muted ', 'class="fm-compare-clip" ', 1),
        grid.replace('class="fm-compare-clip"', 'class="other"', 1),
        '<video class="fm-compare-clip" muted preload="metadata" src="a.mp4"><source src="javascript:x"></video>',
        # The scrubber of another type, or with an attribute it never has.
        grid.replace('type="range"', 'type="text"'),
        grid.replace('type="range"', 'type="range" formaction="https://x.example"'),
        '<input type="range" class="fm-compare-scrub">',  # no handler: not ours either
    ]
    for html in bad:
        with pytest.raises(AssertionError):
            assert_inert(html)


# --- the live view -----------------------------------------------------------------------------------------


def test_the_live_view_adds_a_compare_tab_once_three_clips_are_saved(workdir: Path) -> None:
    a, b, c = three_saved(workdir)
    waiting = [Video(v.model, v.label, v.prompt) for v in (a, b, c)]
    view = VideoView(render_interval=0.0, tick_s=0.0)
    view.handle(VideoRunStarted("a boat", tuple(waiting), check="local:frames"))
    assert view.compare is None and "Compare" not in view.titles
    view.handle(VideoUpdated(a))
    view.handle(VideoUpdated(b))
    assert view.compare is None and view.titles == ("omni #1", "veo #1", "hailuo #1", "Spec check",
                                                    "Cost & latency")
    view.handle(VideoUpdated(c))
    compare = view.compare
    assert isinstance(compare, ComparePane)
    # After the clips' tabs, before the rest.
    assert view.titles == ("omni #1", "veo #1", "hailuo #1", "Compare", "Spec check", "Cost & latency")
    assert view.tab.children[3] is compare.body and COMPARE_CLASS in compare.body._dom_classes

    players = compare.players
    assert len(players) == 3 and videos_in(compare.body) == players
    for player, label in zip(players, ("omni #1", "veo #1", "hailuo #1"), strict=True):
        own = view.clips[label].player
        assert own is not None and player is not own  # a player of its own: no controls, never autoplay or loop
        assert player.value is own.value  # the bytes the clip's tab read, not read again
        assert (player.controls, player.autoplay, player.loop, player.format) == (False, False, False, "mp4")
    html = all_html(compare.body)
    assert f'onclick="{escape_text(PLAY_HANDLER)}"' in html and f'oninput="{escape_text(SCRUB_HANDLER)}"' in html
    assert 'max="2.00"' in html
    assert [re.sub(r"<[^>]+>", "", c) for c in compare.captions] == [
        "omni #1 · gemini:gemini-omni-1.2-flash1.0 s · $0.35 · score 8/10 (best)",
        "veo #1 · gemini:veo-3.1-fast-generate-preview1.5 s · $0.60 · score 6/10",
        f"hailuo #1 · fal:{FAL}2.0 s · cost unknown",
    ]
    assert_inert(html)

    # A later update (a check's score) changes the caption only: same players, same controls.
    controls = compare.controls.value
    c.spec, c.score = (6, 6), 9.0
    view.handle(VideoUpdated(c))
    assert compare.players == players and compare.controls.value == controls
    assert "spec 6/6 checks passed" in compare.captions[2]
    # The finished run: the report replaces the view, and has its own Compare section.
    result = VideoResult(prompt="a boat", videos=[a, b, c])
    view.handle(VideoRunFinished(result))
    assert view.compare is compare and "Compare (3 clips)" in view._repr_mimebundle_()["text/html"]


def test_the_live_grid_escapes_hostile_strings_and_notes_a_clip_it_cannot_play(workdir: Path) -> None:
    a, b, c = three_saved(workdir)
    a.model, b.label, c.score_reasons = "gemini:" + EVIL, EVIL, EVIL
    view = VideoView.of(VideoResult(prompt=EVIL, videos=[a, b, c]))
    assert view.compare is not None
    html = all_html(view.compare.body)
    assert EVIL not in html and escape_text(EVIL) in html
    assert_inert(html)
    # A clip too large to send to the browser: its cell says so, the others still play.
    first, _, last = view.clips.values()
    grid = ComparePane()
    grid.show([first, VideoPane(b, max_inline_bytes=10), last])
    assert len(grid.players) == 2 and "not playable here: see the clip's own tab" in all_html(grid.body)
    assert len(grid.captions) == 3


def test_a_view_with_fewer_than_three_saved_clips_has_no_compare_tab(workdir: Path) -> None:
    a, b, c = three_saved(workdir)
    c.status, c.error = "filtered", None
    view = VideoView.of(VideoResult(prompt="p", videos=[a, b, c]))
    assert view.compare is None and "Compare" not in view.titles
    assert len(videos_in(view.widget)) == 2  # the two saved clips' own players


# --- through the emulator: a real %%video of three models ---------------------------------------------------


def magics_of(shell: InteractiveShell) -> VideoMagics:
    return next(c for c in shell.configurables if isinstance(c, VideoMagics))


def test_a_video_run_of_three_models_compares_them_live_and_in_the_report(vshell: InteractiveShell,
                                                                          emulator_env: Emulator) -> None:
    for model, seconds in CLIP_S.items():
        emulator_env.script(model, VideoScript(polls=1, clip_seconds=seconds))
    magics = magics_of(vshell)
    magics.view = "widgets"
    out = vshell.run_cell_magic("video", f"-p {POOL} --seconds 6 --check local:frames -o v", "A paper boat")
    assert [v.ok for v in out.videos] == [True, True, True]
    view = magics.last_view
    assert isinstance(view, VideoView) and view.compare is not None
    assert view.titles[:4] == (*(v.label for v in out.videos), "Compare")
    assert len(view.compare.players) == 3
    for player, clip in zip(view.compare.players, out.videos, strict=True):
        assert clip.path is not None and player.value == clip.path.read_bytes()
    for caption, clip in zip(view.compare.captions, out.videos, strict=True):
        assert escape_text(clip.model) in caption and f"{clip.seconds:.1f} s" in caption
        assert f"${clip.cost_usd:.2f}" in caption and "checks passed" in caption
    assert_inert(all_html(view.compare.body))

    html = out.to_html()
    section = compare_section(html)
    assert "Compare (3 clips)" in section and html.index(section) < html.index("<p><b>")
    srcs = [a["src"] for t, a in tags(section) if t == "video"]
    assert srcs == [f"videos/{v.path.name}" for v in out.videos if v.path is not None]
    longest = max(v.seconds or 0 for v in out.videos)
    assert f'max="{longest:.2f}"' in section and abs(longest - CLIP_S[FAL]) < 0.2
    text = " ".join(re.sub(r"<[^>]+>", " ", section).split())
    for clip in out.videos:
        assert f"{clip.label} · {clip.model} {clip.seconds:.1f} s · ${clip.cost_usd:.2f} · {clip.check_words()}" \
               in text
    assert_inert(section)


def test_a_run_with_two_saved_clips_has_no_compare(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=1))
    emulator_env.script(VEO, VideoScript(polls=1, outcome="filtered", reason="person detected"))
    emulator_env.script(FAL, VideoScript(polls=1))
    magics = magics_of(vshell)
    magics.view = "widgets"
    out = vshell.run_cell_magic("video", f"-p {POOL}", "A paper boat")
    assert [v.ok for v in out.videos] == [True, False, True]
    assert magics.last_view.compare is None and "Compare" not in magics.last_view.titles
    assert "fm-compare" not in out.to_html()
