"""OpenRouter's batches (shared/reference/batch-apis.md §4): the requests inline in one ``POST /batches`` (202), poll
the batch, read the ``results`` a terminal batch carries inline.

    api = OpenRouterBatch(endpoint, client)             # endpoint.base_url: https://openrouter.ai/api/v1
    status = await api.submit("anthropic/claude-sonnet-4.6", Path("wave1.jsonl"), 200, tag="fm-3f2a")
    status = await api.poll(status)                     # cost_usd: the whole batch's usage.cost
    async for item in api.results(status): ...

What bites: the server parses the body as a stream, so ``endpoint`` and ``model`` go before ``requests``; a 202 is
not validity (a bad request fails the whole batch later, with ``error.message``); only the batch reports a cost
(each result's usage has tokens, no cost); batches carry no label, so ``find`` recognises a lost submit only as
the one batch created since then with the same number of requests; there is no cancel endpoint.

A poll or list answered 429 raises the typed ``RateLimitError`` with the server's ``retry_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ...core.errors import ProviderTimeout
from .._http import Classifier, WireContext, error_info
from ..base import ChatRequest
from ..chat._sse import json_int
from ..chat.openai_compat import OpenAICompatProvider, classifier
from ._wire import (
    CHAT_ENDPOINT,
    EXPIRED_REQUEST,
    batch_words,
    compact,
    find_by_count,
    get_object,
    inline_body,
    log,
    response_item,
    unstreamed,
)
from .base import BatchAPI, BatchStatus, ItemResult


class OpenRouterBatch(BatchAPI):
    """OpenRouter's batches over the chat protocol's endpoint and key (``OpenAICompatProvider``, OpenRouter flavor)."""

    name: ClassVar[str] = "openrouter"
    chat_class = OpenAICompatProvider
    # Our own limits, well below OpenAI's: OpenRouter publishes none and holds each batch in one inline body.
    max_requests: ClassVar[int] = 10_000
    max_bytes: ClassVar[int] = 100_000_000
    price_source: ClassVar[str] = ("OpenRouter batches: typically 50% of the per-token price; the batch's own "
                                   "usage.cost is the charge (openrouter.ai/docs/guides/features/batch-api)")


    @property
    def batches(self) -> str:
        return f"{self.endpoint.base_url.rstrip('/')}/batches"

    def line(self, custom_id: str, request: ChatRequest) -> bytes:
        """``{"custom_id", "body"}``: the chat body the live call sends, without ``stream`` and without ``model``
        (the batch names its one model; one inside a body must match it, so none is safest)."""
        return compact({"custom_id": custom_id, "body": unstreamed(self.chat.body(request), "model")})

    async def submit(self, model: str, lines: Path, count: int, tag: str) -> BatchStatus:
        """``POST /batches`` with ``endpoint``, ``model`` and ``completion_window`` serialised before ``requests``
        (the lines streamed in). ``tag`` is not sent: OpenRouter keeps no label (``find`` matches by count)."""
        ctx = self.ctx(model)
        head = (b'{"endpoint":' + compact(CHAT_ENDPOINT) + b',"model":' + compact(model)
                + b',"completion_window":"24h","requests":[')
        content, headers = inline_body(head, lines, count, b"]}")
        payload = await get_object(self.client, "POST", self.batches, ctx=ctx, classify=classifier(ctx),
                                  headers={**self.chat.headers(), **headers}, content=content)
        return openrouter_status(payload, ctx, model=model)

    async def poll(self, status: BatchStatus) -> BatchStatus:
        ctx = self.ctx(status.handle.get("model", ""))
        payload = await get_object(self.client, "GET", f"{self.batches}/{status.id}", ctx=ctx,
                                   classify=classifier(ctx), headers=self.chat.headers())
        return openrouter_status(payload, ctx, model=ctx.model)

    async def results(self, status: BatchStatus) -> AsyncIterator[ItemResult]:
        """The ``results`` of a terminal batch, from the status (or one more poll when the status in hand has
        none: the list ``find`` reads carries no results)."""
        results = status.handle.get("results")
        if results is None and status.finished:
            status = await self.poll(status)
            results = status.handle.get("results")
        ctx = self.ctx(status.handle.get("model", ""))
        classify = classifier(ctx)
        for entry in results or ():
            item = openrouter_item(entry, ctx, classify)
            if item is not None:
                yield item

    async def find(self, tag: str, since: float, count: int | None = None) -> BatchStatus | None:
        """The one batch created at or after ``since`` (holding ``count`` requests when given); None when there is
        none or more than one (OpenRouter keeps no label, so two would be a guess). ``tag`` cannot be matched."""
        ctx = self.ctx()
        batch = await find_by_count(self.client, self.batches, ctx=ctx, classify=classifier(ctx),
                                    headers=self.chat.headers(), since=since, count=count, size=total,
                                    after_key="after", name=self.name)
        return openrouter_status(batch, ctx, model=str(batch.get("model") or "")) if batch is not None else None


def total(batch: Mapping[str, Any]) -> int | None:
    """How many requests a batch holds: its ``request_counts.total`` (None when it names none)."""
    counts = batch.get("request_counts")
    return json_int(counts.get("total")) if isinstance(counts, Mapping) else None


def openrouter_status(payload: Mapping[str, Any], ctx: WireContext, *, model: str = "") -> BatchStatus:
    """A ``BatchObject`` as our ``BatchStatus``: OpenAI's status words, the whole batch's ``usage.cost`` in
    ``cost_usd``, ``error.message`` of a failed batch, the inline ``results`` in ``handle``."""
    wire, state, batch_id = batch_words(payload, ctx)
    counts = payload.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    usage = payload.get("usage")
    cost = usage.get("cost") if isinstance(usage, Mapping) else None
    failure = error = None
    if wire == "failed":
        failure, error = "failed", batch_error(payload.get("error")) or "the batch failed"
    elif wire == "expired":
        failure, error = "expired", "the batch window ended before every request ran"
    served = payload.get("model")
    handle: dict[str, Any] = {"model": served if isinstance(served, str) and served else model}
    if isinstance(payload.get("results"), list):
        handle["results"] = payload["results"]
    return BatchStatus(
        id=batch_id, wire=wire, state=state, total=json_int(counts.get("total")),
        completed=json_int(counts.get("completed")), failed=json_int(counts.get("failed")),
        failure=failure, error=error and ctx.scrub(error),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        handle=handle,
    )


def batch_error(error: Any) -> str | None:
    """A failed batch's ``error``: its message (an object), or the text itself."""
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    return error if isinstance(error, str) and error else None


