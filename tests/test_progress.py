"""ProgressPrinter: one line per run start, finished call and judge start; silent once the run is done."""

from __future__ import annotations

import io

from fusion_magic.core.events import CallFinished
from fusion_magic.core.record import Response
from fusion_magic.fusion.events import JudgeStarted, RunFinished, RunStarted
from fusion_magic.fusion.progress import ProgressPrinter
from fusion_magic.fusion.result import FusionResult


def test_lines_while_running_and_silence_after_run_finished() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    printer(RunStarted(prompt="p", mode="best-of", judge="vote", labels=("a", "b"), models=("x:a", "x:b")))
    printer(CallFinished(Response(model="x:a", status="ok", latency_s=0.5, label="a")))
    printer(JudgeStarted(judge="vote", mode="best-of"))
    printer(RunFinished(FusionResult(prompt="p", mode="best-of", judge="vote", pool=["x:a", "x:b"])))
    lines = out.getvalue().splitlines()
    assert lines == ["fusing 2 answers (best-of, judge: vote)...", "  a: done in 0.5s", "  judging with vote..."]
    # A late member reports after the run ended: its line would land in whichever cell runs next.
    printer(CallFinished(Response(model="x:b", status="ok", latency_s=9.0, label="b", late=True)))
    printer(JudgeStarted(judge="vote", mode="best-of"))
    assert out.getvalue().splitlines() == lines


def test_failed_and_cancelled_calls_read_the_way_the_view_says_them() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    printer(RunStarted(prompt="p", mode="best-of", judge="vote", labels=("a",), models=("x:a",)))
    printer(CallFinished(Response(model="x:a", status="timeout", latency_s=5.0, label="a",
                                  error="x:a: timeout: no complete answer within 5s")))
    printer(CallFinished(Response(model="x:a", status="cancelled", latency_s=1.0, label="b",
                                  error="x:a: cancelled: cancelled")))
    assert out.getvalue().splitlines() == [
        "fusing 1 answer (best-of, judge: vote)...",
        "  a: failed: timeout: no complete answer within 5s in 5.0s",
        "  b: cancelled in 1.0s",
    ]


def test_the_eval_bar_becomes_a_static_line_so_a_saved_notebook_shows_no_widget() -> None:
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    from fusion_magic.ipython.progress import EvalProgress

    shell = InteractiveShell.instance()
    publisher, shell.display_pub = shell.display_pub, CapturingDisplayPublisher()
    try:
        progress = EvalProgress(4, widgets=True)
        progress.row(1, 4, None)
        progress.row(2, 4, None)
        progress.close()  # interrupted after two rows
        first, last = shell.display_pub.outputs
    finally:
        shell.display_pub = publisher
    assert "application/vnd.jupyter.widget-view+json" in first["data"] and not first.get("update")
    # The same output (display id) is replaced, and what stays in the notebook has no widget in it.
    assert last["update"] and last["transient"] == first["transient"]
    assert set(last["data"]) == {"text/plain", "text/html"}
    assert last["data"]["text/plain"].startswith("stopped after 2 of 4 rows in ")
