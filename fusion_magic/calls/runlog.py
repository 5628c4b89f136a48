"""The run log: every run and every call written to an embedded SQLite database as it happens.

A run is one row in ``runs``; each of its calls is one row in ``calls``, inserted when the call starts and
completed when it finishes. Each write commits at once (WAL, ``synchronous=NORMAL``), so a kernel or process
that dies mid-run leaves everything that had arrived readable from a new process: the run stays ``running``,
finished calls have their text and figures, calls still in flight show as started.

    log = RunLog(default_path())    # ~/.local/share/fusion_magic/fusion_runs.sqlite on Linux
    run_id = log.start_run("fuse", prompt, {"pool": pool, "mode": "best-of"})
    result = fusion_magic.fuse(prompt, pool=pool, listeners=[log.listener(run_id)])
    log.finish_run(run_id, "ok", result.wall_s, result.answer[:200])
    log.runs()                      # newest first, with call counts and total cost
    log.calls(run_id)               # one row per call
    log.export(Path("runs.jsonl"))  # or .csv: one line per call with its run's fields

Writing never raises: the log must not break a run. A database that cannot be written (read-only, locked by
another program, not a database) logs one warning and the log goes quiet, trying again after a pause.
Reading (``runs``, ``calls``, ``export``) raises ``sqlite3.Error`` as usual: the person asked for it.

Where: one log per user (``default_path``: the platform's per-user data folder), not beside each notebook, so a
notebook folder stays clean and ``%fuse history`` sees every run; ``%config FusionMagics.run_log`` or
$FUSION_MAGIC_RUN_LOG picks another file (``Settings.run_log_path``).

Older logs load as they are: a column added since (a judge's ``ordering``, a pending job's ``note``) is added
to a log the first time this version writes to it, and read from what older rows hold (a judge's ordering was
its ``round``; a pending job's note was its ``error``). The schema version stays 1: an older fusion_magic
still reads and writes a log this one wrote.

Keys: records never hold keys. As a second line of defence every text written (answers, errors, the prompt,
options, the summary) has the values of key-like environment variables (``*_KEY``, ``*_TOKEN``, ...) and any
``secrets`` given to ``start_run`` replaced by ``providers.base.REDACTED``.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
import os
import secrets as _random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from ..core.events import CallFinished, CallStarted, EngineEvent
from ..providers.base import redact

if TYPE_CHECKING:
    import pandas as pd

    from ..core.record import CallRecord

log = logging.getLogger("fusion_magic")

DEFAULT_NAME = "fusion_runs.sqlite"
APP_DIR = "fusion_magic"
SCHEMA_VERSION = 1

KINDS = ("fuse", "video", "rejudge", "complete", "eval")
RUN_STATUSES = ("running", "ok", "degraded", "interrupted", "failed")

# How long a write may wait for another connection's lock. Writes run on the engine's event-loop thread, so
# this bounds how long a locked file can stall a run (once: then the log goes quiet for RETRY_AFTER_S).
BUSY_TIMEOUT_S = 1.0
RETRY_AFTER_S = 30.0

# Environment variables whose values are treated as secrets (the suffixes the local worker also strips).
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
# Shorter values are placeholders ("none", "ollama"), not secrets; replacing them would mangle ordinary words.
_MIN_SECRET_CHARS = 8

RUN_COLUMNS = ("id", "kind", "started_at", "finished_at", "status", "prompt", "options", "wall_s", "summary")
CALL_COLUMNS = (
    "run_id", "call_id", "model", "role", "label", "round", "ordering", "status", "error", "note", "text",
    "input_tokens", "output_tokens", "tokens_source", "video_seconds", "clips", "cost_usd", "cost_source",
    "ttft_s", "latency_s", "attempts", "request_id", "served_model", "late", "http_status", "finish_reason",
    "started_at", "finished_at", "cached_input_tokens", "cache_write_input_tokens", "batch_id",
)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        prompt TEXT,
        options TEXT,
        wall_s REAL,
        summary TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS calls (
        run_id TEXT NOT NULL,
        call_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        role TEXT,
        label TEXT,
        round INTEGER,
        ordering INTEGER,
        status TEXT,
        error TEXT,
        note TEXT,
        text TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        tokens_source TEXT,
        video_seconds REAL,
        clips INTEGER,
        cost_usd REAL,
        cost_source TEXT,
        ttft_s REAL,
        latency_s REAL,
        attempts INTEGER,
        request_id TEXT,
        served_model TEXT,
        late INTEGER,
        http_status INTEGER,
        finish_reason TEXT,
        started_at TEXT,
        finished_at TEXT,
        PRIMARY KEY (run_id, call_id)
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at)",
    # Batch receipts (``calls/receipts.py``): one row per batch the moment it is submitted, its requests beside.
    """CREATE TABLE IF NOT EXISTS batches (
        receipt TEXT PRIMARY KEY,
        evaluation TEXT NOT NULL,
        run_id TEXT,
        provider TEXT NOT NULL,
        base_url TEXT,
        model TEXT,
        wave INTEGER,
        batch_id TEXT,
        state TEXT NOT NULL,
        wire TEXT,
        total INTEGER,
        completed INTEGER,
        failed INTEGER,
        error TEXT,
        cost_usd REAL,
        created_at REAL NOT NULL,
        updated_at REAL,
        closed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS batches_by_evaluation ON batches (evaluation, closed)",
    """CREATE TABLE IF NOT EXISTS batch_requests (
        receipt TEXT NOT NULL,
        custom_id TEXT NOT NULL,
        PRIMARY KEY (receipt, custom_id)
    )""",
)
# Columns added to ``calls`` after schema 1 was first written, with their SQL types: a log that lacks one
# gets it when this version first writes to it.
_ADDED_COLUMNS = {"ordering": "INTEGER", "note": "TEXT", "cached_input_tokens": "INTEGER",
                  "cache_write_input_tokens": "INTEGER", "batch_id": "TEXT"}

