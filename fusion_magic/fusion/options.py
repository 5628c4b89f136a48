"""The options of one fused run, each with its name, default and check in one place.

Every way in builds a ``FuseOptions`` once and the engine takes it: ``%%fuse`` flags (``ipython/args.py``)
over the ``%config FusionMagics`` defaults, ``fuse()``/``afuse()`` keywords over the ``settings=`` defaults
(``api.py``), and ``python -m fusion_magic``. ``tests/test_options.py`` checks that each field has exactly
one flag, one keyword and, where configurable, one trait.

A bad value raises ``ConfigError`` with one line naming the flag, when the options are built: before any
key is looked up or any call is made.

    options = FuseOptions.defaults(Settings()).with_(pool=["local:gemma3-270m"], self_n=3, judge="vote")
    plan = plan_fusion("Why is the sky blue?", Settings(), options)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypedDict

from ..calls.settings import CACHE_MODES, MODES, Settings, check_choice
from ..core.errors import ConfigError

# The options that also have a session default: a ``%config FusionMagics`` trait and a ``Settings`` field
# of the same name. The others (self_n, quorum, deadline, orders, seed) belong to one run only.
CONFIGURABLE = ("pool", "judge", "mode", "rounds", "timeout", "max_tokens", "temperature", "system", "cache")

# --orders: each ordering is one more judge call, paid in full; eight are plenty to see a position bias.
MIN_ORDERS, MAX_ORDERS = 1, 8

# Given as empty, these mean "not given": the layer below (the settings, then the defaults for the keys
# that are set) decides, as an empty -p or -j always has.
_EMPTY_IS_UNSET = frozenset({"pool", "judge", "mode"})


# Providers take a 32-bit seed (Gemini's is an int32); seats add up to a few, repeats 1000 each: room is left.
MAX_SEED = 2_000_000_000


def check_seed(seed: object) -> None:
    """A seed is a whole number in [0, ``MAX_SEED``] or None; ``ConfigError`` otherwise (the evaluation checks
    its own with this)."""
    # bool is an int to Python, but seed=True is a mistake, not seed 1.
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise ConfigError(f"--seed must be a whole number from 0 to {MAX_SEED}")


class FuseKeywords(TypedDict, total=False):
    """The option keywords of ``fuse()``/``afuse()``, typed, in one place (``**options: Unpack[...]``).
    Each is the ``FuseOptions`` field of the same name; one left out (or None) comes from the settings."""

    pool: Sequence[str] | None
    self_n: int | None
    judge: str | None
    mode: str | None
    rounds: int | None
    quorum: int | None
    deadline: float | None
    timeout: float | None
    max_tokens: int | None
    temperature: float | None
    system: str | None
    cache: str | None
    orders: int | None
    seed: int | None


@dataclass(frozen=True)
class FuseOptions:
    """Every option of one fused run, checked when built (``check_seats`` adds the checks that need the
    resolved pool). An empty ``pool`` or ``judge`` means "pick one for the keys that are set";
    ``max_tokens=None`` means each provider's own cap (``requests.output_cap``).

        options = FuseOptions(pool=("openai:gpt-4o", "gemini:gemini-2.5-flash"), judge="vote", quorum=1)
        options.with_(mode="merge").mode   # "merge"
    """

    pool: tuple[str, ...] = ()
    self_n: int | None = None
    judge: str = ""
    mode: str = "best-of"
    rounds: int = 2
    quorum: int | None = None
    deadline: float | None = None
    timeout: float = 120.0
    max_tokens: int | None = None
    temperature: float | None = None
    system: str | None = None
    cache: str = "off"
    # The judge runs on this many orderings of the anonymous answers (its position bias, measured).
    orders: int = 1
    # Repeatable runs: seat i sends seed + i, the judge sends seed, and the judge's order of the answers is
    # drawn from it. None keeps each model's own randomness (the local model draws a seed per call).
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool", tuple(self.pool))  # a list from Python or a trait, frozen like the rest
        check_choice("cache", self.cache, CACHE_MODES)
        check_choice("mode", self.mode, MODES)
        if self.self_n is not None and self.self_n < 2:
            raise ConfigError("--self needs N >= 2 (one model sampled N times)")
        # "not x > 0" rather than "x <= 0": NaN fails it too.
        if self.deadline is not None and not self.deadline > 0:
            raise ConfigError("--deadline must be positive (seconds)")
        if not self.timeout > 0:
            raise ConfigError("--timeout must be positive (seconds)")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError("--max-tokens must be at least 1")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ConfigError("--temperature must be between 0 and 2")
        if self.rounds < 1:
            raise ConfigError("--rounds must be at least 1")
        if isinstance(self.orders, bool) or not isinstance(self.orders, int) or not (
                MIN_ORDERS <= self.orders <= MAX_ORDERS):
            raise ConfigError(f"--orders must be between {MIN_ORDERS} and {MAX_ORDERS}")
        check_seed(self.seed)

    @classmethod
    def defaults(cls, settings: Settings) -> FuseOptions:
        """The options a run has when none is given: the session's (``%config FusionMagics`` or ``Settings``)."""
        return cls(**{name: getattr(settings, name) for name in CONFIGURABLE})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option's name, in field order (what the flags' ``dest`` and ``fuse()``'s keywords use)."""
        return tuple(f.name for f in fields(cls))

    def with_(self, **given: object) -> FuseOptions:
        """A copy with the options given; ``None`` (and an empty pool, judge or mode) means not given."""
        # Each value's type is checked by __post_init__'s comparisons, as the keywords' were before.
        changes: dict[str, Any] = {name: value for name, value in given.items()
                                   if value is not None and not (name in _EMPTY_IS_UNSET and not value)}
        return replace(self, **changes)

    def check_seats(self, seats: int) -> None:
        """The checks that need the pool's size, once the pool is resolved."""
        if self.quorum is not None and not 1 <= self.quorum <= seats:
            raise ConfigError(f"--quorum must be between 1 and the pool size ({seats})")
        if self.mode == "debate" and seats < 2:
            raise ConfigError("debate needs at least two pool members")

    def run_settings(self, settings: Settings) -> Settings:
        """The settings this run's calls see: the session's, with this run's timeout and cache (the call
        layer reads those two from ``Settings``)."""
        return settings.with_(timeout=self.timeout, cache=self.cache)


__all__ = ["CONFIGURABLE", "MAX_ORDERS", "MAX_SEED", "MIN_ORDERS", "FuseKeywords", "FuseOptions", "check_seed"]
