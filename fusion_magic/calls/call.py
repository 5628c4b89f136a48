"""One call to one model, with the policy around it: retries, timeout, timing, pricing, events, cache.

``run_call`` never raises for a provider failure: the failure becomes the returned ``Response``'s
``status`` and ``error``, and whatever text arrived is kept. It re-raises only ``CancelledError``
(after recording the call as cancelled, or as done when its answer was complete and being written to the
cache), so cancellation still unwinds the caller.

    ctx = CallContext(client=client, settings=Settings())
    response = await run_call(prepare("openrouter:openai/gpt-4o", ctx.settings), request, ctx=ctx)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.errors import (
    CallCancelled,
    ConfigError,
    FusionError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    ReplayMissError,
)
from ..core.events import CallDelta, CallFinished, CallStarted, Listener, emit
from ..core.pricing import approx_tokens, price_record
from ..core.record import Response
from ..core.state import State, from_wire
from ..core.text import valid_text
from ..providers.base import ChatRequest, Endpoint, Finished, ProviderAnalysis, TextDelta, Usage
from ..providers.registry import ProviderSpec, check_model, make_provider, resolve_endpoint, split_model_id
from .cache import moved_endpoint
from .settings import Settings

if TYPE_CHECKING:
    import httpx

    from .batch import BatchRunner, Delivery
    from .cache import CallCache

# Backoff when the server gives no hint: 0.5 s, 1 s, 2 s ... capped, with +-25 % jitter so a pool
# that hit the same 429 does not retry in lockstep.
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0


@dataclass(frozen=True)
class Target:
    """A model id resolved to its provider and endpoint (key included, hidden from repr)."""

    model_id: str
    spec: ProviderSpec
    endpoint: Endpoint
    model: str

    @property
    def is_local(self) -> bool:
        return self.spec.protocol == "local"


def prepare(model_id: str, settings: Settings, *, require_key: bool = True) -> Target:
    """Resolve a model id now, so a bad id or a missing key fails before any call is made."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ConfigError("empty model id")
    spec, model = split_model_id(model_id, settings.endpoints)
    endpoint = resolve_endpoint(spec, settings.keys, require_key=require_key)
    _check_endpoint(spec, endpoint)
    # An estimate or a cache replay sends nothing, so it needs no key, no local model file, no llama.cpp.
    check_model(spec, model, will_run=require_key and settings.cache != "replay")
    return Target(model_id.strip(), spec, endpoint, model)


def _check_endpoint(spec: ProviderSpec, endpoint: Endpoint) -> None:
    """Catch a pasted key with a stray character or a mistyped base URL now, with one line, instead of
    as an encoding error deep inside the HTTP client (whose traceback would show the header)."""
    key = endpoint.api_key
    if key is not None and (not key.isascii() or not key.isprintable() or key != key.strip()):
        names = " or ".join(spec.key_envs) or f"the {spec.name} key"
        raise ConfigError(f"{names} contains spaces or invisible/non-ASCII characters: paste the key again")
    if not endpoint.base_url:
        return  # a provider that is not reached over HTTP (the local model) has no URL to check
    import httpx

    shown = _safe_url(endpoint.base_url)
    try:
        url = httpx.URL(endpoint.base_url)
        scheme, host = url.scheme, url.host  # the host decodes lazily: IDNA errors surface here
    except (httpx.InvalidURL, ValueError) as exc:  # IDNA errors are ValueErrors, not InvalidURL
        raise ConfigError(f"{spec.name} base URL {shown} is not a valid URL ({type(exc).__name__})") from None
    if scheme not in ("http", "https"):
        raise ConfigError(f"{spec.name} base URL {shown} must start with http:// or https://")
    if not host:
        raise ConfigError(f"{spec.name} base URL {shown} has no host name")


def _safe_url(url: str) -> str:
    """A base URL fit to print: without ``user:token@`` and without the query (``?key=``)."""
    head, sep, rest = url.partition("://")
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    host, slash, path = rest.partition("/")
    host = host.rsplit("@", 1)[-1]
    return repr(f"{head}{sep}{host}{slash}{path}")


@dataclass
class CallContext:
    """What every call of one run shares: the HTTP client (bound to the running loop), listeners,
    settings, the optional cache, and the counter that orders calls in the ledger."""

    client: httpx.AsyncClient | None
    settings: Settings
    listeners: list[Listener] = field(default_factory=list)
    cache: CallCache | None = None
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Late members still running after their round returned (quorum/deadline); owners drain or cancel.
    pending: set[asyncio.Task[Response]] = field(default_factory=set)
    # Batch mode (``calls.batch``): calls whose provider has a batch API go through it instead of live.
    batch: BatchRunner | None = None


