"""The reports: plain text (terminals, scripts, saved notebooks), Markdown and sanitized HTML.

Results are built from the real dataclasses, the way the engine fills them in.
"""

from __future__ import annotations

import pytest
from html_checks import assert_inert, assert_no_script
from markdown_it import MarkdownIt

from fusion_magic.core.record import Response
from fusion_magic.fusion.report import degraded_summary, html_report, markdown_report, text_report
from fusion_magic.fusion.result import FusionResult, Verdict
from fusion_magic.present.ledger_table import figures, ledger_display
from fusion_magic.present.wording import status_word

EVIL = "<img src=x onerror=alert(1)>"
JUDGE = "anthropic:claude-sonnet-4-5"


def member(label: str, model: str, text: str, call_id: int, **fields: object) -> Response:
    base: dict[str, object] = dict(
        status="ok", input_tokens=12, output_tokens=4, cost_usd=0.00007, cost_source="provider",
        ttft_s=0.31, latency_s=0.9, attempts=1,
    )  # fmt: skip
    base.update(fields)
    return Response(model=model, text=text, label=label, call_id=call_id, **base)  # type: ignore[arg-type]


def judge_call(call_id: int, **fields: object) -> Response:
    base: dict[str, object] = dict(
        text='{"winner": "A"}', status="ok", role="judge", input_tokens=200, output_tokens=30,
        cost_usd=0.00105, cost_source="provider", ttft_s=0.4, latency_s=1.1, attempts=1,
    )  # fmt: skip
    base.update(fields)
    return Response(model=JUDGE, call_id=call_id, **base)  # type: ignore[arg-type]


def degraded_result() -> FusionResult:
    responses = [
        member("gpt-4o", "openrouter:openai/gpt-4o", "Rayleigh scattering.", 1),
        member("gemma3-270m #2", "local:gemma3-270m", "The sk", 2, status="timeout",
               error="no answer within 30 s", output_tokens=2, cost_usd=0.0, cost_source="local",
               ttft_s=0.05, latency_s=30.0),
    ]  # fmt: skip
    verdict = Verdict(
        model=JUDGE, mode="best-of", reasoning="Only A answered.", answer="Rayleigh scattering.",
        choice="openrouter:openai/gpt-4o", choice_label="Answer A",
        labels={"Answer A": "openrouter:openai/gpt-4o (gpt-4o)"},
    )  # fmt: skip
    return FusionResult(
        prompt="Why is the sky blue?", mode="best-of", judge=JUDGE,
        pool=["openrouter:openai/gpt-4o", "local:gemma3-270m"], responses=responses,
        judge_responses=[judge_call(3)], verdict=verdict, answer=verdict.answer, wall_s=31.5,
        warnings=["one member failed; the judge saw 1 answer"],
    )  # fmt: skip


def hostile_result() -> FusionResult:
    """Every model-written field carries markup; one member is late, one price is unknown."""
    responses = [
        member("gpt-4o", "openrouter:openai/gpt-4o", f"Safe answer. {EVIL}", 1),
        member("llama3.2", "ollama:llama3.2", "[click](javascript:alert(1)) <script>alert(2)</script>", 2,
               cost_usd=None, cost_source="unknown"),
        member("slowpoke", "gemini:gemini-2.5-pro", "Late **but** thorough.", 3, late=True),
    ]  # fmt: skip
    verdict = Verdict(
        model=JUDGE, mode="merge", reasoning=f"Merged A and B. {EVIL}", answer=f"**Merged** answer {EVIL}",
        labels={"Answer A": "openrouter:openai/gpt-4o (gpt-4o)", "Answer B": "ollama:llama3.2 (llama3.2)"},
        notes=[f"candidate B contained markup {EVIL}"],
    )  # fmt: skip
    return FusionResult(
        prompt="Why?", mode="merge", judge=JUDGE, pool=[r.model for r in responses], responses=responses,
        judge_responses=[judge_call(4)], verdict=verdict, answer=verdict.answer, wall_s=2.0,
        warnings=[f"judge is also in the pool {EVIL}"],
    )  # fmt: skip


