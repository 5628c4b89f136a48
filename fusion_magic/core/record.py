"""One call of any kind, as recorded: what was asked of which model, what came back, what it cost and took.

    r = fusion_magic.complete("openrouter:openai/gpt-4o", "Say hi")
    r.text, r.status, r.cost_usd

Plain data: no network code, no IPython. Job kinds keep their own results (a fused run, a video job) as
lists of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IN_FLIGHT = ("queued", "waiting", "streaming")


@dataclass
class Response:
    """One call to one model.

    ``status`` is ``"ok"`` or the error kind (``"auth"``, ``"rate_limit"``, ``"timeout"``, ...).
    ``text`` keeps whatever arrived, also when the call failed mid-stream. ``cost_usd`` is None when
    the price is unknown (never a silent 0); ``cost_source`` says where the figure came from.

        r = fusion_magic.complete("gemini:gemini-2.5-flash", "2+2?")
        print(r.text, r.latency_s)
    """

    model: str
    text: str = ""
    status: str = "queued"
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

    @property
    def ok(self) -> bool:
        """True when the call finished cleanly."""
        return self.status == "ok"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.describe())

    def describe(self) -> str:
        """A one-line summary with the status, tokens, time and cost."""
        cost = "cost unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        tokens = f"{_n(self.input_tokens)}→{_n(self.output_tokens)} tok"
        secs = "" if self.latency_s is None else f", {self.latency_s:.2f}s"
        err = f" ({self.error})" if self.error else ""
        return f"[{self.status}] {self.model}: {tokens}{secs}, {cost}{err}\n{self.text}"


def _n(v: int | None) -> str:
    return "?" if v is None else str(v)


__all__ = ["IN_FLIGHT", "Response"]
