"""What the reports say about a degraded run, and how wide they are.

Each fact once, where it belongs: a failed call's own status on its ledger row (and a member's in its
section), the verdict's fallback and its reason in the Judge section, who failed and why in short on the
DEGRADED line; never a doubled ``kind: provider:model: kind:`` prefix, never a sentence cut in the middle
(a shortened text loses whole clauses and the full text stays in the result). The text report fits 100
columns and the HTML ledger fits a ~960 px JupyterLab panel.

The end-to-end tests here run through the loopback emulator and the real engine. Those marked
``needs the engine's fallback wording`` expect engine._judge to record the fallback's reason once, in the
verdict's reasoning ("Fell back to a vote because <JudgeFailed>. <the vote's reasoning>"), with no note.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from html_checks import assert_inert

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.ledger import COLUMNS, ledger_frame, with_totals
from fusion_magic.core.record import Response
from fusion_magic.fusion.report import degraded_summary, html_report, text_report
from fusion_magic.fusion.result import FusionResult, Verdict
from fusion_magic.present.ledger_table import WIDTH, ledger_html, shorten
from fusion_magic.present.wording import status_word
from fusion_magic.testing import Emulator, Fault, ModelScript

FAST = Settings(max_retries=0, timeout=20)
ENGINE_CHANGE = "engine._judge still writes the fallback's reason twice (a note and the reasoning): see the docstring"
EVIL = "<img src=x onerror=alert(1)>"
POOL = [
    "openrouter:anthropic/claude-3.7-sonnet",
    "openrouter:google/gemini-2.5-pro-preview-05-06",
    "openrouter:meta-llama/llama-3.3-70b-instruct",
    "openrouter:mistralai/mistral-large-2411",
]
JUDGE = "openrouter:openai/gpt-4o"
OVERLOADED = (
    "The upstream provider returned an error while processing the request: model is overloaded, please try "
    "again later or pick another provider from the list of providers serving this model"
)
PROSE = (
    "Entropy measures how many microscopic arrangements are compatible with what we observe about a system "
    "as a whole; the more arrangements, the higher the entropy, and isolated systems drift toward states "
    "with more of them simply because there are overwhelmingly more such states to drift into.\n\n"
    "In practice:\n\n"
    "- a hot cup of coffee cools because energy spreading into the room opens up vastly more arrangements "
    "than it closes in the cup;\n"
    "- an ice cube melts in a warm drink for the same reason.\n\n"
    "```python\nimport math\nS = k_B * math.log(W)\n```\n\n"
    "| system | entropy |\n|---|---|\n| ice | low |\n| steam | high |\n"
)
ANSWERS = {
    "anthropic/claude-3.7-sonnet": PROSE,
    "google/gemini-2.5-pro-preview-05-06": "It is 60.\n\n" + PROSE.split("\n\n")[0],
    "meta-llama/llama-3.3-70b-instruct": "60.",
}


def script_pool(emu: Emulator) -> None:
    for model, reply in ANSWERS.items():
        emu.script(model, ModelScript(reply=reply))
    emu.script("mistralai/mistral-large-2411", ModelScript(faults=[Fault("status", status=503, message=OVERLOADED)]))


def judge_fails(emu: Emulator) -> None:
    emu.script("openai/gpt-4o", ModelScript(faults=[Fault("malformed", after_chunks=1)]))


def judge_merges(emu: Emulator) -> None:
    emu.script("openai/gpt-4o", ModelScript(reply=json.dumps({"reasoning": "A and B agree.", "answer": PROSE})))


# --- width ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("judge", [judge_merges, judge_fails], ids=["judge ok", "judge fails"])
def test_a_realistic_text_report_fits_100_columns(emulator_env: Emulator, judge: object) -> None:
    script_pool(emulator_env)
    judge(emulator_env)  # type: ignore[operator]
    r = fusion_magic.fuse("Explain entropy.", pool=POOL, judge=JUDGE, mode="merge", settings=FAST)
    assert r.degraded
    text = text_report(r)
    too_wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert too_wide == []
    assert "| system | entropy |" in text and "S = k_B * math.log(W)" in text  # code and tables kept as written
    # A wrapped list item hangs under its own text.
    hanging = (
        "\n- a hot cup of coffee cools because energy spreading into the room opens up vastly more arrangements\n"
        "  than it closes in the cup;\n"
    )
    assert hanging in text
    # The ledger DataFrame itself is untouched: every column, the full error.
    assert list(r.ledger.columns) == COLUMNS
    assert OVERLOADED in r.ledger["error"].iloc[3]


def test_the_text_ledger_wraps_names_and_shortens_errors_by_whole_clauses() -> None:
    frame = with_totals(ledger_frame(long_calls()), 12.5)
    text = text_report(result_of(long_calls()))
    table = text[text.index("Cost & latency") :]
    assert max(len(line) for line in table.splitlines()) <= WIDTH
    errors = [line for line in table.splitlines() if line.startswith("  error: ")]
    assert errors == [
        "  error: HTTP 503: The upstream provider returned an error while processing the request…",
        "  error: the local model copied its few-shot example instead of answering…",
    ]
    assert frame["error"].iloc[3].endswith(OVERLOADED)  # the full text is in the result


def test_the_html_ledger_fits_a_panel_and_escapes_every_cell() -> None:
    calls = long_calls()
    calls[0].label = EVIL
    calls[3].error = f"openrouter:mistralai/mistral-large-2411 HTTP 503: server: {EVIL} {OVERLOADED}"
    calls[2].cost_source = EVIL
    table = ledger_html(with_totals(ledger_frame(calls), 12.5))
    assert_inert(table)
    assert table.count("&lt;img src=x onerror=alert(1)&gt;") == 3
    assert "table-layout:auto" in table and "width:100%" in table
    error_cells = re.findall(r'<td style="([^"]*)">[^<]*upstream provider', table)
    # Wraps at words within a readable width ("anywhere" let the column shrink to a letter).
    assert error_cells and "nowrap" not in error_cells[0] and "overflow-wrap:break-word" in error_cells[0]
    assert all("nowrap" in style for style in re.findall(r'<th style="([^"]*)">', table))


def test_the_html_report_fits_a_960px_jupyterlab_panel(tmp_path: Path) -> None:
    # A real browser lays the table out: Debian's chromium, as tests/test_browser.py uses (make test installs it).
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"{chromium} is missing: `make test` installs it (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    # JupyterLab's rendermime rules for tables (packages/rendermime/style/base.css): fixed layout, centred.
    css = (
        "body{font-family:sans-serif;font-size:13px;margin:0}#panel{width:960px}"
        ".jp-RenderedHTMLCommon table{border-collapse:collapse;font-size:12px;table-layout:fixed;margin:0 auto 1em}"
        ".jp-RenderedHTMLCommon td,.jp-RenderedHTMLCommon th{text-align:right;padding:.5em;white-space:normal}"
    )
    page_html = (f"<html><head><style>{css}</style></head><body><div id=panel class=jp-RenderedHTMLCommon>"
                 f"{html_report(result_of(long_calls()))}</div></body></html>")  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_content(page_html)
            sizes = page.evaluate(
                """() => {
                    document.querySelectorAll('details').forEach(d => { d.open = true; });  // laid out unfolded
                    const panel = document.getElementById('panel').getBoundingClientRect();
                    const tables = [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right);
                    const cells = [...document.querySelectorAll('td')].map(c => c.getBoundingClientRect().right);
                    const heads = [...document.querySelectorAll('th')].map(h => h.getBoundingClientRect().height);
                    const line = parseFloat(getComputedStyle(document.querySelector('th')).lineHeight) || 16;
                    return {panel: panel.right, right: Math.max(...tables, ...cells), head: Math.max(...heads),
                            line: line, tables: tables.length};
                }"""
            )
        finally:
            browser.close()
    assert sizes["tables"] >= 1 and sizes["right"] <= sizes["panel"] + 0.5, sizes
    assert sizes["head"] < 2 * sizes["line"] + 12, sizes  # every header on one line (padding aside)


# --- wording -------------------------------------------------------------------------------------------


def test_a_failing_judge_is_said_once_per_place(emulator_env: Emulator) -> None:
    """Needs the engine's fallback wording (see the module docstring)."""
    script_pool(emulator_env)
    judge_fails(emulator_env)
    r = fusion_magic.fuse("Explain entropy.", pool=POOL, judge=JUDGE, mode="merge", settings=FAST)
    assert r.verdict is not None and r.verdict.fallback
    assert r.verdict.notes == [], ENGINE_CHANGE
    assert r.verdict.reasoning.startswith(
        "Fell back to a vote because the judge's call failed (protocol: malformed JSON in stream: "
    )
    text = text_report(r)
    judge_section = text[text.index("\nJudge\n") : text.index("\nAnswers (")]
    ledger = text[text.index("\nCost & latency\n") :]
    degraded = text[text.index("DEGRADED") : text.index("\nJudge\n")]
    # The reason: once in the Judge section, once on the judge's ledger row, in short on the DEGRADED line.
    assert text.count("malformed JSON in stream") == 3
    assert judge_section.count("malformed JSON in stream") == 1
    assert ledger.count("malformed JSON in stream") == 1
    assert f"judge {JUDGE} failed (protocol: malformed JSON in stream…), so a vote chose the answer." in (
        " ".join(degraded.split())
    )
    assert f"judge:     vote (fallback, in place of {JUDGE})" in judge_section
    for form in (text, r.to_markdown().replace("\\", ""), html_report(r)):
        assert not DOUBLED.search(form), DOUBLED.search(form)
        assert f"{JUDGE}: protocol" not in form and "not the judge's" not in form
    # The full text stays in the result.
    assert r.judge_responses[0].error is not None and r.judge_responses[0].error.startswith(f"{JUDGE}: protocol: ")


