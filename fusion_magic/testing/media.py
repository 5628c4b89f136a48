"""Real, small MP4 files made with PyAV, for the emulator to serve and for tests of video analysis.

A clip is a list of scenes with known boundaries: each scene has its own colour and a square that moves
across it (so there is motion), and a scene may instead be black or frozen (one frame repeated). So a test
knows exactly where the cuts, the black and the frozen stretches are.

    data = clip_bytes(seconds=2)                                          # an MP4 in memory
    make_clip(Path("cuts.mp4"), scenes=[Scene(1.5), Scene(2.0), Scene(1.0, kind="black")], audio=True)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Literal

# Distinct, saturated colours, so a cut between two scenes is a large change in every channel.
_PALETTE = [(220, 40, 40), (40, 180, 60), (40, 70, 220), (230, 200, 30), (160, 40, 200), (20, 190, 200)]


@dataclass(frozen=True)
class Scene:
    """``seconds`` of one scene: "moving" (a colour with a square crossing it), "black", or "frozen"
    (the scene's first frame, held)."""

    seconds: float
    kind: Literal["moving", "black", "frozen"] = "moving"


def make_clip(dest: Path | IO[bytes], *, seconds: float = 2.0, scenes: Sequence[Scene] | None = None,
              size: tuple[int, int] = (320, 180), fps: int = 24, audio: bool = False) -> Path | IO[bytes]:
    """Write an H.264 MP4 (AAC audio if ``audio``) to ``dest`` and return it. Without ``scenes``, one moving
    scene of ``seconds``. Sizes must be even (H.264 4:2:0)."""
    import av
    import numpy as np

    scenes = list(scenes or [Scene(seconds)])
    width, height = size
    target: str | IO[bytes] = str(dest) if isinstance(dest, Path) else dest
    with av.open(target, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # Keyframes only at cuts would make cut detection trivially easy; keep the encoder's defaults.
        video.options = {"preset": "ultrafast", "tune": "zerolatency"}
        sound = container.add_stream("aac", rate=22050) if audio else None
        index = 0
        for n, scene in enumerate(scenes):
            frames = max(1, round(scene.seconds * fps))
            colour = np.array(_PALETTE[n % len(_PALETTE)], dtype=np.uint8)
            held = None
            for i in range(frames):
                if scene.kind == "black":
                    image = np.zeros((height, width, 3), dtype=np.uint8)
                elif scene.kind == "frozen" and held is not None:
                    image = held
                else:
                    image = np.empty((height, width, 3), dtype=np.uint8)
                    image[:] = colour // 2
                    side = height // 3
                    x = int((width - side) * (i / max(1, frames - 1)))
                    y = (height - side) // 2
                    image[y:y + side, x:x + side] = 255
                    held = image
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                index += 1
                for packet in video.encode(frame):
                    container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            total = sum(max(1, round(s.seconds * fps)) for s in scenes) / fps
            rate = 22050
            t = np.arange(int(total * rate)) / rate
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            step = 1024
            for start in range(0, len(tone), step):
                chunk = tone[start:start + step].reshape(1, -1)
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate = rate
                aframe.pts = start
                aframe.time_base = Fraction(1, rate)
                for packet in sound.encode(aframe):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return dest


def clip_bytes(*, seconds: float = 2.0, size: tuple[int, int] = (320, 180), fps: int = 24,
               audio: bool = False, scenes: Sequence[Scene] | None = None) -> bytes:
    """An MP4 made by :func:`make_clip`, in memory."""
    buffer = io.BytesIO()
    make_clip(buffer, seconds=seconds, size=size, fps=fps, audio=audio, scenes=scenes)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (64, 36), colour: tuple[int, int, int] = (40, 70, 220)) -> bytes:
    """A small PNG (a first frame for image-to-video requests)."""
    import av
    import numpy as np

    image = np.empty((size[1], size[0], 3), dtype=np.uint8)
    image[:] = colour
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = size[0], size[1], "rgb24"
    packets = [*codec.encode(av.VideoFrame.from_ndarray(image, format="rgb24")), *codec.encode(None)]
    return b"".join(bytes(p) for p in packets)


def pdf_bytes(size: int, seed: int = 0, text: str | None = None) -> bytes:
    """A valid one-page PDF of about ``size`` bytes: the page draws one uncompressed grey image of random samples
    (so the file cannot be smaller than its data) and, given ``text`` (ASCII), a line of it."""
    import random

    width = 1024
    height = max(1, (size - 1200) // width)
    samples = random.Random(seed).randbytes(width * height)
    content = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    fonts = b""
    if text is not None:
        content += b" BT /F1 18 Tf 72 720 Td (%s) Tj ET" % text.encode("ascii")
        fonts = b" /Font << /F1 6 0 R >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /XObject << /Im1 5 0 R >>%s >> >>" % fonts,
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Length %d >>\nstream\n%s\nendstream" % (width, height, len(samples), samples),
    ]
    if text is not None:
        objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


__all__ = ["Scene", "clip_bytes", "make_clip", "pdf_bytes", "png_bytes"]
