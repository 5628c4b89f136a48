"""OpenAI's Batch API and the Files API it reads (``/openai/v1/files``, ``/openai/v1/batches``).

A client uploads a JSONL of requests (multipart, ``purpose=batch``, a ``*.jsonl`` name), creates a batch from the
file, polls it, and downloads the output and error files. The file is checked after acceptance, as the real API
does: a bad line turns the batch ``validating -> failed`` with ``errors.data`` (``invalid_json_line``,
``duplicate_custom_id``, ``url_mismatch``, ``model_mismatch``, a ``stream: true`` body). Each request is answered
by the scripted model as ``/chat/completions`` would answer it; one the endpoint refuses is an error-file line
with its ``status_code`` and the endpoint's error body. Shapes: ``shared/reference/batch-apis.md`` §1.

    os.environ["OPENAI_BASE_URL"] = emu.url + "/openai/v1"   # the chat family's base; the batch routes share it
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import dumps
from ..batch import BatchItem, EmulatedBatch, RouteFault, answer, line, send_fault, send_jsonl, tally
from ..chat import listing
from ..registry import Family, Request, Route
from ..video import send_blob
from .openai import OpenAI

BATCH_ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations",
                   "/v1/images/generations", "/v1/images/edits")
# The emulator answers chat completions only; a batch for another endpoint is refused at creation.
_SERVED = "/v1/chat/completions"
MAX_LINES = 50_000
MAX_ERRORS = 1000  # errors.data listed for one file (the rest are not worth a test's memory)
_DAY = 24 * 3600
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)
_DISPOSITION = re.compile(r'(\w+)="([^"]*)"')
_EXPIRED = {"code": "batch_expired",
            "message": "This request could not be executed before the completion window expired."}
# Unconfirmed: the reference lists the stream refusal without its code; this one says what it is.
_STREAM_CODE = "stream_unsupported"


def parse_multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename or None, bytes). Empty when it is none."""
    found = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/form-data") or found is None:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + found.group(1).encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = next((h for h in head.decode("latin-1").split("\r\n")
                            if h.lower().startswith("content-disposition:")), "")
        params = dict(_DISPOSITION.findall(disposition))
        if "name" in params:
            fields[params["name"]] = (params.get("filename"), data.removesuffix(b"\r\n"))
    return fields


