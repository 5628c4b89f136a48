"""One flag vocabulary across the magics: a flag means one option everywhere it appears (``-p`` the pool, ``-m``
the mode, ``-s`` the system prompt, ``-r`` the rounds, ...), and an option's old flags (declared as its
``renamed``) still parse to it for one release, print one line naming the new spelling, and never take the
place of a current flag of the same magic."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic_arguments import MagicArgumentParser

from fusion_magic.core.option import RENAMED_UNTIL, declared
from fusion_magic.evaluation.options import EvalOptions
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.ipython.args import (
    EVAL_PARSER,
    FUSE_PARSER,
    HISTORY_PARSER,
    REJUDGE_PARSER,
    VIDEO_PARSER,
    VIDEO_RESUME_PARSER,
    parse_line_magic,
    parse_video_line,
)
from fusion_magic.ipython.declared import Renamed
from fusion_magic.testing import Emulator, ModelScript
from fusion_magic.videos.options import VideoOptions

PARSERS = (FUSE_PARSER, REJUDGE_PARSER, HISTORY_PARSER, EVAL_PARSER, VIDEO_PARSER, VIDEO_RESUME_PARSER)

# What an option is called where its field keeps an older name: %%video's pool is VideoOptions.models (so that
# video(models=...) and %config VideoMagics.models keep working).
SAME_OPTION = {"models": "pool"}

# The shared vocabulary: each of these spellings, wherever a magic has it, means this option.
VOCABULARY = {
    "-p": "pool", "--pool": "pool", "-m": "mode", "--mode": "mode", "-s": "system", "--system": "system",
    "-j": "judge", "--judge": "judge", "-r": "rounds", "--rounds": "rounds", "-t": "timeout", "--timeout": "timeout",
    "--seed": "seed", "--estimate": "estimate", "--budget": "budget", "--cache": "cache", "-o": "out", "--out": "out",
}


def meaning(action: argparse.Action) -> str:
    return SAME_OPTION.get(action.dest, action.dest)


def current(parser: MagicArgumentParser) -> list[argparse.Action]:
    """The parser's flags as its help lists them (an old spelling is no current flag)."""
    return [a for a in parser._actions if a.option_strings and not isinstance(a, Renamed)]


def old(parser: MagicArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if isinstance(a, Renamed)]


def test_every_flag_means_one_option_in_every_magic() -> None:
    meanings: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for parser in PARSERS:
        for action in current(parser):
            for spelling in action.option_strings:
                meanings[spelling][meaning(action)].add(parser.prog)
    clashes = {spelling: {name: sorted(progs) for name, progs in named.items()}
               for spelling, named in meanings.items() if len(named) > 1}
    assert not clashes  # e.g. {"-m": {"mode": ["%%fuse"], "models": ["%%video"]}}
    for spelling, name in VOCABULARY.items():
        assert set(meanings[spelling]) == {name}, spelling


def test_an_option_has_one_short_letter_everywhere() -> None:
    """``--pool`` is ``-p`` wherever it has a letter (a magic may leave the letter out while an old spelling
    holds it, as %%video's --mode does until -m is free there)."""
    letters: dict[str, set[str]] = defaultdict(set)
    for parser in PARSERS:
        for action in current(parser):
            letters[meaning(action)] |= {s for s in action.option_strings if not s.startswith("--")}
    assert {name: sorted(found) for name, found in letters.items() if len(found) > 1} == {}


def test_the_pool_is_p_in_every_magic_that_takes_models() -> None:
    for parser in (FUSE_PARSER, EVAL_PARSER, VIDEO_PARSER):
        (action,) = [a for a in current(parser) if meaning(a) == "pool"]
        assert action.option_strings == ["-p", "--pool"], parser.prog


# (the magic's parser, the old spelling and its value, the option it sets and the value it lands as)
OLD_SPELLINGS = [
    ("%%video", "-m gemini:a,gemini:b", "models", ("gemini:a", "gemini:b"), "-p/--pool"),
    ("%%video", "--models gemini:a", "models", ("gemini:a",), "-p/--pool"),
    ("%fuse eval", "-s single,vote", "strategies", ("single", "vote"), "--strategies"),
    ("%fuse eval", "-r 3", "repeats", 3, "--repeats"),
]


def parse(magic: str, words: str) -> tuple[dict[str, object], tuple[str, ...]]:
    if magic == "%%video":
        video = parse_video_line(words)
        return dict(video.given), video.notes
    command, evaluation = parse_line_magic(f"eval bundled {words}")
    assert command == "eval"
    return dict(evaluation.given), evaluation.notes


@pytest.mark.parametrize(("magic", "words", "name", "value", "now"), OLD_SPELLINGS, ids=lambda v: str(v))
def test_an_old_spelling_parses_to_its_option_with_one_note(magic: str, words: str, name: str, value: object,
                                                            now: str) -> None:
    given, notes = parse(magic, words)
    assert given == {name: value}
    flag = words.split()[0]
    assert notes == (f"note: {flag} is now {now} in {magic} (the old spelling works until {RENAMED_UNTIL})",)
    # the new spelling sets the same option, with no note
    new_given, new_notes = parse(magic, f"{now.split('/')[-1]} {words.split(maxsplit=1)[1]}")
    assert new_given == given and new_notes == ()


def test_an_old_spelling_given_twice_notes_once() -> None:
    video = parse_video_line("-m gemini:a -m gemini:b")
    assert video.given["models"] == ("gemini:b",) and len(video.notes) == 1


def test_every_old_spelling_is_declared_and_in_its_parser_only_as_old() -> None:
    declared_old = {(cls, s) for cls in (FuseOptions, EvalOptions, VideoOptions)
                    for d in declared(cls) for s in d.option.renamed}
    assert {(cls.__name__, s) for cls, s in declared_old} == {
        ("EvalOptions", "-s"), ("EvalOptions", "-r"), ("VideoOptions", "-m"), ("VideoOptions", "--models")}
    for parser in PARSERS:
        now = {s for a in current(parser) for s in a.option_strings}
        for action in old(parser):
            assert not set(action.option_strings) & now, (parser.prog, action.option_strings)  # no shadowing
            assert action.help == argparse.SUPPRESS  # the help lists the new spelling only
            # it lands where the current flag of its option does
            assert [a.dest for a in current(parser) if a.dest == action.dest] == [action.dest]


def test_the_magics_print_the_note(vshell: InteractiveShell, emulator_env: Emulator,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    vshell.run_cell_magic("video", "--models gemini:veo-3.1-fast-generate-preview --seconds 4 --estimate", "A fox")
    assert capsys.readouterr().out.splitlines() == [
        f"note: --models is now -p/--pool in %%video (the old spelling works until {RENAMED_UNTIL})"]
    assert emulator_env.requests == []

    emulator_env.script("a", ModelScript(reply=lambda body: "Final answer: 4" if "2+2" in json.dumps(body) else "?"))
    vshell.user_ns["qs"] = pd.DataFrame({"question": ["What is 2+2?"], "reference": ["4"]})
    result = vshell.run_line_magic("fuse", "eval qs -p openai:a -s single -r 1")
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert notes == [f"note: -s is now --strategies in %fuse eval (the old spelling works until {RENAMED_UNTIL})",
                     f"note: -r is now --repeats in %fuse eval (the old spelling works until {RENAMED_UNTIL})"]
    assert list(result.summary["strategy"]) == ["single:openai:a"] and len(result.rows) == 1  # -s and -r took
    vshell.user_ns.pop("qs")
