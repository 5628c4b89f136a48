"""Evaluation rows with an ``attachments`` column: each question's files reach every strategy's models in their
provider's wire form, relative paths read from the questions file's folder, and a model that cannot take them is
refused before any call."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.testing import Emulator

FAST = Settings(max_retries=0, timeout=20, run_log="off")


def png(colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Emulator:
    with Emulator() as emulator:
        for name, value in {**emulator.env(), **emulator.test_keys()}.items():
            monkeypatch.setenv(name, value)
        yield emulator


def _image_urls(body: dict) -> list[str]:
    return [part["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
            for part in m["content"] if part.get("type") == "image_url"]


def test_each_row_sends_its_own_files_to_every_strategy(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "red.png").write_bytes(png("red"))
    (tmp_path / "blue.png").write_bytes(png("blue"))
    (tmp_path / "data.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join(json.dumps(row) for row in [
        {"id": "r", "question": "What colour is the square?", "reference": "red", "attachments": "red.png"},
        {"id": "b", "question": "What colour is the square?", "reference": "blue",
         "attachments": "blue.png, data.csv"},
        {"id": "n", "question": "What is 2 + 2?", "reference": "4"},
    ]) + "\n", encoding="utf-8")
    result = fusion_magic.evaluate(questions, pool=["openai:gpt-4o", "openrouter:t/b"],
                                   strategies=["single:openai:gpt-4o", "vote"], judge="vote", settings=FAST)
    assert len(result.rows) == 3 * 2
    sent: dict[str, list[bytes]] = {}
    for request in emu.requests:
        body = request.body
        if request.method != "POST":
            continue  # OpenRouter's model list, read at plan time
        texts = [p.get("text", "") for m in body["messages"]
                 for p in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}])]
        key = "b" if any("data.csv" in t for t in texts) else "n" if any("2 + 2" in t for t in texts) else "r"
        sent.setdefault(key, []).extend(base64.b64decode(u.split(",", 1)[1]) for u in _image_urls(body))
        if key == "b":
            assert any("```csv\nx,y\n1,2\n```" in t for t in texts)
    # single asks one model, vote both: three calls per question, each with the row's image.
    assert sent["r"] == [png("red")] * 3
    assert sent["b"] == [png("blue")] * 3
    assert sent.get("n", []) == []


def test_a_text_only_model_is_refused_before_any_call(emu: Emulator) -> None:
    frame = pd.DataFrame({"question": ["Colour?"], "reference": ["red"], "attachments": [[png()]]})
    with pytest.raises(ConfigError, match=r"local:gemma3-270m cannot take attachment\.png"):
        fusion_magic.evaluate(frame, pool=["local:gemma3-270m"], strategies=["single"], settings=FAST)
    assert emu.requests == []


def test_a_missing_file_names_its_row(emu: Emulator, tmp_path: Path) -> None:
    questions = tmp_path / "q.csv"
    questions.write_text("question,reference,attachments\nColour?,red,nowhere.png\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"q.csv row 1: attachment .*nowhere.png: no such file"):
        fusion_magic.evaluate(questions, pool=["openai:gpt-4o"], strategies=["single"], settings=FAST)
    assert emu.requests == []
