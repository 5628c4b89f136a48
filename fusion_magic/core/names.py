"""The one rule for a model's short name, and for the labels of seats and tabs built from it.

    short_name("openrouter:anthropic/claude-3.7-sonnet")   # "claude-3.7-sonnet"
    seat_labels(["fal:fal-ai/a/text-to-video", "fal:fal-ai/b/text-to-video", "openai:gpt-4o", "openai:gpt-4o"])
    # ["fal:fal-ai/a/text-to-video", "fal:fal-ai/b/text-to-video", "gpt-4o #1", "gpt-4o #2"]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def short_name(model_id: str) -> str:
    """The model's name without its provider and path: ``openrouter:anthropic/claude-3.7-sonnet`` ->
    ``claude-3.7-sonnet`` (the whole id when nothing is left)."""
    return model_id.partition(":")[2].rsplit("/", 1)[-1] or model_id


def seat_labels(model_ids: Sequence[str]) -> list[str]:
    """A unique label per seat: the short name; the whole id where two different models share a short name
    (two fal models both named ``text-to-video``); ``#n`` where one model fills several seats."""
    distinct = list(dict.fromkeys(model_ids))
    shorts = Counter(short_name(i) for i in distinct)
    name = {i: short_name(i) if shorts[short_name(i)] == 1 else i for i in distinct}
    counts = Counter(model_ids)
    seen: Counter[str] = Counter()
    labels = []
    for model_id in model_ids:
        seen[model_id] += 1
        labels.append(name[model_id] + (f" #{seen[model_id]}" if counts[model_id] > 1 else ""))
    return labels


__all__ = ["seat_labels", "short_name"]
