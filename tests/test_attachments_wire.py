"""Attachments on the wire, through real sockets: each provider gets its own form of the same files with the exact
bytes (shared/reference/attachments.md), the emulator refuses the malformed shapes the real APIs refuse (so its
acceptance means something), and what cannot be sent is refused at plan time with one line and no request."""

from __future__ import annotations

import base64
import binascii
import functools
import io
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.providers.chat import openrouter_models
from fusion_magic.testing import Emulator, ModelScript, RecordedRequest
from fusion_magic.testing.chat import text_of
from fusion_magic.testing.judges import content_judge

FAST = Settings(max_retries=0, timeout=20)
PROMPT = "Describe the chart and summarise the paper."
# Braces and a backtick run: the file goes in verbatim, in a fence longer than any run inside it.
NOTES = 'def area(r):\n    """Area of a circle of radius {r}; see ``math.pi``."""\n    return 3.14 * r * r\n'
POOL = ["openai:gpt-4o", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-flash", "openrouter:openai/gpt-4o"]


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 8), "navy").save(out, format="JPEG")
    return out.getvalue()


def png(colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(out, format="GIF")
    return out.getvalue()


@functools.cache  # Pillow stamps the PDF with the time it wrote it: one PDF per test run
def pdf() -> bytes:
    """A small valid one-page PDF (Pillow writes real PDFs)."""
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(out, format="PDF")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A JPEG saved as chart.png, a PDF and a Python file."""
    paths = {"chart": tmp_path / "chart.png", "paper": tmp_path / "paper.pdf", "notes": tmp_path / "notes.py"}
    paths["chart"].write_bytes(jpeg())
    paths["paper"].write_bytes(pdf())
    paths["notes"].write_text(NOTES, encoding="utf-8")
    return paths


def member(emu: Emulator, model: str) -> RecordedRequest:
    """The one chat request that went to ``model``."""
    found = [q for q in emu.requests if q.model == model and q.method == "POST"]
    assert len(found) == 1, [q.path for q in emu.requests]
    assert found[0].status == 200
    return found[0]


def data_url_bytes(url: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert url.startswith(prefix), url[:40]
    return base64.b64decode(url[len(prefix):], validate=True)


# ---- one fuse, four wire forms -------------------------------------------------------------------------


def test_one_fuse_sends_each_provider_its_own_wire_form_with_the_exact_bytes(
        emulator_env: Emulator, files: dict[str, Path]) -> None:
    emulator_env.script("judge", ModelScript(reply=content_judge("claude-sonnet-4-5")))
    r = fusion_magic.fuse(PROMPT, pool=POOL, judge="openai:judge", settings=FAST,
                          attach=[files["chart"], str(files["paper"]), files["notes"]])
    assert r.n_ok == 4 and not r.degraded
    image, paper = jpeg(), pdf()
    # The text file is fenced and named inside the prompt text, verbatim; no provider gets it as a binary part.
    text = f"{PROMPT}\n\nnotes.py:\n```python\n{NOTES.rstrip(chr(10))}\n```"

    for model in ("gpt-4o", "openai/gpt-4o"):  # OpenAI and OpenRouter: text first, then image_url and file parts
        body = member(emulator_env, model).body
        assert [m["role"] for m in body["messages"]] == ["user"]
        parts = body["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["text", "image_url", "file"]
        assert parts[0]["text"] == text
        assert data_url_bytes(parts[1]["image_url"]["url"], "image/jpeg") == image  # image/jpeg, not image/png
        assert parts[2]["file"]["filename"] == "paper.pdf"  # the basename, never the local path
        assert data_url_bytes(parts[2]["file"]["file_data"], "application/pdf") == paper

    blocks = member(emulator_env, "claude-sonnet-4-5").body["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["image", "document", "text"]  # the files before the text
    assert blocks[0]["source"]["type"] == "base64" and blocks[0]["source"]["media_type"] == "image/jpeg"
    assert base64.b64decode(blocks[0]["source"]["data"], validate=True) == image
    assert blocks[1]["source"] == {"type": "base64", "media_type": "application/pdf", "data": b64(paper)}
    assert blocks[2]["text"] == text
    assert all("cache_control" not in b for b in blocks)  # a first turn has no earlier prefix to cache

    contents = member(emulator_env, "gemini-2.5-flash").body["contents"]
    assert [c["role"] for c in contents] == ["user"]
    parts = contents[0]["parts"]
    assert parts[0]["inline_data"]["mime_type"] == "image/jpeg"
    assert base64.b64decode(parts[0]["inline_data"]["data"]) == image
    assert parts[1]["inline_data"] == {"mime_type": "application/pdf", "data": b64(paper)}
    assert parts[2] == {"text": text}


def test_complete_sends_its_attachments(emulator_env: Emulator, files: dict[str, Path]) -> None:
    emulator_env.script("claude-x", ModelScript(reply="A navy rectangle."))
    record = fusion_magic.complete("anthropic:claude-x", "What is in the picture?", attach=[files["chart"]])
    assert record.status == "ok" and record.text == "A navy rectangle."
    blocks = member(emulator_env, "claude-x").body["messages"][0]["content"]
    assert blocks[0]["source"] == {"type": "base64", "media_type": "image/jpeg", "data": b64(jpeg())}
    assert blocks[1] == {"type": "text", "text": "What is in the picture?"}


def test_bytes_a_pil_image_and_a_dataframe_attach(emulator_env: Emulator) -> None:
    frame = pd.DataFrame({"city": ["Paris", "Oslo"], "temp": [21, 9]})
    picture = Image.new("RGB", (8, 8), "blue")
    r = fusion_magic.fuse("Compare these.", pool=["openai:a", "gemini:b"], judge="vote", settings=FAST,
                          attach=[png("red"), picture, frame])
    assert r.n_ok == 2
    parts = member(emulator_env, "a").body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]
    assert data_url_bytes(parts[1]["image_url"]["url"], "image/png") == png("red")
    assert Image.open(io.BytesIO(data_url_bytes(parts[2]["image_url"]["url"], "image/png"))).getpixel((0, 0)) \
        == (0, 0, 255)
    # The DataFrame goes as CSV text in the prompt, fenced and named, for both members.
    csv = frame.to_csv(index=True).rstrip("\n")
    assert parts[0]["text"] == f"Compare these.\n\ntable.csv:\n```csv\n{csv}\n```"
    gemini_parts = member(emulator_env, "b").body["contents"][0]["parts"]
    assert [p["inline_data"]["mime_type"] for p in gemini_parts[:2]] == ["image/png", "image/png"]
    assert gemini_parts[2] == {"text": parts[0]["text"]}


# ---- refused before any request --------------------------------------------------------------------------


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.txt", "hello")
    return out.getvalue()


REFUSED: list[tuple[str, list[str], Callable[[Path], Path], str]] = [
    ("missing", ["openai:a", "gemini:b"], lambda d: d / "nowhere.png", "nowhere.png: no such file"),
    ("zip", ["openai:a", "anthropic:b"], lambda d: _write(d / "archive.zip", _zip()), "archive.zip: not an image"),
    ("local", ["openai:a", "local:gemma3-270m"], lambda d: _write(d / "red.png", png()),
     "local:gemma3-270m cannot take red.png"),
    ("gif", ["openai:a", "gemini:b"], lambda d: _write(d / "anim.gif", gif()), "gemini:b cannot take anim.gif"),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("pool", "make", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_what_cannot_be_sent_is_one_line_and_no_request(emulator_env: Emulator, tmp_path: Path, pool: list[str],
                                                        make: Callable[[Path], Path], message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=message) as info:
        fusion_magic.fuse("Look at this.", pool=pool, judge="vote", settings=FAST, attach=[path])
    assert "\n" not in str(info.value)
    assert emulator_env.requests == []


@pytest.mark.parametrize(("pool", "make", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_the_magic_says_it_as_one_usage_line(shell: InteractiveShell, emulator_env: Emulator, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, pool: list[str],
                                             make: Callable[[Path], Path], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    name = make(tmp_path).name
    with pytest.raises(UsageError, match=message) as info:
        shell.run_cell_magic("fuse", f"-p {','.join(pool)} -j vote --attach {name}", "Look at this.")
    assert type(info.value) is UsageError and "\n" not in str(info.value)
    assert emulator_env.requests == []


@pytest.fixture
def fresh_model_list() -> Iterator[None]:
    """OpenRouter's model list is fetched once an hour per base URL: each side of the test reads its own."""
    openrouter_models.forget()
    yield
    openrouter_models.forget()


def test_a_text_only_openrouter_model_gets_no_image(emulator_env: Emulator, tmp_path: Path,
                                                    fresh_model_list: None) -> None:
    # The emulator's model list says what a scripted model reads; the client asks it before any chat request.
    emulator_env.script("t/reader", ModelScript(reply="Text only.", input_modalities=("text",)))
    emulator_env.script("t/viewer", ModelScript(reply="I see red."))
    path = _write(tmp_path / "red.png", png())
    with pytest.raises(ConfigError, match="openrouter:t/reader takes no images") as info:
        fusion_magic.fuse("Colour?", pool=["openrouter:t/reader", "openai:a"], judge="vote", settings=FAST,
                          attach=[path])
    assert "\n" not in str(info.value)
    assert [(q.method, q.path) for q in emulator_env.requests] == [("GET", "/openrouter/api/v1/models")]
    # A model the list says reads images (the default) gets it.
    r = fusion_magic.fuse("Colour?", pool=["openrouter:t/viewer", "openai:a"], judge="vote", settings=FAST,
                          attach=[path])
    assert r.n_ok == 2
    parts = member(emulator_env, "t/viewer").body["messages"][0]["content"]
    assert data_url_bytes(parts[1]["image_url"]["url"], "image/png") == png()


# ---- the emulator refuses what the real APIs refuse --------------------------------------------------------


@pytest.fixture
def http(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client


def post(client: httpx.Client, family: str, turns: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    """One streamed chat request of ``family`` with ``turns`` as its messages (Gemini: contents)."""
    if family == "anthropic":
        headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
        body = {"model": "m", "max_tokens": 64, "stream": True, "messages": turns, **extra}
        return client.post("/anthropic/v1/messages", headers=headers, json=body)
    if family == "gemini":
        return client.post("/gemini/v1beta/models/m:streamGenerateContent?alt=sse",
                           headers={"x-goog-api-key": "k"}, json={"contents": turns, **extra})
    path = "/openai/v1/chat/completions" if family == "openai" else "/openrouter/api/v1/chat/completions"
    return client.post(path, headers={"Authorization": "Bearer k"},
                       json={"model": "m", "stream": True, "messages": turns, **extra})


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": "Look."}, *parts]}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def file_part(**file: str) -> dict[str, Any]:
    return {"type": "file", "file": file}


PDF_URL = "data:application/pdf;base64," + b64(pdf())
JPEG_URL = "data:image/jpeg;base64," + b64(jpeg())


@pytest.mark.parametrize("family", ["openai", "openrouter"])
def test_openai_style_accepts_the_documented_shapes(http: httpx.Client, family: str) -> None:
    # A PNG sent under a JPEG data URL is fine here: OpenAI reads the bytes, only Anthropic checks the label.
    turns = [user(image_part(JPEG_URL), image_part("data:image/jpeg;base64," + b64(png())),
                  file_part(filename="paper.pdf", file_data=PDF_URL)),
             {"role": "assistant", "content": [{"type": "text", "text": "A chart."}]},
             {"role": "user", "content": "Why?"}]
    response = post(http, family, turns)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")


OPENAI_REFUSED: list[tuple[str, list[dict[str, Any]], str, str | None, str]] = [
    ("unknown part type", [user({"type": "video_url", "video_url": {"url": "https://x/v.mp4"}})],
     "Invalid value: 'video_url'. Supported values are: 'text', 'image_url', 'input_audio', and 'file'.",
     "messages[0].content[1].type", "invalid_value"),
    ("image in an assistant turn", [user(), {"role": "assistant", "content": [image_part(JPEG_URL)]}],
     "Invalid value: 'image_url'. Supported values are: 'text' and 'refusal'.", "messages[1].content[0].type",
     "invalid_value"),
    ("file in a system turn", [{"role": "system", "content": [file_part(filename="p.pdf", file_data=PDF_URL)]},
                               user()],
     "Invalid value: 'file'. Supported values are: 'text'.", "messages[0].content[0].type", "invalid_value"),
    ("bytes that are no image", [user(image_part("data:image/png;base64," + b64(b"not an image at all")))],
     "does not represent a valid image", None, "invalid_value"),
    ("a PDF as an image", [user(image_part(PDF_URL))], "but got unsupported MIME type 'application/pdf'.",
     "messages[0].content[1].image_url.url", "invalid_value"),
    ("empty image", [user(image_part("data:image/png;base64,"))], "but got empty base64-encoded bytes.",
     "messages[0].content[1].image_url.url", "invalid_value"),
    ("file without filename", [user(file_part(file_data=PDF_URL))],
     "Missing required parameter: 'messages[0].content[1].file.file_id'.", "messages[0].content[1].file.file_id",
     "missing_required_parameter"),
    ("bare base64 file_data", [user(file_part(filename="paper.pdf", file_data=b64(pdf())))],
     "Expected a base64-encoded data URL with an application/pdf MIME type", "messages[0].content[1].file.file_data",
     "invalid_value"),
    ("a text file in a file part", [user(file_part(filename="notes.py",
                                                   file_data="data:text/plain;base64," + b64(NOTES.encode())))],
     "but got unsupported MIME type 'text/plain'.", "messages[0].content[1].file.file_data", "invalid_value"),
    ("PDF label, JPEG bytes", [user(file_part(filename="paper.pdf", file_data="data:application/pdf;base64,"
                                              + b64(jpeg())))],
     "not a valid PDF", "messages[0].content[1].file.file_data", "invalid_value"),
]


@pytest.mark.parametrize(("turns", "message", "param", "code"), [c[1:] for c in OPENAI_REFUSED],
                         ids=[c[0] for c in OPENAI_REFUSED])
def test_openai_refuses_malformed_parts(http: httpx.Client, emulator: Emulator, turns: list[dict[str, Any]],
                                        message: str, param: str | None, code: str) -> None:
    response = post(http, "openai", turns)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error["message"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert emulator.requests[-1].status == 400


def test_openrouter_takes_a_file_without_filename_or_by_url(http: httpx.Client) -> None:
    assert post(http, "openrouter", [user(file_part(file_data=PDF_URL))]).status_code == 200
    assert post(http, "openrouter", [user(file_part(file_data="https://example.com/paper.pdf"))]).status_code == 200
    video = {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}
    assert post(http, "openrouter", [user(video)]).status_code == 200


@pytest.mark.parametrize(("turns", "message"), [
    ([user(image_part("data:image/png;base64," + b64(b"plain text")))], "does not represent a valid image"),
    ([user(file_part(filename="n.py", file_data="data:text/plain;base64,aGk="))], "unsupported MIME type"),
    ([user({"type": "audio_url"})], "Invalid value: 'audio_url'"),
], ids=["not an image", "not a PDF", "unknown type"])
def test_openrouter_refuses_in_its_own_envelope(http: httpx.Client, turns: list[dict[str, Any]],
                                                message: str) -> None:
    response = post(http, "openrouter", turns)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and message in error["message"] and "type" not in error


def image_block(data: bytes | str, media_type: str = "image/jpeg", **extra: Any) -> dict[str, Any]:
    encoded = data if isinstance(data, str) else b64(data)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}, **extra}


def document_block(data: bytes, media_type: str = "application/pdf") -> dict[str, Any]:
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": b64(data)}}


def text_block(text: str = "Look.", **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": text, **extra}


def a_user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks) or "Look."}


EPHEMERAL = {"type": "ephemeral"}


def test_anthropic_accepts_the_documented_shapes(http: httpx.Client) -> None:
    turns = [a_user(image_block(jpeg()), document_block(pdf()), text_block()),
             {"role": "assistant", "content": "A chart."},
             a_user(text_block("Why?", cache_control={"type": "ephemeral", "ttl": "1h"}))]
    response = post(http, "anthropic", turns, system=[text_block("Be brief.", cache_control=EPHEMERAL)])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    # Two user turns in a row: the API combines them into one turn (no longer a 400).
    assert post(http, "anthropic", [a_user(), a_user(text_block("And?"))]).status_code == 200


ANTHROPIC_REFUSED: list[tuple[str, list[dict[str, Any]], str]] = [
    ("media type outside the four", [a_user(image_block(png(), "image/bmp"))],
     "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
     "'image/gif' or 'image/webp'"),
    ("declared type is not the bytes", [a_user(text_block(), image_block(png(), "image/jpeg"))],
     "messages.0.content.1.image.source.base64: The image was specified using the image/jpeg media type, but the "
     "image appears to be a image/png image"),
    ("source without base64 type", [a_user({"type": "image", "source": {"media_type": "image/png",
                                                                          "data": b64(png())}})],
     "messages.0.content.0.image.source: Input tag 'None' found using 'type'"),
    ("a data URL as the data", [a_user(image_block("data:image/jpeg;base64," + b64(jpeg())))],
     "Could not process image"),
    ("empty image", [a_user(image_block(""))], "messages.0.content.0.image.source.base64: image cannot be empty"),
    ("a text file as a base64 document", [a_user(document_block(NOTES.encode(), "text/plain"))],
     "messages.0.content.0.document.source.base64.media_type: Input should be 'application/pdf'"),
    ("PDF label, JPEG bytes", [a_user(document_block(jpeg()))],
     "messages.0.content.0.pdf.source.base64.data: The PDF specified was not valid."),
    ("cache_control of another type", [a_user(text_block(cache_control={"type": "persistent"}))],
     "messages.0.content.0.text.cache_control: Input tag 'persistent' found using 'type'"),
    ("cache_control ttl", [a_user(text_block(cache_control={"type": "ephemeral", "ttl": "10m"}))],
     "messages.0.content.0.text.cache_control.ephemeral.ttl: Input should be '5m' or '1h'"),
    ("five cache points", [a_user(*[text_block(f"t{i}", cache_control=EPHEMERAL) for i in range(5)])],
     "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ("starts with the assistant", [{"role": "assistant", "content": "Hi."}, a_user()],
     'messages: first message must use the "user" role'),
    ("an empty assistant turn", [a_user(), {"role": "assistant", "content": ""}, a_user()],
     "messages.1: all messages must have non-empty content except for the optional final assistant message"),
    ("an empty text block", [a_user(text_block(""))], "messages: text content blocks must be non-empty"),
]


@pytest.mark.parametrize(("turns", "message"), [c[1:] for c in ANTHROPIC_REFUSED],
                         ids=[c[0] for c in ANTHROPIC_REFUSED])
def test_anthropic_refuses_malformed_blocks_and_threads(http: httpx.Client, turns: list[dict[str, Any]],
                                                        message: str) -> None:
    response = post(http, "anthropic", turns)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert message in body["error"]["message"]


def inline(data: str, mime: str, *, key: str = "inline_data", mime_key: str = "mime_type") -> dict[str, Any]:
    return {key: {mime_key: mime, "data": data}}


def g_user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": [*parts, {"text": "Look."}]}


def test_gemini_accepts_either_spelling_and_url_safe_base64(http: httpx.Client) -> None:
    # What google-genai sends: inlineData with snake_case keys inside, URL-safe base64 without padding.
    url_safe = base64.urlsafe_b64encode(jpeg()).decode().rstrip("=")
    with pytest.raises(binascii.Error):  # the case a standard-alphabet, padded-only decoder would refuse
        base64.b64decode(url_safe, validate=True)
    contents = [g_user(inline(url_safe, "image/jpeg", key="inlineData"),
                       inline(b64(pdf()), "application/pdf", mime_key="mimeType")),
                {"role": "model", "parts": [{"text": "A chart."}]},
                {"role": "user", "parts": [{"text": "Why?"}]}]
    response = post(http, "gemini", contents)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")


GEMINI_REFUSED: list[tuple[str, list[dict[str, Any]], str, str | None]] = [
    ("a data URL as the data", [{"role": "user", "parts": [{"text": "a"}, {"text": "b"},
                                                           inline("data:image/png;base64," + b64(png()),
                                                                  "image/png")]}],
     "Invalid value at 'contents[0].parts[2].inline_data.data' (TYPE_BYTES), Base64 decoding failed for "
     "\"data:image/png;base64\"", "contents[0].parts[2].inline_data.data"),
    ("a GIF", [g_user(inline(b64(gif()), "image/gif"))], "Unsupported MIME type: image/gif", None),
    ("the assistant role", [g_user(), {"role": "assistant", "parts": [{"text": "Hi."}]}],
     "Please use a valid role: user, model.", None),
    ("two data fields in a part", [{"role": "user", "parts": [{"text": "a", **inline(b64(png()), "image/png")}]}],
     "oneof field 'data' is already set", "contents[0].parts[0]"),
    ("an unknown field", [{"role": "user", "parts": [{"image": b64(png())}]}],
     "Invalid JSON payload received. Unknown name \"image\" at 'contents[0].parts[0]': Cannot find field.",
     "contents[0].parts[0]"),
    ("no data field", [{"role": "user", "parts": [{"thought": True}]}],
     "required oneof field 'data' must have one initialized field", None),
    ("no MIME type", [{"role": "user", "parts": [{"inline_data": {"data": b64(png())}}]}],
     "mime_type is not specified", None),
]


@pytest.mark.parametrize(("contents", "message", "field"), [c[1:] for c in GEMINI_REFUSED],
                         ids=[c[0] for c in GEMINI_REFUSED])
def test_gemini_refuses_malformed_parts(http: httpx.Client, contents: list[dict[str, Any]], message: str,
                                        field: str | None) -> None:
    response = post(http, "gemini", contents)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT" and message in error["message"]
    if field is not None:
        violations: list[Mapping[str, Any]] = error["details"][0]["fieldViolations"]
        assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        assert violations[0]["field"] == field


def test_a_refused_request_is_never_answered_by_the_model(http: httpx.Client, emulator: Emulator) -> None:
    # The 400 comes before the script is drawn: the next good request gets the model's first reply.
    emulator.script("m", ModelScript(replies=["first", "second"]))
    assert post(http, "gemini", [g_user(inline(b64(gif()), "image/gif"))]).status_code == 400
    good = post(http, "gemini", [g_user(inline(b64(png()), "image/png"))])
    assert good.status_code == 200 and '"first"' in good.text


def test_text_of_reads_the_text_parts_only() -> None:
    # What the scripted judges read: a request's text, whichever family's parts carry the files beside it.
    openai = [{"type": "text", "text": "Look."}, image_part(JPEG_URL), file_part(filename="p.pdf", file_data=PDF_URL)]
    anthropic = [image_block(jpeg()), {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                                      "data": "not prompt text"}}, text_block()]
    gemini = g_user(inline(b64(jpeg()), "image/jpeg"))["parts"]
    assert text_of(openai) == text_of(anthropic) == text_of(gemini) == "Look."
    assert text_of("Plain.") == "Plain." and text_of(None) == ""
