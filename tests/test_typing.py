"""The public functions are typed: mypy sees the result class each call returns (``background=True``: the job),
never ``Any``. mypy runs on a small snippet that uses the package as a user would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).parent.parent

SNIPPET = '''
import pandas as pd
import fusion_magic
from fusion_magic.api import RunJob

async def asynchronous() -> None:
    reveal_type(await fusion_magic.afuse("x"))
    reveal_type(await fusion_magic.avideo("x"))
    reveal_type(await fusion_magic.aevaluate("bundled"))
    reveal_type(await fusion_magic.acomplete("m", "x"))
    reveal_type(await fusion_magic.arejudge(fusion_magic.fuse("x")))

def background(flag: bool) -> None:
    reveal_type(fusion_magic.fuse("x", background=flag))

def protocol(job: RunJob[fusion_magic.FusionResult]) -> None:
    reveal_type(job.result())
    reveal_type(job.partial)
    results: list[fusion_magic.JobResult] = [fusion_magic.fuse("x"), fusion_magic.video("x"),
                                             fusion_magic.evaluate("bundled")]
    reveal_type(results[0].status)

reveal_type(fusion_magic.fuse("x"))
reveal_type(fusion_magic.fuse("x", background=False))
reveal_type(fusion_magic.fuse("x", background=True))
reveal_type(fusion_magic.video("x", models=["gemini:veo-3.1"]))
reveal_type(fusion_magic.video("x", background=True))
reveal_type(fusion_magic.evaluate("bundled", pool=["local:gemma3-270m"], repeats=2))
reveal_type(fusion_magic.evaluate("bundled", background=True))
reveal_type(fusion_magic.complete("m", "x"))
reveal_type(fusion_magic.rejudge(fusion_magic.fuse("x")))
reveal_type(fusion_magic.history())
fusion_magic.fuse("x", modee="merge")
fusion_magic.evaluate("bundled", repeats="2")
'''

EXPECTED = [
    "fusion_magic.fusion.result.FusionResult",
    "fusion_magic.videos.result.VideoResult",
    "fusion_magic.evaluation.result.EvalResult",
    "fusion_magic.core.record.CallRecord",
    "fusion_magic.fusion.result.FusionResult",
    "fusion_magic.fusion.result.FusionResult | fusion_magic.api.FusionJob",
    "fusion_magic.fusion.result.FusionResult",
    "fusion_magic.fusion.result.FusionResult | None",
    "fusion_magic.calls.job.RunStatus",
    "fusion_magic.fusion.result.FusionResult",
    "fusion_magic.fusion.result.FusionResult",
    "fusion_magic.api.FusionJob",
    "fusion_magic.videos.result.VideoResult",
    "fusion_magic.api.VideoJob",
    "fusion_magic.evaluation.result.EvalResult",
    "fusion_magic.api.EvalJob",
    "fusion_magic.core.record.CallRecord",
    "fusion_magic.fusion.result.FusionResult",
    "pandas.core.frame.DataFrame",
]


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    where = tmp_path_factory.mktemp("typing")
    snippet = where / "snippet.py"
    snippet.write_text(SNIPPET)
    # The project's own configuration (pyproject.toml), and a cache of our own: the package's cache would do
    # too, but a test never writes outside its temporary folder.
    out, err, _ = mypy_api.run([str(snippet), "--config-file", str(ROOT / "pyproject.toml"),
                                "--cache-dir", str(where / "cache"), "--no-error-summary", "--hide-error-context"])
    assert not err, err
    return out.splitlines()


def test_every_public_call_reveals_its_result_class(mypy_output: list[str]) -> None:
    revealed = [m.group(1) for line in mypy_output if (m := re.search(r'Revealed type is "(.*)"', line))]
    revealed = [r.replace("builtins.", "") for r in revealed]
    assert revealed == EXPECTED
    assert not any("Any" in r for r in revealed)


def test_the_job_protocol_and_the_keywords_are_checked(mypy_output: list[str]) -> None:
    lines = SNIPPET.splitlines()
    wrong = {n for n, line in enumerate(lines) if "modee" in line or 'repeats="2"' in line}
    erring = {int(line.split(":")[1]) - 1 for line in mypy_output if ": error: " in line}
    # Every result class satisfies JobResult (the list has no error), and a keyword is typed like its option:
    # the only errors are the two wrong calls.
    assert erring == wrong, mypy_output
    assert any('Unexpected keyword argument "modee"' in line for line in mypy_output)
