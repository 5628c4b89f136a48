"""What every job kind's result shares (``JobResult``), and the base class that gives it (``RunResult``).

A fused run, a video run and an evaluation each return their own result class, but one small surface is the
same for all: how the run ended (``status``), its calls and their ledger, whether it is ``degraded``, its
``run_id`` in the run log, and ``export()``. The api's one run path (``api.start``) and the magics rely on
this surface only, so a new job kind gets the run log, export and the interrupt handling by deriving its
result from ``RunResult``.

    def report(result: JobResult) -> str:
        return f"{result.status}: {len(result.calls)} calls, run {result.run_id}"
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from ..core.record import CallRecord
from .runlog import ExportsCalls

if TYPE_CHECKING:
    import pandas as pd


class RunStatus(StrEnum):
    """How a run ended, in the run log's words (``runlog.RUN_STATUSES``, less ``running``)."""

    OK = "ok"
    DEGRADED = "degraded"  # it finished, but a call failed, a clip did not arrive, a judge fell back ...
    INTERRUPTED = "interrupted"  # stopped (Ctrl-C, cancel()): the result holds what had arrived
    FAILED = "failed"  # it raised; there is no result to hold this status


class JobResult(Protocol):
    """The surface every job kind's result has (``FusionResult``, ``VideoResult``, ``EvalResult``).

        result: JobResult = fusion_magic.fuse("Why is the sky blue?")
        result.status, result.degraded, result.ledger, result.export("run.jsonl")
    """

    run_id: str | None

    @property
    def status(self) -> RunStatus: ...

    @property
    def calls(self) -> Sequence[CallRecord]: ...

    @property
    def ledger(self) -> pd.DataFrame: ...

    @property
    def degraded(self) -> bool: ...

    def export(self, dest: str | os.PathLike[str]) -> int: ...


class RunResult(ExportsCalls):
    """The base of every job kind's result: ``export()`` and ``run_id`` (``ExportsCalls``), and ``status`` from
    ``interrupted`` (set by the run path when the run is stopped) and the class's own ``degraded``.

    ``status`` describes a run that ended; read while the run goes on, it says how it stands so far.
    """

    interrupted: bool = False

    @property
    def degraded(self) -> bool:
        raise NotImplementedError

    @property
    def status(self) -> RunStatus:
        """How the run ended: interrupted, degraded (``degraded``'s reasons), or ok."""
        if self.interrupted:
            return RunStatus.INTERRUPTED
        return RunStatus.DEGRADED if self.degraded else RunStatus.OK


__all__ = ["JobResult", "RunResult", "RunStatus"]
