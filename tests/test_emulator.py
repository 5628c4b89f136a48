"""The emulator's own tests: raw httpx over a real socket, checking the bytes each family sends."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
import httpx_sse
import pytest

from fusion_magic.testing import ASGI_URL, SCRIPTED, Emulator, Fault, ModelScript, RecordedRequest, VideoScript
from fusion_magic.testing.media import clip_bytes
from fusion_magic.testing.registry import Family, Request, Route, register, unregister

FAMILIES = ("openrouter", "openai", "ollama", "anthropic", "gemini")
PROMPT = "What is the capital of France?"


_client: httpx.Client | None = None


@pytest.fixture(scope="module", autouse=True)
def _shared_client() -> Iterator[None]:
    # One pooled client for the module: a fresh httpx.post() per call pays for a new SSL context.
    global _client
    with httpx.Client(timeout=5) as client:
        _client = client
        yield
    _client = None


def http() -> httpx.Client:
    assert _client is not None
    return _client


def request_parts(
    family: str, model: str, *, stream: bool = True, key: str | None = "test-key", **extra: Any
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(path, headers, body) of a minimal chat request in ``family``'s dialect."""
    headers: dict[str, str] = {}
    if family == "anthropic":
        if key is not None:
            headers["x-api-key"] = key
        headers["anthropic-version"] = "2023-06-01"
        body: dict[str, Any] = {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": PROMPT}]}
        body["stream"] = stream
        return "/anthropic/v1/messages", headers, {**body, **extra}
    if family == "gemini":
        if key is not None:
            headers["x-goog-api-key"] = key
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], **extra}
        return f"/gemini/v1beta/models/{model}:{verb}", headers, body
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    prefix = {"openrouter": "/openrouter/api/v1", "openai": "/openai/v1", "ollama": "/ollama/v1"}[family]
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream, **extra}
    return f"{prefix}/chat/completions", headers, body


def call(emu: Emulator, family: str, model: str, **kwargs: Any) -> httpx.Response:
    path, headers, body = request_parts(family, model, **kwargs)
    return http().post(emu.url + path, headers=headers, json=body)


def sse_events(raw: str) -> list[tuple[str, str]]:
    """(kind, payload) per SSE block: kind is "comment", the ``event:`` name, or "message"."""
    out: list[tuple[str, str]] = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        if not block:
            continue
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                out.append(("comment", line[1:].strip()))
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            out.append((event, "\n".join(data)))
    return out


def payloads(raw: str) -> list[Any]:
    """The JSON payload of every data event (``[DONE]`` kept as the string)."""
    return [json.loads(data) if data != "[DONE]" else data for kind, data in sse_events(raw) if kind != "comment"]


def openai_text(chunks: list[Any]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in chunks
        if isinstance(chunk, dict)
        for choice in chunk.get("choices", [])
    )


# ---- transcripts per family ----------------------------------------------------------------------


def test_openrouter_stream_transcript(emulator: Emulator) -> None:
    emulator.script("openai/gpt-4o", ModelScript(reply="Paris is the capital.", chunk_chars=5, cost_usd=0.00042))
    response = call(emulator, "openrouter", "openai/gpt-4o")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-generation-id"].startswith("gen-")
    events = sse_events(response.text)
    assert events[0] == ("comment", "OPENROUTER PROCESSING")
    chunks = payloads(response.text)
    assert chunks[-1] == "[DONE]"
    body = chunks[:-1]
    assert all(c["provider"] == "OpenAI" and c["id"] == response.headers["x-generation-id"] for c in body)
    assert body[0]["choices"][0]["delta"]["role"] == "assistant"
    assert openai_text(body) == "Paris is the capital."
    # The terminal finish appears twice: once to end, once in the accounting chunk.
    finishes = [c["choices"][0]["finish_reason"] for c in body if c["choices"]]
    assert finishes[-2:] == ["stop", "stop"] and set(finishes[:-2]) == {None}
    assert body[-1]["choices"][0]["native_finish_reason"] == "stop"
    usage = body[-1]["usage"]
    assert usage["cost"] == 0.00042 and usage["is_byok"] is False
    assert usage["completion_tokens"] == 5  # ceil(21 / 5) chunks
    assert usage["prompt_tokens"] == len(PROMPT) // 4 + 1
    assert all("usage" not in c for c in body[:-1])


