"""CallCache with real files: a bad entry is a miss, an unwritable folder leaves calls unrecorded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fusion_magic.calls.cache import CallCache, request_key
from fusion_magic.core.record import Response
from fusion_magic.providers.base import ChatRequest, Message

MODEL = "openai:gpt-4o"
SECRET = "the-prompt-text-must-not-be-logged"


def request() -> ChatRequest:
    return ChatRequest(model="gpt-4o", messages=(Message("user", SECRET),), max_tokens=64)


def answer() -> Response:
    return Response(model=MODEL, text="Paris.", status="ok", input_tokens=7, output_tokens=2, cost_usd=0.001,
                    finish_reason="stop")


def entry_path(cache: CallCache) -> Path:
    key = request_key(MODEL, request())
    return cache.root / key[:2] / f"{key}.json"


def test_round_trip(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "c")
    assert cache.lookup(MODEL, request()) is None
    cache.store(MODEL, request(), answer())
    hit = cache.lookup(MODEL, request())
    assert hit is not None and (hit.text, hit.input_tokens, hit.output_tokens) == ("Paris.", 7, 2)
    assert not list(entry_path(cache).parent.glob("*.tmp"))


@pytest.mark.parametrize("content", [
    "[1, 2]",                                   # valid JSON, not an object
    '"just a string"',
    '{"input_tokens": 3}',                      # no text
    '{"text": 42}',                             # text is not a string
    '{"text": "ok", "input_tokens": "many"}',   # a count that would break the cost maths later
    "{not json",
    b"\xff\xfe garbage",
])
def test_bad_entry_is_a_miss_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                              content: str | bytes) -> None:
    cache = CallCache(tmp_path / "c")
    path = entry_path(cache)
    path.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="fusion_magic"):
        assert cache.lookup(MODEL, request()) is None
    assert len(caplog.records) == 1 and MODEL in caplog.text and SECRET not in caplog.text
    # a fresh answer overwrites the bad entry
    cache.store(MODEL, request(), answer())
    assert json.loads(path.read_text(encoding="utf-8"))["text"] == "Paris."


def test_unwritable_folder_leaves_the_call_unrecorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    cache = CallCache(blocker / "cache")  # mkdir fails whatever our privileges (tests may run as root)
    with caplog.at_level(logging.WARNING, logger="fusion_magic"):
        cache.store(MODEL, request(), answer())
        cache.store(MODEL, request(), answer())  # one warning per cache, not one per call
        assert cache.lookup(MODEL, request()) is None
    assert len(caplog.records) == 1 and "could not record" in caplog.text
    assert MODEL in caplog.text and SECRET not in caplog.text and "Paris" not in caplog.text
