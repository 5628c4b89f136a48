"""OpenRouter (``/openrouter/api/v1``): OpenAI's chat completions plus its own routing, accounting and errors.

What it adds to :class:`~.openai.OpenAI`: processing comments while it routes, the upstream ``provider`` and
``native_finish_reason``, cost in every usage object, errors with ``metadata`` (402 flavours, moderation
403s, 200 bodies for errors after routing), rate-limit headers, and an unauthenticated model list.
Shapes: ``shared/reference/llm-apis.md`` §1.4-1.9.

Its Fusion router (docs/openrouter-fusion.md): a request to ``openrouter/fusion`` (or ``openrouter/fusion-flash``),
or one declaring the ``openrouter:fusion`` server tool, is answered like any scripted model plus the Fusion result
(the ``openrouter:fusion`` item: ``status``, ``analysis``, ``responses``, ``failed_models`` ...) as a message
annotation, streamed in a content-free chunk before the finish. A ``fusion`` plugin configures the run (``preset``,
``analysis_models``, ``model``) but, as OpenRouter's docs say, does not start one on another model; a preset
outside OpenRouter's enum or a panel outside 1-8 models is a 400. Where the result rides on chat completions is
our reading (OpenRouter documents it for its Responses API only); ``FusionScript`` scripts it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .._wire import default_message, sse, sse_comment
from ..chat import Plan, Rejection, Turn
from ..registry import Request
from ..script import Fault, ModelScript
from .openai import OpenAI

_DEFAULT_MODELS = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "google/gemini-2.5-flash")

# OpenRouter reports the upstream provider by name; the author prefix of the slug is a fair guess.
_PROVIDERS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "google": "Google",
    "meta-llama": "Meta",
    "mistralai": "Mistral",
    "deepseek": "DeepSeek",
    "x-ai": "xAI",
    "qwen": "Alibaba",
}
_ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    412: "precondition_failed",
    413: "payload_too_large",
    422: "unprocessable",
    429: "rate_limit_exceeded",
    500: "server",
    502: "provider_unavailable",
    503: "provider_overloaded",
}
_REMEDY = {
    "openrouter_in_flight_budget": "Retry after your in-flight requests settle (see the Retry-After header).",
    "openrouter_credits": "Add credits or lower max_tokens.",
    "openrouter_key_limit": "Raise this key's credit limit.",
}
_PROCESSING = "OPENROUTER PROCESSING"

# ---- the Fusion router ------------------------------------------------------------------------------------

FUSION_ALIASES = ("openrouter/fusion", "openrouter/fusion-flash")
FUSION_TYPE = "openrouter:fusion"
# The fusion plugin's ``preset`` enum in OpenRouter's OpenAPI schema.
FUSION_PRESETS = ("general-high", "general-budget", "general-fast")
# The panels the emulator convenes. Quality (no preset) is the one OpenRouter's docs name; the others only look
# like theirs (OpenRouter picks and changes them). The first model is the analyst and writes the answer.
_PANELS: dict[str | None, tuple[str, ...]] = {
    None: ("~anthropic/claude-opus-latest", "~openai/gpt-latest", "~google/gemini-pro-latest"),
    "general-high": ("~anthropic/claude-opus-latest", "~openai/gpt-latest", "~google/gemini-pro-latest"),
    "general-budget": ("~google/gemini-flash-latest", "deepseek/deepseek-v3.2", "~moonshotai/kimi-latest"),
    "general-fast": ("~google/gemini-flash-latest", "~openai/gpt-mini-latest"),
    "fusion-flash": ("~google/gemini-flash-latest", "~openai/gpt-mini-latest"),
}


@dataclass
class FusionScript(ModelScript):
    """A ``ModelScript`` for ``openrouter/fusion`` that also scripts its Fusion result.

    ``analysis`` is OpenRouter's ``FusionAnalysisResult`` as sent (None: a small plausible one naming the panel);
    ``no_analysis`` leaves it out (the analyst failed: the result still has the panel's ``responses``);
    ``failed_models`` are panel slugs (as the result names them, without ``~``) that fail; ``failure_reason`` makes
    the whole run fail (no analysis, no responses, OpenRouter's typed reason). ``panel_reply`` is each panel
    model's answer (default: the reply).

        emu.script("openrouter/fusion", FusionScript(reply="4", failed_models=("openai/gpt-latest",)))
    """

    analysis: Mapping[str, Any] | None = None
    no_analysis: bool = False
    failed_models: tuple[str, ...] = ()
    failure_reason: str | None = None
    panel_reply: str | None = None


def fusion_config(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The request's fusion configuration (the ``fusion`` plugin, or the ``openrouter:fusion`` tool's
    ``parameters``), or None when it has none. An entry with ``enabled`` false is none."""
    for plugin in body.get("plugins") or ():
        if isinstance(plugin, Mapping) and plugin.get("id") == "fusion" and plugin.get("enabled", True) is not False:
            return plugin
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping) and tool.get("type") == FUSION_TYPE:
            parameters = tool.get("parameters")
            return parameters if isinstance(parameters, Mapping) else {}
    return None


def runs_fusion(body: Mapping[str, Any]) -> bool:
    """Whether OpenRouter would run its Fusion pipeline: the alias was asked, or the server tool declared. A plugin
    entry alone configures a run but starts none (OpenRouter's Fusion router docs)."""
    tools = body.get("tools") or ()
    declared = any(isinstance(t, Mapping) and t.get("type") == FUSION_TYPE for t in tools)
    return body.get("model") in FUSION_ALIASES or declared


def _check_fusion(config: Mapping[str, Any]) -> str | None:
    """OpenRouter's 400 for a fusion config its schema refuses: a preset outside the enum, a panel outside 1-8."""
    preset = config.get("preset")
    if preset is not None and preset not in FUSION_PRESETS:
        return (f"Invalid fusion plugin configuration: preset must be one of {', '.join(FUSION_PRESETS)} "
                f"(got {preset!r})")
    panel = config.get("analysis_models")
    if panel is not None and (not isinstance(panel, list) or not 1 <= len(panel) <= 8
                              or not all(isinstance(m, str) and m for m in panel)):
        return "Invalid fusion plugin configuration: analysis_models must list 1 to 8 model slugs"
    return None


def default_analysis(answered: Sequence[str]) -> dict[str, Any]:
    """A small plausible ``FusionAnalysisResult`` for a panel whose ``answered`` models replied."""
    first, last = (answered[0], answered[-1]) if answered else ("", "")
    several = len(answered) >= 2
    return {
        "consensus": ["The panel agrees on the main answer."] if answered else [],
        "contradictions": [{"topic": "How much detail the answer needs",
                            "stances": [{"model": first, "stance": "A short answer is enough."},
                                        {"model": last, "stance": "It needs a worked example."}]}] if several else [],
        "partial_coverage": [{"point": "Checks the question's premise.",
                              "models": list(answered[:-1])}] if several else [],
        "unique_insights": [{"insight": "Points out an edge case.", "model": last}] if answered else [],
        "blind_spots": ["No model says where its figures come from."],
    }


def fusion_item(config: Mapping[str, Any], model: str, script: ModelScript, text: str, item_id: str) -> dict[str, Any]:
    """The ``openrouter:fusion`` result for one run (OpenRouter's ``OutputFusionServerToolItem``)."""
    preset = config.get("preset")
    panel = config.get("analysis_models") or _PANELS.get(
        preset if preset is not None or model != "openrouter/fusion-flash" else "fusion-flash", _PANELS[None])
    slugs = list(dict.fromkeys(m.removeprefix("~") for m in panel))
    fusion = script if isinstance(script, FusionScript) else FusionScript()
    if fusion.failure_reason is not None:
        return {"type": FUSION_TYPE, "id": item_id, "status": "incomplete", "failure_reason": fusion.failure_reason,
                "error": f"fusion failed: {fusion.failure_reason}"}
    failed = [m for m in slugs if m in fusion.failed_models]
    answered = [m for m in slugs if m not in failed]
    if not answered:
        return {"type": FUSION_TYPE, "id": item_id, "status": "incomplete", "failure_reason": "all_panels_failed",
                "error": "all panel models failed",
                "failed_models": [{"model": m, "error": "Provider returned error", "status_code": 502} for m in failed]}
    item: dict[str, Any] = {"type": FUSION_TYPE, "id": item_id, "status": "completed"}
    if not fusion.no_analysis:
        item["analysis"] = dict(fusion.analysis) if fusion.analysis is not None else default_analysis(answered)
    reply = fusion.panel_reply if fusion.panel_reply is not None else text
    item["responses"] = [{"model": m, "content": reply} for m in answered]
    if failed:
        item["failed_models"] = [{"model": m, "error": "Provider returned error", "status_code": 502} for m in failed]
    return item


def provider_of(model: str) -> str:
    """The upstream provider OpenRouter names for a model slug."""
    author = model.split("/", 1)[0] if "/" in model else ""
    return _PROVIDERS.get(author, "Emulator")


def error_type(status: int) -> str:
    """``error.metadata.error_type`` for a status."""
    return _ERROR_TYPES.get(status, "server" if status >= 500 else "invalid_request")


def model_entry(model: str, inputs: Sequence[str] = ("text", "image", "file")) -> dict[str, Any]:
    """One entry of GET /api/v1/models, reading ``inputs`` (a scripted model's ``input_modalities``). Prices match
    the emulator's default cost (1e-6 USD/token)."""
    name = model.split("/", 1)[-1].replace("-", " ").title()
    return {
        "id": model,
        "canonical_slug": model,
        "name": f"Emulated {name}",
        "created": 1_700_000_000,
        "description": "A model served by the fusion_magic loopback emulator.",
        "context_length": 128000,
        "architecture": {
            "input_modalities": list(inputs),
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": "0.000001",
            "completion": "0.000001",
            "request": "0",
            "image": "0",
            "web_search": "0",
            "internal_reasoning": "0",
        },
        "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "temperature", "response_format", "structured_outputs", "seed"],
        "default_parameters": None,
        "expiration_date": None,
    }


class OpenRouter(OpenAI):
    """``POST /openrouter/api/v1/chat/completions``, ``GET /openrouter/api/v1/models`` (no auth).

        emu.script("openai/gpt-4o", ModelScript(reply="Paris.", cost_usd=0.0004))  # usage.cost on the wire
    """

    name = "openrouter"
    env: ClassVar[Mapping[str, str]] = {"OPENROUTER_BASE_URL": "/openrouter/api/v1"}
    test_keys: ClassVar[Mapping[str, str]] = {"OPENROUTER_API_KEY": "sk-or-test-emulator"}
    base: ClassVar[str] = "/openrouter/api/v1"
    # A blocked prompt is a moderation 403 (send_blocked), not a truncated answer.
    refusal_reason = None
    models_need_auth: ClassVar[bool] = False
    # attachments.md §3: OpenRouter's file part has every field optional, and its user content union adds video.
    filename_required: ClassVar[bool] = False
    part_types: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "user": ("text", "image_url", "input_audio", "input_video", "video_url", "file"),
        "assistant": ("text", "refusal"),
    }

    def __init__(self) -> None:
        super().__init__()
        # The Fusion result of each planned turn that runs one, by response id, until its answer is sent.
        self._fusion: dict[str, dict[str, Any]] = {}

    def validate(self, body: Mapping[str, Any]) -> str | Rejection | None:
        config = fusion_config(body)
        invalid = _check_fusion(config) if config is not None else None
        return invalid if invalid is not None else super().validate(body)

    def plan(self, req: Request, body: Mapping[str, Any], model: str) -> Plan:
        plan = super().plan(req, body, model)
        if runs_fusion(body):
            config = fusion_config(body) or {}
            turn = plan.turn
            item = fusion_item(config, model, plan.script, "".join(plan.chunks), f"st_fusion_{req.seq:06d}")
            self._fusion[turn.response_id] = item
            if plan.script.served_model is None and model in FUSION_ALIASES:
                # The response names the concrete model that answered (the analyst), not the alias.
                analyst = config.get("model") or _PANELS[None][0]
                plan.turn = dataclasses.replace(turn, served_model=str(analyst).removeprefix("~"))
        return plan

    def check_file_data(self, file_data: str, param: str) -> Rejection | None:
        # OpenRouter fetches a file given by URL itself ("File content as base64 data URL or URL").
        if file_data.startswith(("http://", "https://")):
            return None
        return super().check_file_data(file_data, param)

    def rejection_body(self, rejection: str | Rejection, request_id: str) -> Any:
        # OpenRouter's own envelope: code and message, no param.
        message = rejection if isinstance(rejection, str) else rejection.message
        return self.error_body(400, message, request_id=request_id)

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        message = "No cookie auth credentials found" if not has_key else "User not found."
        return 401, {"error": {"code": 401, "message": message}}

    def response_id(self, seq: int) -> str:
        return f"gen-emu-{seq:06d}"

    def reply_headers(self, req: Request, turn: Turn) -> list[tuple[str, str]]:
        return [("x-generation-id", turn.response_id)]

    async def models(self, req: Request) -> None:
        """Scripted slugs first, then a few defaults, in OpenRouter's paged shape."""
        names = [m for m in req.scripts.models() if "/" in m]
        names += [m for m in _DEFAULT_MODELS if m not in names]
        data = []
        for m in names:
            script = req.scripts.get(m)
            data.append(model_entry(m) if script is None else model_entry(m, script.input_modalities))
        await req.json(200, {"data": data, "total_count": len(names), "links": {"next": None}})

    # ---- framing --------------------------------------------------------------------------------------

    def brand(self, turn: Turn) -> dict[str, Any]:
        return {"provider": provider_of(turn.served_model)}

    def usage(self, turn: Turn) -> dict[str, Any]:
        return {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
            "cost": turn.cost_usd,
            "is_byok": False,
            # OpenRouter also reports the tokens written to the upstream cache (Anthropic, Gemini explicit).
            "prompt_tokens_details": {
                "cached_tokens": turn.cached_input_tokens,
                "cache_write_tokens": turn.cache_write_tokens,
            },
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def chunk(self, turn: Turn, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        # No `"usage": null` placeholders: usage comes once, in the accounting chunk.
        return {
            "id": turn.response_id,
            "object": "chat.completion.chunk",
            "created": turn.created,
            "model": turn.served_model,
            **self.brand(turn),
            "choices": choices,
            **extra,
        }

    def choice(self, turn: Turn, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}

    def preamble(self, turn: Turn) -> list[bytes]:
        # OpenRouter keeps the connection warm with comments while it routes; the role rides on the
        # first text chunk.
        return [sse_comment(_PROCESSING, nl=turn.nl)]

    def keepalive(self, turn: Turn) -> bytes | None:
        return sse_comment(_PROCESSING, nl=turn.nl)

    def text(self, turn: Turn, index: int, piece: str, final_reason: str | None) -> list[bytes]:
        delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
        return [self.event(turn, self.chunk(turn, [self.choice(turn, delta, None)]))]

    def end(self, turn: Turn, reason: str, reason_sent: bool) -> list[bytes]:
        delta = {"content": "", "role": "assistant"}
        # The accounting chunk repeats the finish in a content-free choice (or, in the older documented
        # shape, carries no choice at all). Usage is always sent on OpenRouter.
        choices = [] if turn.usage_choices_empty else [self.choice(turn, delta, reason)]
        fusion = self._fusion.pop(turn.response_id, None)
        annotated = [] if fusion is None else [
            self.event(turn, self.chunk(turn, [self.choice(turn, {"content": "", "annotations": [fusion]}, None)]))]
        return [
            *annotated,
            self.event(turn, self.chunk(turn, [self.choice(turn, delta, reason)])),
            self.event(turn, self.chunk(turn, choices, usage=self.usage(turn))),
            sse("[DONE]", nl=turn.nl),
        ]

    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        error = {"code": status, "message": message, "metadata": {"error_type": error_type(status)}}
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        return [self.event(turn, self.chunk(turn, [choice], error=error))]

    def json_body(self, turn: Turn, text: str, reason: str) -> dict[str, Any]:
        body = super().json_body(turn, text, reason)
        body["choices"][0]["native_finish_reason"] = reason
        fusion = self._fusion.pop(turn.response_id, None)
        if fusion is not None:
            body["choices"][0]["message"]["annotations"] = [fusion]
        return body

    def error_body(
        self, status: int, message: str | None = None, *, request_id: str = "", fault: Fault | None = None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"error_type": error_type(status)}
        limit_source = fault.limit_source if fault is not None else None
        if status == 402 and limit_source:
            reason = fault.reason if fault is not None else None
            if reason is None and limit_source == "openrouter_in_flight_budget":
                reason = "in_flight_budget_exhausted"
            if reason is not None:
                metadata["reason"] = reason
            metadata["limit_source"] = limit_source
            metadata["remedy_hint"] = _REMEDY.get(limit_source, "")
        return {"error": {"code": status, "message": message or default_message(status), "metadata": metadata}}

    # ---- OpenRouter-shaped faults ---------------------------------------------------------------------

    def fault_headers(self, plan: Plan, fault: Fault) -> list[tuple[str, str]]:
        headers = super().fault_headers(plan, fault)
        if fault.status == 429:
            reset_ms = int((time.time() + 60) * 1000)
            headers += [
                ("x-ratelimit-limit", "20"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", str(reset_ms)),
            ]
        return headers

    async def send_blocked(self, req: Request, plan: Plan) -> None:
        # The moderation guard answers 403 naming the model and quoting the flagged input.
        _, flagged = self.prompt_texts(req.body)
        model = plan.turn.model
        fault_message = plan.fault.message if plan.fault is not None else None
        body = {
            "error": {
                "code": 403,
                "message": fault_message or f"{model} requires moderation on OpenRouter. Your input was flagged.",
                "metadata": {
                    "reasons": ["violence"],
                    "flagged_input": flagged[:100],
                    "provider_name": provider_of(model),
                    "model_slug": model,
                },
            }
        }
        await req.json(403, body, plan.headers)

    async def send_json_error(self, req: Request, plan: Plan, fault: Fault) -> None:
        # OpenRouter reports errors that happen after routing in a 200 body.
        message = fault.message or default_message(fault.status)
        error = {"code": fault.status, "message": message, "metadata": {"error_type": error_type(fault.status)}}
        await req.json(200, {"id": plan.turn.response_id, "error": error}, plan.headers)
