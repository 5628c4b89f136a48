"""%%fuse in a real Jupyter kernel (nbclient), against the emulator: the widget view, the saved text
fallback, the stored widget state, and a kernel interrupt."""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from fusion_magic.testing import Emulator, Fault, ModelScript

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


def run(cells: list[str], **options: Any) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    options = {"timeout": 60, **options}
    NotebookClient(nb, kernel_name="python3", store_widget_state=True, **options).execute()
    return nb


def outputs_of(cell: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o["data"][mime] for o in cell.outputs if "data" in o and mime in o["data"]]


def test_fuse_cell_in_a_kernel(emulator_env: Emulator) -> None:
    emulator_env.script("k1", ModelScript(reply="Paris is the capital.", tokens_per_s=200))
    emulator_env.script("k2", ModelScript(reply="The capital is **Paris**.", tokens_per_s=200))
    emulator_env.script("kj", ModelScript(reply=json.dumps({"reasoning": "both right", "answer": "Paris."})))
    nb = run([
        "%load_ext fusion_magic",
        "%%fuse -p openai:k1,anthropic:k2 -j gemini:kj -m merge -o r\nWhat is the capital of France?",
        "print(r.answer, len(r.ledger))",
    ])
    fuse_cell = nb.cells[1]
    # Live, the cell showed the widget view; finished, the run replaced it (same display id) with the
    # static report, so the saved notebook needs no widget state to show the answer, judge and ledger.
    displays = [o for o in fuse_cell.outputs if o.get("output_type") == "display_data"]
    assert len(displays) == 1
    final = displays[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in final
    report = final["text/plain"]
    assert "Paris." in report and "Paris is the capital." in report and "k2" in report and "TOTAL" in report
    page = final["text/html"]
    assert "Paris." in page and "Cost &amp; latency" in page and "TOTAL" in page and "<script" not in page
    # the cell's own result repeats only the stable summary line
    assert outputs_of(fuse_cell, "text/plain")[-1] == "<FusionResult mode=merge judge=gemini:kj answers=2/2 ok>"
    assert nb.cells[2].outputs[0]["text"].strip() == "Paris. 3"
    # nbconvert (as GitHub would) shows the static report, with no widget placeholder
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "Paris is the capital." in html and "TOTAL" in html and "model not found" not in html
    for key in emulator_env.test_keys().values():
        assert key not in json.dumps(nb)


def test_every_mode_in_a_kernel(emulator_env: Emulator) -> None:
    emulator_env.script("m1", ModelScript(reply="It is 41."))
    emulator_env.script("m2", ModelScript(reply="It is 42."))
    emulator_env.script("d1", ModelScript(replies=["It is 41.", "Right, it is 42."]))
    emulator_env.script("d2", ModelScript(reply="It is 42."))
    emulator_env.script("mj", ModelScript(replies=['{"reasoning": "r", "winner": "A"}',
                                                   '{"reasoning": "r", "answer": "42 (merged)"}',
                                                   '{"reasoning": "r", "answer": "42 (debated)"}']))
    nb = run([
        "%load_ext fusion_magic",
        "%%fuse -p openai:m1,openai:m2 -j anthropic:mj -m best-of -o a\n6 x 7?",
        "%%fuse -p openai:m1,openai:m2 -j anthropic:mj -m merge -o b\n6 x 7?",
        "%%fuse -p openai:d1,openai:d2 -j anthropic:mj -m debate -r 2 -o c\n6 x 7?",
        "%%fuse -p openai:m1,openai:m2 -j vote -o d\n6 x 7?",
        "rounds = sorted(int(x) for x in set(c.ledger['round'].dropna()))",
        "print(a.answer in ('It is 41.', 'It is 42.'), b.answer, c.answer, rounds, d.judge)",
    ])
    assert nb.cells[-1].outputs[0]["text"].strip() == "True 42 (merged) 42 (debated) [0, 1] vote"


def test_interrupt_in_a_kernel_closes_requests_and_keeps_the_kernel(emulator_env: Emulator) -> None:
    for name in ("h1", "h2"):
        emulator_env.script(name, ModelScript(faults=[Fault("hang")]))
    emulator_env.script("ok", ModelScript(reply="alive"))
    nb = run(
        [
            "%load_ext fusion_magic",
            "%%fuse -p openai:h1,anthropic:h2 -j vote\nnever answered",
            "%%fuse -p openai:ok,openai:ok -j vote -o r2\nstill there?",
            "print(r2.answer)",
        ],
        interrupt_on_timeout=True, allow_errors=True, timeout=3,
    )
    # The cell failed as an interrupt, shown as one line instead of a traceback.
    errors = [o for o in nb.cells[1].outputs if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "FusionInterrupted" and len(errors[0]["traceback"]) == 1
    assert errors[0]["traceback"][0].endswith("0 of 2 answers done, 2 cancelled; "
                                              "not stored (add -o NAME)")
    hung = [q for q in emulator_env.requests if q.model in ("h1", "h2")]
    assert len(hung) == 2 and all(q.disconnected for q in hung)
    assert nb.cells[3].outputs[0]["text"].strip() == "alive"


# ---- the local model's worker process, seen from a real kernel -------------------------------------

KILL_MID_STREAM = """
import os, signal, fusion_magic
from fusion_magic.core.events import CallDelta
from fusion_magic.providers.chat import local
local.preload()
victim = local.current_worker('gemma3-270m').pid
hit = []
def kill(event):
    if isinstance(event, CallDelta) and not hit:
        hit.append(event.response.label)
        os.kill(victim, signal.SIGSEGV)
r = fusion_magic.fuse('Count from 1 to 500, separated by commas.', pool=['local:gemma3-270m'] * 3, judge='vote',
                      max_tokens=300, temperature=0.0, listeners=[kill])
print(sorted(x.status for x in r.responses), r.degraded, bool(r.answer))
"""


def test_a_segfault_in_the_local_model_leaves_the_kernel_and_its_variables() -> None:
    nb = run(["x = 41", KILL_MID_STREAM, "print(x + 1, local.current_worker('gemma3-270m').pid != victim)"],
             timeout=240)
    assert nb.cells[1].outputs[-1]["text"].strip() == "['crashed', 'ok', 'ok'] True True"
    assert nb.cells[2].outputs[0]["text"].strip() == "42 True"


def test_interrupting_local_generation_keeps_the_worker_warm_and_idle() -> None:
    nb = run(
        [
            "%load_ext fusion_magic",
            "from fusion_magic.providers.chat import local\nlocal.preload()\n"
            "w = local.current_worker('gemma3-270m')\npid = w.pid",
            # A hundred and twenty seats take turns on one worker: far more than three seconds of work even on a fast
            # CPU (thirty finished inside three on a quiet machine here), interrupted after three.
            "%%fuse -p local:gemma3-270m --self 120 -j vote\nWhat is the capital of Italy?",
            "print(w.wait_idle(1.0), local.current_worker('gemma3-270m') is w, w.pid == pid)",
            "%%fuse -p local:gemma3-270m --self 2 -j vote -o r\nWhat is the capital of France?",
            "print([x.status for x in r.responses], r.answer)",
        ],
        interrupt_on_timeout=True, allow_errors=True, startup_timeout=60,
        # Only the long cell is interrupted; the others get time to spare on a slow machine.
        timeout_func=lambda cell: 3 if "--self 120" in cell.source else 120,
    )
    errors = [o for o in nb.cells[2].outputs if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "FusionInterrupted" and len(errors[0]["traceback"]) == 1
    assert errors[0]["traceback"][0].startswith("fusion_magic: interrupted after ")
    # The interrupt reached the kernel only: the worker (its own session) is alive, the same process,
    # and idle within a second (the running job stopped between tokens, the queued ones were dropped).
    assert nb.cells[3].outputs[0]["text"].strip() == "True True True"
    assert nb.cells[5].outputs[0]["text"].strip() == "['ok', 'ok'] Paris."
