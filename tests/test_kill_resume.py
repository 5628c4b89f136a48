"""A kernel killed (SIGKILL) mid-job and mid-thread, then a new process that resumes: nothing lost, nothing paid
twice. (A batch evaluation killed mid-batch: ``tests/test_batch_kill_resume.py``.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fusion_magic.api import plan_resume, start
from fusion_magic.core.state import State
from fusion_magic.testing import Emulator, Fault, ModelScript, VideoScript

VEO = "veo-3.1-fast-generate-preview"

VIDEO_CHILD = """
import fusion_magic
fusion_magic.video("A paper boat in the rain", models=["gemini:{model}"], out_dir={out!r}, poll_s=0.05,
                   timeout=120)
"""

THREAD_CHILD = """
import sys
import fusion_magic
from fusion_magic.calls.settings import Settings
settings = Settings(cache="on", max_retries=0, timeout=60)
first = fusion_magic.fuse("Name a colour.", pool=["openai:a"], judge="vote", settings=settings)
print("first", first.answer, flush=True)
second = first.ask("Why that one?", settings=settings)
print("second", second.answer, flush=True)
"""


def wait_until(ok, what: str, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_kernel_killed_mid_video_job_resumes_in_a_new_process_without_paying_again(
        emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script(VEO, VideoScript(polls=100_000))  # runs until the test lets it finish
    out = tmp_path / "videos"
    child = subprocess.Popen([sys.executable, "-c", VIDEO_CHILD.format(model=VEO, out=str(out))],
                             env=dict(os.environ), cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        # The job was accepted and its receipt (the sidecar beside the clip-to-be) holds its id.
        def accepted() -> bool:
            return any(json.loads(p.read_text()).get("job", {}).get("job_id") for p in out.glob("*.json"))
        wait_until(lambda: out.is_dir() and accepted(), "the job's sidecar never held its id")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert emulator_env.video_jobs(VEO) == 1

    for job in emulator_env.video.jobs():  # it finishes at the provider while nobody waits
        job.script = VideoScript(polls=0)
    result = start(plan_resume(out, poll_s=0.02, timeout=60)).result()
    (clip,) = result.videos
    assert clip.state is State.DONE and clip.path is not None and clip.path.stat().st_size > 0
    assert emulator_env.video_jobs(VEO) == 1  # fetched, not paid for again


def test_a_kernel_killed_mid_thread_loses_no_turn_that_arrived(emulator_env: Emulator, tmp_path: Path) -> None:
    """The first turn arrived and was recorded (run log, cache); the follow-up was in flight when the kernel died.
    In a new process the same thread asked again takes the first turn from the cache (not paid again) and asks
    only the follow-up."""

    def reply(body):  # type: ignore[no-untyped-def]
        return "Blue." if len(body["messages"]) == 1 else "Because the sky is."

    # The second request (the follow-up) hangs once: the kill comes while it is in flight.
    emulator_env.script("a", ModelScript(reply=reply, faults=[Fault(kind="hang", skip=1, times=1)]))
    env = {**os.environ, "FUSION_MAGIC_CACHE_DIR": str(tmp_path / "cache"),
           "FUSION_MAGIC_RUN_LOG": str(tmp_path / "runs.sqlite")}
    child = subprocess.Popen([sys.executable, "-c", THREAD_CHILD], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith("first Blue.")
        wait_until(lambda: len(chat_requests(emulator_env)) == 2, "the follow-up was never sent")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        if child.stdout is not None:
            child.stdout.close()

    again = subprocess.run([sys.executable, "-c", THREAD_CHILD], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.splitlines() == ["first Blue.", "second Because the sky is."]
    # The first turn came from the cache; only the follow-up was asked again.
    assert len(chat_requests(emulator_env)) == 3


def chat_requests(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests if r.path.endswith("/chat/completions")]


def test_a_kernel_killed_mid_download_resumes_without_a_second_job(emulator_env: Emulator, tmp_path: Path) -> None:
    """The job finished and its clip was streaming in (slowly) when the kernel died: the resume downloads the clip
    from the finished job, no second job, and the partial file never passes for the clip."""
    from fusion_magic.testing.video_script import DownloadFault

    emulator_env.script(VEO, VideoScript(polls=0, download_faults=[DownloadFault("drip", drip_s=0.05, times=1)]))
    out = tmp_path / "videos"
    child = subprocess.Popen([sys.executable, "-c", VIDEO_CHILD.format(model=VEO, out=str(out))],
                             env=dict(os.environ), cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(emulator_env.video.downloads(name) for name in _blobs(emulator_env)),
                   "the clip's download never started")
        time.sleep(0.3)  # a few dripped bytes in
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert emulator_env.video_jobs(VEO) == 1
    result = start(plan_resume(out, poll_s=0.02, timeout=60)).result()
    (clip,) = result.videos
    assert clip.state is State.DONE and clip.path is not None
    assert clip.path.read_bytes()[4:8] == b"ftyp"  # a whole MP4, not the dripped start
    assert emulator_env.video_jobs(VEO) == 1  # the finished job's clip, fetched: not paid again


def _blobs(emu: Emulator) -> list[str]:
    return [job.blob for job in emu.video.jobs() if getattr(job, "blob", None)]
