"""Argument parsing for ``%%fuse``, ``%fuse`` and ``%%video`` (one place), and the cell-body interpolation.

Every flag is generated from a declaration (``ipython/declared.py``): a run's options from their job kind's
options (``FuseOptions``, ``VideoOptions``, ``EvalOptions``: each flag's ``dest`` is its field), and a magic's own
flags (``--estimate``, ``--budget``, ``--background``, ``--no-interpolate``, ``-o``) from the fields of its
parsed-line class below (``FuseArgs``, ``VideoArgs``, ``EvalArgs``); ``%fuse rejudge`` takes its flags from
``FuseOptions``' declarations too. One flag means one thing in every magic (``-p`` the pool, ``-m`` the mode,
``-s`` the system prompt, ``-r`` the rounds); an option's old flags (its ``renamed``) still parse, and the
parsed line carries the one-line notes they leave (``notes``) for the magic to print. The help texts list
the flags from the same declarations. Parse errors raise IPython's ``UsageError`` (the parser's ``error()``
does), and a bad value the ``ConfigError`` of the options, so bad flags print one line and make no call.

    args = parse_fuse_line("-p openrouter:openai/gpt-4o,gemini:gemini-2.5-flash -m merge -o r")
    options = args.options(FuseOptions.defaults(settings))
"""

from __future__ import annotations

import argparse
import io
import keyword
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ..calls.settings import CACHE_MODES
from ..core.option import option
from ..evaluation.options import EvalOptions
from ..fusion.options import FuseOptions
from ..videos.options import VideoOptions
from .context import HISTORY_KINDS, KEEP_ERRORS, MAX_VALUE_CHARS, TRUNCATED, history_text, last_output_missing
from .context import as_text as _as_text
from .declared import HELP_COLUMN, compact_flags, declared, help_block, help_lines, parsed, parser


@dataclass(frozen=True)
class FuseArgs:
    """The parsed ``%%fuse`` line: the run's options it sets (``given``: ``FuseOptions`` fields), and the
    magic's own flags, declared here.

        args = parse_fuse_line("-j vote --estimate")
        args.options(FuseOptions()).judge, args.estimate   # ("vote", True)
    """

    given: Mapping[str, Any] = field(default_factory=dict)
    estimate: bool = option(False, "--estimate", help="print the projected cost; make no call, need no key")
    budget: float | None = option(None, "--budget", metavar="USD",
                                  help="refuse to start when the projected cost is above USD")
    background: bool = option(False, "--background",
                              help="return at once; the view keeps updating (-o job, then job.result())")
    no_interpolate: bool = option(False, "--no-interpolate", help="send {braces} in the cell literally")
    out: str | None = option(None, "-o", "--out", metavar="NAME",
                             help="store the result (a FusionResult) in the variable NAME")
    follow_up: str | None = option(None, "--continue", metavar="NAME",
                                   help="a follow-up to result NAME: the pool sees that conversation first")
    notes: tuple[str, ...] = ()  # one line per old flag on the line (declared.renamed_notes)

    def options(self, defaults: FuseOptions) -> FuseOptions:
        """The run's options: the line's over ``defaults`` (the magic's ``%config``); checked here."""
        return defaults.with_(**self.given)


FUSE_PARSER = parser(
    "%%fuse",
    "Send the cell's prompt to a pool of models at once, stream each answer into its own tab, and let a judge pick "
    "(best-of) or fuse (merge, debate) the best answer. {name} in the cell interpolates a variable from the "
    "notebook, {In[3]} {Out[3]} {Err[3]} {_} its history (as jupyter-ai's %%ai does); other braces pass "
    "through untouched.",
    FuseOptions, FuseArgs)


@dataclass(frozen=True)
class EvalArgs:
    """The parsed ``%fuse eval`` line: the evaluation's options (``given``: ``EvalOptions`` fields), the data,
    and the magic's own flags."""

    given: Mapping[str, Any] = field(default_factory=dict)
    data: str = option("", metavar="DATA", help="a CSV or JSONL file, a DataFrame variable, 'bundled', or 'resume' "
                                                "(the newest unfinished batch evaluation)")
    cache: str | None = option(None, "--cache", choices=CACHE_MODES, const="on", help="record/replay calls")
    out: str | None = option(None, "-o", "--out", metavar="NAME", help="store the result in this variable")
    background: bool = option(False, "--background",
                              help="return at once; -o NAME holds the job (NAME.result() waits, NAME.partial)")
    estimate: bool = option(False, "--estimate", help="print each strategy's cost live and in batches; send nothing")
    notes: tuple[str, ...] = ()  # one line per old flag on the line (-s, -r)


