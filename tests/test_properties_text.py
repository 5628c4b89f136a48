"""Property tests (hypothesis) for text we do not write: the cell body, model text shown as HTML or Markdown,
and a checker's or judge's reply (answers the vote and the scorer read: ``tests/test_properties_answers.py``).

Each test's docstring names the promise it checks, quoted from the code's docstrings where there is one.
``tests/test_properties_io.py`` has the properties of files, the magic line, the wire and the figures.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from html_checks import assert_inert, assert_no_script
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from fusion_magic.ipython import args as magic_args
from fusion_magic.judge.verdicts import parse_json_verdict
from fusion_magic.present.sanitize import escape_markdown, neutralize_markdown, render_markdown
from fusion_magic.videos.check import read_score

# ---- strategies shared below ----------------------------------------------------------------------------

# Text built from the pieces that matter to Markdown, HTML and URL handling, so short examples hit them often.
_MARKUP_PIECES = [
    *"ab1 .)-+*#>=_`~|$[]()<>&!\\:/\"';\t\n", "javascript:", "JaVaScRiPt:", "vbscript:", "data:text/html,",
    "http://x.example", "mailto:a@b", "&#x61;", "&#106;", "&amp;", "&lt;", "\u00a0", "\u200b", "\r", "```",
    "~~~", "    ", "1.", "60.", "-->", "<!--", "<img src=x onerror=alert(1)>", "<script>alert(1)</script>",
    "<a href='javascript:alert(1)'>x</a>", '<svg onload="alert(1)">', "<iframe src=//x>", " onclick=alert(1)",
    "[x](javascript:alert(1))", "![i](http://x.example/i.png)", "[r]: javascript:alert(2)", "[r]", "<http://x>",
]
markup = st.lists(st.sampled_from(_MARKUP_PIECES), max_size=24).map("".join)
# Any text a model could send that can be shown (no NUL: CommonMark turns it into U+FFFD by rule).
printable = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60)
model_text = st.one_of(markup, printable)


# ---- 1. the cell body: {name} interpolation -------------------------------------------------------------

_BODY_PIECES = [*"{}abc \n:\",[]", "{x}", "{{x}}", "{x}}", "{{x}", "{ x }", "{x!r}", "{x:>3}", "{0}", "{}",
                '{"x": 1}', "{y}", "{_y2}", "f'{x}'", "${x}", "\\{x\\}"]
cell_body = st.one_of(st.lists(st.sampled_from(_BODY_PIECES), max_size=16).map("".join), st.text(max_size=40))
IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
BRACE_FREE = st.text(st.characters(exclude_characters="{}"), max_size=20)


class NeedsAPath:
    """A user's data frame whose ``to_csv`` writes to a path it requires (dask's and vaex's signature)."""

    def to_csv(self, path: str, index: bool = True) -> None:
        raise AssertionError("never called without a path")

    def __str__(self) -> str:
        return "NeedsAPath()"


class CsvIsData:
    """An object whose ``to_csv`` is a plain attribute, not a method."""

    to_csv = "not callable"

    def __str__(self) -> str:
        return "CsvIsData()"


def _frame() -> Any:
    import pandas as pd

    return pd.DataFrame({"a": [1, 2]})


def _frame_class() -> Any:
    import pandas as pd

    return pd.DataFrame  # `from pandas import DataFrame`, then a prompt that says "{DataFrame}"


namespace_values = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.text(max_size=20), st.none(), st.lists(st.integers(), max_size=3),
    st.builds(_frame), st.builds(_frame_class), st.builds(NeedsAPath), st.builds(CsvIsData), st.just(int),
)


@settings(max_examples=300)
@given(cell_body)
def test_interpolation_without_known_names_leaves_the_body_byte_identical(body: str) -> None:
    """``interpolate`` replaces ``{name}`` only "where name is defined; leave every other brace untouched"."""
    assert magic_args.interpolate(body, {}) == body
    unknown = {"not_in_any_body_" + str(i): i for i in range(3)}
    assert magic_args.interpolate(body, unknown) == body


@settings(max_examples=300)
@given(IDENT, st.text(max_size=30), BRACE_FREE, BRACE_FREE)
def test_a_known_name_is_replaced_once_and_nothing_around_it_moves(
        name: str, value: str, before: str, after: str) -> None:
    """``{name}`` becomes the value's text, the text around it is kept, and the value itself is not
    interpolated again (it may hold braces: JSON, code, another ``{name}``)."""
    body = f"{before}{{{name}}}{after}"
    ns = {name: value + "{" + name + "}"}
    assert magic_args.interpolate(body, ns) == before + value + "{" + name + "}" + after


@settings(max_examples=200)
@given(IDENT, namespace_values, cell_body)
@example(name="DataFrame", value=_frame_class(), rest="")
@example(name="ddf", value=NeedsAPath(), rest="")
def test_interpolation_never_raises_whatever_the_variable_holds(name: str, value: object, rest: str) -> None:
    """A notebook variable of any kind interpolates as text; the cell body is never refused because of what a
    variable holds (a class with ``to_csv``, a frame whose ``to_csv`` needs a path)."""
    out = magic_args.interpolate(f"Look at {{{name}}} {rest}", {name: value})
    assert out.startswith("Look at ") and isinstance(out, str)
    assert len(out) <= len(f"Look at  {rest}") + magic_args.MAX_VALUE_CHARS + len("\n[... truncated]")


