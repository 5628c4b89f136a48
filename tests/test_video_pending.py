"""A clip still running at the provider when the cell stops waiting is *pending* (issue #16): a paid job that
is fine, never a failure. Its clip, record and sidecar agree; why it is pending is a note, never an error; and
every place a person reads it says so: the live widget view, the text and HTML reports, the ledger frame and
its tables, the progress lines, and what ``%video resume`` prints. Resume fetches it without a second
submission.

Each run goes through the loopback emulator: Veo's job is scripted to need far more polls than the cell's
``-t`` allows, so the wait ends first; the emulator then finishes it for the resume.
"""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.core.state import State
from fusion_magic.ipython.video import VideoMagics
from fusion_magic.present.ledger_table import ledger_display, text_ledger
from fusion_magic.present.wording import clip_colour, status_word
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.videos.progress import ProgressPrinter
from fusion_magic.videos.result import Video, VideoResult
from fusion_magic.videos.view import VideoView

VEO = "veo-3.1-fast-generate-preview"
NOTE = "not finished after 0.2 s"
HINT = "still running at the provider: %video resume fetches it"
FAILURE = re.compile(r"fail|error", re.IGNORECASE)


def submissions(emu: Emulator) -> int:
    """Veo submit requests the emulator received (each one is a paid job at the real provider)."""
    return sum(q.method == "POST" and q.path.endswith(f"{VEO}:predictLongRunning") for q in emu.requests)


def finish_at_the_provider(emu: Emulator, video: Video) -> None:
    """The job finishes at the provider while nobody waits for it."""
    assert video.job_id is not None
    job = emu.video.job(video.job_id.rsplit("/", 1)[-1])
    assert job is not None
    job.script = VideoScript(polls=0)


def widget_html(widget: widgets.Widget) -> str:
    """Every HTML value under ``widget``, joined: what the live view shows."""
    if isinstance(widget, widgets.HTML):
        return widget.value
    return "\n".join(widget_html(c) for c in getattr(widget, "children", ()))


