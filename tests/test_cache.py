"""CallCache with real files: a bad entry is a miss, an unwritable folder leaves calls unrecorded, and a
request and record of another kind than chat (a video clip) round-trip under a stable key."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

import fusion_magic
from fusion_magic.calls.cache import CallCache, request_key
from fusion_magic.calls.settings import Settings
from fusion_magic.core.record import CallRecord, Response
from fusion_magic.providers.base import ChatRequest, Message
from fusion_magic.testing import Emulator, ModelScript

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


def test_cached_token_counts_survive_a_replay(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "c")
    cache.store(MODEL, request(), replace(answer(), cached_input_tokens=5, cache_write_input_tokens=2))
    hit = cache.lookup(MODEL, request())
    assert hit is not None and (hit.cached_input_tokens, hit.cache_write_input_tokens) == (5, 2)


def test_an_attachment_is_keyed_by_its_hash_and_a_turn_without_one_keeps_its_key(tmp_path: Path) -> None:
    from fusion_magic.core.attachment import Attachment

    plain = request()
    chart = Attachment.of(b"\x89PNG\r\n\x1a\n" + b"a" * 40, "chart.png")
    other = Attachment.of(b"\x89PNG\r\n\x1a\n" + b"b" * 40, "chart.png")
    with_chart = replace(plain, messages=(replace(plain.messages[0], attachments=(chart,)),))
    with_other = replace(plain, messages=(replace(plain.messages[0], attachments=(other,)),))
    keys = {request_key(MODEL, r) for r in (plain, with_chart, with_other)}
    assert len(keys) == 3
    # Marking a turn for the provider's prompt cache asks nothing different: the same recording replays.
    marked = replace(plain, messages=(replace(plain.messages[0], cache_point=True),))
    assert request_key(MODEL, marked) == request_key(MODEL, plain)
    cache = CallCache(tmp_path / "c")
    cache.store(MODEL, with_chart, answer())
    assert cache.lookup(MODEL, with_other) is None and cache.lookup(MODEL, with_chart) is not None


@pytest.mark.parametrize("content", [
    "[1, 2]",                                   # valid JSON, not an object
    '"just a string"',
    '{"input_tokens": 3}',                      # no text
    '{"text": 42}',                             # text is not a string
    '{"text": "ok", "input_tokens": "many"}',   # a count that would break the cost maths later
    '{"text": "", "video_seconds": "eight"}',   # so would a duration
    '{"text": "", "clips": true}',
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


def test_the_chat_key_is_the_one_recordings_were_made_under() -> None:
    # Chat keys must not move when other kinds are added: a user's recordings would stop replaying.
    assert request_key(MODEL, request()) == "3b6725c0a966dfa975b51bdd29b9ac1b392e932b41f6ca7b90534f9dbe9fa475"


@dataclass(frozen=True)
class ClipRequest:
    """A request of another kind, shaped like a video job's."""

    model: str
    prompt: str
    seconds: int = 8
    aspect_ratio: str = "16:9"
    first_frame: bytes | None = None
    options: tuple[tuple[str, str], ...] = ()
    styles: frozenset[str] = frozenset()  # iterates in a different order in each process
    label: str = field(default="", compare=False)  # not part of what is asked


VIDEO_MODEL = "gemini:veo-3.1-generate-preview"
IMAGE = b"\x89PNG the-first-frame-bytes-must-not-be-stored"


def clip_request(**changes: Any) -> ClipRequest:
    base = ClipRequest("veo-3.1-generate-preview", SECRET, first_frame=IMAGE, options=(("resolution", "720p"),),
                       styles=frozenset({"noir", "slow", "wide"}))
    return replace(base, **changes)


def test_another_kind_of_request_has_a_stable_key() -> None:
    key = request_key(VIDEO_MODEL, clip_request())
    assert key == request_key(VIDEO_MODEL, clip_request(label="tab 2"))  # equal requests, one key
    # The same in every process: no repr, no object ids (pinned, so a change to the form is noticed).
    assert key == "926cd9efdf0acf81842bbfe678bcb37e8085a9f19b9c7e77b0b310b4d39aae40"
    others = {request_key(VIDEO_MODEL, clip_request(**change)) for change in (
        {"prompt": "another"}, {"seconds": 4}, {"first_frame": b"other"}, {"options": (("resolution", "1080p"),)},
    )}
    assert len(others | {key, request_key("gemini:veo-3.1-fast-generate-preview", clip_request())}) == 6
    with pytest.raises(TypeError, match="cannot include a object"):
        request_key(VIDEO_MODEL, clip_request(options=object()))


def test_another_kind_of_record_round_trips(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "c")
    recorded = CallRecord(model=VIDEO_MODEL, status="ok", video_seconds=8.0, clips=1, cost_usd=3.2,
                          finish_reason="completed", role="video", latency_s=41.0)
    cache.store(VIDEO_MODEL, clip_request(), recorded)
    hit = cache.lookup(VIDEO_MODEL, clip_request(label="again"))
    assert hit is not None
    assert (hit.text, hit.video_seconds, hit.clips, hit.cost_usd, hit.finish_reason) == ("", 8.0, 1, 3.2, "completed")
    assert (hit.input_tokens, hit.output_tokens) == (None, None)
    assert cache.lookup(VIDEO_MODEL, clip_request(seconds=4)) is None
    # The entry holds the answer and its usage: no prompt, no input bytes, nothing of the endpoint.
    key = request_key(VIDEO_MODEL, clip_request())
    stored = (cache.root / key[:2] / f"{key}.json").read_text(encoding="utf-8")
    assert SECRET not in stored and "first-frame" not in stored
    assert set(json.loads(stored)) == {"text", "video_seconds", "clips", "cost_usd", "finish_reason", "model"}


def test_an_emoji_split_across_stream_chunks_is_joined_and_recorded(emulator_env: Emulator, tmp_path: Path) -> None:
    # The server cuts its text between the two UTF-16 halves of an emoji and escapes each ("\ud83d", "\ude00"),
    # and leaves one half alone at the end: the answer is kept, the pair joined, the lone half U+FFFD, and
    # the call is recorded (UTF-8 refuses a lone surrogate: the call used to fail as it was cached).
    emulator_env.script("t/emoji", ModelScript(reply="smile \ud83d\ude00 and half \ud83d!", chunk_chars=7))
    settings = Settings(cache="on", cache_dir=str(tmp_path / "c"), max_retries=0)
    result = fusion_magic.fuse("hi", pool=["openrouter:t/emoji"], judge="vote", settings=settings)
    [r] = result.responses
    assert (r.status, r.text) == ("ok", "smile \U0001f600 and half \ufffd!")
    assert len(list((tmp_path / "c").rglob("*.json"))) == 1
    again = fusion_magic.fuse("hi", pool=["openrouter:t/emoji"], judge="vote", settings=settings)
    assert again.responses[0].text == r.text and again.responses[0].cost_source.startswith("cache")
