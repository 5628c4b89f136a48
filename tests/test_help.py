"""%fuse help, %fuse? and %%fuse?: a short text that starts with the usage, one line per option, three
examples; none of IPython's argparse decorations (``::``, ``%%%``, ``<{a,b}>``). Every help is generated from
the option declarations: each flag of every magic has its declared help line in that magic's help."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, is_dataclass
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic_arguments import MagicArgumentParser

from fusion_magic.core.option import Declared, declared, option
from fusion_magic.evaluation.options import EvalOptions
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.ipython import args as magic_args
from fusion_magic.ipython.args import (
    EVAL_PARSER,
    FUSE_HELP,
    FUSE_PARSER,
    HELP_TOPICS,
    HISTORY_PARSER,
    REJUDGE_PARSER,
    VIDEO_HELP,
    VIDEO_PARSER,
    VIDEO_RESUME_PARSER,
    command_help,
    parse_line_magic,
)
from fusion_magic.ipython.declared import Renamed, flagged, help_block, help_line, help_lines, help_text
from fusion_magic.videos.options import VideoOptions

# Each magic's parser, and the help a user reads for it (%fuse help, %fuse help eval, %video help).
HELP_OF: dict[MagicArgumentParser, str] = {
    FUSE_PARSER: FUSE_HELP,
    REJUDGE_PARSER: command_help("rejudge"),
    HISTORY_PARSER: command_help("history"),
    EVAL_PARSER: command_help("eval"),
    VIDEO_PARSER: VIDEO_HELP,
    VIDEO_RESUME_PARSER: VIDEO_HELP,
}

# Every class whose fields are declared options: the option kinds, and each magic's own arguments.
DECLARING = sorted({FuseOptions, VideoOptions, EvalOptions,
                    *(v for v in vars(magic_args).values() if is_dataclass(v) and isinstance(v, type) and declared(v))},
                   key=lambda cls: cls.__name__)

# The lines of a help that are not generated from the declarations (usage, summary, the line commands' entries,
# examples), at most: a new option adds its line, or a word to its command's entry; anything else must make room
# (the help reads in ten seconds).
OTHER_LINES = {"fuse": 22, "video": 21}


def written_lines(text: str, option_lines: list[str], commands: tuple[magic_args.LineCommand, ...], magic: str) -> int:
    """How many lines of ``text`` are neither an option's line nor a line command's flags in short form."""
    flag_lines = sum(len(c.entry(magic)) - 1 for c in commands if c.summary)
    return len(text.splitlines()) - len(option_lines) - flag_lines


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
    options = help_lines(FuseOptions, magic_args.FuseArgs)
    assert written_lines(FUSE_HELP, options, magic_args.LINE_MAGIC, "%fuse") <= OTHER_LINES["fuse"]
    assert max(len(line) for line in FUSE_HELP.splitlines()) <= 100


def declaration_of(action: argparse.Action) -> Declared:
    """The declared option an argument was generated from: the same field, flags and help (argparse's copy of
    the help doubles every %). Two magics may declare the same flag alike (``--background``): either will do."""
    found = [d for cls in DECLARING for d in declared(cls)
             if d.name == action.dest and d.option.flags == tuple(action.option_strings)
             and help_text(d).replace("%", "%%") == action.help]
    assert found, f"{action.option_strings or action.dest} is written by hand, not declared"
    return found[0]


def test_every_magic_is_in_the_table() -> None:
    """A new magic's parser (a module-level parser in args.py) must say where its help is, or this fails."""
    parsers = [v for v in vars(magic_args).values() if isinstance(v, MagicArgumentParser)]
    assert {p.prog for p in parsers} == {p.prog for p in HELP_OF}


@pytest.mark.parametrize("parser", list(HELP_OF), ids=lambda p: p.prog)
def test_every_declared_option_has_its_help_line_in_its_magics_help(parser: MagicArgumentParser) -> None:
    """Every argument of every magic is generated from a declaration, and that declaration's help line (wrapped
    where it is wide) is in the help of its magic: a new option cannot be left out of the help, or differ."""
    text = HELP_OF[parser]
    for action in parser._actions:
        if isinstance(action, Renamed):  # an old spelling: parses, and is never listed
            continue
        d = declaration_of(action)
        assert "\n".join(help_block(d)) in text, (parser.prog, help_line(d))


