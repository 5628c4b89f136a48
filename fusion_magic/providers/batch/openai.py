"""OpenAI's Batch API (shared/reference/batch-apis.md §1): upload a JSONL file, create a batch on it, poll, read
the output and error files.

    api = OpenAIBatch(endpoint, client)                 # endpoint.base_url: https://api.openai.com/v1
    status = await api.submit("gpt-4o-mini", Path("wave1.jsonl"), 200, tag="fm-3f2a")
    status = await api.poll(status)                     # BatchStatus(wire="in_progress", state=RUNNING, ...)
    async for item in api.results(status): ...          # both files, line by line, matched by custom_id

The wire work every batch module shares (the upload and download helpers, the result-line reading, the status
words OpenRouter's batches share with these) is in ``_wire``; this module keeps what is OpenAI's own.

A poll, list or cancel answered 429 raises the typed ``RateLimitError`` with the server's ``retry_after``
(``_http.response_error``): the runner backs off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ...core.errors import CallCancelled, ProtocolError, ProviderTimeout
from .._http import WireContext, error_info, send_json
from ..base import ChatRequest
from ..chat._sse import json_int
from ..chat.openai_compat import OpenAICompatProvider, classifier
from ._wire import (
    CHAT_ENDPOINT,
    EXPIRED_REQUEST,
    FIND_PAGES,
    batch_words,
    check_count,
    compact,
    get_object,
    jsonl,
    read_line,
    response_item,
    timestamp,
    unstreamed,
)
from .base import BatchAPI, BatchStatus, ItemResult

# The metadata key find() recognises our batches by.
TAG_KEY = "fusion_batch"


class OpenAIBatch(BatchAPI):
    """OpenAI's Batch API over the chat protocol's endpoint and key (``OpenAICompatProvider``)."""

    name: ClassVar[str] = "openai"
    chat_class = OpenAICompatProvider
    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 200_000_000  # "200 MB" a file; decimal, the smaller reading
    labelled: ClassVar[bool] = True  # find() matches our tag: not found means not created
    price_source: ClassVar[str] = "OpenAI's Batch API: 50% of the standard price (openai.com/api/pricing)"


    @property
    def base(self) -> str:
        return self.endpoint.base_url.rstrip("/")

    def line(self, custom_id: str, request: ChatRequest) -> bytes:
        """``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``, the body the live call
        sends, unstreamed."""
        body = unstreamed(self.chat.body(request))
        return compact({"custom_id": custom_id, "method": "POST", "url": CHAT_ENDPOINT, "body": body})

    async def submit(self, model: str, lines: Path, count: int, tag: str) -> BatchStatus:
        """Upload ``lines`` as a ``*.jsonl`` file (multipart, streamed from disk), then create the batch on it with
        ``metadata.fusion_batch = tag``. ``handle["input_file_id"]`` keeps the upload."""
        check_count(lines, count)
        ctx = self.ctx(model)
        classify = classifier(ctx)
        with lines.open("rb") as fh:
            upload = await get_object(
                self.client, "POST", f"{self.base}/files", ctx=ctx, classify=classify, headers=self.chat.headers(),
                data={"purpose": "batch"}, files={"file": (f"{tag}.jsonl", fh, "application/jsonl")},
            )
        file_id = upload.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise ctx.error(ProtocolError, f"the file upload answered no id: {str(upload)[:120]!r}")
        body = {"input_file_id": file_id, "endpoint": CHAT_ENDPOINT, "completion_window": "24h",
                "metadata": {TAG_KEY: tag}}
        payload = await get_object(self.client, "POST", f"{self.base}/batches", ctx=ctx, classify=classify,
                                   headers=self.chat.headers(), body=body)
        return openai_status(payload, ctx, model=model)

    async def poll(self, status: BatchStatus) -> BatchStatus:
        ctx = self.ctx(status.handle.get("model", ""))
        payload = await get_object(self.client, "GET", f"{self.base}/batches/{status.id}", ctx=ctx,
                                   classify=classifier(ctx), headers=self.chat.headers())
        return openai_status(payload, ctx, model=ctx.model)

    async def results(self, status: BatchStatus) -> AsyncIterator[ItemResult]:
        """The output file's lines, then the error file's (either may be absent). An expired or cancelled batch
        still has both: its finished requests are results, the rest are error lines. A finished status that names
        neither file (one rebuilt from a receipt) is polled once for them."""
        if status.finished and not any(status.handle.get(k) for k in ("output_file_id", "error_file_id")):
            status = await self.poll(status)
        ctx = self.ctx(status.handle.get("model", ""))
        classify = classifier(ctx)
        for key in ("output_file_id", "error_file_id"):
            file_id = status.handle.get(key)
            if not isinstance(file_id, str) or not file_id:
                continue
            url = f"{self.base}/files/{file_id}/content"
            async for text in jsonl(self.client, url, ctx=ctx, classify=classify, headers=self.chat.headers()):
                item = openai_item(text, ctx)
                if item is not None:
                    yield item

    async def find(self, tag: str, since: float, count: int | None = None) -> BatchStatus | None:
        """The newest batch whose ``metadata.fusion_batch`` is ``tag``, created at or after ``since``; the list
        comes newest first, so paging stops at the first batch older than ``since``."""
        ctx = self.ctx()
        params: dict[str, str] = {"limit": "100"}
        for _ in range(FIND_PAGES):
            page = await get_object(self.client, "GET", f"{self.base}/batches", ctx=ctx, classify=classifier(ctx),
                                    headers=self.chat.headers(), params=params)
            data = [b for b in page.get("data") or () if isinstance(b, Mapping)]
            for batch in data:
                created = timestamp(batch.get("created_at"))
                metadata = batch.get("metadata")
                if (created is not None and created >= since and isinstance(metadata, Mapping)
                        and metadata.get(TAG_KEY) == tag):
                    return openai_status(batch, ctx, model=str(batch.get("model") or ""))
            oldest = timestamp(data[-1].get("created_at")) if data else None
            last = page.get("last_id")
            if not page.get("has_more") or not isinstance(last, str) or (oldest is not None and oldest < since):
                return None
            params = {"limit": "100", "after": last}
        return None

    async def cancel(self, status: BatchStatus) -> None:
        """``POST /batches/{id}/cancel``: the batch goes ``cancelling``, then ``cancelled``."""
        ctx = self.ctx(status.handle.get("model", ""))
        await send_json(self.client, "POST", f"{self.base}/batches/{status.id}/cancel", ctx=ctx,
                        classify=classifier(ctx), headers=self.chat.headers())


def openai_status(payload: Mapping[str, Any], ctx: WireContext, *, model: str = "") -> BatchStatus:
    """An OpenAI ``Batch`` object as our ``BatchStatus``; ``handle`` holds its file ids and model."""
    wire, state, batch_id = batch_words(payload, ctx)
    counts = payload.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    failure = error = None
    if wire == "failed":
        failure, error = "failed", validation_errors(payload.get("errors")) or "the batch failed"
    elif wire == "expired":
        failure, error = "expired", "the 24 h window ended before every request ran (those that finished are results)"
    served = payload.get("model")
    handle = {key: payload[key] for key in ("input_file_id", "output_file_id", "error_file_id")
              if isinstance(payload.get(key), str)}
    handle["model"] = served if isinstance(served, str) and served else model
    return BatchStatus(
        id=batch_id, wire=wire, state=state, total=json_int(counts.get("total")),
        completed=json_int(counts.get("completed")), failed=json_int(counts.get("failed")),
        failure=failure, error=error and ctx.scrub(error), handle=handle,
    )


def validation_errors(errors: Any, most: int = 5) -> str | None:
    """``errors.data`` of a failed batch in one line: ``line 3: This line is not parseable... (invalid_json_line)``."""
    data = errors.get("data") if isinstance(errors, Mapping) else None
    if not isinstance(data, list) or not data:
        return None
    said = []
    for entry in data[:most]:
        if not isinstance(entry, Mapping):
            continue
        where = f"line {entry['line']}: " if isinstance(entry.get("line"), int) else ""
        code = f" ({entry['code']})" if isinstance(entry.get("code"), str) else ""
        said.append(f"{where}{entry.get('message') or 'invalid'}{code}")
    more = f"; and {len(data) - most} more" if len(data) > most else ""
    return "; ".join(said) + more


def openai_item(text: str, ctx: WireContext) -> ItemResult | None:
    """One line of an output or error file: a 200 is a chat completion; a 4xx/5xx the endpoint's error body,
    classified as the live call's would be; ``response: null`` with ``error`` a request that never ran."""
    read = read_line(text, ctx)
    if not isinstance(read, tuple):
        return read
    custom_id, line = read
    error = line.get("error")
    if isinstance(error, Mapping) and error:
        code = error.get("code")
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        if code == "batch_expired":
            return ItemResult(custom_id, error=ctx.error(ProviderTimeout, EXPIRED_REQUEST, code="batch_expired"))
        if code == "batch_cancelled":
            return ItemResult(custom_id, error=ctx.error(CallCancelled, message or "the batch was cancelled",
                                                         code="batch_cancelled"))
        return ItemResult(custom_id, error=classifier(ctx)(error_info({"error": error})))
    return response_item(custom_id, line.get("response"), ctx, classifier(ctx))


__all__ = ["OpenAIBatch"]
