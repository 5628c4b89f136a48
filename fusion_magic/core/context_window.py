"""How many input tokens a known model takes (its context window), so a prompt that cannot fit is refused in one
line before anything is sent, instead of coming back as every member's 400.

The figures are the vendors' published context windows (as of 2026-12; OpenAI's model pages, Anthropic's models
overview, Google's Gemini models page), keyed like the price table (``pricing.normalise_model``: a dated
release or an OpenRouter slug of a known model is that model). An unknown model has no limit here: the provider
decides. The prompt is counted as pricing counts it (characters / 4), so a prompt is refused only when it is
clearly too long, with room for the answer.

    context_window("openrouter:openai/gpt-4o")      # 128000
    check_fits(["openai:gpt-4o"], prompt_tokens=300_000)   # ConfigError, one line
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ConfigError
from .pricing import normalise_model

_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000, "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576, "gpt-4.1-mini": 1_047_576, "gpt-4.1-nano": 1_047_576,
    "gpt-5": 400_000, "gpt-5-mini": 400_000, "gpt-5-nano": 400_000,
    "o3": 200_000, "o4-mini": 200_000,
    # Claude: 200k by default (the 1M window of some models needs a beta header we do not send).
    "claude-opus-4-1": 200_000, "claude-opus-4": 200_000, "claude-sonnet-4-5": 200_000, "claude-sonnet-4": 200_000,
    "claude-3-7-sonnet": 200_000, "claude-3-5-haiku": 200_000, "claude-haiku-4-5": 200_000,
    "gemini-2.5-pro": 1_048_576, "gemini-2.5-flash": 1_048_576, "gemini-2.5-flash-lite": 1_048_576,
    "gemini-2.0-flash": 1_048_576, "gemini-2.0-flash-lite": 1_048_576,
    # The bundled local model (gemma3-270m): the window the worker loads it with.
    "gemma3-270m": 32_768,
}
# A dated release of a known model ("-2024-08-06") keeps its window: the same suffixes pricing accepts.
_SUFFIXES = ("-latest",)


def context_window(model_id: str) -> int | None:
    """The input tokens ``provider:model`` takes, or None when we do not know (the provider decides)."""
    _, _, model = model_id.partition(":")
    name = normalise_model(model)
    if name in _WINDOWS:
        return _WINDOWS[name]
    for known in sorted(_WINDOWS, key=len, reverse=True):
        rest = name[len(known):]
        if name.startswith(known + "-") and (rest[1:].replace("-", "").isdigit() or rest in _SUFFIXES):
            return _WINDOWS[known]
    return None


def check_fits(model_ids: Sequence[str], prompt_tokens: int) -> None:
    """Refuse (one ``ConfigError`` line) when a prompt of about ``prompt_tokens`` cannot fit a model's window."""
    for model_id in dict.fromkeys(model_ids):
        window = context_window(model_id)
        if window is not None and prompt_tokens > window:
            raise ConfigError(f"the prompt is about {prompt_tokens:,} tokens, more than {model_id} takes "
                              f"({window:,}): shorten it, attach less, or pick a model with a longer context")


__all__ = ["check_fits", "context_window"]
