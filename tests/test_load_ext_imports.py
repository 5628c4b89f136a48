"""``%load_ext fusion_magic`` registers the magics and nothing more: the api, the engines, httpx and the views
load when a magic first runs (#22; bench/bench_overhead.py measures the time). Checked in a fresh process, since
this test session has imported everything long before; a ``%%fuse`` cell then runs there, against the emulator,
and does load them, so the check sees a module that is loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from fusion_magic.testing import Emulator, ModelScript

# What a fresh process reports: which of ``watched`` are imported after %load_ext, which after a %%fuse cell,
# and the cell's answer. The magics are set as tests/conftest.py's shell sets them: text view, no retries.
_CHILD = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
watched = json.loads(sys.argv[1])
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "fusion_magic")
loaded = [name for name in watched if name in sys.modules]
if sys.argv[2] == "fuse":
    shell.run_line_magic("config", "FusionMagics.view = 'text'")
    shell.run_line_magic("config", "FusionMagics.max_retries = 0")
    result = shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote -o r", "2+2?")
    answer = result.answer if type(result).__name__ == "FusionResult" and shell.user_ns["r"] is result else None
else:
    answer = None
print(json.dumps({"after_load": loaded, "after_fuse": [name for name in watched if name in sys.modules],
                  "answer": answer}))
"""

# Out of %load_ext today: the api (every engine behind it) and pandas (the listing and the tables).
KEPT_OUT = ("fusion_magic.api", "pandas", "fusion_magic.fusion.view", "fusion_magic.videos.engine")

# Out as well once fusion_magic/evaluation/__init__.py stops importing its engine at the top (``ipython/args.py``
# reaches ``evaluation.options`` for the %fuse eval flags, and a package's __init__ runs first): through
# ``evaluation.engine`` come the fused run's engine, httpx, asyncio and markdown_it.
KEPT_OUT_WITH_LAZY_EVALUATION = ("httpx", "markdown_it", "asyncio", "fusion_magic.fusion.engine",
                                 "fusion_magic.evaluation.engine", "fusion_magic.judge.answers")


def _child(watched: tuple[str, ...], what: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(watched), what], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_load_ext_leaves_the_api_out_and_a_fuse_cell_still_works(emulator_env: Emulator) -> None:
    emulator_env.script("a", ModelScript(reply="It is 4."))
    emulator_env.script("b", ModelScript(reply="4"))
    report = _child((*KEPT_OUT, "httpx"), "fuse")
    assert [name for name in report["after_load"] if name in KEPT_OUT] == []
    assert report["answer"] in ("It is 4.", "4")
    # The cell loaded what %load_ext left out: the check above looks at modules that do get imported.
    assert {"fusion_magic.api", "httpx"} <= set(report["after_fuse"])
    assert sorted(str(q.model) for q in emulator_env.requests) == ["a", "b"]


def test_load_ext_leaves_the_engines_out() -> None:
    assert _child(KEPT_OUT_WITH_LAZY_EVALUATION, "load")["after_load"] == []
