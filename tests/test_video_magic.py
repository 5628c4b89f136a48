"""%%video and %video in a real InteractiveShell: every job through the loopback emulator's Omni, Veo and fal
routes over a socket; clips are real MP4 files; sidecars, resume, reuse, interrupts and bad input."""

from __future__ import annotations

import _thread
import json
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.core.errors import BudgetError
from fusion_magic.ipython.video import VideoInterrupted
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.testing.media import Scene, make_clip
from fusion_magic.videos.result import VideoResult

OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
FAL = "fal-ai/minimax/hailuo-02/standard/text-to-video"
POOL = f"gemini:{OMNI},gemini:{VEO},fal:{FAL}"


def submissions(emu: Emulator) -> dict[str, int]:
    return {m: emu.video_jobs(m) for m in (OMNI, VEO, FAL)}


def test_a_pool_generates_concurrently_and_saves_mp4_with_sidecars(vshell: InteractiveShell,
                                                                    emulator_env: Emulator) -> None:
    for model in (OMNI, VEO, FAL):
        emulator_env.script(model, VideoScript(polls=2, clip_seconds=1.5))
    out = vshell.run_cell_magic("video", f"-p {POOL} --seconds 6 -o v", "A paper boat on a rainy street")
    assert isinstance(out, VideoResult) and vshell.user_ns["v"] is out
    assert [v.status for v in out.videos] == ["ok", "ok", "ok"] and not out.degraded
    assert submissions(emulator_env) == {OMNI: 1, VEO: 1, FAL: 1}
    for v in out.videos:
        assert v.path is not None and v.path.suffix == ".mp4" and v.path.parent == Path.cwd() / "videos"
        assert v.seconds == pytest.approx(1.5, abs=0.2) and v.resolution == "320x180"
        side = json.loads(v.path.with_suffix(".json").read_text())
        assert side["status"] == "ok" and side["job"]["job_id"] == v.job_id and side["file"] == v.path.name
        assert side["prompt"] == "A paper boat on a rainy street" and side["parameters"]["seconds"] == 6
        assert v.keyframes and all(k.is_file() for k in v.keyframes)
    # Keys never reach files: not the sidecars, not the result's text.
    keys = Emulator.test_keys().values()
    written = "".join(p.read_text() for p in (Path.cwd() / "videos").glob("*.json")) + out.to_text()
    assert not any(k in written for k in keys)
    # Veo's and Omni's clips came through the redirect; the storage host never saw a key.
    storage = [q for q in emulator_env.requests if q.family == "storage"]
    assert len(storage) == 3 and all("x-goog-api-key" not in q.headers and "authorization" not in q.headers
                                     for q in storage)
    veo = out.videos[1]
    assert veo.record.video_seconds == pytest.approx(1.5, abs=0.2) and veo.cost_usd is not None
    assert out.ledger["model"].tolist() == [f"gemini:{OMNI}", f"gemini:{VEO}", f"fal:{FAL}"]


def test_failed_and_filtered_jobs_fail_their_own_tab_only(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=1))
    emulator_env.script(VEO, VideoScript(polls=1, outcome="filtered", reason="audio track blocked"))
    emulator_env.script(FAL, VideoScript(polls=1, outcome="failed"))
    out = vshell.run_cell_magic("video", f"-p {POOL}", "A fox")
    omni, veo, fal = out.videos
    assert omni.ok and out.degraded
    assert veo.status == "filtered" and "audio track blocked" in (veo.reason or "") and veo.cost_usd == 0.0
    assert fal.status == "failed" and fal.error and fal.path is None
    assert json.loads(veo.sidecar.read_text())["status"] == "filtered"  # type: ignore[union-attr]
    assert "filtered" in out.to_text() and "failed" in out.to_text()


def test_the_same_cell_again_reuses_its_clip_and_pays_nothing(vshell: InteractiveShell,
                                                               emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=1))
    first = vshell.run_cell_magic("video", f"-p gemini:{OMNI} --seconds 4", "A fox")
    again = vshell.run_cell_magic("video", f"-p gemini:{OMNI} --seconds 4", "A fox")
    assert emulator_env.video_jobs(OMNI) == 1
    assert again.videos[0].reused and again.videos[0].path == first.videos[0].path and again.videos[0].ok
    assert again.videos[0].cost_usd == 0.0
    fresh = vshell.run_cell_magic("video", f"-p gemini:{OMNI} --seconds 4 --new", "A fox")
    assert emulator_env.video_jobs(OMNI) == 2 and fresh.videos[0].ok