async def run_call(
    target: Target,
    request: ChatRequest,
    *,
    ctx: CallContext,
    role: str = "member",
    label: str | None = None,
    round: int = 0,
    ordering: int = 0,
    timeout: float | None = None,
    response: Response | None = None,
) -> Response:
    """Run one call to completion and return its ``Response`` (ok or failed, never raising for failure).

    ``round`` is a debate round, ``ordering`` a judge's ordering of the answers (``--orders``). Pass
    ``response`` to fill a record the caller already announced (the pool shows queued tabs first). A
    replay-mode cache miss raises ``ReplayMissError``: that is the user's setup, not a model failing.
    """
    r = response or Response(model=target.model_id, role=role, label=label, round=round, ordering=ordering)
    r.call_id = r.call_id or next(ctx.counter)
    r.state = State.WAITING
    emit(ctx.listeners, CallStarted(r))
    started = time.monotonic()
    limit = timeout if timeout is not None else ctx.settings.timeout
    batched = ctx.batch is not None and ctx.batch.takes(target)
    tally = _Tally()
    delivery: Delivery | None = None
    cache = ctx.cache if ctx.cache is not None and ctx.cache.mode != "off" else None
    record = False
    # A cancel that came while the call's complete answer was being recorded: it goes on once the call is reported.
    cancelled: asyncio.CancelledError | None = None
    try:
        # A provider the environment moved (a local server behind OPENAI_BASE_URL) is keyed apart.
        moved = moved_endpoint(target.endpoint.base_url, target.spec.default_base_url) if cache is not None else None
        # A batch answers within the provider's window (hours), not the live call's timeout.
        async with asyncio.timeout(None if batched else limit):
            if cache is not None:
                recorded = cache.lookup(target.model_id, request, moved)
                if recorded is not None:
                    _replay(r, recorded, ctx, started)
                elif cache.mode == "replay":
                    raise ReplayMissError(
                        f"cache replay: no recording for {target.model_id} with this exact prompt "
                        f"(in {cache.root}); run once with cache 'on' to record it"
                    )
                else:
                    delivery = await _send(target, request, r, ctx, started, tally, limit)
                    _settle(r, request, tally)
                    record = r.ok
            else:
                delivery = await _send(target, request, r, ctx, started, tally, limit)
        if record and cache is not None:
            # Outside the timeout, as the answer is whole; on a worker thread, as a disk write on the loop holds up
            # every other call's stream. Done before the call returns, so a replay after the run finds it.
            try:
                await cache.store_off_loop(target.model_id, request, r, moved)
            except asyncio.CancelledError as exc:
                cancelled = exc
    except TimeoutError:
        _fail(r, ProviderTimeout(f"no complete answer within {limit:g}s", provider=target.spec.name,
                                 model=target.model))
    except ProviderError as exc:
        _fail(r, exc)
    except FusionError:
        raise  # the user's setup (a replay miss, the local model not installed): one line for the whole run
    except Exception as exc:  # a bug or an odd environment must fail this call only, not the pool
        message = target.endpoint.redact(f"unexpected {type(exc).__name__}: {exc}")
        _fail(r, ProtocolError(message, provider=target.spec.name, model=target.model))
    except asyncio.CancelledError:
        _fail(r, CallCancelled("stopped before it finished: the run was interrupted or cancelled",
                               provider=target.spec.name, model=target.model))
        _settle(r, request, tally)
        r.latency_s = time.monotonic() - started
        emit(ctx.listeners, CallFinished(r))
        raise
    _settle(r, request, tally)
    r.latency_s = time.monotonic() - started
    if r.state.is_running:  # replayed from the cache
        r.state = State.DONE
    price_record(r, ctx.settings.prices)  # the provider's own figure wins; local models are free
    if delivery is not None:
        from .batch import priced

        priced(r, delivery)
    emit(ctx.listeners, CallFinished(r))
    if cancelled is not None:
        raise cancelled
    return r


async def _send(target: Target, request: ChatRequest, r: Response, ctx: CallContext, started: float, tally: _Tally,
                limit: float) -> Delivery | None:
    """The call itself: live, or (batch mode, a provider with a batch API) through the batch, whose answer is
    applied as the live stream's events would be. A request the batch failed raises its reason, or with
    ``retry_live`` is asked again live (the record says so)."""
    batch = ctx.batch
    if batch is None:
        await _call_with_retries(target, request, r, ctx, started, tally)
        return None
    if not batch.takes(target):
        batch.count_live(target)
        async with batch.live_slot:
            await _call_with_retries(target, request, r, ctx, started, tally)
        return None
    r.state = State.QUEUED
    delivery = await batch.call(target, request)
    r.batch_id = delivery.batch_id
    if delivery.item.error is not None:
        from .batch import retry_live_helps

        if not batch.retry_live or not retry_live_helps(delivery.item.error):
            raise delivery.item.error
        batch.tally.retried_live += 1
        r.batch_id = None
        r.note = f"asked live: its batch failed it ({delivery.item.error})"
        async with batch.live_slot, asyncio.timeout(limit):
            await _call_with_retries(target, request, r, ctx, time.monotonic(), tally)
        return None
    r.attempts = 1
    for event in delivery.item.events:
        tally.chunks += isinstance(event, TextDelta)
        _apply(r, event, ctx, started)
    r.ttft_s = None  # the first token of a batch answer says nothing about the model's speed
    r.state = State.DONE
    return delivery


