"""Argument parsing for ``%%fuse`` and ``%fuse`` (one place), and the cell-body interpolation.

Each option of a run has one flag whose ``dest`` is its ``FuseOptions`` field; the others (``--estimate``,
``--budget``, ``--background``, ``--no-interpolate``, ``-o``) are the magic's own. Parse errors raise
IPython's ``UsageError`` (the parser's ``error()`` does), and a bad value the ``ConfigError`` of
``FuseOptions``, so bad flags print one line and make no call.

    args = parse_fuse_line("-p openrouter:openai/gpt-4o,gemini:gemini-2.5-flash -m merge -o r")
    options = args.options(FuseOptions.defaults(settings))
"""

from __future__ import annotations

import argparse
import io
import keyword
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from ..calls.settings import ANSWER_MODES, CACHE_MODES, MODES
from ..fusion.options import FuseOptions


def _fuse_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(
        prog="%%fuse",
        description=(
            "Send the cell's prompt to a pool of models at once, stream each answer into its own tab, "
            "and let a judge pick (best-of) or fuse (merge, debate) the best answer. {name} in the cell "
            "interpolates a variable from the notebook; other braces pass through untouched."
        ),
        add_help=False,
    )
    a = p.add_argument
    a("-p", "--pool", metavar="IDS", help="comma-separated provider:model ids (default: %%config FusionMagics.pool)")
    a("--self", dest="self_n", type=int, metavar="N", help="sample the first pool model N times instead")
    a("-j", "--judge", metavar="ID", help="judge model id, or 'vote' for a model-free majority/consensus vote")
    a("-m", "--mode", choices=MODES, help="best-of, merge or debate")
    a("-r", "--rounds", type=int, metavar="N", help="debate rounds (default 2)")
    a("--orders", type=int, metavar="N",
      help="judge N orderings of the answers and report how often its pick held (1 to 8; default 1)")
    a("-q", "--quorum", type=int, metavar="K", help="judge as soon as K answers are in; the rest are late")
    a("-d", "--deadline", type=float, metavar="SECONDS", help="judge after this long with what has arrived")
    a("-t", "--timeout", type=float, metavar="SECONDS", help="per-call timeout")
    a("--max-tokens", type=int, metavar="N", help="output cap per member call")
    a("--temperature", type=float, metavar="T", help="sampling temperature for members")
    a("--seed", type=int, metavar="N", help="repeatable run: seat i sends seed N+i, the judge N and a fixed order")
    a("-s", "--system", metavar="TEXT", help="system prompt (quote it)")
    a("--estimate", action="store_true", help="print the projected cost and make no call")
    a("--budget", type=float, metavar="USD", help="refuse to start if the projected cost is above USD")
    a("--background", action="store_true", help="return at once; the view keeps updating")
    a("--cache", nargs="?", const="on", choices=CACHE_MODES, help="record/replay calls (on, off, replay)")
    a("--no-interpolate", action="store_true", help="send {braces} in the cell literally")
    a("-o", "--out", metavar="NAME", help="store the result in this variable")
    return p


FUSE_PARSER = _fuse_parser()

# Written by hand rather than by the parser: IPython's help formatter prefixes "::" and a second "%",
# and wraps choices in angle brackets. tests/test_help.py checks that every option of the parser is here.
FUSE_HELP = """\
Usage: %%fuse [options]          the cell below is the prompt; {name} inserts a notebook variable
       %fuse list | rejudge [-m MODE] [-j ID] [-o NAME] [NAME] | history | eval DATA | help

Sends one prompt to several models at once, each answer in its own tab; a judge picks or fuses them.

Options:
  -p, --pool IDS          comma-separated provider:model ids (default: %config FusionMagics.pool)
  --self N                ask the first pool model N times, one seed each
  -j, --judge ID          judge model id, or vote (a free, model-free majority vote)
  -m, --mode MODE         best-of (default), merge or debate
  -r, --rounds N          debate rounds (default 2)
  --orders N              judge N orderings of the answers, report position consistency (1-8)
  -q, --quorum K          judge once K answers are in; later ones are kept, marked late
  -d, --deadline SECONDS  judge after this long with what has arrived
  -t, --timeout SECONDS   per-call timeout (default 120)
  --max-tokens N          output cap per member call
  --temperature T         member sampling temperature, 0 to 2
  --seed N                repeatable: seat i sends seed N+i, the judge N, in an order fixed by N
  -s, --system TEXT       system prompt (quote it)
  --estimate              print the projected cost; make no call, need no key
  --budget USD            refuse to start when the projected cost is above USD
  --background            return at once; the view keeps updating (-o job, then job.result())
  --cache [on|off|replay] record calls beside the notebook; replay runs offline from them
  --no-interpolate        send {braces} in the cell literally
  -o, --out NAME          store the result (a FusionResult) in the variable NAME

Line magic:
  %fuse list              providers, which keys are set, known models and prices
  %fuse rejudge           judge the last result (or NAME) again, late answers included; no pool call
                          -m MODE -j ID --orders N --cache -o NAME
  %fuse history           past runs from the run log (-n N; --export runs.jsonl|.csv [--run ID])
  %fuse eval DATA         is fusion worth it here? DATA: CSV, JSONL, a DataFrame or bundled;
                          -p IDS -s single,self:5,vote,best-of,merge,debate -r N -j ID --seed N
                          --scorer match|exact|includes|numeric|choice|re:PATTERN|judge:ID
                          --rubric-judge ID --concurrency N (default 4 rows at once) --cache -o NAME

Examples:
  %%fuse -p openai:gpt-4o,anthropic:claude-sonnet-4-5 -j vote -o r
  Why is the sky blue?

  %%fuse -p local:gemma3-270m --self 5 -j vote
  What is the capital of Italy?

  %fuse rejudge -m merge -j openrouter:openai/gpt-4o
"""


