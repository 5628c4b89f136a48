"""Gemini's Files API for files too large to send inline (a video to ask about, a chat attachment past the 20 MB
inline limit): a resumable upload, a wait until the file is ``ACTIVE``, and a delete
(shared/reference/video-apis.md §4.1). Both the chat and the video protocols use it, so it sits above both.

The upload is two steps. A ``start`` request to ``{base}/upload/v1beta/files`` (with the key) announces the
size and type and answers with a session URL in ``x-goog-upload-url``; the bytes then go to that URL in
chunks, each saying its offset, the last one ``upload, finalize``, whose answer carries the File. The file is
read from disk one chunk at a time, so a 2 GB video never sits in memory (an attachment, already in memory, is
sent from its bytes).

    file = await upload_file(client, endpoint, Path("talk.mp4"), "video/mp4", ctx=ctx, classify=classify)
    file = await wait_active(client, endpoint, file["name"], ctx=ctx, classify=classify)
    part = {"file_data": {"mime_type": file["mimeType"], "file_uri": file["uri"]}}
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from ..core.errors import BadRequestError, ConfigError, ProtocolError, ProviderError, ProviderTimeout
from ._body import Pieces
from ._http import Classifier, WireContext, raise_transport_error, response_error, same_origin, send_json
from .base import Endpoint

KEY_HEADER = "x-goog-api-key"

# The SDK's chunk (python-genai ``_api_client.CHUNK_SIZE``): few requests, bounded memory.
CHUNK_BYTES = 8 << 20
# Like the SDK, a chunk answered without ``x-goog-upload-status`` is sent again, at most this many times in
# all, after 1 s, 2 s, ... (``MAX_RETRY_COUNT``, ``INITIAL_RETRY_DELAY``, ``DELAY_MULTIPLIER``).
CHUNK_ATTEMPTS = 3
CHUNK_RETRY_DELAY_S = 1.0
# Connecting is quick; writing 8 MiB on a slow uplink, or the server hashing the file at finalize, is not.
UPLOAD_TIMEOUT = httpx.Timeout(30.0, write=300.0, read=300.0)
# A chunk that failed with one of these, and no upload status, is worth sending again.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def api_headers(endpoint: Endpoint) -> dict[str, str]:
    """The headers of a request to the API host: the endpoint's own, then the key (never ``?key=``: URLs end up
    in logs)."""
    headers = dict(endpoint.headers)
    if endpoint.api_key:
        headers[KEY_HEADER] = endpoint.api_key
    return headers


def session_headers(endpoint: Endpoint, session_url: str) -> dict[str, str]:
    """The headers that may go to an upload session URL: the API host's (key included) only when the session
    is on the base URL's own origin, else none.

    The real session URL is on the API host (``…/upload/v1beta/files?upload_id=…``) and its ``upload_id`` is
    the capability: the SDK sends no key to it at all. The URL is whatever the server put in a header, so a
    proxy or a misconfigured base URL could name another host; the key must never follow it there.
    """
    return api_headers(endpoint) if same_origin(session_url, endpoint.base_url) else {}


def _files_url(endpoint: Endpoint, name: str, ctx: WireContext) -> str:
    """``{base}/v1beta/files/{id}`` for a File name the server gave us (``files/abc123``)."""
    file_id = name.removeprefix("files/")
    if not name.startswith("files/") or not file_id or "/" in file_id or file_id in (".", ".."):
        raise ctx.error(ProtocolError, f"unexpected file name from the Files API: {name[:80]!r}")
    return f"{endpoint.base_url.rstrip('/')}/v1beta/files/{quote(file_id, safe='')}"


def _file_of(payload: Any, ctx: WireContext, what: str) -> dict[str, Any]:
    """The File object of an answer (``{"file": {...}}`` from an upload, the File itself from a GET)."""
    file = payload.get("file", payload) if isinstance(payload, Mapping) else None
    if not isinstance(file, Mapping) or not isinstance(file.get("name"), str):
        raise ctx.error(ProtocolError, f"{what}: no file in the answer: {str(payload)[:120]!r}")
    return dict(file)


async def upload_file(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    path: Path | bytes,
    mime: str,
    *,
    ctx: WireContext,
    classify: Classifier,
    chunk: int = CHUNK_BYTES,
    retry_delay: float = CHUNK_RETRY_DELAY_S,
    name: str | None = None,
) -> dict[str, Any]:
    """Upload ``path`` (a file, or bytes named ``name``) through a resumable session and return the File
    (``state`` is usually ``PROCESSING``: pass its ``name`` to ``wait_active``). ``ConfigError`` when the file
    cannot be read. Bytes are sent from views of themselves, never copied a chunk at a time."""
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    handle: BinaryIO
    memory: memoryview | None = None
    if isinstance(path, bytes):
        size, handle, shown = len(path), io.BytesIO(), name or "attachment"
        memory = memoryview(path)
    else:
        try:
            size = path.stat().st_size
            handle = path.open("rb")
        except OSError as exc:
            raise ConfigError(f"cannot read the video {str(path)!r}: {exc.strerror or exc}") from None
        shown = name or path.name
    with handle:
        session = await _start(client, endpoint, shown, size, mime, ctx=ctx, classify=classify)
        headers = session_headers(endpoint, session)
        offset = 0
        while True:
            want = min(chunk, size - offset)
            data = memory[offset:offset + want] if memory is not None else await asyncio.to_thread(handle.read, want)
            if len(data) < want:
                raise ConfigError(f"the file {shown!r} shrank while it was being uploaded")
            last = offset + len(data) >= size
            response = await _send_chunk(client, session, data, offset, last, headers, ctx=ctx,
                                         classify=classify, retry_delay=retry_delay)
            offset += len(data)
            status = response.headers.get("x-goog-upload-status", "").lower()
            if status == "final":
                return _file_of(_json(response, ctx), ctx, "upload")
            if last:
                raise ctx.error(ProtocolError, f"upload of {size} bytes not finalized (status {status!r})")
            if status != "active":
                raise ctx.error(ProtocolError, f"upload interrupted at byte {offset} (status {status!r})")


async def _start(client: httpx.AsyncClient, endpoint: Endpoint, name: str, size: int, mime: str, *,
                 ctx: WireContext, classify: Classifier) -> str:
    """Open the session; returns its URL."""
    headers = {
        **api_headers(endpoint),
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size),
        "X-Goog-Upload-Header-Content-Type": mime,
    }
    url = f"{endpoint.base_url.rstrip('/')}/upload/v1beta/files"
    _, response = await send_json(client, "POST", url, ctx=ctx, classify=classify, headers=headers,
                                  body={"file": {"display_name": name}})
    session = response.headers.get("x-goog-upload-url")  # httpx looks headers up case-insensitively
    if not session:
        raise ctx.error(ProtocolError, "the Files API answered the upload start without x-goog-upload-url")
    try:
        scheme = httpx.URL(session).scheme
    except (httpx.InvalidURL, ValueError):
        scheme = ""
    if scheme not in ("http", "https"):
        raise ctx.error(ProtocolError, "the Files API gave an upload session URL that is not http(s)")
    return session


async def _send_chunk(
    client: httpx.AsyncClient,
    session: str,
    data: bytes | memoryview,
    offset: int,
    last: bool,
    headers: Mapping[str, str],
    *,
    ctx: WireContext,
    classify: Classifier,
    retry_delay: float,
) -> httpx.Response:
    """POST one chunk; like the SDK, again (up to ``CHUNK_ATTEMPTS`` in all) while the answer has no
    upload status, unless it is a plain client error (a bad offset is not cured by sending it again). The chunk
    goes out in small pieces (``Pieces``): the socket's send buffer never takes a copy of all of it."""
    body = Pieces(data)
    send = {**headers, "X-Goog-Upload-Command": "upload, finalize" if last else "upload",
            "X-Goog-Upload-Offset": str(offset), **body.headers}
    for attempt in range(CHUNK_ATTEMPTS):
        try:
            response = await client.request("POST", session, content=body, headers=send,
                                            follow_redirects=False, timeout=UPLOAD_TIMEOUT)
        except httpx.HTTPError as exc:
            raise_transport_error(exc, ctx, started_stream=False)
        has_status = bool(response.headers.get("x-goog-upload-status"))
        if has_status and response.is_success:
            return response
        if has_status or attempt == CHUNK_ATTEMPTS - 1 or (
                not response.is_success and response.status_code not in _RETRY_STATUSES):
            break
        await asyncio.sleep(retry_delay * 2 ** attempt)
    if response.is_success:
        raise ctx.error(ProtocolError, f"upload chunk at byte {offset} answered without x-goog-upload-status")
    raise _error(response, classify)