# A finished call replaces every field of its row but keeps the time it started (CallStarted wrote it).
_UPSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' * len(CALL_COLUMNS))}) "
    "ON CONFLICT (run_id, call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in CALL_COLUMNS if c not in ("run_id", "call_id", "started_at"))
    + ", started_at = COALESCE(calls.started_at, excluded.started_at)"
)

_RUNS_QUERY = """
    SELECT r.id AS run_id, r.kind, r.status, r.started_at, r.finished_at, r.wall_s,
           COUNT(c.call_id) AS calls,
           COALESCE(SUM(c.status = 'ok'), 0) AS ok_calls,
           CASE WHEN COUNT(c.call_id) = 0 THEN 0.0 ELSE SUM(c.cost_usd) END AS cost_usd,
           COALESCE(SUM(c.call_id IS NOT NULL AND c.cost_usd IS NULL), 0) AS unpriced_calls,
           r.prompt, r.summary, r.options
    FROM runs r LEFT JOIN calls c ON c.run_id = r.id
    GROUP BY r.id
    ORDER BY r.started_at DESC, r.id DESC
    LIMIT ?
"""
RUNS_FRAME_COLUMNS = ("run_id", "kind", "status", "started_at", "finished_at", "wall_s", "calls", "ok_calls",
                      "cost_usd", "unpriced_calls", "prompt", "summary", "options")

# Export: each call with its run's fields, prefixed ``run_`` where the names would clash.
EXPORT_COLUMNS = (
    "run_id", "run_kind", "run_status", "run_started_at", "run_finished_at", "run_wall_s", "run_prompt",
    "run_options", "run_summary", *(c for c in CALL_COLUMNS if c != "run_id"),
)
_EXPORT_QUERY = (
    "SELECT r.id AS run_id, r.kind AS run_kind, r.status AS run_status, r.started_at AS run_started_at, "
    "r.finished_at AS run_finished_at, r.wall_s AS run_wall_s, r.prompt AS run_prompt, "
    "r.options AS run_options, r.summary AS run_summary, {calls}"
    " FROM runs r LEFT JOIN calls c ON c.run_id = r.id {where} ORDER BY r.started_at, r.id, c.call_id"
)


