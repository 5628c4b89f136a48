"""fusion_magic.complete against a real OpenAI-compatible server we did not write: llama-cpp-python's
own server serving the bundled Gemma model on 127.0.0.1, started through
``fusion_magic.providers.chat.local.llama_server`` so that it loads with plain CPU buffers (the stock
``python -m llama_cpp.server`` segfaults on its first request on CPUs with AMX)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

import fusion_magic
from fusion_magic.providers.chat.local.files import bundled_gguf

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gguf = bundled_gguf()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    log = log_path.open("wb")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusion_magic.providers.chat.local.llama_server", "--model", str(gguf),
         "--model_alias", "gemma3-270m", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"llama_cpp.server did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_complete_against_llama_cpp_server(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACPP_BASE_URL", llama_server)
    r = fusion_magic.complete("llamacpp:gemma3-270m", "Question: What is the capital of France?\nAnswer:",
                              max_tokens=12, temperature=0)
    assert r.status == "ok", r.error
    # This server streams no usage even when asked (stream_options), so figures are ours to count
    # (tests/test_counted_usage.py). The base model often answers nothing through the chat template:
    # then there is nothing to count, and the figures stay unknown rather than invented.
    if r.text:
        assert r.tokens_source == "counted" and r.output_tokens and r.input_tokens
    else:
        assert (r.input_tokens, r.output_tokens) == (None, None)
    assert r.finish_reason in ("stop", "length")
    assert r.cost_usd == 0 and r.latency_s is not None and r.latency_s > 0
    assert os.environ.get("OPENAI_API_KEY") is None  # no key was needed or sent


def test_fuse_pool_on_llama_cpp_server(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMACPP_BASE_URL", llama_server)
    r = fusion_magic.fuse("Say hello.", pool=["llamacpp:gemma3-270m", "llamacpp:gemma3-270m"], judge="vote",
                          max_tokens=8)
    assert [x.status for x in r.responses] == ["ok", "ok"]
    assert r.verdict is not None and r.ledger["status"].tolist() == ["ok", "ok"]
