"""The fuse job kind's defaults that depend on the keys that are set: which pool and which judge to use when
the user configured none (the settings hold only what the user set).

    pool, judge, note = resolved_pool(Settings())   # 3 x local:gemma3-270m and the vote, with no key set
"""

from __future__ import annotations

from ..calls.settings import Settings

LOCAL_MODEL = "local:gemma3-270m"
# Three members of the local model; the pool gives each its own seed so they answer differently.
LOCAL_POOL = (LOCAL_MODEL, LOCAL_MODEL, LOCAL_MODEL)

# With an OpenRouter key: one current model from each of three vendors, and a judge from a fourth
# family so no member judges itself (self-preference bias).
OPENROUTER_POOL = (
    "openrouter:anthropic/claude-sonnet-4.5",
    "openrouter:google/gemini-2.5-flash",
    "openrouter:deepseek/deepseek-chat",
)
OPENROUTER_JUDGE = "openrouter:openai/gpt-4o"

# With only direct vendor keys: one model per vendor whose key is set.
DIRECT_MODELS = {
    "anthropic": "anthropic:claude-sonnet-4-5",
    "gemini": "gemini:gemini-2.5-flash",
    "openai": "openai:gpt-4.1-mini",
}


def default_pool(settings: Settings) -> tuple[tuple[str, ...], str, str | None]:
    """(pool, judge, note) when the user configured none. The note says what was chosen and why."""
    if settings.has_key("openrouter"):
        return OPENROUTER_POOL, OPENROUTER_JUDGE, None
    direct = tuple(model for provider, model in DIRECT_MODELS.items() if settings.has_key(provider))
    if len(direct) >= 2:
        return direct, "vote", None
    return (
        LOCAL_POOL,
        "vote",
        "No API key set: using the offline pool (3 x local:gemma3-270m)"
        + ("" if settings.judge else " and the vote judge")
        + ". For real models set OPENROUTER_API_KEY (or ANTHROPIC_API_KEY, GEMINI_API_KEY, OPENAI_API_KEY).",
    )


def default_judge(settings: Settings) -> str:
    """The configured judge, else a judge model through OpenRouter when its key is set, else the vote."""
    return settings.judge or (OPENROUTER_JUDGE if settings.has_key("openrouter") else "vote")


def resolved_pool(settings: Settings) -> tuple[tuple[str, ...], str, str | None]:
    """The pool and judge to use: configured ones, else the defaults for the keys that are set."""
    if settings.pool:
        return settings.pool, default_judge(settings), None
    pool, judge, note = default_pool(settings)
    return pool, settings.judge or judge, note


__all__ = ["DIRECT_MODELS", "LOCAL_MODEL", "LOCAL_POOL", "OPENROUTER_JUDGE", "OPENROUTER_POOL", "default_judge",
           "default_pool", "resolved_pool"]
