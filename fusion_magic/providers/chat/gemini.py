"""Gemini ``streamGenerateContent?alt=sse``.

No terminator: a clean close is the end, so the last chunk's ``finishReason`` is what tells a
complete answer from a cut one. Errors are ``google.rpc.Status`` objects whose ``details`` carry the
facts the status hides (an invalid key is a 400; a per-day quota is a 429 that must not be retried).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from ...core.attachment import PDF, Attachment
from ...core.errors import AuthError, BlockedError, ProtocolError, ProviderError, error_for_status
from .._body import Base64Text
from .._http import Classifier, ErrorInfo, WireContext, error_info, parse_duration
from ..base import AttachmentLimits, ChatRequest, Message, ProviderEvent, TextDelta, Usage, encoded_size
from ..gemini_files import delete_file, upload_file, wait_active
from ._sse import SSEProvider, StreamParser, json_int, load_event

# Inline data is for requests under 20 MB in all (shared/reference/attachments.md §5.2), prompt included.
INLINE_LIMIT = 20 << 20
# What the JSON around the parts adds, with room to spare.
ENVELOPE_BYTES = 4096

# Only these end an answer cleanly; SAFETY, RECITATION, PROHIBITED_CONTENT, BLOCKLIST, SPII, OTHER, ...
# mean the text was withheld or stopped by policy.
_CLEAN_FINISH = frozenset({"STOP", "MAX_TOKENS"})
# Sent on non-final chunks by some versions; it means "not finished yet", not a reason.
_NO_REASON = frozenset({"", "FINISH_REASON_UNSPECIFIED"})


def classifier(ctx: WireContext) -> Classifier:
    """Our error for a ``google.rpc.Status`` error, HTTP body or in-stream chunk alike."""

    def classify(info: ErrorInfo) -> ProviderError:
        status = info.status or 500
        details = [d for d in info.error.get("details") or () if isinstance(d, Mapping)]
        reasons = {d.get("reason") for d in details}
        # google.rpc.Status names its class in "status" (RESOURCE_EXHAUSTED); "code" is the number.
        code = info.error.get("status") if isinstance(info.error.get("status"), str) else None
        if "API_KEY_INVALID" in reasons:
            # Gemini answers a bad key with 400 INVALID_ARGUMENT; it is an auth problem all the same.
            return ctx.error(AuthError, info.message, status=status, code="API_KEY_INVALID")
        retry_after = info.retry_after
        if retry_after is None:
            delays = (parse_duration(d.get("retryDelay")) for d in details)
            retry_after = next((d for d in delays if d is not None), None)
        retryable: bool | None = None
        if status == 429 and any("PerDay" in quota for quota in _quota_ids(details)):
            retryable = False  # a daily quota resets tomorrow, not within any sensible back-off
        return ctx.error(error_for_status(status), info.message, status=status, code=code,
                         retry_after=retry_after, retryable=retryable)

    return classify


def _quota_ids(details: list[Mapping[str, Any]]) -> Iterator[str]:
    for detail in details:
        for violation in detail.get("violations") or ():
            if isinstance(violation, Mapping) and isinstance(violation.get("quotaId"), str):
                yield violation["quotaId"]


class ChunkParser(StreamParser):
    """Turns ``GenerateContentResponse`` chunks into our events; no I/O.

        parser = ChunkParser(ctx, request_id=None)
        events = list(parser.feed('{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}'))
    """

    error_classifier = staticmethod(classifier)
    missing_end = "no finishReason"

    def __init__(self, ctx: WireContext, request_id: str | None) -> None:
        super().__init__(ctx, request_id)
        self.last_usage: Usage | None = None

    def feed(self, data: str) -> Iterator[ProviderEvent]:
        if not data.strip():
            return
        chunk = load_event(data, self.ctx)
        if chunk.get("error"):
            raise self.classify(error_info(chunk))
        if isinstance(chunk.get("modelVersion"), str):
            self.served_model = chunk["modelVersion"]
        if self.request_id is None and isinstance(chunk.get("responseId"), str):
            self.request_id = chunk["responseId"]
        candidates = chunk.get("candidates")
        if candidates and isinstance(candidates, list) and isinstance(candidates[0], Mapping):
            yield from self._candidate(candidates[0])
        usage = chunk.get("usageMetadata")
        if isinstance(usage, Mapping):
            event = _usage(usage)
            # Usage may ride on every chunk; only a change is news.
            if event != self.last_usage:
                self.last_usage = event
                yield event
        if not candidates:
            feedback = chunk.get("promptFeedback")
            reason = feedback.get("blockReason") if isinstance(feedback, Mapping) else None
            if reason:
                raise self.ctx.error(BlockedError, f"the prompt was blocked ({reason})", code=str(reason))
        # The block check runs after usage so a blocked prompt's token count is still reported.
        if self.reason is not None and self.reason not in _CLEAN_FINISH:
            raise self.ctx.error(BlockedError, f"the answer was stopped ({self.reason})", code=self.reason)

    def _candidate(self, candidate: Mapping[str, Any]) -> Iterator[ProviderEvent]:
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts or ():
            # Thought summaries are not the answer.
            if isinstance(part, Mapping) and not part.get("thought"):
                text = part.get("text")
                if isinstance(text, str) and text:
                    yield TextDelta(text)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason not in _NO_REASON:
            self.reason = reason

    @property
    def complete(self) -> bool:
        # Gemini sends no terminator: a close after a finishReason is the end, one before it a cut.
        return self.reason is not None


class GeminiProvider(SSEProvider):
    """Streams one Gemini answer.

        provider = GeminiProvider(resolve_endpoint(BUILTIN["gemini"]), client)
        text = "".join([e.text async for e in provider.stream(request) if isinstance(e, TextDelta)])
    """

    protocol: ClassVar[str] = "gemini"
    parser_class = ChunkParser
    params: ClassVar[Mapping[str, str]] = {"alt": "sse"}
    # A header, never ?key=: URLs end up in logs, proxies and exception messages.
    key_header = "x-goog-api-key"
    # shared/reference/attachments.md §5: no GIF. Inline data keeps a request under 20 MB; past that the largest
    # attachments go through the Files API (2 GB a file), so the limit that matters is the request's JSON we send.
    attachment_limits: ClassVar[AttachmentLimits] = AttachmentLimits(
        frozenset({"image/png", "image/jpeg", "image/webp", PDF}), 2 << 30,
        advice="attach smaller files (a PDF's pages you need, a smaller image)", source="Gemini's Files API limit")
    inline_limit: ClassVar[int] = INLINE_LIMIT
    # The Files API's processing: a few seconds for a PDF or an image.
    active_interval: ClassVar[float] = 1.0
    active_timeout: ClassVar[float] = 300.0

    def __init__(self, endpoint: Any, client: Any) -> None:
        super().__init__(endpoint, client)
        # Attachments uploaded for this call, by hash: a retry of the call (the same instance) reuses them.
        self._uploaded: dict[str, dict[str, Any]] = {}

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        """Upload the attachments that do not fit inline (before any event: a failure may be retried), stream the
        answer, then delete the uploads once the answer is complete (best effort; the API drops them in 48 h)."""
        ctx = WireContext(self.endpoint.provider, request.model, self.endpoint.api_key)
        uploads = await self._upload_oversized(request, ctx)
        async with contextlib.aclosing(super().stream(request)) as events:
            async for event in events:
                yield event
        for sha in uploads:
            file = self._uploaded.pop(sha)
            with contextlib.suppress(ProviderError):
                await delete_file(self.client, self.endpoint, file["name"], ctx=ctx, classify=classifier(ctx))

    async def _upload_oversized(self, request: ChatRequest, ctx: WireContext) -> list[str]:
        """Upload the largest attachments until the rest fits inline; the hashes of those uploaded."""
        binary = {a.sha256: a for a in request.attachments if a.binary}
        text = sum(len(m.text.encode()) for m in request.messages)
        inline = text + ENVELOPE_BYTES + sum(encoded_size(a.size) for a in binary.values())
        chosen: list[Attachment] = []
        for a in sorted(binary.values(), key=lambda a: a.size, reverse=True):
            if inline <= self.inline_limit:
                break
            chosen.append(a)
            inline -= encoded_size(a.size)
        classify = classifier(ctx)
        for a in chosen:
            if a.sha256 in self._uploaded:
                continue
            file = await upload_file(self.client, self.endpoint, a.data, a.mime, ctx=ctx, classify=classify,
                                     name=a.name)
            if file.get("state") != "ACTIVE":
                file = await wait_active(self.client, self.endpoint, file["name"], ctx=ctx, classify=classify,
                                         interval=self.active_interval, timeout=self.active_timeout)
            if not isinstance(file.get("uri"), str) or not file["uri"]:
                raise ctx.error(ProtocolError, f"the Files API gave no URI for {a.name}")
            self._uploaded[a.sha256] = file
        return [a.sha256 for a in chosen]

    def url(self, request: ChatRequest) -> str:
        name = quote(request.model.removeprefix("models/"), safe="")
        return f"{self.endpoint.base_url.rstrip('/')}/v1beta/models/{name}:streamGenerateContent"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contents": [content(m, self._uploaded) for m in request.turns],
        }
        if request.system is not None:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.stop:
            config["stopSequences"] = list(request.stop)
        if request.seed is not None:
            config["seed"] = request.seed
        if request.json_schema is not None:
            # Standard JSON Schema (responseJsonSchema), not Google's OpenAPI subset (responseSchema).
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = dict(request.json_schema)
        if config:
            body["generationConfig"] = config
        return body


def content(m: Message, uploaded: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One turn on the wire: role ``user`` or ``model``; images and PDFs before the text, as the docs advise: as
    ``inline_data`` (bare base64, a ``Base64Text`` encoded as the request is sent, and its MIME type), or as
    ``file_data`` when ``uploaded`` (by hash) holds the Files API file it was uploaded as."""
    uploaded = uploaded or {}
    parts: list[dict[str, Any]] = [
        {"file_data": {"mime_type": a.mime, "file_uri": uploaded[a.sha256]["uri"]}} if a.sha256 in uploaded
        else {"inline_data": {"mime_type": a.mime, "data": Base64Text(a)}} for a in m.binary]
    parts.append({"text": m.text})
    return {"role": "model" if m.role == "assistant" else "user", "parts": parts}


def _usage(usage: Mapping[str, Any]) -> Usage:
    candidates = json_int(usage.get("candidatesTokenCount"))
    thoughts = json_int(usage.get("thoughtsTokenCount"))
    # Thinking is billed as output, and Gemini counts it apart.
    output = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    return Usage(
        input_tokens=json_int(usage.get("promptTokenCount")),
        output_tokens=output,
        cached_input_tokens=json_int(usage.get("cachedContentTokenCount")),
    )


__all__ = ["ChunkParser", "GeminiProvider"]
