"""Calls that go to the providers' batch APIs instead of live: collected wave by wave, submitted per provider
and model, polled politely, and answered by request id, never by position.

A run in batch mode (``evaluate(..., batch=True)``) gives its ``CallContext`` a ``BatchRunner``. ``run_call``
then hands every call whose provider has a batch API (OpenAI, Anthropic, Gemini, OpenRouter:
``providers.batch``) to the runner instead of streaming it, and runs the others (the local model, Ollama,
vLLM, custom endpoints) live beside them, at most ``live_limit`` at a time. Everything above the call (the
strategies, the judges, the vote, the scoring) is the live code, unchanged: a batch run sends the same requests
and reads the same answers, so its accuracies are the live run's.

Waves form by themselves. The runner submits what has arrived once no new call has come for ``settle_s``; the
calls that need those answers (a judge needs its members, a debate round the round before) arrive only when
they are answered, and make the next wave.

Nothing paid is lost or paid twice. Each request's id (``custom_id``) is derived from what it asks (model,
endpoint, request; the n-th identical request of the run gets ``n``), so a new process asks for the same ids.
A receipt is written to the run log before a batch is sent and when it is accepted (``receipts``); a runner
started for the same evaluation reads them, re-attaches to those batches and submits only calls no receipt
holds. A submit whose answer is lost is looked up at the provider (``BatchAPI.find``) before anything is sent
again; one the provider does not list is reported lost, and its calls fail rather than risk a second bill.

    runner = BatchRunner(client, Receipts(log, evaluation_key), policy=PollPolicy(first_s=5.0))
    ctx = CallContext(client=client, settings=settings, batch=runner)
    ...   # run_call(target, request, ctx=ctx) now goes through the batch where it can
    await runner.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ..core.errors import CallCancelled, FusionError, ProtocolError, ProviderError, ProviderTimeout
from ..core.events import EngineEvent, Listener, emit
from ..core.state import State
from ..providers.base import ChatRequest, Usage
from ..providers.batch import batch_api_for
from ..providers.batch.base import BatchAPI, BatchStatus, ItemResult
from .cache import request_key
from .receipts import LOST, SUBMITTING, Receipt, Receipts

if TYPE_CHECKING:
    from ..core.record import CallRecord
    from .call import Target

log = logging.getLogger("fusion_magic")


@dataclass(frozen=True)
class PollPolicy:
    """How politely batches are watched: the first poll after ``first_s``, each next one ``factor`` later, at
    most ``max_s`` apart (a 429's ``Retry-After`` wins); a wave is submitted once no call arrived for
    ``settle_s``. ``submit_retries``: how often a submit the provider refused for now (429), or that never left
    (the connection failed), is tried again; one that may have reached it is looked up, never sent again."""

    first_s: float = 5.0
    factor: float = 1.5
    max_s: float = 60.0
    settle_s: float = 0.5
    submit_retries: int = 3
    # The longest a run waits for one batch: the providers' 24 h window, OpenRouter's up to 96 h on some
    # upstreams, and a margin. Past it the calls fail; the receipt stays, so a resume fetches the batch.
    give_up_s: float = 100 * 3600.0


@dataclass(frozen=True)
class BatchUpdate(EngineEvent):
    """A batch changed as its provider reports it (submitted, a new state, new counts, finished): what the
    progress view shows while an evaluation waits. ``wire`` is the provider's word, ``state`` ours."""

    receipt: str
    provider: str
    model: str
    wave: int
    requests: int
    batch_id: str | None
    wire: str
    state: State
    completed: int | None = None
    failed: int | None = None
    error: str | None = None
    reattached: bool = False


@dataclass(frozen=True)
class Delivery:
    """What the batch gave one call: the provider's outcome, the batch that answered it, and the rate to price
    it at (``price_factor``) or a cost share the provider reported for the whole batch (``cost_usd``)."""

    item: ItemResult
    batch_id: str | None
    price_factor: float = 1.0
    price_source: str = ""
    cost_usd: float | None = None
    cost_source: str | None = None


@dataclass
class _Queued:
    custom_id: str
    target: Target
    request: ChatRequest


@dataclass
class _Batch:
    """One batch this runner watches: submitted now, or re-attached from a receipt."""

    receipt: str
    api: BatchAPI
    provider: str
    model: str
    wave: int
    custom_ids: frozenset[str]
    status: BatchStatus | None = None
    reattached: bool = False
    task: asyncio.Task[None] | None = None
    delivered: set[str] = field(default_factory=set)


@dataclass
class BatchTally:
    """What went where, for the summary: requests per (provider, model) sent in batches, calls run live (no
    batch API), batches submitted and re-attached, and requests retried live after their batch failed them."""

    batched: Counter[str] = field(default_factory=Counter)
    live: Counter[str] = field(default_factory=Counter)
    submitted: int = 0
    reattached: int = 0
    retried_live: int = 0
    failed_requests: int = 0


class BatchRunner:
    """Collects a run's batchable calls, submits them wave after wave and answers each by its request id.

    ``retry_live``: a request the batch failed (expired, cancelled, errored) is asked again live; otherwise it
    fails its row with the provider's reason. ``live_limit``: the calls without a batch API run at most this many
    at a time.
    """

    def __init__(self, client: httpx.AsyncClient, receipts: Receipts, targets: Sequence[Target], *,
                 policy: PollPolicy | None = None, retry_live: bool = False, live_limit: int = 4,
                 listeners: Sequence[Listener] = ()) -> None:
        self.client = client
        # The run's models by provider: a receipt names its provider, never its key, so a re-attached batch
        # is polled with the endpoint (and key) this run resolved for that provider.
        self._endpoints = {(t.spec.name, t.endpoint.base_url): t for t in targets
                           if batch_api_for(t.spec, t.endpoint) is not None}
        self.receipts = receipts
        self.policy = policy or PollPolicy()
        self.retry_live = retry_live
        self.live_slot = asyncio.Semaphore(live_limit)
        self.listeners = list(listeners)
        self.tally = BatchTally()
        self._seen: Counter[str] = Counter()
        self._futures: dict[str, asyncio.Future[Delivery]] = {}
        self._unclaimed: dict[str, Delivery] = {}
        self._queue: list[_Queued] = []
        self._arrived = 0
        self._wave = 0
        self._flusher: asyncio.Task[None] | None = None
        self._batches: list[_Batch] = []
        self._holding: dict[str, _Batch] = {}  # custom_id -> the re-attached batch that holds it
        self._lost: dict[str, Receipt] = {}  # custom_id -> a receipt whose submit's answer never came
        self._recovering: dict[str, asyncio.Task[None]] = {}
        self._workdir = Path(tempfile.mkdtemp(prefix="fusion-batch-"))
        self._files = itertools.count(1)
        self._closed = False
        # A batch this run could not read to the end (unreachable, lost, given up on, a failure while following
        # it): its receipt must stay open for a resume, so the evaluation's receipts are not closed.
        self.unsettled = False
        self._load_receipts()

    # ---- what a call does ---------------------------------------------------------------------------

    def takes(self, target: Target) -> bool:
        """Whether ``target``'s calls go through a batch (its provider has a batch API)."""
        return batch_api_for(target.spec, target.endpoint) is not None

    def count_live(self, target: Target) -> None:
        """A call that runs live beside the batches (for the summary)."""
        self.tally.live[target.model_id] += 1

    async def call(self, target: Target, request: ChatRequest) -> Delivery:
        """The batch's answer to one call: queued for the next wave, or taken from a batch a receipt holds.
        Cancelling the caller only stops it waiting; a batch already submitted goes on at the provider."""
        custom_id = self._custom_id(target, request)
        receipt = self._lost.get(custom_id)
        if receipt is not None:
            # An earlier run's submit never got its answer: the provider is asked first (once per receipt).
            task = self._recovering.get(receipt.receipt)
            if task is None:
                task = self._recovering[receipt.receipt] = asyncio.create_task(self._recover(receipt))
            await asyncio.shield(task)
        if custom_id in self._unclaimed:
            return self._unclaimed.pop(custom_id)
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        self._futures[custom_id] = future
        held = self._holding.get(custom_id)
        if held is not None:
            self._watch(held)
        else:
            self._queue.append(_Queued(custom_id, target, request))
            self._arrived += 1
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_waves(), name="fusion-batch-waves")
        try:
            return await future
        finally:
            if self._futures.get(custom_id) is future:
                del self._futures[custom_id]

    def _custom_id(self, target: Target, request: ChatRequest) -> str:
        # The endpoint is part of the id: a local server and a hosted API sharing a model name are two requests.
        key = request_key(f"{target.model_id}@{target.endpoint.base_url}", request)
        n = self._seen[key]
        self._seen[key] += 1
        return f"fm{key[:40]}n{n}"  # [A-Za-z0-9], under the 64 characters every API takes

    # ---- resume --------------------------------------------------------------------------------------

    def _load_receipts(self) -> None:
        for receipt in self.receipts.open_receipts():
            if receipt.batch_id is None and receipt.state in (SUBMITTING, LOST):
                # Its submit's answer never arrived: the provider is asked (``_recover``) when it is claimed.
                for custom_id in receipt.custom_ids:
                    self._lost[custom_id] = receipt
                continue
            if receipt.batch_id is None:
                continue  # refused by the provider: nothing was created, its calls may be submitted again
            api = self._api(receipt)
            if api is None:
                continue  # a provider this run does not use: its batch stays in the log for a run that does
            self._adopt(receipt, api, BatchStatus(receipt.batch_id, receipt.wire or receipt.state,
                                                  _state(receipt.state)))
            self._wave = max(self._wave, receipt.wave)

    def _api(self, receipt: Receipt) -> BatchAPI | None:
        target = self._endpoints.get((receipt.provider, receipt.base_url))
        if target is None:
            target = next((t for (name, _), t in self._endpoints.items() if name == receipt.provider), None)
        api_class = None if target is None else batch_api_for(target.spec, target.endpoint)
        return None if target is None or api_class is None else api_class(target.endpoint, self.client)

    def _adopt(self, receipt: Receipt, api: BatchAPI, status: BatchStatus) -> _Batch:
        batch = _Batch(receipt.receipt, api, receipt.provider, receipt.model, receipt.wave,
                       frozenset(receipt.custom_ids), status, reattached=True)
        self._batches.append(batch)
        for custom_id in receipt.custom_ids:
            self._holding[custom_id] = batch
        return batch

    async def _recover(self, receipt: Receipt) -> None:
        """A receipt whose submit never got its answer: adopt the batch if the provider lists it. If it does not,
        and its API labels batches (``labelled``: not found means not created), the requests are submitted like
        any others; otherwise they fail (sending them again could bill them twice)."""
        for custom_id in receipt.custom_ids:
            self._lost.pop(custom_id, None)
        api = self._api(receipt)
        try:
            status = None if api is None else await self._find(api, receipt.receipt, receipt.created_at - 60,
                                                               len(receipt.custom_ids))
        except Exception:  # a bug in a lookup must fail these calls, not leave them waiting
            log.exception("fusion_magic batch: looking up batch %s failed", receipt.receipt)
            status = None
        if api is not None and status is not None:
            self.receipts.accepted(receipt.receipt, status)
            self._watch(self._adopt(receipt, api, status))
            return
        if api is not None and api.labelled:
            self.receipts.mark(receipt.receipt, "absent", "the provider lists no batch with this label")
            return
        self.unsettled = True
        self.receipts.mark(receipt.receipt, LOST, receipt.error)
        message = (f"its batch ({receipt.provider}, submitted {time.ctime(receipt.created_at)}) may have been "
                   "accepted, but the answer never arrived and the provider lists no such batch; it is not sent "
                   "again (that could bill it twice): check the provider's dashboard")
        self._fail_all(receipt.custom_ids, ProtocolError(message, provider=receipt.provider, model=receipt.model),
                       None)

    # ---- waves ---------------------------------------------------------------------------------------

    async def _flush_waves(self) -> None:
        """Submit what has arrived once no call came for ``settle_s``; again while calls keep arriving."""
        try:
            while self._queue:
                seen = -1
                while seen != self._arrived:
                    seen = self._arrived
                    await asyncio.sleep(self.policy.settle_s)
                queued, self._queue = self._queue, []
                waiting = [q for q in queued if q.custom_id in self._futures]
                if waiting:
                    self._wave += 1
                    await self._submit_wave(waiting, self._wave)
        finally:
            self._flusher = None

    async def _submit_wave(self, queued: list[_Queued], wave: int) -> None:
        groups: dict[tuple[str, str, str], list[_Queued]] = {}
        for q in queued:
            api_class = batch_api_for(q.target.spec, q.target.endpoint)
            assert api_class is not None  # takes() said so
            model = q.target.model if api_class.one_model else ""
            groups.setdefault((q.target.spec.name, q.target.endpoint.base_url, model), []).append(q)
        await asyncio.gather(*(self._submit_group(items, wave) for items in groups.values()))

    async def _submit_group(self, items: list[_Queued], wave: int) -> None:
        """One provider and model's requests of a wave, split to the API's count and byte limits. A bug or an odd
        environment (a request that cannot be written, a full disk) fails these calls, never the whole run."""
        handed: set[str] = set()  # the calls a submit took over (it answers them, whatever happens to it)
        try:
            await self._write_and_submit(items, wave, handed)
        except Exception as exc:
            log.exception("fusion_magic batch: a wave could not be submitted")
            target = items[0].target
            error = ProtocolError(target.endpoint.redact(f"the batch could not be submitted: {type(exc).__name__}: "
                                                         f"{exc}"), provider=target.spec.name, model=target.model)
            self._fail_all((q.custom_id for q in items if q.custom_id not in handed), error, None)

    async def _write_and_submit(self, items: list[_Queued], wave: int, handed: set[str]) -> None:
        target = items[0].target
        api_class = batch_api_for(target.spec, target.endpoint)
        assert api_class is not None
        api = api_class(target.endpoint, self.client)
        chunk: list[_Queued] = []
        path = self._request_file(wave, target.spec.name)
        out = path.open("wb")
        size = 0
        submits: list[asyncio.Task[None]] = []
        try:
            for q in items:
                line = api.line(q.custom_id, q.request) + b"\n"
                if chunk and (len(chunk) >= api.max_requests or size + len(line) > api.max_bytes):
                    out.close()
                    handed.update(c.custom_id for c in chunk)
                    submits.append(asyncio.create_task(self._submit_chunk(api, chunk, path, wave)))
                    chunk, size = [], 0
                    path = self._request_file(wave, target.spec.name)
                    out = path.open("wb")
                out.write(line)
                chunk.append(q)
                size += len(line)
            out.close()
            if chunk:
                handed.update(c.custom_id for c in chunk)
                submits.append(asyncio.create_task(self._submit_chunk(api, chunk, path, wave)))
        finally:
            out.close()
            # Whatever went wrong while writing, the batches already handed over are submitted and followed.
            await asyncio.gather(*submits)

    def _request_file(self, wave: int, provider: str) -> Path:
        # One file per batch, numbered: two models of one provider in a wave are two files, never one.
        return self._workdir / f"wave{wave}-{provider}-{next(self._files)}.jsonl"

    async def _submit_chunk(self, api: BatchAPI, chunk: list[_Queued], path: Path, wave: int) -> None:
        target = chunk[0].target
        model = target.model if api.one_model else "(several)"
        custom_ids = [q.custom_id for q in chunk]
        try:
            receipt = self.receipts.intent(target.spec.name, target.endpoint.base_url, model, wave=wave,
                                           custom_ids=custom_ids)
        except FusionError as exc:
            self._fail_all(custom_ids, ProtocolError(str(exc), provider=target.spec.name, model=model), None)
            return
        since = time.time() - 60  # the provider's clock may be a little behind ours
        status: BatchStatus | None = None
        try:
            for attempt in range(self.policy.submit_retries + 1):
                try:
                    status = await api.submit(target.model, path, len(chunk), receipt)
                    break
                except ProviderError as exc:
                    if not _never_left(exc) and _may_have_landed(exc):
                        # The provider may have created it (and will bill it): ask, and never send it again.
                        status = await self._look_up(api, receipt, since, len(chunk))
                        if status is not None:
                            break
                        self.unsettled = True
                        self.receipts.mark(receipt, LOST, str(exc))
                        self._fail_all(custom_ids, ProtocolError(
                            f"{exc.kind}: {exc.message}; the provider may have accepted the batch but does not list it "
                            "yet, so it is not sent again (that could bill it twice): a resume asks again",
                            provider=exc.provider, model=exc.model, status=exc.status), None)
                        return
                    if not exc.retryable or attempt == self.policy.submit_retries:
                        self.receipts.mark(receipt, "refused", str(exc))  # the provider said no: nothing to pay
                        self._fail_all(custom_ids, exc, None)
                        return
                    await asyncio.sleep(exc.retry_after or self.policy.first_s * (attempt + 1))
        except Exception as exc:  # not a provider's answer: it may or may not have reached the provider
            log.exception("fusion_magic batch: submitting batch %s failed", receipt)
            self.unsettled = True
            self.receipts.mark(receipt, LOST, f"{type(exc).__name__}: {exc}")
            self._fail_all(custom_ids, ProtocolError(target.endpoint.redact(
                f"the batch could not be submitted ({type(exc).__name__}: {exc}); a resume asks the provider "
                "before sending it again"), provider=target.spec.name, model=model), None)
            return
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        assert status is not None
        self.receipts.accepted(receipt, status)
        self.tally.submitted += 1
        self.tally.batched[target.model_id if api.one_model else target.spec.name] += len(chunk)
        batch = _Batch(receipt, api, target.spec.name, model, wave, frozenset(custom_ids), status)
        self._batches.append(batch)
        self._emit(batch)
        self._watch(batch)

    async def _find(self, api: BatchAPI, tag: str, since: float, count: int) -> BatchStatus | None:
        try:
            return await api.find(tag, since, count)
        except ProviderError as exc:
            log.warning("fusion_magic batch: could not look up batch %s at %s (%s)", tag, api.name, exc)
            return None

    async def _look_up(self, api: BatchAPI, tag: str, since: float, count: int) -> BatchStatus | None:
        """A submit that may have landed, looked for a few times (a new batch can take a moment to be listed)."""
        for attempt in range(3):
            status = await self._find(api, tag, since, count)
            if status is not None:
                return status
            await asyncio.sleep(self.policy.first_s * (attempt + 1))
        return None

    # ---- watching ------------------------------------------------------------------------------------

    def _watch(self, batch: _Batch) -> None:
        if batch.task is None and not self._closed:
            if batch.reattached:
                self.tally.reattached += 1
                self._emit(batch)
            batch.task = asyncio.create_task(self._follow(batch), name=f"fusion-batch-{batch.receipt}")

    async def _follow(self, batch: _Batch) -> None:
        """Poll until the provider is done with the batch, then hand out its results. An unexpected error fails
        the calls still waiting on it (its receipt stays: a resume polls it again), never leaves them waiting."""
        try:
            await self._poll_and_collect(batch)
        except Exception as exc:
            log.exception("fusion_magic batch: following batch %s failed", batch.receipt)
            self.unsettled = True
            error = ProtocolError(f"following its batch failed ({type(exc).__name__}: {exc}); the batch goes on at "
                                  "the provider and a resume fetches it", provider=batch.provider, model=batch.model)
            # Every request not answered yet, claimed or not: a later claim must not wait on a task that ended.
            self._fail_all(batch.custom_ids - batch.delivered, error, batch)

    async def _poll_and_collect(self, batch: _Batch) -> None:
        assert batch.status is not None
        status = batch.status
        if batch.reattached and status.finished:
            # A receipt keeps the state, not what reading the results needs (files, inline results, the batch's
            # cost): ask once more.
            status = await batch.api.poll(status)
        delay = self.policy.first_s
        polls_failed = 0
        give_up = time.monotonic() + self.policy.give_up_s
        while not status.finished:
            if time.monotonic() > give_up:
                self.unsettled = True
                self._fail_all(batch.custom_ids - batch.delivered, ProtocolError(
                    f"its batch {status.id} is still {status.wire} after {self.policy.give_up_s / 3600:.0f} h; the "
                    "receipt is kept: a resume fetches it when it ends", provider=batch.provider, model=batch.model),
                    batch)
                return
            await asyncio.sleep(jitter(delay))
            try:
                new = await batch.api.poll(status)
            except ProviderError as exc:
                polls_failed += 1
                if not exc.retryable and polls_failed > 1:
                    self.unsettled = True  # paid for at the provider: its receipt stays open for a resume
                    self._fail_all(batch.custom_ids - batch.delivered, _noted(
                        exc, f"its batch {status.id} goes on at the provider and its receipt is kept: a resume "
                             "fetches it"), batch)
                    return
                delay = exc.retry_after if exc.retry_after is not None else min(delay * 2, self.policy.max_s)
                continue
            polls_failed = 0
            if (new.wire, new.completed, new.failed, new.total) != (status.wire, status.completed, status.failed,
                                                                    status.total):
                self.receipts.update(batch.receipt, new)
                batch.status = new
                self._emit(batch)
            status = new
            delay = min(delay * self.policy.factor, self.policy.max_s)
        batch.status = status
        self.receipts.update(batch.receipt, status)
        await self._collect(batch, status)

    async def _collect(self, batch: _Batch, status: BatchStatus) -> None:
        """Every result of a finished batch to its call; requests without one fail with the batch's reason."""
        got: set[str] = set()
        shares = status.cost_usd is not None
        held: list[ItemResult] = []
        unread: ProviderError | None = None
        for attempt in range(3):
            try:
                async for item in batch.api.results(status):
                    if item.custom_id not in batch.custom_ids or item.custom_id in got:
                        continue  # not ours, or a repeated line: the first answer counts
                    got.add(item.custom_id)
                    if shares:
                        held.append(item)  # priced once the whole batch's tokens are known
                    else:
                        self._deliver(item, batch)
                break
            except ProviderError as exc:
                if attempt == 2 or not _read_again_helps(exc):
                    log.warning("fusion_magic batch: results of %s could not be read (%s)", status.id, exc)
                    self.unsettled = True
                    unread = exc
                    break
                await asyncio.sleep(exc.retry_after or self.policy.first_s)
        if held:
            self._deliver_shares(held, batch, status)
        missing = batch.custom_ids - got
        if missing and unread is not None:
            self._fail_all(missing, ProtocolError(f"its batch's results could not be read ({unread}); the receipt is "
                                                  "kept: a resume reads them again", provider=batch.provider,
                                                  model=batch.model), batch)
        elif missing:
            reason = status.error or (f"the batch ended {status.wire}" if status.state is not State.DONE
                                      else "the provider returned no result for this request")
            # An expired batch's unanswered requests never ran: a timeout, as an expired request's own line says
            # (OpenAI, Anthropic), so retry_live asks them again; Gemini's expired batch gives no line at all.
            cls: type[ProviderError] = (CallCancelled if status.state is State.CANCELLED else
                                        ProviderTimeout if status.failure == "expired" else ProtocolError)
            self._fail_all(missing, cls(reason, provider=batch.provider, model=batch.model), batch)
        self._emit(batch)

    def _deliver_shares(self, items: list[ItemResult], batch: _Batch, status: BatchStatus) -> None:
        """OpenRouter bills a batch as a whole: each request's share of its cost is its share of the tokens."""
        tokens = [_tokens(item) if item.ok else 0 for item in items]  # a failed request is not billed
        total = sum(tokens)
        for item, n in zip(items, tokens, strict=True):
            share = None if not item.ok or status.cost_usd is None or not total else status.cost_usd * n / total
            self._deliver(item, batch, cost_usd=share)

    def _deliver(self, item: ItemResult, batch: _Batch | None, *, cost_usd: float | None = None) -> None:
        if not item.ok:
            self.tally.failed_requests += 1
        if batch is not None:
            batch.delivered.add(item.custom_id)
        delivery = Delivery(
            item, None if batch is None or batch.status is None else batch.status.id,
            price_factor=batch.api.price_factor if batch else 1.0, price_source=batch.api.price_source if batch else "",
            cost_usd=cost_usd,
            cost_source=None if cost_usd is None else
            f"{batch.provider if batch else 'the provider'}'s cost of the whole batch, shared out by tokens")
        future = self._futures.get(item.custom_id)
        if future is not None and not future.done():
            future.set_result(delivery)
        else:
            self._unclaimed[item.custom_id] = delivery  # its call has not been asked yet (a later wave's resume)

    def _fail_all(self, custom_ids: Iterable[str], error: ProviderError,
                  batch: _Batch | None) -> None:
        for custom_id in custom_ids:
            self._deliver(ItemResult(custom_id, error=error), batch)

    def _emit(self, batch: _Batch) -> None:
        emit(self.listeners, _update(batch))

    # ---- the end -------------------------------------------------------------------------------------

    @property
    def batches(self) -> list[BatchUpdate]:
        """Every batch this runner submitted or re-attached to, as last reported."""
        return [_update(batch) for batch in self._batches]

    async def aclose(self) -> None:
        """Stop watching (the batches go on at the provider: their receipts stay) and remove the request files."""
        self._closed = True
        tasks = [t for t in (self._flusher, *(b.task for b in self._batches), *self._recovering.values())
                 if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        shutil.rmtree(self._workdir, ignore_errors=True)


def priced(record: CallRecord, delivery: Delivery) -> None:
    """Price a batch call: the provider's share of the batch's cost where it reports one, else the live price
    (already on ``record``) at the batch rate, the source saying so."""
    if delivery.cost_usd is not None:
        record.cost_usd, record.cost_source = delivery.cost_usd, delivery.cost_source or "provider"
        return
    if record.cost_usd is not None and delivery.price_factor != 1.0 and record.cost_source != "provider":
        record.cost_usd *= delivery.price_factor
        record.cost_source = f"{record.cost_source}; at the batch rate ({delivery.price_source})"


def _update(batch: _Batch) -> BatchUpdate:
    s = batch.status
    return BatchUpdate(
        batch.receipt, batch.provider, batch.model, batch.wave, len(batch.custom_ids),
        None if s is None else s.id, "" if s is None else s.wire, State.QUEUED if s is None else s.state,
        None if s is None else s.completed, None if s is None else s.failed, None if s is None else s.error,
        batch.reattached)


def _never_left(exc: ProviderError) -> bool:
    """The request never reached the provider (refused connection, connect or pool timeout): safe to send."""
    return isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _may_have_landed(exc: ProviderError) -> bool:
    """A submit's failure after which the provider may hold the batch: no answer (a cut connection, a read
    timeout), a 5xx (it may have failed after creating it), or a 2xx we could not read."""
    return exc.status is None or exc.status >= 500 or 200 <= exc.status < 300


def _noted(exc: ProviderError, note: str) -> ProviderError:
    """``exc`` (its type, status and hints kept) with ``note`` after its message."""
    noted = copy.copy(exc)
    noted.message = f"{exc.message}; {note}"
    noted.args = (noted.message,)
    return noted


def _read_again_helps(exc: ProviderError) -> bool:
    """Whether reading a finished batch's results again may work: a passing error, or a download cut off or
    timed out half-way (reading is free and the lines already delivered are skipped); not a refusal or a key."""
    return exc.retryable or isinstance(exc, ProtocolError | ProviderTimeout)


def retry_live_helps(error: ProviderError) -> bool:
    """Whether asking live again may give what the batch did not: an expired or cancelled request, or one that
    failed for a passing reason (rate limit, overload). A refusal, a bad request or a key problem would only be
    paid for again."""
    return error.kind in ("timeout", "cancelled") or error.retryable


def _tokens(item: ItemResult) -> int:
    usage = [e for e in item.events if isinstance(e, Usage)]
    if not usage:
        return 0
    return (usage[-1].input_tokens or 0) + (usage[-1].output_tokens or 0)


def _state(word: str) -> State:
    try:
        return State(word)
    except ValueError:
        return State.RUNNING


def jitter(delay: float) -> float:
    """``delay`` +-25 %, so many kernels polling the same provider do not do it in lockstep."""
    return delay * random.uniform(0.75, 1.25)


__all__ = ["BatchRunner", "BatchTally", "BatchUpdate", "Delivery", "PollPolicy", "priced", "retry_live_helps"]