class RunLog:
    """One run-log database file. Cheap to make: nothing is opened until the first write or read.

    Thread-safe: calls are written from the engine's event-loop thread while the kernel thread reads.
    Writes share one connection under a lock; each read opens its own read-only connection, so reading
    never waits for a run (WAL lets readers and the writer work at once) and never creates the file.

        log = RunLog(default_path())
        run_id = log.start_run("fuse", "2+2?", {"pool": ["openai:gpt-4o"]})
        fusion_magic.fuse("2+2?", pool=["openai:gpt-4o"], listeners=[log.listener(run_id)])
        log.finish_run(run_id, "ok", 1.2, "4"); log.runs()
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = BUSY_TIMEOUT_S,
                 retry_after_s: float = RETRY_AFTER_S) -> None:
        # Absolute now: a later os.chdir in the notebook must not split one session's log over two files.
        self.path = Path(path).expanduser().absolute()
        self.busy_timeout_s = busy_timeout_s
        self.retry_after_s = retry_after_s
        self.last_error: str | None = None  # why the last write failed (None: every write so far landed)
        self.failed_writes = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._warned = False
        self._quiet_until = 0.0
        # Every explicit key a run was started with, redacted from every run's text: a set of the distinct keys, not
        # an entry per run (the kernel's one log sees every run: that grew for its whole life, with nothing to say
        # when a run's last late call was written). Replaced, never changed in place, so a reader needs no lock.
        self._secrets: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"RunLog({str(self.path)!r})"

    # ---- writing -------------------------------------------------------------------------------------

    def start_run(self, kind: str, prompt: str, options: Mapping[str, object], *,
                  secrets: Iterable[str] = ()) -> str:
        """Record a run as ``running`` and return its new id (time-sortable: ``20250102T030405123456Z-1a2b3c``).

        ``secrets`` (say the explicit keys of the run's ``Settings``) are redacted from everything this run writes
        (its late calls included) and every later run, besides the key-like environment variables. Never raises for
        the database (see the class).
        """
        if kind not in KINDS:
            raise ValueError(f"run kind must be one of {', '.join(KINDS)}, not {kind!r}")
        now = datetime.now(UTC)
        run_id = f"{now:%Y%m%dT%H%M%S%f}Z-{_random.token_hex(3)}"
        given = frozenset(s for s in secrets if s)
        if not given <= self._secrets:
            with self._lock:
                self._secrets |= given
        row = (run_id, kind, now.isoformat(), None, "running", self._clean(prompt),
               self._clean(_options_json(options)), None, None)
        self._write(lambda c: c.execute(
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})", row))
        return run_id

    def listener(self, run_id: str) -> RunListener:
        """A ``core.events`` listener that records ``run_id``'s calls: a row when each starts, completed when it
        finishes (late calls included, after ``finish_run``). It never raises."""
        return RunListener(self, run_id)

    def finish_run(self, run_id: str, status: str, wall_s: float | None, summary: str | None = None) -> None:
        """Record how a run ended: ``status`` is one of ``RUN_STATUSES`` (not ``running``), ``summary`` a short
        line (the answer's start, the error). Never raises for the database."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"a finished run's status must be one of {', '.join(RUN_STATUSES[1:])}, not {status!r}")
        summary = None if summary is None else self._clean(summary)
        finished = datetime.now(UTC).isoformat()
        self._write(lambda c: c.execute(
            "UPDATE runs SET status = ?, finished_at = ?, wall_s = ?, summary = ? WHERE id = ?",
            (status, finished, wall_s, summary, run_id)))

    def record_call(self, run_id: str, record: CallRecord, *, call_id: int | None = None,
                    finished: bool = True) -> bool:
        """Write one call's row now (insert or replace all but its start time); True if it landed.

        The listener calls this; a job kind that keeps records without events may call it directly.
        """
        now = datetime.now(UTC)
        started = None
        if finished and record.latency_s is not None:  # a call reported only when done (a rejudge's pool)
            started = datetime.fromtimestamp(now.timestamp() - record.latency_s, UTC).isoformat()
        row = _call_row(run_id, record, record.call_id if call_id is None else call_id,
                        clean=self._clean,
                        started_at=started if finished else now.isoformat(),
                        finished_at=now.isoformat() if finished else None)
        return self._write(lambda c: c.execute(_UPSERT_CALL, row))

    def execute(self, sql: str, params: Sequence[object] = (), *,
                rows: Iterable[Sequence[object]] | None = None) -> bool:
        """One write statement for a table another module owns (``receipts``): with ``rows``, once per row in
        one transaction. Same connection, lock and policy as every write: True if it landed, never raises."""
        def op(conn: sqlite3.Connection) -> None:
            if rows is None:
                conn.execute(sql, params)
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        return self._write(op)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """The rows of one read on a connection of its own (empty when there is no log yet). Raises
        ``sqlite3.Error`` as every read does."""
        with self._reader() as conn:
            return [] if conn is None else list(conn.execute(sql, params))

    def close(self) -> None:
        """Close the write connection (a later write opens it again)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, op: Callable[[sqlite3.Connection], object]) -> bool:
        """Run one statement on the write connection (autocommit: it is on disk when this returns)."""
        with self._lock:
            if time.monotonic() < self._quiet_until:
                return False
            try:
                op(self._connection())
            except Exception as exc:  # read-only, locked, full disk, not a database, a newer schema...
                self._failed(exc)
                return False
            if self.last_error is not None:
                log.info("fusion_magic run log %s is written again", self.path)
                self.last_error = None
            return True

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: every statement commits itself, so nothing waits in an open transaction
            # for a kill to lose. check_same_thread=False: the lock, not the thread, guards this connection.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            try:
                _prepare(conn, self.busy_timeout_s)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _failed(self, exc: BaseException) -> None:
        self.failed_writes += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._quiet_until = time.monotonic() + self.retry_after_s
        # A broken connection (the file replaced, a lock that outlived the timeout) is opened afresh next time.
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if not self._warned:
            self._warned = True
            log.warning("fusion_magic run log %s cannot be written (%s); runs go on without it", self.path,
                        self.last_error)

    def _clean(self, text: str) -> str:
        return redact_secrets(text, (*self._secrets, *environ_secrets()))

    # ---- reading -------------------------------------------------------------------------------------

    def runs(self, limit: int = 50) -> pd.DataFrame:
        """The latest ``limit`` runs, newest first: one row each with its call count, calls that were ok,
        total cost (NaN when no call had a price; ``unpriced_calls`` counts those without) and its fields."""
        import pandas as pd

        with self._reader() as conn:
            if conn is None:
                return pd.DataFrame(columns=list(RUNS_FRAME_COLUMNS))
            return pd.read_sql_query(_RUNS_QUERY, conn, params=(int(limit),))

    def calls(self, run_id: str) -> pd.DataFrame:
        """One run's calls in the order they were made (empty for an unknown run)."""
        import pandas as pd

        with self._reader() as conn:
            if conn is None:
                return pd.DataFrame(columns=list(CALL_COLUMNS))
            return pd.read_sql_query(
                f"SELECT {_call_selects(conn, CALL_COLUMNS)} FROM calls c WHERE c.run_id = ? ORDER BY c.call_id",
                conn, params=(run_id,))

    def export(self, dest: str | os.PathLike[str], run_id: str | None = None) -> int:
        """Write every call (of ``run_id``, or of every run) with its run's fields to ``dest``: JSON Lines for
        ``.jsonl``, CSV for ``.csv`` (ValueError for another suffix, or an unknown ``run_id``). A run without
        calls is one row with empty call fields. Returns the number of rows written.

        Run fields are prefixed ``run_`` (``run_status``, ``run_prompt``, ...); ``run_options`` is an object in
        JSON Lines and a JSON string in CSV.
        """
        dest = Path(dest).expanduser()
        suffix = dest.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise ValueError(f"export writes .jsonl or .csv, not {dest.name!r}")
        with self._reader() as conn:
            rows = [] if conn is None else [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in conn.execute(
                _EXPORT_QUERY.format(calls=_call_selects(conn, tuple(c for c in CALL_COLUMNS if c != "run_id")),
                                     where="" if run_id is None else "WHERE r.id = ?"),
                () if run_id is None else (run_id,))]
        if run_id is not None and not rows:
            raise ValueError(f"no run {run_id!r} in {self.path}")
        if suffix == ".jsonl":
            for row in rows:
                row["run_options"] = _parse_options(row["run_options"])
        return _write_rows(rows, dest, EXPORT_COLUMNS)

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection | None]:
        """A read-only connection of its own (None when there is no log yet: reading never creates one)."""
        if not self.path.exists():
            yield None
            return
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=self.busy_timeout_s)
        try:
            has_tables = conn.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('runs', 'calls')").fetchone()
            yield conn if has_tables[0] == 2 else None
        finally:
            conn.close()


