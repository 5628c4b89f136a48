"""What a turn showed the models besides its prompt, and the turns before it, as a reader sees them: the live view
(``fusion/view.py``) and the static report (``fusion/report.py``) draw both with these functions.

An image shows as a small thumbnail: the image itself, shrunk with Pillow to at most ``THUMB_PX`` pixels a side
and re-encoded (JPEG, or PNG where that is smaller or the image has transparency), so a 12-megapixel photo adds
a few KB to a saved notebook, not megabytes. It is an ``<img>`` with a ``data:`` URL that passes
``sanitize.clean_thumbnail`` (only a PNG/JPEG/GIF/WebP whose bytes are that type). A PDF or a text file, or an
image Pillow cannot read, shows as a chip of its name, kind and size. File names are untrusted: always escaped.

    attachments_html(r.attachments)     # thumbnails and chips in a row, above the answer
    chip_text(a)                        # "paper.pdf · PDF · 1.2 MB"
    thread_html([Turn(r.prompt, r.answer, r.attachments)])   # "Conversation so far (1 turn)", folded
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.attachment import Attachment, human_size
from ..core.mime import HEAD_BYTES, IMAGE_TYPES, sniff
from .fold import capped_markdown, folded
from .sanitize import clean_thumbnail, escape_text, image_data_url

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["SHOWN_PX", "THUMB_PX", "Thumbnail", "Turn", "attachment_html", "attachments_html", "attachments_line",
           "chip_text", "kind_word", "thread_html", "thread_title", "thumbnail"]

# The thumbnail's longest side in pixels (sharp on a 1.5x screen at the size it is shown), and its shown height.
THUMB_PX = 160
SHOWN_PX = 96
# An earlier turn's prompt and answer fold sooner than a report's answer: the thread is context, not the news.
TURN_CHARS = 700
TURN_LINES = 12

_CHIP_STYLE = ("display:inline-block;border:1px solid #c8c8c8;border-radius:.8em;padding:.1em .6em;"
               "font-size:.85em;white-space:nowrap;max-width:28em;overflow:hidden;text-overflow:ellipsis")
_IMAGE_STYLE = (f"max-height:{SHOWN_PX}px;max-width:{THUMB_PX}px;box-sizing:border-box;border:1px solid #ddd;"
                "border-radius:4px")
_ROW_STYLE = "display:flex;flex-wrap:wrap;gap:.5em;align-items:flex-end;margin:.3em 0"
_FIGURE_STYLE = "display:inline-flex;flex-direction:column;align-items:flex-start;gap:.1em"


@dataclass(frozen=True)
class Thumbnail:
    """A shrunk copy of an image attachment, ready to embed: its MIME type, its bytes and its pixel size."""

    mime: str
    data: bytes
    width: int
    height: int

    @functools.cached_property
    def data_url(self) -> str | None:
        """The thumbnail as an image ``data:`` URL (None when its bytes are not its type); built once per cached
        thumbnail, whichever view, report or later turn shows it."""
        return image_data_url(self.mime, self.data)


@dataclass(frozen=True)
class Turn:
    """An earlier turn of a thread as shown: the prompt, its attachments and the fused answer."""

    prompt: str
    answer: str
    attachments: tuple[Attachment, ...] = ()


# --- words ------------------------------------------------------------------------------------------------


def kind_word(a: Attachment) -> str:
    """``PDF``, ``text`` or ``image``: what the chip says the file is (from its sniffed type, never its name)."""
    return {"pdf": "PDF", "image": "image"}.get(a.kind, "text")


def chip_text(a: Attachment) -> str:
    """``paper.pdf · PDF · 1.2 MB``, ``notes.py · text · 2 KB``, ``chart.png · image · 47 KB`` (plain text)."""
    return f"{a.name} · {kind_word(a)} · {human_size(a.size)}"


def attachments_line(attachments: Iterable[Attachment]) -> str:
    """``Attached: chart.png · image · 47 KB, notes.py · text · 2 KB`` (plain text; empty for none)."""
    names = [chip_text(a) for a in attachments]
    return "Attached: " + ", ".join(names) if names else ""


# --- thumbnails ---------------------------------------------------------------------------------------------

# Thumbnails by the image's sha256: a view and then the report that replaces it draw the same image, and so does
# every later turn's thread. Bounded: a long session keeps only the latest.
_CACHE: OrderedDict[str, Thumbnail | None] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def thumbnail(a: Attachment) -> Thumbnail | None:
    """``a`` shrunk to at most ``THUMB_PX`` pixels a side, re-encoded; None for a PDF, a text file, or bytes that
    are no image we show (sniffed, whatever the attachment's ``mime`` says) or that Pillow cannot read."""
    if a.kind != "image" or sniff(a.data[:HEAD_BYTES]) not in IMAGE_TYPES:
        return None
    key = a.sha256 or str(hash(a.data))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    thumb = _shrink(a.data)
    with _CACHE_LOCK:
        _CACHE[key] = thumb
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return thumb


def _shrink(data: bytes) -> Thumbnail | None:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            # Pillow warns of a very large image (and past twice that refuses it: the chip is shown instead).
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as source:
                with contextlib.suppress(Exception):  # a JPEG decodes at a fraction of its size
                    source.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))
                image = ImageOps.exif_transpose(source) or source
                image.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
                alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                image = image.convert("RGBA" if alpha else "RGB")
                candidates = [("image/png", _encode(image, "PNG", optimize=True))]
                if not alpha:
                    candidates.append(("image/jpeg", _encode(image, "JPEG", quality=82, optimize=True)))
                mime, encoded = min(candidates, key=lambda c: len(c[1]))
                return Thumbnail(mime, encoded, image.width, image.height)
    except Exception:  # a truncated or hostile file: show its chip, never fail the report
        return None


