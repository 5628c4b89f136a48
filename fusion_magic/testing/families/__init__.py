"""The built-in provider families, one module each; importing this package registers them.

A family module holds everything its wire needs (routes, auth check, framing, error bodies) and imports
only the emulator's shared pieces (``registry``, ``chat``, ``_wire``), never the server.
"""

from __future__ import annotations

from ..registry import Family, register
from .anthropic import Anthropic
from .gemini import Gemini
from .openai import Ollama, OpenAI
from .openrouter import OpenRouter

# One row per family. The order is the order of Emulator.env() and Emulator.test_keys().
BUILTIN: tuple[Family, ...] = (
    OpenRouter(),
    OpenAI(),
    Ollama(),
    Anthropic(),
    Gemini(),
)

for _family in BUILTIN:
    register(_family)

__all__ = ["BUILTIN", "Anthropic", "Gemini", "Ollama", "OpenAI", "OpenRouter"]
