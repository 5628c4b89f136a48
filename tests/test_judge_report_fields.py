"""The verdict's decision as fields (``judge.report.verdict_fields``): one list every report renders."""

from __future__ import annotations

from fusion_magic.judge.report import verdict_fields, verdict_html
from fusion_magic.judge.verdict import Verdict


def test_the_fields_are_plain_text_in_report_order() -> None:
    fallback = Verdict(model="vote", mode="best-of", fallback=True, choice="m:<b>", choice_label="Answer A")
    assert verdict_fields(fallback, "openai:gpt-4o") == [
        ("mode", "best-of"), ("judge", "vote (fallback, in place of openai:gpt-4o)"), ("choice", "Answer A = m:<b>")]
    merged = Verdict(model="openai:gpt-4o", mode="merge", best_label="Answer B", labels={"Answer B": "x"},
                     orders=["x", None], agreement=(1, 2))
    assert verdict_fields(merged) == [
        ("mode", "merge"), ("judge", "openai:gpt-4o"), ("choice", "merged answer"), ("ranked best", "Answer B = x"),
        ("orders", "position consistency 1/2; order 1: x, order 2: no pick")]


def test_the_html_renders_the_fields_escaped_with_the_judge_as_code() -> None:
    v = Verdict(model="vote", mode="best-of", fallback=True, choice="m:<b>", choice_label="Answer A")
    html = verdict_html(v, "openai:gpt-4o")
    assert ("<li><b>judge</b>: <code>vote</code> (fallback, in place of openai:gpt-4o)</li>"
            "<li><b>choice</b>: Answer A = m:&lt;b&gt;</li>") in html
