"""Progress lines for frontends without widgets (terminal IPython, ``python -m fusion_magic``): one line
per finished call, so a slow pool visibly moves. Model text is not printed here; the final report is.

    listeners.append(ProgressPrinter(sys.stderr))
"""

from __future__ import annotations

from typing import TextIO

from ..core.events import CallFinished, EngineEvent
from ..present.wording import status_word
from .events import JudgeStarted, RunFinished, RunStarted, RunStopped


class ProgressPrinter:
    """An engine listener that writes a short line per run start, finished call and judge start.
    It goes quiet at ``RunFinished``: late members report after the cell ended, and their lines would
    otherwise land in whichever cell is running then.

        printer = ProgressPrinter(sys.stderr)
        fusion_magic.fuse("...", listeners=[printer])
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.finished = False

    def __call__(self, event: EngineEvent) -> None:
        if self.finished:
            return
        if isinstance(event, RunFinished):
            self.finished = True
            return
        line = None
        if isinstance(event, RunStopped):
            self.finished = True
            # An interrupt's one line (the magic's, or the command's) says what stopped and what was kept.
            line = None if event.reason == "cancelled" else f"stopped: {event.reason}"
        elif isinstance(event, RunStarted):
            n = len(event.models)
            line = f"fusing {n} answer{'s' if n != 1 else ''} ({event.mode}, judge: {event.judge})..."
        elif isinstance(event, CallFinished):
            r = event.response
            secs = f"{r.latency_s:.1f}s" if r.latency_s is not None else "?"
            who = r.label or r.role
            rnd = f" order {r.ordering}" if r.ordering else f" round {r.round}" if r.round else ""
            line = f"  {who}{rnd}: {status_word(r)} in {secs}"
        elif isinstance(event, JudgeStarted):
            line = f"  judging with {event.judge}..."
        if line is not None:
            print(line, file=self.stream, flush=True)
