"""``LocalProvider``: the local model behind the same event stream as the HTTP providers.

The kernel side only: it builds the few-shot prompt, sends the job to the model's worker process
(``client.py``) and turns the worker's messages into ``TextDelta``/``Usage``/``Finished`` events.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

from ....core.errors import ProtocolError, ServerError, WorkerCrashed
from ...base import ChatRequest, Endpoint, Finished, ProviderEvent, TextDelta, Usage
from .client import WorkerCall, submit
from .cpu import check_settings
from .fewshot import TEXT_STOPS, build_prompt, copied_example
from .files import check_installed
from .files import check_model as check_local_model
from .protocol import Job, error_from_wire

DEFAULT_MAX_TOKENS = 96
DEFAULT_TEMPERATURE = 0.8


def job_for(request: ChatRequest) -> Job:
    """The worker's job for a request: prompt, stops and sampling settings, all fixed here."""
    schema = request.json_schema
    # JSON mode: the grammar ends the object itself, and a caller's stop string could cut it open.
    stop = () if schema is not None else tuple(dict.fromkeys((*request.stop, *TEXT_STOPS)))
    temperature = DEFAULT_TEMPERATURE if request.temperature is None else max(0.0, request.temperature)
    # A fresh random seed per call when none is given, so pool members with no seed still differ.
    seed = secrets.randbelow(2**31) if request.seed is None else request.seed & 0xFFFFFFFF
    return Job(
        model=request.model, prompt=build_prompt(request), stop=stop,
        max_tokens=request.max_tokens if request.max_tokens and request.max_tokens > 0 else DEFAULT_MAX_TOKENS,
        temperature=temperature, seed=seed, schema=schema,
    )


class LocalProvider:
    """A GGUF model run by llama.cpp in a worker process; same events as the HTTP providers, cost 0.

        provider = LocalProvider()
        events = [e async for e in provider.stream(ChatRequest("gemma3-270m", (Message("user", "Hi?"),)))]

    Calls to one model run one at a time in that model's worker (they share its context); the event
    loop only waits on a queue. ``json_schema`` is enforced with a llama.cpp grammar, so the judge's
    output always parses. If the worker crashes, this call raises ``WorkerCrashed`` and the kernel
    carries on.
    """

    protocol: ClassVar[str] = "local"
    supports_json_schema: ClassVar[bool] = True
    needs_http: ClassVar[bool] = False

    @staticmethod
    def check_model(model: str, *, will_run: bool) -> None:
        """Refuse at plan time, with one line and no worker started: llama.cpp missing or a malformed
        ``FUSION_MAGIC_LOCAL_*`` setting (when the run will use them), or a name the worker cannot serve.
        Cheap: nothing is loaded or assembled."""
        if will_run:
            check_installed(model)
            check_settings()
        check_local_model(model, need_file=will_run)

    def __init__(self, endpoint: Endpoint | None = None, client: object | None = None) -> None:
        # `client` is the registry's httpx client, unused: nothing here goes over HTTP.
        self.endpoint = endpoint or Endpoint("local", "")

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        job = job_for(request)
        loop = asyncio.get_running_loop()
        # Unbounded: the worker sends at most max_tokens items, and its reader thread must never block.
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def deliver(message: dict[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, message)
            except RuntimeError:  # the loop is closed: nobody will read, so stop generating
                call.cancel()

        call = WorkerCall(job, deliver)
        submit(call)
        finished = False
        # The model answers "Answer: Paris": drop the space after the colon (but not in a prefill,
        # whose continuation the caller appends to its own text).
        leading = job.prompt.endswith("Answer:")
        produced: list[str] = []
        try:
            while True:
                message = await queue.get()
                kind = message.get("t")
                if kind == "start":
                    continue
                if kind == "text":
                    text = str(message["text"])
                    text = text.lstrip() if leading else text
                    if text:
                        leading = False
                        produced.append(text)
                        yield TextDelta(text)
                    continue
                finished = True
                if kind == "end":
                    if request.json_schema is not None and copied_example("".join(produced), request.json_schema):
                        raise ProtocolError(
                            "the local model copied its few-shot example instead of answering (too small to "
                            "write this verdict; a real model or the vote judge will do better)",
                            provider="local", model=job.model)
                    yield Usage(input_tokens=message["input_tokens"], output_tokens=message["output_tokens"],
                                cost_usd=0.0)
                    yield Finished(reason=message.get("reason"), served_model=job.model)
                    return
                if kind == "error":
                    raise error_from_wire(message, job.model)
                if kind == "crashed":
                    raise WorkerCrashed(
                        str(message["message"]), signal=message.get("signal"), exit_code=message.get("exit_code"),
                        stderr_tail=str(message.get("stderr", "")), provider="local", model=job.model)
                raise ServerError("the local worker stopped unasked", provider="local", model=job.model)
        finally:
            if not finished:
                # Closed or cancelled mid-stream: the worker stops within one token and moves on to
                # its next job; nobody needs to wait for that here.
                call.cancel()


__all__ = ["DEFAULT_MAX_TOKENS", "LocalProvider", "job_for"]
