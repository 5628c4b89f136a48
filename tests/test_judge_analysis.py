"""The judge's structured analysis: the schema it is asked for, the tolerant reading of what it wrote (letters
back to model ids), and the "who said what" table in the live view and the reports, with model text inert.
Every judge here is an emulated model that reads its request and answers by the letters it was shown."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import ipywidgets as widgets
import pytest
from html_checks import assert_inert

import fusion_magic
from fusion_magic.calls.call import prepare
from fusion_magic.calls.settings import Settings
from fusion_magic.core.record import Response
from fusion_magic.fusion.report import html_report, markdown_report, text_report
from fusion_magic.fusion.view import FusionView
from fusion_magic.judge import best_of, merge
from fusion_magic.judge.analysis import (
    LOCAL_MAX_CHARS,
    LOCAL_MAX_ITEMS,
    MAX_CHARS,
    MAX_ITEMS,
    Contradiction,
    UniquePoint,
    bounded_for_local,
    member_name,
    read_analysis,
)
from fusion_magic.judge.judging import NO_ANALYSIS, VOTE_HAS_NO_ANALYSIS, anonymise, judge_request
from fusion_magic.present.sanitize import escape_text, render_markdown
from fusion_magic.providers.chat.local.fewshot import bound_schema
from fusion_magic.testing import Emulator, Fault, ModelScript

FAST = Settings(max_retries=0, timeout=20)
POOL = ["openai:paris-bot", "openai:lyon-bot"]
EVIL = "<img src=x onerror=alert(1)>"
# "### Answer B (12 tokens)", or in a debate "### Answer B, first round (...)" then "..., final round (...)".
_SHOWN = re.compile(r"### Answer ([A-Z]+)(?:, (?:first|final) round)? \(\d+ tokens\)\n(.*?)(?=\n\n### |\n\n## Task)",
                    re.S)


def shown(body: Mapping[str, Any]) -> dict[str, str]:
    """The answers a judge request shows, by the letter the judge sees them under, in the order shown (a
    debate's final round over its first)."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return dict(_SHOWN.findall(user))


def letter_of(answers: Mapping[str, str], needle: str) -> str:
    return next(label for label, text in answers.items() if needle in text)


def analysing_judge(stance_extra: str = "", **verdict: Any) -> Callable[[Mapping[str, Any]], str]:
    """A judge that picks the answer saying Paris and writes an analysis naming the answers by letter."""

    def reply(body: Mapping[str, Any]) -> str:
        answers = shown(body)
        paris, lyon = letter_of(answers, "Paris"), letter_of(answers, "Lyon")
        analysis = {
            "consensus": ["The question asks for the capital of France."],
            "contradictions": [{"topic": "Which city is the capital",
                                "stances": {paris: "Paris" + stance_extra, lyon: "Lyon"}}],
            "unique": [{"label": paris, "point": "Mentions the Seine."}],
            "blind_spots": ["None says since when Paris is the capital."],
        }
        return json.dumps({"reasoning": "Paris is right.", "analysis": analysis, "winner": paris,
                           "best": paris, "answer": "Paris.", **verdict})

    return reply


def script_pool(emu: Emulator) -> None:
    emu.script("paris-bot", ModelScript(reply="Paris, on the Seine."))
    emu.script("lyon-bot", ModelScript(reply="Lyon."))


# --- reading what the judge wrote -------------------------------------------------------------------------


NAMES = {"A": "openai:gpt-4o", "B": "anthropic:claude-sonnet-4-5", "C": "gemini:gemini-2.5-flash"}


def test_letters_become_model_ids() -> None:
    a = read_analysis({
        "consensus": ["All say 42."],
        "contradictions": [{"topic": "units", "stances": {"A": "metres", "Answer B": "feet", "c": "yards"}}],
        "unique": [{"label": "(C)", "point": "Cites a source."}],
        "blind_spots": ["Nobody checks the premise."],
    }, NAMES)
    assert a is not None
    assert a.consensus == ["All say 42."]
    assert a.contradictions == [Contradiction("units", {
        "openai:gpt-4o": "metres", "anthropic:claude-sonnet-4-5": "feet", "gemini:gemini-2.5-flash": "yards"})]
    assert a.unique == [UniquePoint("gemini:gemini-2.5-flash", "Cites a source.")]
    assert a.blind_spots == ["Nobody checks the premise."]
    assert a.models == list(NAMES.values()) and a.failed == [] and not a.empty


def test_reading_is_tolerant() -> None:
    a = read_analysis({
        "consensus": "one string, not a list",  # wrong type: empty
        "contradictions": [
            "not an object",
            {"topic": "", "stances": {"A": "x"}},  # no topic
            {"topic": "t", "stances": {"Z": "unknown letter", "A": 7}},  # nothing usable left
            {"topic": "dates", "stances": [{"label": "B", "stance": "1999"}, {"label": "A", "stance": "2001"}]},
        ],
        "unique": [{"label": "Q", "point": "unknown"}, {"label": "A"}, {"label": "B", "point": "  spaced \n out  "}],
        # "blind_spots" missing: empty
    }, NAMES)
    assert a is not None
    assert a.consensus == [] and a.blind_spots == []
    assert a.contradictions == [Contradiction("dates", {"anthropic:claude-sonnet-4-5": "1999",
                                                        "openai:gpt-4o": "2001"})]
    assert a.unique == [UniquePoint("anthropic:claude-sonnet-4-5", "spaced out")]


def test_reading_is_bounded() -> None:
    a = read_analysis({"consensus": ["x" * 5000] * 50, "contradictions": [], "unique": [], "blind_spots": []}, NAMES)
    assert a is not None and len(a.consensus) == MAX_ITEMS
    assert all(len(c) == MAX_CHARS and c.endswith("…") for c in a.consensus)


@pytest.mark.parametrize("value", [None, "text", ["a list"], {"consensus": "no list"}, {"other": []}])
def test_no_analysis_to_read(value: object) -> None:
    assert read_analysis(value, NAMES) is None


def test_a_repeated_model_keeps_one_column_per_seat() -> None:
    seats = [Response(model="local:gemma3-270m", label=f"gemma3-270m #{i}", status="ok") for i in (1, 2)]
    assert [member_name(r) for r in seats] == ["local:gemma3-270m #1", "local:gemma3-270m #2"]
    assert member_name(Response(model="openai:gpt-4o", label="gpt-4o")) == "openai:gpt-4o"


# --- the schema ----------------------------------------------------------------------------------------------


def objects(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from objects(value)


@pytest.mark.parametrize("module", [best_of, merge])
def test_the_strong_judges_schema_is_strict_and_has_no_length_keywords(module: Any) -> None:
    """OpenAI's strict mode wants every property required and nothing else allowed; Anthropic refuses
    maxLength and maxItems, so the strong judges' schema has none."""
    schema = module.schema(["A", "B", "C"])
    assert "analysis" in schema["properties"]
    for node in objects(schema):
        assert node["required"] == list(node["properties"]) and node["additionalProperties"] is False
    assert "maxLength" not in json.dumps(schema) and "maxItems" not in json.dumps(schema)
    stances = schema["properties"]["analysis"]["properties"]["contradictions"]["items"]["properties"]["stances"]
    assert list(stances["properties"]) == ["A", "B", "C"]


def test_the_local_judge_gets_a_bounded_grammar() -> None:
    """The local judge's analysis is bounded in the schema itself, so the grammar the worker builds closes
    within the judge's token cap; the worker's own bounds (bound_schema) keep these tighter ones."""
    answers = [Response(model="local:gemma3-270m", label=f"gemma3-270m #{i}", text=f"answer {i}", status="ok")
               for i in range(1, 6)]
    local = prepare("local:gemma3-270m", Settings(), require_key=False)
    request = judge_request(local, "best-of", "q?", anonymise(answers, random.Random(0)))
    schema = request.json_schema
    assert schema is not None
    analysis = schema["properties"]["analysis"]
    assert analysis["properties"]["consensus"]["maxItems"] == LOCAL_MAX_ITEMS
    assert analysis["properties"]["blind_spots"]["items"]["maxLength"] == LOCAL_MAX_CHARS
    stances = analysis["properties"]["contradictions"]["items"]["properties"]["stances"]
    assert all(s["maxLength"] == LOCAL_MAX_CHARS for s in stances["properties"].values())
    worker_schema, worst = bound_schema(schema, 240)
    assert worker_schema["properties"]["analysis"] == bounded_for_local(worker_schema)["properties"]["analysis"]
    # Five seats, every list full and every string at its bound: still well inside the 4096-token context.
    assert worst < 1500, worst
    strong = prepare("openai:gpt-4o", Settings(), require_key=False)
    strong_request = judge_request(strong, "best-of", "q?", anonymise(answers, random.Random(0)))
    assert strong_request.json_schema == best_of.schema(list("ABCDE"))


def test_the_schema_reaches_the_wire(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=analysing_judge()))
    fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST)
    body = next(q for q in emulator_env.requests if q.model == "judge").body or {}
    sent = body["response_format"]["json_schema"]["schema"]
    assert sent == best_of.schema(["A", "B"]) and body["response_format"]["json_schema"]["strict"] is True
    assert '"analysis"' in body["messages"][-1]["content"]  # the task says what to put in it


