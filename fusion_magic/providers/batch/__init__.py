"""The providers' batch APIs, one module per wire protocol (``base.BatchAPI``), and which one a model has.

    api_class = batch_api_for(target.spec, target.endpoint)   # None: no batch API, the call runs live
"""

from __future__ import annotations

from ..base import Endpoint
from ..registry import ProviderSpec
from .base import BatchAPI, BatchStatus, ItemResult


def batch_api_for(spec: ProviderSpec, endpoint: Endpoint) -> type[BatchAPI] | None:
    """The batch API of a model's provider: OpenAI's, Anthropic's, Gemini's or OpenRouter's; None for the local
    model, Ollama, vLLM, llama.cpp, LM Studio and custom endpoints (they have none: their calls run live)."""
    if spec.protocol == "anthropic":
        from .anthropic import AnthropicBatch

        return AnthropicBatch
    if spec.protocol == "gemini":
        from .gemini import GeminiBatch

        return GeminiBatch
    if spec.protocol == "openai" and endpoint.flavor == "openai":
        from .openai import OpenAIBatch

        return OpenAIBatch
    if spec.protocol == "openai" and endpoint.flavor == "openrouter":
        from .openrouter import OpenRouterBatch

        return OpenRouterBatch
    return None


__all__ = ["BatchAPI", "BatchStatus", "ItemResult", "batch_api_for"]
