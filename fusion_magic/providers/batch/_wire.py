"""The wire work the batch modules share (``openai``, ``anthropic``, ``gemini``, ``openrouter``), kept here so that
no provider's module is the others' library: a request file streamed into an inline JSON body, a non-JSON body
sent and its JSON object read, a JSONL download read line by line, one malformed result line kept apart from the
rest, one chat completion turned into the events a live stream gives (OpenAI's result lines, which OpenRouter's
share, as are its status words), creation times read, and the lookup of a lost submit by its request count for
the providers that keep no label on a batch (Anthropic, OpenRouter).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ...core.errors import BlockedError, ProtocolError, ServerError
from ...core.state import State
from .._body import json_default
from .._http import (
    Classifier,
    WireContext,
    decode_json,
    error_info,
    raise_transport_error,
    response_error,
    send_json,
)
from ..base import Finished, ProviderEvent, TextDelta
from ..chat._sse import json_int
from ..chat.openai_compat import _usage as completion_usage
from .base import ItemResult

log = logging.getLogger("fusion_magic")

# The chat endpoint every line and the batch name (the only one we batch).
CHAT_ENDPOINT = "/v1/chat/completions"
# How many pages of batches find() reads at most (100 each): a lost submit is minutes old, not thousands of batches.
FIND_PAGES = 10
EXPIRED_REQUEST = "expired: the batch window ended before it ran"

# OpenAI's batch words, which OpenRouter's batches share.
STATES: dict[str, State] = {
    "validating": State.QUEUED,
    "in_progress": State.RUNNING,
    "finalizing": State.RUNNING,
    "cancelling": State.RUNNING,  # still working: a cancel is not the end until the provider says cancelled
    "completed": State.DONE,
    "failed": State.FAILED,
    "expired": State.FAILED,
    "cancelled": State.CANCELLED,
}


def batch_words(payload: Mapping[str, Any], ctx: WireContext) -> tuple[str, State, str]:
    """The ``status`` word, our state and the ``id`` of an OpenAI-shaped batch (OpenAI, OpenRouter). A word we do
    not know yet is taken as running: polling on is safe, calling it finished would lose the batch."""
    batch_id = payload.get("id")
    wire = payload.get("status")
    if not isinstance(batch_id, str) or not batch_id or not isinstance(wire, str):
        raise ctx.error(ProtocolError, f"not a batch object: {str(payload)[:120]!r}")
    state = STATES.get(wire)
    if state is None:
        log.warning("%s batch %s: unknown status %r, taken as running", ctx.provider, batch_id, wire)
        state = State.RUNNING
    return wire, state, batch_id


def compact(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (a request-file line, a piece of an inline body); an attachment in a chat
    body (``Base64Text``) as its whole string."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=json_default).encode()


def unstreamed(body: Mapping[str, Any], *drop: str) -> dict[str, Any]:
    """A live chat body for a batch: without ``stream``, ``stream_options`` and the keys in ``drop``."""
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options", *drop)}


def request_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of a request file, without their line ends, read as a stream."""
    with path.open("rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield line


def check_count(path: Path, count: int) -> int:
    """The bytes the lines of ``path`` hold (line ends not counted); ``ValueError`` when there are not ``count``
    of them: the runner's receipt and the provider's batch must agree (find() matches by count)."""
    lines = size = 0
    for line in request_lines(path):
        lines += 1
        size += len(line)
    if lines != count:
        raise ValueError(f"{path.name} holds {lines} requests, not the {count} the batch was planned with")
    return size


# A request file can be hundreds of MB: the body goes out in pieces of this size.
CHUNK = 1 << 16


def inline_body(head: bytes, path: Path, count: int, tail: bytes) -> tuple[AsyncIterator[bytes], dict[str, str]]:
    """A JSON body ``head + line,line,... + tail`` streamed from the request file (never held whole), and the
    headers that go with it. Its length is counted first and sent as ``Content-Length``: a server that parses the
    body as a stream (OpenRouter) gets no chunked encoding to undo."""
    size = check_count(path, count) + max(count - 1, 0) + len(head) + len(tail)

    async def chunks() -> AsyncIterator[bytes]:
        buffer = bytearray(head)
        for i, line in enumerate(request_lines(path)):
            if i:
                buffer += b","
            buffer += line
            if len(buffer) >= CHUNK:
                yield bytes(buffer)
                buffer.clear()
        buffer += tail
        yield bytes(buffer)

    return chunks(), {"Content-Type": "application/json", "Content-Length": str(size)}


async def get_object(client: httpx.AsyncClient, method: str, url: str, *, ctx: WireContext, classify: Classifier,
                     headers: Mapping[str, str], body: Mapping[str, Any] | None = None,
                     params: Mapping[str, str] | None = None, content: AsyncIterator[bytes] | bytes | None = None,
                     data: Mapping[str, str] | None = None,
                     files: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """``send_json`` whose answer must be a JSON object (a batch, a list page, an Operation); the request's body
    as ``send_json`` takes it (JSON, a streamed inline body, a multipart upload)."""
    payload, response = await send_json(client, method, url, ctx=ctx, classify=classify, headers=headers, body=body,
                                        params=params, content=content, data=data, files=files)
    if not isinstance(payload, Mapping):
        raise ctx.error(ProtocolError, f"expected a JSON object, got {str(payload)[:120]!r}",
                        status=response.status_code)
    return payload


async def jsonl(client: httpx.AsyncClient, url: str, *, ctx: WireContext, classify: Classifier,
                headers: Mapping[str, str]) -> AsyncIterator[str]:
    """The non-blank lines of a JSONL download, read as they arrive. A failed status is the typed error; a
    connection lost after lines arrived is a ``ProtocolError`` (the results were cut short)."""
    started = False
    try:
        async with client.stream("GET", url, headers=dict(headers), follow_redirects=False) as response:
            if not response.is_success:
                raw = await response.aread()
                raise response_error(response, raw.decode("utf-8", errors="replace"), classify)
            async for text in response.aiter_lines():
                if text.strip():
                    started = True
                    yield text
    except httpx.HTTPError as exc:
        raise_transport_error(exc, ctx, started_stream=started)


_READABLE_ID = re.compile(r'"(?:custom_id|key)"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


def read_line(text: str, ctx: WireContext) -> tuple[str, Mapping[str, Any]] | ItemResult | None:
    """One result line as ``(custom_id, object)``. A malformed line whose ``custom_id`` can still be read is that
    request's ``ProtocolError``; one without is skipped with a warning (the runner fails the requests it never
    heard of)."""
    payload = decode_json(text)
    custom_id = payload.get("custom_id") if isinstance(payload, Mapping) else None
    if isinstance(custom_id, str) and custom_id:
        assert isinstance(payload, Mapping)
        return custom_id, payload
    match = _READABLE_ID.search(text)
    if match:
        return ItemResult(match.group(1), error=ctx.error(ProtocolError, f"malformed result line: {text[:120]!r}"))
    log.warning("%s batch: a result line without a readable custom_id was skipped: %s", ctx.provider,
                ctx.scrub(text[:120]))
    return None


def response_item(custom_id: str, response: Any, ctx: WireContext, classify: Classifier,
                  request_id: str | None = None) -> ItemResult:
    """``{status_code, request_id, body}`` of an OpenAI-shaped result line (OpenAI, OpenRouter): the chat
    completion's events, or the error body classified as the live call's would be."""
    if not isinstance(response, Mapping):
        return ItemResult(custom_id, error=ctx.error(ProtocolError, "a result line with neither response nor error"))
    status = json_int(response.get("status_code"))
    body = response.get("body")
    rid = response.get("request_id") if isinstance(response.get("request_id"), str) else request_id
    if status is not None and not 200 <= status < 300:
        return ItemResult(custom_id, error=classify(error_info(body, status=status, fallback=f"HTTP {status}")))
    return completion_item(custom_id, body, ctx, classify, rid)


def completion_item(custom_id: str, body: Any, ctx: WireContext, classify: Classifier,
                    request_id: str | None = None) -> ItemResult:
    """A (non-streamed) ``chat.completion`` as the events its live stream gives: the whole text, ``Usage``
    (``openai_compat``'s own reading: cached tokens, OpenRouter's cost where present), ``Finished``. A
    ``content_filter`` or ``error`` finish is the error the live parser raises, with the usage it reported."""
    if not isinstance(body, Mapping):
        return ItemResult(custom_id, error=ctx.error(ProtocolError, f"a result without a body: {str(body)[:120]!r}"))
    if body.get("error"):
        return ItemResult(custom_id, error=classify(error_info(body)))
    usage = body.get("usage")
    counted: tuple[ProviderEvent, ...] = (completion_usage(usage),) if isinstance(usage, Mapping) else ()
    choices = body.get("choices")
    choice = next((c for c in choices if isinstance(c, Mapping) and c.get("index") in (0, None)), None) \
        if isinstance(choices, list) else None
    if choice is None:
        return ItemResult(custom_id, counted, ctx.error(ProtocolError, "a completion without choices"))
    if choice.get("error"):
        return ItemResult(custom_id, counted, classify(error_info({"error": choice["error"]})))
    reason = choice.get("finish_reason")
    if reason == "error":
        return ItemResult(custom_id, counted, ctx.error(ServerError, "the provider ended the answer with "
                                                                     "finish_reason 'error'", code="error"))
    if reason == "content_filter":
        return ItemResult(custom_id, counted, ctx.error(BlockedError, "the answer was stopped by the content filter",
                                                        code="content_filter"))
    message = choice.get("message")
    text = message_text(message.get("content") if isinstance(message, Mapping) else None)
    model = body.get("model")
    rid = request_id or (body["id"] if isinstance(body.get("id"), str) else None)
    finished = Finished(reason if isinstance(reason, str) and reason else None,
                        model if isinstance(model, str) and model else None, rid)
    return ItemResult(custom_id, (TextDelta(text), *counted, finished))


def message_text(content: Any) -> str:
    """A completion message's text: a string, or the text of its content parts (some OpenRouter upstreams)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, Mapping) and p.get("type") in ("text", None) and isinstance(p.get("text"), str))
    return ""


def timestamp(value: Any) -> float | None:
    """A creation time as unix seconds: a number, or an RFC 3339 string (Anthropic, Gemini)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


async def find_by_count(
    client: httpx.AsyncClient,
    url: str,
    *,
    ctx: WireContext,
    classify: Classifier,
    headers: Mapping[str, str],
    since: float,
    count: int | None,
    size: Callable[[Mapping[str, Any]], int | None],
    after_key: str,
    name: str,
    created_key: str = "created_at",
    pages: int = FIND_PAGES,
) -> Mapping[str, Any] | None:
    """The one batch of the list at ``url`` created at or after ``since`` and holding ``count`` requests (by
    ``size``; any size when ``count`` is None), for a provider that keeps no label on a batch: None when there is
    none or more than one (two would be a guess; that is logged as ``name``'s). The list comes newest first,
    ``limit=100`` a page, the next page asked with ``after_key`` = the page's ``last_id`` while ``has_more``;
    paging stops after ``pages`` pages or at the first page that reaches back before ``since``."""
    found: list[Mapping[str, Any]] = []
    params: dict[str, str] = {"limit": "100"}
    for _ in range(pages):
        page = await get_object(client, "GET", url, ctx=ctx, classify=classify, headers=headers, params=params)
        data = [b for b in page.get("data") or () if isinstance(b, Mapping)]
        for batch in data:
            created = timestamp(batch.get(created_key))
            if created is not None and created >= since and (count is None or size(batch) == count):
                found.append(batch)
        # Newest first: a page that reaches back before ``since`` is the last one worth reading.
        oldest = timestamp(data[-1].get(created_key)) if data else None
        last = page.get("last_id")
        if not page.get("has_more") or not isinstance(last, str) or (oldest is not None and oldest < since):
            break
        params = {"limit": "100", after_key: last}
    if len(found) != 1:
        if found:
            log.warning("%s: %d batches created since the lost submit could be it; none adopted", name, len(found))
        return None
    return found[0]
