"""An attachment sent to several providers at once is never copied whole per request: each request body is
written to the socket a piece at a time, its base64 encoded from the file's bytes as it goes
(``providers/_body.py``), with exactly the bytes httpx's ``json=`` would send under a ``Content-Length``.

The memory test runs the emulator in another process (``python -m fusion_magic.testing``) so that its own
copies of the bodies (it decodes every one) are not counted; it asserts on memory, never on time
(bench/bench_attach.py measures the same thing at 20 MB)."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import random
import shlex
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.attachment import Attachment
from fusion_magic.providers._body import CHUNK_BYTES, Base64Text, JSONBody, Pieces, json_default
from fusion_magic.providers.base import ChatRequest, Message
from fusion_magic.providers.chat._sse import SSEProvider
from fusion_magic.providers.registry import BUILTIN, make_provider, resolve_endpoint
from fusion_magic.testing import Emulator, ModelScript
from fusion_magic.testing.media import pdf_bytes

POOL = ["openai:gpt-4o", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-flash", "openrouter:openai/gpt-4o"]
FAST = Settings(max_retries=0, timeout=60, run_log="off")
# A prompt JSON must escape (quotes, a backslash, a control character), with text outside ASCII and a line
# separator json.dumps leaves as it is.
PROMPT = 'Summarise "the paper" \\ its figure:\t¿qué muestra? 図 \u2028 data:application/pdf;base64,'


def pdf(size: int, seed: int = 0) -> bytes:
    """A valid one-page PDF of about ``size`` bytes: one uncompressed image of random samples."""
    return pdf_bytes(size, seed)


def png() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 64), 64).convert("RGB").save(out, format="PNG")
    return out.getvalue()


# ---- the bytes on the wire -----------------------------------------------------------------------------------


def resolved(value: Any) -> Any:
    """``value`` with each attachment written out whole, worked out here from the bytes."""
    if isinstance(value, Base64Text):
        return value.prefix + base64.b64encode(value.attachment.data).decode("ascii")
    if isinstance(value, dict):
        return {k: resolved(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolved(v) for v in value]
    return value


def bodies(attachments: tuple[Attachment, ...]) -> list[tuple[str, dict[str, Any]]]:
    """Each protocol's request body for a two-turn thread whose first user turn carries ``attachments``."""
    request = ChatRequest(model="m", messages=(
        Message("system", "Be brief."), Message("user", PROMPT, attachments),
        Message("assistant", "A figure."), Message("user", "And its title?", cache_point=True)))
    client = httpx.AsyncClient()  # never used: a body is built without sending anything
    out = []
    for name in ("openai", "openrouter", "anthropic", "gemini"):
        endpoint = resolve_endpoint(BUILTIN[name], environ={**Emulator().env(), **Emulator.test_keys()})
        provider = make_provider(BUILTIN[name], endpoint, client)
        assert isinstance(provider, SSEProvider)
        out.append((name, provider.body(request)))
    asyncio.run(client.aclose())
    return out


def test_a_streamed_body_is_byte_for_byte_what_json_would_send() -> None:
    paper = Attachment.of(pdf(300_000), "paper.pdf")
    picture = Attachment.of(png(), "chart.png")
    for name, body in bodies((picture, paper)):
        streamed = JSONBody(body)
        pieces = list(streamed.pieces())
        expected = httpx.Request("POST", "http://x", json=resolved(body)).content
        assert b"".join(pieces) == expected, name
        assert streamed.headers == {"Content-Type": "application/json", "Content-Length": str(len(expected))}
        assert streamed.streamed and streamed.content is streamed
        # Never the whole file (or its base64) in one piece: a chunk of it at most.
        assert max(len(p) for p in pieces) <= 4 * CHUNK_BYTES // 3
        # A batch's request file writes the same value whole.
        whole = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=json_default)
        assert whole.encode() == expected


def test_a_body_without_attachments_is_sent_whole() -> None:
    [(_, body), *_] = bodies(())
    streamed = JSONBody(body)
    assert not streamed.streamed
    assert streamed.content == httpx.Request("POST", "http://x", json=body).content


def test_pieces_of_an_upload_add_up_to_the_bytes() -> None:
    data = random.Random(3).randbytes(200_001)

    async def read() -> list[bytes]:
        return [p async for p in Pieces(data, piece=65_536)]

    got = asyncio.run(read())
    assert b"".join(got) == data and max(map(len, got)) == 65_536
    assert Pieces(data).headers == {"Content-Length": "200001"}
    with pytest.raises(ValueError):
        list(Base64Text(Attachment.of(pdf(2000), "x.pdf")).json_pieces(chunk=1000))


def test_the_emulator_gets_the_file_under_a_content_length_from_each_provider(emulator_env: Emulator) -> None:
    paper = pdf(400_000)
    emulator_env.script("judge", ModelScript(reply='{"reasoning": "A is fine.", "winner": "A"}'))
    r = fusion_magic.fuse(PROMPT, pool=POOL, judge="openai:judge", mode="best-of", settings=FAST,
                          attach=[Attachment.of(paper, "paper.pdf")])
    assert r.n_ok == 4 and not r.degraded
    chats = [q for q in emulator_env.requests if q.method == "POST" and q.model]
    assert len(chats) == 5  # four members and the judge, each with the file
    for q in chats:
        assert q.status == 200 and q.headers["content-type"] == "application/json"
        assert "transfer-encoding" not in q.headers  # a Content-Length, never chunked
        sent = json.dumps(q.body, ensure_ascii=False, separators=(",", ":")).encode()
        assert int(q.headers["content-length"]) == len(sent), q.model
        assert base64.b64encode(paper).decode() in sent.decode(), q.model


# ---- memory ----------------------------------------------------------------------------------------------------


@pytest.fixture
def outside_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The emulator in a process of its own (its copies of what it receives are not ours), its base URLs and keys
    in this process's environment."""
    names = {**Emulator().env(), **Emulator.test_keys()}
    proc = subprocess.Popen([sys.executable, "-m", "fusion_magic.testing"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        for _ in names:
            line = proc.stdout.readline()
            if not line.startswith("export "):
                raise RuntimeError(f"the emulator process did not start: {line!r}")
            name, _, value = line.removeprefix("export ").strip().partition("=")
            monkeypatch.setenv(name, shlex.split(value)[0])
        yield
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # reaps it and closes its pipe


def test_four_providers_at_once_hold_no_copy_of_the_file(outside_emulator: None) -> None:
    # 12 MB: its base64 stays under Gemini's inline limit, so all four members send it inline in their JSON.
    paper = Attachment.of(pdf(12 << 20), "paper.pdf")
    fusion_magic.fuse("Warm up.", pool=POOL, judge="vote", settings=FAST, attach=[Attachment.of(pdf(4096), "w.pdf")])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        r = fusion_magic.fuse("Summarise the paper.", pool=POOL, judge="vote", settings=FAST, attach=[paper])
        growth = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert r.n_ok == 4, [x.error for x in r.responses]
    # Sent whole, each request held its base64 or data URL, its JSON text and bytes and a send buffer: over ten
    # times the file. Streamed, the four hold a chunk or two each: far under a quarter of the file.
    assert growth < paper.size / 4, f"{growth / 2**20:.1f} MB for a {paper.size / 2**20:.0f} MB file"
    assert "base64" not in vars(paper)  # the whole base64 was never made