# --- end to end on the emulator ---------------------------------------------------------------------------


def test_a_judge_analysis_arrives_with_model_ids(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=analysing_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST)
    assert r.answer == "Paris, on the Seine." and r.verdict is not None and r.verdict.notes == []
    a = r.analysis
    assert a is not None and a is r.verdict.analysis
    assert a.models == POOL  # the table's columns, in pool order
    assert a.consensus == ["The question asks for the capital of France."]
    assert a.contradictions == [Contradiction("Which city is the capital",
                                              {"openai:paris-bot": "Paris", "openai:lyon-bot": "Lyon"})]
    assert a.unique == [UniquePoint("openai:paris-bot", "Mentions the Seine.")]
    assert a.blind_spots == ["None says since when Paris is the capital."]
    assert a.failed == [] and r.position_consistency is None and not r.degraded


def test_merge_and_debate_have_the_analysis_and_the_best_answer(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=analysing_judge()))
    for mode in ("merge", "debate"):
        r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", mode=mode, rounds=1,
                              settings=FAST)
        assert r.answer == "Paris." and r.analysis is not None
        assert r.analysis.unique == [UniquePoint("openai:paris-bot", "Mentions the Seine.")]
        v = r.verdict
        assert v is not None and v.best_label is not None and v.labels[v.best_label].startswith("openai:paris-bot")
        assert f"ranked best: {v.best_label} = openai:paris-bot (paris-bot)" in text_report(r)
        assert f"<li><b>ranked best</b>: {v.best_label} = openai:paris-bot (paris-bot)</li>" in html_report(r)