REJUDGE_OPTIONS = ("judge", "mode", "orders", "cache")  # the FuseOptions a rejudge takes


@dataclass(frozen=True)
class RejudgeArgs:
    """``%fuse rejudge``'s own argument (its flags are ``FuseOptions``' and ``FuseArgs``' ``-o``)."""

    source: str | None = option(None, metavar="NAME", help="a stored result variable (default: the last)")


@dataclass(frozen=True)
class HistoryArgs:
    """The ``%fuse history`` line's flags, declared (its parser and help lines are generated from them)."""

    limit: int = option(20, "-n", "--limit", metavar="N", help="the newest N runs (default 20)")
    export: str | None = option(None, "--export", metavar="PATH",
                                help="write the calls as JSONL or CSV (by the suffix)")
    run: str | None = option(None, "--run", metavar="ID", help="only this run (with --export)")


@dataclass(frozen=True)
class LineCommand:
    """One line command of a magic as its help shows it: ``summary`` (no entry when empty), the positional
    ``argument`` its usage names, and the declarations its flags come from (``only``: just those named)."""

    name: str
    summary: str
    argument: str = ""
    classes: tuple[type, ...] = ()
    only: tuple[str, ...] | None = None

    def entry(self, magic: str) -> list[str]:
        """Its lines in the magic's help: the usage and summary, then every flag in its short form."""
        lead = f"  {magic} {self.name} {self.argument}".rstrip()
        lead = f"{lead:<{HELP_COLUMN - 1}} {self.summary}"
        return compact_flags(*self.classes, lead=lead, only=self.only) if self.classes else [lead]

    def parser(self, magic: str) -> MagicArgumentParser:
        """Its parser, from the same declarations as its entry and its help (a bad line: one ``UsageError``)."""
        return parser(f"{magic} {self.name}", self.summary, *self.classes, only=self.only)

    def help(self, magic: str) -> str:
        """``%fuse help NAME``: its usage, its arguments, and each flag's help line, all from the declarations."""
        arguments = [line for cls in self.classes for d in declared(cls)
                     if not d.option.flags and (self.only is None or d.name in self.only) for line in help_block(d)]
        summary = self.summary.rstrip(";")
        return "\n".join([" ".join(["Usage:", magic, self.name, *self.argument.split(), "[options]"]), "",
                          summary[:1].upper() + summary[1:] + ".", "", *arguments, *([""] if arguments else []),
                          "Options:", *help_lines(*self.classes, only=self.only), ""])


def usage(magic: str, commands: Sequence[LineCommand]) -> str:
    """The usage line of a magic's line commands: ``%fuse list | rejudge [NAME] | ... | help [COMMAND]``."""
    return f"       {magic} " + " | ".join(f"{c.name} {c.argument}".rstrip() for c in commands)


# %fuse's line commands: the usage, each entry of the help and each command's own help come from this table
# and the declarations it names (tests/test_help.py: every declared option's help line is in its magic's help).
LINE_MAGIC: tuple[LineCommand, ...] = (
    LineCommand("list", "providers, which keys are set, known models and prices"),
    LineCommand("rejudge", "judge the last result (or NAME) again, late answers included; no pool call", "[NAME]",
                (FuseOptions, FuseArgs, RejudgeArgs), (*REJUDGE_OPTIONS, "out", "source")),
    LineCommand("history", "past runs from the run log;", "", (HistoryArgs,)),
    LineCommand("eval", "is fusion worth it here? DATA: CSV, JSONL, a DataFrame, bundled or resume;", "DATA",
                (EvalOptions, EvalArgs)),
    LineCommand("help", "this text, or one command's flags, each with its help (help eval)", "[COMMAND]"),
)
LINE_COMMANDS = tuple(c.name for c in LINE_MAGIC)
# The commands %fuse help NAME explains: those with flags.
HELP_TOPICS = tuple(c.name for c in LINE_MAGIC if c.classes)

# The usage, the description and the examples are written here; every option's line and every line command's
# flags are generated from their declarations (tests/test_help.py holds the rest of the text to a few lines).
FUSE_HELP = "\n".join([
    "Usage: %%fuse [options]          the cell is the prompt; {name} {In[3]} {Out[3]} {Err[3]} insert",
    usage("%fuse", LINE_MAGIC),
    "",
    "Sends one prompt to several models at once, each answer in its own tab; a judge picks or fuses them.",
    "",
    "Options:",
    *help_lines(FuseOptions, FuseArgs),
    "",
    "Line magic:",
    *(line for c in LINE_MAGIC for line in c.entry("%fuse")),
    "",
    "Examples:",
    "  %%fuse -p openai:gpt-4o,anthropic:claude-sonnet-4-5 -j vote -o r",
    "  Why is the sky blue?",
    "",
    "  %%fuse --attach chart.png,notes.py -o r    and then    %%fuse --continue r -o r2",
    "  What does this chart show?                            Why? Answer in two sentences.",
    "",
    "  %fuse rejudge -m merge -j openrouter:openai/gpt-4o",
    "",
])


