"""How a ``%%video`` run is shown: the live widget view (driven headlessly: widgets build a DummyComm
outside a kernel), the static text and HTML reports, and the terminal progress lines.

Clips are real MP4s made with PyAV, keyframes real JPEGs; ``Video`` objects are mutated the way the engine
does and fed to the view as the engine's events. Time is a fake clock the test moves by hand.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from html_checks import Tags, assert_inert

from fusion_magic.core.events import (
    CallDelta,
    CallFinished,
    CallStarted,
    EngineEvent,
    Listener,
    OffloadedListener,
)
from fusion_magic.core.record import CallRecord
from fusion_magic.fusion.result import Verdict
from fusion_magic.testing.media import make_clip
from fusion_magic.videos.events import VideoRunFinished, VideoRunStarted, VideoUpdated
from fusion_magic.videos.progress import ProgressPrinter
from fusion_magic.videos.report import degraded_summary, html_report, text_report
from fusion_magic.videos.result import Video, VideoResult
from fusion_magic.videos.view import VideoView
from fusion_magic.view.video import VideoPane

EVIL = "<img src=x onerror=alert(1)>"
VEO = "gemini:veo-3.1-fast-generate-preview"
FAL = "fal:fal-ai/kling-video/v2.1"
FLASH = "gemini:gemini-2.5-flash"
GPT = "openrouter:openai/gpt-4o"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def jpeg_bytes(colour: tuple[int, int, int]) -> bytes:
    """A small real JPEG (a keyframe), encoded with PyAV."""
    import av
    import numpy as np

    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 64, 36, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    image = np.full((36, 64, 3), colour, dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


def html_values(widget: widgets.Widget) -> Iterator[str]:
    """Every HTML value in a widget tree."""
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


def all_html(widget: widgets.Widget) -> str:
    return "\n".join(html_values(widget))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The notebook's directory: a saved clip, two keyframes, and a keyframe that was deleted since."""
    monkeypatch.chdir(tmp_path)
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "boat.mp4", seconds=1.0, audio=True)
    (clips / "boat.k0.jpg").write_bytes(jpeg_bytes((200, 40, 40)))
    (clips / "boat.k1.jpg").write_bytes(jpeg_bytes((40, 40, 200)))
    return tmp_path


def saved(video: Video, workdir: Path) -> Video:
    """``video`` as the engine leaves it once its file is downloaded and measured."""
    clips = workdir / "clips"
    video.status, video.path = "ok", clips / "boat.mp4"
    video.seconds, video.resolution = 1.0, "320x180"
    video.keyframes = (clips / "boat.k0.jpg", clips / "boat.k1.jpg", clips / "gone.jpg")
    video.record.status, video.record.latency_s, video.record.video_seconds = "ok", 41.0, 1.0
    video.record.model, video.record.label = video.model, video.label
    video.record.cost_usd, video.record.cost_source, video.record.call_id = 0.15, "price table", 1
    return video


def call(model: str, role: str, call_id: int, text: str = "", status: str = "ok") -> CallRecord:
    return CallRecord(model=model, role=role, call_id=call_id, text=text, status=status, latency_s=2.5,
                      input_tokens=900, output_tokens=40, cost_usd=0.001, cost_source="price table")


def finished_result(workdir: Path) -> VideoResult:
    """A degraded run of three clips (saved and best, failed, still pending) and a fused answer."""
    good = saved(Video(VEO, "veo #1", "a paper boat " + EVIL, job_id="models/veo/operations/abc"), workdir)
    good.score, good.score_reasons, good.best = 8.0, "the boat floats " + EVIL, True
    failed = Video(FAL, "kling #1", "a paper boat", status="failed", error="fal: server: HTTP 500: " + EVIL)
    failed.record = CallRecord(model=FAL, role="generate", status="server", error=failed.error, call_id=2,
                               label=failed.label)
    pending = Video(VEO, "veo #2", "a paper boat", status="pending", job_id="models/veo/operations/xyz")
    answers = [call(FLASH, "understand", 3, "It is a **boat**. " + EVIL),
               call(GPT, "understand", 4, "A boat.")]
    verdict = Verdict(model=FLASH, mode="merge", answer="A paper **boat** " + EVIL, labels={"Answer A": FLASH})
    return VideoResult(prompt="a paper boat " + EVIL, videos=[good, failed, pending], answers=answers,
                       answer=verdict.answer, verdict=verdict, judge_calls=[call(FLASH, "judge", 5, "{}")],
                       checks=[call(FLASH, "check", 6, "8")], wall_s=63.2, notes=["note " + EVIL])


