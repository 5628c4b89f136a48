"""Questions about a video: ask each model (``--understand``), then fuse their answers with the ``%%fuse``
judge and modes when more than one answered.

A question is an ordinary call (``calls.run_call`` with a ``VideoQuestion``): retries, timeout, pricing,
events and the cache come with it. ``local:frames`` answers offline with a PyAV analysis of the file (in a
child process), as text every other model and the judge can read.

    records, analysis, fused = await ask_all(plan, ctx)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..calls.call import CallContext, run_call
from ..core.events import CallFinished, CallStarted, emit
from ..core.record import CallRecord
from ..providers.base import Message
from ..providers.video.base import VideoQuestion, VideoSource
from .jobs import KEYFRAMES_DIR
from .plan import Asker, VideoPlan

if TYPE_CHECKING:
    from ..judge.verdict import Judgement
    from .analyse import Analysis


def question_for(asker: Asker, prompt: str, source: VideoSource, *, system: str | None = None,
                 json_schema: dict[str, object] | None = None, schema_name: str = "answer",
                 max_tokens: int | None = None, previous_interaction: str | None = None) -> VideoQuestion:
    """The request that asks ``asker`` about ``source`` (``previous_interaction``: the Omni interaction
    that made the clip, continued instead of sending the clip again)."""
    assert asker.target is not None
    messages = ((Message("system", system),) if system else ()) + (Message("user", prompt),)
    return VideoQuestion(model=asker.target.model, messages=messages, video=source, json_schema=json_schema,
                         schema_name=schema_name, max_tokens=max_tokens,
                         previous_interaction=previous_interaction)


async def ask(asker: Asker, prompt: str, source: VideoSource, ctx: CallContext, *, out_dir: Path,
              role: str = "understand", label: str | None = None) -> tuple[CallRecord, Analysis | None]:
    """One model's answer (never raising for a failure: it lands on the record)."""
    if asker.offline:
        return await frames_answer(source, ctx, out_dir=out_dir, role=role, label=label or asker.label)
    assert asker.target is not None
    record = await run_call(asker.target, question_for(asker, prompt, source), ctx=ctx, role=role,
                            label=label or asker.label)
    return record, None


async def frames_answer(source: VideoSource, ctx: CallContext, *, out_dir: Path, role: str,
                        label: str) -> tuple[CallRecord, Analysis | None]:
    """``local:frames``: the file's technical analysis as the answer (free, offline)."""
    from .analyse import AnalysisFailed, analyse

    assert source.path is not None
    record = CallRecord(model="local:frames", role=role, label=label, status="waiting")
    record.call_id = next(ctx.counter)
    emit(ctx.listeners, CallStarted(record))
    started = time.monotonic()
    analysis = None
    try:
        analysis = await analyse(source.path, out_dir / KEYFRAMES_DIR / source.path.stem)
        record.text, record.status = analysis.describe(), "ok"
        record.cost_usd, record.cost_source = 0.0, "local analysis (free)"
    except AnalysisFailed as exc:
        record.status, record.error = exc.kind, str(exc)
    except asyncio.CancelledError:
        record.status, record.error = "cancelled", "interrupted"
        record.latency_s = time.monotonic() - started
        emit(ctx.listeners, CallFinished(record))
        raise
    record.latency_s = time.monotonic() - started
    emit(ctx.listeners, CallFinished(record))
    return record, analysis


async def ask_all(plan: VideoPlan, ctx: CallContext) -> tuple[list[CallRecord], Analysis | None,
                                                             Judgement | None]:
    """Every asker's answer, concurrently, and the judge's fusion of them when two or more answered."""
    assert plan.source is not None
    results = await asyncio.gather(*(ask(a, plan.prompt, plan.source, ctx, out_dir=plan.out_dir)
                                     for a in plan.askers))
    records = [record for record, _ in results]
    analysis = next((a for _, a in results if a is not None), None)
    fused = None
    if sum(r.ok for r in records) >= 2:
        from ..judge.judging import judge_answers

        fused = await judge_answers(plan.prompt, records, plan.settings, ctx, mode=plan.mode, judge=plan.judge)
    return records, analysis, fused


__all__ = ["ask", "ask_all", "frames_answer", "question_for"]
