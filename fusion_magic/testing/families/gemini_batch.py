"""Gemini Batch Mode, Developer API (``/gemini/{v1beta|v1}/models/{model}:batchGenerateContent``, ``/batches``).

A batch is a long-running Operation whose ``metadata`` is the batch (``state`` spelled ``BATCH_STATE_*``,
``batchStats`` counts as int64 strings with zeros left out). Once done, the responses are inline, in request order,
both in ``metadata.output.inlinedResponses.inlinedResponses`` (what google-genai reads) and in
``response.inlinedResponses.inlinedResponses`` (what raw clients read), each with the ``metadata`` sent beside its
request; a request that failed has an ``error`` with a gRPC code instead of a ``response``. Both API versions
are served and share the batches. Shapes: ``shared/reference/batch-apis.md`` §3.

    os.environ["GEMINI_BASE_URL"] = emu.url + "/gemini"   # the chat family's base
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from .._wire import dumps
from ..batch import RESULTS, BatchItem, EmulatedBatch, answer, line, send_fault, send_json_with_results, tally
from ..registry import Request, Route
from ..script import Fault
from .gemini import MAX_REQUEST_BYTES, Gemini, GeminiAuth, _Refused, check_parts, gemini_error

VERSIONS = ("v1beta", "v1")
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
# google.rpc.Code for an HTTP status (an entry's error carries the gRPC code, not the HTTP one).
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 500: 13, 501: 12, 503: 14, 504: 4}
_ENDINGS = {
    "failed": 13,  # INTERNAL, with the scripted message
    "expired": 4,  # DEADLINE_EXCEEDED
    "cancelled": 1,  # CANCELLED
}
_ENDING_MESSAGES = {"expired": "The batch expired before all of its requests ran.",
                    "cancelled": "The batch was cancelled."}


def grpc_code(status: int) -> int:
    """The ``google.rpc.Code`` of an HTTP status (13 INTERNAL for an unknown 5xx, 3 for an unknown 4xx)."""
    return GRPC_CODES.get(status, 13 if status >= 500 else 3)


def _time(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stats(**counts: int) -> dict[str, str]:
    # int64 fields are JSON strings in protobuf JSON, and zero counts are left out.
    return {name: str(value) for name, value in counts.items() if value}


class GeminiBatch(GeminiAuth):
    """``POST /gemini/{v}/models/{model}:batchGenerateContent``, ``GET /gemini/{v}/batches[/{id}]``,
    ``POST /gemini/{v}/batches/{id}:cancel``, ``DELETE /gemini/{v}/batches/{id}`` for ``v`` in v1beta and v1;
    ``x-goog-api-key`` as the chat family reads it.

        emu.script("gemini-2.5-flash", ModelScript(faults=[Fault("status", status=429, times=1)]))
        # the first entry is {"error": {"code": 8, ...}, "metadata": {"key": ...}}
    """

    name = "gemini-batch"
    key_family = "gemini"
    # The chat family already points GEMINI_BASE_URL here and hands out the key.
    env: ClassVar[Mapping[str, str]] = {}
    test_keys: ClassVar[Mapping[str, str]] = {}

    def __init__(self) -> None:
        # The live chat family: its checks, scripted answers and error bodies.
        self.chat = Gemini()

    def routes(self) -> Sequence[Route]:
        routes: list[Route] = []
        for version in VERSIONS:
            base = f"/gemini/{version}"
            routes += [
                Route("POST", f"{base}/models/{{model:path}}:batchGenerateContent", self.create),
                Route("GET", f"{base}/batches", self.list_batches),
                # Before the plain {batch_id} routes' methods matter: ``abc:cancel`` would fit ``{batch_id}``.
                Route("POST", f"{base}/batches/{{batch_id}}:cancel", self.cancel),
                Route("GET", f"{base}/batches/{{batch_id}}", self.poll),
                Route("DELETE", f"{base}/batches/{{batch_id}}", self.delete),
            ]
        return routes

    async def _refuse(self, req: Request, status: int, message: str) -> None:
        await req.json(status, gemini_error(status, message))

    # ---- routes -------------------------------------------------------------------------------------------

    def read(self, body: Any) -> tuple[str, list[BatchItem]] | str:
        """(display name, requests) of a create body, or the 400 message for a malformed one."""
        batch = body.get("batch") if isinstance(body, Mapping) else None
        if not isinstance(batch, Mapping):
            return "* BatchGenerateContentRequest.batch: batch is required"
        display = batch.get("displayName", batch.get("display_name"))
        if not isinstance(display, str) or not display:
            return "* BatchGenerateContentRequest.batch.display_name: display_name is required"
        config = batch.get("inputConfig", batch.get("input_config"))
        if not isinstance(config, Mapping):
            return "* BatchGenerateContentRequest.batch.input_config: input_config is required"
        if "fileName" in config or "file_name" in config:
            return "emulator: a batch from an uploaded JSONL file is not emulated; send the requests inline."
        outer = config.get("requests")
        requests = outer.get("requests") if isinstance(outer, Mapping) else None
        if not isinstance(requests, list) or not requests:
            return "* BatchGenerateContentRequest.batch.input_config.requests.requests: requests is required"
        items: list[BatchItem] = []
        for i, entry in enumerate(requests):
            request = entry.get("request") if isinstance(entry, Mapping) else None
            if not isinstance(request, Mapping):
                return f"* BatchGenerateContentRequest.batch.input_config.requests.requests[{i}].request: request " \
                       "is required"
            assert isinstance(entry, Mapping)
            metadata = entry.get("metadata")
            key = metadata.get("key") if isinstance(metadata, Mapping) else None
            items.append(BatchItem(key if isinstance(key, str) else None, request, metadata))
        return display, items

    def _error_body(self, retry_after: float | None) -> Callable[[int, str], Any]:
        return lambda status, message: self.chat.error_body(
            status, message, fault=Fault("status", status=status, retry_after=retry_after))

    async def create(self, req: Request) -> None:
        """``POST …:batchGenerateContent``: the Operation of a ``BATCH_STATE_PENDING`` batch (a fault scripted
        with ``fault_next(..., "create")`` answers first, or after creating it)."""
        fault = req.batches.take_fault("gemini", "create")
        if fault is not None and not fault.created:
            await send_fault(req, fault, self._error_body(fault.retry_after))
            return
        if len(req.raw_body) > MAX_REQUEST_BYTES:
            await self._refuse(req, 400, f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.")
            return
        read = self.read(req.body)
        if isinstance(read, str):
            await self._refuse(req, 400, read)
            return
        display, items = read
        model = req.params["model"].removeprefix("models/")
        batch = req.batches.create("gemini", items, prefix="b", model=model, display_name=display)
        if fault is not None:  # the batch exists (and is billed); the answer is the scripted fault
            await send_fault(req, fault, self._error_body(fault.retry_after),
                             answer=dumps(self.operation(batch)).encode())
            return
        await req.json(200, self.operation(batch))

    async def poll(self, req: Request) -> None:
        """``GET /batches/{id}``: one step further (see BatchBook); a scripted 429 first if there is one."""
        retry_after = req.batches.take_throttle("gemini")
        if retry_after is not None:
            body = self.chat.error_body(429, "Resource has been exhausted (e.g. check quota).",
                                        fault=Fault("status", status=429, retry_after=retry_after))
            await req.json(429, body, [("retry-after", f"{retry_after:g}")])
            return
        fault = req.batches.take_fault("gemini", "poll")
        if fault is not None:  # the batch does not advance
            await send_fault(req, fault, self._error_body(fault.retry_after))
            return
        batch = req.batches.poll(req.params["batch_id"], lambda b: self.finish(req, b))
        if batch is None or batch.family != "gemini":
            await self._no_batch(req)
            return
        lines = [item.line for item in batch.results() if item.line is not None] if batch.phase == "completed" else []
        # The results come with the poll that finds the batch finished: a "results" fault is met there.
        fault = req.batches.take_fault("gemini", "results") if batch.phase == "completed" else None
        if fault is not None and not fault.cut:
            await send_fault(req, fault, self._error_body(fault.retry_after))
            return
        if fault is not None:
            req.record.fault = fault.word
        await send_json_with_results(req, 200, self.operation(batch), lines, cut=fault is not None)

    async def cancel(self, req: Request) -> None:
        """``POST /batches/{id}:cancel``: ``{}``; the next poll sees ``BATCH_STATE_CANCELLED``."""
        batch = self._find(req)
        if batch is None:
            await self._no_batch(req)
            return
        req.batches.cancel(batch.id)
        await req.json(200, {})

    async def delete(self, req: Request) -> None:
        """``DELETE /batches/{id}``: ``{}``; the batch is gone."""
        batch = self._find(req)
        if batch is None:
            await self._no_batch(req)
            return
        req.batches.delete(batch.id)
        await req.json(200, {})

    async def list_batches(self, req: Request) -> None:
        """``GET /batches?pageSize=&pageToken=``: ``{"operations": [...]}``, newest first, without responses."""
        batches = req.batches.live("gemini")
        try:
            size = max(1, min(int(req.query.get("pageSize") or 50), 1000))
            start = int(req.query.get("pageToken") or 0)
        except ValueError:
            await self._refuse(req, 400, "Invalid pageSize or pageToken.")
            return
        page = batches[start:start + size]
        body: dict[str, Any] = {"operations": [self.operation(b, output=False) for b in page]}
        if start + size < len(batches):
            body["nextPageToken"] = str(start + size)
        await req.json(200, body)

    def _find(self, req: Request) -> EmulatedBatch | None:
        batch = req.batches.get(req.params["batch_id"])
        return batch if batch is not None and batch.family == "gemini" and not batch.deleted else None

    async def _no_batch(self, req: Request) -> None:
        await self._refuse(req, 404, f"Batch batches/{req.params['batch_id']} not found.")

    def operation(self, batch: EmulatedBatch, *, output: bool = True) -> dict[str, Any]:
        """The Operation: the batch under ``metadata``; once done ``done``, and the responses (``RESULTS``, spliced
        in when sent) or the ``error`` of a batch that did not succeed."""
        name = f"batches/{batch.id}"
        total = len(batch.items)
        if batch.phase == "completed":
            succeeded = batch.count("succeeded")
            stats = _stats(requestCount=total, successfulRequestCount=succeeded, failedRequestCount=total - succeeded)
        elif batch.phase == "failed":
            stats = _stats(requestCount=total, failedRequestCount=total)
        else:
            stats = _stats(requestCount=total, pendingRequestCount=0 if batch.done else total)
        metadata: dict[str, Any] = {
            "@type": _BATCH_TYPE,
            "model": f"models/{batch.model}",
            "displayName": batch.display_name,
            "name": name,
            "createTime": _time(batch.created),
            "updateTime": _time(max(batch.stamps.values(), default=batch.created)),
            "batchStats": stats,
            "state": batch.state,
        }
        operation: dict[str, Any] = {"name": name, "metadata": metadata}
        if not batch.done:
            return operation
        metadata["endTime"] = _time(max(batch.stamps.values(), default=batch.created))
        operation["done"] = True
        if batch.phase == "completed":
            if output:
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": RESULTS}}
                operation["response"] = {"@type": _OUTPUT_TYPE, "inlinedResponses": {"inlinedResponses": RESULTS}}
        else:
            message = batch.fail_message if batch.phase == "failed" else None
            operation["error"] = {"code": _ENDINGS[batch.phase],
                                  "message": message or _ENDING_MESSAGES.get(batch.phase, "The batch failed.")}
        return operation

    # ---- running a batch ------------------------------------------------------------------------------

    def finish(self, req: Request, batch: EmulatedBatch) -> None:
        """Answer each request as ``generateContent`` would, in request order; a batch that did not succeed
        answers none (the Operation's ``error`` says why)."""
        if batch.phase != "completed":
            return
        model = batch.model or ""
        for item in batch.items:
            entry: dict[str, Any] = self.entry(req, item, model, batch)
            if item.meta is not None:
                entry["metadata"] = item.meta
            item.line = line(entry)

    def entry(self, req: Request, item: BatchItem, model: str, batch: EmulatedBatch) -> dict[str, Any]:
        """One inlined response: ``{"response": …}`` or ``{"error": {code, message}}`` (metadata added after)."""
        try:
            check_parts(item.body)
        except _Refused as refused:
            item.outcome, item.status = "errored", refused.status
            return {"error": {"code": grpc_code(refused.status), "message": refused.body["error"]["message"]}}
        got = answer(self.chat, req, item.body, model)
        if got.fault is not None and got.fault.kind == "blocked" and got.turn is not None:
            # A blocked prompt is an answer with promptFeedback and no candidates, as generateContent sends it.
            item.outcome, item.status = "succeeded", 200
            turn = got.turn
            return {"response": {
                "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
                "usageMetadata": {"promptTokenCount": turn.input_tokens, "totalTokenCount": turn.input_tokens},
                "modelVersion": turn.served_model, "responseId": turn.response_id}}
        item.status = got.status
        if not got.ok:
            item.outcome = "errored"
            return {"error": {"code": grpc_code(got.status), "message": got.message}}
        item.outcome = "succeeded"
        if got.turn is not None:
            tally(batch, got.turn)
        return {"response": got.body}


__all__ = ["GRPC_CODES", "VERSIONS", "GeminiBatch", "grpc_code"]
