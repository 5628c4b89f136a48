"""What every provider's batch API module gives the batch runner (``calls/batch.py``): one class per wire protocol.

A batch API takes many chat requests at once, runs them at the provider within a window (24 h), and bills about
half (``shared/reference/batch-apis.md``). The runner never speaks a wire: it asks the module for

- ``line(custom_id, request)``: one request in the API's own JSON (one line of its request file; its size counts
  against ``max_bytes``),
- ``submit(model, lines, count, tag)``: create the batch from a request file of such lines (OpenAI uploads it;
  the others send it inline), answering the provider's ``BatchStatus`` the moment the provider accepts it,
- ``poll(status)``: the batch as the provider reports it now (its wire word, our ``State``, counts),
- ``results(status)``: each request's outcome, matched by ``custom_id`` (never by position): the same events a
  live stream gives (``TextDelta`` with the whole text, ``Usage``, ``Finished``) or the provider's reason,
- ``find(tag, since, count)``: the batch a submit created whose answer never arrived (a cut connection, a killed
  kernel), so that a resume adopts it instead of paying twice,
- ``cancel(status)``.

    api = batch_api_for(target.spec, target.endpoint)(target.endpoint, client)
    status = await api.submit("gpt-4o-mini", Path("wave1.jsonl"), 200, tag="fm-3f2a")
    while not status.finished:
        status = await api.poll(status)
    async for item in api.results(status):
        ...
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...core.errors import ProviderError
from ...core.state import State
from .._http import WireContext
from ..base import ChatRequest, Endpoint, ProviderEvent
from ..chat._sse import SSEProvider

if TYPE_CHECKING:
    import httpx

@dataclass(frozen=True)
class BatchStatus:
    """One batch as its provider last reported it.

    ``wire`` is the provider's own word (``validating``, ``in_progress``, ``BATCH_STATE_RUNNING``, ``ended``...);
    ``state`` is ours: ``QUEUED`` (validating, pending), ``RUNNING`` (in progress, finalizing, cancelling),
    ``DONE`` (completed, ended, succeeded: the requests' own outcomes may still differ), ``FAILED`` (the whole
    batch: ``failure`` says ``failed`` or ``expired``, ``error`` why) or ``CANCELLED``. ``handle`` holds what
    ``results`` needs (output/error file ids, the results URL, inline results) and is the module's business.
    ``cost_usd`` is a whole-batch cost where the provider reports one (OpenRouter's ``usage.cost``).
    """

    id: str
    wire: str
    state: State
    total: int | None = None
    completed: int | None = None
    failed: int | None = None
    failure: str | None = None
    error: str | None = None
    cost_usd: float | None = None
    handle: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def finished(self) -> bool:
        """The provider is done with it (done, failed, expired or cancelled): poll no more, read the results."""
        return self.state.is_final


@dataclass(frozen=True)
class ItemResult:
    """One request's outcome: ``events`` as a live stream would have given them (the whole text in one
    ``TextDelta``, then ``Usage`` and ``Finished``), or ``error``, the provider's reason (an errored, expired or
    cancelled request, a 4xx/5xx line). A failed request is not billed."""

    custom_id: str
    events: tuple[ProviderEvent, ...] = ()
    error: ProviderError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BatchAPI(ABC):
    """One provider's batch API over raw HTTP (the chat protocol's endpoint and key, the runner's client).

    Class facts the runner plans with: ``max_requests`` and ``max_bytes`` (a request file is split to stay
    within both), ``one_model`` (a batch holds one model's requests), ``labelled`` (``find`` is conclusive),
    ``price_factor`` and ``price_source``
    (the batch rate against the live price, and where that rate is published).
    """

    name: ClassVar[str]
    max_requests: ClassVar[int]
    max_bytes: ClassVar[int]
    one_model: ClassVar[bool] = True
    # The batch carries our label (OpenAI's metadata, Gemini's display name), so ``find`` finding nothing means
    # the provider has no such batch; without one (Anthropic, OpenRouter) it may only mean it cannot tell.
    labelled: ClassVar[bool] = False
    price_factor: ClassVar[float] = 0.5
    price_source: ClassVar[str]
    # The live chat protocol whose body a request line is built from, and whose headers and parsers it shares.
    chat_class: ClassVar[type[SSEProvider]]

    def __init__(self, endpoint: Endpoint, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint
        self.client = client
        self.chat = self.chat_class(endpoint, client)

    def ctx(self, model: str = "") -> WireContext:
        """Who a call is to, for its errors (never holding the key but to scrub it out)."""
        return WireContext(self.endpoint.provider, model, self.endpoint.api_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.base_url!r})"  # never the key

    @abstractmethod
    def line(self, custom_id: str, request: ChatRequest) -> bytes:
        """One request as this API's request-file line (UTF-8 JSON, no newline): the chat protocol's body
        without streaming, wrapped as the API wants it."""

    @abstractmethod
    async def submit(self, model: str, lines: Path, count: int, tag: str) -> BatchStatus:
        """Create one batch of the ``count`` requests in ``lines`` (a file of ``line()``s, one per line) for
        ``model``; ``tag`` (``[A-Za-z0-9_-]``, at most 64) goes where the API keeps a label (metadata, display
        name) so ``find`` can recognise it. Raises ``ProviderError`` when the provider refuses it."""

    @abstractmethod
    async def poll(self, status: BatchStatus) -> BatchStatus:
        """The batch as the provider reports it now; a 429 raises ``RateLimitError`` with its ``retry_after``."""

    @abstractmethod
    def results(self, status: BatchStatus) -> AsyncIterator[ItemResult]:
        """Every request's outcome of a finished batch, in the provider's order, read as a stream (the result
        files of a large batch are not held whole). Requests the provider gave no line for are not invented
        here: the runner fails them."""

    @abstractmethod
    async def find(self, tag: str, since: float, count: int | None = None) -> BatchStatus | None:
        """The batch labelled ``tag`` created after ``since`` (unix seconds), if the provider lists one; None
        when it does not (or cannot tell). ``count``: the requests it holds, for the APIs that keep no label
        (Anthropic, OpenRouter), which match by time and count and answer only when exactly one fits."""

    async def cancel(self, status: BatchStatus) -> None:
        """Ask the provider to stop the batch (its finished requests stay billed)."""
        raise NotImplementedError(f"{self.name} batches cannot be cancelled through the API")


__all__ = ["BatchAPI", "BatchStatus", "ItemResult"]
