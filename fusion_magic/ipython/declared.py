"""Flags, ``%config`` traits and help lines, generated from the options' declarations (``core/option.py``).

An option is declared once, as a field of its job kind's options (``FuseOptions``, ``VideoOptions``,
``EvalOptions``) or of a magic's own arguments (``FuseArgs``: ``--estimate``, ``-o``, ...). This module turns
those declarations into what IPython needs, so none of them is written a second time:

    parser = MagicArgumentParser(prog="%%fuse", add_help=False)
    add_flags(parser, FuseOptions, FuseArgs)          # -p/--pool ... -o/--out
    given = given_options(parser.parse_args(words), FuseOptions)
    traits = config_traits(FuseOptions)               # pool, judge, mode, ... as traitlets
    print("\\n".join(help_lines(FuseOptions, FuseArgs)))
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from traitlets import Bool, Enum, Float, Int, List, TraitType, Unicode

from ..core.option import Declared, declared, renamed_note, split_list

HELP_COLUMN = 26  # where a help line's text starts: "  -d, --deadline SECONDS  judge after ..."
HELP_WIDTH = 100


def add_flags(parser: argparse.ArgumentParser, *classes: type, only: Collection[str] | None = None) -> None:
    """One argument per declared option of ``classes`` (or only those named in ``only``), its ``dest`` the
    field's name; an option left off the line is None (the layer below decides), never argparse's own default.
    An option's old flags (``renamed``) parse to it too, unlisted, and leave a note (``renamed_notes``);
    argparse refuses an old flag that is a current one of the same parser, so none shadows another."""
    for cls in classes:
        for d in declared(cls):
            if only is not None and d.name not in only:
                continue
            kwargs: dict[str, Any] = {"help": help_text(d).replace("%", "%%")}  # argparse formats with %
            if d.option.flags:
                kwargs.update(dest=d.name, default=None)
            elif d.nullable:  # a positional that may be left out (``%fuse rejudge [NAME]``)
                kwargs["nargs"] = "?"
            if d.kind is bool:
                kwargs["action"] = "store_true"
            else:
                kwargs["metavar"] = d.option.metavar
                if d.kind in (int, float):
                    kwargs["type"] = d.kind
                if d.option.choices is not None:
                    kwargs["choices"] = d.option.choices
                    if d.option.metavar is None:  # argparse shows the choices
                        del kwargs["metavar"]
                if d.option.const is not None:
                    kwargs.update(nargs="?", const=d.option.const)
            parser.add_argument(*(d.option.flags or (d.name,)), **kwargs)
            if d.option.renamed:
                switch = kwargs.pop("action", None) == "store_true"
                kwargs.update(help=argparse.SUPPRESS, action=Renamed, current=d.option.flags, magic=parser.prog)
                if switch:
                    kwargs.update(nargs=0, const=True)
                parser.add_argument(*d.option.renamed, **kwargs)


def parser(prog: str, description: str, *classes: type, only: Collection[str] | None = None) -> MagicArgumentParser:
    """A magic's parser (IPython's: a bad line is one ``UsageError``) with the flags of ``classes`` (``add_flags``)."""
    p = MagicArgumentParser(prog=prog, description=description, add_help=False)
    add_flags(p, *classes, only=only)
    return p


NOTES = "_renamed_notes"  # the namespace attribute where an old flag leaves its note


class Renamed(argparse.Action):
    """An option's old flag: stores its value where the current flag does, and leaves a one-line note."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, current: Sequence[str], magic: str,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.current = tuple(current)
        self.magic = magic

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        notes = list(getattr(namespace, NOTES, []))
        notes.append(renamed_note(option_string or self.option_strings[0], self.current, self.magic))
        setattr(namespace, NOTES, notes)


def renamed_notes(ns: argparse.Namespace) -> tuple[str, ...]:
    """The notes the old flags on the line left (each once), for the magic to print."""
    return tuple(dict.fromkeys(getattr(ns, NOTES, ())))


