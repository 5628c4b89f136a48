"""Video protocols: generation jobs (Veo, Omni through Interactions, fal) and questions about a video
(Gemini ``generateContent``, Omni). ``base`` is the contract; one module per wire protocol.

A model id names a provider, and the provider's protocol depends on the model and the task: on the Gemini
API, ``veo-*`` generates through ``predictLongRunning``, ``gemini-omni-*`` generates and answers through
Interactions, and other Gemini models answer questions through ``generateContent``. ``video_protocol``
is that one decision. A plugin's provider (``plugins.py``) speaks its own protocol: it generates when its class
has ``submit`` (the job contract in ``base``), and answers questions about a video when its class declares
``watches_video = True``.

    protocol = video_protocol("gemini", "gemini-omni-1.2-flash", "generate")    # "interactions"
"""

from __future__ import annotations

from typing import Literal

from ...core.errors import ConfigError
from ..registry import PROTOCOLS

Task = Literal["generate", "understand"]

# Shown when a model cannot do the task: the current ids (list them at run time with %video list).
EXAMPLES = {
    "generate": "gemini:gemini-omni-1.2-flash, gemini:veo-3.1-fast-generate-preview, openrouter:google/veo-3.1, "
                "runway:gen4.5, fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
    "understand": "gemini:gemini-2.5-flash, gemini:gemini-omni-1.2-flash, local:frames",
}


def is_omni(model: str) -> bool:
    """Gemini Omni models generate and understand video through the Interactions API only."""
    return model.startswith("gemini-omni")


def video_protocol(provider: str, model: str, task: Task) -> str:
    """The wire protocol (a row of ``registry.PROTOCOLS``) that does ``task`` with ``provider:model``;
    ``ConfigError`` with one line when none does."""
    if provider == "gemini":
        if model.startswith("veo-"):
            if task == "generate":
                return "veo"
            raise ConfigError(f"gemini:{model} generates video but cannot watch one; to ask about a video "
                              f"use {EXAMPLES['understand']}")
        if is_omni(model):
            return "interactions"
        if task == "understand":
            return "gemini_video"
        raise ConfigError(f"gemini:{model} is not a video-generation model; use one of {EXAMPLES['generate']} "
                          "(%video list shows what your key can use)")
    if provider in ("fal", "runway"):
        if task == "generate":
            return provider
        raise ConfigError(f"{provider}:{model}: {provider} models here generate video only; to ask about a video "
                          f"use {EXAMPLES['understand']}")
    if provider == "openrouter" and task == "generate":
        return "openrouter_video"  # the chat models stay chat: a video model id is one on /videos/models
    if provider == "openai" and model.startswith("sora"):
        raise ConfigError(f"openai:{model}: OpenAI shut its video API (Sora) down on 2026-09-24, with no "
                          "replacement; generate with openrouter:google/veo-3.1, runway:gen4.5 or "
                          "gemini:gemini-omni-1.2-flash")
    row = PROTOCOLS.get(provider)
    if row is not None and not row.builtin:
        cls = PROTOCOLS.provider_class(provider)
        able = callable(getattr(cls, "submit", None)) if task == "generate" else getattr(cls, "watches_video", False)
        if able:
            return provider
    verb = "generate video" if task == "generate" else "watch video"
    raise ConfigError(f"{provider}:{model} cannot {verb} in fusion_magic; use one of {EXAMPLES[task]}")


__all__ = ["EXAMPLES", "Task", "is_omni", "video_protocol"]