@dataclass(frozen=True)
class FuseArgs:
    """The parsed ``%%fuse`` line: the run's options it sets, and what the magic itself does.

        args = parse_fuse_line("-j vote --estimate")
        args.options(FuseOptions()).judge, args.estimate   # ("vote", True)
    """

    given: Mapping[str, Any] = field(default_factory=dict)  # FuseOptions fields set on the line
    estimate: bool = False
    budget: float | None = None
    background: bool = False
    no_interpolate: bool = False
    out: str | None = None

    def options(self, defaults: FuseOptions) -> FuseOptions:
        """The run's options: the line's over ``defaults`` (the magic's ``%config``); checked here."""
        return defaults.with_(**self.given)


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
    values = vars(ns)
    given = {name: values[name] for name in FuseOptions.names() if values[name] is not None}
    if "pool" in given:
        given["pool"] = tuple(p.strip() for p in given["pool"].split(",") if p.strip())
        if not given["pool"]:
            raise UsageError("-p/--pool needs at least one provider:model id")
    check_name(ns.out)
    if ns.budget is not None and not ns.budget >= 0:  # also refuses nan
        raise UsageError("--budget must be a non-negative amount in USD")
    return FuseArgs(given=given, estimate=ns.estimate, budget=ns.budget, background=ns.background,
                    no_interpolate=ns.no_interpolate, out=ns.out)


def parse_fuse_line(line: str) -> FuseArgs:
    """Parse the ``%%fuse`` options; raise ``UsageError`` with one line on any problem."""
    return fuse_args(FUSE_PARSER.parse_args(_split(line)))


# ---- %fuse line magic -----------------------------------------------------------------------------

def _rejudge_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%fuse rejudge", add_help=False,
                            description="Judge the last result again; the pool is not called.")
    p.add_argument("-m", "--mode", choices=MODES)
    p.add_argument("-j", "--judge", metavar="ID")
    p.add_argument("--orders", type=int, default=1, metavar="N")
    p.add_argument("-o", "--out", metavar="NAME")
    p.add_argument("--cache", nargs="?", const="on", choices=CACHE_MODES)
    p.add_argument("source", nargs="?", metavar="NAME", help="a stored result variable (default: the last)")
    return p


REJUDGE_PARSER = _rejudge_parser()


def _history_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%fuse history", add_help=False, description="Past runs from the run log.")
    p.add_argument("-n", "--limit", type=int, default=20, metavar="N")
    p.add_argument("--export", metavar="PATH", help="write the calls as JSONL or CSV (by the suffix)")
    p.add_argument("--run", metavar="ID", help="only this run (with --export)")
    return p


def _eval_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%fuse eval", add_help=False, description="Evaluate strategies on questions.")
    p.add_argument("data", metavar="DATA", help="a CSV or JSONL file, a DataFrame variable, or 'bundled'")
    p.add_argument("-p", "--pool", metavar="IDS")
    p.add_argument("-s", "--strategies", metavar="NAMES")
    p.add_argument("-r", "--repeats", type=int, default=1, metavar="N")
    p.add_argument("-j", "--judge", metavar="ID")
    p.add_argument("--concurrency", type=int, metavar="N")
    p.add_argument("--rubric-judge", dest="rubric_judge", metavar="ID")
    p.add_argument("--cache", nargs="?", const="on", choices=CACHE_MODES)
    p.add_argument("--seed", type=int, metavar="N")
    p.add_argument("--scorer", metavar="NAME")
    p.add_argument("-o", "--out", metavar="NAME")
    return p


