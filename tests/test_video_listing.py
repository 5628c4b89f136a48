"""``%video list``: every provider whose key is set, each model with what it accepts (one table: VideoCaps, from the
provider's own model list where it has one) and its price per second; a line for each provider without a key."""

from __future__ import annotations

import pytest

import fusion_magic.api as api
from fusion_magic.testing import Emulator


def test_the_table_names_what_each_model_accepts_and_costs(emulator_env: Emulator) -> None:
    listing = api.list_video_models()
    table = listing.models.set_index("model")
    assert {"seconds", "resolutions", "aspects", "frames", "refs", "USD per second"} <= set(table.columns)
    # From OpenRouter's own /videos/models list, priced by its table.
    veo = table.loc["openrouter:google/veo-3.1"]
    assert (veo["seconds"], veo["frames"], veo["USD per second"]) == ("4, 6 or 8", "first+last", 0.40)
    # Runway's table: a range of seconds, credits at a cent.
    gen = table.loc["runway:gen4.5"]
    assert (gen["seconds"], gen["USD per second"]) == ("2 to 10", pytest.approx(0.12))
    # fal's table, and Gemini's models asked of the API.
    assert table.loc["fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video", "seconds"] == "5 or 10"
    assert any(m.startswith("gemini:") for m in table.index)
    assert listing.notes == []  # every key is set


def test_a_provider_without_a_key_is_one_line(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FAL_KEY", "fal-test")
    listing = api.list_video_models()
    assert all(m.startswith(("local:", "fal:")) for m in listing.models["model"])
    assert "runway: set RUNWAYML_API_SECRET to list its video models" in listing.notes
    assert "openrouter: set OPENROUTER_API_KEY to list its video models" in listing.notes
