"""Make model-written text safe to show: Markdown to sanitized HTML, plain escaping, and inert Markdown.

Model output is untrusted. JupyterLab runs the script of an ``<img src=x onerror=…>`` placed in an
``ipywidgets.HTML`` value, in ``display(Markdown(...))`` and in an Output widget's Markdown alike, so
every model-written string passes through this module before it reaches HTML or Markdown.

Model text is shown as the text the model wrote. Markdown a capable model means (emphasis, lists of
several items, code, tables, a link to an ``http(s)`` page) renders; syntax that would change what the
reader sees renders as the characters typed: an answer ``60.`` is not an empty list starting at 60, and
``[x](y)``, ``<http://…>`` or a ``javascript:`` target never become links (a relative link points into the
Jupyter server, which appends its ``_xsrf`` token to it).

    html = render_markdown(response.text)        # for HTML widgets and html_report
    md = neutralize_markdown(response.text)      # for markdown_report
    md = escape_markdown(label)                  # a plain string inside Markdown
    html = clean_thumbnail(img_html)             # our own <img> of an attachment, nothing else

The one image a report or the view may carry is our own thumbnail of an attachment (``present.attachments``):
an ``<img>`` whose source is a ``data:`` URL of a PNG, JPEG, GIF or WebP, checked against the bytes it holds.
Model text never becomes an ``<img>``: no remote URL, no other ``data:`` type (an SVG or an HTML page).
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from ..core.mime import IMAGE_TYPES, data_url, sniff
from ..core.text import valid_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from markdown_it.rules_core import StateCore
    from markdown_it.utils import EnvType, OptionsDict

__all__ = ["clean_html", "clean_thumbnail", "escape_markdown", "escape_text", "image_data_url", "is_image_data_url",
           "neutralize_markdown", "render_markdown"]

# Only what CommonMark + tables produce. No <img>: a remote image in model output is the classic
# exfiltration channel (the URL can carry the conversation), so images become plain links instead.
_TAGS = frozenset(
    {
        "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
        "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "ol": {"start"},
    "td": {"style"},
    "th": {"style"},
}
_SCHEMES = frozenset({"http", "https", "mailto"})
# The only link targets model text may have: absolute web pages and mail addresses. Anything else (a
# relative path, javascript:, data:, an empty target) stays the literal text the model wrote.
_SAFE_URL = re.compile(r"(?i)(?:https?://|mailto:)")


def clean_html(fragment: str) -> str:
    """Sanitize an HTML fragment with the conservative allow-list (no scripts, no handlers, no images).

    Links keep only http(s)/mailto targets, lose relative ones (they would point into the Jupyter
    server) and get ``rel="noopener noreferrer"``. Markdown-it's table alignment is the only style kept.
    """
    return nh3.clean(
        valid_text(fragment),
        tags=set(_TAGS),
        attributes=_ATTRIBUTES,
        url_schemes=set(_SCHEMES),
        url_relative="deny",
        link_rel="noopener noreferrer",
        strip_comments=True,
        filter_style_properties={"text-align"},
    )


# --- our thumbnails: the one <img> that passes -------------------------------------------------------------
# A data: URL of an image type we sniff (core.mime), standard base64 with padding, nothing after it.
_IMAGE_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/]+={0,2})")
_THUMBNAIL_ATTRIBUTES = {"src", "alt", "title", "class", "width", "height", "style", "loading"}
_THUMBNAIL_STYLES = {"max-height", "max-width", "height", "width", "object-fit", "border", "border-radius",
                     "vertical-align", "display", "box-sizing"}


def is_image_data_url(url: str) -> bool:
    """True for a ``data:image/(png|jpeg|gif|webp);base64,…`` URL whose bytes are that type (sniffed: a PNG
    header under ``image/png``), and for nothing else: no SVG, no HTML, no other scheme, no remote URL."""
    m = _IMAGE_DATA_URL.fullmatch(url)
    if m is None or m[1] not in IMAGE_TYPES:
        return False
    try:
        head = base64.b64decode(m[2][:88], validate=True)  # 88 base64 characters: the first 66 bytes
    except (binascii.Error, ValueError):
        return False
    return sniff(head) == m[1]


def image_data_url(mime: str, data: bytes) -> str | None:
    """``data:<mime>;base64,<data>`` when ``data`` sniffs as ``mime`` and that is an image type we show, else
    None."""
    url = data_url(data, mime)
    return url if is_image_data_url(url) else None


def clean_thumbnail(fragment: str) -> str:
    """One ``<img>`` of ours (a thumbnail), sanitized: only an image ``data:`` URL (``is_image_data_url``) as its
    source, no handler, a few layout styles; ``""`` when no such image is left (a remote or non-image source)."""
    sources: list[str] = []

    def attribute(tag: str, name: str, value: str) -> str | None:
        if name != "src":
            return value
        if tag == "img" and is_image_data_url(value):
            sources.append(value)
            return value
        return None

    cleaned = nh3.clean(
        valid_text(fragment),
        tags={"img"},
        attributes={"img": set(_THUMBNAIL_ATTRIBUTES)},
        attribute_filter=attribute,
        url_schemes={"data"},
        url_relative="deny",
        strip_comments=True,
        filter_style_properties=set(_THUMBNAIL_STYLES),
    )
    one_image = len(sources) == 1 and cleaned.startswith("<img ") and cleaned.count("<img") == 1
    return cleaned if one_image else ""


def escape_text(text: object) -> str:
    """HTML-escape any value for use in element content or a quoted attribute."""
    return html.escape("" if text is None else str(text), quote=True)


# A pure function of the text, and the same texts come back: the live view renders each finished answer,
# then the static report that replaces the view renders it again. Bounded, so a long session stays small.
@lru_cache(maxsize=512)
def render_markdown(text: str) -> str:
    """Model-written Markdown as safe HTML: CommonMark plus tables, raw HTML shown as text, then nh3.

    Links render only with an ``http(s)``/``mailto`` target and autolinks (``<…>``) not at all, so
    ``[x](y)`` reads ``[x](y)``; a list marker on its own (``60.``, ``1) foo``, ``- ``) stays text.
    """
    if not text:
        return ""
    text = valid_text(text)
    md = _markdown()
    _, tokens, env = _settled(_newlines(text), md, links=False)
    return clean_html(md.renderer.render(tokens, md.options, env))


class _ModelMarkdown(MarkdownIt):
    """CommonMark that forms a link (inline, reference or image) only for a safe target."""

    def validateLink(self, url: str) -> bool:
        return _SAFE_URL.match(url) is not None


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # html=False renders raw HTML as escaped text; nh3 afterwards is the second, independent line.
    md = _ModelMarkdown("commonmark", {"html": False}).enable(["table", "strikethrough"])
    # CommonMark autolinks take any scheme (<javascript:…>, <foo:bar>); the text shows the URL anyway.
    md.disable("autolink")
    md.core.ruler.after("inline", "literal_empty_links", _literal_empty_links)
    md.add_render_rule("image", _render_image_as_link)
    return md


class _PermissiveMarkdown(MarkdownIt):
    """What a renderer we don't control may build (JupyterLab renders trusted Markdown with every link
    live): ``neutralize_markdown`` parses with it to find the link syntax it must escape."""

    def validateLink(self, url: str) -> bool:
        return True


@lru_cache(maxsize=1)
def _permissive() -> MarkdownIt:
    return _PermissiveMarkdown("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _literal_empty_links(state: StateCore) -> None:
    # validateLink refuses an empty target, but CommonMark still builds `[x]()` as a link to "": show
    # the brackets instead of an anchor that goes nowhere.
    for block in state.tokens:
        children = block.children or []
        unsafe: list[bool] = []
        for i, token in enumerate(children):
            if token.type == "link_open":
                unsafe.append(_SAFE_URL.match(str(token.attrGet("href") or "")) is None)
                if unsafe[-1]:
                    children[i] = _text("[")
            elif token.type == "link_close" and unsafe.pop():
                children[i] = _text("]()")


def _text(content: str) -> Token:
    return Token("text", "", 0, content=content)


def _render_image_as_link(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    if _SAFE_URL.match(src) is None:
        return escape_text(f"![{alt}]()")
    return f'<a href="{escape_text(src)}">[image: {escape_text(alt)}]</a>'


# --- stray list markers and unsafe link syntax, escaped in the source ---------------------------------
# A list is kept when it has two items or more, or sits inside an item of a kept list; an item with no
# content is never kept. Everything else that parsed as a list item was a line that happened to start
# with "60." or "-": its marker gets a backslash, which every CommonMark renderer shows as the bare
# character. Escaping can change how the rest parses (an unlisted line may join a paragraph), so the
# text is parsed again until nothing is left to escape.
_MAX_PASSES = 8
_MARKER = re.compile(r"(?:[-+*]|\d{1,9}[.)])(?=[ \t]|$)")
_UNESCAPED_BRACKET = re.compile(r"(?<!\\)(?:\\\\)*\[")
_LEAF_BLOCKS = frozenset({"paragraph_open", "heading_open", "fence", "code_block", "hr", "table_open", "html_block"})


def _settled(text: str, md: MarkdownIt, *, links: bool) -> tuple[str, list[Token], EnvType]:
    """``text`` with its stray list markers (and, with ``links``, unsafe link syntax) escaped, and its parse."""
    env: EnvType = {}
    for _ in range(_MAX_PASSES):
        env = {}
        tokens = md.parse(text, env)
        lines = text.split("\n")
        edits = _stray_list_markers(tokens, lines)
        if links:
            edits |= _unsafe_link_brackets(tokens, lines, env)
        if not edits:
            return text, tokens, env
        text = _insert_backslashes(lines, edits)
    if links:
        # Still not settled (a pathological nesting): no link syntax at all is the safe end state.
        text = "\n".join(_UNESCAPED_BRACKET.sub(lambda m: m[0][:-1] + "\\[", line) for line in text.split("\n"))
    env = {}
    return text, md.parse(text, env), env


def _stray_list_markers(tokens: Sequence[Token], lines: Sequence[str]) -> set[tuple[int, int]]:
    items = _item_counts(tokens)
    kept_lists: list[bool] = []
    open_items: list[tuple[int, bool]] = []  # (first line, kept) of each list item we are inside
    edits: set[tuple[int, int]] = set()
    for i, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            inside_kept = bool(open_items) and open_items[-1][1]
            kept_lists.append(items[i] >= 2 or inside_kept)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            kept_lists.pop()
        elif token.type == "list_item_open" and token.map is not None:
            line = token.map[0]
            empty = i + 1 < len(tokens) and tokens[i + 1].type == "list_item_close"
            kept = kept_lists[-1] and not empty
            if not kept:
                # Items of enclosing lists that start on the same line ("- 1. x") come first on it.
                same_line = sum(1 for start, _ in open_items if start == line)
                column = _marker_column(lines[line], same_line) if line < len(lines) else None
                if column is not None:
                    edits.add((line, column))
            open_items.append((line, kept))
        elif token.type == "list_item_close":
            open_items.pop()
    return edits


def _item_counts(tokens: Sequence[Token]) -> dict[int, int]:
    """For each list's opening token (by index), how many items it has."""
    counts: dict[int, int] = {}
    stack: list[int] = []
    for i, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            counts[i] = 0
            stack.append(i)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            stack.pop()
        elif token.type == "list_item_open" and stack:
            counts[stack[-1]] += 1
    return counts