HISTORY_PARSER = _history_parser()
EVAL_PARSER = _eval_parser()
LINE_COMMANDS = ("list", "rejudge", "history", "eval", "help")


def parse_line_magic(line: str) -> tuple[str, Any]:
    """``%fuse list`` / ``rejudge [-m MODE] [-j ID] [--cache] [-o NAME] [NAME]`` / ``history [-n N] [--export
    PATH]`` / ``eval DATA [-p IDS] [-s NAMES] [-r N] [-j ID] [--cache] [--seed N] [-o NAME]`` / ``help``."""
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
        return command, ns
    if rest:
        raise UsageError(f"%fuse {command} takes no arguments")
    return command, None


# ---- the cell body --------------------------------------------------------------------------------

_VAR = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_NBVAL = re.compile(r"^[ \t]*#[ \t]*(?:NBVAL_\w+|PYTEST_VALIDATE_IGNORE_OUTPUT)[ \t]*(?:\n|$)", re.MULTILINE)
MAX_VALUE_CHARS = 20_000


def _as_text(value: Any) -> str:
    """A data frame as CSV, anything else as ``str``: a class, or a frame whose ``to_csv`` needs a path, as text."""
    to_csv = getattr(value, "to_csv", None)
    if callable(to_csv) and not isinstance(value, type):
        try:
            csv = to_csv(index=False)
        except Exception:  # dask, vaex: to_csv writes to a path it requires
            csv = None
        if isinstance(csv, str):
            return csv
    return str(value)


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{name}`` with the variable's value where ``name`` is defined; leave every other brace
    (JSON, code, ``{{x}}``, format specs) untouched. Never evaluates expressions."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in namespace:
            return match.group(0)
        value = namespace[name]
        rendered = _as_text(value)
        if len(rendered) > MAX_VALUE_CHARS:
            rendered = rendered[:MAX_VALUE_CHARS] + "\n[... truncated]"
        return rendered

    return _VAR.sub(sub, text)


def strip_markers(cell: str) -> str:
    """Drop nbval marker lines: they sit inside the prompt, below the %%fuse line."""
    return _NBVAL.sub("", cell).strip("\n")


# ---- %%video -------------------------------------------------------------------------------------


def _video_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%%video", add_help=False,
                            description="Generate clips with a pool of video models, or ask about a video.")
    a = p.add_argument
    a("-m", "--models", metavar="IDS", help="comma-separated provider:model ids")
    a("--seconds", type=int, metavar="N")
    a("--aspect", metavar="RATIO")
    a("--resolution", metavar="RES")
    a("--negative", metavar="TEXT")
    a("--image", metavar="PATH")
    a("--last-frame", dest="last_frame", metavar="PATH")
    a("--out-dir", dest="out_dir", metavar="DIR")
    a("--estimate", action="store_true")
    a("--budget", type=float, metavar="USD")
    a("-t", "--timeout", type=float, metavar="SECONDS")
    a("--background", action="store_true")
    a("--understand", metavar="PATH_OR_URL")
    a("--start", type=float, metavar="SECONDS")
    a("--end", type=float, metavar="SECONDS")
    a("--fps", type=float, metavar="FPS")
    a("--check", metavar="ID")
    a("--edit", nargs="?", const="", metavar="NAME")
    a("--extend", nargs="?", const="", metavar="NAME")
    a("-j", "--judge", metavar="ID")
    a("--mode", choices=ANSWER_MODES)
    a("--new", action="store_true")
    a("--poll", dest="poll_s", type=float, metavar="SECONDS")
    a("--no-interpolate", action="store_true")
    a("-o", "--out", metavar="NAME")
    return p


VIDEO_PARSER = _video_parser()