def test_openrouter_usage_chunk_with_empty_choices(emulator: Emulator) -> None:
    emulator.script("x/y", ModelScript(reply="ok", usage_choices_empty=True))
    chunks = payloads(call(emulator, "openrouter", "x/y").text)
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["cost"] > 0
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"


def test_openrouter_non_streaming_and_models(emulator: Emulator) -> None:
    emulator.script("google/gemini-2.5-pro", ModelScript(reply="Paris.", served_model="google/gemini-2.5-flash"))
    response = call(emulator, "openrouter", "google/gemini-2.5-pro", stream=False)
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "google/gemini-2.5-flash"
    assert body["provider"] == "Google"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris."}
    assert body["choices"][0]["native_finish_reason"] == "stop"
    assert body["usage"]["cost"] == pytest.approx((body["usage"]["total_tokens"]) * 1e-6)
    models = http().get(emulator.url + "/openrouter/api/v1/models").json()["data"]  # no auth, as documented
    first = models[0]
    assert first["id"] == "google/gemini-2.5-pro"
    assert isinstance(first["pricing"]["prompt"], str) and first["context_length"] > 0
    assert {"architecture", "top_provider", "supported_parameters"} <= first.keys()


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_stream_usage_only_on_request(emulator: Emulator, include_usage: bool) -> None:
    emulator.script("gpt-4o", ModelScript(reply="Paris.", chunk_chars=3))
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    response = call(emulator, "openai", "gpt-4o", **extra)
    assert response.headers["x-request-id"]
    assert not any(kind == "comment" for kind, _ in sse_events(response.text))
    chunks = payloads(response.text)
    assert chunks[-1] == "[DONE]"
    body = chunks[:-1]
    assert openai_text(body) == "Paris."
    assert all("provider" not in c and "native_finish_reason" not in c["choices"][0] for c in body if c["choices"])
    if include_usage:
        assert body[-1]["choices"] == []
        assert body[-1]["usage"]["completion_tokens"] == 2 and "cost" not in body[-1]["usage"]
        assert all(c["usage"] is None for c in body[:-1])
        assert body[-2]["choices"][0]["finish_reason"] == "stop"
    else:
        assert all("usage" not in c for c in body)
        assert body[-1]["choices"][0]["finish_reason"] == "stop"


def test_ollama_takes_any_bearer_but_not_none(emulator: Emulator) -> None:
    response = call(emulator, "ollama", "llama3.2", key="ollama", stream=False)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].startswith(f"{SCRIPTED} Emulated answer from llama3.2")
    assert call(emulator, "ollama", "llama3.2", key=None).status_code == 401


def test_anthropic_event_order_and_cumulative_usage(emulator: Emulator) -> None:
    emulator.script("claude-sonnet-4-5", ModelScript(reply="Paris, of course.", chunk_chars=6))
    response = call(emulator, "anthropic", "claude-sonnet-4-5")
    assert response.headers["request-id"].startswith("req_")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(payload) for _, payload in events]
    assert all(d["type"] == name for d, name in zip(data, names, strict=True))
    start = data[0]["message"]
    assert start["model"] == "claude-sonnet-4-5" and start["usage"]["input_tokens"] == len(PROMPT) // 4 + 1
    assert "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta") == "Paris, of course."
    assert data[7]["delta"]["stop_reason"] == "end_turn" and data[7]["usage"]["output_tokens"] == 3
    assert not any("cost" in json.dumps(d) for d in data)


def test_anthropic_non_streaming(emulator: Emulator) -> None:
    emulator.script("claude-x", ModelScript(reply="Paris.", input_tokens=40, output_tokens=2))
    body = call(emulator, "anthropic", "claude-x", stream=False).json()
    assert body["type"] == "message" and body["content"] == [{"type": "text", "text": "Paris."}]
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] == 40 and body["usage"]["output_tokens"] == 2


