"""OffloadedListener: one shared worker thread, per-listener order, and flush semantics."""

from __future__ import annotations

import threading
import time

import pytest

from fusion_magic.core.events import EngineEvent, OffloadedListener
from fusion_magic.fusion.events import JudgeStarted


def ev(i: int) -> EngineEvent:
    return JudgeStarted(judge=f"j{i}", mode="best-of")


def test_many_listeners_share_one_worker_thread() -> None:
    warm = OffloadedListener(lambda e: None)
    warm(ev(0))  # the shared worker starts lazily, on the first event
    assert warm.flush(5)
    before = threading.active_count()
    seen: list[list[str]] = []
    listeners = []
    for _ in range(30):
        got: list[str] = []
        seen.append(got)
        listener = OffloadedListener(lambda e, got=got: got.append(e.judge))  # type: ignore[union-attr]
        listeners.append(listener)
        for i in range(3):
            listener(ev(i))
    assert all(listener.flush(5) for listener in listeners)
    assert threading.active_count() == before
    assert seen == [["j0", "j1", "j2"]] * 30  # every listener saw its own events, in order


def test_flush_waits_for_this_listeners_events_only() -> None:
    release = threading.Event()
    got: list[str] = []

    def slow(e: EngineEvent) -> None:
        release.wait(5)
        got.append(e.judge)  # type: ignore[union-attr]

    blocked = OffloadedListener(slow)
    idle = OffloadedListener(lambda e: None)
    for i in range(3):
        blocked(ev(i))
    assert idle.flush(0.01)  # nothing was delivered to it: nothing to wait for
    t0 = time.monotonic()
    assert not blocked.flush(0.05)  # still rendering: flush gives up at its timeout
    assert time.monotonic() - t0 < 2
    release.set()
    assert blocked.flush(5)
    assert got == ["j0", "j1", "j2"]  # flush returned only once every delivered event was handled


def test_a_raising_listener_does_not_kill_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    def broken(e: EngineEvent) -> None:
        raise RuntimeError("view bug")

    bad = OffloadedListener(broken)
    bad(ev(0))
    bad(ev(1))
    assert bad.flush(5)  # the failures still count as handled
    got: list[str] = []
    good = OffloadedListener(lambda e: got.append(e.judge))  # type: ignore[union-attr]
    good(ev(2))
    assert good.flush(5) and got == ["j2"]
    assert "listener failed" in caplog.text
