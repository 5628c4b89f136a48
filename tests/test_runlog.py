"""The run log: every run and call in SQLite as it happens, readable from another process after a kill."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import fusion_magic
from fusion_magic.calls.runlog import CALL_COLUMNS, DEFAULT_NAME, EXPORT_COLUMNS, RunLog, default_path
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.core.events import CallDelta, CallFinished, CallStarted, emit
from fusion_magic.core.record import CallRecord
from fusion_magic.providers.base import REDACTED
from fusion_magic.testing import Emulator, Fault, ModelScript

FAST = Settings(max_retries=0, timeout=20)


def row(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows read straight from the file through a read-only connection of the test's own."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_calls_are_written_when_they_start_and_completed_when_they_finish(tmp_path: Path) -> None:
    log = RunLog(tmp_path / DEFAULT_NAME)
    assert not log.path.exists()  # nothing is opened until the first write
    run_id = log.start_run("fuse", "What is 6 x 7?", {"pool": ("openai:a", "openai:b"), "mode": "best-of"})
    listener = log.listener(run_id)
    a = CallRecord(model="openai:a", label="A", call_id=1, status="waiting")
    b = CallRecord(model="openai:b", label="B", call_id=2, status="waiting")
    emit([listener], CallStarted(a))
    emit([listener], CallStarted(b))
    started = row(log.path, "SELECT call_id, status, text, started_at, finished_at FROM calls ORDER BY call_id")
    assert [(r[0], r[1], r[2], r[4]) for r in started] == [(1, "waiting", "", None), (2, "waiting", "", None)]
    assert all(r[3] for r in started)

    a.text, a.status = "42", "streaming"
    emit([listener], CallDelta(a, "42"))  # deltas are not written: the text lands when the call finishes
    assert row(log.path, "SELECT status, text FROM calls WHERE call_id = 1") == [("waiting", "")]

    a.status, a.input_tokens, a.output_tokens, a.cost_usd, a.cost_source = "ok", 10, 2, 0.0015, "provider"
    a.latency_s, a.ttft_s, a.attempts, a.request_id = 0.8, 0.1, 1, "req-1"
    emit([listener], CallFinished(a))
    b.status, b.error, b.latency_s = "timeout", "no complete answer within 5s", 5.0
    emit([listener], CallFinished(b))

    calls = log.calls(run_id)
    assert list(calls.columns) == list(CALL_COLUMNS)
    first, second = calls.to_dict("records")
    assert (first["status"], first["text"], first["input_tokens"], first["output_tokens"]) == ("ok", "42", 10, 2)
    assert (first["cost_usd"], first["request_id"], first["label"], first["model"]) == (0.0015, "req-1", "A",
                                                                                        "openai:a")
    assert first["started_at"] == started[0][3] and first["finished_at"]  # the start time is kept
    assert (second["status"], second["error"]) == ("timeout", "no complete answer within 5s")

    log.finish_run(run_id, "degraded", 5.2, "42")
    [run] = log.runs().to_dict("records")
    assert (run["run_id"], run["kind"], run["status"], run["wall_s"], run["summary"]) == (
        run_id, "fuse", "degraded", 5.2, "42")
    assert json.loads(run["options"]) == {"mode": "best-of", "pool": ["openai:a", "openai:b"]}
    assert run["prompt"] == "What is 6 x 7?" and run["finished_at"]


def test_a_call_reported_only_when_finished_and_an_unnumbered_one_are_kept(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "runs.sqlite")
    run_id = log.start_run("rejudge", "q", {})
    listener = log.listener(run_id)
    earlier = CallRecord(model="openai:a", call_id=1, status="ok", text="4", latency_s=2.0)
    emit([listener], CallFinished(earlier))  # reported only when it finished
    shown_again = CallRecord(model="openai:b", call_id=7, status="ok", text="5", cost_usd=0.5)
    emit([listener], CallFinished(shown_again, reused=True))  # an earlier run's call a rejudge shows: not this run's
    clip, check = CallRecord(model="veo", role="generate"), CallRecord(model="local:frames", role="check")
    for event in (CallStarted(clip), CallStarted(check), CallFinished(clip), CallFinished(check)):
        emit([listener], event)
    calls = log.calls(run_id).to_dict("records")
    assert [(c["call_id"], c["model"]) for c in calls] == [(-2, "local:frames"), (-1, "veo"), (1, "openai:a")]
    assert calls[2]["started_at"] < calls[2]["finished_at"]  # its start is worked out from its latency


def test_runs_sums_calls_and_cost_newest_first(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "runs.sqlite")
    first = log.start_run("complete", "one", {})
    listener = log.listener(first)
    emit([listener], CallFinished(CallRecord(model="m", call_id=1, status="ok", cost_usd=0.25)))
    log.finish_run(first, "ok", 1.0)
    second = log.start_run("fuse", "two", {})
    listener = log.listener(second)
    for call_id, status, cost in ((1, "ok", 0.5), (2, "ok", 0.125), (3, "rate_limit", None)):
        emit([listener], CallFinished(CallRecord(model="m", call_id=call_id, status=status, cost_usd=cost)))
    empty = log.start_run("eval", "three", {})
    frame = log.runs()
    assert list(frame["run_id"]) == [empty, second, first]
    assert list(frame["status"]) == ["running", "running", "ok"]
    assert list(frame["calls"]) == [0, 3, 1] and list(frame["ok_calls"]) == [0, 2, 1]
    assert list(frame["cost_usd"]) == [0.0, 0.625, 0.25] and list(frame["unpriced_calls"]) == [0, 1, 0]
    assert list(log.runs(limit=1)["run_id"]) == [empty]
    assert first < second  # ids sort by time


def test_a_real_fused_run_is_logged_through_its_listeners(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("t/alpha", ModelScript(reply="It is 42.", cost_usd=0.002))
    emulator_env.script("t/beta", ModelScript(reply="42", cost_usd=0.001))
    log = RunLog(tmp_path / DEFAULT_NAME)
    pool = ["openrouter:t/alpha", "openrouter:t/beta"]
    run_id = log.start_run("fuse", "6 x 7?", {"pool": pool, "judge": "vote"})
    result = fusion_magic.fuse("6 x 7?", pool=pool, judge="vote", settings=FAST, listeners=[log.listener(run_id)])
    log.finish_run(run_id, "ok", result.wall_s, result.answer)
    calls = log.calls(run_id).to_dict("records")
    assert [(c["model"], c["status"], c["text"]) for c in calls] == [
        ("openrouter:t/alpha", "ok", "It is 42."), ("openrouter:t/beta", "ok", "42")]
    assert [c["call_id"] for c in calls] == [r.call_id for r in result.calls]
    assert [c["output_tokens"] for c in calls] == [r.output_tokens for r in result.calls]
    [run] = log.runs().to_dict("records")
    assert (run["status"], run["calls"], run["ok_calls"]) == ("ok", 2, 2)
    assert run["cost_usd"] == pytest.approx(0.003)


def test_a_result_exports_its_calls_and_names_its_run_in_the_log(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("t/alpha", ModelScript(reply="It is 42.", cost_usd=0.002))
    emulator_env.script("t/beta", ModelScript(reply="41", cost_usd=0.001))
    emulator_env.script("t/judge", ModelScript(reply='{"reasoning": "6 x 7 = 42", "winner": "A", "answer": "42"}',
                                               cost_usd=0.004))
    pool = ["openrouter:t/alpha", "openrouter:t/beta"]
    result = fusion_magic.fuse("6 x 7?", pool=pool, judge="vote", settings=FAST)
    assert result.export(tmp_path / "run.jsonl") == 2
    rows = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [(r["model"], r["text"], r["cost_usd"]) for r in rows] == [
        ("openrouter:t/alpha", "It is 42.", 0.002), ("openrouter:t/beta", "41", 0.001)]
    assert result.export(tmp_path / "run.csv") == 2
    with open(tmp_path / "run.csv", newline="", encoding="utf-8") as f:
        assert [r["model"] for r in csv.DictReader(f)] == pool
    with pytest.raises(ConfigError, match=r"\.jsonl or \.csv"):
        result.export(tmp_path / "run.xlsx")
    # The run id names the same run in the log: its calls there are the result's.
    assert result.run_id is not None
    assert fusion_magic.history()["run_id"].iloc[0] == result.run_id
    assert fusion_magic.export_history(tmp_path / "logged.jsonl", run_id=result.run_id) == 2

    # A rejudge's run is its judge call alone: the answers it judged were paid by the first run.
    again = fusion_magic.rejudge(result, mode="best-of", judge="openrouter:t/judge", settings=FAST)
    assert again.run_id not in (None, result.run_id)
    runs = fusion_magic.history().set_index("run_id")
    assert (runs.loc[again.run_id, "calls"], runs.loc[again.run_id, "cost_usd"]) == (1, 0.004)
    assert (runs.loc[result.run_id, "calls"], runs.loc[result.run_id, "cost_usd"]) == (2, pytest.approx(0.003))
    assert again.export(tmp_path / "rejudged.jsonl") == 3  # the result itself still holds every call it shows
    written = "".join(p.read_text() for p in (*tmp_path.glob("*.jsonl"), *tmp_path.glob("*.csv")))
    assert not any(key in written for key in Emulator.test_keys().values())


def test_export_round_trips_as_jsonl_and_csv(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "runs.sqlite")
    run_id = log.start_run("fuse", 'a "quoted",\nmulti-line prompt', {"pool": ["openai:a"], "rounds": 2})
    listener = log.listener(run_id)
    emit([listener], CallFinished(CallRecord(model="openai:a", call_id=1, status="ok", text="x, \"y\"\nz",
                                             cost_usd=0.5, input_tokens=3)))
    emit([listener], CallFinished(CallRecord(model="openai:b", call_id=2, status="auth", error="bad key")))
    log.finish_run(run_id, "degraded", 2.5, "x")
    other = log.start_run("complete", "other", {})

    assert log.export(tmp_path / "all.jsonl") == 3  # the run without calls is a row of its own
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(x["run_id"], x["call_id"]) for x in lines] == [(run_id, 1), (run_id, 2), (other, None)]
    assert list(lines[0]) == list(EXPORT_COLUMNS)
    assert lines[0]["run_options"] == {"pool": ["openai:a"], "rounds": 2}
    assert (lines[0]["text"], lines[0]["cost_usd"], lines[0]["run_status"]) == ("x, \"y\"\nz", 0.5, "degraded")
    assert lines[1]["error"] == "bad key" and lines[1]["run_prompt"] == 'a "quoted",\nmulti-line prompt'

    assert log.export(tmp_path / "one.CSV", run_id=run_id) == 2
    with (tmp_path / "one.CSV").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["call_id"] for r in rows] == ["1", "2"]
    assert rows[0]["text"] == "x, \"y\"\nz" and rows[0]["run_prompt"] == 'a "quoted",\nmulti-line prompt'
    assert json.loads(rows[0]["run_options"]) == {"pool": ["openai:a"], "rounds": 2}
    assert float(rows[0]["cost_usd"]) == 0.5 and rows[1]["cost_usd"] == ""

    with pytest.raises(ValueError, match=r"\.jsonl or \.csv"):
        log.export(tmp_path / "runs.xlsx")
    with pytest.raises(ValueError, match="no run"):
        log.export(tmp_path / "none.jsonl", run_id="nope")
    assert not (tmp_path / "runs.xlsx").exists() and not (tmp_path / "none.jsonl").exists()


def test_the_default_log_is_one_file_per_user_in_the_platforms_data_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"HOME": str(home)}
    assert default_path(env, "linux") == home / ".local/share/fusion_magic" / DEFAULT_NAME
    assert default_path({**env, "XDG_DATA_HOME": str(tmp_path / "xdg")}, "linux") == \
        tmp_path / "xdg/fusion_magic" / DEFAULT_NAME
    # The XDG spec ignores a relative $XDG_DATA_HOME.
    assert default_path({**env, "XDG_DATA_HOME": "rel"}, "linux") == home / ".local/share/fusion_magic" / DEFAULT_NAME
    assert default_path(env, "darwin") == home / "Library/Application Support/fusion_magic" / DEFAULT_NAME
    assert default_path({**env, "LOCALAPPDATA": str(tmp_path / "local")}, "win32") == \
        tmp_path / "local/fusion_magic" / DEFAULT_NAME


def test_the_config_then_the_variable_then_the_user_folder_name_the_log(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    monkeypatch.delenv("FUSION_MAGIC_RUN_LOG")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().run_log_path() == tmp_path / "xdg/fusion_magic" / DEFAULT_NAME == default_path()
    monkeypatch.setenv("FUSION_MAGIC_RUN_LOG", str(tmp_path / "env.sqlite"))
    assert Settings().run_log_path() == tmp_path / "env.sqlite"
    assert Settings(run_log=str(tmp_path / "config.sqlite")).run_log_path() == tmp_path / "config.sqlite"
    assert Settings(run_log="off").run_log_path() is None
    monkeypatch.setenv("FUSION_MAGIC_RUN_LOG", "off")
    assert Settings().run_log_path() is None


def test_a_run_with_no_log_configured_leaves_the_working_folder_clean(emulator_env: Emulator, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUSION_MAGIC_RUN_LOG")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.chdir(notebooks)
    emulator_env.script("t/alpha", ModelScript(reply="42"))
    result = fusion_magic.fuse("6 x 7?", pool=["openrouter:t/alpha"], judge="vote", settings=FAST)
    assert list(notebooks.iterdir()) == []
    log = RunLog(tmp_path / "xdg/fusion_magic" / DEFAULT_NAME)
    assert [r["run_id"] for r in log.runs().to_dict("records")] == [result.run_id]


def test_reading_a_log_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "absent.sqlite")
    assert log.runs().empty and log.calls("x").empty
    assert log.export(tmp_path / "out.jsonl") == 0
    assert not log.path.exists()


def test_keys_in_the_environment_or_given_never_reach_the_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789abcdef")
    monkeypatch.setenv("FAL_KEY", "fal-id:fal-secret-value")
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    monkeypatch.setenv("SOME_TOKEN", "none")  # a placeholder, not a secret: ordinary words are left alone
    log = RunLog(tmp_path / "runs.sqlite")
    run_id = log.start_run("fuse", "my key is sk-live-0123456789abcdef", {"note": "hf_abcdefghijklmnop"},
                           secrets=["explicit-key-from-settings"])
    record = CallRecord(model="openai:a", call_id=1, status="auth",
                        error="Incorrect API key provided: sk-live-0123456789abcdef (explicit-key-from-settings)",
                        text="none of fal-id:fal-secret-value")
    emit([log.listener(run_id)], CallFinished(record))
    log.finish_run(run_id, "failed", 0.1, "auth: sk-live-0123456789abcdef")
    [call] = log.calls(run_id).to_dict("records")
    assert call["error"] == f"Incorrect API key provided: {REDACTED} ({REDACTED})"
    assert call["text"] == f"none of {REDACTED}"
    [run] = log.runs().to_dict("records")
    assert run["prompt"] == f"my key is {REDACTED}" and run["summary"] == f"auth: {REDACTED}"
    assert json.loads(run["options"]) == {"note": REDACTED}
    log.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("runs.sqlite"))
    for secret in (b"sk-live-0123456789abcdef", b"fal-secret-value", b"hf_abcdefghijklmnop", b"explicit-key"):
        assert secret not in raw


def test_a_log_that_cannot_be_written_warns_once_and_the_run_goes_on(
        emulator_env: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emulator_env.script("a", ModelScript(reply="4"))
    emulator_env.script("b", ModelScript(reply="4"))
    (tmp_path / "a-file").write_text("not a folder")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    for path in (tmp_path / "a-file" / DEFAULT_NAME, garbage):
        log = RunLog(path, retry_after_s=0)  # retry every write: still one warning
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="fusion_magic"):
            run_id = log.start_run("fuse", "2+2?", {})
            result = fusion_magic.fuse("2+2?", pool=["openai:a", "openai:b"], judge="vote", settings=FAST,
                                       listeners=[log.listener(run_id)])
            log.finish_run(run_id, "ok", result.wall_s, result.answer)
        assert result.answer == "4" and all(r.ok for r in result.calls)
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "cannot be written" in warnings[0].getMessage()
        assert log.failed_writes >= 6 and log.last_error


def test_a_locked_log_is_skipped_quietly_and_written_again_once_free(
        emulator_env: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emulator_env.script("a", ModelScript(reply="4"))
    path = tmp_path / DEFAULT_NAME
    with RunLog(path) as first:
        first.start_run("fuse", "creates the file", {})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    log = RunLog(path, busy_timeout_s=0.05, retry_after_s=0)
    try:
        with caplog.at_level(logging.WARNING, logger="fusion_magic"):
            locked = log.start_run("fuse", "2+2?", {})
            result = fusion_magic.fuse("2+2?", pool=["openai:a"], settings=FAST, judge="vote",
                                       listeners=[log.listener(locked)])
            log.finish_run(locked, "ok", result.wall_s)
        assert result.answer == "4"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "locked" in warnings[0].getMessage()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    free = log.start_run("fuse", "again", {})
    fusion_magic.fuse("2+2?", pool=["openai:a"], settings=FAST, judge="vote", listeners=[log.listener(free)])
    assert log.last_error is None
    assert locked not in set(log.runs()["run_id"]) and list(log.calls(free)["status"]) == ["ok"]


# The child: a fused run of one fast and one hanging model, in a kernel-like process whose run log is the file
# named by $FUSION_MAGIC_RUN_LOG (the api logs every run itself). It says when it starts, then waits on the
# hanging call until it is killed.
CHILD = textwrap.dedent("""
    import fusion_magic
    from fusion_magic.calls.settings import Settings

    print("started", flush=True)
    fusion_magic.fuse("Is it up?", pool=["openai:fast", "openai:hangs"], judge="vote",
                      settings=Settings(max_retries=0, timeout=120))
