"""``%fuse list``: which providers exist, which keys are set (never their values), prices we know."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from ..calls.settings import Settings
from ..core.pricing import TABLE_SOURCE, known_prices, table_age_note
from ..providers.registry import find_key, provider_specs, resolve_endpoint

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Listing:
    """Providers and prices as two DataFrames, shown as text; ``prices_note`` says when the price table is
    old (``core.pricing.table_age_note``).

        listing = provider_listing(Settings())
        listing.providers
    """

    providers: pd.DataFrame
    prices: pd.DataFrame
    prices_note: str | None = None

    def __str__(self) -> str:
        note = f"{self.prices_note}\n" if self.prices_note else ""
        return (f"Providers (model ids are provider:model):\n{self.providers.to_string(index=False)}\n\n"
                f"Known prices, USD per million tokens ({TABLE_SOURCE}; OpenRouter reports its own cost):\n"
                f"{note}{self.prices.to_string(index=False)}")

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(str(self))  # type: ignore[attr-defined]


def provider_listing(settings: Settings, today: date | None = None) -> Listing:
    """The providers (where calls go, whether a key is set) and the price table, dated as of ``today``
    (default: the local date)."""
    import pandas as pd

    specs = provider_specs(settings.endpoints)  # built-ins, plugins, then the user's own endpoints
    rows = []
    for spec in specs:
        # The same resolution a call uses (OLLAMA_HOST forms included), so the listing shows where calls go.
        base = resolve_endpoint(spec, settings.keys, require_key=False).base_url
        key_set = find_key(spec, settings.keys) is not None
        rows.append({
            "provider": spec.name,
            "protocol": spec.protocol,
            "key variable": " or ".join(spec.key_envs) or "-",
            "key": "set" if key_set else ("not needed" if not spec.key_required else "missing"),
            # A protocol with no URL runs beside the kernel: the local model in its own worker process.
            "base URL": base or "worker process",
        })
    prices = pd.DataFrame(
        [{"model": m, "input": i, "output": o} for m, (i, o) in sorted(known_prices().items())]
    )
    return Listing(pd.DataFrame(rows), prices, table_age_note(today))
