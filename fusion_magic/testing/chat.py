"""What the text-generation families share: a turn drawn from the script, chunks paced in time, the faults.

A chat family (``families/openai.py``, ``anthropic.py``, ``gemini.py``) subclasses :class:`ChatFamily` and
says how its wire spells things: its chunks, its terminator, its error bodies. This module decides *what*
happens and *when*: how many chunks, which fault, at what time.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import zlib
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ._exchange import ClientGone, ConnectionCut, Exchange
from ._wire import default_message, dumps, sse_headers
from .prompt_cache import explicit_cache, implicit_cache, prompt_units
from .registry import Family, Request
from .script import SCRIPTED, Fault, ModelScript, Reply

_PARTIAL_FAULTS = frozenset({"error_chunk", "cut", "malformed"})
_DEFAULT_SENTENCES = (
    "The short version is that it depends on the details, and the details are worth checking.",
    "A careful answer weighs the evidence first and states its assumptions plainly.",
    "Most of the difficulty lies in the edge cases, so those deserve the most attention.",
    "The simplest explanation that fits the facts is usually the right place to start.",
)


def default_reply(model: str, prompt: str) -> str:
    """The deterministic answer of an unscripted model: says it is scripted, names the model, echoes the
    question (``emu.script(model, ModelScript(reply=...))`` gives it real words)."""
    gist = " ".join(prompt.split())
    if len(gist) > 60:
        gist = gist[:57].rstrip() + "..."
    sentence = _DEFAULT_SENTENCES[zlib.crc32(f"{model}\n{prompt}".encode()) % len(_DEFAULT_SENTENCES)]
    return f'{SCRIPTED} Emulated answer from {model}: you asked "{gist}". {sentence}'


def text_of(content: Any) -> str:
    """Text of a message content that is a string or a list of typed blocks/parts: the text parts only, never an
    image, a PDF or a file part (Gemini's parts have no ``type``; a text one has a ``text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part["text"]) for part in content
                         if isinstance(part, Mapping) and "text" in part and part.get("type", "text") == "text")
    return ""


# ---- attachments: what the real APIs check in the bytes they are sent (shared/reference/attachments.md) ----

# Magic numbers (attachments.md §7): the emulator reads the bytes itself, never the client's word for them.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
PDF = "application/pdf"
_DATA_URL = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.S)
_STANDARD_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_ANY_B64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


def sniff(data: bytes) -> str | None:
    """The MIME type the bytes are (PNG, JPEG, GIF, WebP, PDF), None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


def b64_standard(text: Any) -> bytes | None:
    """Bytes of standard base64 with its padding (RFC 4648 §4), as OpenAI and Anthropic read it; None if it is not."""
    if not isinstance(text, str) or len(text) % 4 or not _STANDARD_B64.match(text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def b64_protobuf(text: Any) -> bytes | None:
    """Bytes of base64 as protobuf JSON reads a ``bytes`` field (Gemini): the standard or URL-safe alphabet,
    padding optional (google-genai itself sends URL-safe). None if it is not base64."""
    if not isinstance(text, str) or not _ANY_B64.match(text):
        return None
    body = text.rstrip("=").replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        return None
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def data_url(url: Any) -> tuple[str, bytes | None] | None:
    """(MIME type, bytes) of a ``data:<mime>;base64,<data>`` URL, bytes None when the payload is no standard
    base64 (or the URL says no ``;base64``); None when ``url`` is no data URL at all."""
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        return None
    mime, params, payload = match.groups()
    if "base64" not in params.lower().split(";"):
        return mime.lower(), None
    return mime.lower(), b64_standard(payload)


def listing(values: Sequence[str], conjunction: str = "and") -> str:
    """``'a', 'b', and 'c'`` as OpenAI's validation messages list allowed values (``'a' and 'b'`` for two)."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return f" {conjunction} ".join(quoted)
    return ", ".join(quoted[:-1]) + f", {conjunction} {quoted[-1]}"


@dataclass(frozen=True)
class Rejection:
    """A 400 the real API answers before streaming, with the fields its error body names besides the message
    (OpenAI's ``param`` and ``code``, Gemini's ``google.rpc.BadRequest`` field). ``validate`` may return one, or
    a plain message."""

    message: str
    param: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Turn:
    """Everything the framing needs to know about one answer, decided before the first byte."""

    family: str
    model: str  # as the client sent it
    served_model: str  # as the response reports it
    response_id: str
    created: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    nl: str = "\n"
    include_usage: bool = False  # OpenAI-style stream_options.include_usage
    usage_choices_empty: bool = False  # OpenRouter's older usage-chunk shape
    # Parts of input_tokens: read from the provider's prompt cache, and written to it (ModelScript).
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        """The prompt tokens neither read from nor written to the cache (Anthropic's ``input_tokens``)."""
        return max(self.input_tokens - self.cached_input_tokens - self.cache_write_tokens, 0)


