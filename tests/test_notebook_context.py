"""The notebook's history in a cell body, as jupyter-ai's ``%%ai`` reads it: ``{In[N]}``, ``{Out[N]}``,
``{Err[N]}``, ``{_}``, in a real InteractiveShell; the prompt that reaches the provider is read back from the
loopback emulator. Each test runs its cells with ``store_history=True`` (they get numbers, ``In`` and ``Out``
entries) against an in-memory IPython history, so nothing is written to the user's IPython profile."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from IPython.core.history import HistoryManager
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell

from fusion_magic.ipython import args as magic_args
from fusion_magic.ipython import context
from fusion_magic.testing import Emulator, VideoScript

LIVE_KEY = "sk-live-0123456789abcdefXYZ"  # what a real key looks like; the emulator accepts any key
VEO = "veo-3.1-fast-generate-preview"


@pytest.fixture
def nb(shell: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell with an in-memory history (In, Out and the cells' _iN on it); the shell's own put back after."""
    before = set(shell.user_ns)
    saved_ns = {name: shell.user_ns[name] for name in ("In", "_ih", "Out", "_oh") if name in shell.user_ns}
    saved_history = shell.history_manager
    memory = HistoryManager(shell=shell, parent=shell, hist_file=":memory:")
    shell.history_manager = memory
    shell.user_ns.update(In=memory.input_hist_parsed, _ih=memory.input_hist_parsed,
                         Out=memory.output_hist, _oh=memory.output_hist)
    yield shell
    shell.history_manager = saved_history
    shell.user_ns.update(saved_ns)
    for name in set(shell.user_ns) - before - {"_", "__", "___"}:
        shell.user_ns.pop(name, None)
    shell.user_ns_hidden.pop(context.ERRORS_NAME, None)


def run(shell: InteractiveShell, source: str) -> tuple[int, ExecutionResult]:
    """Run ``source`` as the notebook's next cell; its number and result."""
    number = shell.execution_count
    return number, shell.run_cell(source, store_history=True)


def fuse(shell: InteractiveShell, emu: Emulator, body: str, line: str = "") -> str:
    """Run a %%fuse cell over two emulated models (a fresh pair each time) and return the prompt model one got."""
    first, second = f"m{shell.execution_count}a", f"m{shell.execution_count}b"
    _, result = run(shell, f"%%fuse -p openai:{first},openai:{second} -j vote {line}\n{body}")
    result.raise_error()
    request = next(q for q in emu.requests if q.model == first)
    content = (request.body or {})["messages"][-1]["content"]
    assert isinstance(content, str)
    return content


def notes(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("note: ")]


def test_in_out_and_the_last_outputs_reach_the_prompt(nb: InteractiveShell, emulator_env: Emulator,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source, _ = run(nb, "x = 6 * 7")
    magic_cell, _ = run(nb, "%time y = 2")
    text_cell, _ = run(nb, "'first ' + 'answer'")
    number_cell, _ = run(nb, "x")
    table_cell, _ = run(nb, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['u', 'v']})")
    run(nb, "x + 1")
    capsys.readouterr()
    body = (f"Code: {{In[{source}]}}\nMagic: {{In[{magic_cell}]}}\nText: {{Out[{text_cell}]}}\n"
            f"Number: {{Out[{number_cell}]}}\nTable:\n{{Out[{table_cell}]}}\nLast: {{_}} Before: {{__}} Third: {{___}}")
    assert fuse(nb, emulator_env, body) == (
        "Code: x = 6 * 7\nMagic: %time y = 2\nText: first answer\nNumber: 42\nTable:\na,b\n1,u\n2,v\n\n"
        "Last: 43 Before: " + "a,b\n1,u\n2,v\n" + " Third: 42")
    assert notes(capsys.readouterr().out) == []


