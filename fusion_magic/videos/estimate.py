"""``%%video --estimate``: what a run would cost, per clip, before anything is submitted.

    print(VideoEstimate.of(plan))
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.pricing import price_for
from ..present.estimate import CostRow, estimate_text, seconds_counted
from .plan import FRAMES, VideoPlan, default_seconds


@dataclass(frozen=True)
class VideoEstimate:
    """One row per clip (model, seconds, USD per second, estimate, price source) and the total (None when a
    price is unknown)."""

    rows: tuple[tuple[str, int, float | None, float | None, str], ...]
    total: float | None
    notes: tuple[str, ...] = ()
    # A question about a video (--understand): each model that answers, and its price's source ("": none is
    # known, or local:frames, which runs here). Billed per token of the video, which is not projected.
    askers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, plan: VideoPlan) -> VideoEstimate:
        rows = []
        for clip in plan.clips:
            seconds = clip.billed_seconds or clip.request.seconds or default_seconds(clip.target, clip.request.model)
            per_second = clip.price.per_second if clip.price is not None else None
            source = clip.price.source if clip.price is not None else ""  # "": no price known
            rows.append((clip.model_id, seconds, per_second, clip.estimate_usd, source))
        askers = tuple((a.model_id, "" if a.offline else _price_source(a.model_id, plan))
                       for a in plan.askers)
        return cls(tuple(rows), plan.estimate_usd, plan.notes, askers)

    def __str__(self) -> str:
        rows = [CostRow("clip", model, seconds_counted(seconds, per_second), source, usd)
                for model, seconds, per_second, usd, source in self.rows]
        rows += [CostRow("answer", model, "frames read on this machine", "free", 0.0) if model == FRAMES else
                 CostRow("answer", model, "the video's and question's tokens (not projected)", source, None)
                 for model, source in self.askers]
        if self.askers:
            return estimate_text(rows, self.total, unknown="a question is billed per token of the video: about 300 "
                                 "a second for Gemini", notes=self.notes)
        return estimate_text(rows, self.total, basis="each clip's seconds at its model's price per second",
                             price_hint="%config VideoMagics.prices", notes=self.notes)

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(str(self))  # type: ignore[attr-defined]


def _price_source(model: str, plan: VideoPlan) -> str:
    price = price_for(model, plan.settings.prices)
    return "" if price is None else price.source


__all__ = ["VideoEstimate"]
