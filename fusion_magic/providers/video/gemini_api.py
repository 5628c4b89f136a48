"""What the Gemini video protocols (Veo, Omni, the Files API) share: the key header, and the model list
(``GET /v1beta/models``, every page), where Veo and Omni find their video models at run time because ids drift
(shared/reference/video-apis.md §1).

    names = await list_models(client, base, headers, ctx, keep=lambda name, methods: "predictLongRunning" in methods)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import httpx

from ...core.errors import ProtocolError
from .._http import WireContext, send_json
from ..chat.gemini import classifier
from ..gemini_files import KEY_HEADER, api_headers

PAGE_SIZE = "1000"
# A guard against a server that keeps handing out tokens; no real key sees anywhere near 50 000 models.
MAX_PAGES = 50
TIMEOUT = httpx.Timeout(60.0, connect=15.0)


async def list_models(client: httpx.AsyncClient, base: str, headers: Mapping[str, str], ctx: WireContext, *,
                      keep: Callable[[str, Collection[str]], bool]) -> list[str]:
    """Model names (without ``models/``) that ``keep(name, supportedGenerationMethods)`` accepts, in the
    server's order, each once. ``base`` is the Gemini origin (``GEMINI_BASE_URL``)."""
    url = f"{base.rstrip('/')}/v1beta/models"
    found: list[str] = []
    token = ""
    for _page in range(MAX_PAGES):
        params = {"pageSize": PAGE_SIZE, **({"pageToken": token} if token else {})}
        payload, _ = await send_json(client, "GET", url, ctx=ctx, classify=classifier(ctx), headers=headers,
                                     params=params, timeout=TIMEOUT)
        if not isinstance(payload, Mapping):
            raise ctx.error(ProtocolError, "the model list is not a JSON object")
        for model in payload.get("models") or ():
            if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
                continue
            name = model["name"].removeprefix("models/")
            methods = model.get("supportedGenerationMethods") or ()
            if keep(name, methods) and name not in found:
                found.append(name)
        next_token = payload.get("nextPageToken")
        if not isinstance(next_token, str) or not next_token or next_token == token:
            return found
        token = next_token
    return found


__all__ = ["KEY_HEADER", "api_headers", "list_models"]