def test_err_quotes_the_traceback_of_a_real_error(nb: InteractiveShell, emulator_env: Emulator) -> None:
    # The message is coloured, as some libraries do: the prompt gets the text without the codes.
    raised, result = run(nb, "def check(n):\n    raise ValueError(f'\\x1b[31mbad input {n}\\x1b[0m')\n\ncheck(7)")
    assert isinstance(result.error_in_exec, ValueError)
    syntax, result = run(nb, "x = (")
    assert isinstance(result.error_before_exec, SyntaxError)
    prompt = fuse(nb, emulator_env, f"Why?\n{{Err[{raised}]}}\nAnd this one:\n{{Err[{syntax}]}}")
    first, second = prompt.split("And this one:\n")
    assert first.startswith("Why?\nTraceback (most recent call last):\n")
    assert "check(7)" in first and "raise ValueError(f'\\x1b[31mbad input" in first  # the cell's own lines
    assert first.rstrip().endswith("ValueError: bad input 7")
    assert "interactiveshell.py" not in first  # IPython's own frames are left out, as IPython shows it
    assert "x = (" in second and "SyntaxError" in second
    assert "\x1b" not in prompt and "{Err[" not in prompt
    usage, result = run(nb, "%%fuse -p nope:x\nhi")  # a magic's usage error: one line, as IPython shows it
    assert result.error_in_exec is not None
    assert fuse(nb, emulator_env, f"{{Err[{usage}]}}") == f"UsageError: {result.error_in_exec}"


