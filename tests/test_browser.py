"""%%fuse in JupyterLab, seen by a real browser: headless Chromium (Debian's, driven by Playwright) runs a
notebook against the loopback emulator, watches the live view while the models are still silent, checks the
finished report, saves, restarts the server and checks what a reopened notebook shows.

Needs /usr/bin/chromium (``make test`` installs Debian's chromium) and the ``dev`` extra (jupyterlab,
playwright). Screenshots go to build/browser-test/. Run alone with
``.venv/bin/python -m pytest -q -s tests/test_browser.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import nbformat
import pytest

from fusion_magic.testing import Emulator, ModelScript

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning"),
    # Two JupyterLab starts (20-30 s each on two cores), a kernel start and a run.
    pytest.mark.timeout(600),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = Path(__file__).resolve().parents[1] / "build" / "browser-test"
NOTEBOOK = "fuse.ipynb"
FUSE_CELL = "%%fuse -p openai:slow1,anthropic:slow2 -j gemini:judge -m merge -o r\nWhat is the capital of France?"
# The members stay silent this long: the whole "waiting for the first token" phase is checked inside it.
TTFT_S = 8.0
ANSWER = "Paris."

T = TypeVar("T")

SERVER_START_S = 120.0
UI_MS = 60_000  # Playwright waits, in milliseconds


def require_components() -> None:
    """Fail (never skip) with one line saying what is missing and how to get it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium chromium-driver)")
    missing = [m for m in ("playwright", "jupyterlab") if not _importable(m)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: pip install -e '.[dev]' (or run `make test`)")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext fusion_magic"), nbformat.v4.new_code_cell(FUSE_CELL)]
    nbformat.write(nb, path)


# ---- the Jupyter server ----------------------------------------------------------------------------------


@dataclass
class Lab:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def page_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}"


def lab_env(tmp: Path, emu: Emulator) -> dict[str, str]:
    """os.environ plus the emulator's URLs and fake keys (the kernel inherits them), with Jupyter's and
    IPython's per-user dirs moved under tmp. The kernelspec and the lab extensions (jupyterlab_widgets) are
    found under sys.prefix, which stays on Jupyter's path."""
    env = {**os.environ, **emu.env(), **emu.test_keys()}
    for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        (tmp / sub).mkdir(exist_ok=True)
        env[name] = str(tmp / sub)
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    # No news fetch (there is no network) and no "get notified about Jupyter news?" toast over the output.
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8")
    return env


@contextlib.contextmanager
def jupyter_lab(root: Path, tmp: Path, env: dict[str, str], name: str) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 serving ``root``; terminated (and its kernels with it) on exit."""
    port, token = free_port(), secrets.token_hex(16)
    log = tmp / f"{name}.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}", f"--LabApp.user_settings_dir={tmp / 'settings'}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        wait_for_server(lab)
        yield lab
    finally:
        stop_server(lab)


def wait_for_server(lab: Lab) -> None:
    deadline = time.monotonic() + SERVER_START_S
    request = urllib.request.Request(f"{lab.url}/api/status", headers={"Authorization": f"token {lab.token}"})
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    while time.monotonic() < deadline:
        if lab.proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with status {lab.proc.returncode} before answering:\n{lab.tail()}")
        with contextlib.suppress(OSError), direct.open(request, timeout=5) as reply:
            if reply.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer {lab.url}/api/status within {SERVER_START_S:.0f} s:\n{lab.tail()}")


def stop_server(lab: Lab) -> None:
    """SIGTERM lets the server shut its kernels down; SIGKILL its process group if it will not go."""
    if lab.proc.poll() is None:
        lab.proc.terminate()
        try:
            lab.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(lab.proc.pid, signal.SIGKILL)
            lab.proc.wait(timeout=10)


# ---- the page ----------------------------------------------------------------------------------------------


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def wait_kernel_idle(page: Page) -> None:
    """The kernel is started, connected and idle: the status bar reads "Python 3 (ipykernel) | Idle" (the
    toolbar's execution indicator alone says idle before the kernel has even started)."""
    page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for()
    wait_text(page.locator("#jp-main-statusbar"), lambda t: re.search(r"\|\s*Idle", t) is not None,
              "the kernel to be idle", timeout_s=2 * UI_MS / 1000)


def run_all_cells(page: Page) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                 has_text=re.compile(r"^Run All Cells$")).click()


def fuse_output(page: Page) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")


def wait_for(read: Callable[[], T], ok: Callable[[T], bool], what: str, timeout_s: float = 90.0) -> T:
    """Poll ``read()`` until ``ok`` holds for its value and return it; fail with the last value read."""
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []  # each distinct value read, in order: what the page went through
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = read()
            if ok(value):
                return value
            if not seen or seen[-1] != str(value):
                seen.append(str(value))
        time.sleep(0.2)
    reads = " -> ".join(v[:1000] for v in seen[-4:])
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; read: {reads}")


def wait_text(locator: Locator, ok: Callable[[str], bool], what: str, timeout_s: float = 90.0) -> str:
    """Poll ``locator``'s whole text (hidden tab panes included) until ``ok`` holds; return it."""
    return wait_for(lambda: " ".join(locator.all_text_contents()), ok, what, timeout_s)


def assert_no_widget_errors(page: Page) -> None:
    body = page.locator("body").inner_text()
    for bad in ("Error displaying widget", "model not found"):
        assert bad not in body, f"the page shows {bad!r}: {body[:3000]!r}"


