"""What a call costs when the provider does not say.

The provider's own figure wins (OpenRouter reports ``usage.cost``). Otherwise we price the call's usage
with the tables below, in the unit its price has: tokens (chat, video understanding), seconds of
generated video, or clips. Prompt tokens the provider read from its prompt cache are billed at its cached
rate, and those it wrote to the cache (Anthropic) at its cache-write rate (``_CACHE_TABLE``). A model missing
from the tables has an unknown price: ``None``, shown as unknown, never 0.

    price = price_for("anthropic:claude-sonnet-4-5")
    price.cost(input_tokens=1000, output_tokens=200)
    price.cost(1200, 54, cached_input_tokens=1000)   # 200 at the input rate, 1000 at the cached rate
    price_record(record, settings.prices)  # fills record.cost_usd and cost_source
    table_age_note()  # a line to show beside the table's prices once they are over 90 days old, else None
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import TypeAlias

from .record import CallRecord

# USD per million tokens (input, output). Transcribed from the vendors' public pricing pages
# (openai.com/api/pricing, docs.anthropic.com pricing, ai.google.dev/gemini-api/docs/pricing);
# standard tier, no batch discount, prompts under the long-context threshold. Prices drift: check the
# pages before trusting a total, and add models with %config FusionMagics.prices.
TABLE_DATE = date(2025, 10, 1)
TABLE_SOURCE = f"price table {TABLE_DATE.isoformat()}"
# Vendors change prices every few months: past this age, wherever the table's prices are shown, one line
# says how old they are (``table_age_note``).
STALE_AFTER_DAYS = 90

_TABLE: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    # Anthropic
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-haiku-4-5": (1.00, 5.00),
    # Google
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}

# Prompt caching, USD per million tokens: (cache read, cache write, source) for each model of _TABLE whose vendor
# publishes a cached rate. Each vendor's rule, with where it is written:
ANTHROPIC_CACHE_SOURCE = ("Anthropic pricing (docs.claude.com/en/docs/about-claude/pricing, prompt caching): "
                          "5-minute cache writes 1.25x the input rate, cache hits 0.1x")
ANTHROPIC_CACHE_READ, ANTHROPIC_CACHE_WRITE = 0.1, 1.25
OPENAI_CACHE_SOURCE = ("OpenAI pricing (openai.com/api/pricing), each model's 'cached input' rate; writing the "
                       "cache costs nothing extra")
GEMINI_CACHE_SOURCE = ("Gemini API pricing (ai.google.dev/gemini-api/docs/pricing) as of 2025-10, 'context "
                       "caching': 25% of the input rate for the 2.5 and 2.0 Flash models (no per-request write "
                       "charge; explicit caches' hourly storage is not a call's cost)")
_GEMINI_CACHE_READ = 0.25


def _share(rate: float, share: float) -> float:
    """``share`` of a USD-per-million rate, without float noise (0.1 x 3.00 is 0.3, not 0.30000000000000004)."""
    return round(rate * share, 9)


_CACHE_TABLE: dict[str, tuple[float, float, str]] = {
    # OpenAI: the cached input column (gpt-4o 50%, gpt-4.1 and o-series 25%, gpt-5 family 10% of input).
    "gpt-4o": (1.25, 2.50, OPENAI_CACHE_SOURCE),
    "gpt-4o-mini": (0.075, 0.15, OPENAI_CACHE_SOURCE),
    "gpt-4.1": (0.50, 2.00, OPENAI_CACHE_SOURCE),
    "gpt-4.1-mini": (0.10, 0.40, OPENAI_CACHE_SOURCE),
    "gpt-4.1-nano": (0.025, 0.10, OPENAI_CACHE_SOURCE),
    "gpt-5": (0.125, 1.25, OPENAI_CACHE_SOURCE),
    "gpt-5-mini": (0.025, 0.25, OPENAI_CACHE_SOURCE),
    "gpt-5-nano": (0.005, 0.05, OPENAI_CACHE_SOURCE),
    "o3": (0.50, 2.00, OPENAI_CACHE_SOURCE),
    "o4-mini": (0.275, 1.10, OPENAI_CACHE_SOURCE),
    # Anthropic: the same multipliers for every model (ANTHROPIC_CACHE_SOURCE).
    **{name: (_share(inp, ANTHROPIC_CACHE_READ), _share(inp, ANTHROPIC_CACHE_WRITE), ANTHROPIC_CACHE_SOURCE)
       for name, (inp, _) in _TABLE.items() if name.startswith("claude")},
    # Google: a quarter of the input rate (GEMINI_CACHE_SOURCE); 2.0 Flash-Lite lists no cached rate.
    **{name: (_share(_TABLE[name][0], _GEMINI_CACHE_READ), _TABLE[name][0], GEMINI_CACHE_SOURCE)
       for name in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash")},
}

# A rough rule for English text with today's tokenizers, used where no tokenizer is at hand.
CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """A rough token count for ``text`` (characters / 4, at least 1): an estimate, never a report."""
    return len(text) // CHARS_PER_TOKEN + 1


# The built-in providers that run on the user's own machine: their calls cost nothing and need no key.
# Kept in core, the lowest layer, so pricing and the provider registry above it (its key_required) read
# one list.
FREE_PROVIDERS = frozenset({"local", "ollama", "vllm", "llamacpp", "lmstudio"})


USER_SOURCE = "user price (%config FusionMagics.prices)"


@dataclass(frozen=True)
class Price:
    """What a model charges, per unit of usage, and where the figure came from.

    A rate of 0 means the unit is not billed; every rate 0 is a free model. Token prices are per million
    tokens (input, output); video generation is billed per second of output video or per clip. Prompt tokens
    read from the provider's cache cost ``cached_input_per_mtok`` and those written to it ``cache_write_per_mtok``
    (None: no such rate is known, so they cost the input rate); ``cache_source`` says where those two came from.

        Price(3.00, 15.00, "vendor page").cost(input_tokens=1000, output_tokens=200)   # 0.006
        Price(3.00, 15.00, cached_input_per_mtok=0.30).cost(1200, 0, cached_input_tokens=1000)  # 0.0009
        Price(per_second=0.40, source="vendor page").cost(video_seconds=8)             # 3.2
    """

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    source: str = ""
    per_second: float = 0.0
    per_clip: float = 0.0
    # Added last, so callers that build a Price positionally keep working.
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    cache_source: str = ""

    @property
    def free(self) -> bool:
        """A model on the user's own machine: it costs nothing whatever its usage."""
        return not (self.input_per_mtok or self.output_per_mtok or self.per_second or self.per_clip)

    def cost(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        *,
        cached_input_tokens: int | None = None,
        cache_write_input_tokens: int | None = None,
        video_seconds: float | None = None,
        clips: int | None = None,
    ) -> float | None:
        """USD for the given usage; None if a billed unit's amount is unknown (a partial figure would
        mislead). Units the price does not bill are ignored.

        ``cached_input_tokens`` and ``cache_write_input_tokens`` are parts of ``input_tokens`` (as every provider
        reports them here): the rest of the prompt costs the input rate, the cached part the cached rate, the
        written part the cache-write rate."""
        if self.free:
            return 0.0
        total = 0.0
        if self.input_per_mtok or self.output_per_mtok:
            if input_tokens is None or output_tokens is None:
                return None
            total += (self._input_cost(input_tokens, cached_input_tokens or 0, cache_write_input_tokens or 0)
                      + output_tokens * self.output_per_mtok) / 1e6
        if self.per_second:
            if video_seconds is None:
                return None
            total += video_seconds * self.per_second
        if self.per_clip:
            if clips is None:
                return None
            total += clips * self.per_clip
        return total

    def _input_cost(self, input_tokens: int, cached: int, written: int) -> float:
        """USD x 1e6 for a prompt of ``input_tokens``, ``cached`` of them read from the cache and ``written`` to it
        (each clamped into the prompt: a count past it is a provider's slip, never a negative charge)."""
        cached = min(max(cached, 0), input_tokens)
        written = min(max(written, 0), input_tokens - cached)
        read_rate = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        write_rate = self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        return (input_tokens - cached - written) * self.input_per_mtok + cached * read_rate + written * write_rate

    def cost_of(self, record: CallRecord) -> float | None:
        """USD for one recorded call, from its usage in whichever units this price bills."""
        return self.cost(record.input_tokens, record.output_tokens, cached_input_tokens=record.cached_input_tokens,
                         cache_write_input_tokens=record.cache_write_input_tokens,
                         video_seconds=record.video_seconds, clips=record.clips)

    def unpriced_cache(self, record: CallRecord) -> str | None:
        """Words for the source when ``record`` has cache reads or writes this price has no rate for (they were
        billed at the input rate), else None."""
        missing = [word for count, rate, word in (
            (record.cached_input_tokens, self.cached_input_per_mtok, "cached"),
            (record.cache_write_input_tokens, self.cache_write_per_mtok, "cache-written"))
            if count and rate is None]
        if not missing or self.free:
            return None
        return f"{' and '.join(missing)} input at the input rate (no rate known)"


