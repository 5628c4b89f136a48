"""An option declared once: a dataclass field whose metadata says everything else about it.

A job kind's options are a frozen dataclass (``FuseOptions``, ``VideoOptions``, ``EvalOptions``); each option
is one field built with ``option(...)``: its name, type and default are the field's, and the ``Option`` in its
metadata holds the flag letters, the help line, the check, and whether (and how) it is a ``%config`` trait.
The magics generate their argparse flags, ``%config`` traits and help text from these declarations
(``ipython/declared.py``), and the api checks keywords against them: a new option is one field, and one line
in its kind's keyword TypedDict (a type checker needs that written out; a test holds it to the field).

    @dataclass(frozen=True)
    class Options:
        rounds: int = option(2, "-r", "--rounds", metavar="N", help="debate rounds (default 2)",
                             check=at_least(1, "--rounds must be at least 1"), config="Debate rounds.")
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from .errors import ConfigError

OPTION = "fusion_magic.option"  # the metadata key of a declared field

# An option's check: raises ConfigError (one line naming the flag) for a bad value, and what it returns is
# ignored (a parser serves too); it runs when the options are built, before any key is looked up or any call.
Check = Callable[[Any], object]


@dataclass(frozen=True)
class Option:
    """What a field's declaration says beyond its name, type and default.

    ``flags``: the flag letters (``("-p", "--pool")``); none: a positional argument. ``help``: the one help
    line. ``metavar``: what the help shows for the value. ``choices``: the values argparse accepts.
    ``const``: the value of the bare flag (``--cache`` alone is ``"on"``), which makes the value optional.
    ``config``: the ``%config`` trait's help, None for an option of one run only; ``trait``: the trait's name
    where it is not the field's. ``check``: see ``Check``. ``group``: the help section it is listed in.
    ``items``: what one element of a list option is, for the message when the list is empty. ``renamed``:
    the option's old flags (``("-m", "--models")``), which still parse to it until ``RENAMED_UNTIL`` and
    print a one-line note naming the new spelling; never listed in the help.
    """

    flags: tuple[str, ...] = ()
    help: str = ""
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    const: object = None
    config: str | None = None
    trait: str | None = None
    check: Check | None = None
    group: str = ""
    items: str = "value"
    renamed: tuple[str, ...] = ()


def option(default: Any, *flags: str, help: str, metavar: str | None = None,
           choices: Collection[str] | None = None, const: object = None, config: str | None = None,
           trait: str | None = None, check: Check | None = None, group: str = "", items: str = "value",
           renamed: Collection[str] = ()) -> Any:
    """A dataclass field declared as an option (see ``Option``); ``default`` is the field's default."""
    declaration = Option(flags=flags, help=help, metavar=metavar, choices=None if choices is None else tuple(choices),
                         const=const, config=config, trait=trait, check=check, group=group, items=items,
                         renamed=tuple(renamed))
    return field(default=default, metadata={OPTION: declaration})


# An old flag (``Option.renamed``) keeps working, with a note, until this release; then it is dropped.
RENAMED_UNTIL = "0.3"


def renamed_note(old: str, current: Collection[str], magic: str) -> str:
    """The one line an old spelling prints: ``note: -s is now --strategies in %fuse eval (the old spelling
    works until 0.3)``."""
    return f"note: {old} is now {'/'.join(current)} in {magic} (the old spelling works until {RENAMED_UNTIL})"


@dataclass(frozen=True)
class Declared:
    """One declared option as the generators read it: the field's name, type and default, and its ``Option``.

    ``kind`` is the value's plain type: ``bool`` (a switch), ``int``, ``float``, ``str`` (also a path, or
    anything given as text) or ``tuple`` (a list of text, given comma-separated); ``nullable`` says None is a
    value (unset) too.
    """

    name: str
    hint: Any
    default: Any
    option: Option

    @property
    def nullable(self) -> bool:
        return type(None) in _members(self.hint)

    @property
    def kind(self) -> type:
        plain = [t for t in _members(self.hint) if t is not type(None)]
        for candidate in (bool, int, float):
            if plain == [candidate]:
                return candidate
        if any(typing.get_origin(t) is tuple for t in plain):
            return tuple
        return str  # str, Path, or a union that takes text (a scorer's name or a function)

    @property
    def trait_name(self) -> str:
        return self.option.trait or self.name

    @property
    def configurable(self) -> bool:
        return self.option.config is not None