# ---- 2. model text shown as HTML or Markdown -----------------------------------------------------------


def _permissive() -> MarkdownIt:
    """Like JupyterLab rendering trusted Markdown: raw HTML on, every link target trusted."""
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


PERMISSIVE = _permissive()


@settings(max_examples=250)
@given(model_text)
def test_rendered_model_text_is_inert(text: str) -> None:
    """``render_markdown``: "no scripts, no handlers, no images"; links only to http(s)/mailto."""
    assert_inert(render_markdown(text))


@settings(max_examples=100)
@given(st.text(st.characters(), max_size=30))  # every code point, lone surrogates included
@example(text="\ud83d")
@example(text="An emoji split across two stream chunks: \ud83d\ude00")
def test_any_model_string_renders(text: str) -> None:
    """Every model-written string passes through ``render_markdown``, so it renders whatever code points it
    holds. A JSON stream can carry lone surrogates (``"\\ud83d"`` decodes to one, and a server that cuts UTF-16
    text splits an emoji into two of them), so those render too, inertly."""
    assert_inert(render_markdown(text))


@settings(max_examples=250)
@given(model_text)
def test_neutralized_markdown_is_inert_even_for_a_renderer_that_trusts_it(text: str) -> None:
    """``neutralize_markdown``: "Model-written Markdown made inert for any renderer": a renderer with raw HTML on
    and every link trusted builds no active tag, no handler and no link but to http(s)/mailto."""
    assert_no_script(PERMISSIVE.render(neutralize_markdown(text)))


@settings(max_examples=300)
@given(model_text)
def test_escaped_markdown_renders_as_exactly_the_text(text: str) -> None:
    """``escape_markdown``: "Markdown that renders as exactly that text on one line" (whitespace collapsed)."""
    want = " ".join(text.split())
    assume(want)
    out = PERMISSIVE.render(f"- {escape_markdown(text)}")
    found = re.fullmatch(r"<ul>\n<li>(.*)</li>\n</ul>\n", out, re.DOTALL)
    assert found is not None, out
    assert "<" not in found[1], out
    assert html.unescape(found[1]) == want


_ANSWER_PIECES = ["42", "42.0", "-3", "1,000", "0.5", "7", "Final answer:", "The answer is", "####", "=>", "**",
                  "answer =", "yes", "No", "true", "B", "(c)", "d)", "Paris", "the", "an", "km", "São", "\n", " ",
                  ".", "!", "١٢"]
answer_text = st.one_of(st.lists(st.sampled_from(_ANSWER_PIECES), max_size=12).map(" ".join), st.text(max_size=60))


# ---- 3. a checker's score, and a judge's JSON ------------------------------------------------------------


@settings(max_examples=400)
@given(st.one_of(markup, printable, answer_text,
                 st.from_regex(r'\A.{0,10}\{"score": ?-?[0-9]{1,4}(\.[0-9]+)?(, "reasons": \[.{0,8}\])?\}.{0,10}\Z')))
def test_a_check_reply_is_a_score_in_0_10_or_none(text: str) -> None:
    """``read_score``: any reply is a score within [0, 10] with its reasons, or None (no score)."""
    parsed = read_score(text)
    if parsed is not None:
        score, reasons = parsed
        assert 0.0 <= score <= 10.0 and all(isinstance(r, str) for r in reasons)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "true", '"8"', "null"])
def test_a_score_that_is_not_a_finite_number_is_no_score(value: str) -> None:
    """NaN or Infinity would rank a clip best, and JSON true is an int to Python: none of them is a score."""
    assert read_score('{"score": ' + value + ', "reasons": ["0:01 a fox"]}') is None


_PROSE = st.text(st.characters(exclude_characters="{}", exclude_categories=["Cs"]), max_size=30).filter(
    lambda s: "score" not in s.lower())


@settings(max_examples=300)
@given(_PROSE, st.one_of(st.integers(0, 10), st.floats(0, 10)), st.lists(st.text(max_size=10), max_size=3), _PROSE)
def test_json_with_a_score_always_parses(before: str, score: float, reasons: list[str], after: str) -> None:
    """A checker's JSON (the schema's ``score`` and ``reasons``), bare or inside prose, reads as that score."""
    text = before + json.dumps({"score": score, "reasons": reasons}) + after
    assert read_score(text) == (float(score), reasons)


@settings(max_examples=30)
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["[", '{"a":']))
@example(depth=1200, opener="[")
def test_deeply_nested_json_in_a_reply_is_no_crash(depth: int, opener: str) -> None:
    """Model text is untrusted: a reply that nests JSON arbitrarily deep reads as a score (or none) and as a
    verdict (or none), never a ``RecursionError`` out of the check, the judge or the rubric scorer."""
    closer = "]" if opener == "[" else "}"
    text = '{"score": 7, "nested": ' + opener * depth + "1" + closer * depth + "}"
    parsed = read_score(text)
    assert parsed is None or 0.0 <= parsed[0] <= 10.0
    verdict = parse_json_verdict(text)
    assert verdict is None or isinstance(verdict, dict)