def _marker_column(line: str, skip: int) -> int | None:
    """Where to put the backslash that unmakes the list marker after ``skip`` others on ``line``: before a
    bullet, before the ``.``/``)`` of a number."""
    pos = 0
    while pos < len(line):
        if line[pos] in " \t>":  # indentation and blockquote markers
            pos += 1
            continue
        marker = _MARKER.match(line, pos)
        if marker is None:
            return None
        if skip == 0:
            return marker.end() - 1
        skip -= 1
        pos = marker.end()
    return None


def _unsafe_link_brackets(tokens: Sequence[Token], lines: Sequence[str], env: EnvType) -> set[tuple[int, int]]:
    # Coarse on purpose: inline tokens carry no columns, so a block with one unsafe link or image loses
    # every "[" it has (a safe link beside it shows as text too). Images are unsafe here whatever their
    # URL: a Markdown renderer would fetch them.
    bad_lines: set[int] = set()
    for token in tokens:
        if token.type == "inline" and token.map is not None and any(
            child.type == "image"
            or (child.type == "link_open" and _SAFE_URL.match(str(child.attrGet("href") or "")) is None)
            for child in token.children or ()
        ):
            bad_lines.update(range(*token.map))
    references = env.get("references") or {}
    if any(_SAFE_URL.match(str(ref.get("href", ""))) is None for ref in references.values()):
        # A reference definition is consumed whole, so its lines belong to no leaf block.
        covered = {n for t in tokens if t.type in _LEAF_BLOCKS and t.map is not None for n in range(*t.map)}
        bad_lines.update(n for n, line in enumerate(lines) if n not in covered and "[" in line)
    return {(n, m.end() - 1) for n in bad_lines if n < len(lines) for m in _UNESCAPED_BRACKET.finditer(lines[n])}