@dataclass
class Plan:
    """What one chat request will get, decided up front."""

    turn: Turn
    script: ModelScript
    fault: Fault | None
    chunks: list[str]
    finish: str
    stream: bool
    headers: list[tuple[str, str]]


class ChatFamily(Family):
    """A text-generation API: routes its chat endpoint to :meth:`chat` and spells the answer its own way.

        class Anthropic(ChatFamily):
            name = "anthropic"; stop_reason = "end_turn"; length_reason = "max_tokens"
            def routes(self): return [Route("POST", "/anthropic/v1/messages", self.chat)]

    The framing methods (:meth:`preamble` to :meth:`json_body`) return bytes or bodies and do no I/O;
    the hooks below them cover the faults a family answers in its own shape.
    """

    stop_reason: ClassVar[str]  # a clean finish
    length_reason: ClassVar[str]  # truncated at the request's output cap
    # A "blocked" fault answers normally but ends early with this reason; None: the family has its own
    # blocked shape (send_blocked).
    refusal_reason: ClassVar[str | None] = None

    # ---- reading requests ---------------------------------------------------------------------------

    @abstractmethod
    def validate(self, body: Mapping[str, Any]) -> str | Rejection | None:
        """A 400 (its message, or a :class:`Rejection`) for request bodies the real API would reject in ways a
        client bug causes."""

    def rejection_body(self, rejection: str | Rejection, request_id: str) -> Any:
        """The 400 body for what :meth:`validate` refused, in the family's error shape."""
        message = rejection if isinstance(rejection, str) else rejection.message
        return self.error_body(400, message, request_id=request_id)

    def system_text(self, body: Mapping[str, Any]) -> str | None:
        """A system prompt sent beside the messages (Anthropic's ``system``); None where it is a message."""
        return None

    def prompt_texts(self, body: Mapping[str, Any]) -> tuple[str, str]:
        """(all message text including system, last user message) of a decoded request body."""
        system = self.system_text(body)
        texts: list[str] = [] if system is None else [system]
        last_user = ""
        for message in body.get("messages") or []:
            if not isinstance(message, Mapping):
                continue
            text = text_of(message.get("content"))
            texts.append(text)
            if message.get("role") == "user":
                last_user = text
        return "\n".join(texts), last_user

    def max_output_tokens(self, body: Mapping[str, Any]) -> int | None:
        """The request's output cap, under whichever name the family uses."""
        caps = [body.get("max_tokens"), body.get("max_completion_tokens")]
        ints = [c for c in caps if isinstance(c, int) and not isinstance(c, bool)]
        return min(ints) if ints else None

    def model(self, req: Request, body: Mapping[str, Any]) -> str:
        """The model asked for (validated to be there)."""
        return str(body["model"])

    def wants_stream(self, req: Request, body: Mapping[str, Any]) -> bool:
        """Whether the answer is an event stream."""
        return body.get("stream") is True

    @abstractmethod
    def response_id(self, seq: int) -> str:
        """The id of the ``seq``-th response, in the family's format."""

    def reply_headers(self, req: Request, turn: Turn) -> list[tuple[str, str]]:
        """Headers sent with every answer (ids), faults included."""
        return []

    # ---- framing ------------------------------------------------------------------------------------

    def preamble(self, turn: Turn) -> list[bytes]:
        """Events before the first text chunk."""
        return []

    def keepalive(self, turn: Turn) -> bytes | None:
        """What to send about once a second while a slow model thinks (None: stay silent)."""
        return None

    @abstractmethod
    def text(self, turn: Turn, index: int, piece: str, final_reason: str | None) -> list[bytes]:
        """Events for text chunk ``index``; ``final_reason`` is set on the last one of an unfaulted answer."""

    @abstractmethod
    def end(self, turn: Turn, reason: str, reason_sent: bool) -> list[bytes]:
        """Events that close the stream (``reason_sent``: the last text chunk carried the finish)."""

    @abstractmethod
    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        """The in-stream error event(s) after HTTP 200."""

    @abstractmethod
    def malformed(self, turn: Turn) -> bytes:
        """A data line that is not JSON."""

    @abstractmethod
    def json_body(self, turn: Turn, text: str, reason: str) -> Any:
        """The non-streaming answer."""

    @abstractmethod
    def error_body(
        self, status: int, message: str | None = None, *, request_id: str = "", fault: Fault | None = None
    ) -> Any:
        """The JSON body sent with a 4xx/5xx before any stream starts (``fault`` adds its hints)."""

    # ---- hooks for family-shaped faults -------------------------------------------------------------

    def json_answer(self, req: Request, plan: Plan) -> Any:
        """The body of a non-streaming answer (Gemini answers ``streamGenerateContent`` with an array)."""
        return self.json_body(plan.turn, "".join(plan.chunks), plan.finish)

    def fault_headers(self, plan: Plan, fault: Fault) -> list[tuple[str, str]]:
        """Extra headers of a scripted status fault."""
        return [] if fault.retry_after is None else [("retry-after", f"{fault.retry_after:g}")]

    async def send_blocked(self, req: Request, plan: Plan) -> None:
        """Answer a "blocked" fault (only called when ``refusal_reason`` is None)."""
        raise NotImplementedError(f"{self.name} has no refusal_reason and no send_blocked")

    async def send_json_error(self, req: Request, plan: Plan, fault: Fault) -> None:
        """Answer an "error_chunk" fault on a non-streaming request: by default, as a status fault."""
        await self.send_status_fault(req, plan, fault)

    # ---- the route handler --------------------------------------------------------------------------

    async def chat(self, req: Request) -> None:
        """Handle one generation request: check the body, draw the turn, answer it."""
        body = req.body
        if not isinstance(body, Mapping):
            empty = "Request body is not valid JSON." if req.raw_body else "Request body is empty."
            await req.json(400, self.error_body(400, empty, request_id=req.request_id))
            return
        invalid = self.validate(body)
        if invalid is not None:
            await req.json(400, self.rejection_body(invalid, req.request_id))
            return
        model = self.model(req, body)
        try:
            plan = self.plan(req, body, model)
        except Exception as exc:  # a scripted reply callable failed: say so in the family's own words
            message = f"emulator: reply callable for {model!r} raised {exc!r}"
            await req.json(500, self.error_body(500, message, request_id=req.request_id))
            return
        req.record.fault = plan.fault.kind if plan.fault else None
        req.exchange.split = plan.script.split_events
        await self.answer(req, plan)

    def plan(self, req: Request, body: Mapping[str, Any], model: str) -> Plan:
        """Draw the script's next turn for ``model`` and cut it into chunks."""
        cue = req.scripts.draw(model)
        script, fault = cue.script, cue.fault
        all_text, last_user = self.prompt_texts(body)
        reply: Reply = default_reply(model, last_user) if cue.reply is None else cue.reply
        text = reply(body) if callable(reply) else reply

        size = max(1, script.chunk_chars)
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        finish = script.finish_reason or self.stop_reason
        cap = self.max_output_tokens(body)
        if cap is not None and len(chunks) > cap:
            chunks = chunks[: max(cap, 0)]
            finish = self.length_reason
        if fault is not None and fault.kind == "blocked" and self.refusal_reason is not None:
            # A refusal is a normal-looking answer that ends early with the refusal reason.
            chunks = chunks[: fault.after_chunks]
            finish = self.refusal_reason

        input_tokens = script.input_tokens if script.input_tokens is not None else len(all_text) // 4 + 1
        cached, written = script.cached_input_tokens or 0, script.cache_write_tokens or 0
        if script.prompt_cache and script.cached_input_tokens is None:
            cached, written, counted = self.prompt_cache(req, body, model)
            input_tokens = script.input_tokens if script.input_tokens is not None else counted
        output_tokens = script.output_tokens if script.output_tokens is not None else len(chunks)
        cost = script.cost_usd if script.cost_usd is not None else round((input_tokens + output_tokens) * 1e-6, 12)
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True and script.stream_usage
        turn = Turn(
            family=self.name,
            model=model,
            served_model=script.served_model or model,
            response_id=self.response_id(req.seq),
            created=int(time.time()),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            nl="\r\n" if script.crlf else "\n",
            include_usage=include_usage,
            usage_choices_empty=script.usage_choices_empty,
            cached_input_tokens=cached,
            cache_write_tokens=written,
        )
        return Plan(turn, script, fault, chunks, finish, self.wants_stream(req, body), self.reply_headers(req, turn))

    def prompt_cache(self, req: Request, body: Mapping[str, Any], model: str) -> tuple[int, int, int]:
        """(tokens read from the emulated prompt cache, tokens written to it, the prompt's tokens) for this request
        (``testing/prompt_cache.py``): Anthropic caches only what the client marks, the others on their own."""
        units = prompt_units(body, f"{self.name}:{model}")
        book = req.scripts
        with book.locked:
            cache = book.cached_prefixes(model)
            if self.name == "anthropic":
                read, written = explicit_cache(units, cache)
            else:
                read, written = implicit_cache(units, cache), 0
        return read, written, max(1, sum(u.tokens for u in units))

    # ---- answering ----------------------------------------------------------------------------------

    async def answer(self, req: Request, plan: Plan) -> None:
        """Answer a planned turn: its fault first, else the stream or the JSON body."""
        ex, fault = req.exchange, plan.fault
        t0 = ex.record.started
        if fault is not None and fault.kind == "hang":
            await ex.gone.wait()
            raise ClientGone
        if fault is not None and fault.kind == "status":
            await ex.pause_until(t0 + plan.script.ttft_s)
            await self.send_status_fault(req, plan, fault)
            return
        if fault is not None and fault.kind == "blocked" and self.refusal_reason is None:
            await ex.pause_until(t0 + plan.script.ttft_s)
            await self.send_blocked(req, plan)
            return
        if plan.stream:
            await self.answer_stream(req, plan)
        else:
            await self.answer_json(req, plan)

    @staticmethod
    def _slot(plan: Plan, t0: float, index: int) -> float:
        """When text chunk ``index`` is due: the first after ttft, then one per 1/tokens_per_s."""
        rate = plan.script.tokens_per_s
        return t0 + plan.script.ttft_s + (index / rate if rate else 0.0)

    async def answer_stream(self, req: Request, plan: Plan) -> None:
        """The event stream, paced, with a partial fault (error chunk, cut, malformed line) where scripted."""
        ex, turn, fault, chunks = req.exchange, plan.turn, plan.fault, plan.chunks
        t0 = ex.record.started
        stop_at = fault.after_chunks if fault is not None and fault.kind in _PARTIAL_FAULTS else None
        count = len(chunks) if stop_at is None else min(max(stop_at, 0), len(chunks))
        keepalive = self.keepalive(turn)

        await ex.start(200, [*sse_headers(), *plan.headers])
        for piece in self.preamble(turn):
            await self._write(ex, fault, piece)
        reason_sent = False
        for i in range(count):
            await ex.pause_until(self._slot(plan, t0, i), keepalive)
            final = plan.finish if stop_at is None and i == len(chunks) - 1 else None
            reason_sent = final is not None
            for piece in self.text(turn, i, chunks[i], final):
                await self._write(ex, fault, piece)
        if fault is not None and stop_at is not None:
            await ex.pause_until(self._slot(plan, t0, count), keepalive)
            if fault.kind == "cut":
                raise ConnectionCut
            if fault.kind == "error_chunk":
                message = fault.message or default_message(fault.status)
                for piece in self.stream_error(turn, fault.status, message):
                    await self._write(ex, fault, piece)
                await ex.finish()
                return
            await self._write(ex, fault, self.malformed(turn))
        for piece in self.end(turn, plan.finish, reason_sent):
            await self._write(ex, fault, piece)
        await ex.finish()

    async def answer_json(self, req: Request, plan: Plan) -> None:
        """The whole answer at once, when its last chunk would have been streamed."""
        ex, fault, chunks = req.exchange, plan.fault, plan.chunks
        await ex.pause_until(self._slot(plan, ex.record.started, max(len(chunks) - 1, 0)))
        if fault is not None and fault.kind == "error_chunk":
            await self.send_json_error(req, plan, fault)
            return
        data = dumps(self.json_answer(req, plan)).encode()
        if fault is not None and fault.kind == "malformed":
            data = data[: max(len(data) // 2, 1)]
            await ex.start(
                200, [("content-type", "application/json"), ("content-length", str(len(data))), *plan.headers]
            )
            await ex.finish(data)
            return
        await ex.start(200, [("content-type", "application/json"), ("content-length", str(len(data))), *plan.headers])
        if fault is not None and fault.kind == "drip":
            await self._write(ex, fault, data)
            await ex.finish()
            return
        if fault is not None and fault.kind == "cut":
            # Content-Length promises the whole body; half of it then a close is an incomplete read.
            await ex.write(data[: len(data) // 2])
            raise ConnectionCut
        await ex.finish(data)

    @staticmethod
    async def _write(ex: Exchange, fault: Fault | None, data: bytes) -> None:
        """Send part of the body: at once, or under a "drip" fault one byte per ``drip_s``."""
        if fault is None or fault.kind != "drip":
            await ex.write(data)
            return
        for i in range(len(data)):
            if not await ex.pause(fault.drip_s):
                raise ClientGone
            await ex.write(data[i : i + 1])

    async def send_status_fault(self, req: Request, plan: Plan, fault: Fault) -> None:
        """A scripted 4xx/5xx with the family's error body and hint headers."""
        body = self.error_body(fault.status, fault.message, request_id=req.request_id, fault=fault)
        await req.json(fault.status, body, [*plan.headers, *self.fault_headers(plan, fault)])


__all__ = ["IMAGE_TYPES", "PDF", "ChatFamily", "Plan", "Rejection", "Turn", "b64_protobuf", "b64_standard",
           "data_url", "default_reply", "listing", "sniff", "text_of"]
