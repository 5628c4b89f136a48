"""Review findings for %%video: each test shows a bug a user would hit. All but the last two were fixed while
the review ran and now guard against regressions; the last two still fail (docstrings say what goes wrong)."""

from __future__ import annotations

import _thread
import json
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.ipython.video import VideoMagics
from fusion_magic.testing import Emulator, VideoScript

OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
FAL = "fal-ai/minimax/hailuo-02/standard/text-to-video"


def _magics(sh: InteractiveShell) -> VideoMagics:
    return next(c for c in sh.configurables if isinstance(c, VideoMagics))


def test_same_model_twice_keeps_two_clips_and_two_job_ids(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    """A pool naming a model twice is two paid jobs (tabs "#1", "#2"), but both share one request key, so one
    sidecar and one .mp4: the second job id overwrites the first and one paid clip is lost."""
    emulator_env.script(OMNI, VideoScript(polls=1))
    out = vshell.run_cell_magic("video", f"-p gemini:{OMNI},gemini:{OMNI}", "A fox")
    assert emulator_env.video_jobs(OMNI) == 2
    a, b = out.videos
    assert a.ok and b.ok
    assert a.path != b.path and a.sidecar != b.sidecar
    ids = {json.loads(p.read_text())["job"]["job_id"] for p in Path("videos").glob("*.json")}
    assert ids == {a.job_id, b.job_id} and len(ids) == 2


def test_resume_looks_in_the_configured_out_dir(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    """%config VideoMagics.out_dir moves the clips, but %video resume still looks in videos/."""
    _magics(vshell).out_dir = "clips"
    emulator_env.script(VEO, VideoScript(polls=40))
    out = vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2", "A slow fox")
    assert out.videos[0].status == "pending" and out.videos[0].sidecar.parent.name == "clips"  # type: ignore[union-attr]
    emulator_env.video.jobs(VEO)[0].script = VideoScript(polls=0)
    resumed = vshell.run_line_magic("video", "resume")
    assert [v.status for v in resumed.videos] == ["ok"]


def test_an_out_dir_that_cannot_be_created_is_refused_before_paying(vshell: InteractiveShell,
                                                                    emulator_env: Emulator) -> None:
    """--out-dir under a plain file passes the plan; the job is submitted (paid), then writing its sidecar
    raises an OSError traceback and the job id is lost."""
    Path("notes.txt").write_text("a file, not a folder")
    emulator_env.script(OMNI, VideoScript(polls=0))
    with pytest.raises(UsageError):
        vshell.run_cell_magic("video", f"-p gemini:{OMNI} --out-dir notes.txt/clips", "A fox")
    assert emulator_env.video_jobs(OMNI) == 0


def test_resume_is_not_blocked_by_one_sidecar_whose_key_is_gone(vshell: InteractiveShell, emulator_env: Emulator,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """One pending fal job whose FAL_KEY is no longer set makes every later %video resume a ConfigError, so
    the paid Omni job beside it can never be fetched."""
    emulator_env.script(OMNI, VideoScript(polls=40))
    emulator_env.script(FAL, VideoScript(polls=40))
    out = vshell.run_cell_magic("video", f"-p gemini:{OMNI},fal:{FAL} -t 0.2", "A slow fox")
    assert [v.status for v in out.videos] == ["pending", "pending"]
    for job in emulator_env.video.jobs():
        job.script = VideoScript(polls=0)
    monkeypatch.delenv("FAL_KEY")
    resumed = vshell.run_line_magic("video", "resume")
    omni = next(v for v in resumed.videos if OMNI in v.model)
    assert omni.ok


@pytest.mark.parametrize(("line", "real_usd"), [
    # Veo 3.1 Fast costs $0.30/s at 4k (reference §2.6); the estimate uses the 720p $0.10/s.
    (f"-p gemini:{VEO} --seconds 8 --resolution 4k --budget 1.00", 2.40),
    # Hailuo-02 makes 6 or 10 s (fal.MODELS); with no --seconds the estimate assumes 5 s.
    (f"-p fal:{FAL} --budget 0.25", 0.27),
])
def test_budget_is_a_hard_cap_on_what_the_run_really_costs(vshell: InteractiveShell, emulator_env: Emulator,
                                                          line: str, real_usd: float) -> None:
    """--budget is "a hard cap", but the estimate ignores the resolution's price and a model's real default
    length, so a run that will cost more than the cap is submitted."""
    with pytest.raises(UsageError, match="above --budget"):
        vshell.run_cell_magic("video", line, "A fox")
    assert emulator_env.requests == []


def test_an_interrupted_resume_is_one_line(vshell: InteractiveShell, emulator_env: Emulator,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C during %video resume ends in a bare KeyboardInterrupt traceback, unlike %%video's one line."""
    emulator_env.script(OMNI, VideoScript(polls=10_000))
    vshell.run_cell_magic("video", f"-p gemini:{OMNI} -t 0.2", "A fox that never ends")
    capsys.readouterr()
    threading.Timer(1.0, _thread.interrupt_main).start()
    vshell.run_cell("%video resume")
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "Traceback" not in text and "KeyboardInterrupt" not in text


def _slow_submit(monkeypatch: pytest.MonkeyPatch, *, before: float = 0.0, after: float = 0.0) -> dict[str, bool]:
    """Omni's submit with real-world latency: ``before`` the provider accepts the job, or ``after`` it
    accepted it (the response still on its way). Set the returned ``["slow"]`` False to drop the delay."""
    import asyncio

    from fusion_magic.providers.video.interactions import InteractionsProvider

    original = InteractionsProvider.submit
    switch = {"slow": True}

    async def submit(self, request):  # type: ignore[no-untyped-def]
        if switch["slow"]:
            await asyncio.sleep(before)
        job = await original(self, request)
        if switch["slow"]:
            await asyncio.sleep(after)
        return job

    monkeypatch.setattr(InteractionsProvider, "submit", submit)
    return switch


def test_an_interrupt_while_the_submit_answer_is_on_its_way_keeps_the_paid_job(
        vshell: InteractiveShell, emulator_env: Emulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the provider accepted the job but before its answer was read: the clip is shown
    "cancelled" (a final state), no sidecar is written, and the same cell again pays a second time."""
    emulator_env.script(OMNI, VideoScript(polls=0))
    switch = _slow_submit(monkeypatch, after=1.5)
    threading.Timer(0.7, _thread.interrupt_main).start()
    vshell.run_cell(f"%%video -p gemini:{OMNI} -o v\nA fox")
    assert emulator_env.video_jobs(OMNI) == 1
    shown = vshell.user_ns["v"].videos[0].status
    switch["slow"] = False
    vshell.run_cell_magic("video", f"-p gemini:{OMNI}", "A fox")
    assert emulator_env.video_jobs(OMNI) == 1  # re-attached, not paid twice
    assert shown == "pending"  # not "cancelled": the job was never cancelled at the provider


def test_the_same_cell_while_a_background_run_is_submitting_does_not_pay_twice(
        vshell: InteractiveShell, emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """--background, then the same cell again before the first submit came back: no sidecar yet, so the
    second run submits (and pays for) the same request again."""
    emulator_env.script(OMNI, VideoScript(polls=0))
    _slow_submit(monkeypatch, before=0.5)
    vshell.run_cell_magic("video", f"-p gemini:{OMNI} --background -o w", "A fox")
    vshell.run_cell_magic("video", f"-p gemini:{OMNI}", "A fox")
    vshell.user_ns["w"].result()
    assert emulator_env.video_jobs(OMNI) == 1


def test_new_does_not_throw_away_the_earlier_pending_job(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    """--new pays for a fresh clip but writes it to the same stem: the sidecar of the earlier, still pending
    (paid) job is overwritten, so that job can never be resumed (and an earlier finished clip's .mp4 is
    overwritten the same way)."""
    emulator_env.script(VEO, VideoScript(polls=40))
    first = vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2", "A slow fox")
    assert first.videos[0].status == "pending"
    vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2 --new", "A slow fox")
    assert emulator_env.video_jobs(VEO) == 2
    kept = {json.loads(p.read_text())["job"]["job_id"] for p in Path("videos").glob("*.json")}
    assert first.videos[0].job_id in kept


def test_the_same_cell_with_a_local_check_scores_its_reused_clip(vshell: InteractiveShell,
                                                                  emulator_env: Emulator) -> None:
    """Re-running a --check local:frames cell (the help's own example) reuses the clip but has no analysis
    for it: the check "fails", the result is degraded and nothing is marked best."""
    emulator_env.script(OMNI, VideoScript(polls=0, clip_seconds=4.0))
    first = vshell.run_cell_magic("video", f"-p gemini:{OMNI} --seconds 4 --check local:frames", "A fox")
    assert first.best is not None and not first.degraded
    again = vshell.run_cell_magic("video", f"-p gemini:{OMNI} --seconds 4 --check local:frames", "A fox")
    assert again.videos[0].reused
    assert again.best is not None and not again.degraded


def test_a_damaged_sidecar_does_not_break_resume(vshell: InteractiveShell, emulator_env: Emulator,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A sidecar whose job lacks a field (hand-edited, older writer) is "open", and reading its JobRef raises
    KeyError: %video resume ends in a traceback instead of skipping it with a line."""
    Path("videos").mkdir()
    Path("videos/old.json").write_text(json.dumps({
        "version": 1, "model": f"gemini:{OMNI}", "prompt": "A fox", "parameters": {}, "request_key": "x",
        "status": "pending", "job": {"job_id": "v1_abc"}}))
    vshell.run_cell("%video resume")
    shown = capsys.readouterr()
    assert "Traceback" not in shown.out + shown.err


def test_reattaching_is_not_reported_as_a_new_submission(vshell: InteractiveShell, emulator_env: Emulator,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The progress line says "submitted, job X" when the same cell re-attaches to its pending job: the
    user reads it as a second payment ("re-attached to" is only printed for a reused finished clip)."""
    emulator_env.script(VEO, VideoScript(polls=40))
    first = vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2", "A slow fox")
    emulator_env.video.jobs(VEO)[0].script = VideoScript(polls=0)
    capsys.readouterr()
    vshell.run_cell_magic("video", f"-p gemini:{VEO}", "A slow fox")
    err = capsys.readouterr().err
    assert emulator_env.video_jobs(VEO) == 1
    assert f"submitted, job {first.videos[0].job_id}" not in err


def test_resume_never_sends_the_fal_key_to_a_host_named_in_a_sidecar(vshell: InteractiveShell,
                                                                      emulator_env: Emulator) -> None:
    """fal polls whatever ``status_url`` the sidecar holds, with ``Authorization: Key ...``: a sidecar that
    came with a shared project folder (or a submit answer) naming another host gets the key."""
    import http.server

    seen: list[str | None] = []

    class Catch(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Catch)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        elsewhere = f"http://127.0.0.1:{server.server_address[1]}/q/requests/r1"
        Path("videos").mkdir()
        Path("videos/shared.json").write_text(json.dumps({
            "version": 1, "model": f"fal:{FAL}", "prompt": "A fox", "parameters": {}, "request_key": "x",
            "status": "pending", "job": {"protocol": "fal", "model": FAL, "job_id": "r1", "urls": {
                "status_url": elsewhere + "/status", "response_url": elsewhere,
                "cancel_url": elsewhere + "/cancel"}}}))
        vshell.run_line_magic("video", "resume -t 1")
    finally:
        server.shutdown()
        server.server_close()
    assert not any(seen), "the FAL key went to a host that is not fal's"


def test_resuming_two_jobs_of_one_model_shows_two_clips(vshell: InteractiveShell, emulator_env: Emulator,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Two cells left a Veo job pending each; %video resume labels both clips with the bare model name, and
    the progress printer and the widget view key clips by label: one "saved" line (the second clip's
    progress is read as a new submission), one tab."""
    emulator_env.script(VEO, VideoScript(polls=40))
    vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2", "A slow fox")
    vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2", "A slow owl")
    for job in emulator_env.video.jobs(VEO):
        job.script = VideoScript(polls=0)
    capsys.readouterr()
    resumed = vshell.run_line_magic("video", "resume")
    err = capsys.readouterr().err
    assert [v.status for v in resumed.videos] == ["ok", "ok"]
    assert err.count(": saved ") == 2, err
    assert len({v.label for v in resumed.videos}) == 2


def test_an_interrupt_while_waiting_for_another_run_stops_this_run(vshell: InteractiveShell, emulator_env: Emulator,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The same cell waits for a --background run of the same request (jobs._IN_FLIGHT); Ctrl-C during that
    wait is swallowed (contextlib.suppress(..., CancelledError)), so the interrupted run goes on by itself
    and, the other run's submit having failed, pays for a job after the user pressed Ctrl-C."""
    import time

    from fusion_magic.testing.script import Fault

    emulator_env.script(OMNI, VideoScript(polls=0, submit_faults=[Fault("status", status=500, times=1)]))
    _slow_submit(monkeypatch, before=1.0)
    vshell.run_cell_magic("video", f"-p gemini:{OMNI} --background -o w", "A fox")
    threading.Timer(0.4, _thread.interrupt_main).start()
    vshell.run_cell(f"%%video -p gemini:{OMNI} -o v\nA fox")
    time.sleep(1.5)
    assert emulator_env.video_jobs(OMNI) == 0  # nothing paid after Ctrl-C


def test_resume_while_a_background_run_follows_the_same_job(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    """%video resume does not know of this kernel's running jobs (jobs._IN_FLIGHT is only consulted by
    run_clip): it follows the same job as the --background run, both stream into the same fixed
    ``<clip>.mp4.part``, and one of them dies with a FileNotFoundError traceback from os.replace."""
    import time

    from fusion_magic.testing.video_script import made_clip

    clip = made_clip(2.0, (320, 180), False) + b"\0" * 8_000_000  # a few MB, so the downloads overlap
    emulator_env.script(VEO, VideoScript(polls=20, clip=clip))
    vshell.run_cell_magic("video", f"-p gemini:{VEO} --background -o w", "A fox")
    time.sleep(0.1)  # its receipt is written
    resumed = vshell.run_line_magic("video", "resume")
    background = vshell.user_ns["w"].result()
    assert background.videos[0].ok
    assert all(v.ok for v in resumed.videos)
    assert emulator_env.video_jobs(VEO) == 1


def test_two_new_runs_of_one_cell_keep_both_clips(vshell: InteractiveShell, emulator_env: Emulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """--new picks a free stem (jobs._free_stem) before it looks at _IN_FLIGHT: a second --new run started while
    the first is still submitting picks the same "-2" stem, waits for the first run to finish, then submits
    into that stem, overwriting the first run's sidecar and .mp4 (two paid clips, one file)."""
    emulator_env.script(OMNI, VideoScript(polls=0))
    vshell.run_cell_magic("video", f"-p gemini:{OMNI}", "A fox")
    _slow_submit(monkeypatch, before=0.5)
    vshell.run_cell_magic("video", f"-p gemini:{OMNI} --new --background -o w", "A fox")
    second = vshell.run_cell_magic("video", f"-p gemini:{OMNI} --new", "A fox")
    first = vshell.user_ns["w"].result()
    assert emulator_env.video_jobs(OMNI) == 3
    assert first.videos[0].path != second.videos[0].path
    assert len(list(Path("videos").glob("*.mp4"))) == 3


def test_an_interrupted_waiter_does_not_drop_the_guard_of_the_run_it_waited_for(
        vshell: InteractiveShell, emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_clip registers itself in _IN_FLIGHT *before* waiting for the run already there, replacing it. When
    that waiter is interrupted it ends, and the still-submitting --background run is no longer visible:
    the same cell once more finds no receipt and no run in flight, and pays a second time."""
    emulator_env.script(OMNI, VideoScript(polls=0))
    _slow_submit(monkeypatch, before=1.5)
    vshell.run_cell_magic("video", f"-p gemini:{OMNI} --background -o w", "A fox")
    threading.Timer(0.4, _thread.interrupt_main).start()
    vshell.run_cell(f"%%video -p gemini:{OMNI} -o v\nA fox")  # waits for w, then Ctrl-C
    vshell.run_cell_magic("video", f"-p gemini:{OMNI}", "A fox")
    vshell.user_ns["w"].result()
    assert emulator_env.video_jobs(OMNI) == 1


def test_resume_waits_for_the_run_of_this_kernel_that_follows_the_job(vshell: InteractiveShell,
                                                                      emulator_env: Emulator) -> None:
    """resume() asks jobs.in_flight(video.sidecar), but its sidecar paths are relative (Path("videos")/name,
    from %video resume's out dir as typed) while run_clip registers resolved absolute paths: the lookup never
    matches, and resume polls and downloads the same job a second time beside the --background run."""
    import time

    emulator_env.script(VEO, VideoScript(polls=20))
    vshell.run_cell_magic("video", f"-p gemini:{VEO} --background -o w", "A fox")
    time.sleep(0.1)  # its receipt is written
    resumed = vshell.run_line_magic("video", "resume")
    vshell.user_ns["w"].result()
    assert all(v.ok for v in resumed.videos)
    assert len([q for q in emulator_env.requests if q.family == "storage"]) == 1  # one download of one clip