def _insert_backslashes(lines: Sequence[str], edits: set[tuple[int, int]]) -> str:
    out = list(lines)
    for n, column in sorted(edits, reverse=True):  # right to left: earlier columns stay valid
        out[n] = out[n][:column] + "\\" + out[n][column:]
    return "\n".join(out)


def _newlines(text: str) -> str:
    # markdown-it numbers lines after turning \r\n and \r into \n; the edits above use its numbers.
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- Markdown that stays Markdown -------------------------------------------------------------------
# For markdown_report: the text must stay readable Markdown, but a renderer that allows raw HTML
# (JupyterLab renders trusted Markdown unsanitized) must find none. Every "<" and "&" outside fenced code
# becomes an entity: no raw HTML can start without "<", and escaping "&" stops entity-encoded schemes
# ("jav&#x61;script:") from being decoded in link targets. Only top-level fences at column 0 are trusted
# as code: an indented fence may belong to a list item that the renderer closes implicitly, which would
# end the fence early and let the next line through as HTML. Inline code shows "&lt;" literally, a
# cosmetic price for never guessing wrong about where a code span ends. Then stray list markers and the
# "[" of every link that is not to an http(s)/mailto target (and of every image) get a backslash.
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SCHEME = re.compile(r"(?i)(java|vb|live)(script)(\\?:)")