def _error(message: str, *, param: str | None = None, code: str | None = None,
           kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def check_lines(data: bytes, endpoint: str) -> tuple[list[BatchItem], str | None, list[dict[str, Any]]]:
    """(the requests, the batch's model, ``errors.data``) of an input file, checked as the real API checks it
    while the batch is ``validating``; the model is the first line's."""
    items: list[BatchItem] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model: str | None = None

    def fail(code: str, number: int, message: str, param: str | None = None) -> None:
        if len(errors) < MAX_ERRORS:
            errors.append({"code": code, "line": number, "message": message, "param": param})

    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        if not isinstance(entry, Mapping):
            fail("invalid_json_line", number, "This line is not parseable as valid JSON.")
            continue
        custom_id, body = entry.get("custom_id"), entry.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            fail("missing_required_parameter", number, "Missing required parameter: 'custom_id'.", "custom_id")
            continue
        items.append(BatchItem(custom_id, body))
        if custom_id in seen:
            fail("duplicate_custom_id", number, "The custom_id for this request is a duplicate of another request. "
                 "The custom_id parameter must be unique for each individual request in a batch.", "custom_id")
        seen.add(custom_id)
        if entry.get("method") != "POST":
            fail("invalid_value", number, "Invalid value for 'method': only POST is supported.", "method")
        if entry.get("url") != endpoint:
            fail("url_mismatch", number, f"The provided URL '{entry.get('url')}' does not match the batch "
                 f"endpoint '{endpoint}'. All requests in a batch must use the same endpoint.", "url")
        if not isinstance(body, Mapping):
            fail("invalid_value", number, "Invalid value for 'body': expected an object.", "body")
            continue
        line_model = body.get("model")
        if model is None and isinstance(line_model, str):
            model = line_model
        elif line_model != model:
            fail("model_mismatch", number, f"The provided model '{line_model}' does not match the model '{model}' "
                 "of the other requests in the file. A batch must use one model.", "body.model")
        if body.get("stream") is True:
            fail(_STREAM_CODE, number, "Streaming is not supported in the Batch API.", "body.stream")
    if not items and not errors:
        fail("empty_file", 0, "The input file is empty.")
    if len(items) > MAX_LINES:
        fail("too_many_tasks", 0, f"The input file has {len(items)} requests; the limit is {MAX_LINES}.")
    return items, model, errors


class OpenAIBatch(Family):
    """``POST /openai/v1/files``, ``GET /openai/v1/files/{id}[/content]``, ``POST/GET /openai/v1/batches``,
    ``GET /openai/v1/batches/{id}``, ``POST /openai/v1/batches/{id}/cancel``; Bearer auth as the chat family.

        emu.script("gpt-4o-mini", ModelScript(faults=[Fault("status", status=429, skip=1, times=1)]))
        # the batch's second request answered is an error-file line with status_code 429
    """

    name = "openai-batch"
    key_family = "openai"
    base: ClassVar[str] = OpenAI.base

    def __init__(self) -> None:
        # The live chat family: its checks, scripted answers, error bodies and auth dialect.
        self.chat = OpenAI()

    def routes(self) -> Sequence[Route]:
        base = self.base
        return [
            Route("POST", f"{base}/files", self.upload),
            Route("GET", f"{base}/files/{{file_id}}/content", self.content),
            Route("GET", f"{base}/files/{{file_id}}", self.file),
            Route("DELETE", f"{base}/files/{{file_id}}", self.delete_file),
            Route("POST", f"{base}/batches", self.create),
            Route("GET", f"{base}/batches", self.list_batches),
            Route("GET", f"{base}/batches/{{batch_id}}", self.poll),
            Route("POST", f"{base}/batches/{{batch_id}}/cancel", self.cancel),
        ]

    # ---- auth: the chat family's ------------------------------------------------------------------------

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        return self.chat.key_error(req, has_key)

    def auth_headers(self, req: Request) -> list[tuple[str, str]]:
        return self.chat.auth_headers(req)

    async def _refuse(self, req: Request, status: int, message: str, *, param: str | None = None,
                      code: str | None = None) -> None:
        kind = "invalid_request_error" if status < 500 else "server_error"
        await req.json(status, _error(message, param=param, code=code, kind=kind), [("x-request-id", req.request_id)])

    # ---- files ----------------------------------------------------------------------------------------

    @staticmethod
    def file_object(record: Any, size: int) -> dict[str, Any]:
        """A ``FileObject``; batch inputs expire after 30 days."""
        return {"id": record.id, "object": "file", "bytes": size, "created_at": record.created,
                "filename": record.filename, "purpose": record.purpose, "status": "processed",
                "expires_at": record.created + 30 * _DAY if record.purpose == "batch" else None,
                "status_details": None}

    def _size(self, req: Request, record: Any) -> int:
        if record.data is not None:
            return len(record.data)
        batch = req.batches.get(record.batch_id or "")
        return sum(len(entry) + 1 for entry in self._lines(batch, record.kind)) if batch is not None else 0

    async def upload(self, req: Request) -> None:
        """``POST /files``: multipart ``purpose`` and ``file``; a batch file must be named ``*.jsonl``."""
        fields = parse_multipart(req.raw_body, req.headers.get("content-type", ""))
        purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace").strip()
        if "file" not in fields or fields["file"][0] is None:
            await self._refuse(req, 400, "Missing required parameter: 'file'.", param="file",
                               code="missing_required_parameter")
            return
        if not purpose:
            await self._refuse(req, 400, "Missing required parameter: 'purpose'.", param="purpose",
                               code="missing_required_parameter")
            return
        filename, data = fields["file"]
        assert filename is not None
        if purpose == "batch" and not filename.lower().endswith(".jsonl"):
            await self._refuse(req, 400, "Invalid file format for Batch API. Must be .jsonl", param="file")
            return
        record = req.batches.add_file(filename, purpose, data)
        await req.json(200, self.file_object(record, len(data)), [("x-request-id", req.request_id)])

    async def file(self, req: Request) -> None:
        """``GET /files/{id}``: the FileObject."""
        record = req.batches.file(req.params["file_id"])
        if record is None:
            await self._no_file(req)
            return
        await req.json(200, self.file_object(record, self._size(req, record)), [("x-request-id", req.request_id)])

    async def delete_file(self, req: Request) -> None:
        """``DELETE /files/{id}``."""
        record = req.batches.file(req.params["file_id"])
        if record is None:
            await self._no_file(req)
            return
        record.deleted = True
        await req.json(200, {"id": record.id, "object": "file", "deleted": True})

    async def content(self, req: Request) -> None:
        """``GET /files/{id}/content``: the upload's bytes, or a batch's output/error JSONL (any order)."""
        record = req.batches.file(req.params["file_id"])
        if record is None:
            await self._no_file(req)
            return
        if record.data is not None:
            await send_blob(req, record.data, content_type="application/octet-stream")
            return
        batch = req.batches.get(record.batch_id or "")
        lines = self._lines(batch, record.kind) if batch is not None else []
        headers = [("x-request-id", req.request_id)]
        fault = req.batches.take_fault("openai", "results")
        if fault is not None and not fault.cut:
            await send_fault(req, fault, self._error_body, headers=headers)
            return
        if fault is not None:
            req.record.fault = fault.word
        await send_jsonl(req, lines, "application/octet-stream", headers, cut=fault is not None)

    async def _no_file(self, req: Request) -> None:
        await self._refuse(req, 404, f"No such File object: {req.params['file_id']}", param="id")

    @staticmethod
    def _lines(batch: EmulatedBatch, kind: str) -> list[bytes]:
        want_ok = kind == "output"
        return [item.line for item in batch.results() if item.line is not None and (item.status == 200) == want_ok]

    # ---- batches --------------------------------------------------------------------------------------

    def _error_body(self, status: int, message: str) -> Any:
        return self.chat.error_body(status, message)

    async def create(self, req: Request) -> None:
        """``POST /batches``: checks the call at once and the file's lines when the batch is first polled (a
        fault scripted with ``fault_next(..., "create")`` answers first, or after creating it)."""
        fault = req.batches.take_fault("openai", "create")
        if fault is not None and not fault.created:
            await send_fault(req, fault, self._error_body, headers=[("x-request-id", req.request_id)])
            return
        await self._create(req, fault)

    async def _create(self, req: Request, fault: RouteFault | None) -> None:
        body = req.body
        if not isinstance(body, Mapping):
            await self._refuse(req, 400, "We could not parse the JSON body of your request.")
            return
        for param in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(param), str):
                await self._refuse(req, 400, f"Missing required parameter: '{param}'.", param=param,
                                   code="missing_required_parameter")
                return
        endpoint, window = body["endpoint"], body["completion_window"]
        if endpoint not in BATCH_ENDPOINTS:
            await self._refuse(req, 400, f"Invalid value: '{endpoint}'. Supported values are: "
                               f"{listing(BATCH_ENDPOINTS)}.", param="endpoint", code="invalid_value")
            return
        if endpoint != _SERVED:
            await self._refuse(req, 400, f"emulator: only {_SERVED} batches are emulated, not {endpoint}.",
                               param="endpoint", code="invalid_value")
            return
        if window != "24h":
            await self._refuse(req, 400, f"Invalid value: '{window}'. Supported values are: '24h'.",
                               param="completion_window", code="invalid_value")
            return
        metadata = body.get("metadata")
        problem = self._check_metadata(metadata)
        if problem is not None:
            await self._refuse(req, 400, problem, param="metadata", code="invalid_value")
            return
        record = req.batches.file(body["input_file_id"])
        if record is None or record.data is None:
            await self._refuse(req, 404, f"No such File object: {body['input_file_id']}", param="input_file_id")
            return
        if record.purpose != "batch":
            await self._refuse(req, 400, f"The file {record.id} has purpose '{record.purpose}', not 'batch'.",
                               param="input_file_id", code="invalid_value")
            return
        items, model, errors = check_lines(record.data, endpoint)
        batch = req.batches.create("openai", items, prefix="batch_", model=model, metadata=metadata,
                                   endpoint=endpoint, input_file_id=record.id, errors=errors)
        if fault is not None:  # the batch exists (and is billed); the answer is the scripted fault
            await send_fault(req, fault, self._error_body, answer=dumps(self.batch_object(batch)).encode(),
                             headers=[("x-request-id", req.request_id)])
            return
        await req.json(200, self.batch_object(batch), [("x-request-id", req.request_id)])

    @staticmethod
    def _check_metadata(metadata: Any) -> str | None:
        if metadata is None:
            return None
        if not isinstance(metadata, Mapping) or len(metadata) > 16:
            return "Invalid 'metadata': expected an object with at most 16 pairs."
        for key, value in metadata.items():
            if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
                return "Invalid 'metadata': keys are at most 64 characters, values strings of at most 512."
        return None

    async def poll(self, req: Request) -> None:
        """``GET /batches/{id}``: one step further (see BatchBook); a scripted 429 first if there is one."""
        retry_after = req.batches.take_throttle("openai")
        if retry_after is not None:
            body = self.chat.error_body(429, "Rate limit reached for requests.")
            await req.json(429, body, [("retry-after", f"{retry_after:g}"), ("x-request-id", req.request_id)])
            return
        fault = req.batches.take_fault("openai", "poll")
        if fault is not None:  # the batch does not advance
            await send_fault(req, fault, self._error_body, headers=[("x-request-id", req.request_id)])
            return
        batch = req.batches.poll(req.params["batch_id"], lambda b: self.finish(req, b))
        if batch is None or batch.family != "openai":
            await self._no_batch(req)
            return
        await req.json(200, self.batch_object(batch), [("x-request-id", req.request_id)])

    async def cancel(self, req: Request) -> None:
        """``POST /batches/{id}/cancel``: ``cancelling``, then ``cancelled`` at the next poll."""
        found = req.batches.get(req.params["batch_id"])
        if found is None or found.deleted or found.family != "openai":
            await self._no_batch(req)
            return
        if found.done:
            await self._refuse(req, 409, f"Cannot cancel a batch with status '{found.state}'.")
            return
        batch = req.batches.cancel(found.id)
        assert batch is not None
        await req.json(200, self.batch_object(batch), [("x-request-id", req.request_id)])

    async def list_batches(self, req: Request) -> None:
        """``GET /batches?after=&limit=``: newest first, with each batch's metadata."""
        batches = req.batches.live("openai")
        after = req.query.get("after")
        if after:
            ids = [b.id for b in batches]
            batches = batches[ids.index(after) + 1:] if after in ids else []
        limit = _limit(req.query.get("limit"), 20, 100)
        page = batches[:limit]
        data = [self.batch_object(b) for b in page]
        await req.json(200, {"object": "list", "data": data, "first_id": page[0].id if page else None,
                             "last_id": page[-1].id if page else None, "has_more": len(batches) > limit})

    async def _no_batch(self, req: Request) -> None:
        await self._refuse(req, 404, f"No batch found with id '{req.params['batch_id']}'.", param="batch_id")

    def batch_object(self, batch: EmulatedBatch) -> dict[str, Any]:
        """The ``Batch`` as ``GET /batches/{id}`` answers it."""
        stamps = batch.stamps

        def at(phase: str) -> int | None:
            return int(stamps[phase]) if phase in stamps else None

        total = len(batch.items) if batch.phase != "pending" and batch.phase != "failed" else 0
        succeeded = batch.count("succeeded")
        ended = batch.phase in ("completed", "expired", "cancelled")
        failed = (total - succeeded - batch.count("canceled")) if ended else 0
        errors = ({"object": "list", "data": batch.errors} if batch.errors else None)
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "errors": errors,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": batch.state,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(batch.created),
            "in_progress_at": at("running"),
            "expires_at": int(batch.created) + _DAY,
            "finalizing_at": at("finalizing"),
            "completed_at": at("completed"),
            "failed_at": at("failed"),
            "expired_at": at("expired"),
            "cancelling_at": at("cancelling"),
            "cancelled_at": at("cancelled"),
            "request_counts": {"total": total, "completed": succeeded, "failed": failed},
            "usage": {
                "input_tokens": batch.input_tokens,
                "input_tokens_details": {"cached_tokens": batch.cached_tokens},
                "output_tokens": batch.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": batch.input_tokens + batch.output_tokens,
            },
            "metadata": batch.metadata,
        }

    # ---- running a batch ------------------------------------------------------------------------------

    def finish(self, req: Request, batch: EmulatedBatch) -> None:
        """Answer the batch's requests as it ends: output lines for the answered, error lines for the refused
        and (expired) the ones that never ran."""
        if batch.phase == "failed":
            if not batch.errors:  # a scripted failure: the reference's errors.data shape, no line
                batch.errors = [{"code": "batch_failed", "line": None,
                                 "message": batch.fail_message or "The batch failed.", "param": None}]
            return
        if batch.phase == "cancelled":
            # Unconfirmed what a cancelled batch's files hold; the emulator cancels before any request ran.
            for item in batch.items:
                item.outcome = "canceled"
            return
        runs = len(batch.items)
        if batch.phase == "expired":
            runs = batch.expire_completed if batch.expire_completed is not None else len(batch.items) // 2
        model = batch.model or ""
        for index, item in enumerate(batch.items):
            request_id = f"batch_req_emu{req.batches.next_seq():06d}"
            if index >= runs:
                item.outcome, item.status = "expired", 0
                item.line = line({"id": request_id, "custom_id": item.custom_id, "response": None,
                                  "error": _EXPIRED})
                continue
            got = answer(self.chat, req, item.body, model)
            item.outcome, item.status = ("succeeded" if got.ok else "errored"), got.status
            if got.ok and got.turn is not None:
                tally(batch, got.turn)
            item.line = line({"id": request_id, "custom_id": item.custom_id,
                              "response": {"status_code": got.status, "request_id": got.request_id,
                                           "body": got.body},
                              "error": None})
        if any(item.status == 200 for item in batch.items):
            batch.output_file_id = req.batches.add_file(f"batch_{batch.id}_output.jsonl", "batch_output",
                                                        batch_id=batch.id, kind="output").id
        if any(item.line is not None and item.status != 200 for item in batch.items):
            batch.error_file_id = req.batches.add_file(f"batch_{batch.id}_error.jsonl", "batch_output",
                                                       batch_id=batch.id, kind="error").id


def _limit(raw: str | None, default: int, most: int) -> int:
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = default
    return max(1, min(value, most))


__all__ = ["BATCH_ENDPOINTS", "OpenAIBatch", "check_lines", "parse_multipart"]
