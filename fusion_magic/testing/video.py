"""What the emulated video families share on the wire: the storage host a download is redirected to, and
how a clip is streamed.

A "redirect" delivery answers the key-bearing URI with a 302 to ``/storage/`` on a *different host name*
(``localhost`` instead of ``127.0.0.1``), and the storage route refuses any request that carries a key, so
a client that forwards the key across the redirect fails loudly. Scripts and jobs: ``video_script.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

from ._exchange import ClientGone, ConnectionCut
from ._wire import dumps
from .registry import Family, Request, Route
from .script import Fault

STORAGE_PREFIX = "/storage/"
# Headers and query parameters that carry a key in any family; none may reach the storage host.
_KEY_HEADERS = ("x-goog-api-key", "authorization", "x-api-key")
_KEY_QUERY = ("key",)


def storage_url(req: Request, name: str) -> str:
    """The URL of a stored blob on the *other* host name: ``localhost`` when the request came to
    ``127.0.0.1`` (and the reverse), so httpx sees a cross-origin redirect."""
    host = req.headers.get("host", "emulator.test")
    name_part, _, port = host.partition(":")
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(name_part, "storage." + name_part)
    return f"http://{other}{':' + port if port else ''}{STORAGE_PREFIX}{name}"


def api_origin(req: Request) -> str:
    """``http://host:port`` as the client reached us (for URIs handed back in JSON)."""
    return "http://" + req.headers.get("host", "emulator.test")


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


async def send_blob(req: Request, data: bytes, *, content_type: str = "video/mp4", chunk: int = 1 << 20,
                    name: str | None = None) -> None:
    """Stream ``data`` with a Content-Length, in chunks (a 200 MB clip is never one write).

    ``name``: the stored clip's name, which brings its job's download faults (``VideoScript.download_faults``)
    and ``Range`` support (``bytes=N-`` and ``bytes=N-M``, answered 206 with ``Content-Range``; on by default,
    off with ``VideoScript(ranges=False)``)."""
    ex = req.exchange
    script, fault = req.video.download(name) if name is not None else (None, None)
    if fault is not None:
        req.record.fault = f"download {fault.kind}"
    if fault is not None and fault.kind == "status":
        await req.json(fault.status, {"error": {"code": fault.status, "message": "no such object"}})
        return
    status, headers, body = 200, [("content-type", content_type)], data
    if script is None or script.ranges:
        headers.append(("accept-ranges", "bytes"))
        asked = _RANGE.fullmatch(req.headers.get("range", "").strip())
        if asked is not None:
            first = int(asked.group(1))
            last = min(int(asked.group(2)), len(data) - 1) if asked.group(2) else len(data) - 1
            if first >= len(data) or last < first:
                await ex.start(416, [("content-range", f"bytes */{len(data)}"), ("content-length", "0")])
                await ex.finish()
                return
            status, body = 206, data[first:last + 1]
            headers.append(("content-range", f"bytes {first}-{last}/{len(data)}"))
    await ex.start(status, [*headers, ("content-length", str(len(body)))])
    view = memoryview(body)
    if fault is not None and fault.kind == "reset":
        await ex.write(bytes(view[:len(body) // 2]))
        raise ConnectionCut("emulator reset the download halfway")
    if fault is not None and fault.kind == "drip":
        await ex.write(bytes(view[:1024]))
        try:
            for at in range(1024, len(body)):
                if not await ex.pause(fault.drip_s):
                    return
                await ex.write(bytes(view[at:at + 1]))
        except ClientGone:
            return
        await ex.finish()
        return
    for start in range(0, len(body), chunk):
        await ex.write(bytes(view[start:start + chunk]))
    await ex.finish()


async def answer_accepted(req: Request, fault: Fault | None, answer: Any, *, status: int = 200) -> None:
    """Answer a submit the provider accepted (and will bill): ``answer`` with ``status``, or, with a scripted
    ``fault``, its "cut", "hang" or "malformed": the answer is lost, not the job. "cut" sends its first bytes
    and drops the connection; "hang" never answers; "malformed" answers ``status`` with a body that is not JSON."""
    if fault is None:
        await req.json(status, answer)
        return
    req.record.fault = fault.kind
    if fault.kind == "hang":
        await req.exchange.gone.wait()
        return
    data = dumps(answer).encode()
    if fault.kind == "malformed":
        data = data[:len(data) // 2]
        await req.exchange.start(status, [("content-type", "application/json"), ("content-length", str(len(data)))])
        await req.exchange.finish(data)
        return
    await req.exchange.start(status, [("content-type", "application/json"), ("content-length", str(len(data)))])
    await req.exchange.write(data[:10])
    raise ConnectionCut("emulator cut the submit's answer")


# The submit faults that come after the job was accepted (``answer_accepted``).
AFTER_ACCEPT = ("cut", "hang", "malformed")


class Storage(Family):
    """``GET /storage/{name}``: the storage host downloads are redirected to. It needs no key, and it
    answers 400 to any request that carries one, so a leaked key fails the test that leaked it."""

    name = "storage"
    secret_headers: ClassVar[frozenset[str]] = frozenset(_KEY_HEADERS)
    secret_query: ClassVar[frozenset[str]] = frozenset(_KEY_QUERY)

    def routes(self) -> Sequence[Route]:
        return [Route("GET", STORAGE_PREFIX + "{name}", self.get, auth=False)]

    async def get(self, req: Request) -> None:
        leaked = [h for h in _KEY_HEADERS if h in req.headers] + [q for q in _KEY_QUERY if q in req.query]
        if leaked:
            await req.json(400, {"error": {"code": 400, "message": f"storage host received a key ({leaked[0]})"}})
            return
        data = req.video.blob(req.params["name"])
        if data is None:
            await req.json(404, {"error": {"code": 404, "message": "no such object"}})
            return
        await send_blob(req, data, name=req.params["name"])


def error_body(status: int, message: str) -> str:
    return dumps({"error": {"code": status, "message": message}})


__all__ = [
    "AFTER_ACCEPT",
    "STORAGE_PREFIX",
    "Storage",
    "answer_accepted",
    "api_origin",
    "error_body",
    "send_blob",
    "storage_url",
]
