"""A kernel stays flat: what the call layer keeps per run is let go, so hundreds of cells hold no more than a few.

``bench/bench_flat.py`` measures the whole kernel (memory, sockets, tasks, threads, processes over 200 ``%%fuse``
cells); these tests pin the leaks it found in ``calls/`` one by one, by the memory each piece still holds
(``tracemalloc``, counted in bytes: no time is asserted).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from fusion_magic.calls import runlog as runlog_module
from fusion_magic.calls.runlog import RunLog
from fusion_magic.core.events import CallFinished, emit
from fusion_magic.core.record import CallRecord
from fusion_magic.providers.base import REDACTED

EXPLICIT = "explicit-key-0123456789abcdef"


def held_by_runlog() -> int:
    """Bytes still allocated from lines of calls/runlog.py (tracemalloc must be tracing)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, runlog_module.__file__)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_a_run_log_holds_nothing_in_memory_per_run(tmp_path: Path) -> None:
    # The kernel's one RunLog (api._LOGS) lives as long as the kernel and sees every run: it kept an entry per
    # run (the run's explicit keys, by run id) that nothing ever removed.
    log = RunLog(tmp_path / "runs.sqlite")

    def runs(n: int) -> None:
        for i in range(n):
            # Half with an explicit key (a script's Settings(keys=...)), half without (a kernel's %%fuse cells).
            run_id = log.start_run("fuse", f"question {i}", {"pool": ["openai:a"]},
                                   secrets=[EXPLICIT] if i % 2 else ())
            log.finish_run(run_id, "ok", 0.1, "4")

    runs(50)  # the connection, the schema and sqlite's statement cache are made once
    tracemalloc.start()
    try:
        runs(50)
        before = held_by_runlog()
        runs(1000)
        after = held_by_runlog()
    finally:
        tracemalloc.stop()
        log.close()
    # 1,000 runs: an entry per run held ~100 bytes each; a few bytes of slack for sqlite's and the allocator's own.
    assert after - before < 4_000, f"the run log holds {after - before} bytes more after 1,000 runs"


def test_a_late_call_is_redacted_of_its_runs_key_after_later_runs(tmp_path: Path) -> None:
    # A member that answers after its run finished (a late member) is written then; the run's explicit key must
    # still be redacted from it, also when later runs (without that key) started and finished in between.
    log = RunLog(tmp_path / "runs.sqlite")
    run_id = log.start_run("fuse", "q", {}, secrets=[EXPLICIT])
    log.finish_run(run_id, "ok", 0.1, "done")
    for _ in range(3):
        later = log.start_run("fuse", "another question", {})
        log.finish_run(later, "ok", 0.1, None)
    late = CallRecord(model="openai:a", call_id=1, status="auth", text=f"late: {EXPLICIT}",
                      error=f"Incorrect API key provided: {EXPLICIT}")
    emit([log.listener(run_id)], CallFinished(late))
    [call] = log.calls(run_id).to_dict("records")
    log.close()
    assert call["text"] == f"late: {REDACTED}"
    assert call["error"] == f"Incorrect API key provided: {REDACTED}"
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("runs.sqlite"))
    assert EXPLICIT.encode() not in raw
