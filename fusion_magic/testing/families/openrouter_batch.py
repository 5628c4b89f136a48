"""OpenRouter batches (``/openrouter/api/v1/batches``).

A submit is answered **202**, which is not validity: a request body naming another model, asking for a stream,
or one the chat route would refuse turns the whole batch ``failed`` with ``error.message`` at its first poll. The
body is stream-parsed, so ``endpoint`` and ``model`` (and ``callback_url``) must come before ``requests`` (400
otherwise). A terminal batch carries its ``results`` inline (shuffled), each body's ``usage`` without ``cost``,
and the whole batch's ``usage.cost``: the scripted per-request costs at the batch rate (half). Shapes:
``shared/reference/batch-apis.md`` §4.

    os.environ["OPENROUTER_BASE_URL"] = emu.url + "/openrouter/api/v1"   # the chat family's base
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import dumps
from ..batch import RESULTS, BatchItem, EmulatedBatch, answer, line, send_fault, send_json_with_results, tally
from ..registry import Family, Request, Route
from .openrouter import OpenRouter, error_type, provider_of

ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings")
_SERVED = "/v1/chat/completions"
# What a batch costs against the same requests answered live (reference §4.2: "typically" half).
BATCH_RATE = 0.5
_BEFORE_REQUESTS = ("endpoint", "model", "callback_url")
_PROVIDER_KEYS = frozenset({"only", "allow_fallbacks"})
_DAY = 24 * 3600
_EXPIRED_ERROR = {"message": "The batch expired before this request ran.", "param": None, "type": "timeout",
                  "error_type": "timeout"}  # shape of an error result; this wording is the emulator's


def key_order(raw: bytes) -> list[str]:
    """The top-level keys of a JSON object in the order they were sent (the decoded body forgets nothing, but
    the order matters to a stream parser)."""
    order: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Called for every object, innermost first: the last call is the top level.
        order[:] = [k for k, _ in pairs]
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return order


class OpenRouterBatch(Family):
    """``POST /openrouter/api/v1/batches`` (202), ``GET /openrouter/api/v1/batches[/{id}]``,
    ``DELETE /openrouter/api/v1/batches/{id}`` (terminal only); Bearer auth as the chat family.

        emu.script("openai/gpt-4o-mini", ModelScript(cost_usd=0.0004))   # usage.cost 0.0002 per request answered
    """

    name = "openrouter-batch"
    key_family = "openrouter"
    base: ClassVar[str] = OpenRouter.base

    def __init__(self) -> None:
        # The live chat family: its checks, scripted answers, error bodies and auth dialect.
        self.chat = OpenRouter()

    def routes(self) -> Sequence[Route]:
        base = f"{self.base}/batches"
        return [
            Route("POST", base, self.create),
            Route("GET", base, self.list_batches),
            Route("GET", f"{base}/{{batch_id}}", self.poll),
            Route("DELETE", f"{base}/{{batch_id}}", self.delete),
        ]

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        return self.chat.key_error(req, has_key)

    async def _refuse(self, req: Request, status: int, message: str) -> None:
        await req.json(status, self._error_body(status, message))

    @staticmethod
    def _error_body(status: int, message: str) -> dict[str, Any]:
        # BatchErrorResponse: {"error": {"code", "message"}}.
        return {"error": {"code": status, "message": message}}

    # ---- routes -----------------------------------------------------------------------------------------

    def check(self, req: Request) -> str | None:
        """The 400 message for a submit refused at once (its shape, its key order), None when accepted."""
        body = req.body
        if not isinstance(body, Mapping):
            return "Request body is not valid JSON."
        order = key_order(req.raw_body)
        if "requests" in order:
            late = [k for k in _BEFORE_REQUESTS if k in order and order.index(k) > order.index("requests")]
            if late:
                # Observed by a live-verified client; the wording is the emulator's.
                return (f"{', '.join(f'`{k}`' for k in late)} must appear before `requests` in the request body "
                        "(the batch body is stream-parsed).")
        endpoint, model, requests = body.get("endpoint"), body.get("model"), body.get("requests")
        if endpoint not in ENDPOINTS:
            return f"Invalid endpoint: {endpoint!r}. Expected one of {', '.join(ENDPOINTS)}."
        if endpoint != _SERVED:
            return f"emulator: only {_SERVED} batches are emulated, not {endpoint}."
        if not isinstance(model, str) or not model:
            return "model: Required"
        if body.get("completion_window", "24h") != "24h":
            return "completion_window: Invalid value; only '24h' is supported."
        provider = body.get("provider")
        if provider is not None and (not isinstance(provider, Mapping) or set(provider) - _PROVIDER_KEYS):
            return "provider: only `only` and `allow_fallbacks` are supported for batches."
        if not isinstance(requests, list) or not requests:
            return "requests: Required, at least one request."
        for i, request in enumerate(requests):
            custom_id = request.get("custom_id") if isinstance(request, Mapping) else None
            if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 64:
                return f"requests[{i}].custom_id: a string of 1 to 64 characters is required."
            if not isinstance(request.get("body"), Mapping):
                return f"requests[{i}].body: Required"
        return None

    @staticmethod
    def validation_failure(chat: OpenRouter, model: str, items: Sequence[BatchItem]) -> str | None:
        """Why the accepted batch fails at validation (a body for another model, a stream, a body the chat route
        refuses), None when it runs."""
        seen: set[str] = set()
        for item in items:
            body = item.body
            if item.custom_id in seen:
                return f"Duplicate custom_id '{item.custom_id}' in batch."
            seen.add(str(item.custom_id))
            named = body.get("model")
            if named is not None and named != model:
                return (f"Request '{item.custom_id}' names model '{named}', but the batch is for '{model}'; "
                        "a batch uses one model.")
            if body.get("stream") is True:
                return f"Request '{item.custom_id}': streaming is not supported in batches."
            invalid = chat.validate({**body, "model": model})
            if invalid is not None:
                message = invalid if isinstance(invalid, str) else invalid.message
                return f"Request '{item.custom_id}' is invalid: {message}"
        return None

    async def create(self, req: Request) -> None:
        """``POST /batches``: 202 with the batch ``validating`` (a fault scripted with ``fault_next(...,
        "create")`` answers first, or after creating it)."""
        fault = req.batches.take_fault("openrouter", "create")
        if fault is not None and not fault.created:
            await send_fault(req, fault, self._error_body)
            return
        try:
            problem = self.check(req)
        except ValueError:
            problem = "Request body is not valid JSON."
        if problem is not None:
            await self._refuse(req, 400, problem)
            return
        body = req.body
        model = body["model"]
        items = [BatchItem(r["custom_id"], r["body"]) for r in body["requests"]]
        failure = self.validation_failure(self.chat, model, items)
        batch = req.batches.create("openrouter", items, prefix="batch_", model=model, endpoint=body["endpoint"],
                                   failure=failure)
        if fault is not None:  # the batch exists (and is billed); the answer is the scripted fault
            await send_fault(req, fault, self._error_body, answer=dumps(self.batch_object(batch)).encode())
            return
        await req.json(202, self.batch_object(batch))

    async def poll(self, req: Request) -> None:
        """``GET /batches/{id}``: one step further (see BatchBook); a scripted 429 first if there is one."""
        retry_after = req.batches.take_throttle("openrouter")
        if retry_after is not None:
            await req.json(429, {"error": {"code": 429, "message": "Rate limit exceeded."}},
                           [("retry-after", f"{retry_after:g}")])
            return
        fault = req.batches.take_fault("openrouter", "poll")
        if fault is not None:  # the batch does not advance
            await send_fault(req, fault, self._error_body)
            return
        batch = req.batches.poll(req.params["batch_id"], lambda b: self.finish(req, b))
        if batch is None or batch.family != "openrouter":
            await self._no_batch(req)
            return
        lines = [item.line for item in batch.results() if item.line is not None] if batch.done else []
        # The results come with the poll that finds the batch finished: a "results" fault is met there.
        fault = req.batches.take_fault("openrouter", "results") if batch.done else None
        if fault is not None and not fault.cut:
            await send_fault(req, fault, self._error_body)
            return
        if fault is not None:
            req.record.fault = fault.word
        await send_json_with_results(req, 200, self.batch_object(batch), lines, cut=fault is not None)

    async def delete(self, req: Request) -> None:
        """``DELETE /batches/{id}``: terminal batches only."""
        batch = req.batches.get(req.params["batch_id"])
        if batch is None or batch.deleted or batch.family != "openrouter":
            await self._no_batch(req)
            return
        if not batch.done:
            await self._refuse(req, 400, f"Batch {batch.id} is {batch.state}; only a terminal batch can be deleted.")
            return
        req.batches.delete(batch.id)
        await req.json(200, {"id": batch.id, "object": "batch", "deletion": {
            "openrouter": "deleted", "upstream": {"provider": provider_of(batch.model or ""), "status": "deleted"}}})

    async def list_batches(self, req: Request) -> None:
        """``GET /batches``: metadata-only batches (no results), newest first."""
        batches = req.batches.live("openrouter")
        after = req.query.get("after")
        if after:
            ids = [b.id for b in batches]
            batches = batches[ids.index(after) + 1:] if after in ids else []
        try:
            limit = max(1, min(int(req.query.get("limit") or 20), 100))
        except ValueError:
            limit = 20
        page = batches[:limit]
        data = [self.batch_object(b, results=False) for b in page]
        await req.json(200, {"object": "list", "data": data, "first_id": page[0].id if page else None,
                             "last_id": page[-1].id if page else None, "has_more": len(batches) > limit})

    async def _no_batch(self, req: Request) -> None:
        await self._refuse(req, 404, f"Batch {req.params['batch_id']} not found.")

    def batch_object(self, batch: EmulatedBatch, *, results: bool = True) -> dict[str, Any]:
        """The ``BatchObject``; terminal batches have ``results`` (``RESULTS``, spliced in when sent) and the
        whole batch's ``usage``. Times are unix seconds, as OpenAI's (unconfirmed for OpenRouter)."""
        done = batch.done
        ran = batch.phase in ("completed", "expired")
        succeeded = batch.count("succeeded")
        end = next((batch.stamps[p] for p in ("completed", "failed", "expired", "cancelled") if p in batch.stamps),
                   None)
        return {
            "id": batch.id,
            "object": "batch",
            "status": batch.state,
            "endpoint": batch.endpoint,
            "model": batch.model,
            "completion_window": "24h",
            "created_at": int(batch.created),
            "expires_at": int(batch.created) + _DAY,
            "finalized_at": int(end) if done and end is not None else None,
            "provider": provider_of(batch.model or "") if batch.phase not in ("pending", "failed") else None,
            "request_counts": {"total": len(batch.items), "completed": succeeded,
                               "failed": len(batch.items) - succeeded if ran else 0},
            "results": RESULTS if done and ran and results else None,
            "usage": {
                "prompt_tokens": batch.input_tokens,
                "completion_tokens": batch.output_tokens,
                "total_tokens": batch.input_tokens + batch.output_tokens,
                "cost": round(batch.cost_usd * BATCH_RATE, 12),
                "is_byok": False,
            } if done and ran else None,
            "error": {"message": batch.fail_message or "The batch failed."} if batch.phase == "failed" else None,
        }

    # ---- running a batch ------------------------------------------------------------------------------

    def finish(self, req: Request, batch: EmulatedBatch) -> None:
        """Answer each request as the chat route would, body usage without cost; expired ones never ran."""
        if batch.phase not in ("completed", "expired"):
            return
        runs = len(batch.items)
        if batch.phase == "expired":
            runs = batch.expire_completed if batch.expire_completed is not None else len(batch.items) // 2
        model = batch.model or ""
        for index, item in enumerate(batch.items):
            if index >= runs:
                item.outcome = "expired"
                item.line = line({"id": f"gen-emu-{req.batches.next_seq():06d}", "custom_id": item.custom_id,
                                  "response": None, "error": _EXPIRED_ERROR})
                continue
            got = answer(self.chat, req, {**item.body, "model": model}, model)
            item.status = got.status
            response_id = got.turn.response_id if got.turn is not None else f"gen-emu-{req.batches.next_seq():06d}"
            if got.ok:
                item.outcome = "succeeded"
                if got.turn is not None:
                    tally(batch, got.turn)
                # A batch result's usage has tokens but no cost (reference §0 item 2): cost is the batch's.
                got.body.get("usage", {}).pop("cost", None)
                item.line = line({"id": response_id, "custom_id": item.custom_id, "error": None,
                                  "response": {"status_code": 200, "request_id": got.request_id, "body": got.body}})
            else:
                item.outcome = "errored"
                kind = error_type(got.status)
                item.line = line({"id": response_id, "custom_id": item.custom_id, "response": None,
                                  "error": {"message": got.message, "param": None, "type": kind, "error_type": kind}})


__all__ = ["BATCH_RATE", "ENDPOINTS", "OpenRouterBatch", "key_order"]
