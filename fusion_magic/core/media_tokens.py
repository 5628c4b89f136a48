"""How many input tokens an attached image or PDF costs each provider, by the rule the provider publishes.

A chat API counts an image or a PDF page as tokens by a rule of its own, from the image's size in pixels or the
document's pages; ``--estimate`` adds them to each call's input. The size comes from the image's header (Pillow,
nothing decoded) and the pages from the PDF (pypdf). Each rule says where it is written (``RULES``); a figure
marked ``approx`` is a rough one (a vendor that gives a range, a model without a published rule, a local server).

    family_of("openrouter:anthropic/claude-sonnet-4.5")   # "anthropic"
    image_tokens(1024, 1024, "openai:gpt-4o").tokens     # 765: 85 + 170 x 4 tiles
    attachment_tokens(load_attachment("paper.pdf"), "gemini:gemini-2.5-flash").tokens   # 258 a page

Text attachments are part of the prompt's text (``Message.text``) and counted with it (characters / 4).
"""

from __future__ import annotations

import functools
import io
import math
import warnings
from dataclasses import dataclass
from typing import Literal, TypeVar

from .attachment import Attachment
from .pricing import CHARS_PER_TOKEN, approx_tokens

Family = Literal["openai", "anthropic", "gemini", "other"]
FAMILIES: tuple[Family, ...] = ("openai", "anthropic", "gemini", "other")
FAMILY_NAMES: dict[Family, str] = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini",
                                   "other": "other models"}

# OpenRouter names a model by its vendor: "openai/gpt-4o", "anthropic/claude-...", "google/gemini-...".
_OPENROUTER_VENDORS: dict[str, Family] = {"openai": "openai", "anthropic": "anthropic", "google": "gemini"}

_T = TypeVar("_T")

# A PDF page as an image: neither OpenAI nor Anthropic says at what resolution it renders a page; a page read
# on screen is about this.
PAGE_DPI = 150

# ---- the rules, with where each is written (RULES[family, kind], said after "images on OpenAI: ") -------------

OPENAI_IMAGES = ("high detail (we send none, so a model may pick low: an upper bound): fit in "
                 "2048x2048, shortest side to 768 px, then base + tile tokens per 512-px tile (85 + 170 for "
                 "gpt-4o/4.1; 70 + 140 gpt-5; 2833 + 5667 gpt-4o-mini; 75 + 150 o1/o3), or 32-px patches x a "
                 "multiplier, at most 1536 (gpt-4.1-mini/nano, gpt-5-mini/nano, o4-mini) "
                 "[developers.openai.com/api/docs/guides/images-vision, calculating costs]")
OPENAI_PDFS = ("each page's extracted text (characters / 4) plus an image of the page (its size at "
               f"{PAGE_DPI} dpi, by the image rule); approximate per page "
               "[developers.openai.com/api/docs/guides/file-inputs: the model gets the extracted text and an image "
               "of each page]")
ANTHROPIC_IMAGES = ("about width x height / 750 tokens, after scaling down to a long side of at most "
                    "1568 px and about 1,600 tokens (1.2 megapixels) "
                    "[platform.claude.com/docs/en/build-with-claude/vision, evaluate image size; "
                    "shared/reference/attachments.md 4.3]")
ANTHROPIC_PDFS = ("1,500 text tokens a page (the low end of the documented '1,500-3,000 tokens per "
                  f"page') plus each page as an image (its size at {PAGE_DPI} dpi, by the image rule) "
                  "[platform.claude.com/docs/en/build-with-claude/pdf-support, estimate your costs]")
GEMINI_IMAGES = ("258 tokens for an image of at most 384 px on both sides, else 258 per 768x768 tile "
                 "[ai.google.dev/gemini-api/docs/image-understanding, technical details; Gemini 2.x]")
GEMINI_PDFS = "258 tokens a page [ai.google.dev/gemini-api/docs/document-processing, technical details]"
OTHER_IMAGES = "no published rule (local servers, other vendors): approximated by OpenAI's 85 + 170 per tile"
OTHER_PDFS = "no published rule: approximated by each page's text (characters / 4) plus a page image by OpenAI's rule"
RULES: dict[tuple[Family, str], str] = {
    ("openai", "image"): OPENAI_IMAGES, ("openai", "pdf"): OPENAI_PDFS,
    ("anthropic", "image"): ANTHROPIC_IMAGES, ("anthropic", "pdf"): ANTHROPIC_PDFS,
    ("gemini", "image"): GEMINI_IMAGES, ("gemini", "pdf"): GEMINI_PDFS,
    ("other", "image"): OTHER_IMAGES, ("other", "pdf"): OTHER_PDFS,
}