def test_an_unusable_verdict_says_so(emulator_env: Emulator) -> None:
    """Needs the engine's fallback wording (see the module docstring)."""
    script_pool(emulator_env)
    emulator_env.script("openai/gpt-4o", ModelScript(reply="I refuse to pick."))
    r = fusion_magic.fuse("6 x 10?", pool=POOL, judge=JUDGE, mode="best-of", settings=FAST)
    assert r.verdict is not None and r.verdict.notes == [], ENGINE_CHANGE
    assert r.verdict.reasoning.startswith("Fell back to a vote because the judge gave no usable verdict (no winner")
    summary = degraded_summary(r)
    assert summary is not None
    assert summary.endswith("; the judge gave no usable verdict, so a vote chose the answer.")


DOUBLED = re.compile(r"\b(\w+): [\w.\-/@]+:[\w.\-/@:]+(?: HTTP \d+)?: \1: ")


def test_degraded_line_for_a_failed_judge_and_fallback() -> None:
    r = result_of(long_calls())
    assert degraded_summary(r) == (
        "DEGRADED: 1 member call failed: mistral-large-2411 (server: HTTP 503…); "
        f"judge {JUDGE} failed (protocol: the local model copied its few-shot example instead of answering…), "
        "so a vote chose the answer."
    )


