"""A batch evaluation whose process is killed (SIGKILL) once every provider accepted its batch, then resumed in a
new process (``fusion_magic.resume_evaluation``): every row complete, and no batch, no request, created twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from test_batch_eval import JUDGE, PRICES, QUESTIONS, A, B, C, D, script

from fusion_magic.calls.receipts import Receipts
from fusion_magic.calls.runlog import RunLog
from fusion_magic.calls.settings import Settings
from fusion_magic.evaluation import plan_evaluation
from fusion_magic.testing import Emulator

CHILD = """
import json, sys
import fusion_magic
from fusion_magic.calls.settings import Settings
settings = Settings(max_retries=0, timeout=20, rounds=1, prices={prices})
if sys.argv[1] == "start":
    fusion_magic.evaluate({source!r}, settings=settings, pool={pool!r}, judge={judge!r},
                          strategies=["single", "best-of"], seed=7, batch=True, poll_s=0.05)
else:
    r = fusion_magic.resume_evaluation(settings=settings)
    print(json.dumps({{"rows": len(r.entries), "errors": int(r.rows["error"].notna().sum()),
                      "reattached": r.batch.reattached, "submitted": r.batch.submitted,
                      "accuracy": {{k: float(v) for k, v in r.summary.set_index("strategy")["accuracy"].items()}}}}))
"""


def test_a_killed_batch_evaluation_resumes_in_a_new_process_paying_nothing_twice(
        emulator_env: Emulator, tmp_path: Path) -> None:
    emulator = emulator_env
    script(emulator)
    source = tmp_path / "questions.csv"
    QUESTIONS.to_csv(source, index=False)
    run_log = tmp_path / "runs.sqlite"
    code = CHILD.format(prices=PRICES, source=str(source), pool=[A, B, C, D], judge=JUDGE)
    env = {**os.environ, "FUSION_MAGIC_RUN_LOG": str(run_log)}  # emulator_env: its URLs and test keys
    emulator.batches.hold()  # the batches stay in progress: the kill comes while the provider works on them

    errors = tmp_path / "child.err"
    with errors.open("wb") as err:
        child = subprocess.Popen([sys.executable, "-c", code, "start"], env=env, cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=err)
    settings = Settings(max_retries=0, timeout=20, rounds=1, prices=PRICES, run_log=str(run_log))
    try:
        plan = plan_evaluation(source, settings, pool=[A, B, C, D], judge=JUDGE, strategies=["single", "best-of"],
                               seed=7, batch=True, poll_s=0.05)
        receipts = Receipts(RunLog(run_log), plan.identity)
        deadline = time.monotonic() + 60
        # Every provider has accepted its batch, and the receipts say so (batch ids written).
        while not (emulator.batches.creations() == 4 and
                   sum(1 for r in receipts.open_receipts() if r.batch_id) == 4):
            assert child.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, "the four batches were not all accepted within 60 s"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert emulator.batches.creations() == 4

    emulator.batches.release()
    resumed = subprocess.run([sys.executable, "-c", code, "resume"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert out["rows"] == 4 * 5 and out["errors"] == 0  # four singles and best-of, every question
    assert out["reattached"] == 4  # the four accepted batches, fetched, not sent again
    assert out["submitted"] == 1  # only the judges' wave, which the killed process never reached
    # The provider saw each request once: no batch, and no request in any batch, created twice.
    assert emulator.batches.creations() == 5
    for family in ("openai", "anthropic", "gemini", "openrouter"):
        ids = emulator.batches.submitted_ids(family)
        assert ids and max(Counter(ids).values()) == 1, family
    assert out["accuracy"]["best-of"] == 1.0
    assert Receipts(RunLog(run_log), plan.identity).open_receipts() == []