# OpenAI's tile rule, (base, per tile) tokens by model, and its patch rule's multipliers (images-vision guide).
_OPENAI_TILES: dict[str, tuple[int, int]] = {
    "gpt-5": (70, 140), "gpt-5-chat-latest": (70, 140),
    "gpt-4o": (85, 170), "gpt-4.1": (85, 170), "gpt-4.5": (85, 170),
    "gpt-4o-mini": (2833, 5667),
    "o1": (75, 150), "o1-pro": (75, 150), "o3": (75, 150),
    "computer-use-preview": (65, 129),
}
_OPENAI_PATCHES: dict[str, float] = {
    "gpt-5-mini": 1.62, "gpt-5-nano": 2.46, "gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72,
}
_OPENAI_DEFAULT_TILES = (85, 170)
_PATCH, _MAX_PATCHES = 32, 1536
# Anthropic: tokens = pixels / 750, the image first scaled to these bounds.
_ANTHROPIC_PX_PER_TOKEN = 750
_ANTHROPIC_LONG_SIDE = 1568
_ANTHROPIC_MAX_PIXELS = 1600 * _ANTHROPIC_PX_PER_TOKEN
_ANTHROPIC_PDF_TEXT_PER_PAGE = 1500
# Gemini 2.x.
_GEMINI_SMALL, _GEMINI_TILE, _GEMINI_TOKENS = 384, 768, 258
# An image whose header cannot be read is counted at this size, marked approximate.
_FALLBACK_SIZE = (1024, 1024)


def family_of(model_id: str) -> Family:
    """Whose counting rule applies to ``provider:model``: OpenAI's, Anthropic's, Gemini's (OpenRouter's models by
    their vendor prefix), else ``"other"``."""
    provider, _, model = model_id.partition(":")
    if provider in ("openai", "anthropic", "gemini"):
        return provider  # type: ignore[return-value]
    if provider == "openrouter":
        return _OPENROUTER_VENDORS.get(model.split("/", 1)[0].lower(), "other")
    return "other"


@dataclass(frozen=True)
class MediaTokens:
    """An attachment's input tokens on one model; ``approx`` when the rule gives only a rough figure."""

    tokens: int
    approx: bool


@dataclass(frozen=True)
class Page:
    """One PDF page: its size in points (1/72 inch) and how many characters of text it has."""

    width_pt: float
    height_pt: float
    text_chars: int

    def pixels(self, dpi: int = PAGE_DPI) -> tuple[int, int]:
        return round(self.width_pt / 72 * dpi), round(self.height_pt / 72 * dpi)


@dataclass(frozen=True)
class Measure:
    """What the counting rules need of an attachment: an image's size, a PDF's pages. ``readable`` is False when
    the bytes could not be read (then a typical size, or one page, stands in)."""

    kind: str
    width: int = 0
    height: int = 0
    pages: tuple[Page, ...] = ()
    readable: bool = True

    def describe(self) -> str:
        """``"1 image (1024x768)"``, ``"3 pages"``, ``"text"``."""
        if self.kind == "image":
            return f"1 image ({self.width}x{self.height})" if self.readable else "1 image (size unreadable)"
        if self.kind == "pdf":
            n = len(self.pages)
            return f"{n} page{'s' if n != 1 else ''}" + ("" if self.readable else " (unreadable: guessed)")
        return "text"


@functools.lru_cache(maxsize=64)
def measure(a: Attachment) -> Measure:
    """``a``'s size (an image: from its header only) or pages (a PDF). Keyed by name and hash, so a thread's
    earlier attachments are read once."""
    if a.kind == "image":
        size = image_size(a.data)
        if size is None:
            return Measure("image", *_FALLBACK_SIZE, readable=False)
        return Measure("image", *size)
    if a.kind == "pdf":
        pages = pdf_pages(a.data)
        if pages is None:
            return Measure("pdf", pages=(Page(612, 792, 0),), readable=False)  # one US Letter page
        return Measure("pdf", pages=pages)
    return Measure("text")


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header (nothing is decoded), or None when Pillow cannot read it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a huge image's DecompressionBombWarning: we only read its size
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Exception:  # any unreadable image (Pillow raises many kinds): the caller falls back
        return None
    return (width, height) if width > 0 and height > 0 else None


def pdf_pages(data: bytes) -> tuple[Page, ...] | None:
    """Each page's size and text length, or None when pypdf cannot read the document."""
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a sloppy PDF's warnings are no business of an estimate
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            reader.decrypt("")
        pages = []
        for page in reader.pages:
            box = page.mediabox
            try:
                chars = len(page.extract_text() or "")
            except Exception:  # a page whose text pypdf cannot extract still has its image
                chars = 0
            pages.append(Page(abs(float(box.width)), abs(float(box.height)), chars))
    except Exception:  # a broken or encrypted PDF: the caller falls back
        return None
    return tuple(pages) if pages else None


# ---- images -------------------------------------------------------------------------------------------------------


def image_tokens(width: int, height: int, model_id: str) -> MediaTokens:
    """The input tokens of one ``width`` x ``height`` image on ``model_id``, by its vendor's rule (``RULES``)."""
    family = family_of(model_id)
    if family == "anthropic":
        return MediaTokens(anthropic_image_tokens(width, height), approx=True)
    if family == "gemini":
        tokens = gemini_image_tokens(width, height)
        return MediaTokens(tokens, approx=tokens != _GEMINI_TOKENS)
    # OpenAI: exact for a model with published figures at high detail; "~" all the same, as the model may
    # pick low detail ("auto"). Others: OpenAI's rule stands in.
    return MediaTokens(openai_image_tokens(width, height, model_id if family == "openai" else ""), approx=True)