GOLDEN = """\
========================================================================
Fused answer (best-of, judge anthropic:claude-sonnet-4-5)
========================================================================
Rayleigh scattering.

best-of · judge anthropic:claude-sonnet-4-5 chose Answer A = openrouter:openai/gpt-4o · 1/2 answers
  · 31.50 s · $0.001120
DEGRADED: 1 member call failed: gemma3-270m #2 (timeout: no answer within 30 s).

========================================================================
Judge
========================================================================
mode:      best-of
judge:     anthropic:claude-sonnet-4-5
choice:    Answer A = openrouter:openai/gpt-4o
labels:    Answer A = openrouter:openai/gpt-4o (gpt-4o)
reasoning:
    Only A answered.

========================================================================
Answers (2)
========================================================================
--- gpt-4o · openrouter:openai/gpt-4o ---
done · 12→4 tok · 0.90 s · $0.000070
Rayleigh scattering.

--- gemma3-270m #2 · local:gemma3-270m ---
failed: timeout: no answer within 30 s · 12→2 tok · 30.00 s · $0.000000
The sk

========================================================================
Cost & latency
========================================================================
call             status   tries  ttft s  latency s  in tok  out tok    cost $  source
---------------  -------  -----  ------  ---------  ------  -------  --------  --------
gpt-4o           ok           1    0.31       0.90      12        4  0.000070  provider
gemma3-270m #2   timeout      1    0.05      30.00      12        2  0.000000  local
  error: no answer within 30 s
judge            ok           1    0.40       1.10     200       30  0.001050  provider
TOTAL (3 calls)  2 ok         3       -      31.50     224       36  0.001120  sum
overhead                      -       -       0.40       -        -  0.000000
overhead: wall time minus the critical path (the slowest member of each round, plus the judge)

========================================================================
Notes
========================================================================
- one member failed; the judge saw 1 answer
"""


def test_text_report_layout_is_stable() -> None:
    assert text_report(degraded_result()) == GOLDEN


def test_text_report_sections_come_in_order() -> None:
    text = text_report(hostile_result())
    order = ["Fused answer (merge, judge", "Judge", "Answers (3)", "Cost & latency", "Notes"]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions)
    assert text.index("**Merged** answer") < text.index("Judge\n")
    assert "choice:    merged answer" in text
    assert "labels:    Answer A = openrouter:openai/gpt-4o (gpt-4o)" in text
    assert "           Answer B = ollama:llama3.2 (llama3.2)" in text
    assert "notes:     candidate B contained markup" in text
    assert "--- slowpoke · gemini:gemini-2.5-pro ---\nlate, done · 12→4 tok" in text
    assert "12→4 tok · 0.90 s · cost ?" in text  # an unknown price is never shown as $0
    assert "DEGRADED" not in text  # a late member is not a failure
    lines = text.splitlines()
    assert lines[-1] == "- judge is also in the pool " + EVIL


def test_text_report_ledger_has_a_row_per_call_and_totals() -> None:
    text = text_report(hostile_result())
    table = text[text.index("Cost & latency") : text.index("Notes\n")].splitlines()
    rows = [line for line in table if line.startswith(("gpt-4o ", "llama3.2 ", "slowpoke ", "judge ", "TOTAL "))]
    assert len(rows) == 5
    assert rows[2].split()[:3] == ["slowpoke", "ok,", "late"]  # the late flag joins the status
    total = rows[-1].split()
    assert total[:5] == ["TOTAL", "(4", "calls)", "4", "ok"]
    assert "?" in total  # total cost unknown because one price is
    assert "unknown (a price is missing)" in " ".join(" ".join(table).split())  # wrapped in its cell


def test_text_report_degraded_line_names_every_failure() -> None:
    result = degraded_result()
    result.judge_responses[0].status = "server"
    result.judge_responses[0].error = "HTTP 529 overloaded\nretry later"
    assert result.verdict is not None
    result.verdict.fallback = True
    summary = degraded_summary(result)
    assert summary == (
        "DEGRADED: 1 member call failed: gemma3-270m #2 (timeout: no answer within 30 s); "
        f"judge {JUDGE} failed (server: HTTP 529 overloaded), so a vote chose the answer."
    )
    text = text_report(result)
    # Right under the answer and its summary line, wrapped at the report's width, word for word the same.
    below = text[text.index("DEGRADED") : text.index("=" * 72 + "\nJudge")].splitlines()
    assert " ".join(line.strip() for line in below).strip() == summary
    assert degraded_summary(hostile_result()) is None


