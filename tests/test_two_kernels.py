"""Several kernels, one working folder: two processes (and two background runs in one) writing the same run log
and the same response cache at once lose no row and tear no file; a corrupted cache entry is skipped with one
line and the model asked instead."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.testing import Emulator, ModelScript

RUNS = 12  # per process
CHILD = """
import sys
import fusion_magic
from fusion_magic.calls.settings import Settings
settings = Settings(cache="on", max_retries=0, timeout=20)
who = sys.argv[1]
for i in range({runs}):
    # Half the prompts are shared by both processes (the same cache entries written at once), half their own.
    prompt = f"shared question {{i}}" if i % 2 == 0 else f"{{who}}'s question {{i}}"
    fusion_magic.fuse(prompt, pool=["openai:a", "anthropic:b"], judge="vote", settings=settings)
print("done", who)
"""


def test_two_processes_share_the_run_log_and_the_cache_without_losing_or_tearing(
        emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("a", ModelScript(reply="Paris."))
    emulator_env.script("b", ModelScript(reply="Paris."))
    run_log = tmp_path / "runs.sqlite"
    cache = tmp_path / "cache"
    env = {**os.environ, "FUSION_MAGIC_RUN_LOG": str(run_log), "FUSION_MAGIC_CACHE_DIR": str(cache)}
    code = CHILD.format(runs=RUNS)
    children = [subprocess.Popen([sys.executable, "-c", code, who], env=env, cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for who in ("left", "right")]
    outs = [child.communicate(timeout=180) for child in children]
    for child, (out, err) in zip(children, outs, strict=True):
        assert child.returncode == 0, err[-3000:]
        assert out.strip().startswith("done")

    with sqlite3.connect(run_log) as conn:
        runs = conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        calls = conn.execute("SELECT COUNT(*), COUNT(finished_at), SUM(status = 'ok') FROM calls").fetchone()
    assert runs == [("ok", 2 * RUNS)]  # every run of both processes, finished
    assert calls[0] == calls[1] == calls[2] == 2 * RUNS * 2  # two members a run, each written when it ended
    entries = list(cache.rglob("*.json"))
    assert not list(cache.rglob("*.tmp"))  # no write left half done
    for entry in entries:
        data = json.loads(entry.read_text(encoding="utf-8"))  # none torn
        assert data["text"] == "Paris."
    # Shared prompts are one entry per model however many processes wrote them; own prompts one each.
    assert len(entries) == 2 * (RUNS // 2 + 2 * (RUNS // 2))


def test_two_background_runs_in_one_kernel_share_the_folder(emulator_env: Emulator, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    emulator_env.script("a", ModelScript(reply="Paris.", ttft_s=0.2))
    emulator_env.script("b", ModelScript(reply="Lyon.", ttft_s=0.2))
    monkeypatch.setenv("FUSION_MAGIC_CACHE_DIR", str(tmp_path / "cache"))
    settings = Settings(cache="on", max_retries=0, timeout=20)
    jobs = [fusion_magic.fuse(f"question {i}", pool=["openai:a", "anthropic:b"], judge="vote", settings=settings,
                              background=True) for i in range(4)]
    results = [job.result(timeout=60) for job in jobs]
    assert all(r.n_ok == 2 for r in results)
    run_ids = {r.run_id for r in results}
    assert len(run_ids) == 4 and None not in run_ids
    history = fusion_magic.history(limit=10)
    assert run_ids <= set(history["run_id"])
    assert set(history[history["run_id"].isin(run_ids)]["calls"]) == {2}


def test_a_corrupted_cache_entry_is_skipped_with_one_line_and_the_model_asked(
        emulator_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    emulator_env.script("a", ModelScript(reply="Paris."))
    cache = tmp_path / "cache"
    monkeypatch.setenv("FUSION_MAGIC_CACHE_DIR", str(cache))
    settings = Settings(cache="on", max_retries=0, timeout=20)
    fusion_magic.fuse("Capital of France?", pool=["openai:a"], judge="vote", settings=settings)
    (entry,) = cache.rglob("*.json")
    entry.write_text('{"text": "Par', encoding="utf-8")  # a torn write by some other tool
    asked = len(emulator_env.requests)
    with caplog.at_level(logging.WARNING, logger="fusion_magic"):
        again = fusion_magic.fuse("Capital of France?", pool=["openai:a"], judge="vote", settings=settings)
    assert again.answer == "Paris." and len(emulator_env.requests) == asked + 1
    lines = [r.getMessage() for r in caplog.records if "bad entry" in r.getMessage()]
    assert len(lines) == 1 and "Par" not in lines[0].split("(")[0]
    assert json.loads(entry.read_text(encoding="utf-8"))["text"] == "Paris."  # recorded afresh


VIDEO_CHILD = """
import fusion_magic
r = fusion_magic.video("A paper boat in the rain", models=["gemini:{model}"], out_dir={out!r}, poll_s=0.05,
                       timeout=120)
print("|".join(f"{{v.status}}:{{v.job_id}}:{{v.path}}" for v in r.videos))
"""


def test_two_processes_asking_for_the_same_clip_in_one_folder_pay_once(emulator_env: Emulator,
                                                                        tmp_path: Path) -> None:
    from fusion_magic.testing import VideoScript

    model = "veo-3.1-fast-generate-preview"
    emulator_env.script(model, VideoScript(polls=3))
    out = tmp_path / "videos"
    code = VIDEO_CHILD.format(model=model, out=str(out))
    children = [subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [child.communicate(timeout=180) for child in children]
    for child, (_, err) in zip(children, outs, strict=True):
        assert child.returncode == 0, err[-3000:]
    lines = [o.strip().splitlines()[-1] for o, _ in outs]
    assert emulator_env.video_jobs(model) == 1, lines  # one job paid for, whichever kernel asked first
    statuses = {line.split(":", 1)[0] for line in lines}
    assert statuses == {"ok"}, lines
    clips = list(out.glob("*.mp4"))
    sidecars = list(out.glob("*.json"))
    assert len(clips) == 1 and len(sidecars) == 1
    side = json.loads(sidecars[0].read_text(encoding="utf-8"))  # whole, not torn, its job id kept
    assert side["job"]["job_id"] and side["status"] == "ok"
