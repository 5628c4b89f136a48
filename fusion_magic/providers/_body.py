"""Request bodies written to the socket a piece at a time, so an attachment is never copied whole per request.

A protocol module puts ``Base64Text(attachment)`` where a JSON string holds a file's bytes in base64 (a data URL's
``prefix`` before it); ``JSONBody`` writes the JSON around it at once and the base64 a chunk at a time, encoded
from the attachment's bytes as the request goes out. A 20 MB PDF fused across four providers would otherwise sit
in memory as its base64, a data URL per OpenAI-style member, and per request the serialized JSON, its UTF-8
bytes and the socket's send buffer: over 250 MB for one file (bench/bench_attach.py); streamed, every request
shares the file's bytes and holds a chunk in flight.

The bytes sent are exactly those of httpx's ``json=`` for the value with each ``Base64Text`` as its string
(``json.dumps(..., ensure_ascii=False, separators=(",", ":"), allow_nan=False)``, UTF-8), under a
``Content-Length``, never chunked:

    body = JSONBody({"data": Base64Text(attachment), "text": "Summarise it."})
    await client.post(url, content=body.content, headers={**headers, **body.headers})

Where a whole value is needed (a batch's request file), ``json_default`` makes ``json.dumps`` write each
``Base64Text`` as its string.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.attachment import Attachment

# Bytes of the file encoded per piece of a streamed body: a multiple of 3, so the pieces' base64 joins into the
# whole file's (padding only at the end). 48 KiB becomes 64 KiB on the wire, what asyncio's send buffer holds
# before it pauses the writer: a connection keeps about one piece in memory, whatever the file's size.
CHUNK_BYTES = 48 << 10
# What a piece of a raw upload (Gemini's Files API) is sent as.
PIECE_BYTES = 64 << 10


@dataclass(frozen=True)
class Base64Text:
    """A JSON string whose value is ``prefix`` then ``attachment``'s bytes in standard base64 with padding; its
    text is made only when asked for whole (``text``), and sent a chunk at a time by ``JSONBody``.

        Base64Text(a, f"data:{a.mime};base64,")   # OpenAI's data URL; Base64Text(a): Anthropic's, Gemini's data
    """

    attachment: Attachment
    prefix: str = ""
    _quoted_prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The opening quote and the prefix as json.dumps writes them; base64 needs no escaping in JSON.
        object.__setattr__(self, "_quoted_prefix", _dumps(self.prefix)[:-1].encode())

    def text(self) -> str:
        """The whole string (the attachment's base64, encoded once however many bodies ask)."""
        return self.prefix + self.attachment.base64

    def __str__(self) -> str:
        return self.text()

    @property
    def json_size(self) -> int:
        """How many bytes it takes in a JSON body, quotes included."""
        return len(self._quoted_prefix) + 4 * ((self.attachment.size + 2) // 3) + 1

    def json_pieces(self, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
        """It as a JSON string, a piece at a time: the opening quote and prefix, the base64 of each ``chunk``
        bytes of the file (a view: the file is never copied whole), the closing quote."""
        if chunk <= 0 or chunk % 3:
            raise ValueError("chunk must be a positive multiple of 3")
        yield self._quoted_prefix
        data = memoryview(self.attachment.data)
        for start in range(0, len(data), chunk):
            yield base64.b64encode(data[start:start + chunk])
        yield b'"'


def json_default(value: object) -> str:
    """``json.dumps``'s ``default`` for a value holding ``Base64Text``: each as its whole string."""
    if isinstance(value, Base64Text):
        return value.text()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value: Any, default: Any = None) -> str:
    # httpx's json= serialization, byte for byte.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default)


# A Base64Text's place in the serialized JSON: the nonce (secrets.token_hex(16)) and the text's index.
_TOKEN = re.compile(r'"([0-9a-f]{32}):([0-9]+)"')


class JSONBody:
    """A JSON request body: the text around the attachments serialized once, each ``Base64Text`` encoded a chunk at
    a time as the request is sent. ``content`` is what to pass httpx as ``content=``: the bytes themselves when
    the value holds no ``Base64Text`` (nothing to gain from streaming), else this body, which httpx iterates
    (again on each attempt) under the exact ``Content-Length`` in ``headers``."""

    def __init__(self, value: Any, *, chunk: int = CHUNK_BYTES) -> None:
        self.chunk = chunk
        texts: list[Base64Text] = []
        # Each Base64Text is serialized as a token no text can hold (a fresh random nonce), then cut out.
        nonce = secrets.token_hex(16)

        def mark(item: object) -> str:
            if isinstance(item, Base64Text):
                texts.append(item)
                return f"{nonce}:{len(texts) - 1}"
            return json_default(item)

        text = _dumps(value, mark)
        self._pieces: list[bytes | Base64Text] = []
        at = 0
        # Any nonce's token matches: one pattern compiled once, where one per request (its nonce in it) would fill
        # and churn re's cache. A token with another nonce is a string the value itself holds, kept as text.
        for token in _TOKEN.finditer(text) if texts else ():
            if token[1] != nonce:
                continue
            if token.start() > at:
                self._pieces.append(text[at:token.start()].encode())
            self._pieces.append(texts[int(token[2])])
            at = token.end()
        if at < len(text):
            self._pieces.append(text[at:].encode())
        self.length = sum(p.json_size if isinstance(p, Base64Text) else len(p) for p in self._pieces)

    @property
    def streamed(self) -> bool:
        """Whether any attachment is sent a chunk at a time."""
        return any(isinstance(p, Base64Text) for p in self._pieces)

    @property
    def content(self) -> bytes | JSONBody:
        if self.streamed:
            return self
        return b"".join(p for p in self._pieces if isinstance(p, bytes))

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Content-Length": str(self.length)}

    def pieces(self) -> Iterator[bytes]:
        """The body's bytes, in the pieces they are sent in."""
        for piece in self._pieces:
            if isinstance(piece, Base64Text):
                yield from piece.json_pieces(self.chunk)
            else:
                yield piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces():
            yield piece


class Pieces:
    """Bytes already in memory (an attachment, or a chunk of a file read from disk) sent as views of at most
    ``piece`` bytes each under their ``Content-Length``: no whole copy for the socket's send buffer.

        await client.post(url, content=Pieces(data), headers={**headers, **Pieces(data).headers})
    """

    def __init__(self, data: bytes | memoryview, piece: int = PIECE_BYTES) -> None:
        if piece <= 0:
            raise ValueError("piece must be positive")
        self.data = memoryview(data)
        self.piece = piece

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Length": str(len(self.data))}

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.piece):
            yield bytes(self.data[start:start + self.piece])


__all__ = ["CHUNK_BYTES", "PIECE_BYTES", "Base64Text", "JSONBody", "Pieces", "json_default"]
