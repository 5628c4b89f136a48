"""Terminal IPython, typed into through a pseudo-terminal 100 columns wide, as a person at a terminal would: the
real prompt (prompt_toolkit), a ``%%fuse`` cell typed line by line and ended with two empty lines, Ctrl-C as the
byte the terminal sends, ``%fuse?`` through the pager. Against the loopback emulator; no user config (a scratch
IPYTHONDIR).

What the terminal must show: progress lines as calls finish (stderr; ``fusion/progress.py``), then the report as
plain text (``FusionResult.to_text``), every line within the 100 columns and no HTML or widget; Ctrl-C while a
member streams ends the cell with one line and no traceback (``ipython/wait.py``), and the next cell runs."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fusion_magic.testing import Emulator, ModelScript

COLUMNS, ROWS = 100, 40
# The child makes the pty its controlling terminal (so the line discipline turns Ctrl-C into SIGINT for it, as
# in a real terminal) and then becomes IPython; Popen's start_new_session gave it a session of its own first.
BOOT = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
# Control sequences prompt_toolkit writes (CSI, OSC, charset and keypad switches): not text on the screen.
CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>78]")
CURSOR_QUERY = b"\x1b[6n"
PROMPT = re.compile(r"In \[(\d+)\]:")
INPUT = re.compile(r"^ *(?:In \[\d+\]:| *\.\.\.:)", re.MULTILINE)  # a line of input: its prompt or continuation


class Terminal:
    """The master side of a pty with IPython on the other: type keys, read what the screen was sent."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.master = master
        self.raw = bytearray()
        args = ["-m", "IPython", "--no-banner", "--colors=nocolor", "--no-confirm-exit", "--no-autoindent",
                "--HistoryManager.enabled=False"]
        self.child = subprocess.Popen([sys.executable, "-c", BOOT, *args], stdin=slave, stdout=slave, stderr=slave,
                                      cwd=cwd, env=env, start_new_session=True)
        os.close(slave)

    @property
    def text(self) -> str:
        """Everything the screen was sent, control sequences removed, lines ended by "\\n"."""
        shown = CONTROL.sub("", self.raw.decode("utf-8", "replace")).replace(" \b", "").replace("\b", "")
        return shown.replace("\r\n", "\n").replace("\r", "\n")

    def _readable(self) -> bool:
        try:
            poller = select.poll()
            poller.register(self.master, select.POLLIN)
            return bool(poller.poll(0)) and bool(self._take())
        except OSError:
            return False

    def _take(self) -> bytes:
        data = os.read(self.master, 65536)
        self.raw.extend(data)
        for _ in range(data.count(CURSOR_QUERY)):
            os.write(self.master, b"\x1b[1;1R")
        return data

    def read(self, seconds: float) -> None:
        """Take what arrives for up to ``seconds``, answering prompt_toolkit's cursor-position queries."""
        # poll, not select: in a long test session this process may hold more than 1,024 descriptors, and
        # select() refuses any numbered above that.
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        if not poller.poll(seconds * 1000):
            return
        try:
            self._take()
        except OSError:  # the child closed the terminal
            return

    def wait_for(self, done: Callable[[str], bool], timeout: float = 60, since: int = 0) -> str:
        """Read until ``done`` holds for the text shown after offset ``since``; return that text."""
        end = time.monotonic() + timeout
        while not done(self.text[since:]):
            if time.monotonic() > end or (self.child.poll() is not None and not self._readable()):
                raise AssertionError(f"the terminal never showed what was expected; it shows:\n{self.text[since:]}")
            self.read(0.2)
        return self.text[since:]

    def prompt(self, since: int = 0, timeout: float = 60) -> int:
        """Wait for the next empty ``In [n]:`` prompt after ``since``; returns n."""
        shown = self.wait_for(lambda t: bool(PROMPT.search(t)), timeout, since)
        return int(PROMPT.findall(shown)[0])

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait(10)
        os.close(self.master)


@pytest.fixture
def terminal(emulator_env: Emulator, tmp_path: Path) -> Iterator[Terminal]:
    # A scratch IPYTHONDIR: no profile, config or history of the user's.
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(ROWS), "TERM": "xterm", "PAGER": "cat",
           "IPYTHONDIR": str(tmp_path / "ipython")}
    term = Terminal(tmp_path, env)
    try:
        term.prompt()
        yield term
    finally:
        term.close()


def type_cell(term: Terminal, *lines: str) -> tuple[int, str]:
    """Type a cell line by line, as a person would: a one-line cell runs on Enter, a ``%%`` cell on two Enters
    on empty lines after its body. Returns where the screen stood and the prompt that follows the cell."""
    shown = PROMPT.findall(term.text)
    following = f"In [{int(shown[-1]) + 1}]:"
    start = len(term.text)
    for keys in [*lines, *([""] * 2 if len(lines) > 1 else [])]:
        term.type(keys + "\r")
        term.read(0.1)
    return start, following


def output(term: Terminal, typed: tuple[int, str], timeout: float = 60) -> str:
    """What a typed cell printed: after the last echo of its input (prompt_toolkit redraws it as it is typed),
    up to the next prompt."""
    start, following = typed
    shown = term.wait_for(lambda t: following in t, timeout, since=start)
    before = shown[:shown.index(following)]
    echo = list(INPUT.finditer(before))[-1].start()  # the last line of the input as drawn
    printed = before[before.index("\n", echo) + 1:].splitlines()
    while printed and not printed[0].strip():  # the empty lines the terminal moves down past the input
        printed.pop(0)
    return "\n".join(printed)