VIDEO_HELP = """\
Usage: %%video [options]          the cell below is the prompt (or, with --understand, the question)
       %video list | resume [--out-dir DIR] [-t SECONDS] [-o NAME] | help

Generates clips with a pool of video models at once, plays them inline, and answers questions
about videos. Each clip is saved as MP4 with a JSON sidecar; a job's id is saved the moment it is
accepted, so nothing paid is lost: the same cell again (or %video resume) fetches pending jobs
instead of paying twice.

Generate:
  -m, --models IDS        comma-separated ids (default with GEMINI_API_KEY: gemini-omni-1.2-flash)
  --seconds N             clip length
  --aspect 16:9|9:16      aspect ratio
  --resolution RES        720p, 1080p, ... (what the model offers)
  --negative TEXT         what to avoid, where the model takes it (a note says when it does not)
  --image PATH            a PNG or JPEG first frame
  --last-frame PATH       a PNG or JPEG last frame, with --image (Veo 3.1: 8 s; some fal models)
  --edit [NAME]           revise the clip of the last result (or of result NAME) through Omni
  --extend [NAME]         Veo adds 7 s to the Veo clip of the last result (or of NAME), at 720p
  --check ID              a model scores each clip 0-10 against the prompt (local:frames: the spec)
  --new                   pay for a fresh clip even if this same request has one already
Understand:
  --understand PATH_OR_URL  ask the cell's question about this video (several -m: the judge fuses)
  --start/--end SECONDS   the part to watch
  --fps FPS               frames per second to sample (Gemini; up to 24)
  -j, --judge ID          judge for several answers, or vote (default: %config FusionMagics.judge)
  --mode MODE             how the judge fuses several answers: best-of or merge
Run:
  --out-dir DIR           where clips go, inside the working folder (default videos/)
  --estimate              print the cost per clip; submit nothing, need no key
  --budget USD            a hard cap: refuse to submit when the estimate is above USD
  -t, --timeout SECONDS   stop waiting after this long (the jobs stay resumable; default 600)
  --poll SECONDS          poll interval (default: each provider's recommended one)
  --background            return at once; the view keeps updating (-o job, then job.result())
  --no-interpolate        send {braces} in the cell literally
  -o, --out NAME          store the result (a VideoResult) in the variable NAME

Line magic:
  %video list             the video models your keys can use, asked of the providers now
  %video resume           fetch the jobs earlier runs left pending in videos/ (no new submission)
  %video help, %video?    this text

Examples:
  %%video -m gemini:gemini-omni-1.2-flash,gemini:veo-3.1-fast-generate-preview --check local:frames
  A paper boat drifting down a rainy street, seen from above

  %%video --edit r
  Make it slower, and add rain on the lens

  %%video --understand videos/boat.mp4 -m local:frames,gemini:gemini-2.5-flash
  When does the boat first appear?
"""


@dataclass(frozen=True)
class VideoArgs:
    """The parsed ``%%video`` line: the run's options (``given``, ``VideoOptions`` fields) and the magic's own."""

    given: Mapping[str, Any] = field(default_factory=dict)
    edit: str | None = None
    extend: str | None = None
    background: bool = False
    no_interpolate: bool = False
    out: str | None = None


_VIDEO_MAGIC_OWN = frozenset({"edit", "extend", "background", "no_interpolate", "out"})


def parse_video_line(line: str) -> VideoArgs:
    """Parse the ``%%video`` options; raise ``UsageError`` with one line on any problem."""
    ns = VIDEO_PARSER.parse_args(_split(line))
    values = {k: v for k, v in vars(ns).items() if v is not None and k not in _VIDEO_MAGIC_OWN}
    if "models" in values:
        values["models"] = tuple(m.strip() for m in values["models"].split(",") if m.strip())
        if not values["models"]:
            raise UsageError("-m/--models needs at least one provider:model id")
    for flag in ("estimate", "new"):
        if not values.get(flag):
            values.pop(flag, None)
    check_name(ns.out)
    for name in (ns.edit, ns.extend):
        if name:
            check_name(name)
    if ns.edit is not None and ns.extend is not None:
        raise UsageError("--edit (Omni revises a clip) and --extend (Veo continues one): one at a time")
    return VideoArgs(given=values, edit=ns.edit, extend=ns.extend, background=ns.background,
                     no_interpolate=ns.no_interpolate, out=ns.out)


def _resume_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%video resume", add_help=False, description="Fetch pending jobs.")
    p.add_argument("--out-dir", dest="out_dir", metavar="DIR")
    p.add_argument("-t", "--timeout", type=float, metavar="SECONDS")
    p.add_argument("--poll", dest="poll_s", type=float, metavar="SECONDS")
    p.add_argument("-o", "--out", metavar="NAME")
    return p


VIDEO_RESUME_PARSER = _resume_parser()
VIDEO_COMMANDS = ("list", "resume", "help")


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
