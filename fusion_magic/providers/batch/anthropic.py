"""Anthropic's Message Batches (shared/reference/batch-apis.md §2): the requests inline in one ``POST
/v1/messages/batches``, poll the batch, then read its absolute ``results_url`` as JSONL.

    api = AnthropicBatch(endpoint, client)              # endpoint.base_url: https://api.anthropic.com
    status = await api.submit("claude-haiku-4-5", Path("wave1.jsonl"), 200, tag="fm-3f2a")
    async for item in api.results(await api.poll(status)): ...

A batch may mix models (``one_model = False``); each request's ``params`` are validated only when the batch runs,
so a bad request is an ``errored`` result, not a refused batch. Anthropic keeps no label on a batch: ``find`` can
only recognise a lost submit as the one batch created since then with the same number of requests.

A poll, list or cancel answered 429 raises the typed ``RateLimitError`` with the server's ``retry_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ...core.errors import BlockedError, CallCancelled, ProtocolError, ProviderTimeout
from ...core.state import State
from .._http import Classifier, WireContext, error_info, same_origin, send_json
from ..base import ChatRequest, Finished, ProviderEvent, TextDelta
from ..chat._sse import json_int
from ..chat.anthropic import AnthropicProvider, classifier, message_usage
from ._wire import (
    EXPIRED_REQUEST,
    compact,
    find_by_count,
    get_object,
    inline_body,
    jsonl,
    log,
    read_line,
    unstreamed,
)
from .base import BatchAPI, BatchStatus, ItemResult

# request_counts' five buckets; their sum is the batch's size at any moment (processing counts down).
COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


class AnthropicBatch(BatchAPI):
    """Anthropic's Message Batches over the chat protocol's endpoint and headers (``x-api-key``,
    ``anthropic-version``: ``AnthropicProvider.headers()``)."""

    name: ClassVar[str] = "anthropic"
    chat_class = AnthropicProvider
    max_requests: ClassVar[int] = 100_000
    max_bytes: ClassVar[int] = 256_000_000  # "256 MB"; decimal, the smaller reading
    one_model: ClassVar[bool] = False
    price_source: ClassVar[str] = "Anthropic's Message Batches: 50% of the standard price (claude.com/pricing)"


    @property
    def batches(self) -> str:
        return f"{self.endpoint.base_url.rstrip('/')}/v1/messages/batches"

    def line(self, custom_id: str, request: ChatRequest) -> bytes:
        """``{"custom_id", "params"}``: ``params`` the Messages body the live call sends, unstreamed."""
        return compact({"custom_id": custom_id, "params": unstreamed(self.chat.body(request))})

    async def submit(self, model: str, lines: Path, count: int, tag: str) -> BatchStatus:
        """``POST /v1/messages/batches`` with ``{"requests": [...]}`` streamed from ``lines``. ``model`` and ``tag``
        are not sent (each request names its model; Anthropic keeps no label): ``find`` matches by count."""
        ctx = self.ctx(model)
        content, headers = inline_body(b'{"requests":[', lines, count, b"]}")
        payload = await get_object(self.client, "POST", self.batches, ctx=ctx, classify=classifier(ctx),
                                  headers={**self.chat.headers(), **headers}, content=content)
        return anthropic_status(payload, ctx)

    async def poll(self, status: BatchStatus) -> BatchStatus:
        ctx = self.ctx()
        payload = await get_object(self.client, "GET", f"{self.batches}/{status.id}", ctx=ctx,
                                   classify=classifier(ctx), headers=self.chat.headers())
        return anthropic_status(payload, ctx)

    async def results(self, status: BatchStatus) -> AsyncIterator[ItemResult]:
        """The lines of ``results_url``, fetched with the key's headers only when it is on the endpoint's own
        origin (the key never goes elsewhere: another origin is a ``ProtocolError``, nothing is sent). A finished
        status without the URL (one rebuilt from a receipt) is polled once for it."""
        ctx = self.ctx()
        if status.finished and not status.handle.get("results_url"):
            status = await self.poll(status)
        url = status.handle.get("results_url")
        if not isinstance(url, str) or not url:
            if not status.finished:
                return
            raise ctx.error(ProtocolError, f"batch {status.id} ended without a results_url")
        if not same_origin(url, self.endpoint.base_url):
            raise ctx.error(ProtocolError, f"batch {status.id}: results_url is not on {self.endpoint.base_url}; "
                            "the key is not sent there")
        classify = classifier(ctx)
        async for text in jsonl(self.client, url, ctx=ctx, classify=classify, headers=self.chat.headers()):
            item = anthropic_item(text, ctx, classify)
            if item is not None:
                yield item

    async def find(self, tag: str, since: float, count: int | None = None) -> BatchStatus | None:
        """The one batch created at or after ``since`` (holding ``count`` requests when given); None when there is
        none or more than one (Anthropic keeps no label, so two would be a guess). ``tag`` cannot be matched."""
        ctx = self.ctx()
        batch = await find_by_count(self.client, self.batches, ctx=ctx, classify=classifier(ctx),
                                    headers=self.chat.headers(), since=since, count=count, size=size,
                                    after_key="after_id", name=self.name)
        return anthropic_status(batch, ctx) if batch is not None else None

    async def cancel(self, status: BatchStatus) -> None:
        """``POST .../{id}/cancel``: the batch goes ``canceling``, then ``ended`` with its unrun requests
        ``canceled``."""
        ctx = self.ctx()
        await send_json(self.client, "POST", f"{self.batches}/{status.id}/cancel", ctx=ctx,
                        classify=classifier(ctx), headers=self.chat.headers())


def size(batch: Mapping[str, Any]) -> int:
    """How many requests a batch holds: the sum of its ``request_counts``."""
    counts = batch.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    return sum(json_int(counts.get(k)) or 0 for k in COUNTS)


def anthropic_status(payload: Mapping[str, Any], ctx: WireContext) -> BatchStatus:
    """A ``MessageBatch`` as our ``BatchStatus``. ``in_progress`` and ``canceling`` run; ``ended`` is done, or
    cancelled when a cancel was asked for (its results are read all the same); ``handle["results_url"]``."""
    batch_id = payload.get("id")
    wire = payload.get("processing_status")
    if not isinstance(batch_id, str) or not batch_id or not isinstance(wire, str):
        raise ctx.error(ProtocolError, f"not a message batch: {str(payload)[:120]!r}")
    if wire == "ended":
        state = State.CANCELLED if payload.get("cancel_initiated_at") else State.DONE
    else:
        if wire not in ("in_progress", "canceling"):
            log.warning("anthropic batch %s: unknown processing_status %r, taken as running", batch_id, wire)
        state = State.RUNNING
    counts = payload.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    failed = sum(json_int(counts.get(k)) or 0 for k in ("errored", "canceled", "expired"))
    url = payload.get("results_url")
    return BatchStatus(
        id=batch_id, wire=wire, state=state, total=size(payload), completed=json_int(counts.get("succeeded")),
        failed=failed, handle={"results_url": url} if isinstance(url, str) and url else {},
    )


def anthropic_item(text: str, ctx: WireContext, classify: Classifier) -> ItemResult | None:
    """One results line: ``succeeded`` is the message's events; ``errored`` the typed error of its
    ``error.error.type`` (as an HTTP error body of that type would be); ``expired`` a ``ProviderTimeout``;
    ``canceled`` a ``CallCancelled``."""
    read = read_line(text, ctx)
    if not isinstance(read, tuple):
        return read
    custom_id, line = read
    result = line.get("result")
    kind = result.get("type") if isinstance(result, Mapping) else None
    if not isinstance(result, Mapping) or not isinstance(kind, str):
        return ItemResult(custom_id, error=ctx.error(ProtocolError, f"a result line without a result: {text[:120]!r}"))
    if kind == "succeeded":
        return message_item(custom_id, result.get("message"), ctx)
    if kind == "errored":
        return ItemResult(custom_id, error=classify(error_info(result.get("error"), fallback="errored")))
    if kind == "expired":
        return ItemResult(custom_id, error=ctx.error(ProviderTimeout, EXPIRED_REQUEST, code="expired"))
    if kind == "canceled":
        return ItemResult(custom_id, error=ctx.error(CallCancelled, "canceled: the batch was cancelled before it ran",
                                                     code="canceled"))
    return ItemResult(custom_id, error=ctx.error(ProtocolError, f"unknown result type {kind!r}"))


def message_item(custom_id: str, message: Any, ctx: WireContext) -> ItemResult:
    """A whole ``Message`` as the events its live stream gives: the text blocks' text (not thinking or tool use),
    ``Usage`` as the stream counts it, ``Finished(stop_reason, model, id)``; a ``refusal`` stop is the
    ``BlockedError`` the live parser raises."""
    if not isinstance(message, Mapping):
        return ItemResult(custom_id, error=ctx.error(ProtocolError, "a succeeded result without a message"))
    usage = message.get("usage")
    counted: tuple[ProviderEvent, ...] = (message_usage(usage),) if isinstance(usage, Mapping) else ()
    reason = message.get("stop_reason")
    if reason == "refusal":
        return ItemResult(custom_id, counted, ctx.error(BlockedError, "the model refused to answer "
                                                                      "(stop_reason 'refusal')", code="refusal"))
    blocks = message.get("content")
    text = "".join(b["text"] for b in blocks if isinstance(b, Mapping) and b.get("type") == "text"
                   and isinstance(b.get("text"), str)) if isinstance(blocks, list) else ""
    model, mid = message.get("model"), message.get("id")
    finished = Finished(reason if isinstance(reason, str) and reason else None,
                        model if isinstance(model, str) else None, mid if isinstance(mid, str) else None)
    return ItemResult(custom_id, (TextDelta(text), *counted, finished))


__all__ = ["AnthropicBatch"]
