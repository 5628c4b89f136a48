"""One state model (``core.state``): where a call or a job stands, its failure kind apart from it, the words
files always held (``status``) read both ways, and one place that turns a state into words. Also what rests on
it: the ledger's note and ordering columns, and run logs and sidecars written before either existed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

import fusion_magic
from fusion_magic.calls.runlog import CALL_COLUMNS, RunLog
from fusion_magic.calls.settings import Settings
from fusion_magic.core.ledger import COLUMNS, ledger_frame, with_totals
from fusion_magic.core.record import CallRecord
from fusion_magic.core.state import State, from_wire, to_wire
from fusion_magic.present import wording
from fusion_magic.present.ledger_table import ledger_display, ledger_html, text_ledger
from fusion_magic.testing import Emulator, ModelScript
from fusion_magic.videos import sidecar
from fusion_magic.videos.result import Video
from fusion_magic.videos.sidecar import Sidecar

FAILURE_KINDS = ("auth", "payment", "rate_limit", "bad_request", "server", "timeout", "protocol",
                 "crashed", "error", "analysis")


# --- the states -----------------------------------------------------------------------------------------


def test_every_state_is_running_final_or_pending_and_only_one() -> None:
    for state in State:
        kinds = [state.is_running, state.is_final, state.is_paid_and_resumable]
        assert kinds.count(True) == 1, state
    assert [s for s in State if s.is_paid_and_resumable] == [State.PENDING]
    assert {s for s in State if s.is_final} == {State.DONE, State.FAILED, State.FILTERED, State.CANCELLED}


@pytest.mark.parametrize("state", list(State))
def test_a_state_written_down_reads_back_as_itself(state: State) -> None:
    assert from_wire(to_wire(state)) == (state, None)


def test_a_prompt_the_filter_refused_is_filtered_like_a_clip_not_a_failure() -> None:
    """A chat call refused by the provider's safety filter (``BlockedError``, kind ``blocked``) reads like a clip
    the filter withheld: the filtered state, written ``filtered``; never "failed: blocked"."""
    assert from_wire("blocked") == (State.FILTERED, None)
    r = CallRecord(model="gemini:gemini-2.5-flash", status="blocked", error="the prompt was blocked (SAFETY)")
    assert (r.state, r.status, r.ok) == (State.FILTERED, "filtered", False)


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_a_failure_kind_is_its_own_field_and_still_the_word_written(kind: str) -> None:
    assert from_wire(kind) == (State.FAILED, kind) and to_wire(State.FAILED, kind) == kind
    r = CallRecord(model="openai:gpt-4o", status=kind)
    assert (r.state, r.failure, r.status, r.ok) == (State.FAILED, kind, kind, False)


def test_the_words_files_always_held_keep_their_meaning() -> None:
    # "ok" is done, "cancelled" is its own state (not a failure of the model), "failed" a failure of no kind.
    assert from_wire("ok") == (State.DONE, None) and to_wire(State.DONE) == "ok"
    assert from_wire("cancelled") == (State.CANCELLED, None)
    assert from_wire("failed") == (State.FAILED, None) and to_wire(State.FAILED) == "failed"
    assert from_wire("pending") == (State.PENDING, None)
    in_flight = {to_wire(s) for s in State if s.is_running}
    assert in_flight >= {"queued", "waiting", "streaming"} and "pending" not in in_flight


def test_a_record_keeps_state_and_kind_apart_and_status_says_both() -> None:
    r = CallRecord(model="openai:gpt-4o")
    assert r.state is State.QUEUED and r.status == "queued" and r.failure is None
    r.state, r.failure = State.FAILED, "timeout"
    assert r.status == "timeout" and not r.ok
    r.status = "ok"
    assert r.state is State.DONE and r.failure is None and r.ok
    r.status = "pending"
    assert r.state.is_paid_and_resumable and r.failure is None


def test_a_new_clip_and_its_record_start_in_the_same_state() -> None:
    assert Video("m", "l", "p").record.state is State.PLANNED
    pending = Video("m", "l", "p", status="pending")
    assert pending.state is State.PENDING and pending.record.state is State.PENDING and pending.final


# --- words ----------------------------------------------------------------------------------------------


def test_every_state_has_words_and_a_colour() -> None:
    for state in State:
        r = CallRecord(model="m")
        r.state = state
        assert wording.status_word(r) and wording.colour(r).startswith("#")
        assert wording.clip_word(state) and wording.clip_colour(state).startswith("#")
    assert wording.clip_word(State.DONE) == "saved"
    assert wording.clip_colour(State.PENDING) not in (wording.clip_colour(State.FAILED),
                                                      wording.clip_colour(State.CANCELLED))


def test_a_pending_call_reads_as_pending_with_its_note_never_as_failed() -> None:
    r = CallRecord(model="gemini:veo-3.1-generate-preview", role="generate", status="pending",
                   note="not finished after 600 s")
    assert wording.status_word(r) == ("pending: not finished after 600 s; still running at the provider: "
                                      "%video resume fetches it")
    assert r.describe().startswith("[pending]") and "(not finished after 600 s)" in r.describe()
    assert wording.note_words("pending", None) == ""
    assert wording.note_words("ok", "made by an earlier run") == "made by an earlier run"


def test_a_failed_call_still_says_its_kind_and_message() -> None:
    r = CallRecord(model="openai:gpt-4o", status="timeout", error="openai:gpt-4o: timeout: no answer in 60 s")
    assert wording.status_word(r) == "failed: timeout: no answer in 60 s"
    r.late = True
    assert wording.status_word(r) == "late, failed: timeout: no answer in 60 s"


# --- the ledger -----------------------------------------------------------------------------------------


def pending_clip() -> CallRecord:
    return CallRecord(model="gemini:veo-3.1-generate-preview", role="generate", label="veo #1", status="pending",
                      note="not finished after 600 s", latency_s=600.0, call_id=1)


def test_a_pending_row_has_its_note_in_the_note_column_and_no_error() -> None:
    frame = ledger_frame([pending_clip(), CallRecord(model="openai:gpt-4o", status="ok", call_id=2)])
    assert list(frame.columns) == [*COLUMNS, "note"]
    assert pd.isna(frame.loc[0, "error"]) and frame.loc[0, "note"] == "not finished after 600 s"
    shown = ledger_display(with_totals(frame))
    assert shown.loc[0, "error"] == "" and shown.loc[0, "note"].startswith("not finished after 600 s; still")
    assert shown.loc[1, "note"] == "" and shown.loc[2, "note"] == ""  # a done call and the totals row
    lines = text_ledger(with_totals(frame))
    assert not any(line.lstrip().startswith("error:") for line in lines)
    assert "  note: not finished after 600 s; still running at the provider: %video resume fetches it" in lines
    assert ">note</th>" in ledger_html(frame)


def test_a_chat_ledger_has_neither_note_nor_ordering_column() -> None:
    assert list(ledger_frame([CallRecord(model="a", status="ok")]).columns) == COLUMNS


def test_a_judge_ordering_has_its_own_column_and_words() -> None:
    judges = [CallRecord(model="openai:judge", role="judge", status="ok", ordering=n, call_id=n) for n in (1, 2)]
    frame = ledger_frame(judges)
    assert frame["ordering"].tolist() == [1, 2] and frame["round"].tolist() == [0, 0]
    assert [line.split("  ")[0] for line in text_ledger(frame)[2:4]] == ["judge, order 1", "judge, order 2"]


def test_judge_calls_with_orders_carry_their_ordering(emulator_env: Emulator) -> None:
    emulator_env.script("paris-bot", ModelScript(reply="Paris."))
    emulator_env.script("lyon-bot", ModelScript(reply="Lyon."))
    emulator_env.script("judge", ModelScript(reply=json.dumps({"reasoning": "A.", "winner": "A", "best": "A",
                                                                "answer": "Paris."})))
    r = fusion_magic.fuse("Capital of France?", pool=["openai:paris-bot", "openai:lyon-bot"], judge="openai:judge",
                          orders=2, settings=Settings(max_retries=0, timeout=20))
    assert sorted(j.ordering for j in r.judge_responses) == [1, 2]
    assert all(m.ordering == 0 for m in r.responses)
    assert sorted(r.ledger.loc[r.ledger["role"] == "judge", "ordering"].tolist()) == [1, 2]


# --- the run log, old and new ---------------------------------------------------------------------------

# The calls table as schema 1 first wrote it: no ``ordering``, no ``note``.
_OLD_CALLS = """CREATE TABLE calls (run_id TEXT NOT NULL, call_id INTEGER NOT NULL, model TEXT NOT NULL, role TEXT,
    label TEXT, round INTEGER, status TEXT, error TEXT, text TEXT, input_tokens INTEGER, output_tokens INTEGER,
    tokens_source TEXT, video_seconds REAL, clips INTEGER, cost_usd REAL, cost_source TEXT, ttft_s REAL,
    latency_s REAL, attempts INTEGER, request_id TEXT, served_model TEXT, late INTEGER, http_status INTEGER,
    finish_reason TEXT, started_at TEXT, finished_at TEXT, PRIMARY KEY (run_id, call_id))"""


def old_log(path: Path) -> None:
    """A log written before ``ordering`` and ``note``: a judge's ordering in ``round``, a pending job's
    note in ``error``."""
    conn = sqlite3.connect(path)
    conn.executescript(f"""
        CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);
        CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
            status TEXT NOT NULL, prompt TEXT, options TEXT, wall_s REAL, summary TEXT);
        {_OLD_CALLS};
        INSERT INTO runs VALUES ('r1', 'video', '2025-01-01T00:00:00', NULL, 'degraded', 'a fox', '{{}}', 1.0, '');
        INSERT INTO calls (run_id, call_id, model, role, round, status, error) VALUES
            ('r1', 1, 'gemini:veo', 'generate', 0, 'pending',
             'not finished after 600 s; the job goes on at the provider: %video resume fetches it'),
            ('r1', 2, 'openai:judge', 'judge', 2, 'ok', NULL),
            ('r1', 3, 'openai:a', 'member', 1, 'timeout', 'openai:a: timeout: no answer in 60 s');
    """)
    conn.close()


def check_old_rows(calls: pd.DataFrame) -> None:
    pending, judge, member = (calls[calls["call_id"] == n].iloc[0] for n in (1, 2, 3))
    assert pending["status"] == "pending" and pd.isna(pending["error"])
    assert str(pending["note"]).startswith("not finished after 600 s")
    assert judge["ordering"] == 2
    assert member["round"] == 1 and member["ordering"] == 0 and member["error"].endswith("no answer in 60 s")


def test_an_old_run_log_loads_with_its_orderings_and_notes_where_they_belong(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old_log(path)
    log = RunLog(path)
    calls = log.calls("r1")
    assert list(calls.columns) == list(CALL_COLUMNS)
    check_old_rows(calls)
    assert log.export(tmp_path / "old.jsonl") == 3
    rows = [json.loads(line) for line in (tmp_path / "old.jsonl").read_text().splitlines()]
    assert rows[0]["note"].startswith("not finished") and rows[0]["error"] is None and rows[1]["ordering"] == 2

    # This version's first write adds the columns; the old rows read the same, the new one as written.
    assert log.record_call("r1", CallRecord(model="openai:judge", role="judge", status="ok", ordering=3,
                                            call_id=4))
    assert log.record_call("r1", CallRecord(model="gemini:veo", role="generate", status="pending",
                                            note="interrupted", call_id=5))
    log.close()
    calls = log.calls("r1")
    check_old_rows(calls)
    new_judge, new_pending = (calls[calls["call_id"] == n].iloc[0] for n in (4, 5))
    assert new_judge["ordering"] == 3 and new_judge["round"] == 0
    assert new_pending["note"] == "interrupted" and pd.isna(new_pending["error"])
    assert log.runs().loc[0, "calls"] == 5


def test_a_log_this_version_wrote_stays_readable_by_the_old_columns(tmp_path: Path) -> None:
    """An older fusion_magic selects the columns it knows: every one of them is still there, same words."""
    log = RunLog(tmp_path / "new.sqlite")
    run_id = log.start_run("video", "a fox", {})
    log.record_call(run_id, pending_clip())
    log.close()
    conn = sqlite3.connect(tmp_path / "new.sqlite")
    old_columns = [c for c in CALL_COLUMNS if c not in ("ordering", "note")]
    (row,) = conn.execute(f"SELECT {', '.join(old_columns)} FROM calls").fetchall()
    assert dict(zip(old_columns, row, strict=True))["status"] == "pending"
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (1,)
    conn.close()


# --- sidecars, old and new ------------------------------------------------------------------------------


def test_a_sidecar_speaks_its_own_words_and_reads_any_earlier_one(tmp_path: Path) -> None:
    side = Sidecar(model="gemini:veo", prompt="a fox", parameters={}, request_key="k" * 64,
                   job={"protocol": "veo", "model": "veo", "job_id": "operations/1"})
    assert sidecar.word_for(State.RUNNING, "submitted") == "submitted"
    assert sidecar.word_for(State.RUNNING, "pending") == "pending"  # a resume following it: still open
    assert sidecar.word_for(State.DOWNLOADING, "submitted") == "succeeded"
    assert sidecar.word_for(State.PENDING, "succeeded") == "succeeded"  # ready at the provider: fetch it
    assert sidecar.word_for(State.PENDING, "submitted") == "pending"
    assert [sidecar.word_for(s, "submitted") for s in (State.DONE, State.FAILED, State.FILTERED,
                                                       State.CANCELLED)] == ["ok", "failed", "filtered", "cancelled"]
    for word, state in (("submitted", State.PENDING), ("pending", State.PENDING), ("succeeded", State.PENDING),
                        ("ok", State.DONE), ("failed", State.FAILED), ("filtered", State.FILTERED),
                        ("cancelled", State.CANCELLED)):
        side.status = word
        assert sidecar.state_of(side) is state, word
    # Written before ``note``: a pending job's note was its error.
    path = tmp_path / "old.json"
    sidecar.write(path, side)
    old = json.loads(path.read_text())
    del old["note"]
    old.update(status="pending", error="not finished after 600 s")
    path.write_text(json.dumps(old))
    back = sidecar.read(path)
    assert back is not None and back.open and back.pending_note == "not finished after 600 s"
    back.status = "failed"
    assert back.pending_note is None  # a failed job's error is an error