def test_failed_members_come_from_their_records(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("broken-bot", ModelScript(faults=[Fault("status", status=503)]))
    emulator_env.script("judge", ModelScript(reply=analysing_judge()))
    r = fusion_magic.fuse("Capital of France?", pool=[*POOL, "openai:broken-bot"], judge="openai:judge",
                          settings=FAST)
    assert r.analysis is not None and r.analysis.models == POOL  # the judge never saw the failed member
    [(who, why)] = r.analysis.failed
    assert who == "openai:broken-bot" and why.startswith("server: HTTP 503")
    judge_text = next(q for q in emulator_env.requests if q.model == "judge").body or {}
    assert len(shown(judge_text)) == 2
    assert "failed members" in html_report(r) and "openai:broken-bot" in text_report(r)


def test_a_judge_without_analysis_gives_the_plain_verdict_and_a_note(emulator_env: Emulator) -> None:
    script_pool(emulator_env)

    def plain_judge(body: Mapping[str, Any]) -> str:
        return json.dumps({"reasoning": "Paris is right.", "winner": letter_of(shown(body), "Paris")})

    emulator_env.script("judge", ModelScript(reply=plain_judge))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST)
    assert r.answer == "Paris, on the Seine." and r.analysis is None
    assert r.verdict is not None and r.verdict.notes == [NO_ANALYSIS] and not r.verdict.fallback
    assert not r.degraded and "Who said what" not in html_report(r)
    assert NO_ANALYSIS in " ".join(text_report(r).split())