def test_gemini_stream_ends_by_close(emulator: Emulator) -> None:
    emulator.script("gemini-2.5-flash", ModelScript(reply="Paris is lovely.", chunk_chars=4))
    response = call(emulator, "gemini", "gemini-2.5-flash")
    assert response.status_code == 200
    events = sse_events(response.text)
    assert {kind for kind, _ in events} == {"message"}  # no event: lines, no comments
    assert "[DONE]" not in response.text
    chunks = [json.loads(data) for _, data in events]
    assert len(chunks) == 4
    assert all(c["candidates"][0]["content"]["role"] == "model" and "usageMetadata" in c for c in chunks)
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["usageMetadata"]["candidatesTokenCount"] == 4
    assert last["usageMetadata"]["totalTokenCount"] == last["usageMetadata"]["promptTokenCount"] + 4
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == "Paris is lovely."


def test_gemini_generate_content_and_query_key(emulator: Emulator) -> None:
    path, _, body = request_parts("gemini", "gemini-2.5-pro", stream=False, key=None)
    response = http().post(emulator.url + path, params={"key": "AIza-secret"}, json=body)
    assert response.status_code == 200
    candidate = response.json()["candidates"][0]
    assert candidate["finishReason"] == "STOP" and candidate["content"]["role"] == "model"
    # Without alt=sse, streamGenerateContent answers a JSON array of the same responses.
    array = (
        http()
        .post(
            emulator.url + "/gemini/v1beta/models/gemini-2.5-pro:streamGenerateContent",
            headers={"x-goog-api-key": "k"},
            json=body,
        )
        .json()
    )
    assert isinstance(array, list) and array[-1]["candidates"][0]["finishReason"] == "STOP"


def test_crlf_and_split_events_parse_the_same(emulator: Emulator) -> None:
    emulator.script("plain", ModelScript(reply="Split me into pieces, please."))
    emulator.script("odd", ModelScript(reply="Split me into pieces, please.", crlf=True, split_events=True))

    def parsed(model: str) -> list[str]:
        path, headers, body = request_parts("openrouter", model)
        with (
            httpx.Client(base_url=emulator.url) as client,
            httpx_sse.connect_sse(client, "POST", path, headers=headers, json=body) as source,
        ):
            return [openai_text([json.loads(e.data)]) for e in source.iter_sse() if e.data != "[DONE]"]

    assert parsed("odd") == parsed("plain")
    raw = call(emulator, "openrouter", "odd").text
    assert "\r\n\r\n" in raw


def reply_text(family: str, body: Any) -> str:
    """The answer's text in a non-streamed reply of ``family``."""
    if family == "anthropic":
        return str(body["content"][0]["text"])
    if family == "gemini":
        return str(body["candidates"][0]["content"]["parts"][0]["text"])
    return str(body["choices"][0]["message"]["content"])


@pytest.mark.parametrize("family", FAMILIES)
def test_an_unscripted_models_answer_says_it_is_scripted(emulator: Emulator, family: str) -> None:
    text = reply_text(family, call(emulator, family, "unscripted-model", stream=False).json())
    assert text.startswith(f"{SCRIPTED} ") and "unscripted-model" in text


def test_a_video_models_default_answer_about_a_clip_says_it_is_scripted(emulator: Emulator) -> None:
    emulator.script("gemini-2.5-flash", VideoScript())
    clip = base64.b64encode(clip_bytes(seconds=1.0)).decode()
    parts = [{"inlineData": {"mimeType": "video/mp4", "data": clip}}, {"text": "What moves?"}]
    response = call(emulator, "gemini", "gemini-2.5-flash", stream=False,
                    contents=[{"role": "user", "parts": parts}])
    assert response.status_code == 200
    assert reply_text("gemini", response.json()) == VideoScript().answer
    assert VideoScript().answer.startswith(f"{SCRIPTED} ")


def test_default_reply_is_deterministic_and_callable_replies_see_the_body(emulator: Emulator) -> None:
    first = call(emulator, "openai", "gpt-4o-mini", stream=False).json()["choices"][0]["message"]["content"]
    again = call(emulator, "openai", "gpt-4o-mini", stream=False).json()["choices"][0]["message"]["content"]
    assert first == again and "gpt-4o-mini" in first and "capital of France" in first
    emulator.script("judge", ModelScript(reply=lambda body: f"{len(body['messages'])} message(s)"))
    assert call(emulator, "openai", "judge", stream=False).json()["choices"][0]["message"]["content"] == "1 message(s)"


