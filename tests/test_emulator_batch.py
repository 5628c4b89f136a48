"""The emulator's batch APIs: raw httpx over a real socket against each family's batch routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fusion_magic.testing import Emulator, Fault, ModelScript

OPENAI_HEADERS = {"authorization": "Bearer sk-test"}
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "AIza-test"}
OPENROUTER_HEADERS = {"authorization": "Bearer sk-or-test"}


@pytest.fixture
def http(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client


def ids(n: int, prefix: str = "q") -> list[str]:
    return [f"{prefix}{i}-single-r0" for i in range(n)]


# ---- per family: how a client submits, polls and reads ---------------------------------------------------


def openai_jsonl(model: str, custom_ids: list[str], **body: Any) -> bytes:
    lines = [{"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": model, "messages": [{"role": "user", "content": f"question {cid}"}], **body}}
             for cid in custom_ids]
    return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"


def openai_submit(http: httpx.Client, data: bytes, *, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    upload = http.post("/openai/v1/files", headers=OPENAI_HEADERS, data={"purpose": "batch"},
                       files={"file": ("requests.jsonl", data, "application/jsonl")})
    assert upload.status_code == 200, upload.text
    assert upload.json()["object"] == "file" and upload.json()["purpose"] == "batch"
    created = http.post("/openai/v1/batches", headers=OPENAI_HEADERS, json={
        "input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h",
        "metadata": metadata or {"fusion_run": "t1"}})
    assert created.status_code == 200, created.text
    batch = created.json()
    assert batch["status"] == "validating" and batch["object"] == "batch"
    return batch


def openai_poll(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = http.get(f"/openai/v1/batches/{batch_id}", headers=OPENAI_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def openai_file(http: httpx.Client, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    response = http.get(f"/openai/v1/files/{file_id}/content", headers=OPENAI_HEADERS)
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


def anthropic_submit(http: httpx.Client, model: str, custom_ids: list[str], **params: Any) -> dict[str, Any]:
    requests = [{"custom_id": cid, "params": {"model": model, "max_tokens": 256,
                                              "messages": [{"role": "user", "content": f"question {cid}"}], **params}}
                for cid in custom_ids]
    created = http.post("/anthropic/v1/messages/batches", headers=ANTHROPIC_HEADERS, json={"requests": requests})
    assert created.status_code == 200, created.text
    assert created.json()["processing_status"] == "in_progress"
    return created.json()


def anthropic_poll(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = http.get(f"/anthropic/v1/messages/batches/{batch_id}", headers=ANTHROPIC_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def gemini_submit(http: httpx.Client, model: str, custom_ids: list[str], version: str = "v1beta") -> dict[str, Any]:
    requests = [{"request": {"contents": [{"role": "user", "parts": [{"text": f"question {cid}"}]}],
                             "generationConfig": {"maxOutputTokens": 256}},
                 "metadata": {"key": cid}} for cid in custom_ids]
    body = {"batch": {"displayName": "fusion eval t1", "inputConfig": {"requests": {"requests": requests}}}}
    created = http.post(f"/gemini/{version}/models/{model}:batchGenerateContent", headers=GEMINI_HEADERS, json=body)
    assert created.status_code == 200, created.text
    return created.json()


def gemini_poll(http: httpx.Client, name: str, version: str = "v1beta") -> dict[str, Any]:
    response = http.get(f"/gemini/{version}/{name}", headers=GEMINI_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def openrouter_body(model: str, custom_ids: list[str], **body: Any) -> dict[str, Any]:
    return {"endpoint": "/v1/chat/completions", "model": model, "completion_window": "24h",
            "requests": [{"custom_id": cid, "body": {"messages": [{"role": "user", "content": f"question {cid}"}],
                                                     "max_tokens": 256, **body}} for cid in custom_ids]}


def openrouter_submit(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    created = http.post("/openrouter/api/v1/batches", headers=OPENROUTER_HEADERS, json=body)
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "validating"
    return created.json()


def openrouter_poll(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = http.get(f"/openrouter/api/v1/batches/{batch_id}", headers=OPENROUTER_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def failing_second_call(emulator: Emulator, model: str, status: int = 429, **script: Any) -> None:
    """The model answers "Paris." except its second call, a status fault."""
    emulator.script(model, ModelScript(reply="Paris.", faults=[Fault("status", status=status, skip=1, times=1)],
                                       **script))


# ---- OpenAI --------------------------------------------------------------------------------------------------


def test_openai_batch_round_trip(emulator: Emulator, http: httpx.Client) -> None:
    failing_second_call(emulator, "gpt-4o-mini")
    custom_ids = ids(6)
    batch = openai_submit(http, openai_jsonl("gpt-4o-mini", custom_ids, max_completion_tokens=64))
    states = [openai_poll(http, batch["id"])["status"] for _ in range(3)]
    assert states == ["in_progress", "completed", "completed"]

    done = openai_poll(http, batch["id"])
    assert done["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
    assert done["completed_at"] and done["in_progress_at"] and done["usage"]["output_tokens"] > 0
    output = openai_file(http, done["output_file_id"])
    errors = openai_file(http, done["error_file_id"])
    assert len(output) == 5 and len(errors) == 1
    assert {line["custom_id"] for line in output + errors} == set(custom_ids)
    for line in output:
        assert line["error"] is None and line["response"]["status_code"] == 200
        assert line["response"]["body"]["choices"][0]["message"]["content"] == "Paris."
        assert line["response"]["body"]["object"] == "chat.completion"
    error = errors[0]
    assert error["error"] is None and error["response"]["status_code"] == 429
    assert error["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    # The model's second call is the one that failed: the request order decides, not the output order.
    assert error["custom_id"] == custom_ids[1]
    assert [line["custom_id"] for line in output] != [c for c in custom_ids if c != custom_ids[1]]  # shuffled

    assert emulator.batches.creations("openai") == 1
    assert emulator.batches.submitted_ids("openai") == custom_ids
    assert emulator.batches.batch(batch["id"]).bodies[custom_ids[0]]["model"] == "gpt-4o-mini"


def test_openai_finalizing_with_three_polls_and_list_by_metadata(emulator: Emulator, http: httpx.Client) -> None:
    emulator.batches.polls_to_finish = 3
    batch = openai_submit(http, openai_jsonl("gpt-4o-mini", ids(2)), metadata={"fusion_run": "abc"})
    openai_submit(http, openai_jsonl("gpt-4o-mini", ids(2, "x")), metadata={"fusion_run": "other"})
    assert [openai_poll(http, batch["id"])["status"] for _ in range(3)] == ["in_progress", "finalizing", "completed"]
    listed = http.get("/openai/v1/batches", headers=OPENAI_HEADERS).json()
    assert listed["object"] == "list" and len(listed["data"]) == 2
    assert [b["id"] for b in listed["data"] if b["metadata"] == {"fusion_run": "abc"}] == [batch["id"]]


def test_openai_validation_failures(emulator: Emulator, http: httpx.Client) -> None:
    lines = openai_jsonl("gpt-4o-mini", ["a", "b"]) + openai_jsonl("gpt-4o", ["c"]) + b"{not json\n"
    lines += openai_jsonl("gpt-4o-mini", ["a"]) + openai_jsonl("gpt-4o-mini", ["s"], stream=True)
    batch = openai_submit(http, lines)
    failed = openai_poll(http, batch["id"])
    assert failed["status"] == "failed" and failed["failed_at"]
    codes = {(e["code"], e["line"]) for e in failed["errors"]["data"]}
    assert ("model_mismatch", 3) in codes and ("invalid_json_line", 4) in codes
    assert ("duplicate_custom_id", 5) in codes and any(e["param"] == "body.stream" for e in failed["errors"]["data"])
    assert failed["output_file_id"] is None and emulator.requests[-1].status == 200
    # A file that is no .jsonl is refused at upload.
    refused = http.post("/openai/v1/files", headers=OPENAI_HEADERS, data={"purpose": "batch"},
                        files={"file": ("requests.txt", b"{}", "text/plain")})
    assert refused.status_code == 400 and "Must be .jsonl" in refused.json()["error"]["message"]


def test_openai_fail_expire_cancel(emulator: Emulator, http: httpx.Client) -> None:
    emulator.batches.fail_next("openai", "The batch failed: internal error.")
    failed = openai_submit(http, openai_jsonl("gpt-4o-mini", ids(2)))
    body = openai_poll(http, failed["id"])
    assert body["status"] == "failed"
    assert body["errors"]["data"][0]["message"] == "The batch failed: internal error."

    emulator.batches.expire_next("openai", completed=1)
    expiring = openai_submit(http, openai_jsonl("gpt-4o-mini", ids(3)))
    openai_poll(http, expiring["id"])
    expired = openai_poll(http, expiring["id"])
    assert expired["status"] == "expired" and expired["expired_at"]
    output, errors = openai_file(http, expired["output_file_id"]), openai_file(http, expired["error_file_id"])
    assert len(output) == 1 and len(errors) == 2
    assert all(e["response"] is None and e["error"]["code"] == "batch_expired" for e in errors)

    cancelling = openai_submit(http, openai_jsonl("gpt-4o-mini", ids(2)))
    answer = http.post(f"/openai/v1/batches/{cancelling['id']}/cancel", headers=OPENAI_HEADERS)
    assert answer.json()["status"] == "cancelling"
    assert openai_poll(http, cancelling["id"])["status"] == "cancelled"
    assert http.post(f"/openai/v1/batches/{cancelling['id']}/cancel", headers=OPENAI_HEADERS).status_code == 409
    assert emulator.batches.creations("openai") == 3 and emulator.batches.creations() == 3


def test_openai_auth_and_unknown_batch(emulator: Emulator, http: httpx.Client) -> None:
    emulator.expected_keys["openai"] = "sk-right"
    wrong = http.get("/openai/v1/batches/batch_x", headers=OPENAI_HEADERS)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    missing = http.get("/openai/v1/batches/batch_x", headers={"authorization": "Bearer sk-right"})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


# ---- Anthropic -----------------------------------------------------------------------------------------------


def test_anthropic_batch_round_trip(emulator: Emulator, http: httpx.Client) -> None:
    failing_second_call(emulator, "claude-haiku-4-5", status=529)
    custom_ids = ids(5)
    batch = anthropic_submit(http, "claude-haiku-4-5", custom_ids)
    assert batch["request_counts"]["processing"] == 5 and batch["results_url"] is None
    assert anthropic_poll(http, batch["id"])["processing_status"] == "in_progress"
    ended = anthropic_poll(http, batch["id"])
    assert ended["processing_status"] == "ended" and ended["ended_at"]
    assert ended["request_counts"] == {"processing": 0, "succeeded": 4, "errored": 1, "canceled": 0, "expired": 0}
    # An absolute URL on the origin the client used.
    assert ended["results_url"] == f"{emulator.url}/anthropic/v1/messages/batches/{batch['id']}/results"
    results = http.get(ended["results_url"], headers=ANTHROPIC_HEADERS)
    lines = [json.loads(line) for line in results.text.splitlines()]
    assert [line["custom_id"] for line in lines] != custom_ids and sorted(line["custom_id"] for line in lines) == \
        sorted(custom_ids)
    by_id = {line["custom_id"]: line["result"] for line in lines}
    assert by_id[custom_ids[1]]["type"] == "errored"
    assert by_id[custom_ids[1]]["error"]["error"]["type"] == "overloaded_error"
    assert by_id[custom_ids[0]]["message"]["content"][0]["text"] == "Paris."
    assert by_id[custom_ids[0]]["message"]["usage"]["output_tokens"] > 0


def test_anthropic_params_checked_when_the_batch_runs(emulator: Emulator, http: httpx.Client) -> None:
    requests = [{"custom_id": "ok", "params": {"model": "claude-x", "max_tokens": 10,
                                               "messages": [{"role": "user", "content": "hi"}]}},
                {"custom_id": "bad", "params": {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}}]
    created = http.post("/anthropic/v1/messages/batches", headers=ANTHROPIC_HEADERS, json={"requests": requests})
    assert created.status_code == 200
    anthropic_poll(http, created.json()["id"])
    ended = anthropic_poll(http, created.json()["id"])
    lines = {json.loads(line)["custom_id"]: json.loads(line)["result"]
             for line in http.get(ended["results_url"], headers=ANTHROPIC_HEADERS).text.splitlines()}
    assert lines["ok"]["type"] == "succeeded"
    assert lines["bad"]["error"]["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    # The top-level shape is checked at once, and the version header as the chat route checks it.
    shape = http.post("/anthropic/v1/messages/batches", headers=ANTHROPIC_HEADERS, json={"requests": [{"params": {}}]})
    assert shape.status_code == 400 and shape.json()["error"]["type"] == "invalid_request_error"
    no_version = http.get("/anthropic/v1/messages/batches", headers={"x-api-key": "k"})
    assert no_version.status_code == 400


def test_anthropic_fail_expire_cancel_delete(emulator: Emulator, http: httpx.Client) -> None:
    emulator.batches.fail_next("anthropic", "boom")
    failed = anthropic_submit(http, "claude-x", ids(2))
    anthropic_poll(http, failed["id"])
    ended = anthropic_poll(http, failed["id"])
    assert ended["request_counts"]["errored"] == 2

    emulator.batches.expire_next("anthropic")
    expiring = anthropic_submit(http, "claude-x", ids(4))
    anthropic_poll(http, expiring["id"])
    expired = anthropic_poll(http, expiring["id"])
    assert expired["request_counts"]["expired"] == 2 and expired["request_counts"]["succeeded"] == 2
    kinds = sorted(json.loads(line)["result"]["type"]
                   for line in http.get(expired["results_url"], headers=ANTHROPIC_HEADERS).text.splitlines())
    assert kinds == ["expired", "expired", "succeeded", "succeeded"]

    cancelling = anthropic_submit(http, "claude-x", ids(2))
    not_yet = http.delete(f"/anthropic/v1/messages/batches/{cancelling['id']}", headers=ANTHROPIC_HEADERS)
    assert not_yet.status_code == 400
    answer = http.post(f"/anthropic/v1/messages/batches/{cancelling['id']}/cancel", headers=ANTHROPIC_HEADERS)
    assert answer.json()["processing_status"] == "canceling" and answer.json()["cancel_initiated_at"]
    cancelled = anthropic_poll(http, cancelling["id"])
    assert cancelled["processing_status"] == "ended" and cancelled["request_counts"]["canceled"] == 2
    deleted = http.delete(f"/anthropic/v1/messages/batches/{cancelling['id']}", headers=ANTHROPIC_HEADERS)
    assert deleted.json() == {"id": cancelling["id"], "type": "message_batch_deleted"}
    assert http.get(f"/anthropic/v1/messages/batches/{cancelling['id']}", headers=ANTHROPIC_HEADERS).status_code == 404
    listed = http.get("/anthropic/v1/messages/batches", headers=ANTHROPIC_HEADERS).json()
    assert [b["id"] for b in listed["data"]] == [expiring["id"], failed["id"]]


# ---- Gemini --------------------------------------------------------------------------------------------------


def test_gemini_batch_round_trip(emulator: Emulator, http: httpx.Client) -> None:
    failing_second_call(emulator, "gemini-2.5-flash", status=429)
    custom_ids = ids(4)
    created = gemini_submit(http, "gemini-2.5-flash", custom_ids)
    metadata = created["metadata"]
    assert created["name"].startswith("batches/") and "done" not in created
    assert metadata["state"] == "BATCH_STATE_PENDING" and metadata["model"] == "models/gemini-2.5-flash"
    assert metadata["batchStats"] == {"requestCount": "4", "pendingRequestCount": "4"}
    assert metadata["@type"].endswith("GenerateContentBatch")

    assert gemini_poll(http, created["name"])["metadata"]["state"] == "BATCH_STATE_RUNNING"
    done = gemini_poll(http, created["name"], version="v1")  # both versions serve the same batches
    assert done["done"] is True and done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"] == {"requestCount": "4", "successfulRequestCount": "3",
                                              "failedRequestCount": "1"}
    entries = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert entries == done["response"]["inlinedResponses"]["inlinedResponses"]
    assert [e["metadata"]["key"] for e in entries] == custom_ids  # request order
    assert entries[1]["error"]["code"] == 8 and "response" not in entries[1]
    assert entries[0]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "Paris."
    assert entries[0]["response"]["usageMetadata"]["candidatesTokenCount"] > 0
    assert emulator.batches.submitted_ids("gemini") == custom_ids


def test_gemini_display_name_fail_expire_cancel(emulator: Emulator, http: httpx.Client) -> None:
    nameless = http.post("/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent", headers=GEMINI_HEADERS,
                         json={"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": []}}]}}}})
    assert nameless.status_code == 400 and nameless.json()["error"]["status"] == "INVALID_ARGUMENT"

    emulator.batches.fail_next("gemini", "The batch failed.")
    failed = gemini_submit(http, "gemini-2.5-flash", ids(2))
    gemini_poll(http, failed["name"])
    body = gemini_poll(http, failed["name"])
    assert body["metadata"]["state"] == "BATCH_STATE_FAILED" and body["done"] is True
    assert body["error"] == {"code": 13, "message": "The batch failed."}

    emulator.batches.expire_next("gemini")
    expiring = gemini_submit(http, "gemini-2.5-flash", ids(2))
    gemini_poll(http, expiring["name"])
    assert gemini_poll(http, expiring["name"])["metadata"]["state"] == "BATCH_STATE_EXPIRED"

    cancelling = gemini_submit(http, "gemini-2.5-flash", ids(2))
    assert http.post(f"/gemini/v1beta/{cancelling['name']}:cancel", headers=GEMINI_HEADERS).json() == {}
    assert gemini_poll(http, cancelling["name"])["metadata"]["state"] == "BATCH_STATE_CANCELLED"
    listed = http.get("/gemini/v1beta/batches", headers=GEMINI_HEADERS).json()
    assert [op["name"] for op in listed["operations"]] == [cancelling["name"], expiring["name"], failed["name"]]
    assert http.delete(f"/gemini/v1beta/{failed['name']}", headers=GEMINI_HEADERS).json() == {}
    assert http.get(f"/gemini/v1beta/{failed['name']}", headers=GEMINI_HEADERS).status_code == 404


# ---- OpenRouter ----------------------------------------------------------------------------------------------


def test_openrouter_batch_round_trip_and_cost(emulator: Emulator, http: httpx.Client) -> None:
    model = "openai/gpt-4o-mini"
    failing_second_call(emulator, model, status=503, cost_usd=0.0004)
    custom_ids = ids(5)
    batch = openrouter_submit(http, openrouter_body(model, custom_ids))
    assert batch["results"] is None and batch["usage"] is None
    assert openrouter_poll(http, batch["id"])["status"] == "in_progress"
    done = openrouter_poll(http, batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 5, "completed": 4, "failed": 1}
    assert done["usage"]["cost"] == pytest.approx(4 * 0.0004 * 0.5)
    results = done["results"]
    assert [r["custom_id"] for r in results] != custom_ids and len(results) == 5
    by_id = {r["custom_id"]: r for r in results}
    assert by_id[custom_ids[1]]["response"] is None
    assert by_id[custom_ids[1]]["error"]["error_type"] == "provider_overloaded"
    ok = by_id[custom_ids[0]]["response"]
    assert ok["status_code"] == 200 and ok["body"]["choices"][0]["message"]["content"] == "Paris."
    assert "cost" not in ok["body"]["usage"] and ok["body"]["usage"]["completion_tokens"] > 0

    listed = http.get("/openrouter/api/v1/batches", headers=OPENROUTER_HEADERS).json()
    assert listed["data"][0]["id"] == batch["id"] and listed["data"][0]["results"] is None
    deleted = http.delete(f"/openrouter/api/v1/batches/{batch['id']}", headers=OPENROUTER_HEADERS)
    assert deleted.status_code == 200 and deleted.json()["deletion"]["openrouter"] == "deleted"


def test_openrouter_key_order_and_failures_after_acceptance(emulator: Emulator, http: httpx.Client) -> None:
    body = openrouter_body("openai/gpt-4o-mini", ids(2))
    requests_first = {"requests": body["requests"], "endpoint": body["endpoint"], "model": body["model"]}
    refused = http.post("/openrouter/api/v1/batches", headers=OPENROUTER_HEADERS, json=requests_first)
    assert refused.status_code == 400 and "before `requests`" in refused.json()["error"]["message"]
    assert emulator.batches.creations("openrouter") == 0

    other_model = openrouter_body("openai/gpt-4o-mini", ids(2))
    other_model["requests"][1]["body"]["model"] = "anthropic/claude-sonnet-4.5"
    batch = openrouter_submit(http, other_model)
    failed = openrouter_poll(http, batch["id"])
    assert failed["status"] == "failed" and "one model" in failed["error"]["message"]

    streaming = openrouter_submit(http, openrouter_body("openai/gpt-4o-mini", ids(1), stream=True))
    assert openrouter_poll(http, streaming["id"])["status"] == "failed"

    running = openrouter_submit(http, openrouter_body("openai/gpt-4o-mini", ids(1)))
    assert http.delete(f"/openrouter/api/v1/batches/{running['id']}", headers=OPENROUTER_HEADERS).status_code == 400

    emulator.batches.fail_next("openrouter", "Upstream refused the batch.")
    scripted = openrouter_submit(http, openrouter_body("openai/gpt-4o-mini", ids(1)))
    assert openrouter_poll(http, scripted["id"])["error"] == {"message": "Upstream refused the batch."}

    emulator.batches.expire_next("openrouter", completed=1)
    expiring = openrouter_submit(http, openrouter_body("openai/gpt-4o-mini", ids(3)))
    openrouter_poll(http, expiring["id"])
    expired = openrouter_poll(http, expiring["id"])
    assert expired["status"] == "expired" and expired["request_counts"] == {"total": 3, "completed": 1, "failed": 2}
    assert sum(r["error"] is not None for r in expired["results"]) == 2


# ---- what tests script: hold, throttle, counters ---------------------------------------------------------------


def test_hold_keeps_batches_in_progress_until_released(emulator: Emulator, http: httpx.Client) -> None:
    emulator.batches.hold()
    openai = openai_submit(http, openai_jsonl("gpt-4o-mini", ids(2)))
    anthropic = anthropic_submit(http, "claude-x", ids(2))
    gemini = gemini_submit(http, "gemini-2.5-flash", ids(2))
    openrouter = openrouter_submit(http, openrouter_body("openai/gpt-4o-mini", ids(2)))
    for _ in range(5):
        assert openai_poll(http, openai["id"])["status"] == "validating"
        assert anthropic_poll(http, anthropic["id"])["processing_status"] == "in_progress"
        assert gemini_poll(http, gemini["name"])["metadata"]["state"] == "BATCH_STATE_PENDING"
        assert openrouter_poll(http, openrouter["id"])["status"] == "validating"
    assert emulator.batches.held
    emulator.batches.release()
    for _ in range(2):
        openai_poll(http, openai["id"])
        anthropic_poll(http, anthropic["id"])
        gemini_poll(http, gemini["name"])
        openrouter_poll(http, openrouter["id"])
    assert openai_poll(http, openai["id"])["status"] == "completed"
    assert anthropic_poll(http, anthropic["id"])["processing_status"] == "ended"
    assert gemini_poll(http, gemini["name"])["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert openrouter_poll(http, openrouter["id"])["status"] == "completed"
    assert emulator.batches.creations() == 4


@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini", "openrouter"])
def test_throttled_poll_says_when_to_come_back(emulator: Emulator, http: httpx.Client, family: str) -> None:
    if family == "openai":
        batch_id = openai_submit(http, openai_jsonl("gpt-4o-mini", ids(1)))["id"]
        path, headers = f"/openai/v1/batches/{batch_id}", OPENAI_HEADERS
    elif family == "anthropic":
        batch_id = anthropic_submit(http, "claude-x", ids(1))["id"]
        path, headers = f"/anthropic/v1/messages/batches/{batch_id}", ANTHROPIC_HEADERS
    elif family == "gemini":
        path, headers = f"/gemini/v1beta/{gemini_submit(http, 'gemini-2.5-flash', ids(1))['name']}", GEMINI_HEADERS
    else:
        batch_id = openrouter_submit(http, openrouter_body("openai/gpt-4o-mini", ids(1)))["id"]
        path, headers = f"/openrouter/api/v1/batches/{batch_id}", OPENROUTER_HEADERS
    emulator.batches.throttle_next_poll(family, retry_after=7)
    throttled = http.get(path, headers=headers)
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "7"
    assert "error" in throttled.json()
    assert http.get(path, headers=headers).status_code == 200
    assert emulator.batches.batches(family)[0].polls == 1  # the throttled poll did not advance it


def test_submitted_ids_count_repeats_and_reset_forgets(emulator: Emulator, http: httpx.Client) -> None:
    anthropic_submit(http, "claude-x", ["a", "b"])
    anthropic_submit(http, "claude-x", ["b"])
    assert emulator.batches.submitted_ids("anthropic") == ["a", "b", "b"]
    assert emulator.batches.creations("anthropic") == 2 and emulator.batches.creations("openai") == 0
    emulator.batches.polls_to_finish = 5
    emulator.reset()
    assert emulator.batches.creations() == 0 and emulator.batches.submitted_ids("anthropic") == []
    assert emulator.batches.polls_to_finish == 2


def test_large_batch_streams_its_results(emulator: Emulator, http: httpx.Client) -> None:
    emulator.script("openai/gpt-4o-mini", ModelScript(reply="ok", cost_usd=0.00001))
    custom_ids = ids(3000)
    batch = openrouter_submit(http, openrouter_body("openai/gpt-4o-mini", custom_ids))
    openrouter_poll(http, batch["id"])
    done = openrouter_poll(http, batch["id"])
    assert len(done["results"]) == 3000 and done["usage"]["cost"] == pytest.approx(3000 * 0.00001 * 0.5)
    assert {r["custom_id"] for r in done["results"]} == set(custom_ids)
