"""The public surface: the façade, defaults that depend on keys, prices, the shell entry point."""

from __future__ import annotations

import pandas as pd
import pytest

import fusion_magic
from fusion_magic.__main__ import main
from fusion_magic.calls.settings import Settings
from fusion_magic.core.pricing import price_for
from fusion_magic.fusion.defaults import LOCAL_POOL, OPENROUTER_POOL, resolved_pool
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint
from fusion_magic.testing import Emulator, ModelScript


def test_exported_members() -> None:
    assert fusion_magic.__all__ == sorted(fusion_magic.__all__)
    for name in ("load_ipython_extension", "fuse", "afuse", "complete", "acomplete", "FusionResult", "Response"):
        assert name in fusion_magic.__all__ and hasattr(fusion_magic, name)
    assert all(getattr(fusion_magic, n).__doc__ for n in fusion_magic.__all__)


def test_default_pool_follows_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, judge, note = resolved_pool(Settings())
    assert pool == LOCAL_POOL and judge == "vote" and note and "OPENROUTER_API_KEY" in note
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    pool, judge, note = resolved_pool(Settings())
    assert pool == OPENROUTER_POOL and judge not in pool and note is None
    monkeypatch.delenv("OPENROUTER_API_KEY")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    pool, judge, _ = resolved_pool(Settings())
    assert {p.split(":")[0] for p in pool} == {"anthropic", "gemini"} and judge == "vote"


def test_env_overrides_follow_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11434")
    assert resolve_endpoint(BUILTIN["ollama"]).base_url == "http://127.0.0.1:11434/v1"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://proxy.local/")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "secret-value")
    ep = resolve_endpoint(BUILTIN["anthropic"])
    assert ep.base_url == "http://proxy.local" and "secret-value" not in repr(ep)
    assert resolve_endpoint(BUILTIN["gemini"], keys={"gemini": "explicit"}).api_key == "explicit"


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("openrouter:anthropic/claude-3.7-sonnet", (3.0, 15.0)),
        ("anthropic:claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("openai:gpt-4o-mini-2024-07-18", (0.15, 0.6)),
        ("gemini:gemini-2.5-flash", (0.3, 2.5)),
        ("local:gemma3-270m", (0.0, 0.0)),
    ],
)
def test_price_lookup(model_id: str, expected: tuple[float, float]) -> None:
    price = price_for(model_id)
    assert price is not None and (price.input_per_mtok, price.output_per_mtok) == expected


def test_unknown_price_is_none() -> None:
    assert price_for("openai:brand-new-model") is None


def test_shell_entry_point(emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator_env.script("x", ModelScript(reply="Forty-two: 42"))
    emulator_env.script("y", ModelScript(reply="42"))
    assert main(["-p", "openai:x,gemini:y", "-j", "vote", "What", "is", "6x7?"]) == 0
    captured = capsys.readouterr()
    assert "42" in captured.out and "TOTAL" in captured.out and "x: done" in captured.err
    assert main(["-p", "nope:x", "hi"]) == 2
    assert "unknown provider" in capsys.readouterr().err


def test_ledger_totals_and_overhead_follow_the_critical_path() -> None:
    from fusion_magic.core.ledger import ledger_frame, with_totals
    from fusion_magic.core.record import Response

    def call(role: str, rnd: int, secs: float, cost: float | None, label: str | None = "m") -> Response:
        return Response(model="x:y", status="ok", role=role, round=rnd, latency_s=secs, cost_usd=cost,
                        label=label, input_tokens=1, output_tokens=2)

    calls = [call("member", 0, 2.0, 0.1), call("member", 0, 1.0, 0.1), call("member", 1, 3.0, 0.2),
             call("judge", 0, 1.0, 0.05, None)]
    frame = with_totals(ledger_frame(calls), wall_s=6.5)
    total, overhead = frame.iloc[-2], frame.iloc[-1]
    assert total["model"] == "TOTAL" and total["cost_usd"] == pytest.approx(0.45) and total["output_tokens"] == 8
    assert overhead["latency_s"] == pytest.approx(0.5)  # 6.5 - (2 + 3 + 1)
    unknown = with_totals(ledger_frame([*calls, call("member", 0, 1.0, None)]), wall_s=7.0)
    assert unknown.iloc[-2]["cost_usd"] is pd.NA


def test_openrouter_default_judge_is_from_another_family() -> None:
    from fusion_magic.fusion.defaults import OPENROUTER_JUDGE

    def family(model_id: str) -> str:
        return model_id.split(":", 1)[1].split("/", 1)[0]

    assert family(OPENROUTER_JUDGE) not in {family(m) for m in OPENROUTER_POOL}


def test_listing_shows_where_calls_go(monkeypatch: pytest.MonkeyPatch) -> None:
    from fusion_magic.ipython.listing import provider_listing

    monkeypatch.setenv("OLLAMA_HOST", "localhost")
    rows = provider_listing(Settings()).providers.set_index("provider")
    assert rows.loc["ollama", "base URL"] == "http://localhost:11434/v1"
    assert rows.loc["openrouter", "key"] == "missing" and rows.loc["local", "base URL"] == "worker process"
