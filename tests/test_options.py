"""One run's options (``FuseOptions``): one flag, one keyword and, where configurable, one trait each; the
same one-line error for a bad value whichever way it came in, before any call."""

from __future__ import annotations

import asyncio
import inspect
import typing
from dataclasses import fields
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.__main__ import main
from fusion_magic.calls.requests import (
    HTTP_JUDGE_MAX_TOKENS,
    HTTP_MAX_TOKENS,
    LOCAL_JUDGE_MAX_TOKENS,
    LOCAL_MAX_TOKENS,
    output_cap,
)
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.core.option import option_names
from fusion_magic.fusion.options import CONFIGURABLE, FuseKeywords, FuseOptions
from fusion_magic.ipython.args import FUSE_PARSER, parse_fuse_line
from fusion_magic.ipython.magics import FusionMagics
from fusion_magic.testing import Emulator

NAMES = option_names(FuseOptions)
MAGIC_OWN = {"estimate", "budget", "background", "no_interpolate", "out", "follow_up"}  # flags that are no run option


def test_every_option_has_exactly_one_flag() -> None:
    dests = [action.dest for action in FUSE_PARSER._actions]
    for name in NAMES:
        assert dests.count(name) == 1, name
    assert set(dests) - set(NAMES) == MAGIC_OWN  # nothing else, so no flag bypasses FuseOptions


def test_every_configurable_option_has_exactly_one_trait_and_a_settings_field() -> None:
    traits = FusionMagics.class_traits(config=True)
    settings_fields = {f.name for f in fields(Settings)}
    for name in NAMES:
        assert (name in traits) == (name in CONFIGURABLE), name
    for name in CONFIGURABLE:
        assert name in settings_fields, name
        default = traits[name].default()
        assert (tuple(default) if name == "pool" else default) == getattr(FuseOptions(), name), name
    # the session's defaults and a bare FuseOptions agree, so a run's defaults are the same from every side
    assert FuseOptions.defaults(Settings()) == FuseOptions()


@pytest.mark.parametrize("function", [fusion_magic.fuse, fusion_magic.afuse])
def test_every_option_has_exactly_one_keyword(function: Any) -> None:
    """The option keywords are one typed list (FuseKeywords, unpacked into **options), exactly the options."""
    assert set(typing.get_type_hints(FuseKeywords)) == set(NAMES)
    parameters = inspect.signature(function).parameters
    assert not set(NAMES) & set(parameters)  # not spelled out a second time
    kwargs = next(p for p in parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD)
    assert "Unpack[FuseKeywords]" in str(kwargs.annotation)  # typed, never **options: Any
    with pytest.raises(TypeError, match="unexpected keyword argument: modee"):
        outcome = function("q", modee="merge")
        if inspect.iscoroutine(outcome):
            asyncio.run(outcome)


def test_flags_land_in_their_fields() -> None:
    line = ("-p openai:a,gemini:b --self 3 -j vote -m merge -r 3 -q 1 -d 5 -t 9 --max-tokens 7 --temperature 0.5 "
            '-s "Be terse." --cache replay')
    assert parse_fuse_line(line).options(FuseOptions()) == FuseOptions(
        pool=("openai:a", "gemini:b"), self_n=3, judge="vote", mode="merge", rounds=3, quorum=1, deadline=5.0,
        timeout=9.0, max_tokens=7, temperature=0.5, system="Be terse.", cache="replay")
    assert parse_fuse_line("--cache").options(FuseOptions()).cache == "on"


def test_a_flag_or_keyword_left_out_keeps_the_default() -> None:
    defaults = FuseOptions(pool=("openai:x",), judge="vote", mode="merge", rounds=4, timeout=30.0, system="s")
    assert parse_fuse_line("-j openai:j").options(defaults) == FuseOptions(
        pool=("openai:x",), judge="openai:j", mode="merge", rounds=4, timeout=30.0, system="s")
    # an empty pool, judge or mode is "not given", as before; an empty system prompt is a value
    assert defaults.with_(pool=[], judge="", mode="", system="") == FuseOptions(
        pool=("openai:x",), judge="vote", mode="merge", rounds=4, timeout=30.0, system="")


def test_the_caps_are_decided_in_one_place() -> None:
    local = fusion_magic.api.plan_fuse("q", options=FuseOptions(pool=("local:gemma3-270m",), self_n=2),
                                       require_keys=False).members[0].target
    http = fusion_magic.api.plan_fuse("q", options=FuseOptions(pool=("openai:x",), judge="vote"),
                                      require_keys=False).members[0].target
    assert (output_cap(local), output_cap(http)) == (LOCAL_MAX_TOKENS, HTTP_MAX_TOKENS)
    assert (output_cap(local, judge=True), output_cap(http, judge=True)) == (LOCAL_JUDGE_MAX_TOKENS,
                                                                             HTTP_JUDGE_MAX_TOKENS)
    assert output_cap(http, 77) == 77 and output_cap(http, 77, judge=True) == HTTP_JUDGE_MAX_TOKENS


def test_keywords_reach_the_wire(emulator_env: Emulator) -> None:
    fusion_magic.fuse("hi", pool=["openai:a", "anthropic:b"], judge="vote", max_tokens=77, temperature=0.3,
                      system="Be terse.", timeout=9)
    a = next(q for q in emulator_env.requests if q.model == "a").body or {}
    b = next(q for q in emulator_env.requests if q.model == "b").body or {}
    assert a["max_completion_tokens"] == 77 and a["temperature"] == 0.3
    assert a["messages"][0] == {"role": "system", "content": "Be terse."}
    assert b["max_tokens"] == 77 and b["system"] == "Be terse."