class RunListener:
    """Records one run's calls as their events arrive (``RunLog.listener``). Never raises."""

    def __init__(self, runlog: RunLog, run_id: str) -> None:
        self.runlog = runlog
        self.run_id = run_id
        # A record not numbered by its engine (call_id 0) gets a negative id of its own, kept per object.
        self._unnumbered: dict[int, tuple[CallRecord, int]] = {}
        self._next_unnumbered = itertools.count(-1, -1)

    def __call__(self, event: EngineEvent) -> None:
        # CallDelta is left out on purpose: the text is written when the call finishes, so a run streams
        # without a write per chunk.
        if not isinstance(event, CallStarted | CallFinished):
            return
        if isinstance(event, CallFinished) and event.reused:
            return  # an earlier run's call, shown again by a rejudge: that run has it, this one did not pay it
        try:
            record = event.response
            self.runlog.record_call(self.run_id, record, call_id=self._call_id(record),
                                    finished=isinstance(event, CallFinished))
        except Exception as exc:  # a record we cannot read must not break the run either
            with self.runlog._lock:
                self.runlog._failed(exc)

    def _call_id(self, record: CallRecord) -> int:
        if record.call_id:
            return record.call_id
        key = id(record)
        if key not in self._unnumbered:  # the record is kept, so its id() is not reused by another object
            self._unnumbered[key] = (record, next(self._next_unnumbered))
        return self._unnumbered[key][1]


