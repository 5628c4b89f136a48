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
from ..providers.video.base import VideoCaps, VideoProvider
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
    """Ask every provider whose key is set for its video models, with what each accepts (``VideoCaps``: from the
    provider's model list where it has one, OpenRouter's; else from its protocol's table) and its price."""
    import pandas as pd

    settings = with_provider_prices(settings, tuple(f"{provider}:listing" for provider, _, _ in _LISTERS))
    rows: list[dict[str, object]] = [{"model": "local:frames", "does": "understand (offline analysis)",
                                      **_accepts(None), "USD per second": 0.0}]
    notes: list[str] = []

    async def one(provider: str, protocol: str, does: str) -> list[dict[str, object]]:
        spec = BUILTIN[provider]
        if find_key(spec, settings.keys) is None:
            return []
        target = prepare(f"{provider}:listing", settings)
        target = replace(target, spec=replace(target.spec, protocol=protocol))
        lister = cast(VideoProvider, make_provider(target.spec, target.endpoint, client))
        try:
            found = await _listed(lister)
        except ProviderError as exc:
            notes.append(f"{provider} ({does}): could not list models: {exc}")
            return []
        out: list[dict[str, object]] = []
        for name, caps in found:
            price = price_for(f"{provider}:{name}", settings.prices)
            per_second = price.per_second if price is not None else caps.price_per_second if caps else None
            out.append({"model": f"{provider}:{name}", "does": does, **_accepts(caps), "USD per second": per_second})
        return out

    for found in await asyncio.gather(*(one(*row) for row in _LISTERS)):
        rows.extend(found)
    for provider in dict.fromkeys(provider for provider, _, _ in _LISTERS):
        spec = BUILTIN[provider]
        if find_key(spec, settings.keys) is None:
            notes.append(f"{provider}: set {' or '.join(spec.key_envs)} to list its video models")
    return VideoListing(pd.DataFrame(rows), notes)


async def _listed(lister: VideoProvider) -> list[tuple[str, VideoCaps | None]]:
    """Each model the provider lists, with what it accepts: from its own list where it reports that
    (``list_capabilities``), else from the protocol's table (``capabilities``, None for a model not in it)."""
    listing = getattr(lister, "list_capabilities", None)
    if listing is not None:
        return [(caps.model, caps) for caps in await listing()]
    table = getattr(type(lister), "capabilities", None)
    names = await lister.list_models()
    return [(name, table(name) if table is not None else None) for name in names]


def _accepts(caps: VideoCaps | None) -> dict[str, object]:
    """A model's row of the table: seconds, resolutions, aspect ratios, frames and references ("" where unknown)."""
    if caps is None:
        return {"seconds": "", "resolutions": "", "aspects": "", "frames": "", "refs": ""}
    frames = "first+last" if caps.last_frame else "first" if caps.first_frame else ""
    return {"seconds": "" if caps.seconds_words() == "any" else caps.seconds_words(),
            "resolutions": ",".join(caps.resolutions), "aspects": ",".join(caps.aspects), "frames": frames,
            "refs": caps.references or ""}


__all__ = ["VideoListing", "video_models"]