# ---- a bad value: the same line as before the options were one object -----------------------------------

# (flags, fuse() keywords, the line both give); the pool is two HTTP members with the vote judge.
BAD_VALUES = [
    ("-r 0", {"rounds": 0}, "--rounds must be at least 1"),
    ("-q 0", {"quorum": 0}, "--quorum must be between 1 and the pool size (2)"),
    ("-q 7", {"quorum": 7}, "--quorum must be between 1 and the pool size (2)"),
    ("-d 0", {"deadline": 0}, "--deadline must be positive (seconds)"),
    ("-d -1", {"deadline": -1}, "--deadline must be positive (seconds)"),
    ("-t 0", {"timeout": 0}, "--timeout must be positive (seconds)"),
    ("--max-tokens 0", {"max_tokens": 0}, "--max-tokens must be at least 1"),
    ("--temperature 3", {"temperature": 3}, "--temperature must be between 0 and 2"),
    ("--temperature -0.1", {"temperature": -0.1}, "--temperature must be between 0 and 2"),
    ("--self 1", {"self_n": 1}, "--self needs N >= 2 (one model sampled N times)"),
]
# Values argparse refuses, and the keywords' own line for the same value.
BAD_CHOICES = [
    ("-m fastest", {"mode": "fastest"}, "argument -m/--mode: invalid choice: 'fastest' "
     "(choose from 'best-of', 'merge', 'debate')", "mode must be one of best-of, merge, debate, not 'fastest'"),
    ("--cache bogus", {"cache": "bogus"}, "argument --cache: invalid choice: 'bogus' (choose from 'off', 'on', "
     "'replay')", "cache must be one of off, on, replay, not 'bogus'"),
]
# The magic's own checks.
BAD_LINES = [
    ("-p ,", "-p/--pool needs at least one provider:model id"),
    ("-o 2bad", "-o needs a Python variable name, not '2bad'"),
    ("--budget -1", "--budget must be a non-negative amount in USD"),
    ("-r x", "argument -r/--rounds: invalid int value: 'x'"),
]


def magic_line(shell: InteractiveShell, line: str, cell: str = "hi") -> str:
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("fuse", line, cell)
    assert type(info.value) is UsageError  # IPython prints subclasses with a traceback
    return str(info.value)


@pytest.mark.parametrize(("flags", "keywords", "line"), BAD_VALUES)
def test_a_bad_value_is_the_same_line_from_every_side(shell: InteractiveShell, emulator_env: Emulator,
                                                      capsys: pytest.CaptureFixture[str], flags: str,
                                                      keywords: dict[str, Any], line: str) -> None:
    assert magic_line(shell, f"-p openai:a,openai:b -j vote {flags}") == line
    assert magic_line(shell, f"-p openai:a,openai:b -j vote --estimate {flags}") == line
    with pytest.raises(ConfigError) as info:
        fusion_magic.fuse("hi", pool=["openai:a", "openai:b"], judge="vote", **keywords)
    assert str(info.value) == line
    capsys.readouterr()
    assert main(["-p", "openai:a,openai:b", "-j", "vote", *flags.split(), "hi"]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"
    assert emulator_env.requests == []


@pytest.mark.parametrize(("flags", "keywords", "flag_line", "keyword_line"), BAD_CHOICES)
def test_a_bad_choice(shell: InteractiveShell, emulator_env: Emulator, flags: str, keywords: dict[str, Any],
                      flag_line: str, keyword_line: str) -> None:
    assert magic_line(shell, f"-p openai:a,openai:b -j vote {flags}") == flag_line
    with pytest.raises(ConfigError) as info:
        fusion_magic.fuse("hi", pool=["openai:a", "openai:b"], judge="vote", **keywords)
    assert str(info.value) == keyword_line
    assert emulator_env.requests == []


@pytest.mark.parametrize(("flags", "line"), BAD_LINES)
def test_the_magics_own_checks(shell: InteractiveShell, emulator_env: Emulator, flags: str, line: str) -> None:
    assert magic_line(shell, f"-p openai:a,openai:b -j vote {flags}") == line
    assert emulator_env.requests == []


def test_debate_needs_two_members(shell: InteractiveShell, emulator_env: Emulator) -> None:
    line = "debate needs at least two pool members"
    assert magic_line(shell, "-p openai:a -j vote -m debate") == line
    with pytest.raises(ConfigError, match=f"^{line}$"):
        fusion_magic.fuse("hi", pool=["openai:a"], judge="vote", mode="debate")
    assert emulator_env.requests == []


@pytest.mark.parametrize(("trait", "value", "line"), [
    ("rounds", "0", "rounds must be at least 1"),
    ("timeout", "0", "timeout must be positive"),
    ("max_tokens", "0", "--max-tokens must be at least 1"),  # reached the wire before; now refused up front
    ("temperature", "3.0", "--temperature must be between 0 and 2"),
])
def test_a_bad_config_value(shell: InteractiveShell, emulator_env: Emulator, trait: str, value: str,
                            line: str) -> None:
    shell.run_line_magic("config", f"FusionMagics.{trait} = {value}")
    assert magic_line(shell, "-p openai:a,openai:b -j vote") == line
    assert emulator_env.requests == []



def test_check_values_runs_the_declared_checks_of_the_named_options_only() -> None:
    from fusion_magic.core.option import check_values
    from fusion_magic.videos.options import VideoOptions

    check_values(VideoOptions, timeout=5.0, poll_s=None)  # None: unset, where the type allows it
    with pytest.raises(ConfigError, match="--timeout must be a positive number"):
        check_values(VideoOptions, timeout=0.0)
    with pytest.raises(TypeError, match="no option nosuch"):
        check_values(VideoOptions, nosuch=1)
