"""How the emulator is told to behave, per model: what to answer, how fast, what it costs, what breaks.

    emu.script("gpt-4o", ModelScript(reply="Paris.", ttft_s=0.2, tokens_per_s=50))
    emu.script("claude-x", ModelScript(faults=[Fault("status", status=529, times=2)]))

:class:`ScriptBook` keeps the scripts and per-model counters an Emulator draws from, one :class:`Cue` per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

# What every text the emulator writes by itself starts with (an unscripted model's answer, a video model's
# default answer about a clip, a scripted judge's default reasoning), so a reader never takes it for a model's.
SCRIPTED = "[scripted by fusion_magic.testing]"

FaultKind = Literal[
    "status",  # reply with `status` and the family's real error body before any stream starts
    "error_chunk",  # HTTP 200, then (after `after_chunks` text chunks) the family's in-stream error event
    "cut",  # HTTP 200, `after_chunks` text chunks, then the connection closes with no terminator
    "malformed",  # HTTP 200, `after_chunks` text chunks, then a data line that is not JSON
    "hang",  # accept the request and never answer until the client goes away
    "blocked",  # Gemini: 200 with promptFeedback.blockReason; others: their refusal/moderation shape
    "drip",  # HTTP 200, then the whole answer one byte at a time, `drip_s` apart: every read gets a byte in
    #          time, so only the caller's total deadline (not a read timeout) ends it
]


@dataclass
class Fault:
    """One scripted failure. ``times`` limits it to the first N requests for that model (then it
    answers normally), which is how retry tests are written; None means every request. ``skip`` lets
    the first requests through first (a debate whose revision round fails)."""

    kind: FaultKind
    status: int = 500
    after_chunks: int = 0
    retry_after: float | None = None
    message: str | None = None
    times: int | None = None
    skip: int = 0
    # OpenRouter's 402 flavours: "openrouter_in_flight_budget", "openrouter_credits", ...
    limit_source: str | None = None
    # OpenRouter 402 ``metadata.reason``; None picks the documented one for ``limit_source``
    # ("in_flight_budget_exhausted" for the in-flight budget, none for the others).
    reason: str | None = None
    # A "drip" fault's pause before each byte of the body (seconds).
    drip_s: float = 1.0


# A reply may be computed from the decoded JSON request body (e.g. a judge that reads the answers).
Reply = str | Callable[[Mapping[str, Any]], str]


@dataclass
class ModelScript:
    """Behaviour of one emulated model.

    ``replies`` (if given) are used in turn, one per request, then the last repeats; otherwise
    ``reply``. Usage defaults: input tokens = prompt characters // 4 + 1, output tokens = number of
    streamed chunks. ``cost_usd`` is what OpenRouter reports in ``usage.cost`` (other families
    report no cost, as the real APIs do).

    ``cached_input_tokens`` (prompt tokens read from the provider's cache) and ``cache_write_tokens`` (prompt
    tokens written to it) are parts of the whole prompt, ``input_tokens``; each family reports them in its own
    usage shape: OpenAI/OpenRouter ``prompt_tokens_details.cached_tokens`` (OpenRouter also
    ``cache_write_tokens``), Anthropic ``cache_read_input_tokens``/``cache_creation_input_tokens`` with its
    ``input_tokens`` excluding both, Gemini ``cachedContentTokenCount`` (inside ``promptTokenCount``; Gemini
    bills no cache writes per request, so it reports none).

        emu.script("claude-x", ModelScript(input_tokens=1200, cached_input_tokens=1000))
        # usage: input_tokens 200, cache_read_input_tokens 1000, cache_creation_input_tokens 0
    """

    reply: Reply = "This is the emulator's answer."
    replies: list[Reply] | None = None
    ttft_s: float = 0.0
    tokens_per_s: float | None = None
    chunk_chars: int = 8
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    # Report cached tokens as the provider's prompt cache would (testing/prompt_cache.py): the longest earlier
    # request's prefix this one repeats. Scripted counts above win.
    prompt_cache: bool = False
    finish_reason: str | None = None
    faults: list[Fault] = field(default_factory=list)
    # The model the response says served it (OpenRouter fallbacks answer with another model).
    served_model: str | None = None
    # Wire-robustness knobs from the emulator checklist: CRLF line ends, and every SSE event written
    # in two pieces split mid-line so the client's parser must reassemble it across reads.
    crlf: bool = False
    split_events: bool = False
    # OpenRouter's older documented usage chunk, ``"choices": []``, instead of the content-free choice.
    usage_choices_empty: bool = False
    # False: a server that streams no usage even when asked with stream_options.include_usage
    # (llama-cpp-python's server, some LM Studio and Ollama versions). OpenAI-style families only.
    stream_usage: bool = True
    # What OpenRouter's model list says the model reads (``architecture.input_modalities``); ("text",) makes a
    # text-only model, which a client should refuse images for before it asks.
    input_modalities: tuple[str, ...] = ("text", "image", "file")


@dataclass(frozen=True)
class Cue:
    """What one request for a model draws from the book: its script, the fault it gets (if any), and
    the reply to give (None: the model is unscripted, so the family answers with ``default_reply``)."""

    script: ModelScript
    fault: Fault | None
    reply: Reply | None


def fault_for(faults: Sequence[Fault], nth: int) -> Fault | None:
    """The fault the ``nth`` request (from 0) to a model gets: the first whose ``skip``/``times`` window holds it."""
    return next((f for f in faults if nth >= f.skip and (f.times is None or nth < f.skip + f.times)), None)


S = TypeVar("S")


class Scripts(Generic[S]):
    """Scripts by model name, thread-safe (tests write from their thread while the server thread reads); a
    book adds what it counts and clears it in ``_forget``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, S] = {}

    def set(self, model: str, script: S) -> None:
        """Script ``model``, replacing an earlier script."""
        with self._lock:
            self._scripts[model] = script

    def get(self, model: str) -> S | None:
        """The script of ``model``, None when it has none."""
        with self._lock:
            return self._scripts.get(model)

    def models(self) -> list[str]:
        """The scripted model names, oldest first."""
        with self._lock:
            return list(self._scripts)

    def clear(self) -> None:
        """Forget every script and whatever the book counted."""
        with self._lock:
            self._scripts.clear()
            self._forget()

    def _forget(self) -> None:
        """Clear the book's own counters (called under the lock)."""