def _encode(image: Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


# --- HTML ---------------------------------------------------------------------------------------------------


def _chip(a: Attachment) -> str:
    return (f'<span class="fm-chip" style="{_CHIP_STYLE}" title="{escape_text(chip_text(a))}">'
            f"{escape_text(chip_text(a))}</span>")


def attachment_html(a: Attachment) -> str:
    """One attachment: a thumbnail with its name and size under it, or a chip (``chip_text``)."""
    thumb = thumbnail(a)
    url = thumb.data_url if thumb is not None else None
    if thumb is None or url is None:
        return _chip(a)
    words = escape_text(chip_text(a))
    img = clean_thumbnail(f'<img class="fm-thumb" src="{url}" alt="{escape_text(a.name)}" title="{words}" '
                          f'width="{thumb.width}" height="{thumb.height}" style="{_IMAGE_STYLE};height:auto;'
                          'width:auto">')
    if not img:
        return _chip(a)
    caption = f"{escape_text(a.name)} · {escape_text(human_size(a.size))}"
    return (f'<span class="fm-attachment" style="{_FIGURE_STYLE}">{img}'
            f'<small style="max-width:{THUMB_PX}px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
            f"{caption}</small></span>")


def attachments_html(attachments: Sequence[Attachment]) -> str:
    """The attachments in a row (thumbnails and chips), or ``""`` for none."""
    if not attachments:
        return ""
    items = "".join(attachment_html(a) for a in attachments)
    return f'<div class="fm-attachments" style="{_ROW_STYLE}">{items}</div>'


def thread_title(n: int) -> str:
    """``Conversation so far (2 turns)``: the folded thread's summary line, in plain text."""
    return f"Conversation so far ({n} turn{'s' if n != 1 else ''})"


def thread_html(turns: Sequence[Turn]) -> str:
    """The earlier turns, folded under "Conversation so far (N turns)": each prompt with its attachments and its
    fused answer, Markdown rendered and sanitized, a long one folded again; ``""`` when there are none."""
    if not turns:
        return ""
    body: list[str] = []
    for n, turn in enumerate(turns, 1):
        prompt = capped_markdown(turn.prompt.strip(), chars=TURN_CHARS, lines=TURN_LINES,
                                 empty="<p><i>(no prompt)</i></p>")
        answer = capped_markdown(turn.answer.strip(), chars=TURN_CHARS, lines=TURN_LINES,
                                 empty="<p><i>(no fused answer)</i></p>")
        body.append(
            '<div class="fm-turn" style="border-left:3px solid #d0d0d0;padding-left:.7em;margin:.5em 0">'
            f'<p style="margin:.2em 0"><b>Turn {n}</b> · <i>you asked</i></p>{prompt}'
            f"{attachments_html(turn.attachments)}"
            f'<p style="margin:.4em 0 .2em"><i>fused answer</i></p>{answer}</div>'
        )
    return folded(f"<b>{escape_text(thread_title(len(turns)))}</b>", "".join(body), cls="fm-thread")
