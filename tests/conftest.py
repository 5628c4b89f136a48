"""Hermetic tests: no key variable, no base-URL override and no cache outside a temp dir survive
into a test; the emulator fixtures come from fusion_magic.testing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["fusion_magic.testing.pytest_plugin"]

_SCRUB = (
    "OPENROUTER_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "FAL_KEY", "OLLAMA_API_KEY", "VLLM_API_KEY", "LLAMACPP_API_KEY", "LMSTUDIO_API_KEY",
    "OPENROUTER_BASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL", "OLLAMA_HOST",
    "FAL_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "LMSTUDIO_BASE_URL", "FUSION_MAGIC_RAISE_ERRORS",
)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FUSION_MAGIC_CACHE_DIR", str(tmp_path / "fusion_cache"))
    # The local model is assembled once per machine, not per test: keep its cache where it is.
    if "FUSION_MAGIC_MODEL_DIR" in os.environ:
        monkeypatch.setenv("FUSION_MAGIC_MODEL_DIR", os.environ["FUSION_MAGIC_MODEL_DIR"])
    yield
