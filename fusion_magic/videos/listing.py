"""``%video list``: the video models each key can use, asked of the providers at run time (ids drift), and
what works offline.

    table = await video_models(settings, client)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

from ..calls.call import prepare
from ..calls.settings import Settings
from ..core.errors import ProviderError
from ..core.pricing import price_for
from ..providers.registry import BUILTIN, find_key, make_provider
from ..providers.video.base import VideoProvider
from .plan import with_provider_prices

if TYPE_CHECKING:
    import httpx
    import pandas as pd

# (provider, protocol that lists, what its models do)
_LISTERS = (("gemini", "interactions", "generate + understand (Omni)"),
            ("gemini", "veo", "generate (Veo)"),
            ("fal", "fal", "generate"),
            ("openrouter", "openrouter_video", "generate"),
            ("runway", "runway", "generate"))


@dataclass
class VideoListing:
    """The models as a DataFrame, and a line per provider that could not be listed (no key, an error)."""

    models: pd.DataFrame
    notes: list[str]

    def __str__(self) -> str:
        body = self.models.to_string(index=False) if len(self.models) else "(none)"
        return "Video models (model ids are provider:model):\n" + body + "".join(f"\n{n}" for n in self.notes)

    def _repr_pretty_(self, p: object, cycle: bool) -> None:
        p.text(str(self))  # type: ignore[attr-defined]


async def video_models(settings: Settings, client: httpx.AsyncClient) -> VideoListing:
    """Ask every provider whose key is set for its video models."""
    import pandas as pd

    settings = with_provider_prices(settings, ("fal:listing",))
    rows: list[dict[str, object]] = [{"model": "local:frames", "does": "understand (offline analysis)",
                                      "USD per second": 0.0}]
    notes: list[str] = []

    async def one(provider: str, protocol: str, does: str) -> list[dict[str, object]]:
        spec = BUILTIN[provider]
        if find_key(spec, settings.keys) is None:
            return []
        target = prepare(f"{provider}:listing", settings)
        target = replace(target, spec=replace(target.spec, protocol=protocol))
        lister = cast(VideoProvider, make_provider(target.spec, target.endpoint, client))
        try:
            names = await lister.list_models()
        except ProviderError as exc:
            notes.append(f"{provider} ({does}): could not list models: {exc}")
            return []
        out: list[dict[str, object]] = []
        for name in names:
            price = price_for(f"{provider}:{name}", settings.prices)
            out.append({"model": f"{provider}:{name}", "does": does,
                        "USD per second": price.per_second if price is not None else None})
        return out

    for found in await asyncio.gather(*(one(*row) for row in _LISTERS)):
        rows.extend(found)
    for provider in ("gemini", "fal"):
        spec = BUILTIN[provider]
        if find_key(spec, settings.keys) is None:
            notes.append(f"{provider}: set {' or '.join(spec.key_envs)} to list its video models")
    return VideoListing(pd.DataFrame(rows), notes)


__all__ = ["VideoListing", "video_models"]
