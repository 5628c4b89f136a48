"""A disk that fills up: a clip's download that cannot be written, and a run log that cannot be written, are one
clear line each; the run goes on, and the paid job stays resumable (its receipt keeps the job id).

The download's full disk is played by a child process whose file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ
ignored) is below the clip's size: every write past it fails as a write to a full disk does (an ``OSError``
from the file system), while the small receipts still fit. The run log's is ``/dev/full``, which refuses
every write with ENOSPC.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fusion_magic
from fusion_magic.api import plan_resume, start
from fusion_magic.calls.settings import Settings
from fusion_magic.core.state import State
from fusion_magic.testing import Emulator, ModelScript, VideoScript

VEO = "veo-3.1-fast-generate-preview"
LIMIT = 256 * 1024  # bytes any file of the child may grow to; the clip is bigger, the receipts are not

CHILD = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
import fusion_magic
r = fusion_magic.video("A paper boat in the rain", models=["gemini:{model}"], out_dir={out!r}, poll_s=0.02,
                       timeout=60)
(v,) = r.videos
print(v.status, "|", v.job_id, "|", v.error or v.note)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_download_onto_a_full_disk_is_one_line_and_the_job_stays_resumable(emulator_env: Emulator,
                                                                              tmp_path: Path) -> None:
    from fusion_magic.testing.video_script import made_clip

    clip = made_clip(2.0, (320, 180), False) + b"\0" * (4 * LIMIT)
    emulator_env.script(VEO, VideoScript(polls=0, clip=clip))
    out = tmp_path / "videos"
    env = {**os.environ, "FUSION_MAGIC_RUN_LOG": "off"}
    child = subprocess.run([sys.executable, "-c", CHILD.format(limit=LIMIT, model=VEO, out=str(out))], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-3000:]
    status, job_id, why = (part.strip() for part in child.stdout.strip().splitlines()[-1].split("|"))
    assert status in ("pending", "failed") and job_id != "None"
    assert "\n" not in why and "Traceback" not in child.stderr
    (side,) = out.glob("*.json")
    assert json.loads(side.read_text())["job"]["job_id"] == job_id  # the paid job's receipt is whole
    assert not list(out.glob("*.mp4"))  # no partial clip passes for the clip

    # Room again: the resume fetches the clip of the same job, nothing paid twice.
    result = start(plan_resume(out, poll_s=0.02, timeout=60)).result()
    (video,) = result.videos
    assert video.state is State.DONE and video.path is not None and video.path.stat().st_size == len(clip)
    assert emulator_env.video_jobs(VEO) == 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full is Linux's")
def test_a_run_log_on_a_full_disk_is_one_warning_and_the_run_goes_on(emulator_env: Emulator, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    emulator_env.script("a", ModelScript(reply="Paris."))
    full = tmp_path / "runs.sqlite"
    full.symlink_to("/dev/full")
    settings = Settings(run_log=str(full), max_retries=0)
    with caplog.at_level(logging.WARNING, logger="fusion_magic"):
        for _ in range(3):
            r = fusion_magic.fuse("Capital of France?", pool=["openai:a"], judge="vote", settings=settings)
            assert r.answer == "Paris."
    warnings = [rec.getMessage() for rec in caplog.records if "run log" in rec.getMessage()]
    assert len(warnings) == 1 and "cannot be written" in warnings[0]