# ---- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_missing_key_gets_the_familys_error(emulator: Emulator, family: str) -> None:
    response = call(emulator, family, "some-model", key=None)
    body = response.json()
    if family == "openrouter":
        assert response.status_code == 401 and body["error"]["code"] == 401
    elif family in ("openai", "ollama"):
        assert response.status_code == 401 and body["error"]["type"] == "invalid_request_error"
    elif family == "anthropic":
        assert response.status_code == 401
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    else:
        assert response.status_code == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
        assert body["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_expected_keys_and_anthropic_version(emulator: Emulator) -> None:
    emulator.expected_keys["openai"] = "sk-right"
    wrong = call(emulator, "openai", "gpt-4o", key="sk-wrong")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert call(emulator, "openai", "gpt-4o", key="sk-right", stream=False).status_code == 200
    path, headers, body = request_parts("anthropic", "claude-x")
    del headers["anthropic-version"]
    response = http().post(emulator.url + path, headers=headers, json=body)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_bad_requests(emulator: Emulator) -> None:
    assert http().post(emulator.url + "/nowhere").status_code == 404
    assert http().get(emulator.url + "/openai/v1/chat/completions").status_code == 405
    response = http().post(
        emulator.url + "/openai/v1/chat/completions", headers={"authorization": "Bearer k"}, content=b"{nope"
    )
    assert response.status_code == 400 and "error" in response.json()
    path, headers, body = request_parts("anthropic", "claude-x")
    del body["max_tokens"]
    assert http().post(emulator.url + path, headers=headers, json=body).status_code == 400
    path, headers, body = request_parts("gemini", "gemini-x")
    body["contents"][0]["role"] = "assistant"
    assert http().post(emulator.url + path, headers=headers, json=body).json()["error"]["code"] == 400


def test_log_redacts_secrets(emulator: Emulator) -> None:
    call(emulator, "openrouter", "a/b", key="sk-or-secret")
    call(emulator, "anthropic", "claude-x", key="sk-ant-secret")
    call(emulator, "gemini", "gemini-x", key="AIza-secret")
    path, _, body = request_parts("gemini", "gemini-x", key=None)
    http().post(emulator.url + path + "&key=AIza-query-secret", json=body)
    log = emulator.requests
    assert [r.family for r in log] == ["openrouter", "anthropic", "gemini", "gemini"]
    assert "secret" not in repr(log)
    assert log[0].headers["authorization"] == "<redacted>"
    assert log[1].headers["x-api-key"] == "<redacted>"
    assert log[2].headers["x-goog-api-key"] == "<redacted>"
    assert log[3].query == {"alt": "sse", "key": "<redacted>"}
    assert log[1].model == "claude-x" and log[3].model == "gemini-x"
    assert log[0].body["messages"][0]["content"] == PROMPT
    assert all(r.status == 200 and r.ended is not None and r.ended >= r.started for r in log)


# ---- faults --------------------------------------------------------------------------------------


def test_status_faults_carry_real_bodies_and_hints(emulator: Emulator) -> None:
    emulator.script(
        "a/b",
        ModelScript(faults=[Fault("status", status=402, retry_after=3, limit_source="openrouter_in_flight_budget")]),
    )
    emulator.script("gemini-x", ModelScript(faults=[Fault("status", status=429, retry_after=34)]))
    emulator.script("claude-x", ModelScript(faults=[Fault("status", status=529)]))
    emulator.script("gpt-x", ModelScript(faults=[Fault("status", status=429, message="Slow down")]))

    response = call(emulator, "openrouter", "a/b")
    assert response.status_code == 402 and response.headers["retry-after"] == "3"
    metadata = response.json()["error"]["metadata"]
    assert metadata["limit_source"] == "openrouter_in_flight_budget"
    assert metadata["reason"] == "in_flight_budget_exhausted"

    error = call(emulator, "gemini", "gemini-x").json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    retry = [d for d in error["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}]

    response = call(emulator, "anthropic", "claude-x")
    assert response.status_code == 529 and response.json()["error"]["type"] == "overloaded_error"
    assert "retry-after" not in response.headers

    response = call(emulator, "openai", "gpt-x")
    assert response.status_code == 429 and response.json()["error"]["message"] == "Slow down"
    assert [r.fault for r in emulator.requests] == ["status"] * 4


@pytest.mark.parametrize("family", FAMILIES)
def test_error_chunk_after_partial_text(emulator: Emulator, family: str) -> None:
    emulator.script("m", ModelScript(reply="abcdefghijklmnop", chunk_chars=4, faults=[Fault("error_chunk", 529, 2)]))
    response = call(emulator, family, "m")
    assert response.status_code == 200
    events = sse_events(response.text)
    kinds = [kind for kind, _ in events]
    last = json.loads(events[-1][1])
    assert "[DONE]" not in response.text and "message_stop" not in kinds
    if family == "openrouter":
        assert last["error"]["code"] == 529 and last["choices"][0]["finish_reason"] == "error"
        assert openai_text(payloads(response.text)) == "abcdefgh"
    elif family in ("openai", "ollama"):
        assert set(last) == {"error"} and last["error"]["message"]
    elif family == "anthropic":
        assert kinds[-1] == "error" and last["error"]["type"] == "overloaded_error"
        assert kinds.count("content_block_delta") == 2
    else:
        assert last["error"]["code"] == 529 and len(events) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_cut_leaves_an_incomplete_body(emulator: Emulator, family: str) -> None:
    emulator.script("m", ModelScript(reply="abcdefghijklmnop", chunk_chars=4, faults=[Fault("cut", after_chunks=2)]))
    path, headers, body = request_parts(family, "m")
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http().stream("POST", emulator.url + path, headers=headers, json=body) as response,
    ):
        for data in response.iter_bytes():
            received += data
    assert b"abcd" in received and b"efgh" in received and b"ijkl" not in received
    # Non-streaming: Content-Length promises more than arrives.
    with pytest.raises(httpx.RemoteProtocolError):
        call(emulator, family, "m", stream=False)
    assert [r.fault for r in emulator.requests] == ["cut", "cut"]


@pytest.mark.parametrize("family", FAMILIES)
def test_malformed_data_line(emulator: Emulator, family: str) -> None:
    emulator.script("m", ModelScript(reply="abcdefgh", chunk_chars=4, faults=[Fault("malformed", after_chunks=1)]))
    response = call(emulator, family, "m")
    bad = []
    for kind, data in sse_events(response.text):
        if kind == "comment" or data == "[DONE]":
            continue
        try:
            json.loads(data)
        except ValueError:
            bad.append(data)
    assert len(bad) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_blocked(emulator: Emulator, family: str) -> None:
    emulator.script("m", ModelScript(reply="I would rather not.", faults=[Fault("blocked")]))
    response = call(emulator, family, "m", stream=False)
    body = response.json()
    if family == "openrouter":
        assert response.status_code == 403 and body["error"]["metadata"]["model_slug"] == "m"
    elif family in ("openai", "ollama"):
        assert body["choices"][0]["finish_reason"] == "content_filter"
    elif family == "anthropic":
        assert body["stop_reason"] == "refusal"
    else:
        assert response.status_code == 200 and "candidates" not in body
        assert body["promptFeedback"]["blockReason"] == "SAFETY"
    streamed = call(emulator, family, "m")
    if family == "gemini":
        (only,) = payloads(streamed.text)
        assert only["promptFeedback"]["blockReason"] == "SAFETY"
    elif family == "anthropic":
        assert json.loads(sse_events(streamed.text)[-2][1])["delta"]["stop_reason"] == "refusal"


def test_times_limits_a_fault_and_replies_advance_per_answer(emulator: Emulator) -> None:
    emulator.script("gpt-x", ModelScript(replies=["first", "second"], faults=[Fault("status", status=503, times=2)]))
    statuses = [call(emulator, "openai", "gpt-x", stream=False) for _ in range(4)]
    assert [r.status_code for r in statuses] == [503, 503, 200, 200]
    assert [r.json()["choices"][0]["message"]["content"] for r in statuses[2:]] == ["first", "second"]
    assert call(emulator, "openai", "gpt-x", stream=False).json()["choices"][0]["message"]["content"] == "second"
    assert [r.fault for r in emulator.requests] == ["status", "status", None, None, None]


@pytest.mark.parametrize("family", ["openrouter", "gemini"])
def test_client_disconnect_is_recorded(emulator: Emulator, family: str) -> None:
    emulator.script("m", ModelScript(faults=[Fault("hang")]))
    path, headers, body = request_parts(family, "m")
    with pytest.raises(httpx.ReadTimeout):
        http().post(emulator.url + path, headers=headers, json=body, timeout=0.2)
    (record,) = emulator.wait_for(lambda log: [r for r in log if r.disconnected and r.ended], timeout=5)
    assert record.status is None and record.fault == "hang"


def test_disconnect_mid_stream_is_recorded(emulator: Emulator) -> None:
    emulator.script("slow", ModelScript(reply="x" * 400, chunk_chars=1, tokens_per_s=200))
    path, headers, body = request_parts("openai", "slow")
    with http().stream("POST", emulator.url + path, headers=headers, json=body) as response:
        next(response.iter_lines())
    (record,) = emulator.wait_for(lambda log: [r for r in log if r.ended], timeout=5)
    assert record.disconnected and record.status == 200


@pytest.mark.parametrize(
    ("family", "cap", "reason"),
    [
        ("openrouter", {"max_tokens": 2}, "length"),
        ("openai", {"max_completion_tokens": 2}, "length"),
        ("anthropic", {"max_tokens": 2}, "max_tokens"),
        ("gemini", {"generationConfig": {"maxOutputTokens": 2}}, "MAX_TOKENS"),
    ],
)
def test_max_tokens_truncates(emulator: Emulator, family: str, cap: dict[str, Any], reason: str) -> None:
    emulator.script("m", ModelScript(reply="abcdefghijkl", chunk_chars=4))
    body = call(emulator, family, "m", stream=False, **cap).json()
    if family == "anthropic":
        assert body["content"][0]["text"] == "abcdefgh" and body["stop_reason"] == reason
        assert body["usage"]["output_tokens"] == 2
    elif family == "gemini":
        assert body["candidates"][0]["content"]["parts"][0]["text"] == "abcdefgh"
        assert body["candidates"][0]["finishReason"] == reason
    else:
        assert body["choices"][0]["message"]["content"] == "abcdefgh"
        assert body["choices"][0]["finish_reason"] == reason
        assert body["usage"]["completion_tokens"] == 2


# ---- a new family by registration alone ----------------------------------------------------------


class _Kettle(Family):
    """A test-only family: one route, the base class's Bearer check, an answer drawn from the script."""

    name = "kettle"
    env: ClassVar[Mapping[str, str]] = {"KETTLE_BASE_URL": "/kettle/v1"}
    test_keys: ClassVar[Mapping[str, str]] = {"KETTLE_API_KEY": "kettle-test-key"}

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/kettle/v1/pots/{pot}:boil", self.boil)]

    async def boil(self, req: Request) -> None:
        cue = req.scripts.draw(req.body["model"])
        reply = cue.reply if isinstance(cue.reply, str) else "unscripted"
        await req.json(201, {"pot": req.params["pot"], "reply": reply, "id": req.request_id}, [("x-kettle", "on")])


@pytest.fixture
def kettle() -> Iterator[Family]:
    family = register(_Kettle())
    yield family
    unregister(family.name)


def test_a_new_family_is_served_by_registration_alone(emulator: Emulator, kettle: Family) -> None:
    # The session's emulator was already running when the family registered: no core edit, no restart.
    base, key = emulator.env()["KETTLE_BASE_URL"], emulator.test_keys()["KETTLE_API_KEY"]
    assert base == emulator.url + "/kettle/v1" and emulator.env()["OPENAI_BASE_URL"] == emulator.url + "/openai/v1"
    emulator.script("earl-grey", ModelScript(reply="Steeped."))
    body = {"model": "earl-grey"}
    response = http().post(base + "/pots/blue:boil", headers={"authorization": f"Bearer {key}"}, json=body)
    assert response.status_code == 201 and response.headers["x-kettle"] == "on"
    answer = response.json()
    assert answer["pot"] == "blue" and answer["reply"] == "Steeped." and answer["id"].startswith("req_emu")
    # The core's routing, auth and log apply to it as to any built-in family.
    assert http().post(base + "/pots/blue:boil", json=body).status_code == 401
    assert http().get(base + "/pots/blue:boil").status_code == 405
    assert call(emulator, "anthropic", "claude-x", stream=False).status_code == 200
    log = emulator.requests
    assert [r.family for r in log] == ["kettle", "kettle", "kettle", "anthropic"]
    assert log[0].model == "earl-grey" and log[0].headers["authorization"] == "<redacted>"
    with pytest.raises(ValueError, match="already registered"):
        register(_Kettle())
    unregister("kettle")
    assert http().post(base + "/pots/blue:boil", json=body).status_code == 404
    assert "KETTLE_BASE_URL" not in emulator.env() and emulator.requests[-1].family == "unknown"


# ---- concurrency, transports, lifecycle ------------------------------------------------------------


def test_sixteen_concurrent_streams(emulator: Emulator) -> None:
    emulator.script("m", ModelScript(reply="0123456789" * 2, chunk_chars=2, ttft_s=0.05, tokens_per_s=100))

    async def one(client: httpx.AsyncClient, family: str) -> int:
        path, headers, body = request_parts(family, "m")
        async with client.stream("POST", path, headers=headers, json=body) as response:
            return len(await response.aread())

    async def main() -> list[int]:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=emulator.url, limits=limits, timeout=10) as client:
            return await asyncio.gather(*(one(client, FAMILIES[i % 5]) for i in range(16)))

    assert all(size > 0 for size in asyncio.run(main()))
    log = emulator.requests
    assert len(log) == 16 and all(r.status == 200 and not r.disconnected for r in log)
    # They really overlapped: every stream started before the first one ended.
    first_end = min(r.ended or 0.0 for r in log)
    assert all(r.started < first_end for r in log)


def test_asgi_transport_without_a_socket() -> None:
    emu = Emulator()
    emu.script("m", ModelScript(reply="in process", faults=[Fault("cut", after_chunks=1, times=1)]))
    assert emu.url == ASGI_URL and not emu.running

    async def main() -> tuple[str, str]:
        transport = httpx.ASGITransport(app=emu.app)
        async with httpx.AsyncClient(transport=transport, base_url=emu.url) as client:
            path, headers, body = request_parts("anthropic", "m")
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(path, headers=headers, json=body)
            streamed = await client.post(path, headers=headers, json=body)
            path, headers, body = request_parts("gemini", "m", stream=False)
            plain = await client.post(path, headers=headers, json=body)
            return streamed.text, plain.json()["candidates"][0]["content"]["parts"][0]["text"]

    streamed, plain = asyncio.run(main())
    assert "message_stop" in streamed and plain == "in process"
    assert [r.fault for r in emu.requests] == ["cut", None, None]


def test_stop_is_prompt_with_a_hanging_request() -> None:
    emu = Emulator().start()
    emu.script("m", ModelScript(faults=[Fault("hang")]))

    async def main() -> BaseException | httpx.Response:
        path, headers, body = request_parts("openai", "m")
        async with httpx.AsyncClient(base_url=emu.url, timeout=10) as client:
            pending = asyncio.ensure_future(client.post(path, headers=headers, json=body))
            await asyncio.to_thread(emu.wait_for, lambda log: log)
            await asyncio.to_thread(emu.stop)
            try:
                return await pending
            except httpx.HTTPError as exc:
                return exc

    outcome = asyncio.run(main())
    assert not emu.running
    assert isinstance(outcome, httpx.HTTPError) or outcome.status_code >= 500


def test_pytest_fixture_sets_environment(emulator_env: Emulator) -> None:
    assert os.environ["OPENAI_BASE_URL"] == emulator_env.url + "/openai/v1"
    assert os.environ["OLLAMA_HOST"] == emulator_env.url + "/ollama"
    assert os.environ["ANTHROPIC_API_KEY"] == emulator_env.test_keys()["ANTHROPIC_API_KEY"]
    assert emulator_env.requests == [] and isinstance(RecordedRequest, type)


def test_command_line_prints_exports_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "fusion_magic.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        exports = dict(process.stdout.readline().removeprefix("export ").strip().split("=", 1) for _ in range(9))
        base = exports["OPENAI_BASE_URL"]
        assert base.startswith("http://127.0.0.1:") and exports["OPENAI_API_KEY"]
        assert http().get(base.removesuffix("/openai/v1") + "/health").json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