def _members(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


_DECLARED: dict[type, tuple[Declared, ...]] = {}  # read once per class: the options are checked on every build


def declared(cls: type) -> tuple[Declared, ...]:
    """The options ``cls`` declares, in field order (fields without an ``Option`` are not options)."""
    if cls not in _DECLARED:
        hints = typing.get_type_hints(cls)
        _DECLARED[cls] = tuple(Declared(f.name, hints[f.name], _default(f), f.metadata[OPTION])
                               for f in fields(cls) if isinstance(f.metadata.get(OPTION), Option))
    return _DECLARED[cls]


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def option_names(cls: type) -> tuple[str, ...]:
    """Every option's name, in field order (the flags' ``dest`` and the keywords use these)."""
    return tuple(d.name for d in declared(cls))


def check_options(options: object) -> None:
    """Run every declared option's check on ``options`` (a dataclass instance), in field order; None is the
    unset value of an option whose type allows it, and is not checked."""
    for d in declared(type(options)):
        value = getattr(options, d.name)
        if d.option.check is not None and not (value is None and d.nullable):
            d.option.check(value)


def check_values(cls: type, **values: Any) -> None:
    """Run the declared checks of ``cls``'s options named in ``values`` on those values, as building the
    options would (None, where the option's type allows it, is unset and not checked): for a layer that takes
    a few options one by one instead of building them (a resume's ``timeout``, a rejudge's ``orders``)."""
    by_name = {d.name: d for d in declared(cls)}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise TypeError(f"{cls.__name__} declares no option {', '.join(unknown)}")
    for name, value in values.items():
        d = by_name[name]
        if d.option.check is not None and not (value is None and d.nullable):
            d.option.check(value)


def check_keywords(given: Mapping[str, object], cls: type | None = None, *, allowed: Collection[str] = ()) -> None:
    """A keyword that is neither an option of ``cls`` nor in ``allowed`` is a TypeError, as with a plain
    signature (the typed keywords say the same to a type checker)."""
    unknown = sorted(set(given) - {*(option_names(cls) if cls is not None else ()), *allowed})
    if unknown:
        raise TypeError(f"unexpected keyword argument{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")


def split_list(given: str | Sequence[str] | None, *, paths: bool = False) -> tuple[str, ...]:
    """A list option's value: from a line (or a keyword given as text) comma- or space-separated
    (``"single, self:5"``), from Python a list or tuple as it is; None is empty. ``paths``: file paths, split
    on commas only (``--attach "my notes.txt",chart.png``: a quoted name keeps its spaces)."""
    if given is None:
        return ()
    if isinstance(given, str):
        return tuple(part.strip() for part in re.split(r"," if paths else r"[,\s]+", given) if part.strip())
    return tuple(given)


# ---- checks that several options share -----------------------------------------------------------------


def check_that(ok: Callable[[Any], bool], message: str) -> Check:
    """A check from a test and its one line; ``{value!r}`` in the line is the value refused."""

    def check(value: Any) -> None:
        try:
            passed = ok(value)
        except (TypeError, ValueError):  # "5" where a number belongs: the same one line, not a traceback
            passed = False
        if not passed:
            raise ConfigError(message.format(value=value))

    return check


def at_least(lowest: int, message: str) -> Check:
    """A number >= ``lowest``."""
    return check_that(lambda v: v >= lowest, message)


def whole_number(lowest: int, highest: int | None, message: str) -> Check:
    """A whole number in [``lowest``, ``highest``]: True is no number here, though Python counts it as 1."""
    return check_that(lambda v: isinstance(v, int) and not isinstance(v, bool) and lowest <= v
                      and (highest is None or v <= highest), message)


def positive_number(flag: str) -> Check:
    """A finite number above 0: ``"{flag} must be a positive number, not ..."``."""
    return check_that(lambda v: math.isfinite(v) and v > 0, f"{flag} must be a positive number, not {{value!r}}")


def one_of(name: str, choices: Collection[str], normal: Callable[[str], str] = str) -> Check:
    """One of ``choices`` (after ``normal``): ``"{name} must be one of a, b, not 'x'"``."""

    def check(value: str) -> None:
        if normal(value) not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {normal(value)!r}")

    return check


__all__ = ["OPTION", "RENAMED_UNTIL", "Check", "Declared", "Option", "at_least", "check_keywords", "check_options",
           "check_that", "check_values", "declared", "one_of", "option", "option_names", "positive_number",
           "renamed_note", "split_list", "whole_number"]
