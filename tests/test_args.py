"""The %%fuse line: quoting and trailing comments."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from fusion_magic.ipython.args import parse_fuse_line, parse_line_magic


def test_hash_inside_quotes_is_text_not_a_comment() -> None:
    assert parse_fuse_line('-s "Use # headings" -m merge').given["system"] == "Use # headings"
    assert parse_fuse_line("-s '#1 rule: be brief'").given["system"] == "#1 rule: be brief"
    assert parse_fuse_line("-s C# -m merge").given["system"] == "C#"  # mid-word "#" starts no comment


def test_trailing_comment_is_dropped() -> None:
    args = parse_fuse_line('-p openai:a,openai:b -s "x # y"   # compare two; don\'t cache')
    assert args.given["pool"] == ("openai:a", "openai:b") and args.given["system"] == "x # y"
    assert "pool" not in parse_fuse_line("# just a comment").given
    assert parse_line_magic("list # what is configured") == ("list", None)


def test_unbalanced_quotes_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="No closing quotation"):
        parse_fuse_line('-s "Use # headings')


def test_budget_must_be_a_real_amount() -> None:
    for bad in ("-1", "nan"):
        with pytest.raises(UsageError, match="budget"):
            parse_fuse_line(f"--budget {bad}")
