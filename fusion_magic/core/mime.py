"""The one MIME sniffer: a file's type from its first bytes, never from its name.

A JPEG saved as ``frame.png`` is a JPEG: a provider told ``image/png`` refuses it or decodes garbage. Every
place that sends or shows a file (a first or last frame, a thumbnail, a clip) asks ``sniff``.

    sniff(Path("frame.png").read_bytes()[:64])   # "image/jpeg" when it is one
    sniff_file(Path("clip.mp4"))                  # "video/mp4"
"""

from __future__ import annotations

import base64
from pathlib import Path

# How many leading bytes ``sniff`` needs for every type it knows.
HEAD_BYTES = 64

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# The first and last frames every video provider takes (Veo, Omni, fal): PNG or JPEG, by their bytes.
FRAME_TYPES = frozenset({"image/png", "image/jpeg"})

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),  # Matroska/WebM: browsers and providers take it as WebM
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
)
# ISO base media files name their family in the "ftyp" box's major brand (bytes 8-12).
_BRANDS = {b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"M4B ": "audio/mp4", b"3gp4": "video/3gpp",
           b"3gp5": "video/3gpp", b"3g2a": "video/3gpp2"}


def sniff(head: bytes) -> str | None:
    """The MIME type of the file whose first bytes are ``head`` (``HEAD_BYTES`` suffice), or None."""
    for prefix, mime in _PREFIXES:
        if head.startswith(prefix):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return _BRANDS.get(head[8:12], "video/mp4")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # an MPEG audio frame without ID3
        return "audio/mpeg"
    return None


def data_url(data: bytes, mime: str | None = None) -> str:
    """``data:<type>;base64,<data>``, the type sniffed from the bytes unless given (a JPEG saved as .png is a
    JPEG): how OpenAI, OpenRouter, fal and Runway take a file inline."""
    kind = mime or sniff(data[:HEAD_BYTES]) or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def sniff_file(path: Path) -> str | None:
    """The MIME type of the file at ``path``, read from its first bytes (None: unknown or unreadable)."""
    try:
        with path.open("rb") as f:
            return sniff(f.read(HEAD_BYTES))
    except OSError:
        return None


__all__ = ["FRAME_TYPES", "HEAD_BYTES", "IMAGE_TYPES", "data_url", "sniff", "sniff_file"]