def openai_image_tokens(width: int, height: int, model_id: str = "") -> int:
    """OpenAI's count for a high-detail image on ``model_id`` (its tile or patch rule; the gpt-4o figures for a
    model the guide does not list)."""
    name = _model_name(model_id)
    multiplier = _lookup(_OPENAI_PATCHES, name)
    if multiplier is not None:
        return round(openai_patches(width, height) * multiplier)
    base, tile = _lookup(_OPENAI_TILES, name) or _OPENAI_DEFAULT_TILES
    return base + tile * openai_tiles(width, height)


def openai_tiles(width: int, height: int) -> int:
    """512-px tiles of an image fitted in 2048x2048, then scaled so its shortest side is 768 (never up)."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(int(w) / 512) * math.ceil(int(h) / 512)


def openai_patches(width: int, height: int) -> int:
    """32-px patches covering an image, scaled down (to whole patches) when more than 1536 would be needed."""
    w, h = float(width), float(height)
    if math.ceil(w / _PATCH) * math.ceil(h / _PATCH) > _MAX_PATCHES:
        r = math.sqrt(_PATCH * _PATCH * _MAX_PATCHES / (w * h))
        r *= min(math.floor(w * r / _PATCH) / (w * r / _PATCH), math.floor(h * r / _PATCH) / (h * r / _PATCH))
        w, h = w * r, h * r
    return min(math.ceil(w / _PATCH) * math.ceil(h / _PATCH), _MAX_PATCHES)


def anthropic_image_tokens(width: int, height: int) -> int:
    """Anthropic's ``width x height / 750``, after scaling down to a 1568-px long side and about 1,600 tokens."""
    scale = min(1.0, _ANTHROPIC_LONG_SIDE / max(width, height), math.sqrt(_ANTHROPIC_MAX_PIXELS / (width * height)))
    return math.ceil(math.floor(width * scale) * math.floor(height * scale) / _ANTHROPIC_PX_PER_TOKEN)


def gemini_image_tokens(width: int, height: int) -> int:
    """Gemini's 258 for a small image (both sides at most 384 px), else 258 per 768x768 tile."""
    if width <= _GEMINI_SMALL and height <= _GEMINI_SMALL:
        return _GEMINI_TOKENS
    return math.ceil(width / _GEMINI_TILE) * math.ceil(height / _GEMINI_TILE) * _GEMINI_TOKENS


# ---- PDFs and any attachment -----------------------------------------------------------------------------------


def pdf_tokens(pages: tuple[Page, ...], model_id: str) -> MediaTokens:
    """The input tokens of a PDF of ``pages`` on ``model_id`` (``RULES``): always approximate but on Gemini."""
    family = family_of(model_id)
    if family == "gemini":
        return MediaTokens(_GEMINI_TOKENS * len(pages), approx=False)
    if family == "anthropic":
        return MediaTokens(sum(_ANTHROPIC_PDF_TEXT_PER_PAGE + anthropic_image_tokens(*p.pixels()) for p in pages),
                           approx=True)
    name = model_id if family == "openai" else ""
    return MediaTokens(sum(math.ceil(p.text_chars / CHARS_PER_TOKEN) + openai_image_tokens(*p.pixels(), name)
                           for p in pages), approx=True)


def attachment_tokens(a: Attachment, model_id: str) -> MediaTokens:
    """``a``'s input tokens on ``model_id``: an image or a PDF by its vendor's rule; a text file as its fenced
    text, characters / 4 (it travels in the prompt's text)."""
    m = measure(a)
    if m.kind == "image":
        counted = image_tokens(m.width, m.height, model_id)
    elif m.kind == "pdf":
        counted = pdf_tokens(m.pages, model_id)
    else:
        return MediaTokens(approx_tokens(a.fenced()), approx=True)
    return counted if m.readable else MediaTokens(counted.tokens, approx=True)


def _model_name(model_id: str) -> str:
    """``openrouter:openai/gpt-4o:free`` -> ``gpt-4o``."""
    model = model_id.partition(":")[2] or model_id
    return model.rsplit("/", 1)[-1].lower().split(":", 1)[0]


def _lookup(table: dict[str, _T], name: str) -> _T | None:
    """The row of ``name`` or of the longest key it is a release of (``gpt-4o-2024-08-06`` -> ``gpt-4o``;
    ``gpt-4o-mini`` is a row of its own)."""
    for key in sorted(table, key=len, reverse=True):
        if name == key or name.startswith(key + "-"):
            return table[key]
    return None


__all__ = [
    "FAMILIES",
    "FAMILY_NAMES",
    "PAGE_DPI",
    "RULES",
    "Family",
    "Measure",
    "MediaTokens",
    "Page",
    "anthropic_image_tokens",
    "attachment_tokens",
    "family_of",
    "gemini_image_tokens",
    "image_size",
    "image_tokens",
    "measure",
    "openai_image_tokens",
    "openai_patches",
    "openai_tiles",
    "pdf_pages",
    "pdf_tokens",
]