def test_unknown_history_passes_through_with_one_note(nb: InteractiveShell, emulator_env: Emulator,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fine, _ = run(nb, "1 + 1")
    quiet, _ = run(nb, "z = 3")
    never = nb.execution_count + 1000
    capsys.readouterr()
    body = (f"{{Out[{never}]}} {{In[{never}]}} {{Err[{fine}]}} {{Out[{quiet}]}} {{In[-1]}} {{In[0]}} "
            f"{{Out[{never}]}} {{missing}} {{_foo}}")
    assert fuse(nb, emulator_env, body) == body
    assert notes(capsys.readouterr().out) == [
        f"note: {{Out[{never}]}} is not in this notebook's history (left as written)",
        f"note: {{In[{never}]}} is not in this notebook's history (left as written)",
        f"note: {{Err[{fine}]}} is not in this notebook's history: no error from cell {fine} since "
        f"%load_ext fusion_magic (the last {context.KEEP_ERRORS} kept) (left as written)",
        f"note: {{Out[{quiet}]}} is not in this notebook's history (left as written)",
        "note: {In[-1]} is not a cell number: cells count from 1, as in {In[3]} (left as written)",
        "note: {In[0]} is not a cell number: cells count from 1, as in {In[3]} (left as written)",
        # A typo is seen before anything is sent: every undefined name, in one line.
        "note: {missing}, {_foo} are not defined here (left as written; --no-interpolate sends every brace as "
        "typed)",
    ]


def test_keys_never_reach_the_prompt(nb: InteractiveShell, emulator_env: Emulator,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", LIVE_KEY)
    echoed, _ = run(nb, "import os\nraise RuntimeError('401: Authorization: Bearer ' + os.environ['OPENAI_API_KEY'])")
    shown, _ = run(nb, "os.environ['OPENAI_API_KEY']")
    stored = nb.user_ns[context.ERRORS_NAME][echoed]
    assert "Bearer <redacted>" in stored and LIVE_KEY not in stored  # redacted when recorded, too
    # A key set after the error (or a literal in a cell) is still taken out when the body is interpolated.
    later, _ = run(nb, "raise KeyError('fal token ' + 'fal-secret-' + '98765')")
    monkeypatch.setenv("FAL_KEY", "fal-secret-98765")
    nb.user_ns["token"] = "my key is fal-secret-98765"
    prompt = fuse(nb, emulator_env, f"{{Err[{echoed}]}}\n{{Out[{shown}]}}\n{{Err[{later}]}}\n{{token}}")
    assert LIVE_KEY not in prompt and "fal-secret-98765" not in prompt
    assert "RuntimeError: 401: Authorization: Bearer <redacted>" in prompt
    assert "\n<redacted>\n" in prompt and "fal token <redacted>" in prompt and "my key is <redacted>" in prompt
    nb.user_ns.pop("token")


def test_json_code_and_no_interpolate_leave_braces_alone(nb: InteractiveShell, emulator_env: Emulator,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    number, _ = run(nb, "40 + 2")
    capsys.readouterr()
    body = (f'JSON {{"Out": [{number}], "In": {{"x": 1}}}} code f"{{Out[{number}]!r}} {{In[{number}]:>9}}" '
            f"{{{{Out[{number}]}}}} {{ Out[{number}] }} {{Out[{number}][0]}} {{Out[{number}]}}")
    expected = body[: body.rindex("{Out[")] + "42"
    assert fuse(nb, emulator_env, body) == expected
    assert notes(capsys.readouterr().out) == []
    never = nb.execution_count + 1000
    literal = f"{{Out[{number}]}} {{In[{number}]}} {{Out[{never}]}} {{_}}"
    assert fuse(nb, emulator_env, literal, line="--no-interpolate") == literal
    assert notes(capsys.readouterr().out) == []


def test_only_the_last_errors_are_kept_and_long_ones_keep_their_end(nb: InteractiveShell,
                                                                    emulator_env: Emulator) -> None:
    first, _ = run(nb, "raise OSError('the first')")
    for _ in range(context.KEEP_ERRORS - 1):
        run(nb, "1 / 0")
    errors = nb.user_ns[context.ERRORS_NAME]
    assert first in errors and len(errors) <= context.KEEP_ERRORS
    long, _ = run(nb, "raise ValueError('x' * 30_000 + ' THE END')")
    assert first not in errors and long in errors and len(errors) == context.KEEP_ERRORS
    prompt = fuse(nb, emulator_env, f"{{Err[{first}]}}|{{Err[{long}]}}")
    head, tail = prompt.split("|", 1)
    assert head == f"{{Err[{first}]}}"
    assert len(tail) <= magic_args.MAX_VALUE_CHARS and tail.startswith("[... truncated]\n")
    assert tail.endswith(" THE END")


def test_errors_are_recorded_only_while_the_extension_is_loaded(nb: InteractiveShell, emulator_env: Emulator,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    context.stop_recording(nb)
    try:
        unrecorded, _ = run(nb, "raise LookupError('while unloaded')")
        assert context.ERRORS_NAME not in nb.user_ns
    finally:
        context.start_recording(nb)
    recorded, _ = run(nb, "raise LookupError('while loaded')")
    capsys.readouterr()
    prompt = fuse(nb, emulator_env, f"{{Err[{unrecorded}]}} / {{Err[{recorded}]}}")
    assert prompt.startswith(f"{{Err[{unrecorded}]}} / Traceback") and "LookupError: while loaded" in prompt
    assert len(notes(capsys.readouterr().out)) == 1


def test_a_cell_run_without_history_leaves_no_error(nb: InteractiveShell) -> None:
    number = nb.execution_count
    nb.run_cell("raise ValueError('not kept')", store_history=False)  # it has no number: nothing to quote
    assert number not in nb.user_ns.get(context.ERRORS_NAME, {})


def test_video_prompts_quote_the_notebook_too(nb: InteractiveShell, vshell: InteractiveShell,
                                              emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(VEO, VideoScript(polls=1, clip_seconds=1.0))
    scene, _ = run(nb, "'a paper boat on a rainy street'")
    never = nb.execution_count + 1000
    capsys.readouterr()
    _, result = run(nb, f"%%video -p gemini:{VEO} --seconds 6\nFilm {{Out[{scene}]}}, not {{Out[{never}]}}")
    result.raise_error()
    sent = json.dumps([q.body for q in emulator_env.requests if q.model == VEO])
    assert f"Film a paper boat on a rainy street, not {{Out[{never}]}}" in sent
    assert notes(capsys.readouterr().out) == [
        f"note: {{Out[{never}]}} is not in this notebook's history (left as written)"]


def test_interpolate_alone_reads_a_plain_namespace() -> None:
    said: list[str] = []
    namespace = {"In": ["", "a = 1"], "Out": {1: [1, 2]}, context.ERRORS_NAME: {1: "Traceback ...\nE: e"},
                 "_": [1, 2], "topic": "entropy"}
    out = magic_args.interpolate("{In[1]}|{Out[1]}|{Err[1]}|{_}|{topic}|{Err[2]}|{__}|{x}", namespace,
                                 note=said.append)
    assert out == "a = 1|[1, 2]|Traceback ...\nE: e|[1, 2]|entropy|{Err[2]}|{__}|{x}"
    assert [s.split(" ")[1] for s in said] == ["{Err[2]}", "{__}", "{x}"]  # {x}: undefined, named once
    assert magic_args.interpolate("{Out[5]} {__}", {}) == "{Out[5]} {__}"  # no note taker: silently as written
    said.clear()  # IPython's start value of _ before any output is no output
    assert magic_args.interpolate("{_}", {"_": "", "Out": {}}, note=said.append) == "{_}" and len(said) == 1
    assert magic_args.interpolate("{_}", {"_": "", "Out": {1: ""}}, note=said.append) == "" and len(said) == 1


def test_error_history_keeps_the_newest() -> None:
    errors = context.ErrorHistory(keep=3)
    for count in range(1, 6):
        errors.add(count, f"E{count}")
    assert dict(errors) == {3: "E3", 4: "E4", 5: "E5"}