def replay(listener: Listener, events: list[EngineEvent]) -> None:
    for event in events:
        listener(event)


# --- the clip pane --------------------------------------------------------------------------------


def test_clip_pane_moves_through_states_and_shows_the_player_once_saved(workdir: Path, clock: FakeClock) -> None:
    video = Video(VEO, "veo #1", "a paper boat")
    pane = VideoPane(video, clock=clock)
    assert pane.status_text() == "planned"
    assert pane.player is None and pane.images == []

    video.status, video.job_id, video.started = "queued", "operations/abc", clock.now
    clock.now += 5
    pane.update(video)
    assert pane.status_text() == "queued · 5 s"

    video.status, video.polls, video.progress = "running", 3, "40% done"
    clock.now += 12
    pane.update(video)
    assert pane.status_text() == "running · 17 s · 3 polls · 40% done"
    assert 'color:#1565c0;font-weight:bold">running<' in pane.status.value
    assert pane.player is None

    pane.update(saved(video, workdir))
    assert pane.status_text() == "saved · 41 s · 3 polls"  # a final clip shows its own latency, no progress
    player = pane.player
    assert isinstance(player, widgets.Video)
    assert (player.autoplay, player.loop, player.controls, player.format) == (False, False, True, "mp4")
    assert player.value == (workdir / "clips" / "boat.mp4").read_bytes()
    assert [(i.format, i.value[:2]) for i in pane.images] == [("jpeg", b"\xff\xd8")] * 2  # the lost one skipped
    assert '<a href="clips/boat.mp4" target="_blank" rel="noopener">clips/boat.mp4</a>' in pane.details.value
    assert "1.0 s · 320x180 · $0.15" in pane.details.value

    # A later update (the check's score) re-renders the details only: same player, same images.
    images = pane.images
    video.score, video.best, video.score_reasons = 7.5, True, "steady camera"
    pane.update(video)
    assert pane.player is player and pane.images == images
    assert "<b>score 7.5/10</b>" in pane.details.value and ">best</span>: steady camera" in pane.details.value


@pytest.mark.parametrize(("status", "fields", "words"), [
    ("failed", {"error": "fal: server: HTTP 500"}, "failed · 9 s · 2 polls · fal: server: HTTP 500"),
    ("filtered", {"reason": "person detected"},
     "filtered · 9 s · 2 polls · withheld by the provider's filter: person detected"),
    ("filtered", {}, "filtered · 9 s · 2 polls · withheld by the provider's filter: no reason given"),
    ("pending", {"job_id": "operations/xyz"},
     "pending · 9 s · 2 polls · still running at the provider: %video resume fetches it"),
    ("cancelled", {"error": "interrupted"}, "cancelled · 9 s · 2 polls · interrupted"),
])
def test_final_states_say_why(clock: FakeClock, status: str, fields: dict[str, Any], words: str) -> None:
    video = Video(VEO, "veo #1", "p", status=status, polls=2, progress="80%", started=clock.now - 9, **fields)
    pane = VideoPane(video, clock=clock)
    assert pane.status_text() == words
    assert pane.player is None and pane.player_box.children == ()
    assert "href" not in pane.details.value


def test_a_large_file_gets_a_note_and_the_link_not_a_player(workdir: Path, clock: FakeClock) -> None:
    pane = VideoPane(saved(Video(VEO, "veo #1", "p"), workdir), clock=clock, max_inline_bytes=1000)
    assert pane.player is None
    (note,) = pane.player_box.children
    assert isinstance(note, widgets.HTML) and "too large to play here" in note.value
    assert 'href="clips/boat.mp4"' in pane.details.value


def test_link_is_percent_encoded_and_hostile_strings_escaped(workdir: Path, clock: FakeClock) -> None:
    odd = workdir / "clips" / 'my "boat" #1.mp4'
    (workdir / "clips" / "boat.mp4").rename(odd)
    video = saved(Video(VEO, EVIL, EVIL), workdir)
    video.path, video.error, video.score, video.score_reasons, video.notes = odd, EVIL, 3, EVIL, [EVIL]
    pane = VideoPane(video, clock=clock)
    assert pane.title == EVIL  # a tab title is text, not HTML
    html = all_html(pane.body)
    assert EVIL not in html
    assert 'href="clips/my%20%22boat%22%20%231.mp4"' in html


# --- the live view --------------------------------------------------------------------------------