def assert_static_report(output: Locator, where: str) -> None:
    """The finished run as the static HTML report: the Fused answer first, then Judge, Answers, the ledger."""
    text = output.inner_text()
    headings = ["Fused answer", "Judge", "Answers", "Cost & latency"]
    missing = [h for h in headings if h not in text]
    assert not missing, f"{where}: no static report (missing {missing}); the cell output reads: {text[:2000]!r}"
    places = [text.index(h) for h in headings]
    assert places == sorted(places), f"{where}: report sections out of order: {text[:2000]!r}"
    fused_part = text[places[0]:places[1]]
    assert ANSWER in fused_part, f"{where}: the fused answer {ANSWER!r} is not under 'Fused answer': {fused_part!r}"
    answer = output.locator("p", has_text=re.compile(rf"^\s*{re.escape(ANSWER)}\s*$")).first
    assert answer.is_visible(), f"{where}: the fused answer {ANSWER!r} is not visible"
    total = output.locator("td, th", has_text=re.compile(r"^\s*TOTAL\s*$")).first
    assert total.is_visible(), f"{where}: the ledger's TOTAL row is not visible: {text[:2000]!r}"
    assert "overhead" in text, f"{where}: the ledger has no 'overhead' row: {text[:2000]!r}"
    assert "Error displaying widget" not in text, f"{where}: {text[:2000]!r}"


def saved_outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return json.dumps(nb.cells[1].get("outputs", []))


# ---- the test ----------------------------------------------------------------------------------------------


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        for model in ("slow1", "slow2"):
            emu.script(model, ModelScript(reply="Paris is the capital of France.", ttft_s=TTFT_S, tokens_per_s=20))
        emu.script("judge", ModelScript(reply=json.dumps({"reasoning": "both agree", "answer": ANSWER})))
        yield emu


def test_fuse_in_jupyterlab_with_chromium(slow_emulator: Emulator, tmp_path: Path) -> None:
    require_components()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / NOTEBOOK)
    env = lab_env(tmp_path, slow_emulator)
    for old in SHOTS.glob("*.png"):  # this run's screenshots only
        old.unlink()
    started = time.monotonic()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            with jupyter_lab(root, tmp_path, env, "lab-1") as lab, notebook_page(browser, lab) as page:
                problems = run_and_save(page, slow_emulator, root / NOTEBOOK)
            # A fresh server on the same directory: the notebook as anyone would reopen it.
            with jupyter_lab(root, tmp_path, env, "lab-2") as lab, notebook_page(browser, lab) as page:
                output = fuse_output(page)
                wait_text(output, lambda t: ANSWER in t, "the saved output")
                shot(page, "3-reopened")
                assert_static_report(output, "after reopening")
                assert_no_widget_errors(page)
        finally:
            browser.close()
    print(f"browser test took {time.monotonic() - started:.1f} s")
    assert not problems, "\n".join(problems)


@contextlib.contextmanager
def notebook_page(browser: Browser, lab: Lab) -> Iterator[Page]:
    """The notebook open in a fresh page, kernel idle; on failure a screenshot while the server still runs."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    try:
        page.set_default_timeout(UI_MS)
        page.goto(lab.page_url(NOTEBOOK))
        page.locator(".jp-Notebook .jp-Cell").nth(1).wait_for()
        wait_kernel_idle(page)
        yield page
    except BaseException:
        with contextlib.suppress(Exception):
            shot(page, "failure")
        raise
    finally:
        page.close()


def run_and_save(page: Page, emu: Emulator, path: Path) -> list[str]:
    """Run all cells, check the live view, the finished report and the saved file; return the failures
    that were left for the end."""
    run_all_cells(page)
    output = fuse_output(page)

    # --- while both members are still waiting for their first token (TTFT_S) --------------------------
    tab = output.locator(".widget-tab")
    tab.first.wait_for()
    status = output.locator(".widget-vbox:has(> .widget-tab) > .widget-html").first
    status_text = wait_text(status, lambda t: "answers in" in t, "the status line")
    panes = " ".join(tab.first.all_text_contents())
    shot(page, "1-waiting")
    assert "0/2 answers in" in status_text and "streaming" not in status_text, status_text
    assert "failed" not in panes.lower(), f"a tab says failed while waiting: {panes[:2000]!r}"
    assert "waiting for the first token" in panes, f"no member says it is waiting: {panes[:2000]!r}"
    members = [q.model for q in emu.requests if q.model in ("slow1", "slow2")]
    assert sorted(members) == ["slow1", "slow2"], f"the emulator saw {members}"
    # Tab titles: a wrong title is reported at the end, so one run still checks everything after it.
    expected = ["Fused", "Judge", "slow1", "slow2", "Cost & latency"]
    labels = output.locator(".widget-tab .lm-TabBar-tabLabel")
    problems: list[str] = []
    try:
        wait_for(lambda: [t.strip() for t in labels.all_inner_texts()], lambda t: t == expected,
                 f"the live view's tab titles to read {expected}", timeout_s=TTFT_S)
    except AssertionError as exc:
        problems.append(str(exc))

    # --- finished: the live view gives way to the static report ----------------------------------------
    wait_text(output, lambda t: "Fused answer" in t or "done in" in t, "the run to finish")
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]")).wait_for()
    wait_kernel_idle(page)
    shot(page, "2-finished")
    assert_static_report(output, "after the run")
    assert_no_widget_errors(page)

    # --- saved to disk ---------------------------------------------------------------------------------
    dirty = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty", has_text=NOTEBOOK)
    dirty.wait_for()
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    dirty.wait_for(state="detached")
    saved = wait_for(lambda: saved_outputs(path), lambda s: ANSWER in s, f"{ANSWER!r} in the saved outputs")
    assert "TOTAL" in saved, f"the saved outputs have no ledger: {saved[:2000]!r}"
    text = path.read_text(encoding="utf-8")
    for key in emu.test_keys().values():
        assert key not in text, "an API key was saved in the notebook"
    return problems
