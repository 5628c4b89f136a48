"""Every notebook in notebooks/, as a newcomer meets it after ``make demo`` and ``make lab``: opened in
JupyterLab (headless Chromium, Debian's, driven by Playwright) on a machine with no key, Run All, and no cell
ends in an error, shows "Error displaying widget", or is left unrun. Each notebook starts what it needs
itself (the local model, the loopback emulator); the kernel has no provider key and no emulator URL.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra. Screenshots go to
build/browser-test/notebooks/. Run alone with ``.venv/bin/python -m pytest -q -s tests/test_browser_notebooks.py``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest
from browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SHOTS,
    assert_no_widget_errors,
    jupyter_lab,
    lab_env,
    notebook_page,
    require_components,
    run_all_cells,
    save_notebook,
    shot,
    wait_for,
    wait_kernel_idle,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # One JupyterLab start, then four notebooks run in turn (the local model, the emulator, video, evaluation).
    pytest.mark.timeout(900),
]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB_SHOTS = SHOTS / "notebooks"
# What a fresh machine has: no provider key, no base URL pointing anywhere.
PROVIDER_VARS = re.compile(r"^(OPENROUTER|OPENAI|ANTHROPIC|GEMINI|GOOGLE|FAL|RUNWAYML|OLLAMA)_|^FAL_KEY$")
# The slowest notebook's Run All, as a deadline that turns a hang into a failure (not a timing assertion).
RUN_ALL_S = 240.0


def copy_notebooks(root: Path) -> list[str]:
    """The notebooks and what sits beside them, without run output (clips, run logs, checkpoints)."""
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns("videos", "*.sqlite*", ".ipynb_checkpoints"))
    return sorted(p.name for p in root.glob("*.ipynb"))


def ran(page: Page) -> bool:
    """Every code cell's prompt reads ``[n]:``, or a cell shows an error (Run All stopped there)."""
    if page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count():
        return True
    prompts = [c.inner_text().strip() for c in page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all()]
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", t) for t in prompts)


def errors_in(path: Path) -> list[str]:
    """Each error output, and each code cell left unrun, of the notebook saved at ``path``."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.execution_count is None:
            found.append(f"cell {n} did not run: {cell.source[:80]!r}")
        for out in cell.outputs:
            if out.get("output_type") == "error":
                found.append(f"cell {n} raised {out.get('ename')}: {out.get('evalue', '')[:300]}")
    return found


def test_run_all_on_every_notebook_in_jupyterlab(tmp_path: Path) -> None:
    require_components()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "notebooks"
    names = copy_notebooks(root)
    assert len(names) >= 4, names
    only = os.environ.get("FUSION_MAGIC_TEST_NOTEBOOKS")  # a comma-separated subset, when debugging one
    names = [n for n in names if not only or n in only.split(",")]
    env = {k: v for k, v in lab_env(tmp_path, None).items() if not PROVIDER_VARS.match(k)}
    assert not any(PROVIDER_VARS.match(k) for k in env)
    NB_SHOTS.mkdir(parents=True, exist_ok=True)
    for old in NB_SHOTS.glob("*.png"):
        old.unlink()
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            with jupyter_lab(root, tmp_path, env, "lab-notebooks") as lab:
                for name in names:
                    workspace = re.sub(r"\W", "-", name.removesuffix(".ipynb"))
                    with notebook_page(browser, lab, name, shots=NB_SHOTS, workspace=workspace) as page:
                        run_all_cells(page)
                        # Run All stops at a cell that raises: then the error is what there is to see.
                        wait_for(lambda: ran(page), lambda done: done, f"every code cell of {name} to run (or one "
                                 "to raise)", timeout_s=RUN_ALL_S)
                        wait_kernel_idle(page)
                        shot(page, name.removesuffix(".ipynb"), NB_SHOTS)
                        try:
                            assert_no_widget_errors(page)
                        except AssertionError as exc:
                            problems.append(f"{name}: {exc}")
                        save_notebook(page, name)
                        problems += [f"{name}: {e}" for e in errors_in(root / name)]
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
