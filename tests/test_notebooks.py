"""The notebooks as stored: nbval (``make test``) can only compare what a notebook keeps.

A ``# NBVAL_CHECK_OUTPUT`` cell saved without output compares with nothing and always passes, so each one must
keep its expected output (``tools/refresh_checked_outputs.py`` stores them). Every other cell is saved
empty: no timings, paths or model text in the repository, and never a key.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from fusion_magic.testing import Emulator

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_keep_their_expected_output_and_no_other_cell_keeps_any(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    checked = [c for c in code if CHECK in c.source.splitlines()]
    assert checked, f"{path.name} checks no output: nbval would only see that its cells run"
    for cell in checked:
        assert cell.outputs, f"{path.name}: a checked cell has no stored output, so nbval compares nothing:\n" \
                             f"{cell.source}\n(run tools/refresh_checked_outputs.py notebooks/{path.name})"
        assert cell.execution_count is not None  # nbval refuses an output of an "unrun" cell
        assert not any(o.get("output_type") == "error" for o in cell.outputs)
    assert all(not c.outputs for c in code if c not in checked), f"{path.name} keeps outputs of unchecked cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_key_is_stored(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    json.loads(text)
    assert not any(key in text for key in Emulator.test_keys().values())
