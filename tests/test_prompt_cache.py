"""The emulated prompt caches (``ModelScript(prompt_cache=True)``): a thread's follow-ups read the prefix the
provider would have cached, Anthropic only where the client marked it, and each call is billed what the provider
would bill at its published cached and cache-write rates."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.testing import Emulator, ModelScript
from fusion_magic.testing.judges import content_judge
from fusion_magic.testing.prompt_cache import MIN_TOKENS, Unit, explicit_cache, implicit_cache

FAST = Settings(max_retries=0, timeout=20, run_log="off")
POOL = ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]
JUDGE = "anthropic:claude-sonnet-4-5"
# USD per million tokens: input, output, cached input, cache write (5 minutes), from the vendors' pricing pages
# (openai.com/api/pricing, docs.claude.com pricing: reads 0.1x, writes 1.25x input; ai.google.dev pricing: 25%).
RATES = {
    "openai:gpt-4.1-mini": (0.40, 1.60, 0.10, 0.0),
    "anthropic:claude-haiku-4-5": (1.00, 5.00, 0.10, 1.25),
    "gemini:gemini-2.5-flash": (0.30, 2.50, 0.075, 0.0),
    "anthropic:claude-sonnet-4-5": (3.00, 15.00, 0.30, 3.75),
}


def units(*tokens: int, marked: tuple[int, ...] = ()) -> list[Unit]:
    return [Unit(f"u{i}:{t}", t, i in marked) for i, t in enumerate(tokens)]


def test_implicit_caching_reads_the_longest_prefix_seen_in_steps_past_the_minimum() -> None:
    cache: dict[str, int] = {}
    assert implicit_cache(units(900, 300), cache) == 0  # nothing seen yet
    assert implicit_cache(units(900, 300, 50), cache) == MIN_TOKENS + 128  # 1200 seen: 1024 + one 128 step
    assert implicit_cache(units(900), {}) == 0 and implicit_cache(units(800, 100), cache) == 0  # short or new


def test_explicit_caching_writes_only_marked_prefixes_and_reads_them_back() -> None:
    cache: dict[str, int] = {}
    assert explicit_cache(units(1500, 100), cache) == (0, 0)  # not marked: Anthropic caches nothing
    assert explicit_cache(units(1500, 100, marked=(1,)), cache) == (0, 1600)
    assert explicit_cache(units(1500, 100, 40, 10, marked=(3,)), cache) == (1600, 50)
    assert explicit_cache(units(1500, 100, 40, 10, 5, marked=(4,)), cache) == (1650, 5)


def cost(call: object) -> float:
    inp, out, cached, write = RATES[call.model]  # type: ignore[attr-defined]
    read = call.cached_input_tokens or 0  # type: ignore[attr-defined]
    written = call.cache_write_input_tokens or 0  # type: ignore[attr-defined]
    plain = call.input_tokens - read - written  # type: ignore[attr-defined]
    return (plain * inp + read * cached + written * write + call.output_tokens * out) / 1e6  # type: ignore[attr-defined]


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (1200, 800), "white").save(out, format="PNG")
    path = tmp_path / "chart.png"
    path.write_bytes(out.getvalue())
    return path


def test_a_three_turn_thread_costs_what_the_providers_would_bill(emulator_env: Emulator, chart: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for model in ("gpt-4.1-mini", "claude-haiku-4-5", "gemini-2.5-flash"):
        emulator_env.script(model, ModelScript(reply="The loss falls, then jumps at step 300. " * 6, prompt_cache=True))
    emulator_env.script("claude-sonnet-4-5", ModelScript(reply=content_judge("loss"), prompt_cache=True))
    r1 = fusion_magic.fuse("What does the chart show?", pool=POOL, judge=JUDGE, attach=[chart], settings=FAST)
    r2 = r1.ask("Why would it jump there?")
    r3 = r2.ask("One sentence for a slide.")
    by_turn = [{c.model: c for c in r.calls} for r in (r1, r2, r3)]
    # Turn 1 repeats nothing; no provider reads a cache, and Anthropic writes none: nothing was marked.
    assert all(not c.cached_input_tokens and not c.cache_write_input_tokens for c in by_turn[0].values())
    # Turn 2: OpenAI and Gemini read turn 1's prompt on their own; Anthropic writes the marked thread.
    assert by_turn[1]["openai:gpt-4.1-mini"].cached_input_tokens >= MIN_TOKENS
    assert by_turn[1]["gemini:gemini-2.5-flash"].cached_input_tokens >= MIN_TOKENS
    haiku2 = by_turn[1]["anthropic:claude-haiku-4-5"]
    assert not haiku2.cached_input_tokens and haiku2.cache_write_input_tokens == haiku2.input_tokens
    # Turn 3: Anthropic reads what turn 2 wrote, member and judge alike.
    for model in ("anthropic:claude-haiku-4-5", JUDGE):
        assert by_turn[2][model].cached_input_tokens >= MIN_TOKENS
    for turn in by_turn:
        for model, call in turn.items():
            assert call.cost_usd == pytest.approx(cost(call), rel=1e-9), model
    def uncached(call: object) -> float:
        inp, out, _, _ = RATES[call.model]  # type: ignore[attr-defined]
        return (call.input_tokens * inp + call.output_tokens * out) / 1e6  # type: ignore[attr-defined]

    with capsys.disabled():
        print("\nthree-turn thread, emulated prompt caches: " + ", ".join(
            f"turn {n} ${sum(c.cost_usd for c in turn.values()):.6f} "
            f"(${sum(uncached(c) for c in turn.values()):.6f} uncached)" for n, turn in enumerate(by_turn, 1)))
    assert r3.ledger["cached_input_tokens"].fillna(0).sum() == sum(c.cached_input_tokens or 0 for c in r3.calls)
