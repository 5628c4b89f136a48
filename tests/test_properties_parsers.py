"""Property tests (hypothesis) for every wire parser that reads what a server sends: the three chat stream
parsers (OpenAI-compatible chunks, Anthropic events, Gemini chunks) and the four batch APIs' status and result
readers. Whatever arrives (any JSON, any shape, broken text), a parser gives events, a result, or one typed
``ProviderError``: never another exception, which would fail a call with a traceback instead of a reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fusion_magic.core.errors import ProviderError
from fusion_magic.providers._http import WireContext, default_classify
from fusion_magic.providers.batch.anthropic import anthropic_item, anthropic_status
from fusion_magic.providers.batch.base import BatchStatus, ItemResult
from fusion_magic.providers.batch.gemini import gemini_item, gemini_status
from fusion_magic.providers.batch.openai import openai_item, openai_status
from fusion_magic.providers.batch.openrouter import openrouter_item, openrouter_status
from fusion_magic.providers.chat.anthropic import EventParser
from fusion_magic.providers.chat.gemini import ChunkParser as GeminiParser
from fusion_magic.providers.chat.openai_compat import ChunkParser as OpenAIParser

CTX = WireContext("emu", "m", secret="sk-never-shown-0123456789")

# Any JSON value, shaped like the wire's: objects whose keys are the fields a parser looks for (so hypothesis
# reaches deep into the shapes), with values of every JSON type.
KEYS = st.sampled_from([
    "choices", "delta", "content", "text", "finish_reason", "usage", "prompt_tokens", "completion_tokens",
    "prompt_tokens_details", "cached_tokens", "error", "message", "type", "code", "status", "model", "id",
    "candidates", "parts", "finishReason", "usageMetadata", "promptTokenCount", "candidatesTokenCount",
    "promptFeedback", "blockReason", "index", "content_block", "stop_reason", "input_tokens", "output_tokens",
    "custom_id", "response", "status_code", "body", "result", "request_counts", "total", "completed", "failed",
    "metadata", "state", "key", "name", "done", "output", "inlinedResponses", "batchStats", "results", "cost",
    "annotations", "output_file_id", "error_file_id", "errors", "data", "processing_status", "results_url",
    "error_type", "role", "message_start", "message_delta", "content_block_delta",
])
SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
                    max_leaves=30)
WIRE_TEXT = JSON.map(lambda v: json.dumps(v)) | st.text(max_size=60) | st.sampled_from(["[DONE]", "", "{", "null"])


def exhaust(feed: Callable[[], Any]) -> None:
    """Run one parse to its end: events, or a typed error; anything else fails the property."""
    try:
        result = feed()
        if isinstance(result, Iterator):
            list(result)
    except ProviderError as exc:
        assert CTX.secret is not None and CTX.secret not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.lists(WIRE_TEXT, min_size=1, max_size=6))
def test_the_openai_compatible_stream_parser_gives_events_or_a_typed_error(chunks: list[str]) -> None:
    """OpenAI, OpenRouter and every local server's chunks: events or one ``ProviderError``."""
    parser = OpenAIParser(CTX, request_id=None)
    for chunk in chunks:
        exhaust(lambda chunk=chunk: parser.feed(chunk))  # type: ignore[misc]
    exhaust(parser.finish)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["message_start", "content_block_start", "content_block_delta",
                                           "message_delta", "message_stop", "ping", "error", "other"]),
                          WIRE_TEXT), min_size=1, max_size=6))
def test_the_anthropic_event_parser_gives_events_or_a_typed_error(events: list[tuple[str, str]]) -> None:
    """Anthropic's named events, any name with any data: events or one ``ProviderError``."""
    parser = EventParser(CTX, request_id=None)
    for name, data in events:
        exhaust(lambda name=name, data=data: parser.feed(name, data))  # type: ignore[misc]
    exhaust(parser.finish)


@settings(max_examples=300, deadline=None)
@given(st.lists(WIRE_TEXT, min_size=1, max_size=6))
def test_the_gemini_chunk_parser_gives_events_or_a_typed_error(chunks: list[str]) -> None:
    """Gemini's chunks (a blocked prompt, a policy stop, usage, text): events or one ``ProviderError``."""
    parser = GeminiParser(CTX, request_id=None)
    for chunk in chunks:
        exhaust(lambda chunk=chunk: parser.feed(chunk))  # type: ignore[misc]
    exhaust(parser.finish)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_every_batch_status_reader_gives_a_status_or_a_typed_error(payload: Any) -> None:
    """A batch object, Operation or answer of any shape: a ``BatchStatus`` with a known state, or a
    ``ProviderError`` (a status we cannot read is the provider's protocol failing, not our crash)."""
    if not isinstance(payload, dict):
        payload = {"value": payload}
    for read in (lambda: openai_status(payload, CTX), lambda: anthropic_status(payload, CTX),
                 lambda: gemini_status(payload, CTX), lambda: openrouter_status(payload, CTX)):
        try:
            status = read()
        except ProviderError:
            continue
        assert isinstance(status, BatchStatus) and status.id


@settings(max_examples=300, deadline=None)
@given(WIRE_TEXT, JSON)
def test_every_batch_result_reader_gives_a_result_none_or_a_typed_error(line: str, entry: Any) -> None:
    """A result line (OpenAI's files, Anthropic's JSONL) or entry (Gemini's and OpenRouter's inline results) of
    any shape: an ``ItemResult`` (events or the provider's reason), None (a line with no readable id, skipped), or
    a ``ProviderError``."""
    classify = default_classify(CTX)
    for read in (lambda: openai_item(line, CTX), lambda: anthropic_item(line, CTX, classify),
                 lambda: gemini_item(entry, CTX), lambda: openrouter_item(entry, CTX, classify)):
        try:
            item = read()
        except ProviderError:
            continue
        assert item is None or (isinstance(item, ItemResult) and isinstance(item.custom_id, str)
                                and (item.ok or isinstance(item.error, ProviderError)))
