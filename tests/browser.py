"""Helpers for the real-browser tests (tests/test_browser*.py): a Jupyter server on a free loopback port
pointed at the emulator (JupyterLab, or Jupyter Notebook 7: ``kind``), headless Chromium (Debian's, driven by
Playwright) on a notebook, and patient polls of what the page shows.

    problems = run_then_reopen(tmp_path, emu, ["%load_ext fusion_magic", CELL], "fuse.ipynb", SHOTS,
                               run=lambda page, path: run_and_save(page, emu, path),
                               reopened=lambda page: wait_text(cell_output(page, 1), ok, "the saved output"))

``run_then_reopen`` is the whole test's frame: a notebook, a server that runs and saves it, a second server
that only opens it (as anyone would a saved notebook), headless Chromium on both. ``kind="notebook"`` runs the
same frame in Jupyter Notebook 7. The two front ends are built from the same JupyterLab components (cells,
outputs, menus); they differ in the page's URL, where the kernel's state shows and how a notebook with unsaved
changes looks, and only those helpers ask which front end a page is (``page_kind``).

Every wait has a deadline that only turns a hang into a failure saying what the page showed; none is an
assertion on how long something took.
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
from typing import TYPE_CHECKING, Literal, TypeVar

import nbformat
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

    from fusion_magic.testing import Emulator

__all__ = [
    "CHROMIUM", "CHROMIUM_ARGS", "SHOTS", "UI_MS", "Kind", "Server", "assert_no_widget_errors", "cell_output",
    "free_port", "jupyter_lab", "jupyter_server", "lab_env", "notebook_page", "page_kind", "require_components",
    "run_all_cells", "run_in_browser", "run_then_reopen", "save_notebook", "saved_outputs", "shot", "table_rows",
    "wait_cell_done", "wait_for", "wait_kernel_idle", "wait_text", "write_notebook",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = Path(__file__).resolve().parents[1] / "build" / "browser-test"

T = TypeVar("T")
# The front end a server serves: JupyterLab, or Jupyter Notebook 7 (the ``notebook`` package).
Kind = Literal["lab", "notebook"]
# The module each kind's server runs as, and the name its config traits go under.
SERVER_MODULE: dict[Kind, str] = {"lab": "jupyterlab", "notebook": "notebook"}
SERVER_APP: dict[Kind, str] = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}

SERVER_START_S = 120.0
UI_MS = 60_000  # Playwright waits, in milliseconds


def require_components(kind: Kind = "lab") -> None:
    """Fail (never skip) with one line saying what is missing and how to get it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium chromium-driver)")
    missing = [m for m in ("playwright", "jupyterlab", SERVER_MODULE[kind]) if not _importable(m)]
    missing = list(dict.fromkeys(missing))
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: pip install -e '.[dev]' (or run `make test`)")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the Jupyter server ----------------------------------------------------------------------------------


@dataclass
class Server:
    """A running Jupyter server of one ``kind``: where it answers, its token, its process and log."""

    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path
    kind: Kind = "lab"

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def page_url(self, notebook: str, workspace: str | None = None) -> str:
        """The notebook's page. JupyterLab: in a workspace of its own when named, so no notebook opened before
        it is restored beside it (and takes a "Run All" meant for this one). Notebook 7 opens one notebook per
        page and has no workspace to name."""
        if self.kind == "notebook":
            return f"{self.url}/notebooks/{notebook}?token={self.token}"
        where = f"/lab/workspaces/{workspace}" if workspace else "/lab"
        return f"{self.url}{where}/tree/{notebook}?token={self.token}"


def page_kind(page: Page) -> Kind:
    """Which front end ``page`` shows, from its URL (``Server.page_url``): the page helpers below take only
    the page, as the tests call them."""
    return "notebook" if "/notebooks/" in page.url else "lab"


def lab_env(tmp: Path, emu: Emulator | None) -> dict[str, str]:
    """os.environ plus the emulator's URLs and fake keys (the kernel inherits them; none without ``emu``), with
    Jupyter's and IPython's per-user dirs moved under tmp. The kernelspec and the lab extensions
    (jupyterlab_widgets) are found under sys.prefix, which stays on Jupyter's path."""
    env = {**os.environ, **(emu.env() if emu else {}), **(emu.test_keys() if emu else {})}
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
    # Every cell drawn, not only those on screen: a test reads prompts and outputs anywhere in the notebook.
    notebook = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True, exist_ok=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}), encoding="utf-8")
    return env


