"""What a call costs when the provider does not say.

The provider's own figure wins (OpenRouter reports ``usage.cost``). Otherwise we price tokens with the
table below. A model missing from the table has an unknown price: ``None``, shown as unknown, never 0.

    price = price_for("anthropic:claude-sonnet-4-5")
    price.cost(input_tokens=1000, output_tokens=200)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# USD per million tokens (input, output). Transcribed from the vendors' public pricing pages
# (openai.com/api/pricing, docs.anthropic.com pricing, ai.google.dev/gemini-api/docs/pricing);
# standard tier, no batch discount, prompts under the long-context threshold. Prices drift: check the
# pages before trusting a total, and add models with %config FusionMagics.prices.
TABLE_SOURCE = "price table 2025-10-01"

_TABLE: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    # Anthropic
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    # Google
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}

# A rough rule for English text with today's tokenizers, used where no tokenizer is at hand.
CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """A rough token count for ``text`` (characters / 4, at least 1): an estimate, never a report."""
    return len(text) // CHARS_PER_TOKEN + 1


# Providers that run on the user's own machine: tokens cost nothing.
FREE_PROVIDERS = frozenset({"local", "ollama", "vllm", "llamacpp", "lmstudio"})


@dataclass(frozen=True)
class Price:
    """Per-million-token prices and where they came from."""

    input_per_mtok: float
    output_per_mtok: float
    source: str

    @property
    def free(self) -> bool:
        """A model on the user's own machine: it costs nothing whatever the token counts."""
        return self.input_per_mtok == 0 and self.output_per_mtok == 0

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        """USD for a call; None if a token count is unknown (a partial figure would mislead)."""
        if self.free:
            return 0.0
        if input_tokens is None or output_tokens is None:
            return None
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


def _normalise(model: str) -> str:
    """``anthropic/claude-3.7-sonnet`` and ``claude-3-7-sonnet-20250219`` -> ``claude-3-7-sonnet``."""
    name = model.rsplit("/", 1)[-1].lower()
    name = name.split(":", 1)[0]  # OpenRouter variants such as ":free" are priced by OpenRouter itself
    name = re.sub(r"(?<=\d)\.(?=\d)", "-", name) if name.startswith("claude") else name
    name = re.sub(r"-(\d{8}|latest|preview(-[\w-]+)?)$", "", name)
    return name


def price_for(model_id: str, extra: dict[str, tuple[float, float]] | None = None) -> Price | None:
    """The price of ``provider:model``, or None when unknown. ``extra`` (user prices) wins."""
    provider, _, model = model_id.partition(":")
    if provider in FREE_PROVIDERS:
        return Price(0.0, 0.0, "local model (free)")
    if extra and model in extra:
        return Price(*extra[model], "user price (%config FusionMagics.prices)")
    name = _normalise(model)
    if extra and name in extra:
        return Price(*extra[name], "user price (%config FusionMagics.prices)")
    if name in _TABLE:
        return Price(*_TABLE[name], TABLE_SOURCE)
    # Dated or suffixed variants ("gpt-4o-2024-08-06") fall back to the longest known prefix.
    for known in sorted(_TABLE, key=len, reverse=True):
        if name.startswith(known + "-"):
            return Price(*_TABLE[known], TABLE_SOURCE)
    return None


def known_prices() -> dict[str, tuple[float, float]]:
    """A copy of the bundled table (model -> (input, output) USD per million tokens)."""
    return dict(_TABLE)
