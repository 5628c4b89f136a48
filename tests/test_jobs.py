"""One job protocol: every run (fuse, rejudge, complete, video, resume, eval) is planned, then started through
``api.start``, logged in the run log the same way, and interrupted the same way; every result has the same
small surface (``calls.job.JobResult``); every magic waits through ``ipython.wait``."""

from __future__ import annotations

import _thread
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.api import (
    EvalJob,
    FusionJob,
    RunJob,
    VideoJob,
    plan_complete,
    plan_eval,
    plan_fuse,
    plan_rejudge,
    plan_resume,
    plan_video,
    start,
)
from fusion_magic.calls.job import JobResult, RunResult, RunStatus
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import CallCancelled
from fusion_magic.core.record import CallRecord
from fusion_magic.evaluation.options import EvalOptions
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.fusion.result import FusionResult
from fusion_magic.ipython.wait import CellInterrupted, wait_in_cell
from fusion_magic.testing import Emulator, Fault, ModelScript, VideoScript
from fusion_magic.videos.options import VideoOptions
from fusion_magic.videos.result import VideoResult

FAST = Settings(max_retries=0, timeout=20)
OMNI = "gemini-omni-1.2-flash"
QUESTIONS = pd.DataFrame({"id": ["q1", "q2"], "question": ["What is 2 + 2?", "What is 3 + 3?"],
                          "reference": ["4", "6"]})


def logged(run_id: str | None) -> dict[str, Any]:
    assert run_id is not None
    runs = fusion_magic.history(limit=50)
    return runs.set_index("run_id").loc[run_id].to_dict()  # type: ignore[no-any-return]


def wait_for(condition: Any) -> None:
    for _ in range(400):  # no time is asserted: this only bounds a broken test
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError("the condition never held")


