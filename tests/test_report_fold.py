"""The finished report reads back in one screen: the answer first with a copy button and a one-line summary,
the judge, members, ledger and notes folded below it, and long text folded under "show all"."""

from __future__ import annotations

from html.parser import HTMLParser

from html_checks import Tags, assert_inert
from test_report import EVIL, JUDGE, degraded_result, hostile_result, member

from fusion_magic.fusion.report import html_report, summary_line, text_report
from fusion_magic.fusion.result import FusionResult, Verdict
from fusion_magic.judge.vote import vote as judge_vote
from fusion_magic.present.fold import COPY_HANDLER, capped_markdown, fold_point


class Source(HTMLParser):
    """The text a browser puts in the copy button's hidden textarea (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inside = tag == "textarea" and ("class", "fm-answer-source") in attrs

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text += data


def copied(html: str) -> str:
    parser = Source()
    parser.feed(html)
    return parser.text


def test_the_answer_comes_first_and_everything_else_is_folded() -> None:
    html = html_report(degraded_result())
    answer = html.index("Rayleigh scattering.")
    assert answer < html.index("fm-summary") < html.index("<b>Judge</b>") < html.index("<b>Answers (2)</b>")
    assert html.index("<b>Answers (2)</b>") < html.index("<b>Cost &amp; latency</b>") < html.index("<b>Notes (1)")
    tags = Tags()
    tags.feed(html)
    folds = [attrs for tag, attrs in tags.tags if tag == "details"]
    assert len(folds) >= 4 and all(("open", None) not in attrs for attrs in folds)  # folded, not open
    assert "max-width" in html  # a width a projector shows whole
    # The one-line summary says who won, how many answered, the time and the cost; DEGRADED right below it.
    assert "judge anthropic:claude-sonnet-4-5 chose Answer A = openrouter:openai/gpt-4o · 1/2 answers" in html
    assert "$0.001120" in html and html.index("fm-summary") < html.index("DEGRADED: 1 member call failed")
    assert "#c62828" in html[html.index("DEGRADED:") - 80 : html.index("DEGRADED:")]


def test_the_copy_button_copies_the_answer_as_written_and_stays_inert() -> None:
    result = hostile_result()
    result.answer = f"**Merged** answer {EVIL} </textarea><script>alert(1)</script> & more"
    html = html_report(result)
    assert_inert(html)  # the only handler is the copy button's own
    assert copied(html) == result.answer  # the raw Markdown, not the rendered or escaped text
    assert html.count(COPY_HANDLER) == 1


def test_no_copy_button_without_an_answer() -> None:
    result = FusionResult(prompt="Why?", mode="vote", judge="vote", pool=[])
    assert "fm-copy" not in html_report(result)


def test_a_long_answer_is_folded_under_show_all_and_kept_whole() -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 40 for i in range(30)]
    text = "\n\n".join(paragraphs)
    html = capped_markdown(text)
    head, _, rest = html.partition('<details class="fm-more">')
    assert rest, "a long text folds"
    assert "Paragraph 0" in head and "Paragraph 29" not in head and "Paragraph 29" in rest
    assert "show all (" in rest
    assert capped_markdown("short answer") == "<p>short answer</p>\n"


def test_the_fold_never_cuts_inside_a_code_fence() -> None:
    code = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(80)) + "\n```\n"
    text = "Intro.\n\n" + code + "\nAfter the code.\n" + "tail line\n" * 20
    cut = fold_point(text)
    assert cut is not None and text[:cut].count("```") % 2 == 0


def test_member_answers_fold_with_their_status() -> None:
    html = html_report(degraded_result())
    members = html[html.index("<b>Answers (2)</b>") : html.index("<b>Cost &amp; latency</b>")]
    assert "1 done, 1 failed" in members
    assert "failed: timeout" in members and "The sk" in members


def test_summary_line_says_what_decided() -> None:
    assert "chose Answer A" in summary_line(degraded_result())
    assert summary_line(degraded_result()).endswith("DEGRADED")
    merged = hostile_result()
    assert f"merge · judge {JUDGE} merged the answers · 2/3 answers · 2.00 s" in summary_line(merged)
    assert "cost unknown" in summary_line(merged)  # one price is unknown: never $0
    responses = [member("a", "local:gemma3-270m", "Rome", 1), member("b", "local:gemma3-270m", "Rome", 2),
                 member("c", "local:gemma3-270m", "Paris", 3)]  # fmt: skip
    vote = judge_vote(responses, mode="best-of")  # the vote itself: 2 of 3 say Rome
    result = FusionResult(prompt="Capital?", mode="best-of", judge="vote", pool=["local:gemma3-270m"] * 3,
                          responses=responses, verdict=vote, answer=vote.answer, wall_s=1.0)  # fmt: skip
    assert "the vote chose a = local:gemma3-270m (2 of 3 agreed) · 3/3 answers · 1.00 s" in summary_line(result)
    undecided = Verdict(model="vote", mode="best-of", undecided=True)
    result.verdict, result.answer = undecided, ""
    assert "the vote found no majority" in summary_line(result)


def test_the_text_report_leads_with_the_answer_and_its_summary() -> None:
    text = text_report(degraded_result())
    lines = text.splitlines()
    assert lines[3] == "Rayleigh scattering."
    assert lines[5].startswith("best-of · judge anthropic:claude-sonnet-4-5 chose Answer A")


def test_the_degraded_sentence_is_escaped_once() -> None:
    result = degraded_result()
    result.responses[1].error = "no answer within 30 s & <b>x</b>"
    html = html_report(result)
    assert "30 s &amp; &lt;b&gt;x&lt;/b&gt;" in html and "&amp;amp;" not in html and "&amp;lt;" not in html