def test_live_view_tabs_status_and_final_swap(workdir: Path, clock: FakeClock) -> None:
    veo1, kling, veo2 = (Video(VEO, "veo #1", "a paper boat"), Video(FAL, "kling #1", "a paper boat"),
                         Video(VEO, "veo #2", "a paper boat"))
    view = VideoView(clock=clock)
    view.handle(VideoRunStarted("a paper boat", (veo1, kling, veo2), understand=(FLASH, GPT), check=FLASH))
    assert view.titles == ("veo #1", "kling #1", "veo #2", "gemini-2.5-flash", "gpt-4o", "Answer", "Check",
                           "Cost & latency")
    assert [type(p).__name__ for p in view.panes][:5] == ["VideoPane"] * 3 + ["MemberPane"] * 2
    # It opens on the first clip, not on the ledger that was its only tab before the run started.
    assert view.tab.selected_index == 0

    for v in (veo1, kling, veo2):
        v.status, v.started = "running", clock.now
        view.handle(VideoUpdated(v))
    clock.now += 41
    view.handle(VideoUpdated(saved(veo1, workdir)))
    assert view.text().splitlines()[0] == "fusion_magic: 1 of 3 clips ready · 2 running · 0 of 2 answers in · 41 s"
    assert "1 of 3 clips ready" in view.status.value
    # The ledger tab is drawn on the view's clock; the property gives it as it stands.
    assert view.ledger is not None and list(view.ledger["role"]) == ["generate veo #1", "1 call"]

    # A question's answers stream into their model's tab; the judge shows on the Answer tab.
    r = CallRecord(model=FLASH, role="understand", call_id=3, status="waiting")
    view.handle(CallStarted(r))
    r.status, r.text = "streaming", "It is a **boat**"
    view.handle(CallDelta(r, r.text))
    assert view.understanders[FLASH].status == "streaming"
    assert "<strong>boat</strong>" in all_html(view.understanders[FLASH].body)
    r.status, r.latency_s = "ok", 2.0
    view.handle(CallFinished(r))
    assert view.text().splitlines()[0].endswith("1 of 2 answers in · 41 s")
    judge = CallRecord(model=FLASH, role="judge", call_id=5, status="waiting")
    view.handle(CallStarted(judge))
    assert "waiting for the first token" in view.answer.info.value  # type: ignore[union-attr]

    kling.status, kling.error = "failed", "server: HTTP 500"
    view.handle(VideoUpdated(kling))
    assert "not scored" in view.check.html.value and "waiting for the clip" in view.check.html.value  # type: ignore[union-attr]

    result = finished_result(workdir)
    view.handle(VideoRunFinished(result))
    assert view.finished
    assert "done in 63.2 s · 1 of 3 clips saved · 2 of 2 answers · best: veo #1" in view.status.value
    assert "DEGRADED: 1 of 3 clips failed" in view.status.value
    assert "<strong>boat</strong>" in view.answer.html.value and "<h4>Verdict</h4>" in view.answer.html.value  # type: ignore[union-attr]
    assert "score 8/10" in view.check.html.value  # type: ignore[union-attr]
    roles = list(view.ledger_pane.frame["role"])
    assert sorted(roles[:-1]) == ["check", "generate kling #1", "generate veo #1", "judge", "understand",
                                 "understand"]
    assert view.text() == text_report(result)
    bundle = view._repr_mimebundle_()
    assert bundle == {"text/html": html_report(result), "text/plain": text_report(result)}


def test_throttled_text_shows_at_the_next_event_and_events_may_come_from_another_thread(clock: FakeClock) -> None:
    view = VideoView(clock=clock, render_interval=1.0)
    listener = OffloadedListener(view.handle)
    video = Video(VEO, "veo #1", "p")
    r = CallRecord(model=FLASH, role="understand", call_id=1, status="waiting")
    listener(VideoRunStarted("p", (video,), understand=(FLASH,)))
    listener(CallStarted(r))
    r.status, r.text = "streaming", "first"
    listener(CallDelta(r, "first"))
    assert listener.flush()
    r.text = "first and second"  # within the render interval: held back
    listener(CallDelta(r, " and second"))
    assert listener.flush()
    assert "first and second" not in all_html(view.understanders[FLASH].body)
    video.status = "queued"
    listener(VideoUpdated(video))
    assert listener.flush()
    assert "first and second" in all_html(view.understanders[FLASH].body)
    assert view.clips["veo #1"].status_text() == "queued"