def test_a_timeout_leaves_the_job_pending_and_resume_fetches_it_with_one_submission(
        vshell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script(VEO, VideoScript(polls=40))
    out = vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2 -o v", "A slow fox")
    video = out.videos[0]
    assert video.status == "pending" and out.pending == [video] and out.degraded
    # Why it is pending is a note, never an error (issue #16): the clip, its record and its sidecar say so.
    assert video.error is None and video.record.error is None and video.note == "not finished after 0.2 s"
    assert "%video resume" in out.to_text()
    side = json.loads(video.sidecar.read_text())  # type: ignore[union-attr]
    assert side["status"] == "pending" and side["job"]["job_id"] == video.job_id
    assert side["note"] == "not finished after 0.2 s" and side["error"] is None
    emulator_env.script(VEO, VideoScript(polls=0))  # the job finishes at the provider meanwhile
    job = emulator_env.video.job(video.job_id.rsplit("/", 1)[-1])  # type: ignore[union-attr]
    if job is not None:
        job.script = VideoScript(polls=0)
    resumed = vshell.run_line_magic("video", "resume -o w")
    assert [v.status for v in resumed.videos] == ["ok"] and resumed.videos[0].path is not None
    assert emulator_env.video_jobs(VEO) == 1  # re-attached, not paid twice
    assert json.loads(video.sidecar.read_text())["status"] == "ok"  # type: ignore[union-attr]
    assert vshell.run_line_magic("video", "resume") is None  # nothing left open: "No pending jobs in videos/."


def test_an_interrupt_prints_one_line_and_the_paid_job_survives(vshell: InteractiveShell, emulator_env: Emulator,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(OMNI, VideoScript(polls=10_000))
    threading.Timer(1.0, _thread.interrupt_main).start()
    outcome = vshell.run_cell(f"%%video -p gemini:{OMNI} -o v\nA fox that never ends")
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert isinstance(outcome.error_in_exec, VideoInterrupted) and "Traceback" not in text
    line = next(x for x in text.splitlines() if x.startswith("fusion_magic: video interrupted"))
    assert "1 still at the provider" in line and "%video resume" in line and "in v" in line
    partial = vshell.user_ns["v"]
    assert partial.videos[0].status == "pending"
    assert json.loads(partial.videos[0].sidecar.read_text())["status"] == "pending"
    # Running the same cell again re-attaches to the job instead of paying for a second one.
    emulator_env.video.jobs(OMNI)[0].script = VideoScript(polls=0)
    again = vshell.run_cell_magic("video", f"-p gemini:{OMNI}", "A fox that never ends")
    assert again.videos[0].ok and emulator_env.video_jobs(OMNI) == 1


def test_check_by_local_frames_scores_each_clip_and_marks_the_best(vshell: InteractiveShell,
                                                                    emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=0, clip_seconds=4.0))
    emulator_env.script(VEO, VideoScript(polls=0, clip_seconds=2.0))
    out = vshell.run_cell_magic("video", f"-p gemini:{OMNI},gemini:{VEO} --seconds 4 --check local:frames", "A fox")
    omni, veo = out.videos
    assert omni.score is not None and veo.score is not None and omni.score > veo.score
    assert out.best is omni and omni.best and not veo.best
    assert "duration" in veo.score_reasons.lower()
    assert [r.role for r in out.checks] == ["check", "check"]


CHECK_ANSWER = '{"score": 7, "reasons": ["0:01 the fox runs across the frame"]}'


def question_bodies(emu: Emulator) -> list[dict[str, object]]:
    """What the Interactions API was asked in text (questions and checks, not generations)."""
    return [q.body for q in emu.requests if q.family == "gemini-interactions" and q.method == "POST"
            and isinstance(q.body, dict) and q.body.get("response_modalities") == ["text"]]


def video_blocks(body: dict[str, object]) -> bool:
    """Whether the request carries a video (a ``{"type": "video", ...}`` block anywhere in its input)."""
    return '"type": "video"' in json.dumps(body["input"])


def test_check_by_omni_continues_the_interaction_that_made_its_clip(vshell: InteractiveShell,
                                                                    emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=0, answer=CHECK_ANSWER))
    emulator_env.script(VEO, VideoScript(polls=0))
    out = vshell.run_cell_magic("video", f"-p gemini:{OMNI},gemini:{VEO} --check gemini:{OMNI}", "A fox")
    omni, veo = out.videos
    assert (omni.score, veo.score) == (7.0, 7.0) and not out.degraded
    assert "0:01 the fox runs" in omni.score_reasons
    by_previous = {b.get("previous_interaction_id"): b for b in question_bodies(emulator_env)}
    # Omni's own clip: the check continues the interaction that made it and sends no video again ...
    own = by_previous[omni.job_id]
    assert not video_blocks(own)
    # ... while Veo's clip, made elsewhere, is sent to Omni inline.
    other = by_previous[None]
    assert video_blocks(other)
    assert len(out.checks) == 2 and all(r.ok for r in out.checks)


