"""One call of any kind, as recorded: what was asked of which model, what came back, what it cost and took.

    r = fusion_magic.complete("openrouter:openai/gpt-4o", "Say hi")
    r.text, r.status, r.cost_usd

Plain data: no network code, no IPython. Job kinds keep their own results (a fused run, a video job) as
lists of these. Usage is counted in the units calls are billed in: tokens (chat, video understanding),
seconds of generated video, or clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .state import State, StatusWord


@dataclass
class CallRecord:
    """One call to one model: a chat answer, a generated clip, a question about a video.

    ``state`` is where it stands (``core.state.State``) and ``failure`` the kind of a failure (``"auth"``,
    ``"rate_limit"``, ``"timeout"``, ...); ``status`` is both as the one word files have always held (``"ok"``,
    an in-flight word, ``"pending"``, or the failure kind), and setting it sets them. ``note`` says something
    about how the call stands that is not an error (why a video job is pending). ``text`` keeps whatever
    arrived, also when the call failed mid-stream. ``cost_usd`` is None when
    the price is unknown (never a silent 0); ``cost_source`` says where the figure came from.

        r = fusion_magic.complete("gemini:gemini-2.5-flash", "2+2?")
        print(r.text, r.latency_s)
    """

    model: str
    text: str = ""
    status: StatusWord = StatusWord(State.QUEUED, kinds=True)  # noqa: RUF009 (a descriptor: one per class)
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    # "reported" by the provider, or "counted" by us when it streamed no usage (output: the stream's
    # text chunks, one token each on llama.cpp, Ollama and vLLM; input: characters / 4).
    tokens_source: str = "reported"
    cost_usd: float | None = None
    cost_source: str = "unknown"
    ttft_s: float | None = None
    latency_s: float | None = None
    http_status: int | None = None
    finish_reason: str | None = None
    attempts: int = 0
    role: str = "member"
    round: int = 0
    late: bool = False
    call_id: int = 0
    label: str | None = None
    served_model: str | None = None  # OpenRouter may serve a fallback model
    request_id: str | None = None  # the provider's id, for support tickets
    # Video generation is billed by seconds of output or per clip, not by tokens. Added last, so the
    # fields above keep their positions for callers that build a record positionally.
    video_seconds: float | None = None
    clips: int | None = None
    # A call answered from the cache costs nothing now (``cost_usd`` 0); this is what it cost when it was
    # recorded (None: unknown, or not a replay), so an evaluation can price a resumed strategy exactly.
    recorded_cost_usd: float | None = None
    # The judge's ordering of the answers with --orders (1, 2, ...); 0 for every other call. A debate round is
    # ``round``: the two never share a field.
    ordering: int = 0
    note: str | None = None
    # Of ``input_tokens``, how many the provider read from its prompt cache (billed at its cached rate); None
    # when it reported none.
    cached_input_tokens: int | None = None
    # Of ``input_tokens``, how many the provider wrote to its prompt cache (Anthropic bills them at 1.25x its
    # input rate); None when it reported none written.
    cache_write_input_tokens: int | None = None
    # The provider's batch that answered this call (``evaluate(..., batch=True)``); None for a live call. A
    # batch call is priced at the provider's batch rate (``cost_source`` says so).
    batch_id: str | None = None
    # A structured analysis the provider itself returned with the answer (OpenRouter's Fusion router: consensus,
    # contradictions, partial coverage ...), as it sent it; None for every other call.
    provider_analysis: dict[str, Any] | None = None
    # What ``status`` reads and writes (see the class docstring); set one or the other.
    state: State = field(default=State.QUEUED, init=False, repr=False)
    failure: str | None = field(default=None, init=False, repr=False)

    @property
    def ok(self) -> bool:
        """True when the call finished cleanly."""
        return self.state is State.DONE

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.describe())

    def describe(self) -> str:
        """A one-line summary with the status, usage, time and cost."""
        cost = "cost unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        usage = ", ".join(self.usage_figures())
        secs = "" if self.latency_s is None else f", {self.latency_s:.2f}s"
        err = f" ({self.error})" if self.error else f" ({self.note})" if self.note else ""
        return f"[{self.status}] {self.model}: {usage}{secs}, {cost}{err}\n{self.text}"

    def usage_figures(self, *, mark_counted: bool = False) -> list[str]:
        """The usage in each unit the call has: ``["12→54 tok"]``, ``["1200→54 tok (1000 cached)"]``,
        ``["8 s of video", "1 clip"]``.

        An unknown token count reads ``?``; prompt tokens read from (or written to) the provider's cache are named
        in brackets, only when there are some. Tokens are shown for every call except one that reports only
        video usage. ``mark_counted`` prefixes token counts we counted ourselves (not the server) with ``~``.
        """
        has_tokens = self.input_tokens is not None or self.output_tokens is not None
        video = self.video_seconds is not None or self.clips is not None
        figures = []
        if has_tokens or not video:
            mark = "~" if mark_counted and self.tokens_source == "counted" else ""
            cache = cache_words(self.cached_input_tokens, self.cache_write_input_tokens)
            figures.append(f"{mark}{_count(self.input_tokens)}→{mark}{_count(self.output_tokens)} tok"
                           + (f" ({cache})" if cache else ""))
        if self.video_seconds is not None:
            figures.append(f"{self.video_seconds:g} s of video")
        if self.clips is not None:
            figures.append(f"{self.clips} clip" + ("" if self.clips == 1 else "s"))
        return figures


# The name chat code and users already know: the same class.
Response = CallRecord


def _count(v: int | None) -> str:
    return "?" if v is None else str(v)


def cache_words(cached: object, written: object) -> str:
    """``"1000 cached"``, ``"1000 cached, 200 written"``, or ``""`` when neither count is above 0: how many of a
    call's prompt tokens the provider read from its cache and wrote to it."""
    parts = [f"{n} {word}" for n, word in ((cached, "cached"), (written, "written"))
             if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    return ", ".join(parts)


__all__ = ["CallRecord", "Response", "cache_words"]