class ScriptBook(Scripts["ModelScript"]):
    """Chat scripts by model name and how often each model was asked and answered.

        book.set("gpt-4o", ModelScript(reply="Paris.")); cue = book.draw("gpt-4o")
    """

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[str, int] = {}
        self._answered: dict[str, int] = {}
        # Per model, the prompt prefixes the emulated prompt cache holds: their key and token count.
        self._prefixes: dict[str, dict[str, int]] = {}

    def _forget(self) -> None:
        self._counts.clear()
        self._answered.clear()
        self._prefixes.clear()

    def cached_prefixes(self, model: str) -> dict[str, int]:
        """The prompt cache of ``model`` (prefix key -> tokens), for the caller to read and add to under the
        book's lock (``locked``)."""
        return self._prefixes.setdefault(model, {})

    @property
    def locked(self) -> threading.Lock:
        """The book's lock, for a read-then-write of ``cached_prefixes``."""
        return self._lock

    def draw(self, model: str) -> Cue:
        """Count one request for ``model`` and say what it gets."""
        with self._lock:
            script = self._scripts.get(model)
            scripted = script is not None
            script = script or ModelScript()
            nth = self._counts.get(model, 0)
            self._counts[model] = nth + 1
            fault = fault_for(script.faults, nth)
            # Replies advance only on answers without a fault, so "fail twice, then answer" scripts
            # still start from the first reply.
            answered = self._answered.get(model, 0)
            if fault is None:
                self._answered[model] = answered + 1
        reply: Reply | None
        if not scripted:
            reply = None
        elif script.replies:
            reply = script.replies[min(answered, len(script.replies) - 1)]
        else:
            reply = script.reply
        return Cue(script, fault, reply)
