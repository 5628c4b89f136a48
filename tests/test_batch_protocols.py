"""The four batch APIs' client side (providers/batch/*): request lines, status objects, result lines and the
create/poll/list calls, fed the wire reference's own examples (shared/reference/batch-apis.md).

Parsers get literal payloads; the calls run against ``httpx.MockTransport`` handlers that check what was sent
(the body's order and framing, the key's header, the origin a results URL is fetched from).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from fusion_magic.core.errors import (
    AuthError,
    BadRequestError,
    BlockedError,
    CallCancelled,
    PaymentError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
)
from fusion_magic.core.state import State
from fusion_magic.providers._http import WireContext
from fusion_magic.providers.base import ChatRequest, Endpoint, Finished, Message, TextDelta, Usage
from fusion_magic.providers.batch.anthropic import AnthropicBatch, anthropic_item, anthropic_status
from fusion_magic.providers.batch.base import BatchAPI, BatchStatus, ItemResult
from fusion_magic.providers.batch.gemini import GeminiBatch, gemini_item, gemini_status
from fusion_magic.providers.batch.openai import OpenAIBatch, openai_item, openai_status
from fusion_magic.providers.batch.openrouter import OpenRouterBatch, openrouter_item, openrouter_status
from fusion_magic.providers.chat import anthropic as anthropic_chat
from fusion_magic.providers.chat import gemini as gemini_chat
from fusion_magic.providers.chat import openai_compat
from fusion_magic.testing import Fault, ModelScript

KEY = "sk-batch-test-SECRET-0123456789"
ENDPOINTS = {
    "openai": Endpoint("openai", "https://api.openai.com/v1", KEY, flavor="openai"),
    "anthropic": Endpoint("anthropic", "https://api.anthropic.com", KEY),
    "gemini": Endpoint("gemini", "https://generativelanguage.googleapis.com", KEY),
    "openrouter": Endpoint("openrouter", "https://openrouter.ai/api/v1", KEY, {"X-OpenRouter-Title": "fusion_magic"},
                           "openrouter"),
}
CLASSES: dict[str, type[BatchAPI]] = {"openai": OpenAIBatch, "anthropic": AnthropicBatch, "gemini": GeminiBatch,
                                      "openrouter": OpenRouterBatch}
SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
REQUEST = ChatRequest(
    model="m-1", messages=(Message("system", "Be terse."), Message("user", "What is 2+2?")), max_tokens=512,
    seed=7, json_schema=SCHEMA,
)

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def ctx(provider: str, model: str = "m-1") -> WireContext:
    return WireContext(provider, model, KEY)


def make(provider: str, handler: Handler | None = None) -> BatchAPI:
    async def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler or refuse))
    return CLASSES[provider](ENDPOINTS[provider], client)


def only(item: ItemResult | None) -> ItemResult:
    assert item is not None
    return item


def text_of(item: ItemResult) -> str:
    return "".join(e.text for e in item.events if isinstance(e, TextDelta))


def usage_of(item: ItemResult) -> Usage:
    (usage,) = [e for e in item.events if isinstance(e, Usage)]
    return usage


def finished_of(item: ItemResult) -> Finished:
    assert isinstance(item.events[-1], Finished)
    return item.events[-1]


def request_file(tmp_path: Path, api: BatchAPI, ids: list[str]) -> Path:
    path = tmp_path / "wave.jsonl"
    path.write_bytes(b"".join(api.line(i, REQUEST) + b"\n" for i in ids))
    return path


def collect(api: BatchAPI, status: BatchStatus) -> list[ItemResult]:
    async def go() -> list[ItemResult]:
        return [item async for item in api.results(status)]

    return asyncio.run(go())


# ---- line(): the live body, unstreamed, wrapped as each API wants ------------------------------------------------


@pytest.mark.parametrize("provider", list(CLASSES))
def test_line_is_compact_json_without_newline_or_stream(provider: str) -> None:
    raw = make(provider).line("q17-single-r0", REQUEST)
    assert isinstance(raw, bytes) and b"\n" not in raw
    assert b'": ' not in raw and b'", "' not in raw  # separators=(",", ":")
    assert b'"stream"' not in raw and b"stream_options" not in raw
    assert KEY.encode() not in raw


def test_openai_line_is_a_chat_completions_request() -> None:
    line = json.loads(make("openai").line("q17-single-r0", REQUEST))
    assert {k: line[k] for k in ("custom_id", "method", "url")} == {
        "custom_id": "q17-single-r0", "method": "POST", "url": "/v1/chat/completions"}
    body = line["body"]
    assert body["model"] == "m-1"
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert body["max_completion_tokens"] == 512 and "max_tokens" not in body
    assert body["seed"] == 7
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA


def test_anthropic_line_is_custom_id_and_params() -> None:
    line = json.loads(make("anthropic").line("q17-single-r0", REQUEST))
    assert set(line) == {"custom_id", "params"}
    params = line["params"]
    assert params["model"] == "m-1" and params["max_tokens"] == 512 and params["system"] == "Be terse."
    assert params["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    assert params["output_config"]["format"]["schema"] == SCHEMA


def test_gemini_line_is_request_and_metadata_key() -> None:
    line = json.loads(make("gemini").line("q17-single-r0", REQUEST))
    assert line["metadata"] == {"key": "q17-single-r0"}
    request = line["request"]
    assert request["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert request["contents"] == [{"role": "user", "parts": [{"text": "What is 2+2?"}]}]
    config = request["generationConfig"]
    assert config["maxOutputTokens"] == 512 and config["seed"] == 7 and config["responseJsonSchema"] == SCHEMA


def test_openrouter_line_has_no_model_in_its_body() -> None:
    line = json.loads(make("openrouter").line("q17-single-r0", REQUEST))
    assert set(line) == {"custom_id", "body"}
    body = line["body"]
    assert "model" not in body
    assert body["max_tokens"] == 512 and body["seed"] == 7
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert body["provider"] == {"require_parameters": True}


def test_line_without_optional_fields() -> None:
    plain = ChatRequest(model="m-1", messages=(Message("user", "hi"),))
    assert json.loads(make("anthropic").line("a", plain))["params"]["max_tokens"] == anthropic_chat.DEFAULT_MAX_TOKENS
    assert "generationConfig" not in json.loads(make("gemini").line("a", plain))["request"]
    assert "seed" not in json.loads(make("openai").line("a", plain))["body"]


def test_class_facts() -> None:
    assert (OpenAIBatch.max_requests, OpenAIBatch.max_bytes) == (50_000, 200_000_000)
    assert (AnthropicBatch.max_requests, AnthropicBatch.max_bytes) == (100_000, 256_000_000)
    assert GeminiBatch.max_bytes < 20_000_000
    assert OpenRouterBatch.max_requests < OpenAIBatch.max_requests
    assert not AnthropicBatch.one_model and OpenAIBatch.one_model and GeminiBatch.one_model
    for cls in CLASSES.values():
        assert cls.price_factor == 0.5 and cls.price_source
    assert KEY not in repr(make("openai"))


# ---- OpenAI: Batch objects and the two result files ---------------------------------------------------------------


def openai_batch(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "batch_abc", "object": "batch", "endpoint": "/v1/chat/completions", "model": "gpt-4o-mini",
            "input_file_id": "file-in", "completion_window": "24h", "status": status, "output_file_id": None,
            "error_file_id": None, "created_at": 1_800_000_000, "metadata": {"fusion_batch": "fm-3f2a"},
            "request_counts": {"total": 3, "completed": 0, "failed": 0}, **extra}


@pytest.mark.parametrize(("wire", "state"), [
    ("validating", State.QUEUED), ("in_progress", State.RUNNING), ("finalizing", State.RUNNING),
    ("cancelling", State.RUNNING), ("completed", State.DONE), ("cancelled", State.CANCELLED),
])
def test_openai_status_words(wire: str, state: State) -> None:
    status = openai_status(openai_batch(wire), ctx("openai"))
    assert (status.id, status.wire, status.state, status.failure) == ("batch_abc", wire, state, None)
    assert status.finished is state.is_final


def test_openai_completed_status_keeps_counts_and_files() -> None:
    status = openai_status(openai_batch("completed", output_file_id="file-out", error_file_id="file-err",
                                        request_counts={"total": 3, "completed": 2, "failed": 1}), ctx("openai"))
    assert (status.total, status.completed, status.failed) == (3, 2, 1)
    assert status.handle["output_file_id"] == "file-out" and status.handle["error_file_id"] == "file-err"
    assert status.handle["model"] == "gpt-4o-mini"


def test_openai_failed_status_says_the_validation_errors_with_lines() -> None:
    errors = {"object": "list", "data": [
        {"code": "invalid_json_line", "line": 3, "message": "This line is not parseable as valid JSON.",
         "param": None},
        {"code": "model_mismatch", "line": 9, "message": "Model differs.", "param": "body.model"}]}
    status = openai_status(openai_batch("failed", errors=errors), ctx("openai"))
    assert (status.state, status.failure) == (State.FAILED, "failed")
    assert status.error is not None
    assert "line 3: This line is not parseable as valid JSON. (invalid_json_line)" in status.error
    assert "line 9" in status.error


def test_openai_expired_status_is_a_failure_with_its_output_still_readable() -> None:
    status = openai_status(openai_batch("expired", output_file_id="file-out", error_file_id="file-err"),
                           ctx("openai"))
    assert (status.state, status.failure) == (State.FAILED, "expired")
    assert status.error and "window" in status.error
    assert status.handle["output_file_id"] == "file-out"


def test_openai_unknown_status_keeps_polling() -> None:
    assert openai_status(openai_batch("thinking_about_it"), ctx("openai")).state is State.RUNNING


def test_openai_status_that_is_not_a_batch() -> None:
    with pytest.raises(ProtocolError):
        openai_status({"object": "list"}, ctx("openai"))


COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Four."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22,
              "prompt_tokens_details": {"cached_tokens": 16}},
}


def test_openai_output_line_is_the_live_events() -> None:
    line = {"id": "batch_req_1", "custom_id": "q17-single-r0",
            "response": {"status_code": 200, "request_id": "req-9", "body": COMPLETION}, "error": None}
    item = only(openai_item(json.dumps(line), ctx("openai")))
    assert item.ok and item.custom_id == "q17-single-r0"
    assert item.events == (
        TextDelta("Four."),
        Usage(input_tokens=20, output_tokens=2, cached_input_tokens=16),
        Finished("stop", "gpt-4o-mini-2024-07-18", "req-9"),
    )


@pytest.mark.parametrize(("status", "body", "cls"), [
    (400, {"error": {"message": "bad max_tokens", "type": "invalid_request_error", "param": "max_tokens",
                     "code": "invalid_value"}}, BadRequestError),
    (429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}, RateLimitError),
    (429, {"error": {"message": "no money", "type": "insufficient_quota", "code": "insufficient_quota"}},
     PaymentError),
    (500, {"error": {"message": "oops", "type": "server_error"}}, ServerError),
    (401, {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error",
                     "code": "invalid_api_key"}}, AuthError),
])
def test_openai_error_file_line_is_classified_as_the_live_call(status: int, body: dict[str, Any],
                                                                 cls: type[ProviderError]) -> None:
    line = {"id": "batch_req_2", "custom_id": "q18-single-r0",
            "response": {"status_code": status, "request_id": "req-2", "body": body}, "error": None}
    item = only(openai_item(json.dumps(line), ctx("openai")))
    assert type(item.error) is cls and item.error.status == status
    assert KEY not in str(item.error) and not item.events


def test_openai_expired_request_is_a_timeout_that_says_so() -> None:
    line = {"id": "batch_req_3", "custom_id": "q19-single-r0", "response": None,
            "error": {"code": "batch_expired",
                      "message": "This request could not be executed before the completion window expired."}}
    item = only(openai_item(json.dumps(line), ctx("openai")))
    assert isinstance(item.error, ProviderTimeout) and item.error.code == "batch_expired"
    assert "expired: the batch window ended before it ran" in str(item.error)


def test_openai_content_filter_is_blocked_with_its_usage() -> None:
    body = {**COMPLETION, "choices": [{"index": 0, "message": {"role": "assistant", "content": None},
                                       "finish_reason": "content_filter"}]}
    line = {"custom_id": "q20", "response": {"status_code": 200, "body": body}, "error": None}
    item = only(openai_item(json.dumps(line), ctx("openai")))
    assert isinstance(item.error, BlockedError) and usage_of(item).input_tokens == 20


def test_malformed_line_with_a_readable_custom_id_is_that_request_protocol_error() -> None:
    item = only(openai_item('{"custom_id": "q21-single-r0", "response": {"status_code": 200, "bo', ctx("openai")))
    assert item.custom_id == "q21-single-r0" and isinstance(item.error, ProtocolError)


def test_malformed_line_without_custom_id_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fusion_magic"):
        assert openai_item('{"response": nul', ctx("openai")) is None
    assert "skipped" in caplog.text


# ---- Anthropic: MessageBatch objects and result lines ---------------------------------------------------------------


def message_batch(status: str = "in_progress", **extra: Any) -> dict[str, Any]:
    return {"id": "msgbatch_01", "type": "message_batch", "processing_status": status,
            "request_counts": {"processing": 4, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "created_at": "2026-12-06T10:00:00Z", "expires_at": "2026-12-07T10:00:00Z", "ended_at": None,
            "archived_at": None, "cancel_initiated_at": None, "results_url": None, **extra}


def test_anthropic_status_from_the_reference() -> None:
    status = anthropic_status(message_batch(), ctx("anthropic"))
    assert (status.id, status.wire, status.state, status.total, status.completed, status.failed) == (
        "msgbatch_01", "in_progress", State.RUNNING, 4, 0, 0)
    assert anthropic_status(message_batch("canceling"), ctx("anthropic")).state is State.RUNNING


def test_anthropic_ended_status_counts_and_results_url() -> None:
    url = "https://api.anthropic.com/v1/messages/batches/msgbatch_01/results"
    status = anthropic_status(message_batch(
        "ended", results_url=url,
        request_counts={"processing": 0, "succeeded": 2, "errored": 1, "canceled": 1, "expired": 1}),
        ctx("anthropic"))
    assert (status.state, status.total, status.completed, status.failed) == (State.DONE, 5, 2, 3)
    assert status.handle["results_url"] == url
    cancelled = anthropic_status(message_batch("ended", cancel_initiated_at="2026-12-06T11:00:00Z"),
                                 ctx("anthropic"))
    assert cancelled.state is State.CANCELLED


MESSAGE = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
           "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Four."}],
           "stop_reason": "end_turn",
           "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
                     "output_tokens": 3}}


def test_anthropic_succeeded_line_counts_as_the_stream_does() -> None:
    line = {"custom_id": "q17-single-r0", "result": {"type": "succeeded", "message": MESSAGE}}
    item = only(anthropic_item(json.dumps(line), ctx("anthropic"), anthropic_chat.classifier(ctx("anthropic"))))
    assert item.ok
    assert item.events == (
        TextDelta("Four."),
        Usage(input_tokens=115, output_tokens=3, cached_input_tokens=100, cache_write_input_tokens=5),
        Finished("end_turn", "claude-haiku-4-5-20251001", "msg_01"),
    )


@pytest.mark.parametrize(("kind", "cls"), [
    ("invalid_request_error", BadRequestError), ("authentication_error", AuthError), ("billing_error", PaymentError),
    ("permission_error", AuthError), ("not_found_error", BadRequestError), ("rate_limit_error", RateLimitError),
    ("timeout_error", ProviderTimeout), ("api_error", ServerError), ("overloaded_error", ServerError),
])
def test_anthropic_errored_line_by_error_type(kind: str, cls: type[ProviderError]) -> None:
    line = {"custom_id": "q18-single-r0", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": kind, "message": "max_tokens: Field required"}, "request_id": "req_1"}}}
    item = only(anthropic_item(json.dumps(line), ctx("anthropic"), anthropic_chat.classifier(ctx("anthropic"))))
    assert type(item.error) is cls and "max_tokens: Field required" in str(item.error)
    assert item.error.code == kind


def test_anthropic_rate_limited_request_stays_retryable() -> None:
    line = {"custom_id": "q", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}}}
    item = only(anthropic_item(json.dumps(line), ctx("anthropic"), anthropic_chat.classifier(ctx("anthropic"))))
    assert isinstance(item.error, RateLimitError) and item.error.retryable


def test_anthropic_canceled_expired_and_refused_lines() -> None:
    classify = anthropic_chat.classifier(ctx("anthropic"))
    canceled = only(anthropic_item('{"custom_id": "q19", "result": {"type": "canceled"}}', ctx("anthropic"), classify))
    expired = only(anthropic_item('{"custom_id": "q20", "result": {"type": "expired"}}', ctx("anthropic"), classify))
    assert isinstance(canceled.error, CallCancelled)
    assert isinstance(expired.error, ProviderTimeout) and "expired" in str(expired.error)
    refused = {"custom_id": "q21", "result": {"type": "succeeded", "message": {**MESSAGE, "stop_reason": "refusal"}}}
    item = only(anthropic_item(json.dumps(refused), ctx("anthropic"), classify))
    assert isinstance(item.error, BlockedError) and usage_of(item).output_tokens == 3


# ---- Gemini: Operations and inline responses ---------------------------------------------------------------------


PENDING_OP: dict[str, Any] = {
    "name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp",
    "metadata": {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                 "model": "models/gemini-2.5-flash", "displayName": "fm-3f2a",
                 "name": "batches/4m855v7q30kc7gtzcigdg9m72o87s08w33vp",
                 "createTime": "2026-12-06T10:00:00.123456789Z", "updateTime": "2026-12-06T10:00:00Z",
                 "batchStats": {"requestCount": "3", "pendingRequestCount": "3"},
                 "state": "BATCH_STATE_PENDING"}}

GEMINI_RESPONSE = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "pondering", "thought": True},
                                                           {"text": "Fo"}, {"text": "ur."}]},
                    "finishReason": "STOP"}],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 2, "thoughtsTokenCount": 5,
                      "cachedContentTokenCount": 8},
    "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-1",
}
INLINED = [
    {"response": GEMINI_RESPONSE, "metadata": {"key": "q17-single-r0"}},
    {"error": {"code": 8, "message": "quota"}, "metadata": {"key": "q18-single-r0"}},
]


def done_op(state: str, **extra: Any) -> dict[str, Any]:
    meta = {**PENDING_OP["metadata"], "state": state, "endTime": "2026-12-06T11:00:00Z",
            "batchStats": {"requestCount": "3", "successfulRequestCount": "2", "failedRequestCount": "1"}}
    return {"name": PENDING_OP["name"], "done": True, "metadata": meta, **extra}


def test_gemini_pending_operation_from_the_reference() -> None:
    status = gemini_status(PENDING_OP, ctx("gemini"))
    assert (status.id, status.wire, status.state, status.total) == (PENDING_OP["name"], "BATCH_STATE_PENDING",
                                                                   State.QUEUED, 3)
    assert status.completed == 0 and status.failed == 0  # zero counts are omitted on the wire
    assert status.handle["model"] == "gemini-2.5-flash"


@pytest.mark.parametrize(("wire", "state", "failure"), [
    ("BATCH_STATE_RUNNING", State.RUNNING, None), ("JOB_STATE_RUNNING", State.RUNNING, None),
    ("JOB_STATE_PENDING", State.QUEUED, None), ("BATCH_STATE_SUCCEEDED", State.DONE, None),
    ("JOB_STATE_SUCCEEDED", State.DONE, None), ("BATCH_STATE_CANCELLED", State.CANCELLED, None),
    ("JOB_STATE_CANCELLED", State.CANCELLED, None), ("BATCH_STATE_FAILED", State.FAILED, "failed"),
    ("JOB_STATE_FAILED", State.FAILED, "failed"), ("BATCH_STATE_EXPIRED", State.FAILED, "expired"),
    ("JOB_STATE_EXPIRED", State.FAILED, "expired"),
])
def test_gemini_both_state_spellings(wire: str, state: State, failure: str | None) -> None:
    status = gemini_status(done_op(wire), ctx("gemini"))
    assert (status.wire, status.state, status.failure) == (wire, state, failure)
    assert (status.total, status.completed, status.failed) == (3, 2, 1)


def test_gemini_failed_operation_says_its_top_level_error() -> None:
    status = gemini_status(done_op("BATCH_STATE_FAILED", error={"code": 13, "message": "internal failure"}),
                           ctx("gemini"))
    assert status.error == "INTERNAL (13): internal failure"


def test_gemini_results_from_metadata_output_or_response() -> None:
    output = {"inlinedResponses": {"inlinedResponses": INLINED}}
    in_meta = done_op("BATCH_STATE_SUCCEEDED")
    in_meta["metadata"]["output"] = output
    in_response = done_op("BATCH_STATE_SUCCEEDED", response={
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput", **output})
    for op in (in_meta, in_response):
        status = gemini_status(op, ctx("gemini"))
        items = collect(make("gemini"), status)
        assert [i.custom_id for i in items] == ["q17-single-r0", "q18-single-r0"]
        ok, failed = items
        assert ok.events == (
            TextDelta("Four."),
            Usage(input_tokens=12, output_tokens=7, cached_input_tokens=8),
            Finished("STOP", "gemini-2.5-flash-001", "resp-1"),
        )
        assert isinstance(failed.error, RateLimitError)


@pytest.mark.parametrize(("code", "cls"), [
    (3, BadRequestError), (8, RateLimitError), (13, ServerError), (14, ServerError), (4, ProviderTimeout),
    (7, AuthError), (16, AuthError), (1, CallCancelled), (2, ServerError),
])
def test_gemini_entry_error_by_grpc_code(code: int, cls: type[ProviderError]) -> None:
    item = only(gemini_item({"error": {"code": code, "message": "why"}, "metadata": {"key": "k"}}, ctx("gemini")))
    assert type(item.error) is cls and "why" in str(item.error)


def test_gemini_entry_error_keeps_the_live_classifier_details() -> None:
    daily = {"code": 8, "message": "daily quota", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}]}]}
    item = only(gemini_item({"error": daily, "metadata": {"key": "k"}}, ctx("gemini")))
    assert isinstance(item.error, RateLimitError) and not item.error.retryable
    assert item.error.code == "RESOURCE_EXHAUSTED"


def test_gemini_blocked_prompt_and_policy_stop() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}
    item = only(gemini_item({"response": blocked, "metadata": {"key": "k"}}, ctx("gemini")))
    assert isinstance(item.error, BlockedError) and usage_of(item).input_tokens == 9
    stopped = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "RECITATION"}]}
    item = only(gemini_item({"response": stopped, "metadata": {"key": "k"}}, ctx("gemini")))
    assert isinstance(item.error, BlockedError)


def test_gemini_entry_without_key_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fusion_magic"):
        assert gemini_item({"response": GEMINI_RESPONSE}, ctx("gemini")) is None
    assert "metadata.key" in caplog.text


# ---- OpenRouter: BatchObjects with inline results ---------------------------------------------------------------


OPENROUTER_DONE = {
    "id": "batch_or_1", "object": "batch", "status": "completed", "endpoint": "/v1/chat/completions",
    "model": "anthropic/claude-sonnet-4.6", "created_at": 1_800_000_000,
    "request_counts": {"total": 2, "completed": 1, "failed": 1},
    "usage": {"prompt_tokens": 34, "completion_tokens": 10, "total_tokens": 44, "cost": 0.000027, "is_byok": False},
    "results": [
        {"id": "gen-1", "custom_id": "q17-single-r0", "error": None,
         "response": {"status_code": 200, "request_id": "req-or", "body": {
             "id": "gen-1", "model": "anthropic/claude-sonnet-4.6",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Four."},
                          "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22}}}},
        {"id": "gen-2", "custom_id": "q18-single-r0", "response": None,
         "error": {"message": "no upstream", "param": None, "type": "server_error",
                   "error_type": "provider_unavailable"}},
    ],
}


def test_openrouter_completed_status_has_the_batch_cost_and_results() -> None:
    status = openrouter_status(OPENROUTER_DONE, ctx("openrouter"))
    assert (status.state, status.total, status.completed, status.failed) == (State.DONE, 2, 1, 1)
    assert status.cost_usd == pytest.approx(0.000027)
    items = collect(make("openrouter"), status)
    ok, failed = items
    assert ok.events == (TextDelta("Four."), Usage(input_tokens=17, output_tokens=5),
                         Finished("stop", "anthropic/claude-sonnet-4.6", "req-or"))
    assert usage_of(ok).cost_usd is None  # per-request bodies carry no cost
    assert isinstance(failed.error, ServerError) and "no upstream" in str(failed.error)


def test_openrouter_failed_status_says_error_message() -> None:
    payload = {**OPENROUTER_DONE, "status": "failed", "results": None,
               "error": {"message": "request 3 names another model"}}
    status = openrouter_status(payload, ctx("openrouter"))
    assert (status.state, status.failure, status.error) == (State.FAILED, "failed", "request 3 names another model")
    assert openrouter_status({**payload, "status": "validating", "error": None}, ctx("openrouter")).state \
        is State.QUEUED


@pytest.mark.parametrize(("error_type", "cls"), [
    ("rate_limit_exceeded", RateLimitError), ("provider_overloaded", ServerError),
    ("provider_unavailable", ServerError), ("server", ServerError), ("invalid_request", BadRequestError),
    ("timeout", ProviderTimeout),
])
def test_openrouter_result_error_type(error_type: str, cls: type[ProviderError]) -> None:
    entry = {"id": "gen-3", "custom_id": "q", "response": None,
             "error": {"message": "why", "param": None, "type": "x", "error_type": error_type}}
    item = only(openrouter_item(entry, ctx("openrouter"), openai_compat.classifier(ctx("openrouter"))))
    assert type(item.error) is cls


# ---- the calls, against MockTransport ----------------------------------------------------------------------------


def json_response(status: int, payload: Any, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)


def test_openai_submit_uploads_a_jsonl_then_creates_the_batch(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    bodies: list[bytes] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        bodies.append(await request.aread())
        assert request.headers["authorization"] == f"Bearer {KEY}"
        if request.url.path == "/v1/files":
            return json_response(200, {"id": "file-in", "object": "file", "purpose": "batch"})
        assert request.url.path == "/v1/batches"
        return json_response(200, openai_batch("validating"))

    api = make("openai", handler)
    lines = request_file(tmp_path, api, ["a", "b"])
    status = asyncio.run(api.submit("gpt-4o-mini", lines, 2, "fm-3f2a"))
    assert (status.id, status.state) == ("batch_abc", State.QUEUED)
    upload, create = bodies
    assert b'name="purpose"\r\n\r\nbatch' in upload
    assert b'filename="fm-3f2a.jsonl"' in upload and lines.read_bytes() in upload
    assert json.loads(create) == {"input_file_id": "file-in", "endpoint": "/v1/chat/completions",
                                  "completion_window": "24h", "metadata": {"fusion_batch": "fm-3f2a"}}


def test_openai_results_read_both_files(tmp_path: Path) -> None:
    ok = {"id": "r1", "custom_id": "a", "response": {"status_code": 200, "body": COMPLETION}, "error": None}
    bad = {"id": "r2", "custom_id": "b", "response": None,
           "error": {"code": "batch_expired", "message": "too late"}}
    files = {"file-out": json.dumps(ok) + "\n", "file-err": "\n" + json.dumps(bad) + "\n"}

    async def handler(request: httpx.Request) -> httpx.Response:
        file_id = request.url.path.split("/")[-2]
        assert request.url.path == f"/v1/files/{file_id}/content"
        return httpx.Response(200, content=files[file_id].encode())

    status = openai_status(openai_batch("expired", output_file_id="file-out", error_file_id="file-err"),
                           ctx("openai"))
    items = collect(make("openai", handler), status)
    assert [(i.custom_id, i.ok) for i in items] == [("a", True), ("b", False)]
    assert text_of(items[0]) == "Four." and isinstance(items[1].error, ProviderTimeout)


def test_openai_find_matches_the_tag_and_time() -> None:
    page = {"object": "list", "has_more": False, "last_id": "batch_old", "data": [
        {**openai_batch("in_progress"), "id": "batch_other", "metadata": {"fusion_batch": "fm-other"}},
        {**openai_batch("in_progress"), "id": "batch_mine"},
        {**openai_batch("completed"), "id": "batch_old", "created_at": 1_700_000_000},
    ]}

    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/batches" and request.url.params["limit"] == "100"
        return json_response(200, page)

    api = make("openai", handler)
    found = asyncio.run(api.find("fm-3f2a", 1_799_999_000))
    assert found is not None and found.id == "batch_mine"
    assert asyncio.run(api.find("fm-3f2a", 1_800_000_001)) is None


def test_poll_429_is_a_rate_limit_with_retry_after() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return json_response(429, {"error": {"message": "slow down", "type": "requests"}}, **{"retry-after": "7"})

    for provider in CLASSES:
        api = make(provider, handler)
        with pytest.raises(RateLimitError) as caught:
            asyncio.run(api.poll(BatchStatus(id="batch_x", wire="in_progress", state=State.RUNNING)))
        assert caught.value.retry_after == 7


def test_an_echoed_key_never_reaches_the_error() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return json_response(401, {"error": {"message": f"Incorrect API key provided: {KEY}", "code": 401}})

    for provider in CLASSES:
        with pytest.raises(AuthError) as caught:
            asyncio.run(make(provider, handler).poll(BatchStatus(id="b", wire="x", state=State.RUNNING)))
        assert KEY not in str(caught.value) and KEY not in repr(caught.value)


def test_anthropic_submit_streams_the_lines_inline(tmp_path: Path) -> None:
    got: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        got["body"] = await request.aread()
        got["headers"] = request.headers
        assert request.url == "https://api.anthropic.com/v1/messages/batches"
        return json_response(200, message_batch())

    api = make("anthropic", handler)
    lines = request_file(tmp_path, api, ["a", "b", "c"])
    status = asyncio.run(api.submit("claude-haiku-4-5", lines, 3, "fm-3f2a"))
    assert status.state is State.RUNNING
    body = json.loads(got["body"])
    assert [r["custom_id"] for r in body["requests"]] == ["a", "b", "c"]
    assert got["headers"]["x-api-key"] == KEY and got["headers"]["anthropic-version"]
    assert got["headers"]["content-type"] == "application/json"
    assert int(got["headers"]["content-length"]) == len(got["body"])


def test_submit_refuses_a_file_that_does_not_hold_count_lines(tmp_path: Path) -> None:
    api = make("anthropic")
    lines = request_file(tmp_path, api, ["a", "b"])
    with pytest.raises(ValueError, match="2 requests, not the 3"):
        asyncio.run(api.submit("claude-haiku-4-5", lines, 3, "fm-3f2a"))


def test_anthropic_results_follow_results_url_only_on_the_endpoint_origin() -> None:
    hosts: list[str] = []
    line = {"custom_id": "a", "result": {"type": "succeeded", "message": MESSAGE}}

    async def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        assert request.headers["x-api-key"] == KEY
        return httpx.Response(200, content=(json.dumps(line) + "\n").encode())

    api = make("anthropic", handler)
    own = BatchStatus(id="msgbatch_01", wire="ended", state=State.DONE,
                      handle={"results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_01/results"})
    assert [text_of(i) for i in collect(api, own)] == ["Four."]
    elsewhere = BatchStatus(id="msgbatch_01", wire="ended", state=State.DONE,
                            handle={"results_url": "https://evil.example/v1/messages/batches/msgbatch_01/results"})
    with pytest.raises(ProtocolError, match="not sent there"):
        collect(api, elsewhere)
    assert hosts == ["api.anthropic.com"]


def test_anthropic_find_adopts_only_a_single_candidate() -> None:
    since = 1_796_551_000.0  # 2026-12-06T09:56:40Z
    mine = message_batch()
    other = {**message_batch(), "id": "msgbatch_02",
             "request_counts": {"processing": 9, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}}
    old = {**message_batch(), "id": "msgbatch_00", "created_at": "2026-12-01T00:00:00Z"}
    pages: list[list[dict[str, Any]]] = [[mine, old]]

    async def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"data": pages[0], "has_more": False, "first_id": None, "last_id": None})

    api = make("anthropic", handler)
    found = asyncio.run(api.find("fm-3f2a", since))
    assert found is not None and found.id == "msgbatch_01"
    pages[0] = [mine, other, old]
    assert asyncio.run(api.find("fm-3f2a", since)) is None  # two candidates: a guess, so none
    found = asyncio.run(api.find("fm-3f2a", since, count=4))  # type: ignore[call-arg]
    assert found is not None and found.id == "msgbatch_01"


def test_gemini_submit_body_url_and_key_header(tmp_path: Path) -> None:
    got: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        got["request"] = request
        got["body"] = await request.aread()
        return json_response(200, PENDING_OP)

    api = make("gemini", handler)
    lines = request_file(tmp_path, api, ["a", "b"])
    status = asyncio.run(api.submit("gemini-2.5-flash", lines, 2, "fm-3f2a"))
    request: httpx.Request = got["request"]
    assert request.url.path == "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
    assert not request.url.query and request.headers["x-goog-api-key"] == KEY
    batch = json.loads(got["body"])["batch"]
    assert batch["displayName"] == "fm-3f2a"
    assert [r["metadata"]["key"] for r in batch["inputConfig"]["requests"]["requests"]] == ["a", "b"]
    assert status.state is State.QUEUED and status.id == PENDING_OP["name"]


def test_gemini_poll_cancel_and_find_urls() -> None:
    paths: list[tuple[str, str]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        paths.append((request.method, request.url.path))
        if request.url.path == "/v1beta/batches":
            return json_response(200, {"operations": [PENDING_OP, {**PENDING_OP, "name": "batches/other",
                                                                   "metadata": {**PENDING_OP["metadata"],
                                                                                "displayName": "fm-other"}}]})
        if request.url.path.endswith(":cancel"):
            return json_response(200, {})
        return json_response(200, done_op("JOB_STATE_RUNNING"))

    api = make("gemini", handler)
    status = gemini_status(PENDING_OP, ctx("gemini"))
    assert asyncio.run(api.poll(status)).state is State.RUNNING
    asyncio.run(api.cancel(status))
    found = asyncio.run(api.find("fm-3f2a", 1_796_551_000))
    assert found is not None and found.id == PENDING_OP["name"]
    assert asyncio.run(api.find("fm-3f2a", 1_796_552_000)) is None
    assert paths[:3] == [("GET", f"/v1beta/{PENDING_OP['name']}"), ("POST", f"/v1beta/{PENDING_OP['name']}:cancel"),
                         ("GET", "/v1beta/batches")]


def test_openrouter_submit_puts_endpoint_and_model_before_requests(tmp_path: Path) -> None:
    got: dict[str, Any] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        got["body"] = await request.aread()
        got["headers"] = request.headers
        assert request.url == "https://openrouter.ai/api/v1/batches"
        return json_response(202, {**OPENROUTER_DONE, "status": "validating", "results": None, "usage": None})

    api = make("openrouter", handler)
    lines = request_file(tmp_path, api, ["a", "b"])
    status = asyncio.run(api.submit("anthropic/claude-sonnet-4.6", lines, 2, "fm-3f2a"))
    assert status.state is State.QUEUED and status.cost_usd is None
    raw: bytes = got["body"]
    assert raw.startswith(b'{"endpoint":"/v1/chat/completions","model":"anthropic/claude-sonnet-4.6",')
    assert raw.index(b'"model"') < raw.index(b'"requests"')
    body = json.loads(raw)
    assert body["completion_window"] == "24h"
    assert [r["custom_id"] for r in body["requests"]] == ["a", "b"]
    assert all("model" not in r["body"] and "stream" not in r["body"] for r in body["requests"])
    assert got["headers"]["authorization"] == f"Bearer {KEY}"
    assert "transfer-encoding" not in got["headers"]


def test_openrouter_results_poll_once_when_the_status_has_none() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/batches/batch_or_1"
        return json_response(200, OPENROUTER_DONE)

    status = BatchStatus(id="batch_or_1", wire="completed", state=State.DONE)
    assert [i.custom_id for i in collect(make("openrouter", handler), status)] == ["q17-single-r0", "q18-single-r0"]


def test_openrouter_has_no_cancel() -> None:
    with pytest.raises(NotImplementedError):
        asyncio.run(make("openrouter").cancel(BatchStatus(id="b", wire="in_progress", state=State.RUNNING)))


def test_gemini_chat_module_is_the_one_read() -> None:
    # The batch reads answers with the live parser: the same class, not a copy.
    from fusion_magic.providers.batch import gemini as gemini_batch

    assert gemini_batch.ChunkParser is gemini_chat.ChunkParser


# ---- round trips against the emulator's batch routes (fusion_magic/testing/families/*_batch.py) ----------------


EMU_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash",
              "openrouter": "openai/gpt-4o-mini"}
REPLY = "Four, as scripted."


def emu_request(model: str, n: int) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("system", "Be terse."), Message("user", f"Question {n}?")),
                       max_tokens=64)


def emu_run(provider: str, tmp_path: Path, body: Callable[[BatchAPI, Path], Coroutine[None, None, Any]]) -> Any:
    """Run ``body(api, lines)`` with a real client on the emulator (its env already set), three requests in
    ``lines`` (custom ids q0..q2)."""
    from fusion_magic.providers.batch import batch_api_for
    from fusion_magic.providers.registry import BUILTIN, resolve_endpoint

    spec = BUILTIN[provider]
    endpoint = resolve_endpoint(spec)

    async def go() -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            cls = batch_api_for(spec, endpoint)
            assert cls is CLASSES[provider]
            api = cls(endpoint, client)
            path = tmp_path / f"{provider}.jsonl"
            path.write_bytes(b"".join(api.line(f"q{n}", emu_request(EMU_MODELS[provider], n)) + b"\n"
                                      for n in range(3)))
            return await body(api, path)

    return asyncio.run(go())


async def to_the_end(api: BatchAPI, status: BatchStatus, most: int = 10) -> BatchStatus:
    for _ in range(most):
        if status.finished:
            return status
        status = await api.poll(status)
    raise AssertionError(f"{status} did not finish")


@pytest.mark.parametrize("provider", list(CLASSES))
def test_emulator_round_trip(provider: str, tmp_path: Path, emulator_env: Any) -> None:

    model = EMU_MODELS[provider]
    # The second request fails with a 429 of the family's own shape; the others answer.
    emulator_env.script(model, ModelScript(reply=REPLY, faults=[Fault("status", status=429, skip=1, times=1)]))

    async def body(api: BatchAPI, lines: Path) -> tuple[BatchStatus, BatchStatus, list[ItemResult]]:
        submitted = await api.submit(model, lines, 3, "fm-emu1")
        done = await to_the_end(api, submitted)
        return submitted, done, [item async for item in api.results(done)]

    submitted, done, items = emu_run(provider, tmp_path, body)
    assert not submitted.finished and done.state is State.DONE
    assert emulator_env.batches.creations(provider) == 1
    by_id = {item.custom_id: item for item in items}
    assert sorted(by_id) == ["q0", "q1", "q2"]
    failed = [item for item in items if not item.ok]
    assert len(failed) == 1 and isinstance(failed[0].error, RateLimitError)
    for item in items:
        if item.ok:
            assert text_of(item) == REPLY
            usage = usage_of(item)
            assert usage.input_tokens and usage.output_tokens
            assert finished_of(item).reason
    if provider == "openrouter":
        assert done.cost_usd is not None


@pytest.mark.parametrize("provider", list(CLASSES))
def test_emulator_find_adopts_the_lost_submit(provider: str, tmp_path: Path, emulator_env: Any) -> None:
    import time

    since = time.time() - 1

    async def body(api: BatchAPI, lines: Path) -> tuple[BatchStatus, BatchStatus | None, BatchStatus | None]:
        submitted = await api.submit(EMU_MODELS[provider], lines, 3, "fm-lost")
        found = await api.find("fm-lost", since)
        later = await api.find("fm-lost", time.time() + 60)
        return submitted, found, later

    submitted, found, later = emu_run(provider, tmp_path, body)
    assert found is not None and found.id == submitted.id
    assert later is None


@pytest.mark.parametrize("provider", list(CLASSES))
def test_emulator_failed_batch_says_why(provider: str, tmp_path: Path, emulator_env: Any) -> None:
    emulator_env.batches.fail_next(provider, "The batch failed: scripted.")

    async def body(api: BatchAPI, lines: Path) -> tuple[BatchStatus, list[ItemResult]]:
        done = await to_the_end(api, await api.submit(EMU_MODELS[provider], lines, 3, "fm-fail"))
        return done, [item async for item in api.results(done)]

    done, items = emu_run(provider, tmp_path, body)
    if provider == "anthropic":  # no failed batch: every request comes back errored
        assert done.state is State.DONE and len(items) == 3 and not any(i.ok for i in items)
    else:
        assert (done.state, done.failure) == (State.FAILED, "failed")
        assert done.error and "scripted" in done.error


@pytest.mark.parametrize("provider", list(CLASSES))
def test_emulator_expired_batch_keeps_what_finished(provider: str, tmp_path: Path, emulator_env: Any) -> None:
    emulator_env.batches.expire_next(provider, completed=1)

    async def body(api: BatchAPI, lines: Path) -> tuple[BatchStatus, list[ItemResult]]:
        done = await to_the_end(api, await api.submit(EMU_MODELS[provider], lines, 3, "fm-exp"))
        return done, [item async for item in api.results(done)]

    done, items = emu_run(provider, tmp_path, body)
    if provider == "anthropic":
        assert done.state is State.DONE
    else:
        assert (done.state, done.failure) == (State.FAILED, "expired")
    if provider != "gemini":  # Gemini's expired batch has no responses
        assert sum(i.ok for i in items) == 1
        assert all(isinstance(i.error, ProviderTimeout) for i in items if not i.ok) and len(items) == 3


@pytest.mark.parametrize("provider", list(CLASSES))
def test_emulator_throttled_poll_is_a_rate_limit_with_retry_after(provider: str, tmp_path: Path,
                                                                   emulator_env: Any) -> None:
    emulator_env.batches.throttle_next_poll(provider, retry_after=3)

    async def body(api: BatchAPI, lines: Path) -> None:
        status = await api.submit(EMU_MODELS[provider], lines, 3, "fm-429")
        with pytest.raises(RateLimitError) as caught:
            await api.poll(status)
        assert caught.value.retry_after == 3
        assert (await to_the_end(api, status)).state is State.DONE

    emu_run(provider, tmp_path, body)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_emulator_cancel(provider: str, tmp_path: Path, emulator_env: Any) -> None:
    emulator_env.batches.hold()

    async def body(api: BatchAPI, lines: Path) -> BatchStatus:
        status = await api.submit(EMU_MODELS[provider], lines, 3, "fm-cancel")
        status = await api.poll(status)
        await api.cancel(status)
        return await to_the_end(api, status)

    assert emu_run(provider, tmp_path, body).state is State.CANCELLED


@pytest.mark.parametrize("provider", list(CLASSES))
def test_emulator_results_of_a_status_rebuilt_from_a_receipt(provider: str, tmp_path: Path,
                                                             emulator_env: Any) -> None:
    # What the runner holds after a restart: the id and our state word, no handle.
    emulator_env.script(EMU_MODELS[provider], ModelScript(reply=REPLY))

    async def body(api: BatchAPI, lines: Path) -> list[ItemResult]:
        done = await to_the_end(api, await api.submit(EMU_MODELS[provider], lines, 3, "fm-again"))
        rebuilt = BatchStatus(done.id, "done", State.DONE)
        return [item async for item in api.results(rebuilt)]

    items = emu_run(provider, tmp_path, body)
    assert sorted(i.custom_id for i in items) == ["q0", "q1", "q2"] and all(text_of(i) == REPLY for i in items)
