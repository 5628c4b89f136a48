"""One short-name rule for tabs, seats and ledgers (``core.names``), used by every job kind."""

from __future__ import annotations

from fusion_magic.core.names import seat_labels, short_name
from fusion_magic.videos.plan import tab_labels


def test_short_name() -> None:
    assert short_name("openrouter:anthropic/claude-3.7-sonnet") == "claude-3.7-sonnet"
    assert short_name("local:gemma3-270m") == "gemma3-270m"
    assert short_name("fal:") == "fal:"


def test_two_models_with_one_short_name_keep_their_ids_and_one_model_twice_is_numbered() -> None:
    a, b = "fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video", "fal:fal-ai/minimax/hailuo-02/text-to-video"
    assert seat_labels([a, b, "openai:gpt-4o", "openai:gpt-4o"]) == [a, b, "gpt-4o #1", "gpt-4o #2"]
    # %%video's tabs follow the same rule (they read "text-to-video #1" and "text-to-video #2").
    assert tab_labels((a, b)) == [a, b]
