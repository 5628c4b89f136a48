"""Local OpenAI-compatible servers by base URL alone, including those that stream no usage at all:
a call that produced text always has token figures, counted by us and marked so."""

from __future__ import annotations

import pytest

import fusion_magic
from fusion_magic.core.ledger import ledger_frame
from fusion_magic.fusion.report import text_report
from fusion_magic.present.ledger_table import COUNTED_NOTE, figures, ledger_display, ledger_html
from fusion_magic.testing import Emulator, Fault, ModelScript

REPLY = "Paris is the capital of France."  # 31 characters: 4 chunks of 8


@pytest.fixture
def llamacpp(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator's Ollama route standing in for a local llama.cpp server. It wants a non-empty Bearer,
    as Ollama documents; llama.cpp's server ignores one, so setting a key changes nothing there."""
    monkeypatch.setenv("LLAMACPP_BASE_URL", f"{emulator.url}/ollama/v1")
    monkeypatch.setenv("LLAMACPP_API_KEY", "unused")
    return emulator


def test_a_server_that_streams_no_usage_gets_counted_tokens(llamacpp: Emulator) -> None:
    llamacpp.script("tiny", ModelScript(reply=REPLY, stream_usage=False))
    r = fusion_magic.complete("llamacpp:tiny", "What is the capital of France?", system="Be brief.")
    assert r.status == "ok" and r.text == REPLY
    body = llamacpp.requests[-1].body
    assert body["stream_options"] == {"include_usage": True}  # asked for, and ignored by this server
    assert r.tokens_source == "counted"
    assert r.output_tokens == 4  # one per streamed text chunk
    assert r.input_tokens == len("Be brief.\nWhat is the capital of France?") // 4 + 1
    assert r.cost_usd == 0.0  # a local server is free whatever the count
    assert figures(r).startswith("~11→~4 tok")


def test_a_server_that_reports_usage_keeps_its_figures(llamacpp: Emulator) -> None:
    llamacpp.script("tiny", ModelScript(reply=REPLY, input_tokens=17, output_tokens=9))
    r = fusion_magic.complete("llamacpp:tiny", "What is the capital of France?")
    assert (r.tokens_source, r.input_tokens, r.output_tokens) == ("reported", 17, 9)
    assert figures(r).startswith("17→9 tok")


def test_a_call_cut_mid_stream_still_has_counted_tokens(llamacpp: Emulator) -> None:
    llamacpp.script("tiny", ModelScript(reply=REPLY, stream_usage=False, faults=[Fault("cut", after_chunks=2)]))
    r = fusion_magic.complete("llamacpp:tiny", "Hi?")
    assert r.status == "protocol" and r.text == REPLY[:16]
    assert (r.tokens_source, r.output_tokens) == ("counted", 2)


def test_a_call_with_no_text_claims_no_tokens(llamacpp: Emulator) -> None:
    llamacpp.script("tiny", ModelScript(reply=REPLY, stream_usage=False, faults=[Fault("status", status=500)]))
    r = fusion_magic.complete("llamacpp:tiny", "Hi?")
    assert r.status == "server" and (r.input_tokens, r.output_tokens, r.tokens_source) == (None, None, "reported")


def test_the_ledger_marks_counted_figures_in_every_form(llamacpp: Emulator) -> None:
    llamacpp.script("tiny", ModelScript(reply=REPLY, stream_usage=False))
    llamacpp.script("full", ModelScript(reply=REPLY, input_tokens=17, output_tokens=9))
    result = fusion_magic.fuse("Capital of France?", pool=["llamacpp:tiny", "llamacpp:full"], judge="vote")
    frame = ledger_frame(result.responses)
    assert frame["tokens_source"].tolist() == ["counted", "reported"]
    shown = ledger_display(frame)
    assert shown["out tok"].tolist() == ["~4", "9"]
    assert COUNTED_NOTE in text_report(result)
    assert "~ tokens counted by fusion\\_magic: the server streamed no usage" in result.to_markdown()
    assert "~4" in ledger_html(frame) and "counted by fusion_magic" in ledger_html(frame)
    assert "None" not in shown.to_string()
