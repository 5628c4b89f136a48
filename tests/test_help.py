"""%fuse help, %fuse? and %%fuse?: a short text that starts with the usage, one line per option, three
examples; none of IPython's argparse decorations (``::``, ``%%%``, ``<{a,b}>``)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic_arguments import MagicArgumentParser

from fusion_magic.ipython.args import (
    EVAL_PARSER,
    FUSE_HELP,
    FUSE_PARSER,
    HISTORY_PARSER,
    REJUDGE_PARSER,
    VIDEO_HELP,
    VIDEO_PARSER,
    VIDEO_RESUME_PARSER,
)


def help_printed(shell: InteractiveShell, capsys: pytest.CaptureFixture[str], cell: str) -> str:
    capsys.readouterr()
    outcome = shell.run_cell(cell)
    assert outcome.success
    return capsys.readouterr().out


def names(options: list[str], text: str) -> bool:
    """Whether ``text`` names one of ``options`` as a whole flag ("--run" in "[--run ID]", not in "--running")."""
    return any(re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) for option in options)


def test_help_text_is_short_and_plain() -> None:
    assert FUSE_HELP.startswith("Usage: %%fuse [options]")
    for decoration in ("::", "%%%", "<{", "{best-of,merge,debate}"):
        assert decoration not in FUSE_HELP
    assert len(FUSE_HELP.splitlines()) <= 48 and max(len(line) for line in FUSE_HELP.splitlines()) <= 100


@pytest.mark.parametrize("parser", [REJUDGE_PARSER, HISTORY_PARSER, EVAL_PARSER], ids=lambda p: p.prog)
def test_every_line_magic_option_is_in_the_help(parser: MagicArgumentParser) -> None:
    """Each %fuse line command's options appear in its entry (a new flag is documented or this fails)."""
    command = parser.prog.split()[-1]
    section = FUSE_HELP.split("Line magic:\n", 1)[1].split("\n\nExamples:", 1)[0]
    entry = section.split(f"  %fuse {command}", 1)[1].split("\n  %fuse ", 1)[0]
    for action in parser._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:  # an old spelling is not listed
            assert names(action.option_strings, entry), (command, action.option_strings)


def test_every_option_has_one_line() -> None:
    lines = FUSE_HELP.splitlines()
    for action in FUSE_PARSER._actions:
        listed = ", ".join(action.option_strings)  # "-p, --pool"
        matching = [line for line in lines if line.startswith(f"  {listed} ")]
        assert len(matching) == 1, listed


def test_three_examples() -> None:
    examples = FUSE_HELP.split("Examples:\n", 1)[1]
    assert [line.strip() for line in examples.splitlines() if line.startswith("  %")] == [
        "%%fuse -p openai:gpt-4o,anthropic:claude-sonnet-4-5 -j vote -o r",
        "%%fuse --attach chart.png,notes.py -o r    and then    %%fuse --continue r -o r2",
        "%fuse rejudge -m merge -j openrouter:openai/gpt-4o",
    ]


@pytest.mark.parametrize("cell", ["%fuse help", "%fuse", "%fuse?", "%%fuse?"])
def test_every_help_form_shows_the_text(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                        cell: str) -> None:
    # "%%fuse?" is what a notebook cell sends; terminal IPython waits for a cell body after any %%
    # line, so the README documents %fuse? and %fuse help, which work everywhere.
    shown = help_printed(shell, capsys, cell)
    assert "Usage: %%fuse [options]" in shown and "Examples:" in shown
    assert "::" not in shown and "%%%" not in shown


def test_terminal_ipython_treats_the_documented_forms_as_complete(shell: InteractiveShell) -> None:
    for form in ("%fuse?", "%fuse help"):
        assert shell.input_transformer_manager.check_complete(form)[0] == "complete"


def test_readme_documents_a_form_that_works() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "`%fuse?` or `%fuse help` shows the help" in readme and "%%fuse?" not in readme


def test_the_video_help_fits_and_names_every_option() -> None:
    lines = VIDEO_HELP.splitlines()
    assert lines[0].startswith("Usage: %%video [options]")
    assert len(lines) <= 50 and max(len(line) for line in lines) <= 100
    for parser in (VIDEO_PARSER, VIDEO_RESUME_PARSER):
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                assert names(action.option_strings, VIDEO_HELP), action.option_strings
    assert not names(["-m", "--models"], VIDEO_HELP)  # the old spellings of -p/--pool are not shown


def test_the_help_shows_the_new_spellings_only() -> None:
    entry = FUSE_HELP.split("  %fuse eval DATA", 1)[1].split("\n\n", 1)[0]
    assert names(["--strategies", "--repeats", "-p"], entry) and not names(["-s", "-r"], entry)