def run_cell(term: Terminal, *lines: str) -> str:
    """Type a cell and return what it printed."""
    return output(term, type_cell(term, *lines))


LONG = "Rayleigh scattering makes short wavelengths scatter more, so the sky looks blue. " * 20


def test_a_fuse_cell_in_terminal_ipython(terminal: Terminal, emulator_env: Emulator) -> None:
    emulator_env.script("fast", ModelScript(reply="Blue light scatters most."))
    emulator_env.script("slow", ModelScript(reply="Short wavelengths scatter more, so the sky is blue.", ttft_s=3))
    assert run_cell(terminal, "%load_ext fusion_magic").strip() == ""

    typed = type_cell(terminal, "%%fuse -p openai:fast,anthropic:slow -j vote -o r", "Why is the sky blue?")
    # The fast member's line is on the screen while the slow one is still being answered: progress as calls end.
    terminal.wait_for(lambda t: "  fast: done in " in t, since=typed[0])
    assert "Fused answer" not in terminal.text[typed[0]:]
    assert any(q.model == "slow" and q.ended is None for q in emulator_env.requests)
    run = output(terminal, typed)
    lines = run.splitlines()
    assert lines[0] == "fusing 2 answers (best-of, judge: vote)..."
    assert lines[1].startswith("  fast: done in ") and lines[2].startswith("  slow: done in ")
    assert lines[3] == "  judging with vote..."
    report = "\n".join(lines[4:])
    assert report.startswith("Out[2]:") and "Fused answer (best-of, judge vote)" in report
    for part in ("Blue light scatters most.", "Short wavelengths scatter more", "Cost & latency", "TOTAL (2 calls)"):
        assert part in report
    too_wide = [line for line in lines if len(line) > COLUMNS]
    assert too_wide == []
    for html in ("<div", "<table", "<p>", "</", "widget", "Widget", "application/vnd"):
        assert html not in run
    assert "Traceback" not in terminal.text

    # The result is a variable of the session, as in a notebook.
    shown = run_cell(terminal, "print(r.n_ok, sorted(x.model for x in r.responses))")
    assert shown.strip() == "2 ['anthropic:slow', 'openai:fast']"


def test_ctrl_c_while_a_member_streams_is_one_line_and_the_next_cell_runs(terminal: Terminal,
                                                                          emulator_env: Emulator) -> None:
    emulator_env.script("fast", ModelScript(reply="Blue light scatters most."))
    emulator_env.script("slow", ModelScript(reply=LONG, tokens_per_s=20, chunk_chars=4))
    run_cell(terminal, "%load_ext fusion_magic")
    typed = type_cell(terminal, "%%fuse -p openai:fast,anthropic:slow -j vote -o r", "Why is the sky blue?")
    terminal.wait_for(lambda t: "  fast: done in " in t, since=typed[0])
    # The slow member is streaming: its response has started and not ended.
    emulator_env.wait_for(lambda reqs: any(q.model == "slow" and q.status == 200 and q.ended is None for q in reqs),
                          timeout=30)
    terminal.type("\x03")  # what the terminal sends for Ctrl-C
    run = output(terminal, typed)
    assert "Traceback" not in run and "KeyboardInterrupt" not in run and "File " not in run
    lines = [line for line in run.splitlines() if line.strip() and line.strip() != "^C"]
    said = [line for line in lines if line.startswith("fusion_magic: interrupted")]
    assert len(said) == 1 and said[0] == lines[-1]
    assert re.fullmatch(r"fusion_magic: interrupted after [\d.]+ s: 1 of 2 answers done, 1 cancelled; "
                        r"the partial result is in r", said[0])
    assert all(len(line) <= COLUMNS for line in lines)
    # Above it, only progress: how each call ended and that the run stopped.
    assert all(line.lstrip("^C").startswith(("fusing ", "  fast: done", "  slow: cancelled", "stopped: "))
               for line in lines[:-1])
    assert emulator_env.wait_for(lambda reqs: all(q.ended or q.disconnected for q in reqs), timeout=10)

    # The prompt came back, and the session goes on: the partial result is kept, a new cell runs.
    assert run_cell(terminal, "print(r.n_ok, [x.status for x in r.responses])").strip() == "1 ['ok', 'cancelled']"
    emulator_env.script("slow", ModelScript(reply="It is Rayleigh scattering."))
    again = run_cell(terminal, "%%fuse -p openai:fast,anthropic:slow -j vote", "Why is the sky blue?")
    assert "It is Rayleigh scattering." in again and "TOTAL (2 calls)" in again and "Traceback" not in again


def test_fuse_help_in_the_terminal(terminal: Terminal) -> None:
    run_cell(terminal, "%load_ext fusion_magic")
    shown = run_cell(terminal, "%fuse?")
    assert "Usage: %%fuse [options]" in shown and "Options:" in shown and "  -p, --pool IDS" in shown
    assert "Line magic:" in shown and "Traceback" not in shown
    start = len(terminal.text)
    terminal.type("exit\r")
    terminal.wait_for(lambda t: terminal.child.poll() is not None, since=start, timeout=30)
    assert terminal.child.returncode == 0
