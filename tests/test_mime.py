"""The one MIME sniffer reads types from bytes, never from names."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion_magic.core.mime import sniff, sniff_file
from fusion_magic.testing.media import png_bytes


@pytest.mark.parametrize(("head", "mime"), [
    (b"\x89PNG\r\n\x1a\n" + bytes(8), "image/png"),
    (b"\xff\xd8\xff\xe0" + bytes(8), "image/jpeg"),
    (b"GIF89a" + bytes(8), "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
    (b"%PDF-1.7\n", "application/pdf"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00", "video/mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00", "video/quicktime"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio/mp4"),
    (b"\x1a\x45\xdf\xa3\x01\x00", "video/webm"),
    (b"ID3\x04\x00", "audio/mpeg"),
    (b"OggS\x00", "audio/ogg"),
    (b"fLaC\x00", "audio/flac"),
    (b"hello, world", None),
    (b"", None),
])
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff(head) == mime


def test_a_file_is_what_its_bytes_say_whatever_its_name(tmp_path: Path) -> None:
    named_jpeg = tmp_path / "frame.jpg"
    named_jpeg.write_bytes(png_bytes())
    assert sniff_file(named_jpeg) == "image/png"
    assert sniff_file(tmp_path / "missing.png") is None


def test_understand_sends_a_video_as_the_type_its_bytes_say(tmp_path: Path) -> None:
    """``--understand``'s video goes with the MIME type sniffed from its bytes (core.mime), not guessed from its
    name: an MP4 saved as .mov is video/mp4; a container the sniffer does not name is sent as video/mp4."""
    from fusion_magic.testing.media import make_clip
    from fusion_magic.videos.options import VideoOptions
    from fusion_magic.videos.plan import _source

    clip = make_clip(tmp_path / "clip.mov", seconds=0.5)
    assert isinstance(clip, Path)
    source = _source(VideoOptions(understand=str(clip)))
    assert source.path == clip and source.mime == "video/mp4"