@contextlib.contextmanager
def jupyter_server(root: Path, tmp: Path, env: dict[str, str], name: str, kind: Kind = "lab") -> Iterator[Server]:
    """A Jupyter server of ``kind`` on 127.0.0.1 serving ``root``; terminated (and its kernels with it) on exit.
    Both kinds read the user settings ``lab_env`` wrote (they share JupyterLab's settings system). Notebook 7
    shows no unsaved-changes mark, so its page exposes the application object, whose status says whether a
    document has unsaved changes (what its "leave the page?" guard reads; ``save_notebook``)."""
    port, token = free_port(), secrets.token_hex(16)
    log = tmp / f"{name}.log"
    app = SERVER_APP[kind]
    cmd = [
        sys.executable, "-m", SERVER_MODULE[kind],
        "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
        f"--{app}.workspaces_dir={tmp / 'workspaces'}", f"--{app}.user_settings_dir={tmp / 'settings'}",
    ]
    if kind == "notebook":
        cmd.append(f"--{app}.expose_app_in_browser=True")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", token, proc, log, kind)
    try:
        wait_for_server(server)
        yield server
    finally:
        stop_server(server)


def jupyter_lab(root: Path, tmp: Path, env: dict[str, str], name: str) -> contextlib.AbstractContextManager[Server]:
    """A JupyterLab server (``jupyter_server`` of kind "lab")."""
    return jupyter_server(root, tmp, env, name, "lab")


def wait_for_server(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_S
    request = urllib.request.Request(f"{server.url}/api/status", headers={"Authorization": f"token {server.token}"})
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    what = f"jupyter {SERVER_MODULE[server.kind]}"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"{what} exited with status {server.proc.returncode} before answering:\n{server.tail()}")
        with contextlib.suppress(OSError), direct.open(request, timeout=5) as reply:
            if reply.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"{what} did not answer {server.url}/api/status within {SERVER_START_S:.0f} s:\n{server.tail()}")


def stop_server(lab: Server) -> None:
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


