"""A finished cell gives its widgets back: once the static report has replaced the live view and no call still
streams into it, every widget of the view (layouts and styles included) is closed and leaves ipywidgets' registry.
Before, each %%fuse cell left about 70 live widgets (and their comms) for the kernel's life."""

from __future__ import annotations

import threading

import ipywidgets
import pytest
from conftest import magics_of
from IPython.core.interactiveshell import InteractiveShell
from ipywidgets.widgets import widget as widget_module

from fusion_magic.core.events import after_events
from fusion_magic.testing import Emulator, ModelScript


def live() -> set[str]:
    """The widgets alive once the view worker has done what was queued so far (a finished view closes its
    widgets there, after the cell's flush)."""
    done = threading.Event()
    after_events(done.set)
    assert done.wait(10)
    return set(widget_module._instances)


def test_a_finished_fuse_cell_leaves_no_live_widget(shell: InteractiveShell, emulator_env: Emulator,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    magics = magics_of(shell)
    magics.view = "widgets"
    emulator_env.script("r1", ModelScript(reply="It is **4**."))
    emulator_env.script("r2", ModelScript(reply="4"))
    emulator_env.script("rj", ModelScript(reply='{"reasoning": "both say 4", "answer": "4"}'))
    line = "-p openai:r1,anthropic:r2 -j openai:rj -m merge -o r"
    shell.run_cell_magic("fuse", line, "2+2?")  # a first cell: whatever ipywidgets makes once
    before = live()
    for _ in range(3):
        shell.run_cell_magic("fuse", line, "2+2?")
        view = magics.last_view
        assert view is not None and view.finished
        # The report replaced the view, and the view still reads as it ended (closed widgets keep their values).
        assert "application/vnd.jupyter.widget-view+json" not in view._repr_mimebundle_()
        assert view.tab.titles[-1] == "Cost & latency" and view.ledger is not None
    assert live() - before == set()
    assert view.widget.comm is None and all(child.comm is None for child in view.tab.children)
    capsys.readouterr()


def test_a_view_not_shown_keeps_its_widgets(emulator_env: Emulator) -> None:
    """A view built in code and never displayed (``FusionView.of``) may still be displayed: it keeps them."""
    import fusion_magic
    from fusion_magic.fusion.view import FusionView

    emulator_env.script("k1", ModelScript(reply="4"))
    result = fusion_magic.fuse("2+2?", pool=["openai:k1"], judge="vote")
    view = FusionView.of(result)
    assert isinstance(view.widget, ipywidgets.VBox) and view.widget.comm is not None
    view.widget.close()


def test_a_long_answer_s_frozen_chunks_are_closed_when_the_final_render_replaces_them(
        shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    """A long answer streams as frozen chunks; its final render is one piece, and the chunks it replaced are closed."""
    magics = magics_of(shell)
    magics.view = "widgets"
    paragraph = "A sentence that goes on for a while to fill the stream. " * 12
    emulator_env.script("long", ModelScript(reply="\n\n".join([paragraph] * 12), chunk_chars=200, tokens_per_s=2000))
    shell.run_cell_magic("fuse", "-p openai:long -j vote", "go on")  # warm
    before = live()
    shell.run_cell_magic("fuse", "-p openai:long -j vote", "go on")
    assert live() - before == set()
    capsys.readouterr()


def test_a_finished_video_cell_leaves_no_live_widget(vshell: InteractiveShell, emulator_env: Emulator,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from fusion_magic.ipython.video import VideoMagics
    from fusion_magic.testing import VideoScript

    omni, veo = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
    emulator_env.script(omni, VideoScript(polls=1, clip_seconds=1.0))
    emulator_env.script(veo, VideoScript(polls=1, clip_seconds=1.0))
    magics = next(c for c in vshell.configurables if isinstance(c, VideoMagics))
    magics.view, magics.poll = "widgets", 0.05
    vshell.run_cell_magic("video", f"-p gemini:{omni},gemini:{veo} --out-dir first", "A paper boat")  # warm
    before = live()
    vshell.run_cell_magic("video", f"-p gemini:{omni},gemini:{veo} --out-dir second", "A paper boat")
    view = magics.last_view
    assert live() - before == set()
    assert view is not None and view.finished and view.widget.comm is None
    capsys.readouterr()
