"""Hermetic tests: no key variable, no base-URL override and no cache outside a temp dir survive
into a test; the emulator fixtures come from fusion_magic.testing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from IPython.core.interactiveshell import InteractiveShell
from lanes import needs

from fusion_magic.ipython.magics import FusionMagics
from fusion_magic.ipython.video import VideoMagics

pytest_plugins = ["fusion_magic.testing.pytest_plugin"]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: it must see these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need a browser, the local model or a Jupyter kernel, or run a benchmark script
    (tests/lanes.py says how), so `make test-fast` leaves them out; `make test` runs them all."""
    for item in items:
        for marker in sorted(needs(item) - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)

# Property tests: no per-example deadline (that would be a wall-clock assert on a shared, noisy machine), and
# function-scoped fixtures are fine where a property only reads them.
settings.register_profile("fusion_magic", deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("fusion_magic")

_SCRUB = (
    "OPENROUTER_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "FAL_KEY", "OLLAMA_API_KEY", "VLLM_API_KEY", "LLAMACPP_API_KEY", "LMSTUDIO_API_KEY",
    "OPENROUTER_BASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL", "OLLAMA_HOST",
    "FAL_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "LMSTUDIO_BASE_URL", "FUSION_MAGIC_RAISE_ERRORS",
    "RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL",
)


def magics_of(sh: InteractiveShell) -> FusionMagics:
    """The loaded FusionMagics instance of a shell (what %config FusionMagics talks to)."""
    return next(c for c in sh.configurables if isinstance(c, FusionMagics))


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    """A real InteractiveShell with the extension loaded, text view, no retries; every trait and the
    names tests store are put back afterwards (the shell is a process-wide singleton)."""
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "fusion_magic")
    magics = magics_of(sh)
    defaults = {name: trait.default() for name, trait in magics.traits(config=True).items()}
    magics.view = "text"
    magics.max_retries = 0
    yield sh
    for name, value in defaults.items():
        setattr(magics, name, value)
    for name in ("r", "topic", "out", "job", "first"):
        sh.user_ns.pop(name, None)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FUSION_MAGIC_CACHE_DIR", str(tmp_path / "fusion_cache"))
    # Apart from the logs tests/test_runlog.py opens itself (tmp_path / DEFAULT_NAME): one writer per file.
    monkeypatch.setenv("FUSION_MAGIC_RUN_LOG", str(tmp_path / "api_runs.sqlite"))
    # A test that takes the override away still never writes to the real per-user folder (runlog.default_path).
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user_data"))
    # The local model is assembled once per machine, not per test: keep its cache where it is.
    if "FUSION_MAGIC_MODEL_DIR" in os.environ:
        monkeypatch.setenv("FUSION_MAGIC_MODEL_DIR", os.environ["FUSION_MAGIC_MODEL_DIR"])
    yield


@pytest.fixture
def vshell(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[InteractiveShell]:
    """The shell with VideoMagics in text view, fast polls, and the working folder a fresh tmp_path."""
    monkeypatch.chdir(tmp_path)
    magics = next(c for c in shell.configurables if isinstance(c, VideoMagics))
    defaults = {name: trait.default() for name, trait in magics.traits(config=True).items()}
    magics.view, magics.poll = "text", 0.01
    yield shell
    for name, value in defaults.items():
        setattr(magics, name, value)
    for name in ("v", "w"):
        shell.user_ns.pop(name, None)