def test_every_declared_option_of_every_kind_is_some_magics_flag() -> None:
    """The other way round: no declared option of a job kind or a magic is missing from every parser."""
    flags = {(a.dest, tuple(a.option_strings)) for p in HELP_OF for a in p._actions}
    missing = [f"{cls.__name__}.{d.name}" for cls in DECLARING for d in declared(cls)
               if (d.name, d.option.flags) not in flags]
    assert missing == []


@pytest.mark.parametrize("d", [d for cls in DECLARING for d in flagged(cls) if d.option.choices],
                         ids=lambda d: d.name)
def test_the_help_names_every_choice(d: Declared) -> None:
    """An option with choices names each in its help line (shown as ``[a|b]``, or in its text): a choice added
    to the tuple without its help is caught here (``{choices}`` in the help spells them out by itself)."""
    line = help_line(d)
    assert all(re.search(rf"(?<![\w-]){re.escape(choice)}(?![\w-])", line) for choice in d.option.choices or ()), line


def test_choices_are_spelt_out_from_the_declaration() -> None:
    @dataclass(frozen=True)
    class Toy:
        style: str = option("a", "--style", metavar="S", choices=("a", "b", "c"), help="{choices} (default a)")
        only: str = option("x", "--only", metavar="O", choices=("x",), help="always {choices}")

    assert [help_text(d) for d in declared(Toy)] == ["a, b or c (default a)", "always x"]
    assert help_lines(Toy) == ["  --style S               a, b or c (default a)", "  --only O                always x"]


def test_a_wide_help_line_wraps_under_its_column() -> None:
    @dataclass(frozen=True)
    class Toy:
        long: str = option("", "--long-flag-name-here", metavar="A_VERY_LONG_VALUE", help="short")
        wordy: bool = option(False, "--wordy", help=" ".join(["word"] * 30))

    long, wordy = (help_block(d) for d in declared(Toy))
    assert long == ["  --long-flag-name-here A_VERY_LONG_VALUE short"]  # fits: one line, as argparse would
    assert wordy[0].startswith("  --wordy                 word") and all(len(line) <= 100 for line in wordy)
    assert all(line.startswith(" " * 26 + "word") for line in wordy[1:]) and len(wordy) == 2


@pytest.mark.parametrize("command", HELP_TOPICS)
def test_each_line_command_has_a_help_of_its_own(command: str) -> None:
    assert parse_line_magic(f"help {command}") == ("help", command)
    text = command_help(command)
    assert text.startswith(f"Usage: %fuse {command} ") and max(len(line) for line in text.splitlines()) <= 100


def test_help_of_an_unknown_command_is_one_line() -> None:
    assert parse_line_magic("help") == ("help", None)
    with pytest.raises(UsageError, match=r"^%fuse help: no command 'nope' with flags; use one of: rejudge, "):
        parse_line_magic("help nope")
    with pytest.raises(UsageError, match="takes no arguments"):
        parse_line_magic("help eval extra")


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
    options = help_lines(VideoOptions, magic_args.VideoArgs, groups=("Generate", "Understand", "Run"))
    assert written_lines(VIDEO_HELP, options, magic_args.VIDEO_LINE_MAGIC, "%video") <= OTHER_LINES["video"]
    assert max(len(line) for line in lines) <= 100
    for parser in (VIDEO_PARSER, VIDEO_RESUME_PARSER):
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                assert names(action.option_strings, VIDEO_HELP), action.option_strings
    assert not names(["-m", "--models"], VIDEO_HELP)  # the old spellings of -p/--pool are not shown


def test_the_help_shows_the_new_spellings_only() -> None:
    entry = FUSE_HELP.split("  %fuse eval DATA", 1)[1].split("\n\n", 1)[0]
    assert names(["--strategies", "--repeats", "-p"], entry) and not names(["-s", "-r"], entry)


@pytest.mark.parametrize("command", ["eval", "rejudge", "history"])
def test_help_of_one_command_shows_its_flags(shell: InteractiveShell, capsys: pytest.CaptureFixture[str],
                                             command: str) -> None:
    """``%fuse help eval`` shows that command's help (every flag with its help line), not the general text."""
    from fusion_magic.ipython.args import command_help

    shown = help_printed(shell, capsys, f"%fuse help {command}")
    assert shown.strip() == command_help(command).strip() and "Usage: %%fuse [options]" not in shown
