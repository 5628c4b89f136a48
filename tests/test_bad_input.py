"""Bad input (issue #21, point 4): every mistake a user can type is one ``UsageError`` line, no traceback, and no
request at all: the emulator's log stays empty. Each cell runs as a user runs it (``shell.run_cell``), so what
IPython prints is checked too."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.testing import Emulator

VEO, OMNI = "veo-3.1-fast-generate-preview", "gemini-omni-1.2-flash"


@dataclass(frozen=True)
class Bad:
    """One bad input: the magic line (``%%`` cell magic when ``cell`` is given) and a word its message has."""

    name: str
    line: str
    cell: str | None
    says: str


CASES = [
    Bad("unknown provider", "%%fuse -p nope:x", "hi", "unknown provider 'nope'"),
    Bad("malformed id", "%%fuse -p gpt-4o", "hi", "must look like provider:model"),
    Bad("malformed id, empty model", "%%fuse -p openai:", "hi", "must look like provider:model"),
    Bad("unknown flag", "%%fuse -p openai:a --bogus", "hi", "unrecognized arguments: --bogus"),
    Bad("unknown video flag", f"%%video -p gemini:{VEO} --bogus", "A fox", "--bogus"),
    Bad("empty prompt", "%%fuse -p openai:a", "\n   \n# NBVAL_IGNORE_OUTPUT\n", "the prompt is empty"),
    Bad("--rounds 0", "%%fuse -p openai:a,openai:b -j openai:j -m debate --rounds 0", "hi", "--rounds"),
    Bad("--timeout -1", "%%fuse -p openai:a -t -1", "hi", "--timeout must be positive"),
    Bad("--timeout 0", "%%fuse -p openai:a -t 0", "hi", "--timeout must be positive"),
    Bad("video --timeout -1", f"%%video -p gemini:{VEO} -t -1", "A fox", "--timeout"),
    Bad("--repeats 0", "%fuse eval qs -p openai:a --strategies single --repeats 0", None, "repeats"),
    Bad("--concurrency 0", "%fuse eval qs -p openai:a --strategies single --concurrency 0", None, "concurrency"),
    Bad("quorum above the pool", "%%fuse -p openai:a,openai:b -q 7", "hi", "--quorum must be between 1 and"),
    Bad("unknown mode", "%%fuse -p openai:a -m fastest", "hi", "invalid choice: 'fastest'"),
    Bad("missing attachment", "%%fuse -p openai:a --attach nothere.png", "hi", "nothere.png: no such file"),
    Bad("a folder as attachment", "%%fuse -p openai:a --attach adir", "hi", "adir"),
    Bad("unreadable attachment", "%%fuse -p openai:a --attach noperm.txt", "hi", "noperm.txt"),
    Bad("unsupported file type", "%%fuse -p openai:a --attach prog.exe", "hi", "prog.exe: not an image"),
    Bad("missing video for --understand", f"%%video -p gemini:{OMNI} --understand missing.mp4", "What happens?",
        "--understand: no such file: missing.mp4"),
    Bad("--out-dir outside (absolute)", f"%%video -p gemini:{VEO} --out-dir /tmp/fusion-elsewhere", "A fox",
        "is outside the working folder"),
    Bad("--out-dir outside (..)", f"%%video -p gemini:{VEO} --out-dir ../up", "A fox",
        "is outside the working folder"),
    Bad("over-long prompt", "%%fuse -p openai:gpt-4o -j vote", "word " * 700_000, "context"),
    Bad("--continue a non-result", "%%fuse -p openai:a --continue notres", "hi", "notres is an int"),
    Bad("--continue an undefined name", "%%fuse -p openai:a --continue nosuch", "hi", "nosuch is not defined"),
    Bad("--batch without a batch API", "%fuse eval qs -p ollama:m --strategies single --batch", None,
        "none of these models' providers has a batch API"),
]
XFAIL: dict[str, str] = {}  # a case the product does not refuse yet, with why
TRIED: dict[str, str] = {}


def prepare(shell: InteractiveShell, workdir: Path) -> None:
    """The files and variables the cases name, in the working folder (vshell made it tmp_path)."""
    (workdir / "adir").mkdir(exist_ok=True)
    unreadable = workdir / "noperm.txt"
    unreadable.write_text("secret notes")
    unreadable.chmod(0)
    (workdir / "prog.exe").write_bytes(b"MZ\x90\x00\x03\x00\x00\x00" + bytes(range(256)))
    shell.user_ns["qs"] = pd.DataFrame({"question": ["What is 2+2?"], "reference": ["4"]})
    shell.user_ns["notres"] = 5


def try_bad(shell: InteractiveShell, emulator: Emulator, bad: Bad, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``bad`` as a user would; assert one UsageError line, nothing else printed, no request. Its message."""
    source = bad.line if bad.cell is None else f"{bad.line}\n{bad.cell}"
    capsys.readouterr()
    outcome = shell.run_cell(source, store_history=False)
    printed = capsys.readouterr()
    error = outcome.error_in_exec or outcome.error_before_exec
    assert type(error) is UsageError, f"{bad.name}: {error!r}"
    message = str(error)
    assert "\n" not in message and bad.says in message, f"{bad.name}: {message!r}"
    shown = [line for line in (printed.out + printed.err).splitlines() if line.strip()]
    assert shown == [f"UsageError: {message}"], f"{bad.name}: printed {shown!r}"
    assert "Traceback" not in printed.out + printed.err
    assert emulator.requests == [], f"{bad.name}: {[q.path for q in emulator.requests]}"
    return message


