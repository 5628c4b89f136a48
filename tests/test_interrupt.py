"""An interrupted %%fuse cell: one line instead of a traceback, the partial result kept under -o, and the
cell still failed for the frontend (terminal IPython's run_cell, a kernel under nbclient)."""

from __future__ import annotations

import _thread
import threading

import nbformat
import pytest
from conftest import magics_of
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fusion_magic.core.record import Response
from fusion_magic.fusion.result import FusionResult
from fusion_magic.ipython.magics import FusionInterrupted, interrupted_line
from fusion_magic.testing import Emulator, Fault, ModelScript

LONG = "Rayleigh scattering makes short wavelengths scatter more, so the sky looks blue. " * 20


def interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def script_three(emu: Emulator) -> None:
    """One fast answer, one that streams slowly (partial text at the interrupt), one that never answers."""
    emu.script("fast", ModelScript(reply="Blue light scatters most."))
    emu.script("slow", ModelScript(reply=LONG, tokens_per_s=20, chunk_chars=4))
    emu.script("hang", ModelScript(faults=[Fault("hang")]))


def test_an_interrupt_prints_one_line_and_keeps_the_partial_result(
    shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    script_three(emulator_env)
    interrupt_after(1.0)
    outcome = shell.run_cell("%%fuse -p openai:fast,anthropic:slow,gemini:hang -j vote -o r\nWhy is the sky blue?")
    printed = capsys.readouterr()
    shown = printed.out + printed.err
    # The cell failed, as an interrupt (so "Run All" stops at it), but shows no traceback.
    assert not outcome.success and isinstance(outcome.error_in_exec, KeyboardInterrupt)
    assert "Traceback" not in shown and "threading.py" not in shown and "_runner.py" not in shown
    mentions = [line for line in shown.splitlines() if "the partial result is in r" in line]
    assert len(mentions) == 1 and mentions[0].startswith("fusion_magic: interrupted after ")
    assert mentions[0].endswith(": 1 of 3 answers done, 2 cancelled; the partial result is in r")
    assert "cancelled: cancelled" not in shown

    r = shell.user_ns["r"]
    assert isinstance(r, FusionResult) and r.verdict is None and r.answer == "" and r.degraded
    by_model = {x.model: x for x in r.responses}
    assert set(by_model) == {"openai:fast", "anthropic:slow", "gemini:hang"}
    assert by_model["openai:fast"].ok and by_model["openai:fast"].text == "Blue light scatters most."
    slow = by_model["anthropic:slow"]
    assert slow.status == "cancelled" and slow.text and LONG.startswith(slow.text) and slow.text != LONG
    assert by_model["gemini:hang"].status == "cancelled" and by_model["gemini:hang"].text == ""
    assert any(w.startswith("Interrupted after") for w in r.warnings)
    assert magics_of(shell).last is r  # %fuse rejudge can judge what arrived
    # every connection was closed by the interrupt
    assert emulator_env.wait_for(lambda reqs: len(reqs) == 3 and all(q.disconnected or q.ended for q in reqs),
                                 timeout=5)


def test_without_out_the_line_says_nothing_was_stored(
    shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator_env.script("hang", ModelScript(faults=[Fault("hang")]))
    interrupt_after(0.5)
    with pytest.raises(FusionInterrupted) as info:
        shell.run_cell_magic("fuse", "-p openai:hang,openai:hang -j vote", "never answered")
    line = str(info.value)
    assert "\n" not in line and line.endswith(
        ": 0 of 2 answers done, 2 cancelled; not stored (add -o NAME)")
    assert isinstance(info.value, KeyboardInterrupt) and isinstance(info.value.__cause__, KeyboardInterrupt)
    partial = info.value.partial
    assert partial is not None and [x.status for x in partial.responses] == ["cancelled", "cancelled"]
    assert "r" not in shell.user_ns
    capsys.readouterr()


def test_an_interrupt_while_judging_says_the_judge_was_cancelled(
    shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator_env.script("a", ModelScript(reply="4"))
    emulator_env.script("b", ModelScript(reply="4."))
    emulator_env.script("judge", ModelScript(faults=[Fault("hang")]))
    interrupt_after(1.0)
    with pytest.raises(FusionInterrupted) as info:
        shell.run_cell_magic("fuse", "-p openai:a,openai:b -j anthropic:judge -m merge -o r", "2+2?")
    assert str(info.value).endswith(": 2 of 2 answers done, judge cancelled; the partial result is in r")
    r = shell.user_ns["r"]
    assert r.n_ok == 2 and r.verdict is None and r.degraded
    assert [j.status for j in r.judge_responses] == ["cancelled"]
    capsys.readouterr()


def test_raise_errors_env_shows_the_real_interrupt(
    shell: InteractiveShell, emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FUSION_MAGIC_RAISE_ERRORS", "1")
    emulator_env.script("hang", ModelScript(faults=[Fault("hang")]))
    interrupt_after(0.5)
    with pytest.raises(KeyboardInterrupt) as info:
        shell.run_cell_magic("fuse", "-p openai:hang,openai:hang -j vote -o r", "never answered")
    assert type(info.value) is KeyboardInterrupt
    assert shell.user_ns["r"].responses[0].status == "cancelled"  # still kept
    capsys.readouterr()


def test_nbclient_sees_the_interrupted_cell_as_an_error_with_one_line(emulator_env: Emulator) -> None:
    emulator_env.script("hang", ModelScript(faults=[Fault("hang")]))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (
        "%load_ext fusion_magic",
        "%%fuse -p openai:hang,anthropic:hang -j vote -o r\nnever answered",
        "print('never runs')",
    )]
    client = NotebookClient(nb, kernel_name="python3", interrupt_on_timeout=True,
                            timeout_func=lambda cell: 3 if "%%fuse" in cell.source else 60)
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert info.value.ename == "FusionInterrupted"
    errors = [o for o in nb.cells[1].outputs if o.get("output_type") == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1
    assert errors[0]["traceback"][0].endswith("0 of 2 answers done, 2 cancelled; the partial result is in r")
    assert nb.cells[2].outputs == []  # execution stopped at the interrupted cell, as "Run All" does


def test_an_interrupted_rejudge_keeps_the_earlier_result(
    shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator_env.script("a", ModelScript(reply="4"))
    emulator_env.script("judge", ModelScript(faults=[Fault("hang")]))
    earlier = shell.run_cell_magic("fuse", "-p openai:a,openai:a -j vote -o r", "2+2?")
    interrupt_after(0.5)
    with pytest.raises(FusionInterrupted, match=r"^fusion_magic: rejudge interrupted after [\d.]+ s; "
                                                "the earlier result is unchanged$"):
        shell.run_line_magic("fuse", "rejudge -m merge -j anthropic:judge")
    assert shell.user_ns["r"] is earlier and magics_of(shell).last is earlier and earlier.answer == "4"
    capsys.readouterr()


def test_the_partial_result_says_cancelled_not_failed(shell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script("fast", ModelScript(reply="Paris."))
    emulator_env.script("hangs", ModelScript(faults=[Fault("hang")]))
    threading.Timer(1.0, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        shell.run_cell_magic("fuse", "-p openai:fast,anthropic:hangs -j vote -o r", "Capital of France?")
    text = shell.user_ns["r"].to_text()
    assert "1 member call cancelled: hangs" in text and "failed" not in text.split("DEGRADED", 1)[-1]
    assert "cancelled: cancelled" not in text and "stopped before it finished" not in text.split("Answers")[0]


def test_the_interrupt_line_counts_a_filtered_answer_as_filtered_not_cancelled() -> None:
    """A member whose prompt the provider's filter refused ended (filtered); only a seat still running, or
    never started, was cancelled by the interrupt."""
    members = [Response(model="openai:a", label="a", status="ok", text="Blue."),
               Response(model="gemini:b", label="b", status="blocked"),
               Response(model="openai:c", label="c", status="timeout")]
    partial = FusionResult(prompt="Why?", mode="best-of", judge="vote", pool=["openai:a", "gemini:b", "openai:c",
                                                                              "openai:d"], responses=members)
    line = interrupted_line(partial, 4, 1.5, "r")
    assert line == ("fusion_magic: interrupted after 1.5 s: 1 of 4 answers done, 1 failed, 1 filtered, 1 cancelled; "
                    "the partial result is in r")