# A user's price: (input, output) USD per million tokens as %config takes it, or a Price for other units.
UserPrice: TypeAlias = tuple[float, float] | Price


# Video models billed per second of output (720p). No vendor page could be read from here: these are
# third-party transcriptions (shared/reference/video-apis.md §2.6 and §3), and the source says so wherever
# a cost is shown. A user's own figure (%config VideoMagics.prices) wins.
VIDEO_TABLE_SOURCE = "third-party price list 2026-09 (unconfirmed)"
# A key "model@resolution" prices that resolution; the plain key is the 720p price.
_UNIT_TABLE: dict[str, Price] = {
    "veo-3.1-generate": Price(per_second=0.40, source=VIDEO_TABLE_SOURCE),
    "veo-3.1-generate@4k": Price(per_second=0.60, source=VIDEO_TABLE_SOURCE),
    "veo-3.1-fast-generate": Price(per_second=0.10, source=VIDEO_TABLE_SOURCE),
    "veo-3.1-fast-generate@1080p": Price(per_second=0.12, source=VIDEO_TABLE_SOURCE),
    "veo-3.1-fast-generate@4k": Price(per_second=0.30, source=VIDEO_TABLE_SOURCE),
    "veo-3.1-lite-generate": Price(per_second=0.05, source=VIDEO_TABLE_SOURCE),
    "veo-3.1-lite-generate@1080p": Price(per_second=0.08, source=VIDEO_TABLE_SOURCE),
    "gemini-omni-flash": Price(per_second=0.10, source=VIDEO_TABLE_SOURCE),
    "gemini-omni-1.1-flash": Price(per_second=0.10, source=VIDEO_TABLE_SOURCE),
    "gemini-omni-1.2-flash": Price(per_second=0.10, source=VIDEO_TABLE_SOURCE),
}


