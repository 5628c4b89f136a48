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