@dataclass
class _Tally:
    """Text chunks of the call's stream (retries happen only before the first one, so one attempt's)."""

    chunks: int = 0


def _settle(r: Response, request: ChatRequest, tally: _Tally) -> None:
    """The stream is over (finished, failed or cancelled): whatever text arrived is made valid once, now that it
    is complete (a surrogate pair split across chunks joined, a lone half U+FFFD), and usage the server did not
    report is counted."""
    r.text = valid_text(r.text)
    _count_missing_usage(r, request, tally)


def _count_missing_usage(r: Response, request: ChatRequest, tally: _Tally) -> None:
    """A call that produced text always has token figures: when the server streamed no usage (llama.cpp's
    and some other local servers ignore ``stream_options``), count them and say so."""
    if not r.text or (r.input_tokens is not None and r.output_tokens is not None):
        return
    r.tokens_source = "counted"
    if r.output_tokens is None:
        # Local servers send one token per chunk; a cloud API that batches would have reported usage.
        r.output_tokens = tally.chunks or approx_tokens(r.text)
    if r.input_tokens is None:
        r.input_tokens = approx_tokens("\n".join(m.text for m in request.messages))


def _fail(r: Response, exc: ProviderError) -> None:
    # The kind names the failure; a cancelled call is its own state, not a failure of the model.
    r.state, r.failure = from_wire(exc.kind)
    r.error, r.http_status = str(exc), exc.status


async def _call_with_retries(
    target: Target, request: ChatRequest, r: Response, ctx: CallContext, started: float, tally: _Tally
) -> None:
    provider = make_provider(target.spec, target.endpoint, ctx.client)
    waited = 0.0
    while True:
        r.attempts += 1
        got_event = False
        try:
            # aclosing: on cancel or timeout the generator closes now, and with it the HTTP connection.
            async with contextlib.aclosing(provider.stream(request)) as events:
                async for event in events:
                    got_event = True
                    tally.chunks += isinstance(event, TextDelta)
                    _apply(r, event, ctx, started)
            r.state = State.DONE
            return
        except ProviderError as exc:
            # Never retry once text arrived: the user already saw it, and a retry would bill twice.
            if got_event or not exc.retryable or r.attempts > ctx.settings.max_retries:
                raise
            delay = exc.retry_after
            if delay is None:
                delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (r.attempts - 1))
                delay *= random.uniform(0.75, 1.25)
            if waited + delay > ctx.settings.retry_max_wait:
                raise
            waited += delay
            await asyncio.sleep(delay)


def _apply(r: Response, event: TextDelta | Usage | Finished | ProviderAnalysis, ctx: CallContext,
           started: float) -> None:
    if isinstance(event, TextDelta):
        if r.ttft_s is None:
            r.ttft_s = time.monotonic() - started
        r.state = State.STREAMING
        r.text += event.text
        emit(ctx.listeners, CallDelta(r, event.text))
    elif isinstance(event, Usage):
        # Later usage events carry cumulative counts: each known field replaces the earlier one.
        if event.input_tokens is not None:
            r.input_tokens = event.input_tokens
        if event.output_tokens is not None:
            r.output_tokens = event.output_tokens
        if event.cached_input_tokens is not None:
            r.cached_input_tokens = event.cached_input_tokens
        if event.cache_write_input_tokens is not None:
            r.cache_write_input_tokens = event.cache_write_input_tokens
        if event.cost_usd is not None:
            r.cost_usd, r.cost_source = event.cost_usd, "provider"
    elif isinstance(event, Finished):
        r.finish_reason = event.reason
        r.served_model, r.request_id = event.served_model, event.request_id
    elif isinstance(event, ProviderAnalysis):
        r.provider_analysis = dict(event.data)  # OpenRouter's Fusion analysis, as sent


def _replay(r: Response, recorded: Response, ctx: CallContext, started: float) -> None:
    r.attempts = 0
    _apply(r, TextDelta(recorded.text), ctx, started)
    r.input_tokens, r.output_tokens = recorded.input_tokens, recorded.output_tokens
    r.cached_input_tokens = recorded.cached_input_tokens
    r.cache_write_input_tokens = recorded.cache_write_input_tokens
    r.finish_reason = recorded.finish_reason
    recorded_cost = "unknown" if recorded.cost_usd is None else f"${recorded.cost_usd:.6f}"
    r.cost_usd, r.cost_source = 0.0, f"cache (recorded cost {recorded_cost})"
    r.recorded_cost_usd = recorded.cost_usd
