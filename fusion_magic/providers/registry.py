"""Which providers exist, how to reach each, and how to build one for a model id.

A model id is ``provider:model`` (``openrouter:openai/gpt-4o``, ``local:gemma3-270m``). Providers
are grouped by wire protocol: OpenRouter, OpenAI, Ollama, vLLM, llama.cpp and LM Studio all speak
the OpenAI chat-completions protocol and differ only in base URL, key variable and dialect.

    spec, model = split_model_id("anthropic:claude-sonnet-4-5")
    endpoint = resolve_endpoint(spec, settings)

Protocols are rows of ``PROTOCOLS`` (``plugins.ProtocolTable``), registered through the
``fusion_magic.providers`` entry-point group: the built-ins in this package's ``pyproject.toml``, a plugin
in its own. A plugin's protocol name is also a provider name, with its connection read from its class
(``default_base_url``, ``base_url_env``, ``key_envs``); a built-in protocol is reached through the names in
``BUILTIN``, since several vendors share one protocol.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..core.attachment import Attachment
from ..core.errors import ConfigError, MissingKeyError, UnknownModelError
from ..core.pricing import FREE_PROVIDERS
from .base import TEXT_ONLY, AttachmentLimits, Endpoint, Provider
from .plugins import GROUP, ProtocolTable

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class ProviderSpec:
    """Static facts about one provider name.

    ``key_envs`` are tried in order; ``key_required`` False means a local server that accepts any key.
    ``base_url_env`` overrides ``default_base_url``; ``base_url_suffix`` is appended to an env value that
    names only a host (Ollama's ``OLLAMA_HOST``).
    """

    name: str
    protocol: str  # a row of PROTOCOLS: "openai" | "anthropic" | "gemini" | "local" | "fal" ...
    default_base_url: str
    base_url_env: str | None
    key_envs: tuple[str, ...] = ()
    key_required: bool = True
    flavor: str = "generic"
    base_url_suffix: str = ""
    placeholder_key: str | None = None


BUILTIN: dict[str, ProviderSpec] = {
    # A provider on the user's own machine (core.pricing.FREE_PROVIDERS, the one list) needs no key.
    s.name: replace(s, key_required=s.name not in FREE_PROVIDERS)
    for s in (
        ProviderSpec(
            "openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_BASE_URL",
            ("OPENROUTER_API_KEY",), flavor="openrouter",
        ),
        ProviderSpec(
            "openai", "openai", "https://api.openai.com/v1", "OPENAI_BASE_URL", ("OPENAI_API_KEY",),
            flavor="openai",
        ),
        ProviderSpec(
            "ollama", "openai", "http://localhost:11434/v1", "OLLAMA_HOST", ("OLLAMA_API_KEY",),
            flavor="ollama", base_url_suffix="/v1", placeholder_key="ollama",
        ),
        ProviderSpec(
            "vllm", "openai", "http://localhost:8000/v1", "VLLM_BASE_URL", ("VLLM_API_KEY",),
            flavor="vllm",
        ),
        ProviderSpec(
            "llamacpp", "openai", "http://127.0.0.1:8080/v1", "LLAMACPP_BASE_URL", ("LLAMACPP_API_KEY",),
            flavor="llamacpp",
        ),
        ProviderSpec(
            "lmstudio", "openai", "http://localhost:1234/v1", "LMSTUDIO_BASE_URL", ("LMSTUDIO_API_KEY",),
            flavor="lmstudio",
        ),
        ProviderSpec(
            "anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_BASE_URL",
            ("ANTHROPIC_API_KEY",),
        ),
        ProviderSpec(
            "gemini", "gemini", "https://generativelanguage.googleapis.com", "GEMINI_BASE_URL",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        ),
        ProviderSpec("fal", "fal", "https://queue.fal.run", "FAL_BASE_URL", ("FAL_KEY",)),
        # Runway's developer API (shared/reference/video-apis.md §10.2): the SDK's own variables.
        ProviderSpec("runway", "runway", "https://api.dev.runwayml.com", "RUNWAYML_BASE_URL",
                     ("RUNWAYML_API_SECRET",)),
        ProviderSpec("local", "local", "", None, ()),
    )
}


def custom_spec(name: str, config: object) -> ProviderSpec:
    """A user-named OpenAI-compatible endpoint, from ``%config FusionMagics.endpoints``.

    ``{"together": {"base_url": "https://api.together.xyz/v1", "key_env": "TOGETHER_API_KEY"}}``

    ``config`` comes straight from user config, so its shape is checked here: a ``ConfigError`` names
    the entry and shows the right form instead of an AttributeError deep in a run.
    """
    example = (f"e.g. %config FusionMagics.endpoints = {{{name!r}: "
               "{'base_url': 'https://api.together.xyz/v1', 'key_env': 'TOGETHER_API_KEY'}}")
    if not isinstance(config, Mapping):
        # The type, not the value: a misplaced API key must not end up in the notebook's output.
        raise ConfigError(
            f"endpoints[{name!r}] must be a dict with a base_url, not a {type(config).__name__}; {example}"
        )
    base_url = config.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"endpoints[{name!r}] needs a base_url starting with http:// or https://; {example}")
    key_env = config.get("key_env")
    if key_env is not None and not isinstance(key_env, str):
        raise ConfigError(f"endpoints[{name!r}]: key_env must name an environment variable; {example}")
    return ProviderSpec(
        name, "openai", base_url.rstrip("/"), None, (key_env,) if key_env else (),
        key_required=bool(key_env),
    )


def split_model_id(model_id: str, endpoints: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[
    ProviderSpec, str
]:
    """``"openrouter:openai/gpt-4o"`` -> (the OpenRouter spec, ``"openai/gpt-4o"``)."""
    prefix, sep, model = model_id.strip().partition(":")
    if not sep or not prefix or not model:
        raise UnknownModelError(
            f"model id {model_id!r} must look like provider:model, e.g. openrouter:openai/gpt-4o "
            f"(providers: {', '.join(known_providers(endpoints))})"
        )
    if endpoints and prefix in endpoints:
        return custom_spec(prefix, endpoints[prefix]), model
    spec = provider_spec(prefix)
    if spec is None:
        raise UnknownModelError(
            f"unknown provider {prefix!r} in {model_id!r}; known: {', '.join(known_providers(endpoints))} "
            "(add your own with %config FusionMagics.endpoints)"
        )
    return spec, model


def known_providers(endpoints: Mapping[str, Any] | None = None) -> list[str]:
    """Every provider name a model id may start with: the built-ins, the plugins' and the user's own
    ``endpoints``."""
    return sorted({*BUILTIN, *(row.name for row in PROTOCOLS.plugins()), *(endpoints or {})})


def provider_spec(name: str) -> ProviderSpec | None:
    """The built-in or plugin provider called ``name`` (not the user's ``endpoints``), or None."""
    spec = BUILTIN.get(name)
    if spec is not None:
        return spec
    row = PROTOCOLS.get(name)
    if row is None or row.builtin:
        return None
    return plugin_spec(name, PROTOCOLS.provider_class(name))


def provider_specs(endpoints: Mapping[str, Any] | None = None) -> list[ProviderSpec]:
    """Every provider a model id may name, in listing order: the built-ins, the plugins, the user's own."""
    plugins = [plugin_spec(row.name, PROTOCOLS.provider_class(row.name)) for row in PROTOCOLS.plugins()]
    return [*BUILTIN.values(), *plugins, *(custom_spec(n, c) for n, c in (endpoints or {}).items())]


def plugin_spec(name: str, cls: type) -> ProviderSpec:
    """A plugin's provider name, from its class's attributes: a key is required when it names key variables,
    unless it says ``key_required = False``."""
    key_envs = tuple(getattr(cls, "key_envs", ()))
    return ProviderSpec(
        name, name, getattr(cls, "default_base_url", ""), getattr(cls, "base_url_env", None), key_envs,
        key_required=getattr(cls, "key_required", bool(key_envs)), flavor=getattr(cls, "flavor", "generic"),
        base_url_suffix=getattr(cls, "base_url_suffix", ""), placeholder_key=getattr(cls, "placeholder_key", None),
    )


def find_key(spec: ProviderSpec, keys: Mapping[str, str] | None = None,
             environ: Mapping[str, str] | None = None) -> str | None:
    """The key for a provider: explicit ``keys[provider]`` first, then each env variable in order."""
    if keys and keys.get(spec.name):
        return keys[spec.name]
    env = os.environ if environ is None else environ
    for var in spec.key_envs:
        if env.get(var):
            return env[var]
    return None


def resolve_endpoint(spec: ProviderSpec, keys: Mapping[str, str] | None = None,
                     environ: Mapping[str, str] | None = None, *, require_key: bool = True) -> Endpoint:
    """Base URL and key for a provider, from explicit keys, then the environment.

    Raises ``MissingKeyError`` (naming the variable to set) before any network call, unless
    ``require_key`` is False (a cost estimate needs no key).
    """
    env = os.environ if environ is None else environ
    key = find_key(spec, keys, env)
    if key is None and spec.key_required and require_key:
        raise MissingKeyError(spec.name, spec.key_envs)
    base = spec.default_base_url
    if spec.base_url_env and env.get(spec.base_url_env):
        base = env[spec.base_url_env].strip().rstrip("/")
        if spec.name == "ollama":
            base = _ollama_origin(base)
        elif "://" not in base:
            base = "http://" + base
        if spec.base_url_suffix and not base.endswith(spec.base_url_suffix):
            base += spec.base_url_suffix
    headers = {"X-OpenRouter-Title": "fusion_magic"} if spec.flavor == "openrouter" else {}
    return Endpoint(spec.name, base, key or spec.placeholder_key, headers, spec.flavor)


def _ollama_origin(host: str) -> str:
    """``OLLAMA_HOST`` as Ollama itself reads it: ``:11434``, ``localhost``, ``0.0.0.0:8080`` or a full URL;
    a missing scheme is http, a missing host is 127.0.0.1, a missing port is 11434 (not 80)."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest = "http", host
    hostport, slash, path = rest.partition("/")
    name, _, port = hostport.rpartition(":") if ":" in hostport and not hostport.endswith("]") else (
        hostport, "", "")
    name = name or "127.0.0.1"
    if name == "0.0.0.0":  # a server's listen address; a client reaches it on loopback
        name = "127.0.0.1"
    if not port and not sep:
        port = "11434"
    origin = f"{scheme}://{name}" + (f":{port}" if port else "")
    return origin + (slash + path if path else "")


# This package's own protocols: the rows of its pyproject.toml [project.entry-points."fusion_magic.providers"]
# (tests/test_plugins.py keeps the two equal). Each is imported on first use, so a run loads only the protocols
# it uses (llama.cpp itself is loaded only in the local model's worker process).
BUILTIN_PROTOCOLS: Mapping[str, str] = {
    "openai": "fusion_magic.providers.chat.openai_compat:OpenAICompatProvider",
    "anthropic": "fusion_magic.providers.chat.anthropic:AnthropicProvider",
    "gemini": "fusion_magic.providers.chat.gemini:GeminiProvider",
    "local": "fusion_magic.providers.chat.local:LocalProvider",
    # Video (providers/video/): generation jobs, and questions about a video (a chat call with a video).
    "veo": "fusion_magic.providers.video.veo:VeoProvider",
    "interactions": "fusion_magic.providers.video.interactions:InteractionsProvider",
    "fal": "fusion_magic.providers.video.fal:FalProvider",
    "gemini_video": "fusion_magic.providers.video.gemini_video:GeminiVideoProvider",
    "openrouter_video": "fusion_magic.providers.video.openrouter_video:OpenRouterVideoProvider",
    "runway": "fusion_magic.providers.video.runway:RunwayProvider",
}

# Every protocol: the built-ins and the installed plugins (read on first use). A plugin may not take a
# built-in provider name: "openai:" must keep meaning OpenAI, whatever else is installed.
PROTOCOLS = ProtocolTable(GROUP, BUILTIN_PROTOCOLS, reserved=BUILTIN)


def provider_class(spec: ProviderSpec) -> Any:
    """The class that speaks ``spec``'s protocol (a ``Provider``)."""
    if spec.protocol not in PROTOCOLS:
        raise ConfigError(f"provider {spec.name!r} has unknown protocol {spec.protocol!r}")
    return PROTOCOLS.provider_class(spec.protocol)


def check_model(spec: ProviderSpec, model: str, *, will_run: bool) -> None:
    """Let the protocol refuse a model it can never serve now, before any call (a missing local model
    file, say); ``will_run`` False for a run that sends nothing (an estimate, a cache replay)."""
    check = getattr(provider_class(spec), "check_model", None)
    if check is not None:
        check(model, will_run=will_run)


def attachment_limits(spec: ProviderSpec) -> AttachmentLimits:
    """What ``spec``'s protocol takes besides text: its class's ``attachment_limits`` (one ``AttachmentLimits``,
    or a mapping from flavor to one, ``"generic"`` for the rest); text only where it declares none."""
    declared = getattr(provider_class(spec), "attachment_limits", TEXT_ONLY)
    if isinstance(declared, Mapping):
        declared = declared.get(spec.flavor, declared.get("generic", TEXT_ONLY))
    return declared if isinstance(declared, AttachmentLimits) else TEXT_ONLY


def check_model_attachments(spec: ProviderSpec, endpoint: Endpoint, model: str, model_id: str,
                            attachments: Sequence[Attachment]) -> None:
    """Let the protocol refuse, per model, attachments it knows the model cannot read (its class's
    ``check_attachments``: OpenRouter's model list says which models read images)."""
    check = getattr(provider_class(spec), "check_attachments", None)
    if check is not None and attachments:
        check(endpoint, model, attachments, model_id)


def make_provider(spec: ProviderSpec, endpoint: Endpoint, client: httpx.AsyncClient | None) -> Provider:
    """Build the provider object for one protocol."""
    cls = provider_class(spec)
    if client is None and getattr(cls, "needs_http", True):
        raise ValueError("HTTP providers need an httpx.AsyncClient")
    provider: Provider = cls(endpoint, client)
    return provider
