"""One paid submit over HTTP: sent once, and an answer lost after the request left is ``SUBMIT_LOST``.

A refused connection (nothing reached the provider) is an ordinary transport error; a connection reset, a read
timeout or a success whose body is not JSON, once the request was sent, may hide a job the provider started and
bills: the caller keeps a "lost" receipt and never sends it again (videos/jobs.py).

    payload, response = await submit_json(client, url, ctx=ctx, classify=classify, headers=headers, body=body,
                                          timeout=_TIMEOUT, provider="Veo", where="https://aistudio.google.com")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ...core.errors import ProtocolError, ProviderTimeout, ServerError
from .._http import Classifier, WireContext, decode_json, raise_transport_error, response_error
from .base import SUBMIT_LOST

LOST = ("the submit was sent but its answer was lost ({detail}); {provider} may have started the job and bills it "
        "if so, but it can only be found by its id, which never arrived. It is not sent again: see {where} "
        "before running the cell again")
# Failures before any byte of the request could reach the provider: nothing was paid.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


async def submit_json(client: httpx.AsyncClient, url: str, *, ctx: WireContext,
                      classify: Classifier | None = None,
                      classify_response: Callable[[httpx.Response], Classifier] | None = None,
                      headers: Mapping[str, str], body: Mapping[str, Any], timeout: httpx.Timeout | float | None,
                      provider: str, where: str) -> tuple[Any, httpx.Response]:
    """POST ``body`` once; the decoded JSON and the response, the typed error of a refusal, or ``SUBMIT_LOST``.
    ``classify``: the classifier of an error answer, or ``classify_response`` a function of the response that makes
    one (fal reads its error type from a header)."""
    try:
        response = await client.request("POST", url, json=dict(body), headers=dict(headers), follow_redirects=False,
                                        timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
    except NOT_SENT as exc:
        raise_transport_error(exc, ctx, started_stream=False)
    except httpx.HTTPError as exc:
        cls = ProviderTimeout if isinstance(exc, httpx.TimeoutException) else ServerError
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ctx.error(cls, LOST.format(detail=detail, provider=provider, where=where), retryable=False,
                        code=SUBMIT_LOST) from None
    text = response.text
    if not response.is_success:
        chosen = classify_response(response) if classify_response is not None else classify
        assert chosen is not None, "submit_json needs classify or classify_response"
        raise response_error(response, text, chosen)
    payload = decode_json(text)
    if payload is None:
        detail = f"HTTP {response.status_code} with a body that is not JSON: {text[:80]!r}"
        raise ctx.error(ProtocolError, LOST.format(detail=detail, provider=provider, where=where),
                        status=response.status_code, retryable=False, code=SUBMIT_LOST)
    return payload, response


__all__ = ["LOST", "NOT_SENT", "submit_json"]
