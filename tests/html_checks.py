"""Checks that HTML built from untrusted model text is inert, as a browser would parse it."""

from __future__ import annotations

import base64
import binascii
import re
from html.parser import HTMLParser

from fusion_magic.core.mime import IMAGE_TYPES, sniff
from fusion_magic.present.compare import PLAY_HANDLER, SCRUB_HANDLER
from fusion_magic.present.fold import COPY_HANDLER

# The handlers of ours a report carries, each a fixed string (never model text) on one tag's one attribute: the
# copy button's ``onclick``, and the compare grid's play/pause ``onclick`` and scrubber ``oninput``.
OUR_HANDLERS = {("button", "onclick"): (COPY_HANDLER, PLAY_HANDLER), ("input", "oninput"): (SCRUB_HANDLER,)}


def _ours(tag: str, name: str, value: str | None) -> bool:
    """One of our fixed handlers, on the tag and attribute it belongs to."""
    return value in OUR_HANDLERS.get((tag, name), ())


# The compare grid's scrubber (present/compare.py): the one <input> a report may carry, a range whose only
# handler is SCRUB_HANDLER, with only these attributes.
SCRUB_ATTRIBUTES = {"class", "type", "min", "max", "step", "value", "aria-label", "style", "oninput"}
# The compare grid's players: the one <video> assert_inert lets through, muted, metadata only until played, no
# controls, no autoplay, no handler, its source a path relative to the notebook (the report's own link to the
# saved file, percent-encoded; absolute when the file is outside the working folder: no scheme, no host) or an
# http(s) URL.
COMPARE_VIDEO_ATTRIBUTES = {"class", "src", "muted", "playsinline", "preload", "style"}
_RELATIVE_PATH = re.compile(r"(?!//)[A-Za-z0-9._~%/+-]+")


def _compare_element(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """The compare grid's scrubber or one of its players, exactly as present/compare.py writes them."""
    found = dict(attrs)
    if len(found) != len(attrs):
        return False
    if tag == "input":
        return (found.get("class") == "fm-compare-scrub" and found.get("type") == "range"
                and found.get("oninput") == SCRUB_HANDLER and set(found) <= SCRUB_ATTRIBUTES)
    if tag == "video":
        src = found.get("src") or ""
        return (found.get("class") == "fm-compare-clip" and set(found) <= COMPARE_VIDEO_ATTRIBUTES
                and found.get("preload") == "metadata" and "muted" in found
                and (_RELATIVE_PATH.fullmatch(src) is not None or src.lower().startswith(("http:", "https:"))))
    return False


# Our attachment thumbnails (present/attachments.py): the one image a report may carry, its source a data: URL
# of a PNG, JPEG, GIF or WebP whose bytes are that type, and only these attributes.
THUMBNAIL_CLASS = "fm-thumb"
THUMBNAIL_ATTRIBUTES = {"class", "src", "alt", "title", "width", "height", "style", "loading"}
_IMAGE_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/]+={0,2})")


def image_data_url(url: str | None) -> bool:
    """``url`` is a base64 ``data:`` URL of one of our image types, and its bytes sniff as that type."""
    m = _IMAGE_DATA_URL.fullmatch(url or "")
    if m is None or m[1] not in IMAGE_TYPES:
        return False
    try:
        data = base64.b64decode(m[2], validate=True)
    except (binascii.Error, ValueError):
        return False
    return sniff(data[:64]) == m[1]


def _thumbnail(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """An ``<img>`` of ours: class ``fm-thumb``, an image data URL, nothing else that could load or run."""
    found = dict(attrs)
    return (tag == "img" and found.get("class") == THUMBNAIL_CLASS and image_data_url(found.get("src"))
            and set(found) <= THUMBNAIL_ATTRIBUTES and len(found) == len(attrs))


def thumbnails(html: str) -> list[dict[str, str | None]]:
    """The attributes of each of our thumbnails in ``html`` (checked as ``assert_inert`` does)."""
    parser = Tags()
    parser.feed(html)
    parser.close()
    return [dict(attrs) for tag, attrs in parser.tags if _thumbnail(tag, attrs)]


class Tags(HTMLParser):
    """Every start tag and attribute a browser would build from an HTML string (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


ACTIVE_TAGS = {"script", "style", "iframe", "img", "svg", "math", "object", "embed", "form", "input",
                "link", "meta", "base", "frame", "frameset", "video", "audio", "source"}  # fmt: skip


def assert_inert(html: str) -> None:
    """No tag that can run or load anything, no event handler but our fixed ones (``OUR_HANDLERS``), no script
    URL; the one image allowed is our own thumbnail (class ``fm-thumb``, a ``data:`` URL of an image whose bytes
    are that type), the one player and input the compare grid's (``_compare_element``)."""
    parser = Tags()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        if _thumbnail(tag, attrs) or _compare_element(tag, attrs):
            continue
        assert tag not in ACTIVE_TAGS, (tag, html)
        for name, value in attrs:
            assert not name.startswith("on") or _ours(tag, name, value), (tag, name, html)
            if name in ("href", "src", "action", "formaction", "xlink:href"):
                url = "".join((value or "").split()).lower()
                assert url.startswith(("http:", "https:", "mailto:")), (tag, name, value, html)


def assert_no_script(html: str, allow: frozenset[str] | set[str] = frozenset()) -> None:
    """For HTML from a renderer we don't control (raw HTML on, every link trusted): no active tag
    beyond ``allow``, no event handler, no link but to an http(s)/mailto target. A relative link is not
    fine: JupyterLab resolves it against the Jupyter server and appends the ``_xsrf`` token to it."""
    parser = Tags()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag not in ACTIVE_TAGS - set(allow), (tag, html)
        for name, value in attrs:
            assert not name.startswith("on") or _ours(tag, name, value), (tag, name, html)
            if name in ("href", "src"):
                url = "".join((value or "").split()).lower()
                assert url.startswith(("http:", "https:", "mailto:")), (tag, value, html)
