"""%fuse history and %fuse eval in a real shell: every run is in the run log, and an evaluation runs from a
DataFrame variable, through the same engine as fusion_magic.evaluate()."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.evaluation import EvalResult
from fusion_magic.testing import Emulator, ModelScript


def test_every_run_is_in_the_history_and_exports(shell: InteractiveShell, emulator_env: Emulator,
                                                 tmp_path: Path) -> None:
    emulator_env.script("a", ModelScript(reply="Paris."))
    emulator_env.script("b", ModelScript(reply="Paris."))
    shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote", "Capital of France?")
    fusion_magic.complete("openai:a", "Capital of France?")
    runs = shell.run_line_magic("fuse", "history -n 5")
    assert list(runs["kind"])[:2] == ["complete", "fuse"] and set(runs["status"][:2]) == {"ok"}
    assert int(runs["calls"].iloc[1]) == 2 and runs["prompt"].iloc[1] == "Capital of France?"
    dest = tmp_path / "runs.jsonl"
    shell.run_line_magic("fuse", f"history --export {dest}")
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert {r["model"] for r in rows} == {"openai:a", "openai:b"} and all(r["text"] == "Paris." for r in rows)
    assert not any(key in dest.read_text() for key in Emulator.test_keys().values())
    with pytest.raises(UsageError, match=r"\.jsonl or \.csv"):
        shell.run_line_magic("fuse", f"history --export {tmp_path / 'runs.xlsx'}")


def test_the_run_log_can_be_turned_off(shell: InteractiveShell, emulator_env: Emulator,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSION_MAGIC_RUN_LOG", "off")
    with pytest.raises(UsageError, match="run log is off"):
        shell.run_line_magic("fuse", "history")


def test_eval_runs_strategies_from_a_dataframe_variable(shell: InteractiveShell, emulator_env: Emulator) -> None:
    def answer(body: object) -> str:
        text = json.dumps(body)
        return "Final answer: 4" if "2+2" in text else "Final answer: Rome"

    emulator_env.script("a", ModelScript(reply=answer))
    shell.user_ns["qs"] = pd.DataFrame({"question": ["What is 2+2?", "Capital of France?"],
                                        "reference": ["4", "Paris"]})
    out = shell.run_line_magic("fuse", "eval qs -p openai:a --strategies single -o ev")
    assert isinstance(out, EvalResult) and shell.user_ns["ev"] is out
    summary = out.summary.set_index("strategy")
    assert summary.loc[summary.index[0], "accuracy"] == pytest.approx(0.5) and len(out.rows) == 2
    runs = shell.run_line_magic("fuse", "history -n 1")
    assert runs["kind"].iloc[0] == "eval"
    shell.user_ns.pop("qs")
    shell.user_ns.pop("ev")
