"""Call records of any kind: usage in tokens, seconds of video or clips, priced in the price's own unit,
and shown in the ledger only where some call has it (a chat-only ledger keeps its columns)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

import fusion_magic
from fusion_magic.core.ledger import COLUMNS, USAGE_COLUMNS, ledger_frame, with_totals
from fusion_magic.core.pricing import (
    FREE_PROVIDERS,
    STALE_AFTER_DAYS,
    TABLE_DATE,
    TABLE_SOURCE,
    USER_SOURCE,
    Price,
    price_for,
    price_record,
    table_age_note,
)
from fusion_magic.core.record import CallRecord, Response
from fusion_magic.present.ledger_table import figures, ledger_html, text_ledger
from fusion_magic.providers.registry import BUILTIN

VEO = "gemini:veo-3.1-generate-preview"
CLIPS = "fal:fal-ai/some-video-model"


def chat(cost: float | None = 0.001) -> CallRecord:
    return CallRecord(model="openai:gpt-4o", text="Paris.", status="ok", input_tokens=12, output_tokens=54,
                      cost_usd=cost, cost_source="price table", latency_s=1.23, attempts=1, role="member A")


def clip(seconds: float | None = 8.0, clips: int | None = None) -> CallRecord:
    return CallRecord(model=VEO, status="ok", video_seconds=seconds, clips=clips, latency_s=41.2, attempts=1,
                      role="video")


def test_response_is_the_call_record_under_its_public_name() -> None:
    assert Response is CallRecord and fusion_magic.Response is CallRecord
    r = fusion_magic.Response(model="openai:gpt-4o", input_tokens=3, output_tokens=4)
    assert (r.input_tokens, r.output_tokens, r.video_seconds, r.clips) == (3, 4, None, None)


def test_seconds_are_priced_per_second() -> None:
    r = clip(seconds=8.0)
    price_record(r, {"veo-3.1-generate-preview": Price(per_second=0.40)})
    assert r.cost_usd == pytest.approx(3.20) and r.cost_source == USER_SOURCE


def test_clips_are_priced_per_clip() -> None:
    r = CallRecord(model=CLIPS, status="ok", clips=2)
    price_record(r, {"fal-ai/some-video-model": Price(per_clip=0.25, source="vendor page")})
    assert r.cost_usd == pytest.approx(0.50) and r.cost_source == "vendor page"


def test_a_price_bills_only_its_own_units() -> None:
    assert Price(per_second=0.40).cost(input_tokens=100, output_tokens=9000, video_seconds=6) == pytest.approx(2.4)
    assert Price(per_second=0.40).cost(clips=1) is None  # billed per second, seconds unknown
    assert Price(per_clip=0.25).cost(video_seconds=8) is None
    # Both units at once (a per-request fee on top of tokens) add up.
    assert Price(1.0, 2.0, "x", per_clip=0.5).cost(1_000_000, 1_000_000, clips=1) == pytest.approx(3.5)


def test_an_unknown_price_stays_unknown() -> None:
    unknown = "gemini:veo-9-imaginary-preview"
    assert price_for(unknown) is None
    r = clip()
    r.model = unknown
    price_record(r)
    assert (r.cost_usd, r.cost_source) == (None, "unknown")
    # A per-second price cannot price a call whose seconds are unknown: None, never 0.
    r = clip(seconds=None, clips=1)
    price_record(r, {"veo-3.1-generate-preview": Price(per_second=0.40)})
    assert r.cost_usd is None


def test_bundled_video_prices_say_they_are_third_party() -> None:
    # No vendor page was readable here: the per-second figures are labelled wherever a cost is shown.
    price = price_for(VEO)
    assert price is not None and price.per_second == 0.40 and "third-party" in price.source
    r = clip(seconds=8.0)
    price_record(r)
    assert r.cost_usd == pytest.approx(3.2) and "unconfirmed" in r.cost_source


def test_a_local_model_is_free_and_the_providers_figure_wins_elsewhere() -> None:
    local = CallRecord(model="ollama:some-video-model", status="ok", video_seconds=5.0, cost_usd=9.0,
                       cost_source="provider")
    price_record(local)
    assert (local.cost_usd, local.cost_source) == (0.0, "local model (free)")
    reported = clip()
    reported.cost_usd, reported.cost_source = 1.5, "provider"
    price_record(reported, {"veo-3.1-generate-preview": Price(per_second=0.40)})
    assert (reported.cost_usd, reported.cost_source) == (1.5, "provider")


def test_chat_prices_are_as_before() -> None:
    price = price_for("openai:gpt-4o-2024-08-06")
    assert price is not None and (price.input_per_mtok, price.output_per_mtok) == (2.50, 10.00)
    assert price.cost(1000, 200) == (1000 * 2.50 + 200 * 10.00) / 1e6
    assert price.cost(1000, None) is None
    assert price_for("openai:gpt-4o", {"gpt-4o": (1.0, 2.0)}) == Price(1.0, 2.0, USER_SOURCE)
    r = chat(cost=None)
    r.cost_source = "unknown"
    price_record(r)
    assert r.cost_usd == (12 * 2.50 + 54 * 10.00) / 1e6


def test_the_free_provider_list_matches_the_registry() -> None:
    # One list, in core; the registry's keyless built-ins are exactly the free ones.
    assert {name for name, spec in BUILTIN.items() if not spec.key_required} == FREE_PROVIDERS
    assert all(price_for(f"{name}:m") == Price(source="local model (free)") for name in FREE_PROVIDERS)


def test_usage_reads_in_the_calls_own_units() -> None:
    assert figures(chat()) == "12→54 tok · 1.23 s · $0.001000"
    assert figures(clip()) == "8 s of video · 41.20 s · cost ?"
    assert figures(clip(seconds=None, clips=2)) == "2 clips · 41.20 s · cost ?"
    both = clip(seconds=6.0)
    both.input_tokens, both.output_tokens = 21, 34752
    assert both.usage_figures() == ["21→34752 tok", "6 s of video"]
    assert "8 s of video, 41.20s, cost unknown" in clip().describe()
    assert chat().describe().startswith("[ok] openai:gpt-4o: 12→54 tok, 1.23s, $0.001000")


def test_the_ledger_shows_video_usage_only_when_a_call_has_it() -> None:
    chat_only = with_totals(ledger_frame([chat(), chat()]), 2.0)
    assert list(ledger_frame([chat()]).columns) == COLUMNS
    assert not set(USAGE_COLUMNS) & set(chat_only.columns)
    assert "video s" not in ledger_html(chat_only) and "video s" not in text_ledger(chat_only)[0]

    seconds = ledger_frame([chat(), clip()])
    at = COLUMNS.index("cost_usd")
    assert list(seconds.columns) == [*COLUMNS[:at], "video_seconds", *COLUMNS[at:]]
    assert "clips" not in seconds.columns
    total = with_totals(seconds, 45.0)
    assert total["video_seconds"].iloc[2] == 8.0 and total["video_seconds"].isna().iloc[3]  # TOTAL, overhead
    head = text_ledger(total)[0]
    assert head.index("out tok") < head.index("video s") < head.index("cost $") and "clips" not in head
    assert ">video s</th>" in ledger_html(total) and ">8.0</td>" in ledger_html(total)

    counted = ledger_frame([clip(seconds=None, clips=1), clip(seconds=None, clips=2)])
    assert "clips" in counted.columns and "video_seconds" not in counted.columns
    assert with_totals(counted)["clips"].iloc[-1] == 3


@pytest.mark.parametrize(("model_id", "known"), [
    ("openai:gpt-4o-2024-08-06", "openai:gpt-4o"),
    ("anthropic:claude-sonnet-4-5-20250929", "anthropic:claude-sonnet-4-5"),
    ("gemini:gemini-2.5-flash-preview-05-20", "gemini:gemini-2.5-flash"),
    ("openai:gpt-5-pro", None),  # another model, about 12 times gpt-5's price: unknown, not gpt-5's figure
    ("openai:o3-mini", None),
])
def test_a_release_of_a_known_model_costs_what_it_costs_and_another_model_is_unknown(model_id: str,
                                                                                    known: str | None) -> None:
    price = price_for(model_id)
    assert price == (price_for(known) if known else None)


def test_the_price_table_says_how_old_it_is_once_past_ninety_days() -> None:
    assert TABLE_SOURCE.endswith(TABLE_DATE.isoformat()) and STALE_AFTER_DAYS == 90
    assert table_age_note(TABLE_DATE) is None
    assert table_age_note(TABLE_DATE + timedelta(days=90)) is None
    assert table_age_note(TABLE_DATE + timedelta(days=91)) == (
        f"prices as of {TABLE_DATE.isoformat()} (91 days old): check the provider's page; "
        "%config FusionMagics.prices sets your own")
    note = table_age_note(date(2026, 5, 9), as_of=date(2025, 10, 1))
    assert note is not None and note.startswith("prices as of 2025-10-01 (220 days old): ")


def test_fuse_list_shows_the_note_beside_an_old_table_only() -> None:
    from fusion_magic.calls.settings import Settings
    from fusion_magic.ipython.listing import provider_listing

    fresh = provider_listing(Settings(), today=TABLE_DATE + timedelta(days=30))
    assert fresh.prices_note is None and "days old" not in str(fresh)
    old = provider_listing(Settings(), today=TABLE_DATE + timedelta(days=400))
    lines = str(old).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Known prices"))
    assert lines[header + 1] == old.prices_note
    assert old.prices_note is not None and "(400 days old)" in old.prices_note