def test_a_check_that_cannot_continue_the_interaction_sends_the_clip(vshell: InteractiveShell,
                                                                     emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=0, answer=CHECK_ANSWER))
    first = vshell.run_cell_magic("video", f"-p gemini:{OMNI}", "A fox")
    job_id = first.videos[0].job_id
    assert job_id is not None
    emulator_env.video.forget(job_id)  # the provider no longer keeps that interaction (expired)
    again = vshell.run_cell_magic("video", f"-p gemini:{OMNI} --check gemini:{OMNI}", "A fox")
    clip = again.videos[0]
    generations = [q for q in emulator_env.requests if q.family == "gemini-interactions" and q.method == "POST"
                   and isinstance(q.body, dict) and q.body.get("response_modalities") == ["video"]]
    assert clip.reused and len(generations) == 1  # the clip is not paid again
    continued, sent = again.checks
    assert not continued.ok and sent.ok and clip.score == 7.0
    assert any("could not continue" in note for note in clip.notes)
    assert not again.degraded  # the check was made good by sending the clip
    bodies = question_bodies(emulator_env)
    assert bodies[0].get("previous_interaction_id") == job_id and not video_blocks(bodies[0])
    assert "previous_interaction_id" not in bodies[1] and video_blocks(bodies[1])


def test_understanding_with_two_models_is_fused_by_the_judge(vshell: InteractiveShell, emulator_env: Emulator,
                                                            tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cuts.mp4", scenes=[Scene(1.5), Scene(1.5)])
    out = vshell.run_cell_magic("video", f"--understand {clip} -p local:frames,gemini:gemini-2.5-flash -j vote",
                                "What happens in this clip?")
    assert [r.model for r in out.answers] == ["local:frames", "gemini:gemini-2.5-flash"]
    assert all(r.ok for r in out.answers) and out.verdict is not None
    # Two free-text answers about a video have no final value to count: the vote says so and picks neither.
    assert out.verdict.undecided and out.answer == "" and out.verdict.reasoning.startswith("No majority")
    assert out.analysis is not None and len(out.analysis.cuts) == 1
    sent = next(q for q in emulator_env.requests if q.model == "gemini-2.5-flash").body
    parts = sent["contents"][-1]["parts"]
    assert ("inline_data" in parts[0] or "inlineData" in parts[0]) and "text" in parts[-1]


def test_debate_on_answers_about_a_video_is_refused_before_any_question(vshell: InteractiveShell,
                                                                       emulator_env: Emulator, tmp_path: Path) -> None:
    # Debate asks the models to revise; a question about a video is asked once. Refused before anything is paid,
    # whether the flag says it or the session's %config does.
    clip = make_clip(tmp_path / "clip.mp4", scenes=[Scene(1.0)])
    line = f"--understand {clip} -p gemini:gemini-2.5-flash,gemini:gemini-2.5-pro"
    with pytest.raises(UsageError, match="--mode"):
        vshell.run_cell_magic("video", line + " --mode debate", "What happens?")
    vshell.run_line_magic("config", "FusionMagics.mode = 'debate'")
    try:
        with pytest.raises(UsageError, match="best-of or merge"):
            vshell.run_cell_magic("video", line, "What happens?")
    finally:
        vshell.run_line_magic("config", "FusionMagics.mode = 'best-of'")
    assert emulator_env.requests == []


def test_edit_revises_the_last_omni_clip(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=0))
    first = vshell.run_cell_magic("video", f"-p gemini:{OMNI} -o v", "A fox")
    second = vshell.run_cell_magic("video", "--edit v", "Make it slower, add rain")
    assert second.videos[0].ok and second.videos[0].model == f"gemini:{OMNI}"
    creates = [q.body for q in emulator_env.requests if q.family == "gemini-interactions" and q.method == "POST"]
    assert creates[-1]["previous_interaction_id"] == first.videos[0].job_id


