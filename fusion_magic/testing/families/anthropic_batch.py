"""Anthropic's Message Batches (``/anthropic/v1/messages/batches``).

The requests come inline; the top-level shape (``requests``, each ``custom_id`` and ``params``) is checked at
once (400), each request's ``params`` only when the batch runs: a bad one (no ``max_tokens``, say) is an
``errored`` result, as is a scripted status fault, beside the ``succeeded`` ones. When the batch has ``ended`` its
``results_url`` is an absolute URL on the origin the client reached (its Host header), serving JSONL in shuffled
order. Shapes: ``shared/reference/batch-apis.md`` §2.

    os.environ["ANTHROPIC_BASE_URL"] = emu.url + "/anthropic"   # the chat family's base
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from .._wire import dumps
from ..batch import BatchItem, EmulatedBatch, answer, line, send_fault, send_jsonl, tally
from ..registry import Family, Request, Route
from ..video import api_origin
from .anthropic import Anthropic

BASE = "/anthropic/v1/messages/batches"
MAX_REQUESTS = 100_000
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DAY = dt.timedelta(days=1)
_KEPT = dt.timedelta(days=29)


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AnthropicBatch(Family):
    """``POST/GET {BASE}``, ``GET {BASE}/{id}``, ``GET {BASE}/{id}/results``, ``POST {BASE}/{id}/cancel``,
    ``DELETE {BASE}/{id}``; ``x-api-key`` (or ``Authorization: Bearer``) and ``anthropic-version`` as the chat
    family checks them.

        emu.script("claude-haiku-4-5", ModelScript(faults=[Fault("status", status=529, times=1)]))
        # the first request answered is {"type": "errored", "error": {... "overloaded_error" ...}}
    """

    name = "anthropic-batch"
    key_family = "anthropic"
    secret_headers: ClassVar[frozenset[str]] = frozenset({"x-api-key", "authorization"})

    def __init__(self) -> None:
        # The live chat family: its checks, scripted answers, error bodies and auth dialect.
        self.chat = Anthropic()

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", BASE, self.create),
            Route("GET", BASE, self.list_batches),
            Route("GET", f"{BASE}/{{batch_id}}", self.poll),
            Route("GET", f"{BASE}/{{batch_id}}/results", self.results),
            Route("POST", f"{BASE}/{{batch_id}}/cancel", self.cancel),
            Route("DELETE", f"{BASE}/{{batch_id}}", self.delete),
        ]

    # ---- auth: the chat family's, plus the Bearer form the 2.x SDK sends (reference §2) ---------------

    def presented_key(self, req: Request) -> str:
        return self.chat.presented_key(req) or super().presented_key(req)

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        return self.chat.key_error(req, has_key)

    def auth_headers(self, req: Request) -> list[tuple[str, str]]:
        return self.chat.auth_headers(req)

    def check_headers(self, req: Request) -> tuple[int, Any] | None:
        return self.chat.check_headers(req)

    async def _refuse(self, req: Request, status: int, message: str) -> None:
        await req.json(status, self.chat.error_body(status, message, request_id=req.request_id),
                       [("request-id", req.request_id)])

    # ---- routes -----------------------------------------------------------------------------------------

    def check_shape(self, body: Any) -> str | None:
        """The 400 message for a body whose top-level shape is wrong (params are checked when the batch runs)."""
        if not isinstance(body, Mapping):
            return "Request body is not valid JSON."
        requests = body.get("requests")
        if not isinstance(requests, list):
            return "requests: Field required"
        if not requests:
            return "requests: List should have at least 1 item after validation, not 0"
        if len(requests) > MAX_REQUESTS:
            return f"requests: List should have at most {MAX_REQUESTS} items after validation, not {len(requests)}"
        seen: set[str] = set()
        for i, request in enumerate(requests):
            if not isinstance(request, Mapping):
                return f"requests.{i}: Input should be a valid dictionary"
            custom_id = request.get("custom_id")
            if not isinstance(custom_id, str):
                return f"requests.{i}.custom_id: Field required"
            if not _CUSTOM_ID.match(custom_id):
                return f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            if custom_id in seen:
                # Wording unconfirmed: the reference says custom_ids are unique in a batch.
                return f"requests.{i}.custom_id: Duplicate custom_id '{custom_id}'; custom_ids must be unique."
            seen.add(custom_id)
            if not isinstance(request.get("params"), Mapping):
                return f"requests.{i}.params: Field required"
        return None

    def _error_body(self, req: Request) -> Callable[[int, str], Any]:
        return lambda status, message: self.chat.error_body(status, message, request_id=req.request_id)

    async def create(self, req: Request) -> None:
        """``POST {BASE}``: accept the batch (``in_progress``) once its shape is right (a fault scripted with
        ``fault_next(..., "create")`` answers first, or after creating it)."""
        headers = [("request-id", req.request_id)]
        fault = req.batches.take_fault("anthropic", "create")
        if fault is not None and not fault.created:
            await send_fault(req, fault, self._error_body(req), headers=headers)
            return
        problem = self.check_shape(req.body)
        if problem is not None:
            await self._refuse(req, 400, problem)
            return
        items = [BatchItem(r["custom_id"], r["params"]) for r in req.body["requests"]]
        # Models may differ between requests: the batch has none of its own.
        batch = req.batches.create("anthropic", items, prefix="msgbatch_", model=None)
        if fault is not None:  # the batch exists (and is billed); the answer is the scripted fault
            await send_fault(req, fault, self._error_body(req), answer=dumps(self.batch_object(req, batch)).encode(),
                             headers=headers)
            return
        await req.json(200, self.batch_object(req, batch), headers)

    async def poll(self, req: Request) -> None:
        """``GET {BASE}/{id}``: one step further (see BatchBook); a scripted 429 first if there is one."""
        retry_after = req.batches.take_throttle("anthropic")
        if retry_after is not None:
            body = self.chat.error_body(429, "Number of request tokens has exceeded your per-minute rate limit.",
                                        request_id=req.request_id)
            await req.json(429, body, [("retry-after", f"{retry_after:g}"), ("request-id", req.request_id)])
            return
        fault = req.batches.take_fault("anthropic", "poll")
        if fault is not None:  # the batch does not advance
            await send_fault(req, fault, self._error_body(req), headers=[("request-id", req.request_id)])
            return
        batch = req.batches.poll(req.params["batch_id"], lambda b: self.finish(req, b))
        if batch is None or batch.family != "anthropic":
            await self._no_batch(req)
            return
        await req.json(200, self.batch_object(req, batch), [("request-id", req.request_id)])

    async def results(self, req: Request) -> None:
        """``GET {BASE}/{id}/results``: one JSONL line per request, in shuffled order, once ended."""
        batch = self._find(req)
        if batch is None:
            await self._no_batch(req)
            return
        if not batch.done:
            # Wording unconfirmed: results are there only once processing has ended.
            await self._refuse(req, 400, f"Batch {batch.id} has not ended yet; its results are not available.")
            return
        lines = [item.line for item in batch.results() if item.line is not None]
        headers = [("request-id", req.request_id)]
        fault = req.batches.take_fault("anthropic", "results")
        if fault is not None and not fault.cut:
            await send_fault(req, fault, self._error_body(req), headers=headers)
            return
        if fault is not None:
            req.record.fault = fault.word
        await send_jsonl(req, lines, "application/binary", headers, cut=fault is not None)

    async def cancel(self, req: Request) -> None:
        """``POST {BASE}/{id}/cancel``: ``canceling``, then ``ended`` with ``canceled`` results at the next poll."""
        found = self._find(req)
        if found is None:
            await self._no_batch(req)
            return
        batch = req.batches.cancel(found.id) or found
        await req.json(200, self.batch_object(req, batch), [("request-id", req.request_id)])

    async def delete(self, req: Request) -> None:
        """``DELETE {BASE}/{id}``: ended batches only."""
        batch = self._find(req)
        if batch is None:
            await self._no_batch(req)
            return
        if not batch.done:
            await self._refuse(req, 400, f"Batch {batch.id} cannot be deleted while it is in progress; "
                                         "cancel it first.")
            return
        req.batches.delete(batch.id)
        await req.json(200, {"id": batch.id, "type": "message_batch_deleted"}, [("request-id", req.request_id)])

    async def list_batches(self, req: Request) -> None:
        """``GET {BASE}?after_id=&before_id=&limit=``: newest first."""
        batches = req.batches.live("anthropic")
        ids = [b.id for b in batches]
        after, before = req.query.get("after_id"), req.query.get("before_id")
        if after:
            batches = batches[ids.index(after) + 1:] if after in ids else []
        elif before:
            batches = batches[: ids.index(before)] if before in ids else []
        try:
            limit = max(1, min(int(req.query.get("limit") or 20), 1000))
        except ValueError:
            limit = 20
        page = batches[:limit]
        await req.json(200, {"data": [self.batch_object(req, b) for b in page], "has_more": len(batches) > limit,
                             "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None})

    def _find(self, req: Request) -> EmulatedBatch | None:
        batch = req.batches.get(req.params["batch_id"])
        return batch if batch is not None and batch.family == "anthropic" and not batch.deleted else None

    async def _no_batch(self, req: Request) -> None:
        await self._refuse(req, 404, f"No message batch found with id '{req.params['batch_id']}'.")

    def batch_object(self, req: Request, batch: EmulatedBatch) -> dict[str, Any]:
        """The ``MessageBatch``; ``results_url`` on the client's own origin once ended."""
        created = dt.datetime.fromtimestamp(batch.created, dt.UTC)
        ended = batch.done
        counts = {"processing": 0 if ended else len(batch.items), "succeeded": batch.count("succeeded"),
                  "errored": batch.count("errored"), "canceled": batch.count("canceled"),
                  "expired": batch.count("expired")}
        end_stamp = next((batch.stamps[p] for p in ("completed", "expired", "cancelled", "failed")
                          if p in batch.stamps), None)
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.state,
            "request_counts": counts,
            "created_at": _iso(batch.created),
            "expires_at": _iso((created + _DAY).timestamp()),
            "ended_at": _iso(end_stamp) if ended and end_stamp is not None else None,
            "archived_at": None,
            "cancel_initiated_at": _iso(batch.stamps["cancelling"]) if "cancelling" in batch.stamps else None,
            "results_url": f"{api_origin(req)}{BASE}/{batch.id}/results" if ended else None,
        }

    # ---- running a batch ------------------------------------------------------------------------------

    @staticmethod
    def batch_refusal(params: Mapping[str, Any]) -> str | None:
        """What a batch refuses in ``params`` that ``/v1/messages`` takes: a stream, ``max_tokens`` 0."""
        if params.get("stream") is True:
            return "stream: Message batches do not support streaming."  # wording unconfirmed
        max_tokens = params.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens < 1:
            return "max_tokens: Input should be greater than or equal to 1"
        return None

    def finish(self, req: Request, batch: EmulatedBatch) -> None:
        """Answer each request as ``/v1/messages`` would; a scripted whole-batch failure errors them all."""
        runs = len(batch.items)
        if batch.phase == "expired":
            runs = batch.expire_completed if batch.expire_completed is not None else len(batch.items) // 2
        if batch.phase == "cancelled":
            runs = 0
        for index, item in enumerate(batch.items):
            custom_id = item.custom_id
            if index >= runs:
                item.outcome = "canceled" if batch.phase == "cancelled" else "expired"
                item.line = line({"custom_id": custom_id, "result": {"type": item.outcome}})
                continue
            if batch.fate == "fail":
                request_id = f"req_emu{req.batches.next_seq():06d}"
                error = self.chat.error_body(500, batch.fail_message, request_id=request_id)
                item.outcome, item.status = "errored", 500
                item.line = line({"custom_id": custom_id, "result": {"type": "errored", "error": error}})
                continue
            params = item.body
            refused = self.batch_refusal(params)
            if refused is not None:
                request_id = f"req_emu{req.batches.next_seq():06d}"
                error = self.chat.error_body(400, refused, request_id=request_id)
                item.outcome, item.status = "errored", 400
                item.line = line({"custom_id": custom_id, "result": {"type": "errored", "error": error}})
                continue
            got = answer(self.chat, req, params, str(params.get("model")))
            item.status = got.status
            if got.ok:
                item.outcome = "succeeded"
                if got.turn is not None:
                    tally(batch, got.turn)
                item.line = line({"custom_id": custom_id, "result": {"type": "succeeded", "message": got.body}})
            else:
                item.outcome = "errored"
                item.line = line({"custom_id": custom_id, "result": {"type": "errored", "error": got.body}})


__all__ = ["BASE", "AnthropicBatch"]