def _with_cache(price: Price, name: str) -> Price:
    """``price`` with the cache rates of bundled model ``name``, where it has none of its own and they are known;
    any Anthropic model (``name`` starting ``claude``) with Anthropic's multipliers of its input rate."""
    if price.cached_input_per_mtok is not None or price.cache_write_per_mtok is not None or price.free:
        return price
    if name in _CACHE_TABLE and (price.input_per_mtok, price.source) == (_TABLE[name][0], TABLE_SOURCE):
        read, write, source = _CACHE_TABLE[name]
    elif name.startswith("claude"):
        read, write, source = (_share(price.input_per_mtok, ANTHROPIC_CACHE_READ),
                               _share(price.input_per_mtok, ANTHROPIC_CACHE_WRITE), ANTHROPIC_CACHE_SOURCE)
    else:
        return price
    return replace(price, cached_input_per_mtok=read, cache_write_per_mtok=write, cache_source=source)


_BUNDLED: dict[str, Price] = {
    **{name: _with_cache(Price(inp, out, TABLE_SOURCE), name) for name, (inp, out) in _TABLE.items()},
    **_UNIT_TABLE,
}


def normalise_model(model: str) -> str:
    """The name a table of known models reads (prices, context windows): ``anthropic/claude-3.7-sonnet`` and
    ``claude-3-7-sonnet-20250219`` -> ``claude-3-7-sonnet``."""
    name = model.rsplit("/", 1)[-1].lower()
    name = name.split(":", 1)[0]  # OpenRouter variants such as ":free" are priced by OpenRouter itself
    name = re.sub(r"(?<=\d)\.(?=\d)", "-", name) if name.startswith("claude") else name
    name = re.sub(r"-(\d{8}|latest|preview(-[\w-]+)?)$", "", name)
    return name