def openrouter_item(entry: Any, ctx: WireContext, classify: Classifier) -> ItemResult | None:
    """One inline result: ``response`` as an OpenAI-shaped result (tokens, no cost), or ``error`` classified by its
    ``error_type`` as the live call's error of that type would be (``rate_limit_exceeded`` a rate limit,
    ``provider_overloaded``/``provider_unavailable``/``server`` a server error, ``invalid_request`` a bad request,
    ``timeout`` a timeout)."""
    custom_id = entry.get("custom_id") if isinstance(entry, Mapping) else None
    if not isinstance(custom_id, str) or not custom_id:
        log.warning("openrouter batch: a result without a custom_id was skipped: %s", ctx.scrub(str(entry)[:120]))
        return None
    assert isinstance(entry, Mapping)
    error = entry.get("error")
    if isinstance(error, Mapping) and error:
        error_type = error.get("error_type")
        if error_type in ("expired", "batch_expired"):
            return ItemResult(custom_id, error=ctx.error(ProviderTimeout, EXPIRED_REQUEST, code=str(error_type)))
        # The classifier reads OpenRouter's canonical type where it reads it on live errors (metadata.error_type).
        inner = {**error, "metadata": {**(error.get("metadata") or {}), "error_type": error_type}} \
            if isinstance(error_type, str) else error
        return ItemResult(custom_id, error=classify(error_info({"error": inner}, fallback="failed")))
    if isinstance(error, str) and error:
        return ItemResult(custom_id, error=classify(error_info({"error": error})))
    rid = entry.get("id") if isinstance(entry.get("id"), str) else None
    return response_item(custom_id, entry.get("response"), ctx, classify, rid)


__all__ = ["OpenRouterBatch"]
