"""The ledger's words: a role said once, a count in the right number."""

from __future__ import annotations

from fusion_magic.core.ledger import ledger_frame, with_totals
from fusion_magic.core.record import CallRecord


def test_a_label_that_starts_with_its_role_is_not_said_twice() -> None:
    records = [CallRecord(model="gemini:gemini-omni-1.2-flash", role="check", label="check omni", call_id=1,
                          status="ok"),
               CallRecord(model="openai:gpt-4o", role="member", label="gpt-4o", call_id=2, status="ok")]
    assert list(ledger_frame(records)["role"]) == ["check omni", "member gpt-4o"]


def test_one_call_is_one_call() -> None:
    frame = with_totals(ledger_frame([CallRecord(model="openai:gpt-4o", role="member", call_id=1, status="ok")]))
    assert frame["role"].iloc[-1] == "1 call"


def test_an_unknown_total_says_why() -> None:
    """A cancelled call of a priced model has no usage, not a missing price."""
    cancelled = CallRecord(model="openai:gpt-4o", role="member", call_id=1, status="cancelled")
    unpriced = CallRecord(model="openai:no-such-model-x", role="member", call_id=2, status="ok", input_tokens=3,
                          output_tokens=4)
    assert with_totals(ledger_frame([cancelled]))["cost_source"].iloc[-1] == (
        "unknown (a call ended before it reported its usage)")
    assert with_totals(ledger_frame([cancelled, unpriced]))["cost_source"].iloc[-1] == "unknown (a price is missing)"
