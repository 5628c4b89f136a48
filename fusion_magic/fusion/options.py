"""The options of one fused run, each declared once: name, type, default, check, flag, help line and, where
it has a session default, its ``%config FusionMagics`` trait (``core/option.py``).

Every way in builds a ``FuseOptions`` once and the engine takes it: ``%%fuse`` flags (``ipython/args.py``,
generated from these fields) over the ``%config FusionMagics`` defaults (traits generated from them too),
``fuse()``/``afuse()`` keywords over the ``settings=`` defaults (``api.py``), and ``python -m fusion_magic``.
``tests/test_options.py`` checks that each field has its flag, its keyword, its help line and, where
configurable, its trait and ``Settings`` field.

A bad value raises ``ConfigError`` with one line naming the flag, when the options are built: before any
key is looked up or any call is made.

    options = FuseOptions.defaults(Settings()).with_(pool=["local:gemma3-270m"], self_n=3, judge="vote")
    plan = plan_fusion("Why is the sky blue?", Settings(), options)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from ..calls.settings import CACHE_MODES, MODES, Settings
from ..core.attachment import Attachment, load_attachments
from ..core.errors import ConfigError
from ..core.option import at_least, check_options, check_that, declared, one_of, option, whole_number

# --orders: each ordering is one more judge call, paid in full; eight are plenty to see a position bias.
MIN_ORDERS, MAX_ORDERS = 1, 8

# Given as empty, these mean "not given": the layer below (the settings, then the defaults for the keys
# that are set) decides, as an empty -p or -j always has.
_EMPTY_IS_UNSET = frozenset({"pool", "judge", "mode"})


# A follow-up's members see the fused answers as the assistant turns (``fused``), or each its own (``own``).
THREADS = ("fused", "own")

# Providers take a 32-bit seed (Gemini's is an int32); seats add up to a few, repeats 1000 each: room is left.
MAX_SEED = 2_000_000_000


def check_seed(seed: object) -> None:
    """A seed is a whole number in [0, ``MAX_SEED``] or None; ``ConfigError`` otherwise (the evaluation checks
    its own with this)."""
    # bool is an int to Python, but seed=True is a mistake, not seed 1.
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise ConfigError(f"--seed must be a whole number from 0 to {MAX_SEED}")


class FuseKeywords(TypedDict, total=False):
    """The option keywords of ``fuse()``/``afuse()`` for a type checker (``**options: Unpack[...]``): each is
    the ``FuseOptions`` field of the same name, or None (left out: from the settings). A TypedDict cannot be
    generated where mypy sees it; ``tests/test_options.py`` holds these to the fields, name and type."""

    pool: Sequence[str] | None
    self_n: int | None
    judge: str | None
    mode: str | None
    rounds: int | None
    orders: int | None
    quorum: int | None
    deadline: float | None
    timeout: float | None
    max_tokens: int | None
    temperature: float | None
    seed: int | None
    system: str | None
    cache: str | None
    attach: Sequence[object] | None
    thread: str | None


def _positive_seconds(flag: str) -> Any:
    # "not x > 0" rather than "x <= 0": NaN fails it too.
    return check_that(lambda v: v > 0, f"{flag} must be positive (seconds)")


@dataclass(frozen=True)
class FuseOptions:
    """Every option of one fused run, checked when built (``check_seats`` adds the checks that need the
    resolved pool). An empty ``pool`` or ``judge`` means "pick one for the keys that are set";
    ``max_tokens=None`` means each provider's own cap (``requests.output_cap``). The fields are in the order
    of ``%%fuse``'s help.

        options = FuseOptions(pool=("openai:gpt-4o", "gemini:gemini-2.5-flash"), judge="vote", quorum=1)
        options.with_(mode="merge").mode   # "merge"
    """

    pool: tuple[str, ...] = option(
        (), "-p", "--pool", metavar="IDS", items="provider:model id",
        help="comma-separated provider:model ids (default: %config FusionMagics.pool)",
        config="Default pool of provider:model ids; empty picks defaults from the keys set.")
    self_n: int | None = option(
        None, "--self", metavar="N", help="ask the first pool model N times, one seed each",
        check=check_that(lambda v: v >= 2, "--self needs N >= 2 (one model sampled N times)"))
    judge: str = option(
        "", "-j", "--judge", metavar="ID", help="judge model id, or vote (a free, model-free majority vote)",
        config="Default judge id, or 'vote'; empty picks a default.")
    mode: str = option(
        "best-of", "-m", "--mode", metavar="MODE", choices=MODES, help="{choices} (default best-of)",
        check=one_of("mode", MODES), config="Default fusion mode.")
    rounds: int = option(
        2, "-r", "--rounds", metavar="N", help="debate rounds (default 2)",
        check=at_least(1, "--rounds must be at least 1"), config="Debate rounds.")
    # The judge runs on this many orderings of the anonymous answers (its position bias, measured).
    orders: int = option(
        1, "--orders", metavar="N", help="judge N orderings of the answers, report position consistency (1-8)",
        check=whole_number(MIN_ORDERS, MAX_ORDERS, f"--orders must be between {MIN_ORDERS} and {MAX_ORDERS}"))
    quorum: int | None = option(
        None, "-q", "--quorum", metavar="K", help="judge once K answers are in; later ones are kept, marked late")
    deadline: float | None = option(
        None, "-d", "--deadline", metavar="SECONDS", help="judge after this long with what has arrived",
        check=_positive_seconds("--deadline"))
    timeout: float = option(
        120.0, "-t", "--timeout", metavar="SECONDS", help="per-call timeout (default 120)",
        check=_positive_seconds("--timeout"), config="Per-call timeout in seconds.")
    max_tokens: int | None = option(
        None, "--max-tokens", metavar="N", help="output cap per member call",
        check=at_least(1, "--max-tokens must be at least 1"),
        config="Output cap per member call (default per provider).")
    temperature: float | None = option(
        None, "--temperature", metavar="T", help="member sampling temperature, 0 to 2",
        check=check_that(lambda v: 0 <= v <= 2, "--temperature must be between 0 and 2"),
        config="Member sampling temperature.")
    # Repeatable runs: seat i sends seed + i, the judge sends seed, and the judge's order of the answers is
    # drawn from it. None keeps each model's own randomness (the local model draws a seed per call).
    seed: int | None = option(
        None, "--seed", metavar="N", help="repeatable: seat i sends seed N+i, the judge N, in an order fixed by N",
        check=check_seed)
    system: str | None = option(
        None, "-s", "--system", metavar="TEXT", help="system prompt (quote it)", config="Default system prompt.")
    cache: str = option(
        "off", "--cache", choices=CACHE_MODES, const="on",
        help="record calls beside the notebook; replay runs offline from them",
        check=one_of("cache", CACHE_MODES), config="Record/replay calls: off, on, replay.")
    # Read when the options are built (a missing file, a type we cannot send: one line, before any call); in
    # Python also bytes, a PIL image, a matplotlib figure or a DataFrame (core.attachment.load_attachment).
    attach: tuple[Attachment, ...] = option(
        (), "--attach", metavar="PATHS", items="file path",
        help="comma-separated files, or variables holding a figure, image or DataFrame")
    thread: str = option(
        "fused", "--thread", choices=THREADS, check=one_of("thread", THREADS),
        help="with --continue: members see the fused answers, or each its own")

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool", tuple(self.pool))  # a list from Python or a trait, frozen like the rest
        object.__setattr__(self, "attach", load_attachments(self.attach))
        check_options(self)

    @classmethod
    def defaults(cls, settings: Settings) -> FuseOptions:
        """The options a run has when none is given: the session's (``%config FusionMagics`` or ``Settings``)."""
        return cls(**{name: getattr(settings, name) for name in CONFIGURABLE})

    def with_(self, **given: object) -> FuseOptions:
        """A copy with the options given; ``None`` (and an empty pool, judge or mode) means not given."""
        # Each value's type is checked by the declared checks' comparisons, as the keywords' were before.
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


# The options that also have a session default: a ``%config FusionMagics`` trait and a ``Settings`` field
# of the same name (declared with ``config=``). The others (self_n, quorum, deadline, orders, seed) belong
# to one run only.
CONFIGURABLE = tuple(d.name for d in declared(FuseOptions) if d.configurable)


__all__ = ["CONFIGURABLE", "MAX_ORDERS", "MAX_SEED", "MIN_ORDERS", "THREADS", "FuseKeywords", "FuseOptions",
           "check_seed"]