def _json(response: httpx.Response, ctx: WireContext) -> Any:
    try:
        return json.loads(response.text)
    except ValueError:
        raise ctx.error(ProtocolError, f"expected JSON, got {response.text[:120]!r}",
                        status=response.status_code) from None


def _error(response: httpx.Response, classify: Classifier) -> ProviderError:
    return response_error(response, response.text, classify)


async def get_file(client: httpx.AsyncClient, endpoint: Endpoint, name: str, *, ctx: WireContext,
                   classify: Classifier) -> dict[str, Any]:
    """The File called ``name`` (``files/abc123``) as it is now."""
    payload, _ = await send_json(client, "GET", _files_url(endpoint, name, ctx), ctx=ctx, classify=classify,
                                 headers=api_headers(endpoint))
    return _file_of(payload, ctx, "file status")


async def wait_active(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    name: str,
    *,
    ctx: WireContext,
    classify: Classifier,
    interval: float = 2.0,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Poll the File every ``interval`` seconds until it is ``ACTIVE`` and return it.

    ``FAILED`` is a ``BadRequestError`` with the file's own error message (the video cannot be read; sending
    it again will not help); still processing after ``timeout`` seconds is a ``ProviderTimeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        file = await get_file(client, endpoint, name, ctx=ctx, classify=classify)
        state = file.get("state")
        if state == "ACTIVE":
            return file
        if state == "FAILED":
            error = file.get("error")
            message = error.get("message") if isinstance(error, Mapping) else None
            raise ctx.error(BadRequestError, f"the Files API could not process the video ({name}): "
                            f"{message or 'no reason given'}", code="FAILED")
        left = deadline - time.monotonic()
        if left <= 0:
            raise ctx.error(ProviderTimeout, f"the uploaded video ({name}) was still {state or 'PROCESSING'} "
                            f"after {timeout:g}s", retryable=False)
        await asyncio.sleep(min(interval, left))  # a cancelled call stops here at once


async def delete_file(client: httpx.AsyncClient, endpoint: Endpoint, name: str, *, ctx: WireContext,
                      classify: Classifier, timeout: float = 10.0) -> None:
    """Delete the File called ``name`` (the API would drop it after 48 hours anyway)."""
    await send_json(client, "DELETE", _files_url(endpoint, name, ctx), ctx=ctx, classify=classify,
                    headers=api_headers(endpoint), timeout=timeout)


__all__ = [
    "CHUNK_BYTES",
    "api_headers",
    "delete_file",
    "get_file",
    "session_headers",
    "upload_file",
    "wait_active",
]