def line_command(name: str, commands: Sequence[LineCommand] = LINE_MAGIC) -> LineCommand:
    return next(c for c in commands if c.name == name)


def command_help(name: str) -> str:
    """What ``%fuse help NAME`` shows for one of ``HELP_TOPICS``: generated from the declarations."""
    return line_command(name).help("%fuse")


EVAL_PARSER = line_command("eval").parser("%fuse")


def _split(line: str) -> list[str]:
    """Split the magic line like a POSIX shell (``arg_split(line, posix=True)`` does the same) and drop a
    trailing ``# comment``: the first unquoted word that starts with "#" and everything after it.

    Quote-aware on purpose: ``-s "Use # headings"`` and ``-s "#1 rule"`` keep their text, ``-s C#`` is
    no comment, and the comment itself is never tokenized, so ``# don't`` is no unbalanced quote.
    """
    stream = io.StringIO(line)
    lex = shlex.shlex(stream, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""  # we find comments ourselves: shlex would also cut "C#" mid-word
    tokens: list[str] = []
    try:
        while True:
            rest = line[stream.tell():]
            if rest.lstrip(lex.whitespace).startswith("#"):  # an unquoted word starting with "#"
                break
            token = lex.get_token()
            if token is None:  # end of line (posix shlex: "" is a real, quoted empty word)
                break
            tokens.append(token)
    except ValueError as exc:  # unbalanced quotes
        raise UsageError(f"%%fuse: cannot read the options: {exc}") from exc
    return tokens


def check_name(name: str | None) -> None:
    """``-o NAME`` must be a variable the magic can assign."""
    if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
        raise UsageError(f"-o needs a Python variable name, not {name!r}")


def fuse_args(ns: argparse.Namespace) -> FuseArgs:
    """A namespace from ``FUSE_PARSER`` (or a parser built on it, as ``python -m fusion_magic``'s) as
    ``FuseArgs``; raises ``UsageError`` for the checks argparse cannot make."""
    args = parsed(ns, FuseArgs, FuseOptions)
    check_name(args.out)
    if args.budget is not None and not args.budget >= 0:  # also refuses nan
        raise UsageError("--budget must be a non-negative amount in USD")
    return args


def parse_fuse_line(line: str) -> FuseArgs:
    """Parse the ``%%fuse`` options; raise ``UsageError`` with one line on any problem."""
    return fuse_args(FUSE_PARSER.parse_args(_split(line)))


# ---- %fuse line magic -----------------------------------------------------------------------------

def _rejudge_parser() -> MagicArgumentParser:
    p = line_command("rejudge").parser("%fuse")  # the same flags as %%fuse's, from the same declarations
    p.set_defaults(orders=1)
    return p


REJUDGE_PARSER = _rejudge_parser()


def _history_parser() -> MagicArgumentParser:
    p = line_command("history").parser("%fuse")
    p.set_defaults(**{d.name: d.default for d in declared(HistoryArgs)})  # the magic reads the namespace
    return p


HISTORY_PARSER = _history_parser()


def parse_line_magic(line: str) -> tuple[str, Any]:
    """``%fuse list`` / ``rejudge [-m MODE] [-j ID] [--cache] [-o NAME] [NAME]`` / ``history [-n N] [--export
    PATH]`` / ``eval DATA [-p IDS] [--strategies NAMES] [--repeats N] [-j ID] [--cache] [--seed N] [-o NAME]`` /
    ``help [COMMAND]`` (its value: the command to explain, one of ``HELP_TOPICS``, or None)."""
    parts = _split(line)
    if not parts:
        return "help", None
    command, rest = parts[0], parts[1:]
    if command not in LINE_COMMANDS:
        raise UsageError(f"%fuse: unknown command {command!r}; use one of: {', '.join(LINE_COMMANDS)}")
    if command == "rejudge":
        ns = REJUDGE_PARSER.parse_args(rest)
        check_name(ns.out)
        return command, ns
    if command == "history":
        return command, HISTORY_PARSER.parse_args(rest)
    if command == "eval":
        ns = EVAL_PARSER.parse_args(rest)
        check_name(ns.out)
        return command, parsed(ns, EvalArgs, EvalOptions)
    if command == "help" and len(rest) == 1:
        if rest[0] not in HELP_TOPICS:
            raise UsageError(f"%fuse help: no command {rest[0]!r} with flags; use one of: {', '.join(HELP_TOPICS)}")
        return command, rest[0]
    if rest:
        raise UsageError(f"%fuse {command} takes no arguments")
    return command, None


# ---- the cell body --------------------------------------------------------------------------------

# One pass over the body: {In[3]}, {Out[3]}, {Err[3]} (group 1, 2), or {name} (group 3); never {{x}}.
_VAR = re.compile(r"(?<!\{)\{(?:(" + "|".join(HISTORY_KINDS) + r")\[(-?[0-9]+)\]|([A-Za-z_][A-Za-z0-9_]*))\}(?!\})")
_NBVAL = re.compile(r"^[ \t]*#[ \t]*(?:NBVAL_\w+|PYTEST_VALIDATE_IGNORE_OUTPUT)[ \t]*(?:\n|$)", re.MULTILINE)
_LAST_OUTPUTS = ("_", "__", "___")  # IPython's last, second and third last output


def _capped(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "\n" + TRUNCATED


def interpolate(text: str, namespace: Mapping[str, Any], *, note: Callable[[str], object] | None = None) -> str:
    """Replace ``{name}`` with the variable's value where ``name`` is defined, and quote the notebook's history
    as jupyter-ai's ``%%ai`` does: ``{In[3]}`` the source of cell 3 (as typed), ``{Out[3]}`` its output,
    ``{Err[3]}`` the error it raised (traceback text; the last 50 since ``%load_ext fusion_magic``), ``{_}``
    ``{__}`` ``{___}`` the last outputs. A value is text (a data frame as CSV), the value of every key-like
    environment variable (``OPENAI_API_KEY``, ...) in it replaced by ``<redacted>``, cut at ``MAX_VALUE_CHARS``.

    Leaves every other brace (JSON, code, ``{{x}}``, format specs, ``{In[-1]}``) untouched, and an unknown
    ``{name}`` too (code is full of them); ``note`` gets one line naming every unknown ``{name}`` at once, so a
    typo is seen before anything is sent. Never evaluates expressions; a value put in is never interpolated
    again. A history form the notebook does not have (``{Out[99]}``, ``{Err[2]}`` for a cell that raised
    nothing) is left as written, and ``note`` (``print``, in the magics) gets one line each:

        interpolate("Fix {Err[4]} in {In[4]}", shell.user_ns, note=print)
        interpolate("Why {Out[99]}?", {"Out": {}}, note=print)   # "Why {Out[99]}?"; prints
        # note: {Out[99]} is not in this notebook's history (left as written)
    """
    noted: set[str] = set()
    from ..calls.runlog import environ_secrets, redact_secrets  # sqlite3 and the run log: not at %load_ext

    secrets = environ_secrets()

    def tell(token: str, why: str) -> str:
        if note is not None and token not in noted:
            noted.add(token)
            note(f"note: {token} {why} (left as written)")
        return token

    def sub(match: re.Match[str]) -> str:
        kind, index, name = match.groups()
        token = match.group(0)
        if kind is not None:
            number = int(index)
            if number < 1:
                return tell(token, "is not a cell number: cells count from 1, as in {In[3]}")
            quoted = history_text(namespace, kind, number)
            if quoted is None:
                why = "is not in this notebook's history"
                if kind == "Err":
                    why += f": no error from cell {number} since %load_ext fusion_magic (the last {KEEP_ERRORS} kept)"
                return tell(token, why)
            return _capped(redact_secrets(quoted, secrets))
        if name not in namespace:
            if name in _LAST_OUTPUTS:
                return tell(token, "is not in this notebook's history: no output yet")
            unknown.setdefault(token)
            return token
        if name in _LAST_OUTPUTS and last_output_missing(namespace, name):
            return tell(token, "is not in this notebook's history: no output yet")
        return _capped(redact_secrets(_as_text(namespace[name]), secrets))

    unknown: dict[str, None] = {}  # the undefined {name}s, in order, once each
    out = _VAR.sub(sub, text)
    if unknown and note is not None:
        names = ", ".join(unknown)
        note(f"note: {names} {'is' if len(unknown) == 1 else 'are'} not defined here (left as written; "
             "--no-interpolate sends every brace as typed)")
    return out


def strip_markers(cell: str) -> str:
    """Drop nbval marker lines: they sit inside the prompt, below the %%fuse line."""
    return _NBVAL.sub("", cell).strip("\n")


# ---- %%video -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoArgs:
    """The parsed ``%%video`` line: the run's options (``given``, ``VideoOptions`` fields) and the magic's own
    flags, declared here."""

    given: Mapping[str, Any] = field(default_factory=dict)
    edit: str | None = option(None, "--edit", metavar="NAME", const="", group="Generate",
                              help="revise the last result's clip (or NAME's) through Omni or OpenRouter")
    extend: str | None = option(None, "--extend", metavar="NAME", const="", group="Generate",
                                help="Veo adds 7 s to the Veo clip of the last result (or of NAME), at 720p")
    background: bool = option(False, "--background", group="Run",
                              help="return at once; the view keeps updating (-o job, then job.result())")
    no_interpolate: bool = option(False, "--no-interpolate", group="Run", help="send {braces} in the cell literally")
    out: str | None = option(None, "-o", "--out", metavar="NAME", group="Run",
                             help="store the result (a VideoResult) in the variable NAME")
    notes: tuple[str, ...] = ()  # one line per old flag on the line (-m, --models)


VIDEO_PARSER = parser("%%video", "Generate clips with a pool of video models, or ask about a video.", VideoOptions,
                      VideoArgs)

RESUME_OPTIONS = ("out_dir", "timeout", "poll_s")  # the VideoOptions a resume takes

# %video's line commands, as %fuse's (LINE_MAGIC): the usage and the entries come from this table.
VIDEO_LINE_MAGIC: tuple[LineCommand, ...] = (
    LineCommand("list", "the video models your keys can use, asked of the providers now"),
    LineCommand("resume", "fetch the jobs earlier runs left pending in videos/ (no new submission)", "",
                (VideoOptions, VideoArgs), (*RESUME_OPTIONS, "out")),
    LineCommand("help", ""),
)

VIDEO_HELP = "\n".join([
    "Usage: %%video [options]          the cell below is the prompt (or, with --understand, the question)",
    usage("%video", VIDEO_LINE_MAGIC),
    "",
    "Generates clips with a pool of video models at once, plays them inline, and answers questions about",
    "videos. Each clip is saved as MP4 with a JSON sidecar that holds its job's id from the moment it is",
    "accepted: the same cell again (or %video resume) fetches pending jobs instead of paying twice.",
    "",
    *help_lines(VideoOptions, VideoArgs, groups=("Generate", "Understand", "Run")),
    "",
    "Line magic:",
    *(line for c in VIDEO_LINE_MAGIC if c.summary for line in c.entry("%video")),
    "",
    "Examples:",
    "  %%video -p gemini:gemini-omni-1.2-flash,gemini:veo-3.1-fast-generate-preview --check local:frames",
    "  A paper boat drifting down a rainy street, seen from above",
    "",
    "  %%video --edit r",
    "  Make it slower, and add rain on the lens",
    "",
    "  %%video --understand videos/boat.mp4 -p local:frames,gemini:gemini-2.5-flash",
    "  When does the boat first appear?",
    "",
])


def parse_video_line(line: str) -> VideoArgs:
    """Parse the ``%%video`` options; raise ``UsageError`` with one line on any problem."""
    ns = VIDEO_PARSER.parse_args(_split(line))
    check_name(ns.out)
    for name in (ns.edit, ns.extend):
        if name:
            check_name(name)
    if ns.edit is not None and ns.extend is not None:
        raise UsageError("--edit (Omni revises a clip) and --extend (Veo continues one): one at a time")
    return parsed(ns, VideoArgs, VideoOptions)


VIDEO_RESUME_PARSER = line_command("resume", VIDEO_LINE_MAGIC).parser("%video")  # %%video's flags
VIDEO_COMMANDS = tuple(c.name for c in VIDEO_LINE_MAGIC)


def parse_video_line_magic(line: str) -> tuple[str, Any]:
    """``%video list`` / ``%video resume [--out-dir DIR] [-t S] [-o NAME]`` / ``%video help``."""
    parts = _split(line)
    if not parts:
        return "help", None
    command, rest = parts[0], parts[1:]
    if command not in VIDEO_COMMANDS:
        raise UsageError(f"%video: unknown command {command!r}; use one of: {', '.join(VIDEO_COMMANDS)} "
                         "(%%video, with two %, generates from the cell below)")
    if command == "resume":
        ns = VIDEO_RESUME_PARSER.parse_args(rest)
        check_name(ns.out)
        return command, ns
    if rest:
        raise UsageError(f"%video {command} takes no arguments")
    return command, None
