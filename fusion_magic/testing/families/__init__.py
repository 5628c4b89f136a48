"""The built-in provider families, one module each; importing this package registers them.

A family module holds everything its wire needs (routes, auth check, framing, error bodies) and imports
only the emulator's shared pieces (``registry``, ``chat``, ``_wire``), never the server.
"""

from __future__ import annotations

from ..registry import Family, register
from ..video import Storage
from .anthropic import Anthropic
from .fal import Fal
from .gemini import Gemini
from .gemini_files import GeminiFiles
from .interactions import Interactions
from .openai import Ollama, OpenAI
from .openrouter import OpenRouter
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

__all__ = ["BUILTIN", "Anthropic", "Fal", "Gemini", "GeminiFiles", "Interactions", "Ollama", "OpenAI", "OpenRouter",
           "OpenRouterVideo", "Runway", "Storage", "Veo"]