def shot(page: Page, name: str, folder: Path = SHOTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


@contextlib.contextmanager
def notebook_page(browser: Browser, lab: Server, notebook: str, *, cell: int = 1, shots: Path = SHOTS,
                  workspace: str | None = None, viewport: tuple[int, int] = (1400, 1600)) -> Iterator[Page]:
    """``notebook`` open in a fresh page of ``viewport`` (width, height), its cell ``cell`` drawn and the kernel
    idle; on failure a screenshot (in ``shots``) while the server still runs."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page.set_default_timeout(UI_MS)
        page.goto(lab.page_url(notebook, workspace))
        page.locator(".jp-Notebook .jp-Cell").nth(cell).wait_for()
        wait_kernel_idle(page)
        yield page
    except BaseException:
        with contextlib.suppress(Exception):
            shot(page, "failure", shots)
        raise
    finally:
        page.close()


def wait_kernel_idle(page: Page) -> None:
    """The kernel is started, connected and idle. The toolbar's execution indicator alone says idle before the
    kernel has even started, so JupyterLab's status bar must read "Python 3 (ipykernel) | Idle"; Notebook 7 has
    no status bar, and there the toolbar names the kernel (it reads "No Kernel" before one started)."""
    page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for()
    if page_kind(page) == "notebook":
        wait_for(lambda: page.evaluate(NB7_KERNEL_JS), lambda k: k == ["idle", "Python 3 (ipykernel)"],
                 "the kernel to be idle", timeout_s=2 * UI_MS / 1000)
        return
    wait_text(page.locator("#jp-main-statusbar"), lambda t: re.search(r"\|\s*Idle", t) is not None,
              "the kernel to be idle", timeout_s=2 * UI_MS / 1000)


# Notebook 7's toolbar: the execution indicator's state and the kernel's name, read at one instant.
NB7_KERNEL_JS = """() => [
    (document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator') || {dataset: {}}).dataset.status,
    ((document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName') || {}).textContent || '').trim()]"""


def run_all_cells(page: Page) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                 has_text=re.compile(r"^Run All Cells$")).click()


def cell_output(page: Page, cell: int) -> Locator:
    """The output area of the notebook's cell number ``cell`` (from 0)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".jp-OutputArea")


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


def saved_outputs(path: Path, cell: int = 1) -> str:
    """The outputs of cell ``cell`` of the notebook saved at ``path``, as JSON text."""
    nb = nbformat.read(path, as_version=4)
    return json.dumps(nb.cells[cell].get("outputs", []))


def wait_cell_done(page: Page, cell: int) -> None:
    """Cell ``cell`` (from 0) has run (its prompt reads ``[n]``, not ``[*]``) and the kernel is idle."""
    prompt = page.locator(".jp-Notebook .jp-Cell").nth(cell).locator(".jp-InputPrompt")
    prompt.filter(has_text=re.compile(r"\[\d+\]")).wait_for()
    wait_kernel_idle(page)


def save_notebook(page: Page, notebook: str) -> None:
    """Save with Ctrl+S (focus on the notebook, not in a cell's editor) and wait until it has no unsaved change.
    It has some first: a notebook saved before its outputs changed would not be checked at all. JupyterLab marks
    the notebook's tab; Notebook 7 marks nothing, so there the application's status says it (``jupyter_server``)."""
    if page_kind(page) == "notebook":
        def dirty() -> bool:
            return bool(page.evaluate("() => window.jupyterapp.status.isDirty"))

        wait_for(dirty, lambda d: d, f"{notebook} to have unsaved changes", timeout_s=UI_MS / 1000)
        page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.keyboard.press("Control+s")
        wait_for(dirty, lambda d: not d, f"{notebook} to be saved", timeout_s=UI_MS / 1000)
        return
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-dirty", has_text=notebook)
    tab.wait_for()
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    tab.wait_for(state="detached")


TABLE_JS = """t => [...t.querySelectorAll('tr')].map(r => [...r.querySelectorAll('th, td')]
    .map(c => c.textContent.replace(/\\s+/g, ' ').trim()))"""


def table_rows(table: Locator) -> list[dict[str, str]]:
    """A rendered ``<table>``'s body rows as {header: cell text}, the header row being the first ``<tr>``
    (a pandas frame's index column has an empty header)."""
    rows: list[list[str]] = table.evaluate(TABLE_JS)
    if not rows:
        return []
    header, *body = rows
    assert all(len(r) == len(header) for r in body), f"a ragged table: {rows}"
    return [dict(zip(header, r, strict=True)) for r in body]


def write_notebook(path: Path, cells: list[str]) -> None:
    """A notebook of code ``cells`` on the Python 3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)


def run_then_reopen(tmp: Path, emu: Emulator, cells: list[str], notebook: str, shots: Path, *,
                    run: Callable[[Page, Path], T], reopened: Callable[[Page], object], kind: Kind = "lab") -> T:
    """The frame of every browser test: write ``cells`` as ``notebook``, open it in headless Chromium on one
    Jupyter server of ``kind`` and ``run(page, path)`` there (it runs, checks and saves); then open the saved
    notebook on a fresh server, with no cell run, and check it with ``reopened(page)``. Returns what ``run``
    returned. Fails (never skips) when a component is missing; only this run's screenshots are left in ``shots``."""
    return run_in_browser(tmp, emu, cells, notebook, shots, run=run, reopened=reopened, kind=kind)


def run_in_browser(tmp: Path, emu: Emulator, cells: list[str], notebook: str, shots: Path, *,
                   run: Callable[[Page, Path], T], reopened: Callable[[Page], object] | None = None,
                   kind: Kind = "lab", viewport: tuple[int, int] = (1400, 1600)) -> T:
    """``run_then_reopen``, whose reopening is left out when ``reopened`` is None (a test that only looks at the
    running notebook); ``viewport`` is the page's size in CSS pixels."""
    require_components(kind)
    from playwright.sync_api import sync_playwright

    root = tmp / "root"
    root.mkdir()
    write_notebook(root / notebook, cells)
    env = lab_env(tmp, emu)
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    started = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            with jupyter_server(root, tmp, env, f"{kind}-1", kind) as server, \
                    notebook_page(browser, server, notebook, shots=shots, viewport=viewport) as page:
                outcome = run(page, root / notebook)
            if reopened is not None:
                with jupyter_server(root, tmp, env, f"{kind}-2", kind) as server, \
                        notebook_page(browser, server, notebook, shots=shots, viewport=viewport) as page:
                    reopened(page)
        finally:
            browser.close()
    print(f"browser test of {notebook} in {SERVER_MODULE[kind]} took {time.monotonic() - started:.1f} s")
    return outcome
