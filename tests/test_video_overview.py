"""Issue #17's %%video parts, each through the loopback emulator (real sockets, real MP4s) in a real shell:

1. the live view's overview: every job on one line (seat label, model, state word in its colour, elapsed time
   that advances on any job's poll, a saved clip's length and cost), read from the widget tree;
2. ``%video resume`` reports the prompt the clip was made from and runs the ``--check`` its run was started
   with (the receipt keeps both; never a key);
3. one word per state: a clip the provider's safety filter refused is "filtered" in its header, the ledger,
   the reports and the progress lines (never "blocked"); DEGRADED reads in one colour, bold, everywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

import pytest
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.core.record import CallRecord
from fusion_magic.core.state import State
from fusion_magic.ipython.video import VideoMagics
from fusion_magic.present.wording import DEGRADED_STYLE, clip_colour, colour, status_word
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.testing.registry import Family, Request, Route, register, unregister
from fusion_magic.videos.events import VideoRunStarted, VideoUpdated
from fusion_magic.videos.result import Video
from fusion_magic.videos.view import VideoView
from fusion_magic.view.video import JobLine

OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
FAL = "fal-ai/minimax/hailuo-02/standard/text-to-video"
PROMPT = "A paper boat on a rainy street"


def magics_of(shell: InteractiveShell) -> VideoMagics:
    return next(c for c in shell.configurables if isinstance(c, VideoMagics))


def wait_for(view: VideoView, ok: object, what: str, timeout: float = 20.0) -> list[JobLine]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = view.overview()
        if callable(ok) and ok(lines):
            return lines
        time.sleep(0.02)
    raise AssertionError(f"the overview never showed {what}: {view.text()}")


# --- 1. the overview -------------------------------------------------------------------------------------


def test_the_overview_shows_every_job_at_once_while_the_cell_runs(vshell: InteractiveShell,
                                                                  emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=2, clip_seconds=1.5))
    emulator_env.script(VEO, VideoScript(polls=1, outcome="filtered", reason="person detected"))
    emulator_env.script(FAL, VideoScript(polls=10_000))
    magics = magics_of(vshell)
    magics.view, magics.poll = "widgets", 0.05
    vshell.run_cell_magic("video", f"-p gemini:{OMNI},gemini:{VEO},fal:{FAL} -t 30 --background -o job", PROMPT)
    view = magics.last_view
    assert isinstance(view, VideoView)
    try:
        # The Omni clip saved, Veo's filtered, fal's still running: all three on screen at once.
        lines = wait_for(view, lambda ls: len(ls) == 3 and [x.word for x in ls] == ["saved", "filtered", "running"],
                         "saved, filtered and running together")
        omni, veo, fal = lines
        assert [x.model for x in lines] == [f"gemini:{OMNI}", f"gemini:{VEO}", f"fal:{FAL}"]
        assert [x.label for x in lines] == [p.video.label for p in view.clips.values()]
        assert omni.colour == clip_colour(State.DONE) and veo.colour == clip_colour(State.FILTERED)
        assert "1.5 s clip" in omni.details and any(d.startswith("$") for d in omni.details)
        assert veo.details == ("person detected",)
        # fal's elapsed time advances while it waits at the provider: its own polls re-render the overview,
        # and the others' lines (finished) keep their final figures.
        first = fal.elapsed
        assert first is not None
        later = wait_for(view, lambda ls: (ls[2].elapsed or 0) >= first + 0.3, "fal's elapsed time advance")
        assert later[0].elapsed == omni.elapsed and later[0].details == omni.details

        # The widget tree: above the tabs (which stay one per clip), a row per job with its word in its colour.
        status = view.status.value
        assert view.widget.children[0] is view.status and view.titles[:3] == tuple(x.label for x in lines)
        for line in lines:
            assert f'<b>{line.label}</b>' in status and f">{line.model}</code>" in status
            assert f'<span style="color:{line.colour};font-weight:bold">{line.word}</span>' in status
        text = view.text().splitlines()
        assert text[0].startswith("fusion_magic: 1 of 3 clips ready") and len(text) == 4
        assert text[3].split()[:3] == ["minimax/hailuo-02/standard", f"fal:{FAL}", "running"]
    finally:
        emulator_env.video.jobs(FAL)[0].script = VideoScript(polls=0)
        vshell.user_ns["job"].result()
    final = view.overview()
    assert [x.word for x in final] == ["saved", "filtered", "saved"]


def test_an_event_for_one_clip_advances_every_running_clips_elapsed_time() -> None:
    """No timer of the view's own: a poll of any job (its ``VideoUpdated``) re-renders every line."""
    now = [100.0]
    view = VideoView(clock=lambda: now[0])
    a, b = Video("gemini:veo-3.1-generate-preview", "veo", "p"), Video("fal:fal-ai/kling-video/v2.1", "kling", "p")
    view.handle(VideoRunStarted("p", (a, b)))
    for v in (a, b):
        v.status, v.started = "running", now[0]
        view.handle(VideoUpdated(v))
    assert "0 s" in view.status.value
    now[0] += 12
    view.handle(VideoUpdated(a))  # only veo's job answered a poll
    assert [line.elapsed for line in view.overview()] == [12.0, 12.0]
    assert view.status.value.count(">12 s<") == 2


# --- 2. resume keeps the prompt and the check --------------------------------------------------------------


