"""Checks that HTML built from untrusted model text is inert, as a browser would parse it."""

from __future__ import annotations

from html.parser import HTMLParser

from fusion_magic.present.fold import COPY_HANDLER


def _ours(tag: str, name: str, value: str | None) -> bool:
    """The one handler of ours a report carries: the copy button's fixed ``onclick`` (never model text)."""
    return tag == "button" and name == "onclick" and value == COPY_HANDLER


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
    """No tag that can run or load anything, no event handler, no script URL."""
    parser = Tags()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
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
