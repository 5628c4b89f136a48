"""``python -m fusion_magic "question"``: one fused run from the shell, with the %%fuse defaults.

Progress goes to stderr as calls finish; the full report (answers, verdict, fused answer, ledger) to
stdout. Takes the same options as %%fuse.
"""

from __future__ import annotations

import argparse
import sys

from .core.errors import FusionError
from .fuse.progress import ProgressPrinter
from .ipython import args as _args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fusion_magic", parents=[_args.FUSE_PARSER],
        description="Fuse the answers of several models to one question (offline by default).",
    )
    parser.add_argument("question", nargs="+", help="the prompt")
    ns = parser.parse_args(argv)
    from .api import make_plan, run_plan
    from .core.runner import get_runner
    from .fuse.estimate import check_budget, estimate

    options = {k: getattr(ns, k) for k in ("judge", "mode", "self_n", "rounds", "quorum", "deadline",
                                            "timeout", "max_tokens", "temperature", "system")}
    pool = [p.strip() for p in ns.pool.split(",") if p.strip()] if ns.pool else None
    prompt = " ".join(ns.question)
    try:
        if ns.estimate:
            print(estimate(make_plan(prompt, pool=pool, require_keys=False, **options)))
            return 0
        plan = make_plan(prompt, cache=ns.cache, pool=pool, **options)
        # The notice is printed here and stays out of the report (which repeats the warnings).
        for line in ([plan.notice] if plan.notice else []) + list(plan.warnings):
            print(line, file=sys.stderr)
        if ns.budget is not None:
            check_budget(estimate(plan), ns.budget)
        listeners = [ProgressPrinter(sys.stderr)]
        result = get_runner().run(lambda client: run_plan(plan, client, listeners))
    except FusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_text())
    return 0 if result.n_ok else 1


if __name__ == "__main__":
    sys.exit(main())
