"""Work that used to hold up the engine's event loop on every call, seen from where it happens.

The cache's write runs on a worker thread, never the loop's, yet every entry is on disk when its call returns,
a cancel included: which thread renames an entry into place is watched with an audit hook (``os.replace``
raises the ``os.rename`` audit event in the thread that calls it), which can also hold a write to cancel the
call meanwhile. A request body compiles no regular expression of its own (one per request, its random nonce in
it, filled and churned ``re``'s pattern cache).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import fusion_magic
from fusion_magic.calls.cache import CallCache, moved_endpoint
from fusion_magic.calls.call import CallContext, prepare, run_call
from fusion_magic.calls.settings import Settings
from fusion_magic.core.attachment import Attachment
from fusion_magic.core.events import CallFinished, EngineEvent
from fusion_magic.core.record import Response
from fusion_magic.core.runner import new_client
from fusion_magic.providers._body import Base64Text, JSONBody, _dumps, json_default
from fusion_magic.providers.base import ChatRequest, Message
from fusion_magic.testing import Emulator, ModelScript

POOL = ["openrouter:t/alpha", "anthropic:beta", "gemini:gamma"]
# Only a hang guard: a wait that outlives it is stuck, whatever the machine's speed.
STUCK_S = 30.0


@dataclass
class Watch:
    """Entries renamed into place under ``root``: the thread of each; with ``hold``, a write off the loop's thread
    (``loop_thread``) signals ``entered`` and waits for ``hold`` before its rename."""

    root: str
    threads: list[int] = field(default_factory=list)
    loop_thread: int | None = None
    hold: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)


_WATCH: Watch | None = None
_HOOKED = False


def _audit(event: str, args: tuple[object, ...]) -> None:
    watch = _WATCH
    if watch is None or event != "os.rename":
        return
    dst = args[1]
    if not isinstance(dst, str | bytes | os.PathLike) or not os.fsdecode(dst).startswith(watch.root):
        return
    me = threading.get_ident()
    watch.threads.append(me)
    if watch.hold is not None and me != watch.loop_thread:
        watch.entered.set()
        watch.hold.wait(STUCK_S)


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Watch]:
    """Cache writes under ``tmp_path / "c"`` watched for this test (an audit hook cannot be removed: it stays
    installed, doing nothing, once no test watches)."""
    global _WATCH, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    _WATCH = Watch(str(tmp_path / "c"))
    try:
        yield _WATCH
    finally:
        if _WATCH.hold is not None:
            _WATCH.hold.set()
        _WATCH = None


def test_a_run_writes_its_entries_off_the_loop_and_a_replay_straight_after_finds_them(
        emulator_env: Emulator, tmp_path: Path, watch: Watch) -> None:
    emulator_env.script("t/alpha", ModelScript(reply="It is 41."))
    emulator_env.script("beta", ModelScript(reply="The answer is 42."))
    emulator_env.script("gamma", ModelScript(reply="42."))
    loop_threads: set[int] = set()

    def listener(event: EngineEvent) -> None:
        loop_threads.add(threading.get_ident())  # events are emitted on the engine loop's thread

    settings = Settings(cache="on", cache_dir=str(tmp_path / "c"), max_retries=0, timeout=20)
    live = fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge="vote", settings=settings, listeners=[listener])
    assert [r.status for r in live.responses] == ["ok"] * 3
    assert len(loop_threads) == 1 and len(watch.threads) == 3
    # Every entry was renamed into place by a thread that is not the loop's.
    assert not loop_threads & set(watch.threads)

    sent = len(emulator_env.requests)
    replay = Settings(cache="replay", cache_dir=str(tmp_path / "c"), max_retries=0, timeout=20)
    again = fusion_magic.fuse("What is 6 x 7?", pool=POOL, judge="vote", settings=replay)
    assert [r.text for r in again.responses] == [r.text for r in live.responses]
    assert all(r.cost_source.startswith("cache") for r in again.responses)
    assert len(emulator_env.requests) == sent


def test_a_cancel_during_the_write_comes_once_the_entry_is_on_disk(emulator_env: Emulator, tmp_path: Path,
                                                                   watch: Watch) -> None:
    emulator_env.script("gpt-4o-mini", ModelScript(reply="Paris."))
    settings = Settings(cache="on", cache_dir=str(tmp_path / "c"), max_retries=0, timeout=20)
    target = prepare("openai:gpt-4o-mini", settings)
    request = ChatRequest(model="gpt-4o-mini", messages=(Message("user", "Capital of France?"),))
    finished: list[Response] = []

    def listener(event: EngineEvent) -> None:
        if isinstance(event, CallFinished):
            finished.append(event.response)

    async def main() -> None:
        watch.loop_thread, watch.hold = threading.get_ident(), threading.Event()
        async with new_client() as client:
            ctx = CallContext(client=client, settings=settings, listeners=[listener],
                              cache=CallCache(tmp_path / "c"))
            task = asyncio.create_task(run_call(target, request, ctx=ctx))
            async with asyncio.timeout(STUCK_S):  # a hang guard
                while not watch.entered.is_set() and not task.done():
                    await asyncio.sleep(0.01)
            assert watch.entered.is_set(), "the entry was written on the loop's own thread"
            task.cancel()
            for _ in range(100):
                await asyncio.sleep(0)
            # The write is held, so the call is still waiting for it, cancelled or not.
            assert not task.done()
            watch.hold.set()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    # The answer was whole and is recorded: the call is reported done, and a replay finds it.
    [r] = finished
    assert (r.status, r.text) == ("ok", "Paris.")
    moved = moved_endpoint(target.endpoint.base_url, target.spec.default_base_url)  # the emulator's URL is keyed
    hit = CallCache(tmp_path / "c").lookup("openai:gpt-4o-mini", request, moved)
    assert hit is not None and hit.text == "Paris."


# ---- re's pattern cache --------------------------------------------------------------------------------------


def test_request_bodies_compile_no_pattern_of_their_own() -> None:
    ours = re.compile(r"fusion-magic-test-(\d+)")  # in re's cache from here on
    image = Attachment.of(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "chart.png")
    for i in range(1200):  # more bodies than re's cache holds patterns
        JSONBody({"messages": [{"content": f"question {i}"}], "image": Base64Text(image)})
        JSONBody({"messages": [{"content": f"question {i}"}]})
    # Not evicted: no body compiled a pattern.
    assert re.compile(r"fusion-magic-test-(\d+)") is ours


def test_a_string_shaped_like_another_bodys_token_is_sent_as_text() -> None:
    image = Attachment.of(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "chart.png")
    value = {"note": "0123456789abcdef0123456789abcdef:0", "image": Base64Text(image, "data:image/png;base64,"),
             "again": Base64Text(image)}
    body = JSONBody(value, chunk=300)
    assert b"".join(body.pieces()) == _dumps(value, json_default).encode()
    assert body.length == len(_dumps(value, json_default).encode())