def given_options(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The options of ``cls`` set on the line (None: left out), list options split; an empty list is a
    ``UsageError`` naming the flag (``-p ,`` names no model)."""
    values = vars(ns)
    given: dict[str, Any] = {}
    for d in declared(cls):
        value = values.get(d.name)
        if value is None:
            continue
        if d.kind is tuple:
            value = split_list(value, paths=d.option.items == "file path")
            if not value:
                raise UsageError(f"{'/'.join(d.option.flags)} needs at least one {d.option.items}")
        given[d.name] = value
    return given


A = TypeVar("A")


def parsed(ns: argparse.Namespace, args_cls: type[A], options_cls: type) -> A:
    """A magic's parsed line from a namespace of its parser: ``args_cls`` (``FuseArgs``, ``VideoArgs``, ...) with
    ``given``, the options of ``options_cls`` set on the line (``given_options``), its own declared flags (left
    out: the field's default; a switch: True or False) and ``notes``, the old flags' notes (``renamed_notes``)."""
    values = vars(ns)
    own: dict[str, Any] = {}
    for d in declared(args_cls):
        value = values.get(d.name)
        own[d.name] = d.default if value is None else bool(value) if d.kind is bool else value
    make: Callable[..., A] = args_cls  # a dataclass with ``given`` and ``notes`` beside its declared fields
    return make(given=given_options(ns, options_cls), notes=renamed_notes(ns), **own)


def config_traits(cls: type) -> dict[str, TraitType[Any, Any]]:
    """The ``%config`` trait of each configurable option of ``cls``, by trait name, with the option's default.
    Put them in a ``Configurable``'s class body (``locals().update(config_traits(...))``)."""
    return {d.trait_name: _trait(d).tag(config=True) for d in declared(cls) if d.configurable}


def config_values(configurable: object, cls: type) -> dict[str, Any]:
    """The ``%config`` values of ``cls``'s configurable options on ``configurable``, by option (field) name;
    a list trait's value as a tuple, as the options hold it."""
    values = {d.name: getattr(configurable, d.trait_name) for d in declared(cls) if d.configurable}
    return {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}


def _trait(d: Declared) -> TraitType[Any, Any]:
    # Passed as a mapping: traitlets' stubs overload on allow_none's literal value, which is the option's.
    common: dict[str, Any] = {"allow_none": d.nullable, "help": d.option.config or ""}
    if d.option.choices is not None:
        return Enum(list(d.option.choices), d.default, **common)
    if d.kind is tuple:
        return List(Unicode(), list(d.default), help=common["help"])
    kinds: dict[type, type[TraitType[Any, Any]]] = {bool: Bool, int: Int, float: Float}
    if d.kind in kinds:
        return kinds[d.kind](d.default, **common)
    return Unicode(None if d.default is None else str(d.default), **common)


def _shown_value(d: Declared) -> str:
    """What the help shows after the flags: `` N``, `` [on|off|replay]``, nothing for a switch."""
    if d.kind is bool:
        return ""
    shown = d.option.metavar or "|".join(d.option.choices or ()) or "VALUE"
    return f" [{shown}]" if d.option.const is not None else f" {shown}"


CHOICES = "{choices}"  # in a declared help line: the option's choices, spelt out ("best-of, merge or debate")


def help_text(d: Declared) -> str:
    """An option's help as every help shows it: its declared ``help``, with ``{choices}`` spelt out from its
    ``choices``, so a choice added to the tuple is named in the help without a second edit."""
    if CHOICES not in d.option.help:
        return d.option.help
    choices = list(d.option.choices or ())
    spelt = ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else "".join(choices)
    return d.option.help.replace(CHOICES, spelt)


def help_line(d: Declared) -> str:
    """``  -p, --pool IDS          comma-separated provider:model ids ...``"""
    left = "  " + (", ".join(d.option.flags) + _shown_value(d) if d.option.flags else d.option.metavar or d.name)
    return f"{left:<{HELP_COLUMN - 1}} {help_text(d)}"


def help_block(d: Declared) -> list[str]:
    """``help_line``, wrapped where it is wider than ``HELP_WIDTH``: the help text from ``HELP_COLUMN`` on, below
    the flags when they fill that column."""
    line = help_line(d)
    if len(line) <= HELP_WIDTH:
        return [line]
    left = line[: len(line) - len(help_text(d)) - 1].rstrip()
    indent = " " * HELP_COLUMN
    first = f"{left:<{HELP_COLUMN - 1}} " if len(left) < HELP_COLUMN else None
    lines = textwrap.wrap(help_text(d), HELP_WIDTH, initial_indent=first or indent, subsequent_indent=indent,
                          break_on_hyphens=False)
    return lines if first else [left, *lines]


def flagged(*classes: type, only: Collection[str] | None = None) -> list[Declared]:
    """The declared options of ``classes`` that have flags (or only those named in ``only``), in order."""
    return [d for cls in classes for d in declared(cls) if d.option.flags and (only is None or d.name in only)]


def help_lines(*classes: type, groups: Sequence[str] = ("",), only: Collection[str] | None = None) -> list[str]:
    """The help lines of every flag of ``classes`` (or only of those named in ``only``), section by section:
    for each of ``groups`` its title (``"Generate:"``; none for ``""``) and its options, in declaration order."""
    options = flagged(*classes, only=only)
    lines: list[str] = []
    for group in groups:
        if group:
            lines.append(f"{group}:")
        lines += [line for d in options if d.option.group == group for line in help_block(d)]
    missing = [d.name for d in options if d.option.group not in groups]
    assert not missing, f"options in no help section: {missing}"  # a declaration names an unknown group
    return lines


def compact_flags(*classes: type, lead: str = "", indent: int = HELP_COLUMN,
                  only: Collection[str] | None = None) -> list[str]:
    """Every flag of ``classes`` (or only of those named in ``only``) in its short form (``-p IDS -r N --cache``),
    wrapped at ``HELP_WIDTH`` below a line command's entry in the help (``lead``: the entry's own line, which the
    first flags may end)."""
    words = []
    for d in flagged(*classes, only=only):
        value = "" if d.kind is bool or d.option.const is not None else _shown_value(d)
        words.append(d.option.flags[0] + value)
    lines = [lead or " " * indent]
    for word in words:  # a word is one flag and its value: never split inside it; a short one fills a gap
        fits = [i for i, line in enumerate(lines) if len(line) + 1 + len(word) <= HELP_WIDTH or not line.strip()]
        if not fits:
            lines.append(" " * indent)
            fits = [len(lines) - 1]
        lines[fits[0]] += (" " if lines[fits[0]].strip() else "") + word
    return lines


__all__ = ["CHOICES", "Renamed", "add_flags", "compact_flags", "config_traits", "config_values", "flagged",
           "given_options", "help_block", "help_line", "help_lines", "help_text", "parsed", "parser", "renamed_notes"]