def test_degraded_line_when_nothing_reached_the_judge() -> None:
    failed = Response(model="openai:a", status="timeout", error="openai:a: timeout: no answer within 30 s",
                      label="a", call_id=1)  # fmt: skip
    reasoning = "Fell back to a vote because there was no answer to judge. No answer arrived."
    verdict = Verdict(model="vote", mode="merge", fallback=True, reasoning=reasoning)
    r = FusionResult(prompt="q", mode="merge", judge=JUDGE, pool=["openai:a"], responses=[failed], verdict=verdict)
    assert degraded_summary(r) == (
        "DEGRADED: 1 member call failed: a (timeout: no answer within 30 s); no answer reached the judge."
    )


@pytest.mark.parametrize(
    ("text", "limit", "short"),
    [
        (OVERLOADED[:57], 100, OVERLOADED[:57]),
        ("server: HTTP 503: The upstream provider returned an error", 30, "server: HTTP 503…"),
        ("protocol: the local model copied its example (too small; a real model will do better)", 60,
         "protocol: the local model copied its example…"),
        ("protocol: malformed JSON in stream: '{\"id\":\"gen-1\",\"object\":\"chunk\"}'", 40,
         "protocol: malformed JSON in stream…"),
        ("First sentence here. Second sentence that is long.", 30, "First sentence here…"),
        ("one clause far too long for the limit", 10, ""),
    ],
)  # fmt: skip
def test_shorten_drops_whole_clauses(text: str, limit: int, short: str) -> None:
    assert shorten(text, limit) == short
    assert len(shorten(text, limit)) <= limit