def test_every_widget_value_is_escaped(workdir: Path, clock: FakeClock) -> None:
    view = VideoView.of(finished_result(workdir))
    html = all_html(view.widget)
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    # What the models wrote renders as sanitized Markdown: no active tag at all.
    assert_inert(all_html(view.answer.body))  # type: ignore[union-attr]
    for pane in view.understanders.values():
        assert_inert(all_html(pane.body))


def test_of_result_replays_a_finished_run(workdir: Path) -> None:
    result = finished_result(workdir)
    view = VideoView.of(result)
    assert view.titles == ("veo #1", "kling #1", "veo #2", "gemini-2.5-flash", "gpt-4o", "Answer", "Check",
                           "Cost & latency")
    assert view.clips["veo #1"].player is not None
    assert view.clips["veo #2"].status_text().endswith("%video resume fetches it")
    assert view.understanders[GPT].text == "A boat."
    assert view.text() == text_report(result)
    assert repr(view) == result.summary()


def test_display_updates_the_saved_output_with_the_static_report(workdir: Path, clock: FakeClock) -> None:
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    kept = shell.display_pub
    shell.display_pub = CapturingDisplayPublisher()
    try:
        view = VideoView(clock=clock)
        handle = view.display()
        result = finished_result(workdir)
        view.handle(VideoRunStarted(result.prompt, tuple(result.videos)))
        view.handle(VideoRunFinished(result, stopped=True))
        outputs = shell.display_pub.outputs
    finally:
        shell.display_pub = kept
    first, last = outputs[0], outputs[-1]
    assert "application/vnd.jupyter.widget-view+json" in first["data"] and not first["update"]
    assert first["data"]["text/plain"] == "fusion_magic: waiting for the video run to start"
    assert last["update"] and last["transient"]["display_id"] == handle.display_id  # type: ignore[union-attr]
    assert last["data"] == {"text/html": html_report(result), "text/plain": text_report(result)}
    assert "stopped after 63.2 s" in view.status.value


# --- the static reports ---------------------------------------------------------------------------


