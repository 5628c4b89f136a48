"""``--check local:frames`` measures the technical spec (length, aspect, resolution, black or frozen stretches),
not how well a clip matches its prompt: wherever its result is shown it says "spec" and its first clip is the
"best spec", never a "score" or a bare "best". A model's check keeps "score N/10" and "best".

Each run goes through the loopback emulator (real MP4s, real analysis in a child process); what is read is
what a user sees: the terminal's progress lines and report, the HTML report, the live widget view, the
summary, the ledger and an export.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import ipywidgets as widgets
import pytest
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.videos.progress import ProgressPrinter
from fusion_magic.videos.result import VideoResult
from fusion_magic.videos.view import VideoView

OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
POOL = [f"gemini:{OMNI}", f"gemini:{VEO}"]
CHECK_ANSWER = '{"score": 7, "reasons": ["0:01 the fox runs across the frame"]}'
# A content score in any of the words a model's check is shown with.
SCORE = re.compile(r"\bscored?\b|\(best\)|>best<|\bbest[:=]", re.IGNORECASE)


def widget_html(widget: widgets.Widget) -> str:
    """Every HTML value under ``widget``, joined: what the live view shows."""
    if isinstance(widget, widgets.HTML):
        return widget.value
    return "\n".join(widget_html(c) for c in getattr(widget, "children", ()))


class Watched:
    """A run as its listeners saw it: the live widget view and the terminal's progress lines."""

    def __init__(self) -> None:
        self.view = VideoView(render_interval=0.0)
        self.lines = io.StringIO()
        self.listeners = [self.view.handle, ProgressPrinter(self.lines)]


@pytest.fixture
def run(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Emulator]:
    monkeypatch.chdir(tmp_path)
    # Omni's clip is the asked 4 s; Veo's is 2 s, so it fails the length check and Omni is the best spec.
    emulator_env.script(OMNI, VideoScript(polls=0, clip_seconds=4.0, answer=CHECK_ANSWER))
    emulator_env.script(VEO, VideoScript(polls=0, clip_seconds=2.0))
    yield emulator_env


def checked(check: str) -> tuple[VideoResult, Watched]:
    watched = Watched()
    result = fusion_magic.video("A fox", models=POOL, seconds=4, check=check, poll_s=0.01,
                                listeners=watched.listeners)
    return result, watched


def test_a_spec_check_says_spec_and_best_spec_everywhere(run: Emulator, tmp_path: Path) -> None:
    result, watched = checked("local:frames")
    omni, veo = result.videos
    assert omni.spec is not None and omni.spec[0] == omni.spec[1]  # every spec check passed
    assert veo.spec is not None and veo.spec[0] == veo.spec[1] - 1  # all but the length
    assert result.best is omni

    # The clip's own line and what a model-free check is called.
    assert omni.check_words() == f"spec {omni.spec[0]}/{omni.spec[1]} checks passed"
    assert omni.best_words == "best spec" and veo.check_words() == f"spec {veo.spec[0]}/{veo.spec[1]} checks passed"
    assert f"{omni.check_words()} (best spec)" in omni.describe()
    assert "best-spec=gemini:" in result.summary() and not SCORE.search(result.summary())

    text = result.to_text()
    assert f"{omni.check_words()} (best spec)" in " ".join(text.split())
    assert "Spec check" in text and "spec checks: ✓ duration" in text
    assert "local:frames checks the technical spec (length, aspect, resolution, black or frozen stretches), not " \
        "the content" in " ".join(text.split())
    assert not SCORE.search(text), text

    html = result.to_html()
    assert f"<b>{omni.check_words()} (best spec)</b>" in html and "<h3>Spec check</h3>" in html
    assert not SCORE.search(html)

    view = watched.view
    assert "Spec check" in view.titles and "Check" not in view.titles
    assert ">best spec</span>" in view.clips[omni.label].details.value
    assert f"<b>{veo.check_words()}</b>" in view.clips[veo.label].details.value
    assert view.check is not None
    assert "checked by <code>local:frames</code>: the technical spec" in view.check.html.value
    assert f"best spec: {omni.label}" in view.status.value
    assert not SCORE.search(widget_html(view.widget))
    replayed = VideoView.of(result)
    assert "Spec check" in replayed.titles and not SCORE.search(widget_html(replayed.widget))

    lines = watched.lines.getvalue()
    assert "each clip will be checked by local:frames: the technical spec" in lines
    assert f"  {veo.label}: {veo.check_words()}" in lines.splitlines()
    assert "  spec check local:frames: done" in lines
    assert not SCORE.search(lines), lines

    # What is saved: the ledger's role and an exported row name the spec check.
    roles = [role for role in result.ledger["role"] if str(role).startswith("check")]
    assert roles == [f"check spec {omni.label}", f"check spec {veo.label}"]
    assert result.export(tmp_path / "calls.jsonl") == len(result.calls)
    rows = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [row["label"] for row in rows if row["role"] == "check"] == [f"spec {omni.label}", f"spec {veo.label}"]


def test_a_failed_spec_check_is_called_a_spec_check(run: Emulator) -> None:
    """A clip the analysis cannot read has no spec result: it is "not checked", and the degraded line names
    the spec check that failed."""
    run.script(VEO, VideoScript(polls=0, clip=b"\x00\x00\x00\x18ftypmp42 not a video at all"))
    result, watched = checked("local:frames")
    veo = result.videos[1]
    assert veo.spec is None and veo.check_words() is None
    assert "spec check by local:frames failed" in (result.to_text() + result.to_html())
    assert watched.view.check is not None and "not checked" in watched.view.check.html.value
    assert not SCORE.search(result.to_text() + widget_html(watched.view.widget))


def test_a_model_check_keeps_its_score_and_best(run: Emulator) -> None:
    result, watched = checked(f"gemini:{OMNI}")
    omni, veo = result.videos
    assert (omni.score, veo.score) == (7.0, 7.0) and omni.spec is None and result.best is omni
    assert omni.check_words() == "score 7/10" and omni.best_words == "best"
    assert "score 7/10 (best)" in omni.describe() and "best=gemini:" in result.summary()
    text, html = result.to_text(), result.to_html()
    assert "score 7/10 (best)" in " ".join(text.split()) and "check: 0:01 the fox runs" in text
    assert "<b>score 7/10 (best)</b>" in html and "<h3>Check</h3>" in html
    assert "spec" not in (text + html).lower()
    view = watched.view
    assert "Check" in view.titles and "Spec check" not in view.titles
    assert "<b>score 7/10</b>" in view.clips[omni.label].details.value
    assert ">best</span>" in view.clips[omni.label].details.value
    assert f"best: {omni.label}" in view.status.value
    assert "spec" not in widget_html(view.widget).lower()
    lines = watched.lines.getvalue()
    assert "each clip will be checked by gemini:" in lines and f"  {veo.label}: score 7/10" in lines.splitlines()
    assert "spec" not in lines


def test_magic_prints_spec_not_score(vshell: InteractiveShell, emulator_env: Emulator,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The terminal face of ``%%video --check local:frames``: progress lines and the report as printed."""
    emulator_env.script(OMNI, VideoScript(polls=0, clip_seconds=4.0))
    vshell.run_cell(f"%%video -p gemini:{OMNI} --seconds 4 --check local:frames\nA fox")
    shown = capsys.readouterr()
    printed = shown.out + shown.err
    assert "spec 3/3 checks passed" in printed and "(best spec)" in printed and "Spec check" in printed
    assert not SCORE.search(printed), printed
