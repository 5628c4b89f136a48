"""The one rule for a model's short name, and for the labels of seats and tabs built from it.

    short_name("openrouter:anthropic/claude-3.7-sonnet")                  # "claude-3.7-sonnet"
    short_name("fal:fal-ai/minimax/hailuo-02/standard/text-to-video")    # "minimax/hailuo-02/standard"
    seat_labels(["fal:fal-ai/a/text-to-video", "fal:fal-ai/a/image-to-video", "openai:gpt-4o", "openai:gpt-4o"])
    # ["fal:fal-ai/a/text-to-video", "fal:fal-ai/a/image-to-video", "gpt-4o #1", "gpt-4o #2"]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

# fal names an endpoint ``fal-ai/<model path>/<task>``: the model is the path; its last segment is often only
# the task (``text-to-video``), and a label of that alone says nothing about which model made the clip.
_FAL = "fal"
_FAL_NAMESPACE = "fal-ai"
_TASKS = frozenset({"text-to-video", "image-to-video", "video-to-video", "reference-to-video", "text-to-image",
                    "image-to-image"})


def short_name(model_id: str) -> str:
    """The model's name without its provider and path: ``openrouter:anthropic/claude-3.7-sonnet`` ->
    ``claude-3.7-sonnet`` (the whole id when nothing is left). A fal endpoint keeps its model path, less
    fal's namespace and the task: ``fal:fal-ai/minimax/hailuo-02/standard/text-to-video`` ->
    ``minimax/hailuo-02/standard``."""
    provider, _, path = model_id.partition(":")
    if provider == _FAL:
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == _FAL_NAMESPACE:
            parts = parts[1:]
        if len(parts) > 1 and parts[-1] in _TASKS:
            parts = parts[:-1]
        return "/".join(parts) or model_id
    return path.rsplit("/", 1)[-1] or model_id


def seat_labels(model_ids: Sequence[str]) -> list[str]:
    """A unique label per seat: the short name; the whole id where two different models share a short name
    (one fal model's text-to-video and image-to-video endpoints); ``#n`` where one model fills several seats."""
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