def test_every_kind_is_planned_then_started_and_logged_alike(emulator_env: Emulator, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    emulator_env.script("a", ModelScript(reply="Final answer: 4"))
    emulator_env.script("b", ModelScript(faults=[Fault("status", status=500)]))
    emulator_env.script(OMNI, VideoScript(polls=0, clip_seconds=1.0))
    fused = plan_fuse("2+2?", FAST, FuseOptions(pool=("openai:a", "openai:b"), judge="vote"))
    jobs: list[RunJob[Any]] = [
        start(fused),
        start(plan_video("a fox", FAST, VideoOptions(models=(f"gemini:{OMNI}",)))),
        start(plan_eval(QUESTIONS, FAST, EvalOptions(pool=("openai:a",), strategies=("single",)))),
    ]
    assert [type(j) for j in jobs] == [FusionJob, VideoJob, EvalJob]
    results = [job.result() for job in jobs]
    for job, result in zip(jobs, results, strict=True):
        assert job.partial is result  # the result filled in place is the one returned
        assert isinstance(result, RunResult)
        surface: JobResult = result
        run = logged(surface.run_id)
        assert run["status"] == surface.status and len(surface.ledger) == len(surface.calls)
        assert surface.export(tmp_path / f"{run['kind']}.jsonl") == len(surface.calls)
    fuse_result, video_result, eval_result = results
    assert fuse_result.status == RunStatus.DEGRADED and fuse_result.degraded  # member b failed
    assert video_result.status == RunStatus.OK and eval_result.status == RunStatus.OK
    # A rejudge and one model's answer take the same path; neither fills a result in place.
    again = start(plan_rejudge(fuse_result, FAST, judge="vote"))
    one = start(plan_complete("openai:a", "2+2?"))
    assert again.partial is None and one.partial is None
    rejudged, answer = again.result(), one.result()
    assert isinstance(rejudged, FusionResult) and isinstance(answer, CallRecord) and answer.text == "Final answer: 4"
    assert logged(rejudged.run_id)["kind"] == "rejudge"
    kinds = fusion_magic.history(limit=10)["kind"].tolist()
    assert sorted(kinds) == ["complete", "eval", "fuse", "rejudge", "video"]
    with pytest.raises(TypeError, match="plan_"):
        start("2+2?")  # type: ignore[call-overload]


def test_an_evaluation_with_a_failed_row_is_degraded(emulator_env: Emulator) -> None:
    emulator_env.script("a", ModelScript(reply="Final answer: 4"))
    emulator_env.script("b", ModelScript(faults=[Fault("status", status=500)]))
    result = fusion_magic.evaluate(QUESTIONS, settings=FAST, pool=["openai:a", "openai:b"],
                                   strategies=["single:openai:b"])
    assert result.degraded and result.status == "degraded" and logged(result.run_id)["status"] == "degraded"


def test_a_cancelled_run_is_interrupted_in_its_partial_result_and_the_log(emulator_env: Emulator) -> None:
    emulator_env.script("hang", ModelScript(faults=[Fault("hang")]))
    job = start(plan_fuse("never answered", FAST, FuseOptions(pool=("openai:hang", "openai:hang"), judge="vote")))
    wait_for(lambda: len(emulator_env.requests) == 2)
    assert job.cancel()
    with pytest.raises(CallCancelled):
        job.result()
    partial = job.partial
    assert partial is not None and partial.interrupted and partial.status == RunStatus.INTERRUPTED
    runs = fusion_magic.history(limit=1)
    assert (runs["kind"].iloc[0], runs["status"].iloc[0]) == ("fuse", "interrupted")


def test_a_video_resume_is_a_plan_too(emulator_env: Emulator, tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    plan = plan_resume(tmp_path / "videos", FAST, timeout=5)
    assert plan.jobs == () and plan.skipped == () and plan.timeout == 5
    result = start(plan).result()
    assert isinstance(result, VideoResult) and result.videos == [] and result.status == "ok"


# ---- waiting in a cell ------------------------------------------------------------------------------------


def interrupted_wait(emulator: Emulator) -> tuple[Any, list[tuple[float, bool]]]:
    emulator.script("hang", ModelScript(faults=[Fault("hang")]))
    job = start(plan_fuse("never answered", FAST, FuseOptions(pool=("openai:hang",) * 2, judge="vote")))
    wait_for(lambda: len(emulator.requests) == 2)
    calls: list[tuple[float, bool]] = []

    def stopped(seconds: float, finished: bool) -> CellInterrupted:
        calls.append((seconds, finished))
        return CellInterrupted("stopped: one line", job.partial)

    threading.Timer(0.2, _thread.interrupt_main).start()
    return (lambda: wait_in_cell(job, (), stopped)), calls


def test_wait_in_cell_turns_an_interrupt_into_the_magics_line(emulator_env: Emulator) -> None:
    wait, calls = interrupted_wait(emulator_env)
    with pytest.raises(CellInterrupted, match=r"^stopped: one line$") as info:
        wait()
    assert isinstance(info.value, KeyboardInterrupt) and info.value._render_traceback_() == ["stopped: one line"]
    assert len(calls) == 1 and calls[0][1] is True  # the run unwound within the runner's wait
    assert info.value.partial.status == "interrupted"


def test_under_raise_errors_every_magic_shows_the_plain_interrupt(emulator_env: Emulator,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSION_MAGIC_RAISE_ERRORS", "1")
    wait, calls = interrupted_wait(emulator_env)
    with pytest.raises(KeyboardInterrupt) as info:
        wait()
    assert type(info.value) is KeyboardInterrupt and len(calls) == 1  # what was kept is kept all the same


def test_the_video_magic_waits_through_the_same_helper(vshell: InteractiveShell, emulator_env: Emulator,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """%%video honours FUSION_MAGIC_RAISE_ERRORS as %%fuse does (it used to show its one line regardless)."""
    monkeypatch.setenv("FUSION_MAGIC_RAISE_ERRORS", "1")
    emulator_env.script(OMNI, VideoScript(polls=10_000))
    threading.Timer(1.0, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt) as info:
        vshell.run_cell_magic("video", f"-p gemini:{OMNI} -o v", "A fox that never ends")
    assert type(info.value) is KeyboardInterrupt
    assert vshell.user_ns["v"].videos[0].status == "pending" and vshell.user_ns["v"].status == "interrupted"