# ---- keys ------------------------------------------------------------------------------------------------


def environ_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of key-like environment variables (``OPENAI_API_KEY``, ``FAL_KEY``, ``HF_TOKEN``, ...)."""
    env = os.environ if environ is None else environ
    return [value.strip() for name, value in env.items()
            if name.upper().endswith(_SECRET_SUFFIXES) and len(value.strip()) >= _MIN_SECRET_CHARS]


def redact_secrets(text: str, secrets: Collection[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``providers.base.REDACTED``, longest first (so a key
    that contains another goes whole)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = redact(text, secret)
    return text


# ---- rows ------------------------------------------------------------------------------------------------


def _prepare(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """WAL (readers never block the writer; a killed writer loses no commit), NORMAL sync (no fsync per
    commit: a process crash loses nothing, only a power cut could lose the last commits), then the schema."""
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")  # two kernels creating the same log take turns
    try:
        for statement in _SCHEMA:
            conn.execute(statement)
        have = _call_table_columns(conn)
        for name, kind in _ADDED_COLUMNS.items():
            if name not in have:
                conn.execute(f"ALTER TABLE calls ADD COLUMN {name} {kind}")
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer fusion_magic (schema {version}, this one knows {SCHEMA_VERSION})")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _call_table_columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(calls)")}


def _call_selects(conn: sqlite3.Connection, columns: Sequence[str]) -> str:
    """The select list for ``columns`` of ``calls c``, each named as itself, that reads a log of any age:
    rows written before a column existed (or by an older version since) say it the old way."""
    have = _call_table_columns(conn)
    # Before ``ordering``, a judge's ordering was its ``round``; before ``note``, a pending job's note was
    # its ``error``. The call_id test keeps the fields of an export's call-less run empty.
    old_ordering = "CASE WHEN c.call_id IS NULL THEN NULL WHEN c.role = 'judge' THEN c.round ELSE 0 END"
    old_note = "CASE WHEN c.status = 'pending' THEN c.error END"
    ordering = f"COALESCE(c.ordering, {old_ordering})" if "ordering" in have else old_ordering
    if "note" in have:
        note = f"COALESCE(c.note, {old_note})"
        error = "CASE WHEN c.status = 'pending' AND c.note IS NULL THEN NULL ELSE c.error END"
    else:
        note, error = old_note, "CASE WHEN c.status = 'pending' THEN NULL ELSE c.error END"
    special = {"ordering": ordering, "note": note, "error": error}
    # A column added later that this log has not got yet (no write of this version so far): empty.
    special.update((c, "NULL") for c in _ADDED_COLUMNS if c not in have and c not in special)
    return ", ".join(f"{special[c]} AS {c}" if c in special else f"c.{c}" for c in columns)


def _call_row(run_id: str, r: CallRecord, call_id: int, *, clean: Callable[[str], str],
              started_at: str | None, finished_at: str | None) -> tuple[object, ...]:
    values: dict[str, object] = {
        "run_id": run_id, "call_id": call_id, "model": r.model, "role": r.role, "label": r.label,
        "round": r.round, "ordering": r.ordering, "status": r.status,
        "error": None if r.error is None else clean(r.error), "note": None if r.note is None else clean(r.note),
        "text": clean(r.text), "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
        "tokens_source": r.tokens_source, "video_seconds": r.video_seconds, "clips": r.clips,
        "cost_usd": r.cost_usd, "cost_source": r.cost_source, "ttft_s": r.ttft_s, "latency_s": r.latency_s,
        "attempts": r.attempts, "request_id": r.request_id, "served_model": r.served_model, "late": int(r.late),
        "http_status": r.http_status, "finish_reason": r.finish_reason, "started_at": started_at,
        "finished_at": finished_at, "cached_input_tokens": r.cached_input_tokens,
        "cache_write_input_tokens": r.cache_write_input_tokens, "batch_id": r.batch_id,
    }
    return tuple(values[c] for c in CALL_COLUMNS)


def _options_json(options: Mapping[str, object]) -> str:
    # default=str: a value JSON has no type for (a Path, a dataclass) is kept as its text, not refused.
    return json.dumps(dict(options), default=str, sort_keys=True, ensure_ascii=False)


def _parse_options(text: str | None) -> object:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def write_records(records: Iterable[CallRecord], dest: str | os.PathLike[str], *,
                  turns: Sequence[int] | None = None) -> int:
    """Write call records (a result's ``calls``) to ``dest``: JSON Lines for ``.jsonl``, CSV for ``.csv``
    (ValueError for another suffix). Keys are redacted as in the log. Returns the rows written. ``turns``, one per
    record, adds a ``turn`` column first (a thread's export: which run of the conversation each call was).

        write_records(result.calls, "run.jsonl")
    """
    dest = Path(dest).expanduser()
    suffix = dest.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise ValueError(f"export writes .jsonl or .csv, not {dest.name!r}")
    secrets = environ_secrets()
    rows = []
    for i, r in enumerate(records):
        row: dict[str, object] = {"turn": turns[i]} if turns is not None else {}
        row.update({name: getattr(r, name, None) for name in _RECORD_FIELDS})
        for name in ("text", "error", "note"):
            value = row[name]
            if isinstance(value, str):
                row[name] = redact_secrets(value, secrets)
        rows.append(row)
    return _write_rows(rows, dest, (("turn",) if turns is not None else ()) + _RECORD_FIELDS)


class ExportsCalls:
    """What every job kind's result does with its calls: ``export(dest)`` writes them to a file. ``run_id``
    names the run in the run log (``%fuse history --run ID``), None when the log is off."""

    run_id: str | None

    @property
    def calls(self) -> Sequence[CallRecord]:
        raise NotImplementedError

    def export(self, dest: str | os.PathLike[str]) -> int:
        """Write every call of this run to ``dest``: JSON Lines for ``.jsonl``, CSV for ``.csv``, one row per
        call with its text, status, tokens, cost and timings (keys redacted). Returns the rows written.

            r.export("run.jsonl")
        """
        try:
            return write_records(self.calls, dest)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"cannot write {dest}: {exc.strerror or exc}") from None


def _write_rows(rows: list[dict[str, object]], dest: Path, columns: tuple[str, ...]) -> int:
    """``rows`` as JSON Lines (``.jsonl``) or CSV (else) at ``dest``, written beside it and then moved: a failed
    export never leaves half a file. Returns the number of rows."""
    partial = dest.with_name(dest.name + ".part")
    with partial.open("w", encoding="utf-8", newline="") as out:
        if dest.suffix.lower() == ".jsonl":
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(out, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(rows)
    partial.replace(dest)
    return len(rows)


def user_data_dir(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user data folder of fusion_magic, as platformdirs names it (without depending on it):
    $XDG_DATA_HOME/fusion_magic or ~/.local/share/fusion_magic on Linux and the BSDs,
    ~/Library/Application Support/fusion_magic on macOS, %LOCALAPPDATA%\\fusion_magic on Windows."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or Path.home())
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / APP_DIR
    if platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR
    xdg = env.get("XDG_DATA_HOME", "").strip()
    # The XDG spec ignores a relative $XDG_DATA_HOME.
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share") / APP_DIR


def default_path(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The run log when neither ``%config FusionMagics.run_log`` nor $FUSION_MAGIC_RUN_LOG names one: one
    file per user in ``user_data_dir`` (the folder is made on the first write)."""
    return user_data_dir(environ, platform) / DEFAULT_NAME


_RECORD_FIELDS = ("call_id", "model", "role", "label", "round", "ordering", "status", "error", "note", "text",
                  "input_tokens", "output_tokens", "tokens_source", "video_seconds", "clips", "cost_usd",
                  "cost_source", "ttft_s", "latency_s", "attempts", "request_id", "served_model", "late",
                  "http_status", "finish_reason", "cached_input_tokens", "cache_write_input_tokens")


__all__ = [
    "CALL_COLUMNS",
    "DEFAULT_NAME",
    "EXPORT_COLUMNS",
    "KINDS",
    "RUNS_FRAME_COLUMNS",
    "RUN_STATUSES",
    "ExportsCalls",
    "RunListener",
    "RunLog",
    "default_path",
    "environ_secrets",
    "redact_secrets",
    "user_data_dir",
    "write_records",
]
