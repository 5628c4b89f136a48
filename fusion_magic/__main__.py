"""``python -m fusion_magic``: the magics from the shell, with the same options, read by the same parsers.

    python -m fusion_magic [fuse] [options] QUESTION...     %%fuse: one fused run (the default command)
    python -m fusion_magic video [options] PROMPT...        %%video: clips, or a question about a video
    python -m fusion_magic eval DATA [options]              %fuse eval: is fusion worth it on these questions?
    python -m fusion_magic list                             %fuse list: providers, keys set, known prices
    python -m fusion_magic history [-n N] [--export PATH]   %fuse history: past runs from the run log
    python -m fusion_magic video-list                       %video list: the video models your keys can use
    python -m fusion_magic video-resume [--out-dir DIR]     %video resume: fetch the jobs earlier runs left pending

Each command's parser is built on its magic's (``ipython/args.py``: ``FUSE_PARSER``, ``VIDEO_PARSER``,
``EVAL_PARSER``, ``HISTORY_PARSER``, ``VIDEO_RESUME_PARSER``, generated from the options' declarations), so an
option added to a magic is an option here too; the run is planned and started by the same ``plan_*`` and
``start`` (``api.py``) as the magic's. Progress goes to stderr as calls finish, the plain-text report to stdout.

Where a magic's flag names a notebook variable, the shell has files instead: ``-o PATH`` writes the run's calls
(``.jsonl``, ``.csv``; a fused run also ``.md``, its transcript), and ``%%video --edit/--extend`` take a clip
file (its JSON sidecar holds the job); ``--continue NAME`` and ``--background`` need a notebook and say so.
Bad input is one line on stderr and exit status 2, never a traceback; Ctrl-C is one line and status 130.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError

from .core.errors import FusionError
from .ipython import args as _args
from .ipython.declared import given_options, parsed

if TYPE_CHECKING:
    from .videos.result import VideoResult

PROG = "python -m fusion_magic"
BAD_INPUT = 2
INTERRUPTED = 130  # the shell's status for a command ended by SIGINT (128 + 2)
# What -o writes on the command line (RunResult.export; a FusionResult also writes its transcript as .md).
CALL_SUFFIXES = (".jsonl", ".csv")
FUSE_SUFFIXES = (".md", *CALL_SUFFIXES)


class CommandParser(argparse.ArgumentParser):
    """A command's parser: a bad line is one ``UsageError`` (printed as one line, status 2), never argparse's
    usage block and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)  # the magic's words for the same line (MagicArgumentParser.error)


@dataclass(frozen=True)
class Command:
    """One command: the magic it mirrors, its parser (built on the magic's) and what runs it."""

    name: str
    magic: str
    summary: str
    parser: CommandParser
    run: Callable[[argparse.Namespace], int]


def _parser(name: str, description: str, parents: Sequence[argparse.ArgumentParser] = ()) -> CommandParser:
    prog = PROG if name == "fuse" else f"{PROG} {name}"
    return CommandParser(prog=prog, description=description, parents=list(parents),
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _take(ns: argparse.Namespace, dest: str) -> Any:
    """Take a flag the shell reads differently from the magic (``-o``, ``--edit``) out of ``ns``, so the magic's
    own checks (a Python name) do not apply to it."""
    value = getattr(ns, dest, None)
    setattr(ns, dest, None)
    return value


def _out_path(out: str | None, suffixes: Sequence[str]) -> Path | None:
    """``-o PATH``: checked before anything is sent, so a typo costs no run."""
    if out is None:
        return None
    path = Path(out).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"-o writes the run to a file on the command line ({', '.join(suffixes)}), not {out!r}")
    return path


def _notebook_only(value: object, line: str) -> None:
    """A flag that hands something to a notebook (a variable to continue, a run to keep going): one line."""
    if value:
        raise UsageError(line)


BACKGROUND = "--background hands the run to the notebook and returns; in a shell, run the command with & instead"


def _write(result: Any, path: Path | None) -> None:
    if path is not None:
        n = result.export(path)
        _say(f"Wrote {n} row{'s' if n != 1 else ''} to {path}.")


# ---- fuse (%%fuse) --------------------------------------------------------------------------------------


