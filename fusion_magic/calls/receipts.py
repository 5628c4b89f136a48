"""Batch receipts: every batch a run submits, written to the run log the moment it is submitted and again the
moment the provider accepts it, so a dead kernel, a closed laptop or a restarted machine loses nothing.

A receipt is a row of ``batches`` (the evaluation it belongs to, provider, endpoint, model, wave, the provider's
batch id once accepted, its last state and counts) with its requests' ids in ``batch_requests``. It is written
in two steps: ``intent`` before the submit is sent (no batch id yet) and ``accepted`` when the provider answers.
A receipt left at ``submitting`` means the answer never arrived: a resume asks the provider (``BatchAPI.find``)
before it would submit those requests again. ``close`` marks an evaluation's receipts used up once every row is
in: the same evaluation run again later starts afresh (as a live run would) instead of re-reading old batches.

    receipts = Receipts(RunLog(path), evaluation="ev-3f2a...")
    receipt = receipts.intent("openai", base_url, "gpt-4o-mini", wave=1, custom_ids=ids)
    receipts.accepted(receipt, status)
    receipts.open_receipts()   # what a resume re-attaches to
"""

from __future__ import annotations

import secrets as _random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.errors import ConfigError
from ..providers.batch.base import BatchStatus
from .runlog import RunLog, environ_secrets, redact_secrets

SUBMITTING = "submitting"  # the submit is on its way; no answer from the provider yet
LOST = "lost"  # the submit's answer never came and the provider lists no such batch


@dataclass(frozen=True)
class Receipt:
    """One batch as the run log holds it (``batch_id`` None: never accepted, or its answer lost)."""

    receipt: str
    provider: str
    base_url: str
    model: str
    wave: int
    batch_id: str | None
    state: str
    created_at: float
    custom_ids: tuple[str, ...]
    error: str | None = None
    wire: str | None = None  # the provider's own word for its state, as last reported


class Receipts:
    """The receipts of one evaluation (``evaluation``: its identity) in one run log."""

    def __init__(self, log: RunLog, evaluation: str, run_id: str | None = None) -> None:
        self.log = log
        self.evaluation = evaluation
        self.run_id = run_id

    def intent(self, provider: str, base_url: str, model: str, *, wave: int, custom_ids: Sequence[str]) -> str:
        """Write the receipt of a batch about to be submitted, before it is sent; its id (also the tag the
        batch carries at the provider, so ``find`` can recognise it). ``ConfigError`` when the run log cannot
        be written: a paid batch is never sent without its receipt."""
        receipt = f"fm-{self.evaluation[:16]}-{_random.token_hex(6)}"
        base = redact_secrets(base_url, environ_secrets())
        ok = self.log.execute(
            "INSERT INTO batches (receipt, evaluation, run_id, provider, base_url, model, wave, state, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (receipt, self.evaluation, self.run_id, provider, base, model, wave, SUBMITTING, time.time()))
        ok = ok and self.log.execute("INSERT OR IGNORE INTO batch_requests (receipt, custom_id) VALUES (?, ?)",
                                     rows=((receipt, c) for c in custom_ids))
        if not ok:
            raise ConfigError(f"batch receipts cannot be written to the run log {self.log.path} "
                              f"({self.log.last_error}): nothing was submitted")
        return receipt

    def accepted(self, receipt: str, status: BatchStatus) -> None:
        """The provider accepted the batch: its id and first state, written at once."""
        self.log.execute(
            "UPDATE batches SET batch_id = ?, state = ?, wire = ?, total = ?, updated_at = ? WHERE receipt = ?",
            (status.id, status.state.value, status.wire, status.total, time.time(), receipt))

    def update(self, receipt: str, status: BatchStatus) -> None:
        """The batch's state and counts as the provider last reported them."""
        self.log.execute(
            "UPDATE batches SET state = ?, wire = ?, total = ?, completed = ?, failed = ?, error = ?, cost_usd = ?, "
            "updated_at = ? WHERE receipt = ?",
            (status.state.value, status.wire, status.total, status.completed, status.failed, status.error,
             status.cost_usd, time.time(), receipt))

    def mark(self, receipt: str, state: str, error: str | None = None) -> None:
        """A receipt's state without a provider status: ``lost``, or refused with the provider's ``error``."""
        self.log.execute("UPDATE batches SET state = ?, error = ?, updated_at = ? WHERE receipt = ?",
                         (state, error, time.time(), receipt))

    def close(self) -> None:
        """Every row of the evaluation is in: its receipts are used up (a later run of it starts afresh)."""
        self.log.execute("UPDATE batches SET closed = 1 WHERE evaluation = ? AND closed = 0", (self.evaluation,))

    def open_receipts(self) -> list[Receipt]:
        """This evaluation's receipts a resume re-attaches to, oldest first (none when the log has no batches)."""
        try:
            rows = self.log.query(
                "SELECT receipt, provider, base_url, model, wave, batch_id, state, created_at, error, wire "
                "FROM batches WHERE evaluation = ? AND closed = 0 ORDER BY created_at", (self.evaluation,))
            ids: dict[str, list[str]] = {}
            for receipt, custom_id in self.log.query(
                    "SELECT r.receipt, r.custom_id FROM batch_requests r JOIN batches b ON b.receipt = r.receipt "
                    "WHERE b.evaluation = ? AND b.closed = 0", (self.evaluation,)):
                ids.setdefault(str(receipt), []).append(str(custom_id))
        except sqlite3.OperationalError:  # a log written before batches existed: no table, no receipt
            return []
        return [Receipt(str(r[0]), str(r[1]), str(r[2] or ""), str(r[3] or ""), int(r[4] or 0),  # type: ignore[call-overload]
                        None if r[5] is None else str(r[5]), str(r[6]), float(r[7]),  # type: ignore[arg-type]
                        tuple(ids.get(str(r[0]), ())), None if r[8] is None else str(r[8]),
                        None if r[9] is None else str(r[9]))
                for r in rows]


__all__ = ["LOST", "SUBMITTING", "Receipt", "Receipts"]
