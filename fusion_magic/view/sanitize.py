"""Make model-written text safe to show: Markdown to sanitized HTML, plain escaping, and inert Markdown.

Model output is untrusted. JupyterLab runs the script of an ``<img src=x onerror=…>`` placed in an
``ipywidgets.HTML`` value, in ``display(Markdown(...))`` and in an Output widget's Markdown alike, so
every model-written string passes through this module before it reaches HTML or Markdown.

    html = render_markdown(response.text)        # for HTML widgets and html_report
    md = neutralize_markdown(response.text)      # for markdown_report
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import nh3

if TYPE_CHECKING:
    from collections.abc import Sequence

    from markdown_it import MarkdownIt
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

__all__ = ["clean_html", "escape_text", "neutralize_markdown", "render_markdown"]

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


def clean_html(fragment: str) -> str:
    """Sanitize an HTML fragment with the conservative allow-list (no scripts, no handlers, no images).

    Links keep only http(s)/mailto targets, lose relative ones (they would point into the Jupyter
    server) and get ``rel="noopener noreferrer"``. Markdown-it's table alignment is the only style kept.
    """
    return nh3.clean(
        fragment,
        tags=set(_TAGS),
        attributes=_ATTRIBUTES,
        url_schemes=set(_SCHEMES),
        url_relative="deny",
        link_rel="noopener noreferrer",
        strip_comments=True,
        filter_style_properties={"text-align"},
    )


def escape_text(text: object) -> str:
    """HTML-escape any value for use in element content or a quoted attribute."""
    return html.escape("" if text is None else str(text), quote=True)


def render_markdown(text: str) -> str:
    """Model-written Markdown as safe HTML: CommonMark plus tables, raw HTML shown as text, then nh3."""
    if not text:
        return ""
    return clean_html(_markdown().render(text))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # html=False renders raw HTML as escaped text; nh3 afterwards is the second, independent line.
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.add_render_rule("image", _render_image_as_link)
    return md


def _render_image_as_link(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escape_text(src)}">[image: {escape_text(alt)}]</a>'


# --- Markdown that stays Markdown -------------------------------------------------------------------
# For markdown_report: the text must stay readable Markdown, but a renderer that allows raw HTML
# (JupyterLab renders trusted Markdown unsanitized) must find none. Every "<" and "&" outside fenced code
# becomes an entity: no raw HTML can start without "<", and escaping "&" stops entity-encoded schemes
# ("jav&#x61;script:") from being decoded in link targets. Only top-level fences at column 0 are trusted
# as code: an indented fence may belong to a list item that the renderer closes implicitly, which would
# end the fence early and let the next line through as HTML. Inline code shows "&lt;" literally, a
# cosmetic price for never guessing wrong about where a code span ends.
_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SCHEME = re.compile(r"(?i)(java|vb|live)(script)(\\?:)")


def neutralize_markdown(text: str) -> str:
    """Model-written Markdown made inert for any renderer, still readable as Markdown.

    Raw HTML turns into visible text, ``javascript:``-style link targets lose their scheme, and fenced
    code is kept byte for byte. Any fence left open is closed, so the text cannot swallow what follows.
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
    return "\n".join(out)


def _closes(candidate: str, fence: str) -> bool:
    return set(candidate) == {fence[0]} and len(candidate) >= len(fence)


def _neutralize_line(line: str) -> str:
    line = line.replace("&", "&amp;").replace("<", "&lt;")
    # A zero-width space inside the scheme name leaves the word readable but no longer a URL scheme.
    return _SCHEME.sub(lambda m: f"{m[1]}\u200b{m[2]}{m[3]}", line)
