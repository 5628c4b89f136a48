"""A fused run's result: the whole run (`FusionResult`), with what the judge decided (`Verdict`, from
``judge/``), made of call records (`fusion_magic.core.record.CallRecord`, alias `Response`). Plain dataclasses:
no network code, no IPython.

    f = fusion_magic.fuse("Why is the sky blue?", pool=["local:gemma3-270m"] * 3, judge="vote")
    f.answer, f.verdict, f.ledger
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

# The result renders itself through these; they know result types only as type hints, so this is no circle.
from ..calls.job import RunResult
from ..calls.runlog import environ_secrets, redact_secrets, write_records
from ..core.attachment import Attachment
from ..core.errors import ConfigError
from ..core.ledger import ledger_frame
from ..core.record import Response
from ..judge.verdict import Verdict
from ..present.shown_once import ShownOnce
from .report import html_report, markdown_report, text_report, thread_markdown
from .thread import lineage

if TYPE_CHECKING:
    import pandas as pd

    from ..calls.settings import Settings
    from ..judge.analysis import JudgeAnalysis
    from .options import FuseOptions


@dataclass
class FusionResult(ShownOnce, RunResult):
    """A fused run: every member's answer, the judge's verdict, the fused answer and the ledger.

        r = fusion_magic.fuse("Why is the sky blue?", pool=["local:gemma3-270m"] * 3, judge="vote")
        print(r.answer); r.ledger
    """

    prompt: str
    mode: str
    judge: str
    pool: list[str]
    responses: list[Response] = field(default_factory=list)
    verdict: Verdict | None = None
    answer: str = ""
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    judge_responses: list[Response] = field(default_factory=list)
    run_id: str | None = field(default=None, compare=False)  # this run in the run log (%fuse history)
    _shown_live: bool = field(default=False, repr=False)
    # What this turn showed the models besides the prompt (``--attach``): names and hashes in the run log.
    attachments: tuple[Attachment, ...] = ()
    # The run this one continues (``--continue``, ``ask``), and how its members saw the thread: "fused" or "own".
    parent: FusionResult | None = field(default=None, repr=False, compare=False)
    thread: str | None = None
    # The options the run had: a follow-up's defaults (pool, judge, mode and the rest are the earlier run's).
    options: FuseOptions | None = field(default=None, repr=False, compare=False)
    # The settings its calls saw (keys, endpoints, prices, retries, the run log): a follow-up from Python runs
    # with them, as %%fuse --continue runs with the magic's. Never shown: a key may be among them.
    settings: Settings | None = field(default=None, repr=False, compare=False)

    # Set by the api (a layer above this one): runs a follow-up, as ``fusion_magic.fuse(prompt, parent=self)``.
    asker: ClassVar[Callable[..., Any] | None] = None

    @property
    def turns(self) -> list[FusionResult]:
        """The thread this run ends: the first run, each follow-up, and this run last (``[self]`` alone when
        it continues nothing)."""
        return lineage(self)

    def ask(self, prompt: str, **options: Any) -> Any:
        """Ask a follow-up of the whole pool: every member gets this conversation so far (each earlier prompt
        with its attachments, the fused answer as the assistant's turn), then ``prompt``. The pool, judge, mode
        and the rest default to this run's; ``options`` are ``fuse``'s keywords (``attach=``, ``thread="own"``,
        ``judge=``, ``background=True`` ...).

            r2 = r.ask("Why? Answer in two sentences."); r3 = r2.ask("Now check step 3", thread="own")
        """
        if FusionResult.asker is None:
            raise ConfigError("import fusion_magic first: it runs follow-ups")
        if self.settings is not None:
            options.setdefault("settings", self.settings)
        return FusionResult.asker(prompt, parent=self, **options)

    @property
    def members(self) -> list[Response]:
        """Each member's latest good answer (its last ok debate round), else its last call, in pool order."""
        last: dict[str, Response] = {}
        for r in self.responses:
            # A late answer was not judged: it stays out until a rejudge takes it in (stable summary()).
            if r.label is not None and not r.late and (r.ok or not (r.label in last and last[r.label].ok)):
                last[r.label] = r
        return list(last.values())

    @property
    def failed(self) -> list[Response]:
        """Member calls that ended without a clean answer (late members were not judged and don't count)."""
        return [r for r in self.responses if not r.ok and not r.late and not r.state.is_running]

    @property
    def degraded(self) -> bool:
        """True when any member or the judge failed, or the judge fell back to a vote."""
        judge_failed = any(not r.ok for r in self.judge_responses)
        fell_back = self.verdict is not None and self.verdict.fallback
        return bool(self.failed) or judge_failed or fell_back

    @property
    def analysis(self) -> JudgeAnalysis | None:
        """The judge's structured comparison of the answers (consensus, contradictions, unique points,
        blind spots, failed members), or None when there is none, and ``verdict.notes`` (the report's Judge
        section) says why: under ``-j vote`` the vote is model-free, so no model compared the answers (use
        ``-j MODEL`` for who-said-what); a judge that gave none has its own note; a judge that failed fell back
        to the vote (its reasoning says why).

            r = fusion_magic.fuse("2+2?", pool=pool, judge="vote")
            r.analysis is None; r.verdict.notes   # ["No analysis (who said what): the vote is model-free ..."]
        """
        return self.verdict.analysis if self.verdict is not None else None

    @property
    def position_consistency(self) -> float | None:
        """With ``--orders N``: the share of the judge's orderings of the answers that agree with the verdict's
        pick (1.0: the order never changed its mind); None when fewer than two orderings were judged."""
        return self.verdict.position_consistency if self.verdict is not None else None

    @property
    def calls(self) -> list[Response]:
        """Every call in start order: members (all rounds) and judge."""
        return sorted([*self.responses, *self.judge_responses], key=lambda r: r.call_id)

    @property
    def ledger(self) -> pd.DataFrame:
        """One row per call, cost and latency included."""
        return ledger_frame(self.calls)

    @property
    def n_ok(self) -> int:
        return sum(1 for r in self.members if r.ok)

    def to_markdown(self) -> str:
        """The whole run as Markdown: answer, verdict, each member, the ledger (after the thread's earlier
        turns, when it continues one)."""
        return markdown_report(self)

    def export(self, dest: str | os.PathLike[str]) -> int:
        """Write the whole thread: ``.md`` as a transcript (each turn's prompt, attachments and fused answer, then
        this run's report); ``.jsonl``/``.csv`` one row per call of every turn, with its ``turn`` (1 = the first
        run). Keys are redacted. Returns the rows written (for ``.md``, the turns).

            r3.export("conversation.md"); r3.export("calls.jsonl")
        """
        path = Path(dest).expanduser()
        try:
            if path.suffix.lower() == ".md":
                runs = self.turns
                partial = path.with_name(path.name + ".part")
                # As the .jsonl/.csv rows are: a key a model echoed never reaches the file.
                secrets = [*environ_secrets(), *(self.settings.keys.values() if self.settings is not None else ())]
                partial.write_text(redact_secrets(thread_markdown(runs), secrets), encoding="utf-8")
                partial.replace(path)
                return len(runs)
            records = [(n, call) for n, run in enumerate(self.turns, 1) for call in run.calls]
            return write_records([c for _, c in records], path, turns=[n for n, _ in records])
        except ValueError as exc:
            raise ConfigError(str(exc).replace("export writes .jsonl or .csv", "export writes .md, .jsonl or .csv")
                              ) from None
        except OSError as exc:
            raise ConfigError(f"cannot write {dest}: {exc.strerror or exc}") from None

    def to_text(self) -> str:
        """The whole run as plain text, as shown in a terminal."""
        return text_report(self)

    def summary(self) -> str:
        """A short deterministic line (no timings, no model text): safe for nbval to compare."""
        state = "degraded" if self.degraded else "ok"
        return (
            f"<FusionResult mode={self.mode} judge={self.judge} "
            f"answers={self.n_ok}/{len(self.pool)} {state}>"
        )

    def to_html(self) -> str:
        """The whole run as safe HTML (the static report a saved notebook shows)."""
        return html_report(self)
