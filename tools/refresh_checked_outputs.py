"""Store the expected outputs of the notebooks' ``# NBVAL_CHECK_OUTPUT`` cells.

nbval compares a checked cell with the output saved in the notebook, and a cell saved without output compares
with nothing: it always passes. This runs each notebook in a headless kernel (in its own folder, as nbval
does) and writes back the outputs of the checked cells only; every other cell is saved empty, so the notebooks
stay small and carry no timings, paths or model text. ``tests/test_notebooks.py`` fails when a checked cell
has no stored output. Run it after changing what a checked cell prints, and read the diff before committing.

    .venv/bin/python tools/refresh_checked_outputs.py [notebooks/03-video.ipynb ...]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

CHECK = "# NBVAL_CHECK_OUTPUT"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def checked(source: str) -> bool:
    """Whether a cell's output is compared by nbval (its marker on the first line or any line)."""
    return any(line.strip() == CHECK for line in source.splitlines())


def refresh(path: Path) -> int:
    """Run ``path`` and store its checked cells' outputs; returns how many cells were stored."""
    import nbformat
    from nbclient import NotebookClient

    saved = nbformat.read(path, as_version=4)
    run = copy.deepcopy(saved)
    NotebookClient(run, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    stored = 0
    for kept, ran in zip(saved.cells, run.cells, strict=True):
        if kept.cell_type != "code":
            continue
        kept.execution_count = None
        kept.outputs = []
        if checked(kept.source):
            # nbval refuses a stored output without an execution count ("unrun reference cell").
            kept.execution_count = ran.execution_count
            kept.outputs = [_plain(o) for o in ran.outputs]
            stored += 1
    nbformat.write(saved, path)
    return stored


def _plain(output: dict) -> dict:
    # An execute_result's count changes with every run; nbval ignores it, the diff should too.
    output = copy.deepcopy(output)
    if output.get("output_type") == "execute_result":
        output["execution_count"] = None
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refresh_checked_outputs.py")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    ns = parser.parse_args(argv)
    for path in ns.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        print(f"{path}: {refresh(path)} checked cells stored", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
