"""``python -m fusion_magic``: every option of every magic's parser is an option of the matching command (the
pairs below are checked against the magics' commands, and the options are read off the parsers, so a new one
cannot be missed), and each command runs against the loopback emulator in a child process: the report on
stdout, progress on stderr, a bad line is one line and status 2, Ctrl-C is one line and status 130."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from fusion_magic.__main__ import COMMANDS, command_of, main
from fusion_magic.ipython import args as magic_args
from fusion_magic.ipython.declared import NOTES
from fusion_magic.testing import Emulator, Fault, ModelScript, VideoScript

OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"

# Each magic's parser, the command built on it, and the positionals each needs beside one option.
PAIRS = [
    (magic_args.FUSE_PARSER, "fuse", [], ["Why?"]),
    (magic_args.VIDEO_PARSER, "video", [], ["A fox"]),
    (magic_args.EVAL_PARSER, "eval", ["q.csv"], ["q.csv"]),
    (magic_args.HISTORY_PARSER, "history", [], []),
    (magic_args.VIDEO_RESUME_PARSER, "video-resume", [], []),
]
# The magics' line commands the shell has no command for, and why.
NOT_IN_A_SHELL = {
    "%fuse rejudge": "judges a result held in the notebook again",
    "%fuse help": "--help",
    "%video help": "video --help",
}


def option_lines(parser: argparse.ArgumentParser) -> list[list[str]]:
    """Every flag of ``parser`` (old spellings included), each with a value its action takes: none for a switch,
    none and one for an optional value, one of its choices, a number of its type, else a word."""
    lines = []
    for action in parser._actions:
        for flag in action.option_strings:
            if action.nargs == 0:
                lines.append([flag])
                continue
            if action.nargs == "?":
                lines.append([flag])
            value = (str(next(iter(action.choices))) if action.choices else "3" if action.type is int
                     else "2.5" if action.type is float else "word")
            lines.append([flag, value])
    return lines


def test_every_magic_command_has_a_shell_command() -> None:
    magics = {"%%fuse", "%%video", *(f"%fuse {c}" for c in magic_args.LINE_COMMANDS),
              *(f"%video {c}" for c in magic_args.VIDEO_COMMANDS)}
    covered = {c.magic for c in COMMANDS.values()}
    assert magics - covered == set(NOT_IN_A_SHELL)
    assert covered <= magics  # no command claims a magic that does not exist
    assert {name for _, name, _, _ in PAIRS} == {c.name for c in COMMANDS.values() if c.parser._actions[1:]}


@pytest.mark.parametrize(("magic", "name", "magic_positionals", "shell_positionals"), PAIRS,
                         ids=[name for _, name, _, _ in PAIRS])
def test_every_option_of_the_magic_parses_to_the_same_value(
        magic: argparse.ArgumentParser, name: str, magic_positionals: list[str], shell_positionals: list[str]) -> None:
    command = COMMANDS[name]
    lines = option_lines(magic)
    assert len(lines) >= 3  # read off the parser: an empty list would pass anything
    for line in lines:
        expected = magic.parse_args([*magic_positionals, *line])
        try:
            got = command.parser.parse_args([*shell_positionals, *line])
        except UsageError as exc:
            raise AssertionError(f"{name} refuses {line}: {exc}") from None
        for dest, value in vars(expected).items():
            assert getattr(got, dest) == value, (name, line, dest)
        assert getattr(got, NOTES, None) == getattr(expected, NOTES, None)  # an old flag's note, once


def test_a_word_that_is_no_command_starts_a_question_and_fuse_asks_one_that_is() -> None:
    assert command_of(["What", "is", "6x7?"]) == (COMMANDS["fuse"], ["What", "is", "6x7?"])
    assert command_of(["-p", "openai:a", "hi"])[0] is COMMANDS["fuse"]
    assert command_of(["list"]) == (COMMANDS["list"], [])
    assert command_of(["fuse", "list", "the", "planets"]) == (COMMANDS["fuse"], ["list", "the", "planets"])
    assert command_of(["eval", "bundled"]) == (COMMANDS["eval"], ["bundled"])


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if name == "fuse" else [name, "--help"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: {COMMANDS[name].parser.prog}")
    assert "on the command line:" in shown
    if name == "fuse":  # the default command's help lists every command
        assert all(f"  {other} " in shown for other in COMMANDS)


# ---- bad input: one line, status 2, nothing sent -------------------------------------------------------------


@pytest.mark.parametrize(("argv", "line"), [
    (["-p", "openai:a", "--bogus", "hi"], "unrecognized arguments: --bogus"),
    (["-p", "openai:a,openai:b", "-j", "vote", "-r", "x", "hi"], "argument -r/--rounds: invalid int value: 'x'"),
    (["-p", "openai:a,openai:b", "-j", "vote", "-o", "report", "hi"],
     "-o writes the run to a file on the command line (.md, .jsonl, .csv), not 'report'"),
    (["-p", "openai:a,openai:b", "--continue", "r", "hi"],
     "--continue r follows up a result held in a notebook variable, which a command has none of "
     "(%%fuse --continue in IPython)"),
    (["-p", "openai:a,openai:b", "--background", "hi"],
     "--background hands the run to the notebook and returns; in a shell, run the command with & instead"),
    (["video", "-p", f"gemini:{VEO}", "--aspect", "4:3", "A fox"], "--aspect must be one of 16:9, 9:16, not '4:3'"),
    (["video", "-p", f"gemini:{VEO}", "--edit", "videos/none.mp4", "A fox"],
     "--edit videos/none.mp4: no clip receipt at videos/none.json (name a clip %%video saved, or its .json)"),
    (["video", "A fox", "--extend"], "--extend: no finished clip in videos/ (name one: --extend videos/CLIP.mp4)"),
    (["video"], "the following arguments are required: prompt"),
    (["eval", "missing.csv", "-p", "openai:a"], "no questions file at 'missing.csv'"),
    (["eval", "bundled", "--repeats", "0"], "repeats must be a whole number >= 1, not 0"),
    (["list", "extra"], "unrecognized arguments: extra"),
    (["history", "-n", "many"], "argument -n/--limit: invalid int value: 'many'"),
    (["video-resume", "-t", "0"], "--timeout must be a positive number, not 0.0"),
])
def test_bad_input_is_one_line_and_status_2(emulator_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], argv: list[str], line: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    printed = capsys.readouterr()
    assert printed.err == f"error: {line}\n" and printed.out == ""
    assert emulator_env.requests == []


# ---- each command in a child process, against the emulator ---------------------------------------------------


def shell(cwd: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m fusion_magic ARGV`` in a child process that sees this test's environment (the emulator's
    URLs and keys, the scratch run log and cache)."""
    return subprocess.run([sys.executable, "-m", "fusion_magic", *argv], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def test_fuse_prints_progress_then_the_report_and_writes_the_transcript(emulator_env: Emulator,
                                                                       tmp_path: Path) -> None:
    emulator_env.script("a", ModelScript(reply="Paris."))
    emulator_env.script("b", ModelScript(reply="It is Paris."))
    done = shell(tmp_path, "-p", "openai:a,anthropic:b", "-j", "vote", "-o", "r.md", "Capital", "of", "France?")
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    progress = done.stderr.splitlines()
    assert progress[0] == "fusing 2 answers (best-of, judge: vote)..."
    assert {line.split(":")[0] for line in progress[1:3]} == {"  a", "  b"}
    assert progress[-1] == "Wrote 1 row to r.md."
    assert "Paris." in done.stdout and "It is Paris." in done.stdout and "TOTAL (2 calls)" in done.stdout
    assert "<" not in done.stdout  # plain text: no HTML, no widget
    transcript = (tmp_path / "r.md").read_text()
    assert transcript.startswith("## Fused answer") and "It is Paris." in transcript
    assert sorted(str(q.model) for q in emulator_env.requests) == ["a", "b"]
    asked = [q.body["messages"][-1]["content"] for q in emulator_env.requests if q.model == "a"]
    assert asked == ["Capital of France?"]


def test_fuse_asks_a_question_that_starts_with_a_command_name(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("a", ModelScript(reply="Mercury, Venus, Earth, Mars."))
    done = shell(tmp_path, "fuse", "-p", "openai:a,openai:a", "-j", "vote", "list", "the", "planets")
    assert done.returncode == 0, done.stderr
    assert "Mercury" in done.stdout
    asked = {q.body["messages"][-1]["content"] for q in emulator_env.requests}
    assert asked == {"list the planets"}


def test_every_member_failing_is_status_1(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("gone", ModelScript(faults=[Fault("status", status=404, times=None)]))
    done = shell(tmp_path, "-p", "openai:gone,openai:gone", "-j", "vote", "hi")
    assert done.returncode == 1
    no_traceback(done)
    assert "failed" in done.stdout and "  gone #1: failed" in done.stderr


def veo_submits(emu: Emulator) -> list[dict]:
    return [q.body for q in emu.requests if q.method == "POST" and q.path.endswith(":predictLongRunning")]


def test_video_generates_extends_a_named_clip_and_edits_the_newest(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script(VEO, VideoScript(polls=1, clip_seconds=1.0))
    emulator_env.script(OMNI, VideoScript(polls=1, clip_seconds=1.0))
    made = shell(tmp_path, "video", "-p", f"gemini:{VEO}", "--seconds", "4", "--poll", "0.05", "-o", "clips.jsonl",
                 "A", "fox")
    assert made.returncode == 0, made.stderr
    no_traceback(made)
    assert "Clips (1 of 1 saved)" in made.stdout and "<" not in made.stdout
    assert "saved " in made.stderr and "Wrote 1 row to clips.jsonl." in made.stderr
    [clip] = sorted((tmp_path / "videos").glob("*.mp4"))
    side = json.loads(clip.with_suffix(".json").read_text())
    assert side["status"] == "ok" and side["parameters"]["seconds"] == 4 and side["prompt"] == "A fox"
    row = json.loads((tmp_path / "clips.jsonl").read_text())
    assert row["model"] == f"gemini:{VEO}" and row["status"] == "ok"

    # --extend CLIP: Veo is sent the URI its finished operation named for that clip.
    longer = shell(tmp_path, "video", "--extend", str(clip.relative_to(tmp_path)), "--poll", "0.05", "It runs")
    assert longer.returncode == 0, longer.stderr
    assert veo_submits(emulator_env)[-1]["instances"][0]["video"] == {"uri": side["clip_uri"]}
    assert emulator_env.video_jobs(VEO) == 2

    # Bare --edit revises the newest finished clip: an Omni clip, through its interaction id.
    omni = shell(tmp_path, "video", "-p", f"gemini:{OMNI}", "--poll", "0.05", "A", "red", "car")
    assert omni.returncode == 0, omni.stderr
    newest = max((tmp_path / "videos").glob("*.json"), key=lambda p: p.stat().st_mtime)
    first_job = json.loads(newest.read_text())["job"]["job_id"]
    edited = shell(tmp_path, "video", "--edit", "--poll", "0.05", "make", "it", "blue")
    assert edited.returncode == 0, edited.stderr
    creates = [q.body for q in emulator_env.requests
               if q.method == "POST" and q.path.endswith("/interactions") and q.model == OMNI]
    assert len(creates) == 2 and creates[-1]["previous_interaction_id"] == first_job


def test_video_understand_answers_offline(emulator_env: Emulator, tmp_path: Path) -> None:
    from fusion_magic.testing.media import make_clip

    make_clip(tmp_path / "boat.mp4", seconds=1.0)
    done = shell(tmp_path, "video", "--understand", "boat.mp4", "-p", "local:frames", "Does", "it", "move?")
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    assert "local:frames" in done.stdout and emulator_env.requests == []


def test_a_pending_clip_is_status_1_and_video_resume_fetches_it_without_paying_again(
        emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script(VEO, VideoScript(polls=1, seconds=3, clip_seconds=1.0))
    left = shell(tmp_path, "video", "-p", f"gemini:{VEO}", "--poll", "0.05", "-t", "1", "A", "fox")
    assert left.returncode == 1 and "[pending]" in left.stdout
    none = list((tmp_path / "videos").glob("*.mp4"))
    resumed = shell(tmp_path, "video-resume", "--poll", "0.05", "-o", "resumed.csv")
    assert resumed.returncode == 0, resumed.stderr
    no_traceback(resumed)
    assert none == [] and len(list((tmp_path / "videos").glob("*.mp4"))) == 1
    assert "re-attached" in resumed.stderr and "Clips (1 of 1 saved)" in resumed.stdout
    assert emulator_env.video_jobs(VEO) == 1
    again = shell(tmp_path, "video-resume")
    assert again.returncode == 0 and again.stdout.strip() == "No pending jobs in videos/."


def test_eval_list_history_and_video_list(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("a", ModelScript(reply="The answer is 4."))
    (tmp_path / "q.csv").write_text("question,reference\nWhat is 2 + 2?,4\nWhat is 3 + 1?,4\n")
    estimate = shell(tmp_path, "eval", "q.csv", "-p", "openai:a", "--strategies", "single", "--estimate")
    assert estimate.returncode == 0 and "Projected cost of 2 questions" in estimate.stdout
    assert emulator_env.requests == []
    done = shell(tmp_path, "eval", "q.csv", "-p", "openai:a", "--strategies", "single", "--seed", "3", "-o", "rows.csv")
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    assert done.stdout.startswith("Evaluation: 2 questions x 1 strategies x 1 repeat: 2 of 2 rows")
    assert "single:openai:a  2     1.000" in done.stdout
    assert "evaluating: 2/2 rows" in done.stderr and "Wrote 2 rows to rows.csv." in done.stderr
    assert {q.body.get("seed") for q in emulator_env.requests} == {3}

    listed = shell(tmp_path, "list")
    assert listed.returncode == 0 and listed.stdout.startswith("Providers (model ids are provider:model):")
    openai = next(line for line in listed.stdout.splitlines() if line.split()[:1] == ["openai"])
    assert " set " in openai and emulator_env.env()["OPENAI_BASE_URL"] in openai
    assert all(key not in listed.stdout for key in Emulator.test_keys().values())

    runs = shell(tmp_path, "history", "-n", "5")
    assert runs.returncode == 0 and runs.stdout.splitlines()[1].split()[1:3] == ["eval", "ok"]
    exported = shell(tmp_path, "history", "--export", "calls.jsonl")
    assert exported.returncode == 0 and exported.stdout.strip() == "Wrote 2 rows to calls.jsonl."

    models = shell(tmp_path, "video-list")
    assert models.returncode == 0 and models.stdout.startswith("Video models")
    assert f"gemini:{VEO}" in models.stdout


# ---- Ctrl-C -------------------------------------------------------------------------------------------------------

LONG = "Rayleigh scattering makes short wavelengths scatter more, so the sky looks blue. " * 20


def test_ctrl_c_is_one_line_and_status_130(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("fast", ModelScript(reply="Blue light scatters most."))
    emulator_env.script("slow", ModelScript(reply=LONG, tokens_per_s=20, chunk_chars=4))
    child = subprocess.Popen([sys.executable, "-m", "fusion_magic", "-p", "openai:fast,anthropic:slow", "-j", "vote",
                              "-o", "partial.jsonl", "Why", "is", "the", "sky", "blue?"],
                             cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    while not any(line.startswith("  fast: done") for line in seen):
        line = lines.get(timeout=60)
        assert line is not None, seen
        seen.append(line)
    # The slow member is streaming now (its request is open at the emulator).
    emulator_env.wait_for(lambda reqs: any(q.model == "slow" and q.status == 200 for q in reqs), timeout=30)
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    assert child.returncode == 130
    after = seen[seen.index(next(x for x in seen if x.startswith("  fast: done"))) + 1:]
    assert after[-1].startswith("fusion_magic: interrupted after ")
    assert after[-1].endswith(": 1 of 2 answers done, 1 cancelled; the partial result is in partial.jsonl")
    assert "Traceback" not in "\n".join(seen) and out == ""
    rows = [json.loads(x) for x in (tmp_path / "partial.jsonl").read_text().splitlines()]
    assert {r["model"]: r["status"] for r in rows} == {"openai:fast": "ok", "anthropic:slow": "cancelled"}
    assert emulator_env.wait_for(lambda reqs: all(q.disconnected or q.ended for q in reqs), timeout=10)
