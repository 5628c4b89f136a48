"""Each option is declared once (a field with ``core.option.option``); its flag, ``%config`` trait, keyword and
help line are generated from that declaration, for ``%%fuse``, ``%%video`` and ``%fuse eval`` alike."""

from __future__ import annotations

import argparse
import collections.abc
import inspect
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from traitlets import Int, List
from traitlets.config import Config, Configurable

import fusion_magic
from fusion_magic.core.errors import ConfigError
from fusion_magic.core.option import Declared, at_least, declared, option
from fusion_magic.evaluation.engine import plan_evaluation
from fusion_magic.evaluation.options import EvalKeywords, EvalOptions
from fusion_magic.fusion.options import FuseKeywords, FuseOptions
from fusion_magic.ipython.args import EVAL_PARSER, FUSE_HELP, FUSE_PARSER, VIDEO_HELP, VIDEO_PARSER
from fusion_magic.ipython.declared import (
    Renamed,
    add_flags,
    config_traits,
    given_options,
    help_lines,
    parsed,
    parser,
    renamed_notes,
)
from fusion_magic.ipython.declared import (
    help_text as declared_help,
)
from fusion_magic.ipython.magics import FusionMagics
from fusion_magic.ipython.video import VideoMagics
from fusion_magic.videos.options import VideoKeywords, VideoOptions

# (options, the parser of their magic, the magics class with their traits, their keywords, the help section
# that lists them, the functions that take the keywords)
KINDS = {
    "fuse": (FuseOptions, FUSE_PARSER, FusionMagics, FuseKeywords,
             FUSE_HELP.split("Options:\n", 1)[1].split("\n\n", 1)[0], (fusion_magic.fuse, fusion_magic.afuse)),
    "video": (VideoOptions, VIDEO_PARSER, VideoMagics, VideoKeywords,
              VIDEO_HELP.split("Generate:\n", 1)[1].split("\n\n", 1)[0], (fusion_magic.video, fusion_magic.avideo)),
    "eval": (EvalOptions, EVAL_PARSER, None, EvalKeywords,
             FUSE_HELP.split("  %fuse eval DATA", 1)[1].split("\n\n", 1)[0],
             (fusion_magic.evaluate, fusion_magic.aevaluate, plan_evaluation)),
}


def option_cases() -> list[Any]:
    return [pytest.param(kind, d, id=f"{kind}-{d.name}") for kind, spec in KINDS.items() for d in declared(spec[0])]


def plain(hint: Any) -> set[Any]:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    members = set(typing.get_args(hint)) if union else {hint}
    return {m for m in members if m is not type(None)}


def keyword_takes(keyword: Any, value: Any) -> bool:
    """Whether a keyword typed ``keyword`` takes every value of an option typed ``value``."""
    taken = plain(keyword)
    for member in plain(value):
        if typing.get_origin(member) is tuple:  # a tuple option takes any sequence
            ok = any(typing.get_origin(k) is collections.abc.Sequence for k in taken)
        elif member is Path:  # a path option takes text too
            ok = Path in taken and str in taken
        else:
            ok = member in taken
        if not ok:
            return False
    return True


@pytest.mark.parametrize(("kind", "d"), option_cases())
def test_every_option_has_its_flag_trait_keyword_and_help_line(kind: str, d: Declared) -> None:
    _, parser, magics, keywords, help_text, functions = KINDS[kind]
    # the flag: exactly one, with the declared letters, landing in the field (and its old flags, if any)
    actions = [a for a in parser._actions if a.dest == d.name and not isinstance(a, Renamed)]
    assert len(actions) == 1 and tuple(actions[0].option_strings) == d.option.flags and d.option.flags
    old = [a for a in parser._actions if a.dest == d.name and isinstance(a, Renamed)]
    assert [s for a in old for s in a.option_strings] == list(d.option.renamed)
    # the help line: one line naming the flags, with the declared help (eval's entry lists its flags compactly)
    if kind == "eval":
        assert f" {d.option.flags[0]}" in help_text
    else:
        lines = [line for line in help_text.splitlines() if line.startswith(f"  {', '.join(d.option.flags)} ")]
        assert len(lines) == 1 and lines[0].endswith(f" {declared_help(d)}")
    # the trait, where configurable, with the option's default
    traits = magics.class_traits(config=True) if magics is not None else {}
    assert (d.trait_name in traits) == d.configurable
    if d.configurable:
        default = traits[d.trait_name].default()
        assert default == (list(d.default) if isinstance(d.default, tuple) else
                           str(d.default) if isinstance(d.default, Path) else d.default)
        assert traits[d.trait_name].help == d.option.config
    if kind == "fuse" and d.configurable:  # the session's value, which FuseOptions.defaults reads back
        assert getattr(fusion_magic.Settings(), d.name) == d.default
    # the keyword, typed to take the option's values
    hints = typing.get_type_hints(keywords)
    assert d.name in hints and keyword_takes(hints[d.name], d.hint), (hints.get(d.name), d.hint)
    for function in functions:
        assert "Unpack[" in str(inspect.signature(function).parameters["options" if function is not plan_evaluation
                                                                        else "keywords"].annotation)


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_else_is_a_keyword_or_a_trait(kind: str) -> None:
    cls, _, magics, keywords, _, _ = KINDS[kind]
    names = {d.name for d in declared(cls)}
    assert set(typing.get_type_hints(keywords)) == names
    if magics is not None:
        own = {"cache_dir", "endpoints", "prices", "max_retries", "run_log", "view"}  # session settings
        assert set(magics.class_traits(config=True)) - own == {d.trait_name for d in declared(cls) if d.configurable}