# --- helpers -------------------------------------------------------------------------------------------


def long_calls() -> list[Response]:
    """Four members with long ids (one failed with a long error) and a judge that failed."""
    def call(model: str, call_id: int, **fields: object) -> Response:
        base: dict[str, object] = dict(
            text="It is 60.", status="ok", input_tokens=1200, output_tokens=640, cost_usd=0.012345,
            cost_source="price table 2025-10-01", ttft_s=1.25, latency_s=11.75, attempts=1,
            label=model.rsplit("/", 1)[-1],
        )  # fmt: skip
        base.update(fields)
        return Response(model=model, call_id=call_id, **base)  # type: ignore[arg-type]

    members = [call(m, i + 1) for i, m in enumerate(POOL)]
    members[3].status, members[3].text = "server", ""
    members[3].error = f"openrouter:mistralai/mistral-large-2411 HTTP 503: server: {OVERLOADED}"
    members[3].cost_usd, members[3].cost_source = None, "unknown"
    judge = call(JUDGE, 5, role="judge", label=None, status="protocol", text='{"reasoning": "A',
                 error=f"{JUDGE}: protocol: the local model copied its few-shot example instead of answering "
                       "(too small to write this verdict; a real model or the vote judge will do better)")  # fmt: skip
    return [*members, judge]


def result_of(calls: list[Response]) -> FusionResult:
    members = [c for c in calls if c.role == "member"]
    judges = [c for c in calls if c.role == "judge"]
    verdict = Verdict(
        model="vote", mode="merge", fallback=True, answer="It is 60.", choice=members[0].model,
        choice_label=members[0].label, labels={c.label or "": c.model for c in members if c.ok},
        reasoning="Fell back to a vote because the judge's call failed (protocol: the local model copied its "
                  "few-shot example instead of answering (too small to write this verdict; a real model or the "
                  "vote judge will do better)). Majority vote on the final answers ('60': 3): 3 of 3 say '60'.",
    )  # fmt: skip
    return FusionResult(prompt="6 x 10?", mode="merge", judge=JUDGE, pool=POOL, responses=members,
                        judge_responses=judges, verdict=verdict, answer=verdict.answer, wall_s=12.5)  # fmt: skip


def test_a_member_the_filter_refused_reads_filtered_everywhere(emulator_env: Emulator) -> None:
    """A prompt the provider's safety filter refused is "filtered", as a clip the filter withheld: in its status,
    the ledger and the DEGRADED line; never "failed: blocked"."""
    script_pool(emulator_env)
    emulator_env.script("mistralai/mistral-large-2411", ModelScript(faults=[Fault("blocked", message="flagged")]))
    r = fusion_magic.fuse("Explain entropy.", pool=POOL, judge="vote", settings=FAST)
    refused = next(m for m in r.responses if m.model.endswith("mistral-large-2411"))
    assert refused.status == "filtered" and status_word(refused).startswith("filtered (withheld by the provider")
    text, html = text_report(r), html_report(r)
    assert "filtered by the provider: mistral-large-2411" in " ".join(text.split())
    assert "blocked" not in (refused.status + status_word(refused).split(":")[0])
    assert "failed: blocked" not in text and "failed: blocked" not in html
    assert r.ledger.loc[r.ledger["model"] == refused.model, "status"].iloc[0] == "filtered"