def test_html_report_plays_only_on_request_and_is_escaped(workdir: Path) -> None:
    html = html_report(finished_result(workdir))
    assert EVIL not in html
    assert str(workdir) not in html  # a saved notebook names the file, not the user's home directory
    assert '<a href="clips/boat.mp4" target="_blank" rel="noopener">clips/boat.mp4</a>' in html
    parser = Tags()
    parser.feed(html)
    videos = [dict(attrs) for tag, attrs in parser.tags if tag == "video"]
    assert videos == [{"controls": None, "preload": "metadata", "width": "640", "style": "max-width:100%",
                       "src": "clips/boat.mp4"}]  # one saved clip; no autoplay, no loop
    images = [dict(attrs)["src"] or "" for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 2 and all(src.startswith("data:image/jpeg;base64,/9j/") for src in images)
    for tag, attrs in parser.tags:
        assert not any(name.startswith("on") for name, _ in attrs), (tag, attrs)
        if tag not in ("video", "img"):
            assert all(name != "src" for name, _ in attrs), (tag, attrs)
    assert "<strong>boat</strong>" in html  # the answer's Markdown renders
    assert "<h4>Verdict</h4>" in html and "score 8/10 (best)" in html
    assert "job models/veo/operations/xyz: still running at the provider: %video resume fetches it" in html
    assert "cost $" in html and "wall time: 63.2 s" in html


def test_a_clip_outside_the_working_directory_keeps_its_path(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "boat.mp4"
    (workdir / "clips" / "boat.mp4").rename(elsewhere)
    video = saved(Video(VEO, "veo #1", "p"), workdir)
    video.path, video.keyframes = elsewhere, ()
    html = html_report(VideoResult(prompt="p", videos=[video]))
    assert f'src="{elsewhere.as_posix()}"' in html
    assert "<img" not in html


def test_text_report_lists_clips_pending_answer_checks_ledger_and_degraded(workdir: Path) -> None:
    result = finished_result(workdir)
    text = text_report(result)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "Clips (1 of 3 saved)" in lines
    # Relative to the working folder (the notebook's): a saved notebook shows no home directory.
    assert ("- veo #1: [ok] gemini:veo-3.1-fast-generate-preview · clips/boat.mp4 · 1.0 s · "
            "320x180 · score 8/10 (best) · $0.15") in " ".join(line.strip() for line in lines)
    assert "    job models/veo/operations/xyz: still running at the provider: %video resume fetches it" in lines
    assert "    2 keyframes" in lines
    assert ("answered by gemini:gemini-2.5-flash (done), openrouter:openai/gpt-4o (done); fused by judge "
            "gemini:gemini-2.5-flash (merge)") in " ".join(line.strip() for line in lines)
    assert f"A paper **boat** {EVIL}" in lines  # text shows what was written; a terminal runs no HTML
    assert "--- openrouter:openai/gpt-4o · done · 900→40 tok · 2.50 s · $0.001000 ---" in lines
    assert any(line.startswith("call") and "video s" in line and "cost $" in line for line in lines)
    assert "wall time: 63.2 s" in lines
    assert lines[-2].startswith("DEGRADED: 1 of 3 clips failed: kling #1 (fal: server: HTTP 500")
    assert lines[-1] == "  pending at the provider (%video resume fetches it)."


def test_degraded_summary_says_what_did_not_arrive(workdir: Path) -> None:
    result = finished_result(workdir)
    assert degraded_summary(result) == (
        "DEGRADED: 1 of 3 clips failed: kling #1 (fal: server: HTTP 500: <img src=x onerror=alert(1)>); "
        "1 pending at the provider (%video resume fetches it)."
    )
    result.videos[1].status, result.videos[1].reason = "filtered", "person detected"
    result.answers[1].status = "timeout"
    result.answers[1].error = "openrouter:openai/gpt-4o: timeout: no answer in 60 s"
    assert degraded_summary(result) == (
        "DEGRADED: 1 of 3 clips filtered: kling #1 (person detected); "
        "1 pending at the provider (%video resume fetches it); "
        "answer by openrouter:openai/gpt-4o failed (timeout: no answer in 60 s)."
    )
    ok = VideoResult(prompt="p", videos=[result.videos[0]])
    assert degraded_summary(ok) is None


# --- progress lines -------------------------------------------------------------------------------


def test_progress_prints_changes_not_polls(workdir: Path) -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    video, other = Video(VEO, "veo #1", "p"), Video(FAL, "kling #1", "p")
    printer(VideoRunStarted("p", (video, other), understand=(FLASH,), source="boat.mp4", check=FLASH))

    def update(v: Video, **changes: object) -> None:
        # The event carries the live object: deliver it before the next change, as the engine does.
        for name, value in changes.items():
            setattr(v, name, value)
        printer(VideoUpdated(v))

    update(video, status="submitting")
    update(video, status="queued", job_id="operations/abc")
    for n in range(1, 6):  # polls that change only the count and the provider's progress: no line
        update(video, status="running", polls=n, progress=f"{n * 10}%")
    update(other, status="failed", error="server: HTTP 500\x1b[2J")
    saved(video, workdir)
    update(video)
    update(video, score=8.0, best=True)
    update(video)  # nothing new
    answer = call(FLASH, "understand", 3, "a boat")
    replay(printer, [CallStarted(answer), CallFinished(answer), CallStarted(call(FLASH, "judge", 4)),
                     VideoRunFinished(VideoResult(prompt="p"), stopped=True), CallFinished(call(FLASH, "check", 5))])
    assert out.getvalue().splitlines() == [
        "generating 2 clips with gemini:veo-3.1-fast-generate-preview, fal:fal-ai/kling-video/v2.1...",
        "asking gemini:gemini-2.5-flash about boat.mp4...",
        "each clip will be checked by gemini:gemini-2.5-flash",
        "  veo #1: submitting",
        "  veo #1: submitted, job operations/abc",
        "  veo #1: queued",
        "  veo #1: running",
        "  kling #1: failed: server: HTTP 500[2J",  # the terminal escape is dropped
        f"  veo #1: saved {workdir / 'clips' / 'boat.mp4'} (1.0 s, 320x180)",
        "  veo #1: score 8/10 (best)",
        "  understand gemini:gemini-2.5-flash: done in 2.5s",
        "  fusing the answers with gemini:gemini-2.5-flash...",
        "stopped: what had arrived is kept",
    ]


def test_progress_for_pending_and_filtered_clips() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    pending = Video(VEO, "veo #1", "p", status="pending", job_id="operations/xyz", reused=True)
    filtered = Video(VEO, "veo #2", "p", status="filtered", reason="person detected")
    replay(printer, [VideoUpdated(pending), VideoUpdated(filtered), VideoRunFinished(VideoResult(prompt="p"))])
    assert out.getvalue().splitlines() == [
        "  veo #1: re-attached to job operations/xyz (not paid again)",
        "  veo #1: pending: still running at the provider: %video resume fetches it (job operations/xyz)",
        "  veo #2: filtered (withheld by the provider's filter): person detected",
    ]
