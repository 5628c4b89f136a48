"""A Gemini member given attachments past the inline limit (20 MB a request): the largest go through the Files API
(a resumable upload, a wait until ACTIVE), the request refers to them as ``file_data``, the rest stays inline, and
the uploads are deleted once the answer is complete. Over the loopback emulator's Gemini and Files API."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.attachment import Attachment
from fusion_magic.providers.chat.gemini import GeminiProvider
from fusion_magic.testing import Emulator, ModelScript, VideoScript
from fusion_magic.testing.families.gemini_files import upload_key

FAST = Settings(max_retries=0, timeout=20, run_log="off")


def png(side: int, colour: str) -> bytes:
    out = io.BytesIO()
    noise = Image.effect_noise((side, side), 64).convert("RGB")  # noise: it does not compress
    Image.blend(noise, Image.new("RGB", (side, side), colour), 0.5).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def small_inline_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """An inline limit of 40 KB stands for Gemini's 20 MB (the tests stay small and quick)."""
    monkeypatch.setattr(GeminiProvider, "inline_limit", 40 << 10)
    monkeypatch.setattr(GeminiProvider, "active_interval", 0.0)
    return 40 << 10


def test_the_largest_attachment_is_uploaded_referred_to_and_deleted(emulator_env: Emulator,
                                                                     small_inline_limit: int) -> None:
    big, small = png(160, "red"), png(24, "blue")
    assert len(big) * 4 // 3 > small_inline_limit > len(small) * 4 // 3
    emulator_env.script("gem", ModelScript(reply="Two noisy squares."))
    emulator_env.script(upload_key("big.png"), VideoScript(polls=1))
    r = fusion_magic.fuse("What are these?", pool=["gemini:gem"], judge="vote", settings=FAST,
                          attach=[Attachment.of(big, "big.png"), Attachment.of(small, "small.png")])
    assert r.answer == "Two noisy squares." and not r.degraded

    paths = [(q.method, q.path) for q in emulator_env.requests]
    start, *chunks = [q for q in emulator_env.requests
                      if q.method == "POST" and q.path.endswith("/upload/v1beta/files")]
    assert start.body == {"file": {"display_name": "big.png"}} and chunks  # one upload: the big one
    assert start.headers["x-goog-upload-header-content-type"] == "image/png"
    [chat] = [q for q in emulator_env.requests if q.path.endswith(":streamGenerateContent")]
    parts = chat.body["contents"][0]["parts"]
    file_id = next(p for m, p in paths if m == "DELETE").rsplit("/", 1)[1]
    assert emulator_env.video.blob(f"gemini-files-{file_id}") == big  # the bytes arrived whole
    assert parts[0] == {"file_data": {"mime_type": "image/png",
                                      "file_uri": f"{emulator_env.url}/gemini/v1beta/files/{file_id}"}}
    assert base64.b64decode(parts[1]["inline_data"]["data"]) == small  # the small one still fits inline
    assert parts[2] == {"text": "What are these?"}
    # Deleted after the answer, never before.
    delete = next(i for i, (m, _) in enumerate(paths) if m == "DELETE")
    assert delete > emulator_env.requests.index(chat)


def test_everything_inline_under_the_limit_uploads_nothing(emulator_env: Emulator) -> None:
    emulator_env.script("gem", ModelScript(reply="A square."))
    fusion_magic.fuse("What is it?", pool=["gemini:gem"], judge="vote", settings=FAST,
                      attach=[Attachment.of(png(24, "red"), "red.png")])
    assert [q.method for q in emulator_env.requests] == ["POST"]
    assert "inline_data" in emulator_env.requests[0].body["contents"][0]["parts"][0]

