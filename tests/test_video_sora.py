"""OpenAI shut its video API (Sora) down on 2026-09-24 with no replacement (shared/reference/video-apis.md §10.3):
``openai:sora-2`` and ``openai:sora-2-pro`` are refused at plan time with one line that says so and names what to
use, with a key or without one, and nothing is sent."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import fusion_magic
from fusion_magic.core.errors import ConfigError
from fusion_magic.testing import Emulator


@pytest.mark.parametrize("model", ["openai:sora-2", "openai:sora-2-pro"])
@pytest.mark.parametrize("keyed", [True, False], ids=["with a key", "without a key"])
def test_sora_is_one_line_and_no_request(vshell: InteractiveShell, emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
                                         model: str, keyed: bool) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    if keyed:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sora")
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UsageError) as info:
        vshell.run_cell_magic("video", f"-p {model}", "a paper boat on a rainy street")
    message = str(info.value)
    assert type(info.value) is UsageError and "\n" not in message
    assert "shut its video API (Sora) down on 2026-09-24" in message and "openrouter:google/veo-3.1" in message
    assert emulator.requests == []


def test_the_python_api_refuses_it_too(emulator_env: Emulator) -> None:
    with pytest.raises(ConfigError, match="Sora"):
        fusion_magic.estimate_video("a paper boat", models=["openai:sora-2"])
    with pytest.raises(ConfigError, match="Sora"):
        fusion_magic.video("a paper boat", models=["openai:sora-2"])
    assert emulator_env.requests == []


def test_video_with_estimate_submits_nothing_and_says_where_the_estimate_is(emulator_env: Emulator) -> None:
    with pytest.raises(ConfigError, match=r"would still submit paid jobs: call fusion_magic\.estimate_video"):
        fusion_magic.video("a paper boat", models=["gemini:veo-3.1-fast-generate-preview"], estimate=True)
    estimate = fusion_magic.estimate_video("a paper boat", models=["gemini:veo-3.1-fast-generate-preview"], seconds=8)
    assert estimate.total is not None and estimate.total > 0
    assert emulator_env.requests == []