@pytest.mark.parametrize("bad", [
    pytest.param(b, id=b.name, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[b.name])] if b.name in XFAIL else [])
    for b in CASES])
def test_bad_input_is_one_usage_line_and_no_request(vshell: InteractiveShell, emulator_env: Emulator, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], bad: Bad) -> None:
    if bad.name == "unreadable attachment" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    prepare(vshell, tmp_path)
    try:
        TRIED[bad.name] = try_bad(vshell, emulator_env, bad, capsys)
    finally:
        for name in ("qs", "notres"):
            vshell.user_ns.pop(name, None)


def test_magics_raise_usage_error_itself(shell: InteractiveShell, emulator_env: Emulator) -> None:
    """Called directly (not through run_cell), the error is IPython's UsageError class itself: IPython prints a
    traceback for its subclasses."""
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("fuse", "-p nope:x", "hi")
    assert type(info.value) is UsageError and emulator_env.requests == []


def test_an_undefined_name_passes_through_with_one_line_before_anything_is_sent(
        shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    shell.run_cell_magic("fuse", "-p openai:a -j vote", "Explain {undefined_topic}.")
    sent = next(q for q in emulator_env.requests if q.model == "a").body or {}
    assert sent["messages"][-1]["content"] == "Explain {undefined_topic}."
    notes = [line for line in capsys.readouterr().out.splitlines() if "undefined_topic" in line]
    assert len(notes) == 1


def test_zz_table(vshell: InteractiveShell, emulator_env: Emulator, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    """The cases this process has not run yet (one test alone, or another xdist worker) run here, then the table."""
    prepare(vshell, tmp_path)
    for bad in CASES:
        if bad.name in TRIED or bad.name in XFAIL or (bad.name == "unreadable attachment" and os.geteuid() == 0):
            continue
        emulator_env.reset()
        TRIED[bad.name] = try_bad(vshell, emulator_env, bad, capsys)
    with capsys.disabled():
        width = max(len(name) for name in TRIED)
        print()
        for name, message in TRIED.items():
            print(f"  {name:<{width}}  {message[:90]}")
        print(f"bad inputs tried: {len(TRIED)}, all one line, 0 requests")
    vshell.user_ns.pop("qs", None)
    vshell.user_ns.pop("notres", None)


def test_context_windows_are_known_for_the_priced_models_and_their_releases() -> None:
    from fusion_magic.core.context_window import context_window

    assert context_window("openai:gpt-4o") == context_window("openrouter:openai/gpt-4o-2024-08-06") == 128_000
    assert context_window("anthropic:claude-sonnet-4-5-20250929") == 200_000
    assert context_window("gemini:gemini-2.5-flash") == 1_048_576
    assert context_window("openai:gpt-4o-mini") == 128_000  # not gpt-4o's by prefix: its own row
    assert context_window("openrouter:meta-llama/llama-3.3-70b-instruct") is None  # unknown: the provider decides


def test_a_quoted_attachment_name_keeps_its_spaces(shell: InteractiveShell, emulator_env: Emulator,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my notes.txt").write_text("Paris is the capital.")
    (tmp_path / "b.txt").write_text("Lyon is not.")
    shell.run_cell_magic("fuse", '-p openai:a -j vote --attach "my notes.txt",b.txt -o r', "Which is the capital?")
    sent = json.dumps(next(q for q in emulator_env.requests if q.model == "a").body)
    assert "my notes.txt" in sent and "Paris is the capital." in sent and "Lyon is not." in sent
    shell.user_ns.pop("r", None)