def _user_price(value: UserPrice) -> Price:
    if isinstance(value, Price):
        return value if value.source else replace(value, source=USER_SOURCE)
    inp, out = value
    return Price(inp, out, USER_SOURCE)


def price_for(model_id: str, extra: Mapping[str, UserPrice] | None = None, *,
              resolution: str | None = None) -> Price | None:
    """The price of ``provider:model``, or None when unknown. ``extra`` (user prices) wins. A video model's
    ``resolution`` picks its ``model@resolution`` row where the table has one. A user's price for a Claude model
    gets Anthropic's cache multipliers; for any other model, cache rates only where the user's ``Price`` has them."""
    provider, _, model = model_id.partition(":")
    if provider in FREE_PROVIDERS:
        return Price(source="local model (free)")
    name = normalise_model(model)
    keys: tuple[str, ...] = (model, name)
    if resolution:
        keys = (f"{model}@{resolution}", f"{name}@{resolution}", *keys)
    if extra:
        # A protocol's own table keys its rows by the full id ("runway:veo3.1"): Runway's rate for its Veo is not
        # fal's or Gemini's. Those rows are looked up first, and only for their own provider.
        full = (f"{model_id}@{resolution}", model_id) if resolution else (model_id,)
        for key in (*full, *keys):
            if key in extra:
                return _with_cache(_user_price(extra[key]), name)
    for key in keys[:-2] if resolution else ():
        if key in _BUNDLED:
            return _BUNDLED[key]
    if name in _BUNDLED:
        return _BUNDLED[name]
    # A dated or versioned release of a known model ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929",
    # "gemini-1.5-pro-002", "...-latest") costs what the model costs. Another suffix names another model
    # ("gpt-5-pro", "o3-mini"), often at another price: unknown, never a wrong figure.
    for known in sorted(_BUNDLED, key=len, reverse=True):
        if name.startswith(known + "-") and _RELEASE_SUFFIX.fullmatch(name[len(known) + 1:]):
            return _BUNDLED[known]
    return None


_RELEASE_SUFFIX = re.compile(r"\d[\d-]*|latest|preview(?:-[\d-]+)?|exp(?:-[\d-]+)?")


def price_record(record: CallRecord, extra: Mapping[str, UserPrice] | None = None, *,
                 resolution: str | None = None) -> None:
    """Set ``record.cost_usd`` and ``cost_source`` from our prices, in the units the record was billed in.

    The provider's own figure wins; a model on the user's machine is free whatever it reported. An unknown
    price, or usage missing in a billed unit, leaves the cost as it was (None: unknown, never 0). Cache reads
    and writes cost their rates; where the price has none, the input rate, and the source says so.
    """
    price = price_for(record.model, extra, resolution=resolution)
    if price is None or (record.cost_source != "unknown" and not price.free):
        return
    cost = price.cost_of(record)
    if cost is not None:
        unpriced = price.unpriced_cache(record)
        record.cost_usd, record.cost_source = cost, price.source + (f"; {unpriced}" if unpriced else "")


def table_age_note(today: date | None = None, *, as_of: date = TABLE_DATE,
                   stale_after_days: int = STALE_AFTER_DAYS) -> str | None:
    """One line to show beside prices from a table dated ``as_of`` once it is more than ``stale_after_days``
    old on ``today`` (default: the local date), else None.

        table_age_note(date(2026, 5, 9))  # "prices as of 2025-10-01 (220 days old): check ..."
    """
    age = ((today or date.today()) - as_of).days
    if age <= stale_after_days:
        return None
    return (f"prices as of {as_of.isoformat()} ({age} days old): check the provider's page; "
            "%config FusionMagics.prices sets your own")


def known_prices() -> dict[str, tuple[float, float]]:
    """A copy of the bundled token table (model -> (input, output) USD per million tokens)."""
    return dict(_TABLE)