def run_fuse(ns: argparse.Namespace) -> int:
    """``%%fuse``: plan, print the notice and warnings, run with progress lines, print the report."""
    from .api import plan_fuse, start
    from .calls.settings import Settings
    from .fusion.estimate import check_budget, estimate
    from .fusion.options import FuseOptions
    from .fusion.progress import ProgressPrinter
    from .ipython.magics import interrupted_line

    out = _out_path(_take(ns, "out"), FUSE_SUFFIXES)
    args = _args.fuse_args(ns)
    _notebook_only(args.follow_up, f"--continue {args.follow_up} follows up a result held in a notebook variable, "
                                   "which a command has none of (%%fuse --continue in IPython)")
    _notebook_only(args.background, BACKGROUND)
    for note in args.notes:
        _say(note)
    settings = Settings()
    plan = plan_fuse(" ".join(ns.question), settings, args.options(FuseOptions.defaults(settings)),
                     require_keys=not args.estimate)
    if args.estimate:
        print(estimate(plan))
        return 0
    # The notice is printed here and stays out of the report (which repeats the warnings).
    for line in ([plan.notice] if plan.notice else []) + list(plan.warnings):
        _say(line)
    if args.budget is not None:
        check_budget(estimate(plan), args.budget)
    printer = ProgressPrinter(sys.stderr)
    job = start(plan, [printer])
    started = time.monotonic()
    try:
        result = job.result()
    except KeyboardInterrupt:
        _settle(job)
        printer.finished = True  # the interrupt line says what was cancelled; no progress line comes after it
        partial = job.partial
        assert partial is not None  # start() made it
        _write(partial, out)
        _say(interrupted_line(partial, len(plan.members), time.monotonic() - started, str(out) if out else None,
                              finished=job.done()))
        return INTERRUPTED
    _write(result, out)
    print(result.to_text())
    return 0 if result.n_ok else 1


def _settle(job: Any, limit_s: float = 2.0) -> None:
    """After Ctrl-C: let the run finish unwinding (its progress lines for the cancelled calls come from the engine's
    thread) before the one interrupt line is printed, so that line is the last."""
    job.cancel()
    deadline = time.monotonic() + limit_s
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)


# ---- video (%%video) ------------------------------------------------------------------------------------


def _clip_result(value: str, out_dir: Path, flag: str) -> VideoResult:
    """The clip ``--edit``/``--extend`` works on, as a one-clip ``VideoResult``: the clip file named (``.mp4``, or
    its ``.json`` sidecar), or with no name the newest finished clip in ``out_dir``."""
    from .core.state import State
    from .videos import sidecar
    from .videos.result import Video, VideoResult

    if value:
        path = Path(value).expanduser().with_suffix(".json")
        side = sidecar.read(path)
        if side is None:
            raise UsageError(f"{flag} {value}: no clip receipt at {path} (name a clip %%video saved, or its .json)")
        found = [(path, side)]
    else:
        found = [(p, s) for p, s in reversed(list(sidecar.sidecars(out_dir))) if s.status == "ok"][:1]
        if not found:
            raise UsageError(f"{flag}: no finished clip in {out_dir}/ (name one: {flag} videos/CLIP.mp4)")
    path, side = found[0]
    job = side.job_ref
    if side.status != "ok" or job is None:
        raise UsageError(f"{flag} {path.name}: that clip is {side.status}, not finished (python -m fusion_magic "
                         "video-resume fetches pending ones)")
    clip = Video(model=side.model, label=side.model, prompt=side.prompt, status=State.DONE, sidecar=path,
                 path=path.with_name(side.file) if side.file else None, job_id=job.job_id, seconds=side.seconds)
    return VideoResult(prompt=side.prompt, videos=[clip])


def run_video(ns: argparse.Namespace) -> int:
    """``%%video``: generate clips (or answer about a video), progress lines as clips move, then the report."""
    from .api import plan_video, start
    from .calls.settings import Settings
    from .ipython.video import interrupted_line
    from .videos.estimate import VideoEstimate
    from .videos.options import VideoOptions
    from .videos.plan import extension_source
    from .videos.progress import ProgressPrinter

    out = _out_path(_take(ns, "out"), CALL_SUFFIXES)
    edit, extend = _take(ns, "edit"), _take(ns, "extend")
    args = parsed(ns, _args.VideoArgs, VideoOptions)
    _notebook_only(args.background, BACKGROUND)
    for note in args.notes:
        _say(note)
    given: dict[str, Any] = dict(args.given)
    out_dir = Path(given.get("out_dir") or VideoOptions().out_dir)
    if edit is not None:
        clip = _clip_result(edit, out_dir, "--edit").videos[0]
        given["edit_of"] = (clip.model, clip.job_id)  # plan_video says whether that model can revise it
    if extend is not None:
        given["extend_of"] = extension_source(_clip_result(extend, out_dir, "--extend"))
    options = VideoOptions.from_keywords(given)  # type: ignore[arg-type]
    plan = plan_video(" ".join(ns.prompt), Settings(), options)
    if options.estimate:
        print(VideoEstimate.of(plan))
        return 0
    for note in plan.notes:
        _say(note)
    # On the engine thread, not offloaded: an event carries the live Video (see ipython/video.py).
    job = start(plan, [ProgressPrinter(sys.stderr)])
    started = time.monotonic()
    try:
        result = job.result()
    except KeyboardInterrupt:
        _settle(job)
        partial = job.partial
        assert partial is not None  # start() made it
        _write(partial, out)
        _say(interrupted_line(partial, time.monotonic() - started, str(out) if out else None))
        return INTERRUPTED
    _write(result, out)
    print(result.to_text())
    return 0 if any(v.ok for v in result.videos) or any(r.ok for r in result.answers) else 1