def test_an_unusable_analysis_keeps_the_verdict(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=analysing_judge(analysis="none")))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST)
    assert r.answer == "Paris, on the Seine." and r.analysis is None
    assert r.verdict is not None and r.verdict.notes == [NO_ANALYSIS]


def test_the_vote_has_no_analysis_and_the_judge_section_says_why(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="vote", settings=FAST)
    assert r.analysis is None and r.verdict is not None and r.verdict.notes == [VOTE_HAS_NO_ANALYSIS]
    assert "model-free" in VOTE_HAS_NO_ANALYSIS and "-j MODEL" in VOTE_HAS_NO_ANALYSIS
    text = text_report(r)
    judge_section = " ".join(text[text.index("\nJudge\n") : text.index("\nAnswers (")].split())
    assert VOTE_HAS_NO_ANALYSIS in judge_section
    html = html_report(r)
    judge_html = html[html.index("<b>Judge</b>") : html.index("<b>Answers (")]
    assert escape_text(VOTE_HAS_NO_ANALYSIS) in judge_html
    assert VOTE_HAS_NO_ANALYSIS in " ".join(markdown_report(r).replace("\\", "").split())


def test_a_fallback_vote_says_why_once_in_its_reasoning_not_in_a_note(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(faults=[Fault("status", status=500)]))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST)
    assert r.analysis is None and r.verdict is not None and r.verdict.fallback
    assert r.verdict.notes == [] and r.verdict.reasoning.startswith("Fell back to a vote because the judge's call")


# --- shown, inert ----------------------------------------------------------------------------------------------


def html_values(widget: widgets.Widget) -> Iterator[str]:
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


def test_the_table_renders_in_the_live_view_with_model_text_inert(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=analysing_judge(stance_extra=f" {EVIL}")))
    view = FusionView(render_interval=0.0)
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST,
                          listeners=[view.handle])
    assert r.analysis is not None and r.analysis.contradictions[0].stances["openai:paris-bot"] == f"Paris {EVIL}"
    judge_tab = "".join(html_values(view.judge.body))
    assert "Who said what" in judge_tab
    assert ("<tr><th>contradiction</th><th><code>openai:paris-bot</code></th><th><code>openai:lyon-bot</code></th>"
            "</tr>") in judge_tab
    assert "<td>Paris &lt;img src=x onerror=alert(1)&gt;</td><td>Lyon</td>" in judge_tab
    assert "<li><code>openai:paris-bot</code>: Mentions the Seine.</li>" in judge_tab
    assert_inert(judge_tab)
    assert_inert("".join(html_values(view.widget)))
    # the static report that replaces the widget once the run is done
    report = view._repr_mimebundle_()["text/html"]
    assert "Who said what" in report and "&lt;img src=x onerror=alert(1)&gt;" in report
    assert_inert(report)


def test_the_reports_show_the_analysis_inert(emulator_env: Emulator) -> None:
    script_pool(emulator_env)
    emulator_env.script("judge", ModelScript(reply=analysing_judge(stance_extra=f" | {EVIL}")))
    r = fusion_magic.fuse("Capital of France?", pool=POOL, judge="openai:judge", settings=FAST)
    assert_inert(html_report(r))
    md = markdown_report(r)
    assert "<img" not in md and "**Who said what**" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == "| contradiction | openai:paris-bot | openai:lyon-bot |"
    assert table[2] == "| Which city is the capital | Paris \\| &lt;img src=x onerror=alert(1)> | Lyon |"
    rendered = render_markdown("\n".join(table[:3]))  # a renderer keeps the table's shape, the text inert
    assert rendered.count("<tr>") == 2 and rendered.count("<td>") == 3 and "<img" not in rendered
    assert_inert(rendered)
    assert_inert(render_markdown(md))
    text = text_report(r)
    assert "who said what:" in text and "openai:paris-bot: Paris | <img src=x onerror=alert(1)>" in text
    assert "all agree:" in text and "only one answer:" in text and "no answer covered:" in text