@pytest.mark.parametrize(("line", "body", "message"), [
    ("--understand missing.mp4", "What?", "no such file"),
    ("--understand notvideo.mp4", "What?", "is not a video"),
    (f"-p gemini:{OMNI} --out-dir ../elsewhere", "A fox", "outside the working folder"),
    ("-p gemini:gemini-2.5-flash", "A fox", "not a video-generation model"),
    ("-p nosuch:model", "A fox", "unknown provider"),
    (f"-p gemini:{VEO} --seconds 4 --resolution 1080p", "A fox", "1080p"),
    (f"-p gemini:{OMNI} --aspect 4:3", "A fox", "--aspect"),
    (f"-p gemini:{VEO} --seconds 8 --budget 0.10", "A fox", "above --budget"),
    ("--image nothere.png", "A fox", "no such file"),
    (f"-p gemini:{OMNI}", "# NBVAL_IGNORE_OUTPUT\n", "needs a prompt"),
])
def test_bad_input_is_one_line_and_no_call(vshell: InteractiveShell, emulator_env: Emulator, line: str,
                                           body: str, message: str) -> None:
    Path("notvideo.mp4").write_text("this is not a video")
    with pytest.raises(UsageError, match=message) as info:
        vshell.run_cell_magic("video", line, body)
    assert "\n" not in str(info.value)
    assert emulator_env.requests == []


def test_budget_refusal_is_a_budget_error_under_raise_errors(vshell: InteractiveShell, emulator_env: Emulator,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSION_MAGIC_RAISE_ERRORS", "1")
    with pytest.raises(BudgetError):
        vshell.run_cell_magic("video", f"-p gemini:{VEO} --seconds 8 --budget 0.10", "A fox")
    assert emulator_env.requests == []


def test_estimate_needs_no_key_and_sends_nothing(vshell: InteractiveShell, emulator: Emulator) -> None:
    est = vshell.run_cell_magic("video", f"-p gemini:{VEO},gemini:{OMNI} --seconds 6 --estimate", "A fox")
    text = str(est)
    assert "$0.60" in text and "Total: $1.20" in text and emulator.requests == []


def test_list_shows_the_models_the_key_can_use(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    listing = vshell.run_line_magic("video", "list")
    models = set(listing.models["model"])
    assert {"local:frames", f"gemini:{VEO}", f"gemini:{OMNI}"} <= models
    assert any(m.startswith("fal:") for m in models)


def test_help_and_unknown_line_commands(vshell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    vshell.run_line_magic("video", "help")
    assert "--understand PATH_OR_URL" in capsys.readouterr().out
    with pytest.raises(UsageError, match="unknown command"):
        vshell.run_line_magic("video", "generate")


def test_the_python_api_runs_the_same_engine(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    import asyncio

    import fusion_magic

    monkeypatch.chdir(tmp_path)
    emulator_env.script(OMNI, VideoScript(polls=1))
    r = fusion_magic.video("A fox", models=[f"gemini:{OMNI}"], seconds=4, poll_s=0.01)
    assert isinstance(r, VideoResult) and r.videos[0].ok and r.videos[0].path is not None
    again = asyncio.run(fusion_magic.avideo("A fox", models=[f"gemini:{OMNI}"], seconds=4, poll_s=0.01))
    assert again.videos[0].reused and emulator_env.video_jobs(OMNI) == 1
    with pytest.raises(TypeError, match="unexpected keyword"):
        fusion_magic.video("A fox", model="x")  # type: ignore[call-arg]


@pytest.mark.parametrize(("words", "message"), [
    ("-t -5", "--timeout must be a positive number, not -5.0"),
    ("-t 0", "--timeout must be a positive number, not 0.0"),  # 0 is a value given, not the default
    ("--poll -1", "--poll must be a positive number, not -1.0"),
    ("--poll nan", "--poll must be a positive number"),
])
def test_resume_checks_its_options_as_video_does(vshell: InteractiveShell, emulator_env: Emulator, words: str,
                                                 message: str) -> None:
    """``%video resume`` takes --timeout and --poll from VideoOptions' declarations, checks and all: a bad value
    is one line and no call, never a wait that polls without pause."""
    (Path.cwd() / "videos").mkdir()
    with pytest.raises(UsageError, match=message) as info:
        vshell.run_line_magic("video", f"resume {words}")
    assert "\n" not in str(info.value)
    assert emulator_env.requests == []


def test_plan_resume_checks_timeout_and_poll(tmp_path: Path) -> None:
    from fusion_magic.api import plan_resume
    from fusion_magic.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--timeout must be a positive number, not -5"):
        plan_resume(tmp_path, timeout=-5)
    with pytest.raises(ConfigError, match="--poll must be a positive number, not -1"):
        plan_resume(tmp_path, poll_s=-1)
    assert plan_resume(tmp_path, timeout=5, poll_s=None).jobs == ()
