"""Frozen settings the engine runs with: the session, not one run.

The session is what ``%config FusionMagics`` (or a script's ``Settings(...)``) sets once for every run: keys,
endpoints, prices, retries, the cache folder, the run log, and the session's default of each configurable run
option (``pool`` to ``cache``). Those options are declared in ``fusion/options.py`` (``FuseOptions``: type,
default, check, flag, help and trait, once); a field here only holds the session's value, which
``FuseOptions.defaults`` reads back, and the call layer reads ``timeout`` and ``cache`` from here (a run puts
its own in: ``FuseOptions.run_settings``). The magics class turns its traitlets into a ``Settings`` before
calling the engine, so the engine never imports IPython.

    settings = Settings(pool=("openrouter:openai/gpt-4o", "gemini:gemini-2.5-flash"), judge="vote")
    settings.has_key("openrouter")

Which pool and judge to use when none is configured is the fuse job kind's policy (``fusion.defaults``).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.option import one_of
from ..core.pricing import UserPrice
from ..providers.registry import BUILTIN, custom_spec, find_key

MODES = ("best-of", "merge", "debate")
# The modes that fuse answers asked elsewhere (a question about a video): debate would ask the models again.
ANSWER_MODES = ("best-of", "merge")
CACHE_MODES = ("off", "on", "replay")

@dataclass(frozen=True)
class Settings:
    """The session: keys, endpoints, prices, retries and the cache folder, plus the defaults of a fused
    run's options (``pool`` to ``cache``; ``FuseOptions`` checks and documents them). Empty ``pool``/``judge``
    mean "pick defaults". The call layer reads ``timeout`` and ``cache`` from here (a run puts its own in:
    ``FuseOptions.run_settings``).

    ``keys`` (explicit per-provider keys) is kept out of ``repr`` so it never shows in outputs.
    """

    pool: tuple[str, ...] = ()
    judge: str = ""
    mode: str = "best-of"
    rounds: int = 2
    timeout: float = 120.0
    max_tokens: int | None = None
    temperature: float | None = None
    system: str | None = None
    cache: str = "off"
    cache_dir: str | None = None
    endpoints: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # (input, output) USD per million tokens, or a core.pricing.Price (per second of video, per clip).
    prices: Mapping[str, UserPrice] = field(default_factory=dict)
    keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    max_retries: int = 3
    retry_max_wait: float = 30.0
    # The SQLite run log: a path, "off", or None for $FUSION_MAGIC_RUN_LOG, else runlog.default_path() (one
    # file per user: ~/.local/share/fusion_magic/fusion_runs.sqlite on Linux).
    run_log: str | None = None

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_choice("cache", self.cache, CACHE_MODES)
        if self.rounds < 1:
            raise ConfigError("rounds must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("timeout must be positive")

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def has_key(self, provider: str) -> bool:
        spec = BUILTIN[provider]
        return find_key(spec, self.keys) is not None

    def run_log_path(self) -> Path | None:
        """Where every run and call is logged as it happens, or None when off: ``run_log``, else
        $FUSION_MAGIC_RUN_LOG, else one file per user in the platform's data folder (``runlog.default_path``),
        never the notebook's folder."""
        where = self.run_log or os.environ.get("FUSION_MAGIC_RUN_LOG")
        if not where:
            from .runlog import default_path  # here: a call's settings need not import sqlite3 and csv

            return default_path()
        return None if where.strip().lower() in ("off", "none", "") else Path(where).expanduser()

    def cache_path(self) -> Path:
        """Where recorded calls live: ``cache_dir``, else $FUSION_MAGIC_CACHE_DIR, else ./.fusion_cache
        (beside the notebook, since a kernel's working directory is the notebook's folder)."""
        base = self.cache_dir or os.environ.get("FUSION_MAGIC_CACHE_DIR") or ".fusion_cache"
        return Path(base)


def check_choice(name: str, value: str, choices: Collection[str]) -> None:
    """One line naming the choices (``Settings``, the options' declarations and a rejudge's mode all say it
    so: ``core.option.one_of``)."""
    one_of(name, choices)(value)


def parse_prices(prices: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Check ``%config FusionMagics.prices``: ``{model: [input, output]}`` in USD per million tokens.

    Config values arrive unchecked (a traitlets Dict), so a bad one becomes a one-line ``ConfigError``
    naming the entry rather than a TypeError from ``tuple(1.0)`` or a wrong total later.
    """
    parsed: dict[str, tuple[float, float]] = {}
    for model, value in prices.items():
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in value)
        ):
            parsed[model] = (float(value[0]), float(value[1]))
        else:
            raise ConfigError(
                f"prices[{model!r}] must be [input, output] USD per million tokens, not {value!r}; "
                f"e.g. %config FusionMagics.prices = {{{model!r}: [0.15, 0.6]}}"
            )
    return parsed


def check_endpoints(endpoints: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Check every ``%config FusionMagics.endpoints`` entry up front (``custom_spec`` raises a
    ``ConfigError`` naming a bad one), so a typo shows before the run, not only when a model uses it."""
    for name, config in endpoints.items():
        custom_spec(name, config)
    return dict(endpoints)
