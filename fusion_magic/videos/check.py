"""``--check MODEL``: after generation, a model watches each clip and scores how well it matches the prompt
(0-10, with reasons and timestamps); the best clip is marked. ``--check local:frames`` checks the technical
spec offline instead (duration, aspect, resolution, audio, black or frozen stretches): its result is shown as
"spec", its first clip as "best spec", never as a score of the content (``frames_check``).

An Omni checker scoring a clip the same Omni model made continues that interaction
(``previous_interaction_id``): the model already holds the clip, so nothing is uploaded again, and a clip over
the inline limit can still be checked. When the interaction is gone (expired, a clip reused from long ago),
the clip is sent instead and the first, failed call stays in the ledger.

    records = await check_clips(plan.check, videos, ctx, asked_in(plan))
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..calls.call import CallContext, run_call
from ..core.events import CallFinished, emit
from ..core.record import CallRecord
from ..judge.verdicts import reply_score
from ..providers.video.base import VideoQuestion, VideoRequest, VideoSource
from .events import VideoUpdated
from .plan import Asker, VideoPlan
from .result import Video
from .understand import question_for

CHECK_SYSTEM = (
    "You check generated video clips against the prompt they were made from. Watch the whole clip. Score from "
    "0 (nothing like the prompt) to 10 (everything the prompt asks for, well made), and give short reasons, each "
    "with the time in the clip (M:SS) where you saw it. Answer with JSON only."
)
CHECK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["score", "reasons"],
}


def read_score(text: str) -> tuple[float, list[str]] | None:
    """Score and reasons from a checker's answer: its JSON, or failing that a ``score: N`` in prose (read as the
    evaluation reads a final answer: "score: 7 or 8" and "score: not 7" are no score), within [0, 10]."""
    found = reply_score(text, out_of=10)
    score = found.value
    # JSON true is an int to Python, and NaN or Infinity would rank a clip best: none of them is a score. Nor does
    # prose around the JSON overrule its own score that is no number.
    if not isinstance(score, int | float | Fraction) or isinstance(score, bool) or not math.isfinite(score):
        return None
    if not found.in_json:
        return max(0.0, min(10.0, float(score))), [text.strip()]
    reasons = found.data.get("reasons")
    return max(0.0, min(10.0, float(score))), [str(r) for r in reasons] if isinstance(reasons, list) else []


@dataclass(frozen=True)
class Asked:
    """What a clip was asked to be, as ``local:frames`` checks it: from the run's request, or from a receipt's
    ``parameters`` when a resume checks a clip an earlier run submitted."""

    seconds: float | None = None
    aspect: str | None = None
    resolution: str | None = None

    @classmethod
    def of(cls, request: VideoRequest) -> Asked:
        return cls(request.seconds, request.aspect, request.resolution)

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> Asked:
        seconds, aspect, resolution = (parameters.get(k) for k in ("seconds", "aspect", "resolution"))
        return cls(float(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else None,
                   aspect if isinstance(aspect, str) else None, resolution if isinstance(resolution, str) else None)


def asked_in(plan: VideoPlan) -> dict[str, Asked]:
    """What each planned clip asks for, by its label."""
    return {c.label: Asked.of(c.request) for c in plan.clips}


async def check_clips(checker: Asker, videos: list[Video], ctx: CallContext,
                      asked: Mapping[str, Asked]) -> list[CallRecord]:
    """Score every saved clip with ``checker`` against the prompt it was made from (``Video.prompt``) and, for
    ``local:frames``, what it was ``asked`` (by label); mark the best. Failures land on the records."""
    ready = [v for v in videos if v.ok and v.path is not None]
    per_clip = await asyncio.gather(*(_check(checker, v, ctx, asked.get(v.label, Asked())) for v in ready))
    scored = [v for v in ready if v.score is not None]
    if scored:
        best = max(scored, key=lambda v: v.score or 0.0)  # the first of equals: pool order
        best.best = True
        emit(ctx.listeners, VideoUpdated(best))
    return [record for records in per_clip for record in records]


def continues_interaction(checker: Asker, video: Video) -> bool:
    """Whether the check can continue the Omni interaction that made the clip: the same Omni model, which
    then watches the clip it already holds instead of receiving it again."""
    target = checker.target
    return (target is not None and target.spec.protocol == "interactions" and checker.model_id == video.model
            and bool(video.job_id))


async def _check(checker: Asker, video: Video, ctx: CallContext, asked: Asked) -> list[CallRecord]:
    assert video.path is not None
    if checker.offline:
        # The ledger, the run log and an export name what was measured: the spec, not the content.
        return [_frames_check(video, ctx, f"spec {video.label}", asked)]
    label = f"check {video.label}"
    assert checker.target is not None
    source = VideoSource(path=video.path)
    prompt = f"The prompt the clip was made from:\n\n{video.prompt}\n\nScore the clip."

    def request(previous: str | None) -> VideoQuestion:
        return question_for(checker, prompt, source, system=CHECK_SYSTEM, json_schema=CHECK_SCHEMA,
                            schema_name="check", max_tokens=600, previous_interaction=previous)

    records: list[CallRecord] = []
    if continues_interaction(checker, video):
        record = await run_call(checker.target, request(video.job_id), ctx=ctx, role="check", label=label)
        records.append(record)
        if record.ok:
            _score(checker, video, record, ctx)
            return records
        if record.status == "cancelled":
            return records
        # The interaction may be gone (not stored, expired, a clip reused from long ago): send the clip.
        video.notes.append(f"the check could not continue the interaction that made the clip "
                           f"({record.error or record.status}); the clip was sent instead")
    record = await run_call(checker.target, request(None), ctx=ctx, role="check", label=label)
    records.append(record)
    _score(checker, video, record, ctx)
    return records


def _score(checker: Asker, video: Video, record: CallRecord, ctx: CallContext) -> None:
    parsed = read_score(record.text) if record.ok else None
    if parsed is not None:
        video.score, reasons = parsed
        video.score_reasons = "\n".join(reasons)
    elif record.ok:
        video.notes.append(f"the check by {checker.model_id} gave no score")
    emit(ctx.listeners, VideoUpdated(video))


def _frames_check(video: Video, ctx: CallContext, label: str, asked: Asked) -> CallRecord:
    from .frames_check import CHECKER, check_spec, spec_tally

    record = CallRecord(model=CHECKER, role="check", label=label, call_id=next(ctx.counter))
    if video.analysis is None:
        record.status, record.error = "analysis", "the clip could not be analysed"
    else:
        score, reasons = check_spec(video.analysis, seconds=asked.seconds, aspect=asked.aspect,
                                    resolution=asked.resolution)
        video.score, video.score_reasons, video.spec = score, "\n".join(reasons), spec_tally(reasons)
        record.text, record.status = video.score_reasons, "ok"
        record.cost_usd, record.cost_source, record.latency_s = 0.0, "local analysis (free)", 0.0
    emit(ctx.listeners, VideoUpdated(video))
    emit(ctx.listeners, CallFinished(record))
    return record


__all__ = ["CHECK_SCHEMA", "CHECK_SYSTEM", "Asked", "asked_in", "check_clips", "continues_interaction", "read_score"]
