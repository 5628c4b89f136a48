"""pytest fixtures for the loopback emulator: one server per session, a clean slate per test.

    def test_panel(emulator_env):          # env points every client at the emulator, keys are fake
        emulator_env.script("gpt-4o", ModelScript(reply="Paris."))

Load it with ``pytest_plugins = ["fusion_magic.testing.pytest_plugin"]`` in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .emulator import Emulator


@pytest.fixture(scope="session")
def _fusion_emulator_server() -> Iterator[Emulator]:
    # Starting uvicorn costs ~0.1 s and a thread; once per session is plenty.
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emulator(_fusion_emulator_server: Emulator) -> Iterator[Emulator]:
    """The session's running Emulator, with scripts, counters, expected keys and log cleared."""
    _fusion_emulator_server.reset()
    yield _fusion_emulator_server


@pytest.fixture
def emulator_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Like ``emulator``, with ``emu.env()`` and ``emu.test_keys()`` set in ``os.environ`` for this test."""
    for name, value in {**emulator.env(), **emulator.test_keys()}.items():
        monkeypatch.setenv(name, value)
    yield emulator
