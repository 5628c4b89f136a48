"""One short-name rule for tabs, seats and ledgers (``core.names``), used by every job kind."""

from __future__ import annotations

from fusion_magic.core.names import seat_labels, short_name
from fusion_magic.videos.plan import tab_labels


def test_short_name() -> None:
    assert short_name("openrouter:anthropic/claude-3.7-sonnet") == "claude-3.7-sonnet"
    assert short_name("local:gemma3-270m") == "gemma3-270m"
    assert short_name("fal:") == "fal:"


def test_a_fal_endpoint_is_named_by_its_model_not_its_task() -> None:
    """Two fal models read "text-to-video #1/#2" once: the label said nothing about which model made the clip."""
    assert short_name("fal:fal-ai/minimax/hailuo-02/standard/text-to-video") == "minimax/hailuo-02/standard"
    assert short_name("fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video") == "kling-video/v2.5-turbo/pro"
    assert short_name("fal:fal-ai/veo3/fast") == "veo3/fast"
    assert short_name("fal:fal-ai/text-to-video") == "text-to-video"


def test_two_models_with_one_short_name_keep_their_ids_and_one_model_twice_is_numbered() -> None:
    a, b = "fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video", "fal:fal-ai/minimax/hailuo-02/text-to-video"
    assert seat_labels([a, b]) == ["kling-video/v2.5-turbo/pro", "minimax/hailuo-02"]
    c, d = "fal:fal-ai/minimax/hailuo-02/text-to-video", "fal:fal-ai/minimax/hailuo-02/image-to-video"
    assert seat_labels([c, d, "openai:gpt-4o", "openai:gpt-4o"]) == [c, d, "gpt-4o #1", "gpt-4o #2"]
    # %%video's tabs follow the same rule.
    assert tab_labels((c, d)) == [c, d] and tab_labels((a, b)) == seat_labels([a, b])
