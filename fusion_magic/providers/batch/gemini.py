"""Gemini's Batch Mode, Developer API (shared/reference/batch-apis.md §3): the requests inline in one ``POST
/v1beta/models/{model}:batchGenerateContent``; the answer and every poll are long-running Operations with the batch
under ``metadata``, and a finished one carries the responses inline.

    api = GeminiBatch(endpoint, client)                 # endpoint.base_url: https://generativelanguage.googleapis.com
    status = await api.submit("gemini-2.5-flash", Path("wave1.jsonl"), 200, tag="fm-3f2a")
    async for item in api.results(await api.poll(status)): ...   # matched by metadata.key, never by position

The key goes in ``x-goog-api-key`` (``GeminiProvider.headers()``), never ``?key=``: URLs end in logs. States come as
``BATCH_STATE_*`` on the wire and ``JOB_STATE_*`` in what the SDK wrote down; both are read. Inline requests must
stay under 20 MB in all, so the runner plans with 19 MB; the Files-API input (and its ``responsesFile`` output) is
not used.

A poll, list or cancel answered 429 raises the typed ``RateLimitError`` with the server's ``retry_after``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from ...core.errors import CallCancelled, ProtocolError, ProviderError
from ...core.state import State
from .._http import WireContext, error_info, send_json
from ..base import ChatRequest, ProviderEvent, TextDelta, Usage
from ..chat.gemini import ChunkParser, GeminiProvider, classifier
from ._wire import (
    FIND_PAGES,
    compact,
    get_object,
    inline_body,
    log,
    timestamp,
)
from .base import BatchAPI, BatchStatus, ItemResult

API = "v1beta"

# The state's last word (``BATCH_STATE_RUNNING`` and ``JOB_STATE_RUNNING`` alike) -> ours and the failure kind.
STATES: dict[str, tuple[State, str | None]] = {
    "UNSPECIFIED": (State.QUEUED, None),
    "PENDING": (State.QUEUED, None),
    "QUEUED": (State.QUEUED, None),
    "RUNNING": (State.RUNNING, None),
    "CANCELLING": (State.RUNNING, None),
    "UPDATING": (State.RUNNING, None),
    "PAUSED": (State.RUNNING, None),
    "SUCCEEDED": (State.DONE, None),
    "PARTIALLY_SUCCEEDED": (State.DONE, None),
    "FAILED": (State.FAILED, "failed"),
    "EXPIRED": (State.FAILED, "expired"),
    "CANCELLED": (State.CANCELLED, None),
}

# google.rpc.Code -> (its name, the HTTP status it maps to: google.rpc's own table), so an entry's error is classified
# as the live call's HTTP error of that status would be (8 RESOURCE_EXHAUSTED a rate limit, 13/14 a server error).
GRPC: dict[int, tuple[str, int]] = {
    1: ("CANCELLED", 499),
    2: ("UNKNOWN", 500),
    3: ("INVALID_ARGUMENT", 400),
    4: ("DEADLINE_EXCEEDED", 504),
    5: ("NOT_FOUND", 404),
    6: ("ALREADY_EXISTS", 409),
    7: ("PERMISSION_DENIED", 403),
    8: ("RESOURCE_EXHAUSTED", 429),
    9: ("FAILED_PRECONDITION", 400),
    10: ("ABORTED", 409),
    11: ("OUT_OF_RANGE", 400),
    12: ("UNIMPLEMENTED", 501),
    13: ("INTERNAL", 500),
    14: ("UNAVAILABLE", 503),
    15: ("DATA_LOSS", 500),
    16: ("UNAUTHENTICATED", 401),
}


class GeminiBatch(BatchAPI):
    """Gemini's Batch Mode over the chat protocol's endpoint and key header (``GeminiProvider``)."""

    name: ClassVar[str] = "gemini"
    chat_class = GeminiProvider
    # Inline requests: under 20 MB in all, the JSON around the lines included.
    max_requests: ClassVar[int] = 5_000  # our own bound: the inline body's size is the real limit
    max_bytes: ClassVar[int] = 19_000_000
    labelled: ClassVar[bool] = True  # find() matches our tag: not found means not created
    price_source: ClassVar[str] = "Gemini API Batch Mode: 50% of the interactive price (ai.google.dev/pricing)"


    @property
    def base(self) -> str:
        return f"{self.endpoint.base_url.rstrip('/')}/{API}"

    def batch_url(self, batch_id: str) -> str:
        """``{base}/v1beta/batches/{id}``, whether the id is kept as ``batches/…`` (the resource name) or bare."""
        name = batch_id if batch_id.startswith("batches/") else f"batches/{batch_id}"
        return f"{self.base}/{quote(name, safe='/')}"

    def line(self, custom_id: str, request: ChatRequest) -> bytes:
        """``{"request": <the generateContent body the live call sends>, "metadata": {"key": custom_id}}``.
        Attachments go inline (a batch uploads nothing to the Files API)."""
        return compact({"request": self.chat.body(request), "metadata": {"key": custom_id}})

    async def submit(self, model: str, lines: Path, count: int, tag: str) -> BatchStatus:
        """``POST .../models/{model}:batchGenerateContent`` with ``batch.displayName = tag`` and the lines streamed
        into ``inputConfig.requests.requests``."""
        ctx = self.ctx(model)
        name = quote(model.removeprefix("models/"), safe="")
        head = b'{"batch":{"displayName":' + compact(tag) + b',"inputConfig":{"requests":{"requests":['
        content, headers = inline_body(head, lines, count, b"]}}}}")
        payload = await get_object(self.client, "POST", f"{self.base}/models/{name}:batchGenerateContent", ctx=ctx,
                                  classify=classifier(ctx), headers={**self.chat.headers(), **headers},
                                  content=content)
        return gemini_status(payload, ctx, model=model)

    async def poll(self, status: BatchStatus) -> BatchStatus:
        ctx = self.ctx(status.handle.get("model", ""))
        payload = await get_object(self.client, "GET", self.batch_url(status.id), ctx=ctx, classify=classifier(ctx),
                                   headers=self.chat.headers())
        return gemini_status(payload, ctx, model=ctx.model)

    async def results(self, status: BatchStatus) -> AsyncIterator[ItemResult]:
        """The inline responses of a finished batch, from the status (or one more poll when the status in hand
        does not hold them: one ``find`` gave, or a receipt rebuilt)."""
        responses = status.handle.get("responses")
        if responses is None and status.finished:
            status = await self.poll(status)
            responses = status.handle.get("responses")
        ctx = self.ctx(status.handle.get("model", ""))
        for entry in responses or ():
            item = gemini_item(entry, ctx)
            if item is not None:
                yield item

    async def find(self, tag: str, since: float, count: int | None = None) -> BatchStatus | None:
        """The newest batch whose ``displayName`` is ``tag``, created at or after ``since``."""
        ctx = self.ctx()
        params: dict[str, str] = {"pageSize": "100"}
        best: tuple[float, Mapping[str, Any]] | None = None
        for _ in range(FIND_PAGES):
            page = await get_object(self.client, "GET", f"{self.base}/batches", ctx=ctx, classify=classifier(ctx),
                                    headers=self.chat.headers(), params=params)
            operations = page.get("operations", page.get("batches"))
            for op in operations if isinstance(operations, list) else ():
                meta = batch_of(op)
                created = timestamp(meta.get("createTime"))
                if (meta.get("displayName") == tag and created is not None and created >= since
                        and (best is None or created > best[0])):
                    best = (created, op)
            token = page.get("nextPageToken")
            if not isinstance(token, str) or not token:
                break
            params = {"pageSize": "100", "pageToken": token}
        return None if best is None else gemini_status(best[1], ctx)

    async def cancel(self, status: BatchStatus) -> None:
        """``POST .../batches/{id}:cancel``."""
        ctx = self.ctx(status.handle.get("model", ""))
        await send_json(self.client, "POST", f"{self.batch_url(status.id)}:cancel", ctx=ctx, classify=classifier(ctx),
                        headers=self.chat.headers())


def batch_of(op: Any) -> Mapping[str, Any]:
    """The batch of an Operation (its ``metadata``), or the object itself when it is a bare batch."""
    if not isinstance(op, Mapping):
        return {}
    meta = op.get("metadata")
    return meta if isinstance(meta, Mapping) else op


def count(stats: Mapping[str, Any], key: str) -> int | None:
    """An int64 count of ``batchStats`` (a JSON string; an omitted count is zero)."""
    value = stats.get(key)
    if value is None:
        return 0 if stats else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def gemini_status(op: Mapping[str, Any], ctx: WireContext, *, model: str = "") -> BatchStatus:
    """An Operation (or a bare batch) as our ``BatchStatus``: ``handle`` holds the model and, when done, the inline
    responses (``metadata.output`` first, as the SDK reads them, else ``response``)."""
    meta = batch_of(op)
    name = op.get("name") if isinstance(op.get("name"), str) else meta.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.error(ProtocolError, f"not a batch operation: {str(op)[:120]!r}")
    wire = meta.get("state")
    error = op.get("error") if isinstance(op.get("error"), Mapping) else None
    if isinstance(wire, str) and wire:
        word = wire.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
        known = STATES.get(word)
        if known is None:
            log.warning("gemini batch %s: unknown state %r, taken as running", name, wire)
        state, failure = known or (State.RUNNING, None)
    elif op.get("done"):
        wire = "done"
        state, failure = (State.FAILED, "failed") if error else (State.DONE, None)
    else:
        wire, state, failure = "BATCH_STATE_PENDING", State.QUEUED, None
    reason = None
    if state is State.FAILED:
        reason = status_text(error) or ("the batch expired before it ran" if failure == "expired"
                                        else "the batch failed")
    stats = meta.get("batchStats")
    stats = stats if isinstance(stats, Mapping) else {}
    served = meta.get("model")
    served = served if isinstance(served, str) and served else model
    handle: dict[str, Any] = {"model": served.removeprefix("models/")}
    responses = inline_responses(op)
    if responses is not None:
        handle["responses"] = responses
    return BatchStatus(
        id=name, wire=wire, state=state, total=count(stats, "requestCount"),
        completed=count(stats, "successfulRequestCount"), failed=count(stats, "failedRequestCount"),
        failure=failure, error=reason and ctx.scrub(reason), handle=handle,
    )


def inline_responses(op: Mapping[str, Any]) -> Sequence[Any] | None:
    """``metadata.output.inlinedResponses.inlinedResponses``, else ``response.inlinedResponses.inlinedResponses``."""
    output = batch_of(op).get("output")
    for holder in (output, op.get("response")):
        outer = holder.get("inlinedResponses") if isinstance(holder, Mapping) else None
        inner = outer.get("inlinedResponses") if isinstance(outer, Mapping) else None
        if isinstance(inner, list):
            return inner
    return None


def status_text(status: Mapping[str, Any] | None) -> str | None:
    """A ``google.rpc.Status`` in words: ``RESOURCE_EXHAUSTED (8): quota ...``."""
    if not status:
        return None
    code = status.get("code")
    named = GRPC[code][0] if isinstance(code, int) and code in GRPC else None
    message = status.get("message") if isinstance(status.get("message"), str) else ""
    prefix = f"{named} ({code})" if named else (f"code {code}" if code is not None else "")
    return ": ".join(p for p in (prefix, message) if p) or None


def entry_error(error: Mapping[str, Any], ctx: WireContext) -> ProviderError:
    """An entry's ``google.rpc.Status`` as the typed error the live call's HTTP error of the same meaning gives
    (``chat.gemini.classifier``: its details still count, a per-day quota is not retried); 1 CANCELLED is ours."""
    code = error.get("code")
    named, status = GRPC.get(code, ("UNKNOWN", 500)) if isinstance(code, int) else ("UNKNOWN", 500)
    if code == 1:
        return ctx.error(CallCancelled, str(error.get("message") or "cancelled"), code=named)
    body = {"error": {**error, "status": error.get("status") or named}}
    return classifier(ctx)(error_info(body, status=status, fallback=named))


def gemini_item(entry: Any, ctx: WireContext) -> ItemResult | None:
    """One inline response, matched by ``metadata.key``: its ``response`` read by the live parser (a finished answer
    is one chunk of a stream: text, usage, a blocked prompt or a policy stop alike), or its ``error``."""
    meta = entry.get("metadata") if isinstance(entry, Mapping) else None
    key = meta.get("key") if isinstance(meta, Mapping) else None
    if not isinstance(key, str) or not key:
        log.warning("gemini batch: a response without metadata.key was skipped: %s", ctx.scrub(str(entry)[:120]))
        return None
    assert isinstance(entry, Mapping)
    error = entry.get("error")
    if isinstance(error, Mapping):
        return ItemResult(key, error=entry_error(error, ctx))
    response = entry.get("response")
    if not isinstance(response, Mapping):
        return ItemResult(key, error=ctx.error(ProtocolError, "a batch entry with neither response nor error"))
    parser = ChunkParser(ctx, None)
    # Re-encoded so the live parser reads it exactly as it reads a streamed chunk (one code path for both).
    events, err = events_until_error(parser.feed(json.dumps(response)))
    usage = tuple(e for e in events if isinstance(e, Usage))[-1:]
    if err is None:
        try:
            finished = parser.finish()
        except ProviderError as exc:
            err = exc
    if err is not None:
        return ItemResult(key, usage, err)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return ItemResult(key, (TextDelta(text), *usage, finished))


def events_until_error(events: Iterable[ProviderEvent]) -> tuple[tuple[ProviderEvent, ...], ProviderError | None]:
    """Run a chat parser's events to the end: what it yielded, and the error it raised (None when it ended well)."""
    seen: list[ProviderEvent] = []
    try:
        for event in events:
            seen.append(event)
    except ProviderError as err:
        return tuple(seen), err
    return tuple(seen), None


__all__ = ["GeminiBatch"]
