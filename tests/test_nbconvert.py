"""A notebook run in a real kernel, saved, and converted with ``jupyter nbconvert --to html`` (what GitHub, a
docs build or an email attachment shows): each run's static report is in the page, with no widget left to
render, and model text (a member's reply, the judge's reasoning) is text, never markup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fusion_magic.testing import Emulator, ModelScript, VideoScript

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")

VEO = "veo-3.1-fast-generate-preview"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# A member and the judge answer with markup: a page that ran it would run the script, load the image (and its
# onerror), or set the text in bold.
HOSTILE_REPLY = 'It is Paris. <script>alert("m2")</script> <img src=x onerror=alert(2)>'
JUDGE = {"reasoning": "Both say Paris; m2 adds markup <b>bold</b>.", "answer": "Paris, on the Seine."}

CELLS = [
    "%load_ext fusion_magic",
    "%%fuse -p openai:m1,anthropic:m2 -j gemini:jj -m merge -o r\nWhat is the capital of France?",
    "from IPython.display import Markdown\nMarkdown(r.to_markdown())",
    f"%%video -p gemini:{VEO} --seconds 4 --poll 0.05 -o v\nA paper boat on a rainy street",
    "%fuse eval questions.csv -p openai:m1 --strategies single -j vote",
]


def cell_html(page: str, nb: nbformat.NotebookNode, index: int) -> str:
    """The part of the page that shows cell ``index`` (its input and outputs): nbconvert marks each cell with
    its id."""
    marks = [page.index(f'id="cell-id={cell.id}"') for cell in nb.cells]
    return page[marks[index]:marks[index + 1] if index + 1 < len(marks) else len(page)]


def convert(emulator_env: Emulator, tmp_path: Path) -> tuple[nbformat.NotebookNode, str]:
    """The notebook run in a kernel (working folder ``tmp_path``), saved, read back and converted to HTML by
    ``jupyter nbconvert``; returns the saved notebook and the page."""
    emulator_env.script("m1", ModelScript(reply="Paris is the capital of France."))
    emulator_env.script("m2", ModelScript(reply=HOSTILE_REPLY))
    emulator_env.script("jj", ModelScript(reply=json.dumps(JUDGE)))
    emulator_env.script(VEO, VideoScript(polls=1, clip_seconds=1.0))
    (tmp_path / "questions.csv").write_text("question,reference\nWhat is the capital of France?,Paris\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    # The widget state is saved too, as JupyterLab can: the page must not need it.
    NotebookClient(nb, kernel_name="python3", timeout=120, store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = tmp_path / "run.ipynb"
    nbformat.write(nb, saved)
    done = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(saved)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return nbformat.read(saved, as_version=4), (tmp_path / "run.html").read_text(encoding="utf-8")


def test_the_saved_notebook_converts_to_the_static_reports_with_model_text_as_text(emulator_env: Emulator,
                                                                                  tmp_path: Path) -> None:
    nb, page = convert(emulator_env, tmp_path)
    # Every live view was replaced by its static report before the cell ended: no widget output is saved.
    for cell in nb.cells:
        assert not [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})], cell.source
        assert not [o for o in cell.outputs if o.get("output_type") == "error"], cell.source
    # The template's loader looks for such an element (script[type="..."]); there must be none to find.
    assert f'<script type="{WIDGET_VIEW}"' not in page and "Error displaying widget" not in page

    fused = cell_html(page, nb, 1)
    assert 'class="fusion-magic-report"' in fused
    assert "Paris, on the Seine." in fused  # the fused answer
    assert "Both say Paris" in fused and "merge" in fused and "gemini:jj" in fused  # the judge's verdict
    assert "Paris is the capital of France." in fused and "It is Paris." in fused  # each member's answer
    assert "Cost &amp; latency" in fused and "<table" in fused and "TOTAL" in fused  # the ledger
    for model in ("openai:m1", "anthropic:m2", "gemini:jj"):
        assert model in fused

    shown_as_markdown = cell_html(page, nb, 2)
    assert "Paris, on the Seine." in shown_as_markdown and "It is Paris." in shown_as_markdown

    clips = cell_html(page, nb, 3)
    [clip] = sorted((tmp_path / "videos").glob("*.mp4"))
    assert "Clips (1 of 1 saved)" in clips and "A paper boat on a rainy street" in clips
    assert f'src="videos/{clip.name}"' in clips and "<video" in clips and "$0.10" in clips
    assert "<VideoResult clips=1/1 ok>".replace("<", "&lt;").replace(">", "&gt;") in clips

    evaluated = cell_html(page, nb, 4)
    assert "evaluated 1 of 1 rows in " in evaluated  # the progress bar's static line, not the bar
    assert "single:openai:m1" in evaluated and "accuracy" in evaluated

    assert not any(key in page or key in json.dumps(nb) for key in Emulator.test_keys().values())

    # The markup models wrote shows as the characters they wrote, in the report and in to_markdown()'s output.
    for index in (1, 2):
        shown = cell_html(page, nb, index)
        assert "&lt;script&gt;alert(" in shown, index
    assert "&lt;b&gt;bold&lt;/b&gt;" in cell_html(page, nb, 1)
    # No element came of it anywhere in the page (the widget state saved with it included).
    for tag in ("<script>alert", "<img src=x", "<b>bold</b>", 'onerror=alert(2)>'):
        assert tag not in page