""")

# A new process reads it back the way a user does: %fuse history in a fresh shell, then --export of that run.
READER = textwrap.dedent("""
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "fusion_magic")
    runs = shell.run_line_magic("fuse", "history")
    run_id = runs["run_id"].iloc[0]
    shell.run_line_magic("fuse", f"history --export {sys.argv[1]} --run {run_id}")
    calls = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
    print(json.dumps({"runs": json.loads(runs.to_json(orient="records")), "calls": calls}))
""")


def fast_call_finished(path: Path) -> bool:
    """Whether the child's fast call is on disk as finished. The file appears (WAL mode is set) a moment
    before its tables do, so a poll that lands in between sees no table yet: that is "not yet", not a failure."""
    if not path.exists():
        return False
    try:
        return row(path, "SELECT COUNT(*) FROM calls WHERE status = 'ok' AND model = ?", "openai:fast")[0][0] == 1
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return False
        raise


def test_a_killed_process_leaves_its_finished_calls_readable_from_a_new_one(emulator: Emulator,
                                                                            tmp_path: Path) -> None:
    emulator.script("fast", ModelScript(reply="Yes, it is up."))
    emulator.script("hangs", ModelScript(faults=[Fault("hang")]))
    path = tmp_path / DEFAULT_NAME
    env = {**os.environ, **emulator.env(), **emulator.test_keys(), "FUSION_MAGIC_RUN_LOG": str(path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        started = child.stdout.readline().strip()
        assert started == "started", child.stderr.read() if child.stderr else ""
        # Wait until the fast call's finished row is on disk, and the hanging call was asked.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            done = fast_call_finished(path)
            if done and any(r.model == "hangs" for r in emulator.requests):
                break
            if child.poll() is not None:
                pytest.fail(f"the child ended before it was killed: {child.stderr.read() if child.stderr else ''}")
            time.sleep(0.05)
        else:
            pytest.fail("the fast call's finished row never appeared")
        child.send_signal(signal.SIGKILL)  # the process dies mid-run, not just the cell
        child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()

    reader = subprocess.run([sys.executable, "-c", READER, str(tmp_path / "calls.jsonl")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert reader.returncode == 0, reader.stderr
    seen = json.loads(reader.stdout.strip().splitlines()[-1])
    [run] = seen["runs"]
    assert (run["kind"], run["status"], run["finished_at"]) == ("fuse", "running", None)
    assert run["prompt"] == "Is it up?" and run["calls"] == 2 and run["ok_calls"] == 1
    calls = {c["model"]: c for c in seen["calls"]}
    assert set(calls) == {"openai:fast", "openai:hangs"}
    fast, hung = calls["openai:fast"], calls["openai:hangs"]
    assert (fast["status"], fast["text"]) == ("ok", "Yes, it is up.") and fast["finished_at"]
    assert fast["output_tokens"] and fast["latency_s"] is not None
    assert (hung["status"], hung["text"], hung["finished_at"]) == ("waiting", "", None) and hung["started_at"]