def test_resume_reports_the_original_prompt_and_runs_the_same_check(vshell: InteractiveShell,
                                                                    emulator_env: Emulator,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script(VEO, VideoScript(polls=10_000))
    out = vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2 --check local:frames -o v", PROMPT)
    (clip,) = out.videos
    assert clip.state is State.PENDING and not out.checks
    assert clip.sidecar is not None
    written = clip.sidecar.read_text()
    side = json.loads(written)
    assert side["prompt"] == PROMPT and side["check"] == "local:frames"
    assert not any(key in written for key in Emulator.test_keys().values())

    job = emulator_env.video.job(clip.job_id.rsplit("/", 1)[-1])  # type: ignore[union-attr]
    assert job is not None
    job.script = VideoScript(polls=0)
    capsys.readouterr()
    resumed = vshell.run_line_magic("video", "resume -o w")
    printed = capsys.readouterr().err
    (again,) = resumed.videos
    assert again.ok and again.prompt == PROMPT and resumed.prompt == PROMPT
    assert [r.model for r in resumed.checks] == ["local:frames"] and resumed.checks[0].ok
    assert again.spec is not None and again.best
    text = resumed.to_text()
    assert f"prompt: {PROMPT}" in text and "%video resume" not in text.split("Cost & latency")[0]
    assert "Spec check" in text and f"prompt: {PROMPT}" in resumed.to_html()
    assert "resuming 1 clip" in printed and "checked by local:frames" in printed
    assert emulator_env.video_jobs(VEO) == 1  # re-attached, not paid twice


def test_resume_of_jobs_from_two_prompts_says_each_clips_own(vshell: InteractiveShell,
                                                              emulator_env: Emulator) -> None:
    emulator_env.script(VEO, VideoScript(polls=10_000))
    for prompt in ("A red kite", "A blue kite"):
        vshell.run_cell_magic("video", f"-p gemini:{VEO} -t 0.2", prompt)
    for job in emulator_env.video.jobs(VEO):
        job.script = VideoScript(polls=0)
    resumed = vshell.run_line_magic("video", "resume")
    assert sorted(v.prompt for v in resumed.videos) == ["A blue kite", "A red kite"]
    text, html = resumed.to_text(), resumed.to_html()
    for prompt in ("A red kite", "A blue kite"):
        assert f"prompt: {prompt}" in text and f"prompt: {prompt}" in html


def test_resume_whose_checker_has_no_key_fetches_the_clip_and_says_why_it_is_unchecked(
        vshell: InteractiveShell, emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    checker = "gemini:gemini-2.5-flash"
    emulator_env.script(FAL, VideoScript(polls=10_000))
    out = vshell.run_cell_magic("video", f"-p fal:{FAL} -t 0.2 --check {checker}", PROMPT)
    assert json.loads(out.videos[0].sidecar.read_text())["check"] == checker  # type: ignore[union-attr]
    emulator_env.video.jobs(FAL)[0].script = VideoScript(polls=0)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    resumed = vshell.run_line_magic("video", "resume")
    assert resumed.videos[0].ok and not resumed.checks
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("not checking"))
    assert line.startswith(f"not checking with {checker} (the clips are fetched unchecked): ")


# --- 3. one word per state ------------------------------------------------------------------------------


class _RefusingQueue(Family):
    """A fal queue whose submit the content filter refuses (HTTP 422, ``content_policy_violation``): the
    scripted emulator refuses only at the result."""

    name = "fal-refusing-test"

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/falrefuses/{model:path}", self.submit, auth=False)]

    async def submit(self, req: Request) -> None:
        await req.json(422, {"detail": [{"loc": ["body", "prompt"], "msg": "the prompt was flagged",
                                         "type": "content_policy_violation"}]})


@pytest.fixture
def refusing(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    family = _RefusingQueue()
    register(family)
    monkeypatch.setenv("FAL_BASE_URL", f"{emulator_env.url}/falrefuses")
    yield
    unregister(family.name)


def test_a_clip_refused_at_submission_is_filtered_everywhere(vshell: InteractiveShell, refusing: None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    magics = magics_of(vshell)
    magics.view = "widgets"
    out = vshell.run_cell_magic("video", f"-p fal:{FAL}", PROMPT)
    (clip,) = out.videos
    assert clip.state is State.FILTERED and clip.reason and "flagged" in clip.reason
    assert clip.cost_usd == 0.0 and clip.error is None
    assert list(out.ledger["status"]) == ["filtered"]
    view = magics.last_view
    assert view.clips[clip.label].status_text().startswith("filtered · ")
    assert view.overview()[0].word == "filtered"
    assert "blocked" not in out.to_text() and "blocked" not in out.to_html()
    assert "DEGRADED: 1 of 1 clip filtered: " in " ".join(out.to_text().split())


def test_a_filtered_state_reads_filtered_first_in_every_word() -> None:
    r = CallRecord(model="gemini:veo-3.1-generate-preview", role="generate", status="filtered", error="person")
    assert status_word(r) == "filtered (withheld by the provider's filter): person"
    assert colour(r) == clip_colour(State.FILTERED)


def test_degraded_reads_in_one_colour_bold_in_the_video_report_and_view(vshell: InteractiveShell,
                                                                         emulator_env: Emulator) -> None:
    emulator_env.script(VEO, VideoScript(polls=1, outcome="failed"))
    magics = magics_of(vshell)
    magics.view = "widgets"
    out = vshell.run_cell_magic("video", f"-p gemini:{VEO}", PROMPT)
    assert out.degraded
    assert DEGRADED_STYLE == "color:#c62828;font-weight:bold"  # the fuse view's DEGRADED colour, and bold
    assert f'<p style="{DEGRADED_STYLE}">DEGRADED: ' in out.to_html()
    assert f'<span style="{DEGRADED_STYLE}">DEGRADED: ' in magics.last_view.status.value