def neutralize_markdown(text: str) -> str:
    """Model-written Markdown made inert for any renderer, still readable as Markdown.

    Raw HTML turns into visible text, ``javascript:``-style words lose their scheme, link and image
    syntax with anything but an ``http(s)``/``mailto`` target stays text, a list marker on its own
    (``60.``) is escaped, and fenced code is kept byte for byte. Any fence left open is closed, so the
    text cannot swallow what follows.
    """
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        if fence is not None:
            out.append(line)
            stripped = line.strip(" ")
            indent = len(line) - len(line.lstrip(" "))
            if indent <= 3 and stripped.rstrip(" \t") and _closes(stripped.rstrip(" \t"), fence):
                fence = None
            continue
        m = _FENCE_OPEN.match(line)
        if m and not (m["fence"][0] == "`" and "`" in m["info"]):
            fence = m["fence"]
            out.append(line)
            continue
        out.append(_neutralize_line(line))
    if fence is not None:
        out.append(fence)
    settled, _, _ = _settled("\n".join(out), _permissive(), links=True)
    return settled


def _closes(candidate: str, fence: str) -> bool:
    return set(candidate) == {fence[0]} and len(candidate) >= len(fence)


def _neutralize_line(line: str) -> str:
    line = line.replace("&", "&amp;").replace("<", "&lt;")
    # A zero-width space inside the scheme name leaves the word readable but no longer a URL scheme.
    return _SCHEME.sub(lambda m: f"{m[1]}\u200b{m[2]}{m[3]}", line)


# --- plain strings inside Markdown ---------------------------------------------------------------------
# "$" too: JupyterLab typesets the text between two dollars as math.
_INLINE_SYNTAX = re.compile(r"([\\`*_\[\]~|$])")
# What opens a block at the start of a line: "1." / "1)" / "-" / "+" (lists), "#" (heading), "=" / "-"
# runs (setext underline) when a blank or the run follows, and ">" (blockquote) always.
_BLOCK_START = re.compile(r"^(\d{1,9})([.)])(?=\s|$)|^(>|[#+\-=](?=[\s#+\-=]|$))")


def escape_markdown(value: object) -> str:
    """A plain string (a label, a model id, an error, a warning) as Markdown that renders as exactly that
    text on one line: no emphasis, code, link, table cell break, list, heading, math or raw HTML."""
    text = " ".join(("" if value is None else str(value)).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = _INLINE_SYNTAX.sub(r"\\\1", text)
    return _BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)