class Table(HTMLParser):
    """The header and the rows of the first ``<table>`` in an HTML string, as text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.head: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            (self.head if self._in_head else self.rows[-1]).append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def assert_ledger_reads_pending(frame: pd.DataFrame, html: str, lines: list[str]) -> None:
    """The pending clip's row (the first) in the ledger frame, its display, its HTML table and its text
    table: status pending, no error, the note in the note column (or on a "note:" line)."""
    row = frame.iloc[0]
    assert row["status"] == "pending" and pd.isna(row["error"]) and row["note"] == NOTE
    shown = ledger_display(frame).iloc[0]
    assert shown["error"] == "" and shown["note"] == f"{NOTE}; {HINT}"
    table = Table(html)
    cells = dict(zip(table.head, table.rows[0], strict=True))
    assert cells["status"] == "pending" and cells["error"] == "" and cells["note"] == f"{NOTE}; {HINT}"
    text = "\n".join(lines)
    assert f"  note: {NOTE}; {HINT}" in lines and "  error:" not in text and not FAILURE.search(text)


def test_a_clip_that_outlasts_the_wait_reads_as_pending_everywhere(vshell: InteractiveShell, emulator_env: Emulator,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(VEO, VideoScript(polls=10_000))
    view, progress = VideoView(render_interval=0.0), io.StringIO()
    result = fusion_magic.video("A slow fox", models=[f"gemini:{VEO}"], timeout=0.2, poll_s=0.01,
                                listeners=[view.handle, ProgressPrinter(progress)])
    (clip,) = result.videos

    # The clip, its record and its receipt agree: pending, the job id kept, the note a note.
    assert clip.state is State.PENDING and clip.status == "pending" and result.pending == [clip]
    assert clip.record.state is State.PENDING and clip.record.status == "pending" and clip.record.failure is None
    assert clip.note == clip.record.note == NOTE and clip.error is None and clip.record.error is None
    assert clip.sidecar is not None
    side = json.loads(clip.sidecar.read_text())
    assert side["status"] == "pending" and side["note"] == NOTE and side["error"] is None
    assert side["job"]["job_id"] == clip.job_id
    assert submissions(emulator_env) == 1
    assert status_word(clip.record) == f"pending: {NOTE}; {HINT}"

    # The live view: the clip's tab in pending's colour, the ledger tab, and nothing else says it failed.
    pane = view.clips[clip.label]
    assert pane.status_text().startswith("pending · ") and pane.status_text().endswith(f" · {NOTE}; {HINT}")
    assert f'color:{clip_colour(State.PENDING)};font-weight:bold">pending<' in pane.status.value
    assert clip_colour(State.PENDING) != clip_colour(State.FAILED)
    assert not FAILURE.search(pane.status.value + pane.details.value)
    assert "1 pending at the provider" in view.status.value and not FAILURE.search(view.status.value)
    assert view.ledger_pane.frame is not None
    assert_ledger_reads_pending(view.ledger_pane.frame, view.ledger_pane.html.value,
                                text_ledger(view.ledger_pane.frame))

    # The text and HTML reports, and the ledger they show.
    text = result.to_text()
    assert not FAILURE.search(text), text
    assert "[pending] gemini:veo-3.1-fast-generate-preview" in text
    assert f"job {clip.job_id}: {NOTE}; {HINT}" in " ".join(text.split())
    html = result.to_html()
    clips_section, _, ledger_section = html.partition("<h3>Cost &amp; latency</h3>")
    assert f"<b>pending</b> · job {clip.job_id}: {NOTE}; {HINT}" in clips_section
    assert not FAILURE.search(clips_section)
    assert_ledger_reads_pending(result.ledger, ledger_section, text_ledger(result.ledger))

    # The progress lines: submitted, running, then pending with its note.
    lines = progress.getvalue().splitlines()
    assert lines[-1] == f"  {clip.label}: pending: {NOTE}; {HINT} (job {clip.job_id})"
    assert not FAILURE.search(progress.getvalue())

    # %video resume while the job still runs: pending again, the same words, nothing paid again.
    capsys.readouterr()
    again = vshell.run_line_magic("video", "resume -t 0.2 -o w")
    printed = capsys.readouterr()
    assert isinstance(again, VideoResult) and [v.status for v in again.videos] == ["pending"]
    assert again.videos[0].job_id == clip.job_id and again.videos[0].note == NOTE
    resume_lines = printed.err.splitlines()
    assert resume_lines[0] == f"resuming 1 clip with gemini:{VEO}..."
    assert f"  {clip.label}: re-attached to job {clip.job_id} (not paid again)" in resume_lines
    assert resume_lines[-1] == f"  {clip.label}: pending: {NOTE}; {HINT} (job {clip.job_id})"
    assert not FAILURE.search(printed.out + printed.err + again.to_text())
    assert submissions(emulator_env) == 1

    # Once the job finished at the provider, resume fetches it: one submission in all.
    finish_at_the_provider(emulator_env, clip)
    fetched = vshell.run_line_magic("video", "resume -o w")
    printed = capsys.readouterr()
    (saved,) = fetched.videos
    assert saved.state is State.DONE and saved.path is not None and saved.path.is_file()
    assert saved.note is None and saved.record.note is None and "note" not in fetched.ledger
    assert json.loads(clip.sidecar.read_text())["status"] == "ok"
    assert printed.err.splitlines()[-1].startswith(f"  {clip.label}: saved ")
    assert submissions(emulator_env) == 1 and emulator_env.video_jobs(VEO) == 1
    assert vshell.run_line_magic("video", "resume") is None  # nothing left open


def test_the_video_cell_shows_a_pending_clip_as_pending_in_its_widgets(vshell: InteractiveShell,
                                                                       emulator_env: Emulator) -> None:
    """The real ``%%video`` path: the widget view the magic opens (its events offloaded to another thread)."""
    emulator_env.script(VEO, VideoScript(polls=10_000))
    magics = next(c for c in vshell.configurables if isinstance(c, VideoMagics))
    magics.view = "widgets"
    out = vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2 -o v", "A slow fox")
    view = magics.last_view
    assert isinstance(view, VideoView) and view.result is out
    (clip,) = out.videos
    pane = view.clips[clip.label]
    assert pane.status_text().startswith("pending · ") and NOTE in pane.status_text()
    assert not FAILURE.search(widget_html(pane.body))
    shown = view._repr_mimebundle_()  # once the run ended, the view is the static report
    assert not FAILURE.search(shown["text/plain"])
    assert f"{NOTE}; {HINT}" in " ".join(shown["text/plain"].split())
    assert submissions(emulator_env) == 1

    finish_at_the_provider(emulator_env, clip)
    again = vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 5", "A slow fox")  # the same cell re-attaches
    assert again.videos[0].ok and again.videos[0].reattached and submissions(emulator_env) == 1
    pane = magics.last_view.clips[clip.label]
    assert pane.status_text().startswith("saved · ")


def test_an_old_sidecar_that_kept_its_note_as_the_error_still_resumes_as_pending(
        vshell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """Sidecars written before ``note`` existed kept a pending job's note in ``error``: they still load, resume
    still re-attaches, and the note reads as a note."""
    emulator_env.script(VEO, VideoScript(polls=10_000))
    first = fusion_magic.video("A slow fox", models=[f"gemini:{VEO}"], timeout=0.2, poll_s=0.01)
    path = first.videos[0].sidecar
    assert path is not None
    old = json.loads(path.read_text())
    del old["note"]
    old["error"] = "not finished after 600 s"
    path.write_text(json.dumps(old))
    again = vshell.run_line_magic("video", "resume -t 0.2")
    assert again.videos[0].state is State.PENDING and again.videos[0].error is None
    assert not FAILURE.search(again.to_text()) and submissions(emulator_env) == 1
    side = json.loads(Path(path).read_text())
    assert side["status"] == "pending" and side["note"] == NOTE and side["error"] is None
