"""The built-in provider families, one module each; importing this package registers them.

A family module holds everything its wire needs (routes, auth check, framing, error bodies) and imports
only the emulator's shared pieces (``registry``, ``chat``, ``_wire``, ``batch``), never the server. A batch API
(``*_batch.py``) serves beside its chat family, under the same base URL and key, and answers its requests with
that family's scripted turns.
"""

from __future__ import annotations

from ..registry import Family, register
from ..video import Storage
from .anthropic import Anthropic
from .anthropic_batch import AnthropicBatch
from .fal import Fal
from .gemini import Gemini
from .gemini_batch import GeminiBatch
from .gemini_files import GeminiFiles
from .interactions import Interactions
from .openai import Ollama, OpenAI
from .openai_batch import OpenAIBatch
from .openrouter import OpenRouter
from .openrouter_batch import OpenRouterBatch
from .openrouter_video import OpenRouterVideo
from .runway import Runway
from .veo import Veo

# One row per family. The order is the order of Emulator.env() and Emulator.test_keys().
BUILTIN: tuple[Family, ...] = (
    OpenRouter(),
    OpenAI(),
    Ollama(),
    Anthropic(),
    Gemini(),
    # Batch APIs: they share their chat family's base URL and key (shared/reference/batch-apis.md).
    OpenRouterBatch(),
    OpenAIBatch(),
    AnthropicBatch(),
    GeminiBatch(),
    # Video: the storage host downloads are redirected to, Gemini's Files API, Veo, Omni, fal, OpenRouter, Runway.
    Storage(),
    GeminiFiles(),
    Veo(),
    Interactions(),
    Fal(),
    OpenRouterVideo(),
    Runway(),
)

for _family in BUILTIN:
    register(_family)

__all__ = ["BUILTIN", "Anthropic", "AnthropicBatch", "Fal", "Gemini", "GeminiBatch", "GeminiFiles", "Interactions",
           "Ollama", "OpenAI", "OpenAIBatch", "OpenRouter", "OpenRouterBatch", "OpenRouterVideo", "Runway", "Storage",
           "Veo"]