def test_text_report_strips_terminal_control_sequences() -> None:
    result = degraded_result()
    result.responses[0].text = "clear\x1b[2J\x07 me"
    assert "\x1b" not in text_report(result) and "\x07" not in text_report(result)
    assert "clear[2J me" in text_report(result)


def test_text_report_of_debate_rounds_and_missing_verdict() -> None:
    rounds = [
        member("gpt-4o", "openrouter:openai/gpt-4o", "Blue, I think.", 1, round=0),
        member("gpt-4o", "openrouter:openai/gpt-4o", "Blue: Rayleigh scattering.", 3, round=1),
        member("llama3.2", "ollama:llama3.2", "Blue.", 2, round=0),
    ]
    result = FusionResult(prompt="Why?", mode="debate", judge=JUDGE, pool=["a", "b"], responses=rounds)
    text = text_report(result)
    assert "Answers (2)" in text
    assert text.index("gpt-4o · openrouter:openai/gpt-4o · round 0 ---") < text.index("Blue, I think.")
    assert text.index("round 1 ---\ndone · ") < text.index("Blue: Rayleigh")
    assert "Judge\n" + "=" * 72 + "\nno verdict" in text
    assert "(no answer)" in text


def test_text_report_with_no_calls() -> None:
    result = FusionResult(prompt="Why?", mode="vote", judge="vote", pool=[])
    text = text_report(result)
    assert "no calls" in text and "Answers (0)" in text


def test_status_word_and_figures() -> None:
    r = Response(model="m")
    assert status_word(r) == "queued"
    r.status = "streaming"
    assert status_word(r) == "streaming"
    r.status = "ok"
    assert status_word(r) == "done"
    r.late = True
    assert status_word(r) == "late, done"
    r.status, r.error, r.late = "rate_limit", "HTTP 429\nslow down", False
    assert status_word(r) == "failed: rate_limit: HTTP 429"
    assert figures(r) == "?→? tok · ? s · cost ?"


def test_ledger_display_formats_unknowns() -> None:
    frame = hostile_result().ledger
    shown = ledger_display(frame)
    assert list(shown["cost $"]) == ["0.000070", "?", "0.000070", "0.001050"]
    assert list(shown["late"]) == ["", "", "late", ""]


# --- markdown and html ---------------------------------------------------------------------------------


def test_html_report_is_sanitized_and_complete() -> None:
    html = html_report(hostile_result())
    assert_inert(html)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # visible as text
    assert "<strong>Merged</strong>" in html and "<strong>but</strong>" in html
    assert "late, done" in html
    assert ">TOTAL</td>" in html
    assert "DEGRADED" not in html
    assert "DEGRADED: 1 member call failed" in html_report(degraded_result())


def test_markdown_report_is_inert_under_a_renderer_that_allows_html() -> None:
    md = markdown_report(hostile_result())
    permissive = MarkdownIt("commonmark", {"html": True}).enable("table")
    permissive.validateLink = lambda url: True  # type: ignore[method-assign]
    html = permissive.render(md)
    assert_no_script(html)
    assert "<strong>Merged</strong>" in html  # model Markdown still renders
    assert "<table>" in html and "TOTAL" in html
    for heading in ("## Fused answer", "## Judge", "## Answers", "## Cost & latency", "## Notes"):
        assert heading in md


def test_result_renders_through_the_reports() -> None:
    result = degraded_result()
    assert str(result) == text_report(result) == result.to_text()
    assert result.to_markdown() == markdown_report(result)
    bundle = result._repr_mimebundle_()
    assert bundle == {"text/plain": text_report(result), "text/html": html_report(result)}


@pytest.mark.parametrize("mode", ["best-of", "merge", "debate", "vote"])
def test_every_mode_reports(mode: str) -> None:
    result = degraded_result()
    result.mode = mode
    assert result.verdict is not None
    result.verdict.mode = mode
    assert f"Fused answer ({mode}, judge" in text_report(result)
    assert f"mode:      {mode}" in text_report(result)
