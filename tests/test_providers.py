"""The three wire protocols against the loopback emulator, through a real socket.

Each test builds the endpoint the way the engine does (``resolve_endpoint`` from the emulator's
environment), opens a real ``httpx.AsyncClient`` and collects what ``provider.stream`` yields.
Pure parsers and classifiers are also fed literal payloads from the wire reference where the
emulator cannot script a shape (thought parts, per-day quotas, ``insufficient_quota``).
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest

from fusion_magic.core.errors import (
    AuthError,
    BadRequestError,
    BlockedError,
    PaymentError,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
)
from fusion_magic.providers._http import (
    WireContext,
    error_info,
    parse_duration,
    parse_retry_after,
    translate_transport_error,
)
from fusion_magic.providers.base import ChatRequest, Finished, Message, ProviderEvent, TextDelta, Usage
from fusion_magic.providers.chat import anthropic, gemini, openai_compat
from fusion_magic.providers.registry import BUILTIN, make_provider, resolve_endpoint
from fusion_magic.testing import Emulator, Fault, ModelScript, RecordedRequest

# provider name -> a model name as that provider spells it
MODELS = {
    "openrouter": "openai/gpt-4o-mini",
    "openai": "gpt-4o-mini",
    "ollama": "llama3.2",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
PROVIDERS = list(MODELS)
STOP = {"openrouter": "stop", "openai": "stop", "ollama": "stop", "anthropic": "end_turn", "gemini": "STOP"}
LENGTH = {"openrouter": "length", "openai": "length", "ollama": "length", "anthropic": "max_tokens",
          "gemini": "MAX_TOKENS"}
AUTH_HEADER = {"openrouter": "authorization", "openai": "authorization", "ollama": "authorization",
               "anthropic": "x-api-key", "gemini": "x-goog-api-key"}
KEY_ENV = {"openrouter": "OPENROUTER_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
           "gemini": "GEMINI_API_KEY"}
REPLY = "Paris is the capital of France, and has been for centuries."


@dataclass
class Outcome:
    """Everything one call produced: the events in order and the error that ended it, if any."""

    events: list[ProviderEvent]
    error: ProviderError | None
    provider_repr: str = ""
    keys: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta))

    @property
    def deltas(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, TextDelta)]

    @property
    def usage(self) -> Usage:
        """Usage events merged field by field, later ones winning, as the base contract says."""
        merged: dict[str, Any] = {}
        for event in self.events:
            if isinstance(event, Usage):
                merged.update({k: v for k, v in vars(event).items() if v is not None})
        return Usage(**merged)

    @property
    def finished(self) -> list[Finished]:
        return [e for e in self.events if isinstance(e, Finished)]


def request(model: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=(Message("system", "Answer in one sentence."), Message("user", "What is the capital of France?")),
        **kwargs,
    )


async def _collect(emu: Emulator, name: str, req: ChatRequest, client: httpx.AsyncClient) -> Outcome:
    spec = BUILTIN[name]
    environ = emu.env() | emu.test_keys()
    endpoint = resolve_endpoint(spec, environ=environ)
    provider = make_provider(spec, endpoint, client)
    events: list[ProviderEvent] = []
    keys = [environ[KEY_ENV[name]]] if name in KEY_ENV else []
    try:
        # Our providers are async generators; aclosing() ends the HTTP stream even on an early exit.
        async with aclosing(cast(AsyncGenerator[ProviderEvent, None], provider.stream(req))) as stream:
            async for event in stream:
                events.append(event)
    except ProviderError as err:
        return Outcome(events, err, repr(provider), keys)
    return Outcome(events, None, repr(provider), keys)


def call(emu: Emulator, name: str, req: ChatRequest | None = None, *, timeout: float = 10.0) -> Outcome:
    """One streamed call with a fresh client on a fresh loop; the client is ours to close."""

    async def go() -> Outcome:
        async with httpx.AsyncClient(timeout=timeout) as client:
            outcome = await _collect(emu, name, req or request(MODELS[name]), client)
            assert not client.is_closed  # the shared client belongs to the caller
            return outcome

    return asyncio.run(go())


def assert_no_key(outcome: Outcome) -> None:
    texts = [outcome.provider_repr]
    if outcome.error is not None:
        err = outcome.error
        texts += [str(err), repr(err), err.message, repr(vars(err))]
    for key in outcome.keys:
        for text in texts:
            assert key not in text


def failed(outcome: Outcome, cls: type[ProviderError]) -> ProviderError:
    assert outcome.error is not None, f"expected {cls.__name__}, got events {outcome.events}"
    assert type(outcome.error) is cls, repr(outcome.error)
    assert outcome.finished == []
    assert_no_key(outcome)
    return outcome.error


# ---- what every protocol does ----------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
def test_streamed_text_equals_script(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=7))
    out = call(emulator, name)
    assert out.error is None
    assert out.text == REPLY
    assert out.deltas == [REPLY[i : i + 7] for i in range(0, len(REPLY), 7)]
    assert out.events[-1] == out.finished[0] and len(out.finished) == 1
    done = out.finished[0]
    assert done.reason == STOP[name]
    assert done.served_model == MODELS[name]
    assert done.request_id


@pytest.mark.parametrize("name", PROVIDERS)
def test_usage_is_parsed_and_only_openrouter_reports_cost(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, input_tokens=21, output_tokens=13, cost_usd=0.00042))
    out = call(emulator, name)
    assert out.error is None
    assert out.usage.input_tokens == 21
    assert out.usage.output_tokens == 13
    assert out.usage.cost_usd == (0.00042 if name == "openrouter" else None)
    # Usage arrives before the end, never after it.
    assert isinstance(out.events[-1], Finished)


@pytest.mark.parametrize("name", PROVIDERS)
def test_auth_header_is_sent_and_nothing_else_carries_the_key(emulator: Emulator, name: str) -> None:
    out = call(emulator, name)
    assert out.error is None
    (rec,) = emulator.requests
    assert rec.headers[AUTH_HEADER[name]] == "<redacted>"
    assert rec.headers["accept"] == "text/event-stream"
    others = set(AUTH_HEADER.values()) - {AUTH_HEADER[name]}
    assert not others & set(rec.headers)
    assert "key" not in rec.query  # Gemini: header only, never ?key=
    assert_no_key(out)


@pytest.mark.parametrize("name", PROVIDERS)
def test_length_limit_is_a_finish_not_an_error(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=4))
    out = call(emulator, name, request(MODELS[name], max_tokens=3))
    assert out.error is None
    assert out.text == REPLY[:12]
    assert out.finished[0].reason == LENGTH[name]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequestError), (403, AuthError), (404, BadRequestError), (429, RateLimitError),
     (500, ServerError), (502, ServerError), (503, ServerError), (504, ProviderTimeout)],
)
@pytest.mark.parametrize("name", PROVIDERS)
def test_status_fault_is_raised_before_any_event(emulator: Emulator, name: str, status: int,
                                                 cls: type[ProviderError]) -> None:
    emulator.script(MODELS[name], ModelScript(faults=[Fault("status", status=status, message="scripted words")]))
    out = call(emulator, name)
    err = failed(out, cls)
    assert out.events == []
    assert err.status == status
    assert err.message == "scripted words"
    assert err.provider == name and err.model == MODELS[name]
    assert f"HTTP {status}" in str(err)


@pytest.mark.parametrize("name", PROVIDERS)
def test_retry_after_is_parsed(emulator: Emulator, name: str) -> None:
    # Headers for most; Gemini sends google.rpc.RetryInfo.retryDelay in the body instead.
    emulator.script(MODELS[name], ModelScript(faults=[Fault("status", status=429, retry_after=7)]))
    err = failed(call(emulator, name), RateLimitError)
    assert err.retry_after == 7.0
    assert err.retryable is True


@pytest.mark.parametrize("name", PROVIDERS)
def test_wrong_key_is_an_auth_error_without_the_key(emulator: Emulator, name: str) -> None:
    emulator.expected_keys[name] = "the-only-valid-key"
    out = call(emulator, name)
    err = failed(out, AuthError)
    # Gemini answers a bad key with 400 INVALID_ARGUMENT + API_KEY_INVALID.
    assert err.status == (400 if name == "gemini" else 401)
    assert err.message
    assert err.retryable is False


@pytest.mark.parametrize("name", PROVIDERS)
def test_cut_stream_keeps_partial_text_and_is_a_protocol_error(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=5, faults=[Fault("cut", after_chunks=3)]))
    out = call(emulator, name)
    err = failed(out, ProtocolError)
    assert out.text == REPLY[:15]
    assert "stream ended early" in err.message
    assert err.retryable is False


@pytest.mark.parametrize("name", PROVIDERS)
def test_malformed_chunk_keeps_partial_text_and_is_a_protocol_error(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=5, faults=[Fault("malformed", after_chunks=2)]))
    out = call(emulator, name)
    err = failed(out, ProtocolError)
    assert out.text == REPLY[:10]
    assert "malformed JSON" in err.message


# The status each family's in-stream error carries: OpenAI-native in-stream errors name only a type.
MID_STREAM = {
    "openrouter": (503, ServerError, 503),
    "openai": (503, ServerError, 500),
    "ollama": (503, ServerError, 500),
    "anthropic": (529, ServerError, 529),
    "gemini": (503, ServerError, 503),
}


@pytest.mark.parametrize("name", PROVIDERS)
def test_error_chunk_mid_stream_keeps_partial_text(emulator: Emulator, name: str) -> None:
    sent, cls, status = MID_STREAM[name]
    faults = [Fault("error_chunk", status=sent, after_chunks=2, message="went away mid-answer")]
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=5, faults=faults))
    out = call(emulator, name)
    err = failed(out, cls)
    assert out.text == REPLY[:10]
    assert err.status == status
    assert err.message == "went away mid-answer"


@pytest.mark.parametrize("name", PROVIDERS)
def test_blocked_is_a_blocked_error(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, faults=[Fault("blocked")]))
    err = failed(call(emulator, name), BlockedError)
    assert err.retryable is False
    assert err.code


@pytest.mark.parametrize("name", PROVIDERS)
def test_split_reads_and_crlf_do_not_change_the_text(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=9, crlf=True, split_events=True))
    out = call(emulator, name)
    assert out.error is None
    assert out.text == REPLY


@pytest.mark.parametrize("name", ["openrouter", "anthropic", "gemini"])
def test_hung_server_becomes_a_timeout(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(faults=[Fault("hang")]))
    err = failed(call(emulator, name, timeout=0.3), ProviderTimeout)
    assert err.status is None
    assert "timed out" in err.message


def test_cancelling_a_call_closes_its_connection(emulator: Emulator) -> None:
    emulator.script(MODELS["anthropic"], ModelScript(faults=[Fault("hang")]))

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            await asyncio.wait_for(_collect(emulator, "anthropic", request(MODELS["anthropic"]), client), 0.3)

    with pytest.raises(TimeoutError):
        asyncio.run(go())
    emulator.wait_for(lambda reqs: reqs and reqs[-1].disconnected)


@pytest.mark.parametrize("name", PROVIDERS)
def test_closing_the_stream_early_closes_its_connection(emulator: Emulator, name: str) -> None:
    emulator.script(MODELS[name], ModelScript(reply=REPLY, chunk_chars=3, tokens_per_s=20))

    async def go() -> list[ProviderEvent]:
        async with httpx.AsyncClient() as client:
            spec = BUILTIN[name]
            provider = make_provider(spec, resolve_endpoint(spec, environ=emulator.env() | emulator.test_keys()),
                                     client)
            stream = cast(AsyncGenerator[ProviderEvent, None], provider.stream(request(MODELS[name])))
            first = [event async for event in _until_text(stream)]
            await stream.aclose()  # what the pool does on cancel or a user interrupt
            return first

    assert asyncio.run(go())[-1] == TextDelta(REPLY[:3])
    rec = emulator.wait_for(_last_ended)
    assert rec is not None and rec.disconnected  # the server saw the client leave before the answer was complete


def _last_ended(reqs: list[RecordedRequest]) -> RecordedRequest | None:
    return reqs[-1] if reqs and reqs[-1].ended is not None else None


async def _until_text(stream: AsyncGenerator[ProviderEvent, None]) -> AsyncGenerator[ProviderEvent, None]:
    async for event in stream:
        yield event
        if isinstance(event, TextDelta):
            return


def test_refused_connection_is_retryable_and_raised_before_any_event() -> None:
    with socket.socket() as sock:  # a port that was just free and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environ = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "ANTHROPIC_API_KEY": "sk-ant-secret-9"}

    async def go() -> Outcome:
        async with httpx.AsyncClient() as client:
            provider = make_provider(BUILTIN["anthropic"], resolve_endpoint(BUILTIN["anthropic"], environ=environ),
                                     client)
            try:
                async for _ in provider.stream(request("claude")):
                    pass
            except ProviderError as err:
                return Outcome([], err, repr(provider), ["sk-ant-secret-9"])
        raise AssertionError("no error")

    out = asyncio.run(go())
    err = failed(out, ServerError)
    assert err.retryable is True
    assert "could not connect" in err.message
    assert isinstance(err.__cause__, httpx.ConnectError)


# ---- OpenAI-compatible ---------------------------------------------------------------------------


def test_openai_flavors_send_their_own_token_cap_and_usage_option(emulator: Emulator) -> None:
    for name in ("openrouter", "openai", "ollama"):
        out = call(emulator, name, request(MODELS[name], max_tokens=50, temperature=0.2, seed=7, stop=("\n\n",)))
        assert out.error is None
    bodies = {rec.family: rec.body for rec in emulator.requests}
    for body in bodies.values():
        assert body["stream"] is True
        assert body["temperature"] == 0.2 and body["seed"] == 7 and body["stop"] == ["\n\n"]
        assert body["messages"][0] == {"role": "system", "content": "Answer in one sentence."}
        assert "response_format" not in body and "provider" not in body
    assert bodies["openai"]["max_completion_tokens"] == 50 and "max_tokens" not in bodies["openai"]
    assert bodies["openrouter"]["max_tokens"] == 50 and bodies["ollama"]["max_tokens"] == 50
    assert bodies["openai"]["stream_options"] == {"include_usage": True}
    assert bodies["ollama"]["stream_options"] == {"include_usage": True}
    assert "stream_options" not in bodies["openrouter"]  # a deprecated no-op there
    paths = {rec.family: rec.path for rec in emulator.requests}
    assert paths["ollama"] == "/ollama/v1/chat/completions"
    assert emulator.requests[0].headers["x-openrouter-title"] == "fusion_magic"


SCHEMA = {"type": "object", "properties": {"winner": {"type": "string"}}, "required": ["winner"],
          "additionalProperties": False}


def test_openai_json_schema_becomes_response_format(emulator: Emulator) -> None:
    for name in ("openrouter", "openai"):
        assert call(emulator, name, request(MODELS[name], json_schema=SCHEMA, schema_name="pick")).error is None
    bodies = {rec.family: rec.body for rec in emulator.requests}
    expected = {"type": "json_schema", "json_schema": {"name": "pick", "strict": True, "schema": SCHEMA}}
    assert bodies["openrouter"]["response_format"] == expected
    assert bodies["openai"]["response_format"] == expected
    # Without it OpenRouter may route to a backend that drops the schema silently.
    assert bodies["openrouter"]["provider"] == {"require_parameters": True}
    assert "provider" not in bodies["openai"]


@pytest.mark.parametrize("choices_empty", [False, True])
def test_openrouter_usage_chunk_is_accounting_not_a_second_end(emulator: Emulator, choices_empty: bool) -> None:
    model = MODELS["openrouter"]
    emulator.script(model, ModelScript(reply=REPLY, cost_usd=0.5, usage_choices_empty=choices_empty,
                                       served_model="openai/gpt-4o-mini-2024-07-18"))
    out = call(emulator, "openrouter")
    assert out.error is None and out.text == REPLY
    assert len(out.finished) == 1 and out.finished[0].reason == "stop"
    assert out.finished[0].served_model == "openai/gpt-4o-mini-2024-07-18"
    assert (out.finished[0].request_id or "").startswith("gen-")  # X-Generation-Id
    assert out.usage.cost_usd == 0.5


def test_openrouter_in_flight_402_is_a_rate_limit_with_retry_after(emulator: Emulator) -> None:
    fault = Fault("status", status=402, retry_after=3, limit_source="openrouter_in_flight_budget")
    emulator.script(MODELS["openrouter"], ModelScript(faults=[fault]))
    err = failed(call(emulator, "openrouter"), RateLimitError)
    assert (err.status, err.retry_after, err.retryable) == (402, 3.0, True)
    assert err.code == "openrouter_in_flight_budget"


@pytest.mark.parametrize("source", ["openrouter_credits", "openrouter_key_limit", None])
def test_other_402s_are_payment_errors(emulator: Emulator, source: str | None) -> None:
    emulator.script(MODELS["openrouter"], ModelScript(faults=[Fault("status", status=402, limit_source=source)]))
    err = failed(call(emulator, "openrouter"), PaymentError)
    assert err.status == 402 and err.retryable is False


def test_openrouter_error_only_stream_fails_with_the_chunk_status(emulator: Emulator) -> None:
    # A 200 whose first and only event is an error chunk is a failure, raised before any text.
    emulator.script(MODELS["openrouter"], ModelScript(faults=[Fault("error_chunk", status=429, after_chunks=0)]))
    out = call(emulator, "openrouter")
    err = failed(out, RateLimitError)
    assert out.events == [] and err.status == 429 and err.code == "rate_limit_exceeded"


def test_openrouter_moderation_403_is_blocked(emulator: Emulator) -> None:
    emulator.script(MODELS["openrouter"], ModelScript(faults=[Fault("blocked", message="flagged: violence")]))
    err = failed(call(emulator, "openrouter"), BlockedError)
    assert err.status == 403 and err.message == "flagged: violence"


def test_openai_insufficient_quota_429_is_a_payment_error() -> None:
    ctx = WireContext("openai", "gpt-4o", secret="sk-secret")
    body = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                      "param": None, "code": "insufficient_quota"}}
    err = openai_compat.classifier(ctx)(error_info(body, status=429))
    assert type(err) is PaymentError and err.status == 429 and err.code == "insufficient_quota"


def test_openai_flat_vllm_error_body_and_string_code() -> None:
    ctx = WireContext("vllm", "qwen")
    flat = {"object": "error", "message": "max_tokens too large", "type": "BadRequestError", "param": None,
            "code": 400}
    err = openai_compat.classifier(ctx)(error_info(flat, status=400))
    assert type(err) is BadRequestError and err.message == "max_tokens too large"
    # OpenRouter's streaming page shows a string code too.
    chunk = {"error": {"code": "server_error", "message": "upstream died"}}
    err = openai_compat.classifier(ctx)(error_info(chunk))
    assert type(err) is ServerError and err.status == 500


def test_openai_parser_tolerates_a_missing_done_after_finish_reason() -> None:
    parser = openai_compat.ChunkParser(WireContext("llamacpp", "m"), request_id=None)
    events = list(parser.feed('{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}'))
    events += list(parser.feed('{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'))
    assert events == [TextDelta("Hi")]
    assert parser.finish() == Finished("stop", "m", "c1")
    cut = openai_compat.ChunkParser(WireContext("llamacpp", "m"), request_id=None)
    list(cut.feed('{"choices":[{"index":0,"delta":{"content":"Hi"}}]}'))
    with pytest.raises(ProtocolError, match="stream ended early"):
        cut.finish()


def test_openrouter_choice_error_and_finish_reason_error() -> None:
    parser = openai_compat.ChunkParser(WireContext("openrouter", "m"), request_id=None)
    chunk = '{"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":"error","error":{"code":502,' \
            '"message":"upstream failed"}}]}'
    events: list[ProviderEvent] = []
    with pytest.raises(ServerError, match="upstream failed") as info:
        events.extend(parser.feed(chunk))
    assert events == [TextDelta("par")]  # text in the same chunk still arrives first
    assert info.value.status == 502


# ---- Anthropic -----------------------------------------------------------------------------------


def test_anthropic_request_shape(emulator: Emulator) -> None:
    model = MODELS["anthropic"]
    assert call(emulator, "anthropic", request(model, temperature=1.7, stop=("END",), json_schema=SCHEMA)).error is None
    (rec,) = emulator.requests
    assert rec.path == "/anthropic/v1/messages"
    assert rec.headers["anthropic-version"] == "2023-06-01"
    assert rec.headers["content-type"] == "application/json"
    body = rec.body
    assert body["max_tokens"] == 1024  # required by the API; our default when the caller sets none
    assert body["system"] == "Answer in one sentence."
    assert body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert body["temperature"] == 1.0  # clamped into Anthropic's [0, 1]
    assert body["stop_sequences"] == ["END"]
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert body["stream"] is True


def test_anthropic_usage_takes_input_from_start_and_last_cumulative_output(emulator: Emulator) -> None:
    emulator.script(MODELS["anthropic"], ModelScript(reply=REPLY, input_tokens=40, output_tokens=9))
    out = call(emulator, "anthropic")
    usages = [e for e in out.events if isinstance(e, Usage)]
    assert usages[0] == Usage(input_tokens=40, output_tokens=1, cached_input_tokens=0)  # message_start
    assert usages[-1] == Usage(input_tokens=40, output_tokens=9, cached_input_tokens=0)  # not 1 + 9
    assert out.finished[0].request_id and out.finished[0].request_id.startswith("req_")


def test_anthropic_429_without_retry_after_is_a_spend_cap(emulator: Emulator) -> None:
    emulator.script(MODELS["anthropic"], ModelScript(faults=[Fault("status", status=429)]))
    err = failed(call(emulator, "anthropic"), RateLimitError)
    assert err.retryable is False and err.retry_after is None
    assert RateLimitError.retryable is True  # only this instance is marked


def test_anthropic_529_is_a_retryable_server_error(emulator: Emulator) -> None:
    emulator.script(MODELS["anthropic"], ModelScript(faults=[Fault("status", status=529, retry_after=2)]))
    err = failed(call(emulator, "anthropic"), ServerError)
    assert (err.status, err.code, err.retryable, err.retry_after) == (529, "overloaded_error", True, 2.0)


def test_anthropic_refusal_keeps_the_text_before_it(emulator: Emulator) -> None:
    emulator.script(MODELS["anthropic"], ModelScript(reply=REPLY, chunk_chars=5,
                                                     faults=[Fault("blocked", after_chunks=2)]))
    out = call(emulator, "anthropic")
    err = failed(out, BlockedError)
    assert out.text == REPLY[:10] and err.code == "refusal"


def test_anthropic_parser_skips_thinking_and_unknown_events() -> None:
    parser = anthropic.EventParser(WireContext("anthropic", "m"), request_id=None)
    events = [
        *parser.feed("content_block_delta", '{"type":"content_block_delta","delta":{"type":"thinking_delta",'
                                            '"thinking":"hmm"}}'),
        *parser.feed("brand_new_event", '{"type":"brand_new_event"}'),
        *parser.feed("content_block_delta", '{"type":"content_block_delta","delta":{"type":"text_delta",'
                                            '"text":"ok"}}'),
    ]
    assert events == [TextDelta("ok")]
    with pytest.raises(ProtocolError, match="stream ended early"):
        parser.finish()


# ---- Gemini --------------------------------------------------------------------------------------


def test_gemini_request_shape(emulator: Emulator) -> None:
    model = MODELS["gemini"]
    messages = (Message("system", "Be terse."), Message("user", "Hi"), Message("assistant", "Hello."),
                Message("user", "Capital of France?"))
    req = ChatRequest(model=model, messages=messages, max_tokens=64, temperature=0.3, seed=5, stop=("END",),
                      json_schema=SCHEMA)
    assert call(emulator, "gemini", req).error is None
    (rec,) = emulator.requests
    assert rec.path == f"/gemini/v1beta/models/{model}:streamGenerateContent"
    assert rec.query == {"alt": "sse"}
    assert rec.body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert [c["role"] for c in rec.body["contents"]] == ["user", "model", "user"]
    assert rec.body["contents"][1]["parts"] == [{"text": "Hello."}]
    assert rec.body["generationConfig"] == {
        "temperature": 0.3, "maxOutputTokens": 64, "stopSequences": ["END"], "seed": 5,
        "responseMimeType": "application/json", "responseJsonSchema": SCHEMA,
    }


def test_gemini_safety_finish_keeps_text_and_is_blocked(emulator: Emulator) -> None:
    emulator.script(MODELS["gemini"], ModelScript(reply=REPLY, finish_reason="SAFETY"))
    out = call(emulator, "gemini")
    err = failed(out, BlockedError)
    assert out.text == REPLY and err.code == "SAFETY"


def test_gemini_per_day_quota_is_not_retryable() -> None:
    ctx = WireContext("gemini", "gemini-2.5-pro")
    body = {"error": {"code": 429, "message": "You exceeded your current quota", "status": "RESOURCE_EXHAUSTED",
                      "details": [
                          {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                           "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                          {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}]}}
    err = gemini.classifier(ctx)(error_info([body], status=429))  # sometimes wrapped in a list
    assert type(err) is RateLimitError
    assert (err.retryable, err.retry_after, err.code) == (False, 34.0, "RESOURCE_EXHAUSTED")


def test_gemini_parser_skips_thoughts_and_needs_a_finish_reason() -> None:
    parser = gemini.ChunkParser(WireContext("gemini", "m"), request_id=None)
    chunk = ('{"candidates":[{"content":{"parts":[{"text":"thinking...","thought":true},{"text":"Paris."}]}}],'
             '"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"thoughtsTokenCount":30}}')
    assert list(parser.feed(chunk)) == [TextDelta("Paris."), Usage(input_tokens=5, output_tokens=32)]
    with pytest.raises(ProtocolError, match="stream ended early"):
        parser.finish()  # a clean close with no finishReason is still a cut answer


# ---- shared helpers -------------------------------------------------------------------------------


def test_retry_after_header_forms() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "12"})) == 12.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(httpx.Headers({"retry-after": later})) or 0) <= 31
    assert parse_duration("34s") == 34.0 and parse_duration("1.500s") == 1.5 and parse_duration("34") is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"error": {"message": "nested"}}, "nested"),
        ({"object": "error", "message": "flat", "code": 400}, "flat"),
        ({"error": "model 'x' not found"}, "model 'x' not found"),
        ([{"error": {"code": 503, "message": "wrapped"}}], "wrapped"),
        (None, "Bad Gateway"),
    ],
)
def test_error_bodies_in_every_shape(payload: Any, message: str) -> None:
    info = error_info(payload, status=502, fallback="Bad Gateway")
    assert info.message == message and info.status == 502


def test_key_echoed_by_a_server_is_scrubbed() -> None:
    ctx = WireContext("openai", "gpt-4o", secret="sk-live-abcdef123456")
    err = openai_compat.classifier(ctx)(
        error_info({"error": {"message": "Incorrect API key provided: sk-live-abcdef123456"}}, status=401)
    )
    assert "sk-live-abcdef123456" not in str(err) and "<redacted>" in err.message
    assert "sk-live" not in repr(ctx)


@pytest.mark.parametrize(
    ("exc", "started", "cls", "retryable"),
    [
        (httpx.ConnectError("refused"), False, ServerError, True),
        (httpx.ReadError("reset"), False, ServerError, True),
        (httpx.ReadError("reset"), True, ProtocolError, False),
        (httpx.RemoteProtocolError("incomplete chunked read"), True, ProtocolError, False),
        (httpx.ReadTimeout("slow"), True, ProviderTimeout, False),
        (httpx.ConnectTimeout("slow"), False, ProviderTimeout, True),
    ],
)
def test_transport_errors_translate_by_when_they_happened(
    exc: httpx.HTTPError, started: bool, cls: type[ProviderError], retryable: bool
) -> None:
    err = translate_transport_error(exc, "openai", "gpt-4o", started_stream=started)
    assert type(err) is cls and err.retryable is retryable
    assert err.provider == "openai" and err.status is None