def run_video_resume(ns: argparse.Namespace) -> int:
    """``%video resume``: fetch the jobs earlier runs left pending (no new submission)."""
    from .api import plan_resume, start
    from .calls.settings import Settings
    from .ipython.video import interrupted_line
    from .videos.options import VideoOptions
    from .videos.progress import ProgressPrinter

    out = _out_path(_take(ns, "out"), CALL_SUFFIXES)
    defaults = VideoOptions()
    given = {"out_dir": defaults.out_dir, "timeout": defaults.timeout, "poll_s": defaults.poll_s,
             **given_options(ns, VideoOptions)}
    plan = plan_resume(given["out_dir"], Settings(), timeout=given["timeout"], poll_s=given["poll_s"])
    for line in plan.skipped:
        _say(line)
    if not plan.jobs:
        print(f"No pending jobs in {given['out_dir']}/.")
        return 0
    job = start(plan, [ProgressPrinter(sys.stderr)])
    started = time.monotonic()
    try:
        result = job.result()
    except KeyboardInterrupt:
        _settle(job)
        partial = job.partial
        assert partial is not None
        _write(partial, out)
        _say(interrupted_line(partial, time.monotonic() - started, str(out) if out else None))
        return INTERRUPTED
    _write(result, out)
    print(result.to_text())
    return 0 if any(v.ok for v in result.videos) else 1


def run_video_list(ns: argparse.Namespace) -> int:
    """``%video list``: the video models each key can use, asked of the providers now."""
    from .api import list_video_models
    from .calls.settings import Settings

    print(list_video_models(Settings()))
    return 0


# ---- eval (%fuse eval) ------------------------------------------------------------------------------------


def run_eval(ns: argparse.Namespace) -> int:
    """``%fuse eval DATA``: plan (every check first), run with a progress line, print the summary."""
    from .api import plan_eval, plan_eval_resume, start
    from .calls.settings import Settings
    from .evaluation import BUNDLED_QUESTIONS
    from .evaluation.estimate import estimate_evaluation
    from .evaluation.options import EvalOptions
    from .ipython.progress import EvalProgress

    out = _out_path(_take(ns, "out"), CALL_SUFFIXES)
    args = parsed(ns, _args.EvalArgs, EvalOptions)
    _notebook_only(args.background, BACKGROUND)
    for note in args.notes:
        _say(note)
    settings = Settings().with_(cache=args.cache)
    if args.data == "resume":
        if args.given:
            raise UsageError("eval resume takes the options the evaluation was started with; it accepts only "
                             "--cache and -o")
        plan = plan_eval_resume(settings)
        _say(f"Resuming the batch evaluation of {len(plan.questions)} questions from {plan.source}.")
    else:
        data = BUNDLED_QUESTIONS if args.data == "bundled" else args.data
        plan = plan_eval(data, settings, EvalOptions().with_(**args.given))
    if args.estimate:
        print(estimate_evaluation(plan))
        return 0
    for line in ([plan.notice] if plan.notice else []) + list(plan.warnings):
        _say(line)
    progress = EvalProgress(plan.total, widgets=False)
    job = start(plan, (progress.listener,), on_row=progress.row)
    partial = job.partial
    assert partial is not None  # start() made it
    started = time.monotonic()
    try:
        try:
            result = job.result()
        finally:
            progress.close(partial.wall_s or None)
    except KeyboardInterrupt:
        _write(partial, out)
        kept = f"the finished rows are in {out}" if out else "nothing stored (-o PATH keeps them)"
        batches = ("; its batches go on at the providers: run it again (or eval resume) to re-attach"
                   if plan.batch else "")
        _say(f"fusion_magic: evaluation interrupted after {time.monotonic() - started:.1f} s: {len(partial.rows)} "
             f"of {plan.total} rows done; {kept}{batches}")
        return INTERRUPTED
    _write(result, out)
    print(result.to_text())
    return 0


