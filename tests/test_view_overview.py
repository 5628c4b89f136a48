"""The overview tab: every member at once while the pool streams, with live counts, then the Fused tab when
the judge starts. Driven by the scripted run of tests/test_view.py (real records, real events, a fake clock)."""

from __future__ import annotations

import re

from html_checks import assert_inert
from test_view import EVIL, MEMBERS, VERDICT, FakeClock, ScriptedRun

from fusion_magic.fusion.events import RunFinished, VerdictReady
from fusion_magic.fusion.view import FusionView


def counts(html: str) -> dict[str, int]:
    """Each row's label and its live token count, read from the overview's HTML."""
    rows = re.findall(r"<b>([^<]+)</b>.*?(?:~?(\d+) tok|</div></div>)", html)
    return {label: int(n) for label, n in rows if n}


def make(clock: FakeClock, tick_s: float = 0.0) -> tuple[ScriptedRun, FusionView]:
    run = ScriptedRun(MEMBERS)
    view = FusionView(clock=clock, tick_s=tick_s)
    run.listeners.append(view.handle)
    return run, view


def test_every_member_streams_in_the_overview_with_counts_that_advance() -> None:
    clock = FakeClock()
    run, view = make(clock)
    run.run_started()
    assert view.titles[0] == "Overview" and view.tab.selected_index == 0
    calls = [run.start(label) for label, _ in MEMBERS]
    before = view.overview.html.value
    for label, _ in MEMBERS:
        assert label in before  # queued or waiting: a row from the start
    for step in range(5):
        clock.now += 0.2  # past the throttle: each step renders
        for r in calls:
            run.delta(r, f"word{step} ")
    first = counts(view.overview.html.value)
    assert set(first) == {label for label, _ in MEMBERS}
    for _ in range(10):
        clock.now += 0.2
        for r in calls:
            run.delta(r, "more words here ")
    second = counts(view.overview.html.value)
    assert all(second[label] > first[label] for label in first), (first, second)
    html = view.overview.html.value
    assert "tok/s" in html and "streaming" in html
    assert "more words here" in html  # the latest text, not only figures


def test_elapsed_time_advances_with_the_clock_while_nothing_streams() -> None:
    clock = FakeClock()
    run, view = make(clock)
    run.run_started()
    run.start("slowpoke")
    clock.now += 2.0
    view.overview.tick(clock())
    assert "2.0 s" in view.overview.html.value
    clock.now += 1.5
    view.overview.tick(clock())
    assert "3.5 s" in view.overview.html.value


def test_a_finished_member_shows_the_providers_figures_not_our_count() -> None:
    clock = FakeClock()
    run, view = make(clock)
    run.run_started()
    r = run.start("gpt-4o")
    clock.now += 0.2
    run.delta(r, "x" * 400)  # ~101 by characters
    assert "~101 tok" in view.overview.html.value
    run.finish(r, tokens=(12, 87))
    html = view.overview.html.value
    assert "87 tok" in html and "~87" not in html and "1.5 s" in html  # the call's own latency


def test_the_view_moves_to_the_fused_tab_when_the_judge_starts() -> None:
    clock = FakeClock()
    run, view = make(clock)
    run.run_started()
    for label, _ in MEMBERS:
        run.finish(run.start(label))
    judge = run.start_judge()
    assert view.titles[view.tab.selected_index or 0] == "Fused"
    assert "is deciding" in view.fused.html.value
    clock.now += 0.5
    run.delta(judge, '{"winner": "B"' + " " * 100)
    assert "tok" in view.fused.html.value  # the judge's live figures under the placeholder
    assert "judge" in view.overview.html.value


def test_a_tab_the_reader_chose_stays_when_the_judge_starts() -> None:
    clock = FakeClock()
    run, view = make(clock)
    run.run_started()
    view.tab.selected_index = view.titles.index("llama3.2")
    for label, _ in MEMBERS:
        run.finish(run.start(label))
    run.start_judge()
    assert view.titles[view.tab.selected_index or 0] == "llama3.2"


def test_model_text_in_the_overview_is_inert() -> None:
    clock = FakeClock()
    run, view = make(clock)
    run.run_started()
    r = run.start("gpt-4o")
    run.delta(r, EVIL + " <script>alert(1)</script>")
    assert_inert(view.overview.html.value)


def test_the_clock_thread_ticks_and_stops_with_the_run() -> None:
    import time

    run = ScriptedRun(MEMBERS)
    view = FusionView(tick_s=0.02)  # the real clock
    run.listeners.append(view.handle)
    run.run_started()
    run.start("slowpoke")
    first = view.overview.html.value
    deadline = time.monotonic() + 5
    while view.overview.html.value == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert view.overview.html.value != first  # elapsed advanced with no event
    for label, _ in MEMBERS:
        run.finish(run.calls.get((label, 0)) or run.start(label))
    run.start_judge()
    run.send(VerdictReady(VERDICT))
    run.send(RunFinished(run.result(VERDICT)))
    view._ticker.join(timeout=5)
    assert not view._ticker.is_alive()


def test_the_fused_tab_counts_the_judges_time_on_a_clock_tick() -> None:
    """The judge may think for seconds before its first token: the Fused tab's elapsed time advances anyway."""
    clock = FakeClock()
    run, view = make(clock)
    run.run_started()
    for label, _ in MEMBERS:
        run.finish(run.start(label))
    run.start_judge()
    clock.now += 4.0
    view._tick(clock())
    assert "4.0 s" in view.fused.html.value


def test_a_video_question_shows_its_elapsed_time_while_the_model_is_silent() -> None:
    """A model asked about a video sends no poll and no token for a while: the view's clock moves its line."""
    from fusion_magic.core.events import CallStarted
    from fusion_magic.core.record import Response
    from fusion_magic.videos.events import VideoRunStarted
    from fusion_magic.videos.view import VideoView

    clock = FakeClock()
    view = VideoView(clock=clock, tick_s=0.0)
    view.handle(VideoRunStarted("What happens?", (), ("gemini:gemini-2.5-flash",), "clip.mp4"))
    view.handle(CallStarted(Response(model="gemini:gemini-2.5-flash", role="understand", call_id=1,
                                     status="waiting")))
    clock.now += 30.0
    view._tick(clock())
    assert "30 s" in view.status.value
    assert any(line.elapsed == 30.0 for line in view.overview())
