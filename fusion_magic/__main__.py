"""``python -m fusion_magic "question"``: one fused run from the shell, with the %%fuse defaults.

Progress goes to stderr as calls finish; the full report (answers, verdict, fused answer, ledger) to
stdout. Takes the same options as %%fuse.
"""

from __future__ import annotations

import argparse
import sys

from . import _args
from .errors import FusionError
from .events import CallFinished, EngineEvent, JudgeStarted, RunStarted


def progress(event: EngineEvent) -> None:
    """Print one line per finished call so a slow pool visibly moves."""
    if isinstance(event, RunStarted):
        print(f"fusing {len(event.models)} answers ({event.mode}, judge: {event.judge})...", file=sys.stderr)
    elif isinstance(event, CallFinished):
        r = event.response
        secs = f"{r.latency_s:.1f}s" if r.latency_s is not None else "?"
        who = r.label or r.role
        print(f"  {who}: {r.status} in {secs}" + (f" ({r.error})" if r.error else ""), file=sys.stderr)
    elif isinstance(event, JudgeStarted):
        print(f"  judging with {event.judge}...", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fusion_magic", parents=[_args.FUSE_PARSER],
        description="Fuse the answers of several models to one question (offline by default).",
    )
    parser.add_argument("question", nargs="+", help="the prompt")
    ns = parser.parse_args(argv)
    from .api import fuse, make_plan
    from .estimate import check_budget, estimate

    options = {k: getattr(ns, k) for k in ("judge", "mode", "self_n", "rounds", "quorum", "deadline",
                                            "timeout", "max_tokens", "temperature", "system")}
    pool = [p.strip() for p in ns.pool.split(",") if p.strip()] if ns.pool else None
    prompt = " ".join(ns.question)
    try:
        plan = make_plan(prompt, cache=ns.cache, pool=pool, **options)
        for warning in plan.warnings:
            print(warning, file=sys.stderr)
        if ns.estimate:
            print(estimate(plan))
            return 0
        if ns.budget is not None:
            check_budget(estimate(plan), ns.budget)
        result = fuse(prompt, cache=ns.cache, pool=pool, listeners=[progress], **options)
    except FusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_text())
    return 0 if result.n_ok else 1


if __name__ == "__main__":
    sys.exit(main())
