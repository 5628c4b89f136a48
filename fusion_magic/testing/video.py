"""What the emulated video families share on the wire: the storage host a download is redirected to, and
how a clip is streamed.

A "redirect" delivery answers the key-bearing URI with a 302 to ``/storage/`` on a *different host name*
(``localhost`` instead of ``127.0.0.1``), and the storage route refuses any request that carries a key, so
a client that forwards the key across the redirect fails loudly. Scripts and jobs: ``video_script.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ._wire import dumps
from .registry import Family, Request, Route

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


async def send_blob(req: Request, data: bytes, *, content_type: str = "video/mp4", chunk: int = 1 << 20) -> None:
    """Stream ``data`` with a Content-Length, in chunks (a 200 MB clip is never one write)."""
    ex = req.exchange
    await ex.start(200, [("content-type", content_type), ("content-length", str(len(data)))])
    view = memoryview(data)
    for start in range(0, len(data), chunk):
        await ex.write(bytes(view[start:start + chunk]))
    await ex.finish()


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
        await send_blob(req, data)


def error_body(status: int, message: str) -> str:
    return dumps({"error": {"code": status, "message": message}})


__all__ = ["STORAGE_PREFIX", "Storage", "api_origin", "error_body", "send_blob", "storage_url"]