# ---- list, history (%fuse list, %fuse history) --------------------------------------------------------------


def run_list(ns: argparse.Namespace) -> int:
    """``%fuse list``: providers, which keys are set (never their values), known prices."""
    from .calls.settings import Settings
    from .ipython.listing import provider_listing

    print(provider_listing(Settings()))
    return 0


def run_history(ns: argparse.Namespace) -> int:
    """``%fuse history``: past runs from the run log, or ``--export`` their calls."""
    from .api import export_history, history
    from .calls.settings import Settings

    if ns.export:
        n = export_history(ns.export, Settings(), run_id=ns.run)
        print(f"Wrote {n} row{'s' if n != 1 else ''} to {ns.export}.")
        return 0
    runs = history(Settings(), limit=ns.limit)
    print(runs.to_string(index=False) if len(runs) else "No runs in the run log yet.")
    return 0


# ---- the commands ---------------------------------------------------------------------------------------------


def _commands() -> dict[str, Command]:
    fuse = _parser("fuse", "Fuse the answers of several models to one question (offline by default).",
                   [_args.FUSE_PARSER])
    fuse.add_argument("question", nargs="+", help="the prompt")
    video = _parser("video", "Generate clips with a pool of video models, or (--understand) ask about a video.",
                    [_args.VIDEO_PARSER])
    video.add_argument("prompt", nargs="+", help="what to generate (with --understand: the question)")
    commands = [
        Command("fuse", "%%fuse", "one fused run (the default: python -m fusion_magic QUESTION...)", fuse, run_fuse),
        Command("video", "%%video", "generate clips, or ask about a video (--understand PATH)", video, run_video),
        Command("eval", "%fuse eval", "evaluate strategies on questions (DATA: CSV, JSONL, bundled, resume)",
                _parser("eval", "Is fusion worth it here? Every strategy answers every question, scored.",
                        [_args.EVAL_PARSER]), run_eval),
        Command("list", "%fuse list", "providers, which keys are set, known models and prices",
                _parser("list", "Providers, which keys are set (never their values), known prices."), run_list),
        Command("history", "%fuse history", "past runs from the run log (-n N; --export PATH [--run ID])",
                _parser("history", "Past runs from the run log.", [_args.HISTORY_PARSER]), run_history),
        Command("video-list", "%video list", "the video models your keys can use, asked of the providers now",
                _parser("video-list", "The video models each key can use."), run_video_list),
        Command("video-resume", "%video resume", "fetch the clips earlier runs left pending (no new submission)",
                _parser("video-resume", "Fetch pending video jobs.", [_args.VIDEO_RESUME_PARSER]), run_video_resume),
    ]
    fuse.epilog = "\n".join(["commands (python -m fusion_magic COMMAND --help):",
                              *(f"  {c.name:<13} {c.magic:<14} {c.summary}" for c in commands), "",
                              "A question that starts with a command's name: python -m fusion_magic fuse QUESTION...",
                              SHELL_FLAGS])
    for command in commands[1:]:
        command.parser.epilog = SHELL_FLAGS
    return {c.name: c for c in commands}


# The options are the magic's; these read differently in a shell, which has files where a notebook has variables.
SHELL_FLAGS = """\
on the command line:
  -o PATH          writes the run's calls (.jsonl, .csv; a fused run also .md, its transcript), not a variable
  --edit/--extend  take a clip file (videos/CLIP.mp4; none: the newest finished clip in --out-dir)
  --continue NAME and --background need a notebook: they are refused with one line"""


COMMANDS = _commands()


def command_of(argv: Sequence[str]) -> tuple[Command, list[str]]:
    """The command ``argv`` names and the rest of it; with no command name first, ``fuse`` and all of it."""
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]], list(argv[1:])
    return COMMANDS["fuse"], list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 1 no answer came back, 2 bad input, 130 interrupted)."""
    command, rest = command_of(sys.argv[1:] if argv is None else argv)
    try:
        ns = command.parser.parse_args(rest)
        return command.run(ns)
    except (FusionError, UsageError) as exc:
        _say(f"error: {exc}")
        return BAD_INPUT
    except KeyboardInterrupt:  # outside a run's wait (planning, reading a file): the runs handle their own
        _say("fusion_magic: interrupted")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
