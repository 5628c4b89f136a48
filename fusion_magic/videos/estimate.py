"""``%%video --estimate``: what a run would cost, per clip, before anything is submitted.

    print(VideoEstimate.of(plan))
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan import VideoPlan, default_seconds


@dataclass(frozen=True)
class VideoEstimate:
    """One row per clip (model, seconds, USD per second, estimate, price source) and the total (None when a
    price is unknown)."""

    rows: tuple[tuple[str, int, float | None, float | None, str], ...]
    total: float | None
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, plan: VideoPlan) -> VideoEstimate:
        rows = []
        for clip in plan.clips:
            seconds = clip.billed_seconds or clip.request.seconds or default_seconds(clip.target, clip.request.model)
            per_second = clip.price.per_second if clip.price is not None else None
            source = clip.price.source if clip.price is not None else "unknown: %config VideoMagics.prices"
            rows.append((clip.model_id, seconds, per_second, clip.estimate_usd, source))
        return cls(tuple(rows), plan.estimate_usd, plan.notes)

    def __str__(self) -> str:
        lines = ["Estimate (nothing submitted):"]
        for model, seconds, per_second, usd, source in self.rows:
            rate = "?" if per_second is None else f"${per_second:.2f}/s"
            cost = "unknown" if usd is None else f"${usd:.2f}"
            lines.append(f"  {model}: {seconds} s x {rate} = {cost}  ({source})")
        total = "unknown (a price is missing)" if self.total is None else f"${self.total:.2f}"
        lines.append(f"Total: {total}")
        lines.extend(self.notes)
        return "\n".join(lines)

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(str(self))  # type: ignore[attr-defined]


__all__ = ["VideoEstimate"]