@pytest.mark.parametrize("call", [
    lambda: fusion_magic.fuse("q", modee="merge"),
    lambda: fusion_magic.video("q", modelz=["x"]),
    lambda: fusion_magic.evaluate("bundled", repeat=2),
    lambda: plan_evaluation("bundled", fusion_magic.Settings(), repeat=2),
    lambda: fusion_magic.complete("local:gemma3-270m", "q", repeat=2),
])
def test_an_unknown_keyword_is_a_type_error(call: Any) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument: (modee|modelz|repeat)$"):
        call()


# ---- the generators, on an option kind of their own -----------------------------------------------------


@dataclass(frozen=True)
class Toy:
    level: int = option(3, "-l", "--level", metavar="N", help="how loud", config="Default level.",
                        check=at_least(1, "--level must be at least 1"))
    tags: tuple[str, ...] = option((), "--tags", metavar="IDS", help="what it is about", items="tag")
    quiet: bool = option(False, "--quiet", help="say nothing")
    mode: str | None = option(None, "--mode", choices=("a", "b"), const="a", help="how")
    loud: bool = option(False, "--loud", help="say it twice", renamed=("--noisy", "-n"))
    internal: int = 0  # no declaration: no option

    def __post_init__(self) -> None:
        from fusion_magic.core.option import check_options

        check_options(self)


def toy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%toy", add_help=False)
    add_flags(parser, Toy)
    return parser


def test_a_new_option_is_one_field() -> None:
    parser = toy_parser()
    assert [a.dest for a in parser._actions] == ["level", "tags", "quiet", "mode", "loud", "loud"]
    assert given_options(parser.parse_args([]), Toy) == {}  # left out: the layer below decides
    assert given_options(parser.parse_args(["-l", "5", "--tags", "x, y", "--quiet", "--mode"]), Toy) == {
        "level": 5, "tags": ("x", "y"), "quiet": True, "mode": "a"}
    with pytest.raises(UsageError, match=r"^--tags needs at least one tag$"):
        given_options(parser.parse_args(["--tags", ","]), Toy)
    assert help_lines(Toy) == [
        "  -l, --level N           how loud",
        "  --tags IDS              what it is about",
        "  --quiet                 say nothing",
        "  --mode [a|b]            how",
        "  --loud                  say it twice",
    ]  # an old flag is not listed
    # an old flag still sets its option, and leaves one note naming the new spelling
    ns = parser.parse_args(["-n", "--noisy"])
    assert given_options(ns, Toy) == {"loud": True}
    assert renamed_notes(ns) == ("note: -n is now --loud in %toy (the old spelling works until 0.3)",
                                 "note: --noisy is now --loud in %toy (the old spelling works until 0.3)")
    assert renamed_notes(parser.parse_args(["--loud"])) == ()


def test_an_old_flag_cannot_shadow_a_current_one() -> None:
    @dataclass(frozen=True)
    class Clash:
        mode: str = option("a", "-m", "--mode", help="how")
        models: str = option("", "-p", "--pool", help="who", renamed=("-m",))

    with pytest.raises(argparse.ArgumentError, match="conflicting option string: -m"):
        add_flags(argparse.ArgumentParser(add_help=False), Clash)
    traits = config_traits(Toy)
    assert list(traits) == ["level"] and isinstance(traits["level"], Int)
    assert traits["level"].default() == 3 and traits["level"].help == "Default level."

    class Magics(Configurable):
        locals().update(config_traits(Toy))

    assert Magics.class_traits(config=True)["level"].default() == 3
    assert Magics(config=Config({"Magics": {"level": 7}})).level == 7  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"^--level must be at least 1$"):
        Toy(level=0)


def test_list_traits_and_choices() -> None:
    traits = config_traits(FuseOptions)
    assert isinstance(traits["pool"], List) and traits["mode"].values == ["best-of", "merge", "debate"]
    # VideoOptions.poll_s is VideoMagics.poll, as it always was
    assert "poll" in config_traits(VideoOptions) and "poll_s" not in config_traits(VideoOptions)


def test_the_eval_options_are_checked_when_built() -> None:
    with pytest.raises(ConfigError, match=r"^repeats must be a whole number >= 1, not 0$"):
        EvalOptions(repeats=0)
    with pytest.raises(ConfigError, match=r"^concurrency must be a whole number >= 1, not True$"):
        EvalOptions(concurrency=True)
    with pytest.raises(ConfigError, match=r"^--seed must be a whole number"):
        EvalOptions(seed=-1)
    assert EvalOptions(strategies="single, self:5", pool=None).strategies == ("single", "self:5")
    assert EvalOptions().with_(instruction=None).instruction is None  # None is the bare question, a value


def test_parsed_fills_a_line_class_from_its_declarations() -> None:
    """``parsed``: the options given, the magic's own flags (left out: the field's default; a switch: a bool)
    and the old flags' notes, for any parsed-line class."""

    @dataclass(frozen=True)
    class Own:
        given: collections.abc.Mapping[str, Any]
        loud: bool = option(False, "--loud", help="a switch")
        name: str = option("plain", "--name", metavar="N", help="a value with a default")
        notes: tuple[str, ...] = ()

    p = parser("%demo", "A demo.", VideoOptions, Own)
    quiet = parsed(p.parse_args(["--seconds", "3"]), Own, VideoOptions)
    assert quiet == Own(given={"seconds": 3}, loud=False, name="plain", notes=())
    loud = parsed(p.parse_args(["--loud", "--name", "x", "--models", "a,b"]), Own, VideoOptions)
    assert loud.loud is True and loud.name == "x" and loud.given == {"models": ("a", "b")}
    assert loud.notes and "--models" in loud.notes[0]
