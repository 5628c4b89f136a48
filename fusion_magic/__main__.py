"""``python -m fusion_magic "question"``: one fused run from the shell, with the %%fuse defaults.

Progress goes to stderr as calls finish; the full report (answers, verdict, fused answer, ledger) to
stdout. Takes the same options as %%fuse, read by the same parser (``ipython/args.py``, generated from
``FuseOptions``' declarations), and runs through the same ``plan_fuse`` and ``start`` as the magic.
"""

from __future__ import annotations

import argparse
import sys

from IPython.core.error import UsageError

from .core.errors import FusionError
from .fusion.progress import ProgressPrinter
from .ipython import args as _args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fusion_magic", parents=[_args.FUSE_PARSER],
        description="Fuse the answers of several models to one question (offline by default).",
    )
    parser.add_argument("question", nargs="+", help="the prompt")
    ns = parser.parse_args(argv)
    from .api import plan_fuse, start
    from .calls.settings import Settings
    from .fusion.estimate import check_budget, estimate
    from .fusion.options import FuseOptions

    prompt = " ".join(ns.question)
    try:
        args = _args.fuse_args(ns)
        settings = Settings()
        plan = plan_fuse(prompt, settings, args.options(FuseOptions.defaults(settings)),
                         require_keys=not args.estimate)
        if args.estimate:
            print(estimate(plan))
            return 0
        # The notice is printed here and stays out of the report (which repeats the warnings).
        for line in ([plan.notice] if plan.notice else []) + list(plan.warnings):
            print(line, file=sys.stderr)
        if args.budget is not None:
            check_budget(estimate(plan), args.budget)
        result = start(plan, [ProgressPrinter(sys.stderr)]).result()
    except (FusionError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_text())
    return 0 if result.n_ok else 1


if __name__ == "__main__":
    sys.exit(main())
