"""%%fuse and %fuse in a real InteractiveShell, every call through the loopback emulator."""

from __future__ import annotations

import _thread
import threading
import time
from typing import Any

import pytest
from conftest import magics_of
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.core.errors import ConfigError, MissingKeyError
from fusion_magic.fusion.estimate import Estimate
from fusion_magic.fusion.result import FusionResult
from fusion_magic.ipython.magics import FusionInterrupted, FusionMagics
from fusion_magic.providers.chat import local
from fusion_magic.testing import Emulator, Fault, ModelScript


def prompt_sent(emu: Emulator, model: str) -> str:
    body = next(q for q in emu.requests if q.model == model).body or {}
    return body["messages"][-1]["content"]


def test_cell_runs_pool_and_stores_result(shell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script("a", ModelScript(reply="It is 4."))
    emulator_env.script("b", ModelScript(reply="4"))
    out = shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote -o r", "2+2?")
    assert isinstance(out, FusionResult) and shell.user_ns["r"] is out
    assert out.answer in ("It is 4.", "4") and out.mode == "best-of" and out.judge == "vote"
    # terminal: the result renders as the readable text report
    text = out._repr_mimebundle_()["text/plain"]
    assert "It is 4." in text and "vote" in text and "TOTAL" in text


def test_interpolation_leaves_other_braces_alone(shell: InteractiveShell, emulator_env: Emulator) -> None:
    shell.user_ns["topic"] = "entropy"
    body = 'Explain {topic}.\n# NBVAL_IGNORE_OUTPUT\nJSON: {"k": [1, 2]} code: f"{x:2}" {{topic}} {missing} {}'
    shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote", body)
    expected = 'Explain entropy.\nJSON: {"k": [1, 2]} code: f"{x:2}" {{topic}} {missing} {}'
    assert prompt_sent(emulator_env, "a") == expected
    shell.run_cell_magic("fuse", "-p openai:c,openai:d -j vote --no-interpolate", "Explain {topic}.")
    assert prompt_sent(emulator_env, "c") == "Explain {topic}."


def test_options_reach_the_wire(shell: InteractiveShell, emulator_env: Emulator) -> None:
    shell.run_cell_magic(
        "fuse", '-p openai:a,anthropic:b -j vote --max-tokens 77 --temperature 0.3 -s "Be terse." -t 9', "hi")
    a = next(q for q in emulator_env.requests if q.model == "a").body or {}
    b = next(q for q in emulator_env.requests if q.model == "b").body or {}
    assert a["max_completion_tokens"] == 77 and a["temperature"] == 0.3
    assert a["messages"][0] == {"role": "system", "content": "Be terse."}
    assert b["max_tokens"] == 77 and b["system"] == "Be terse."


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-p openai:a --bogus", "unrecognized arguments"),
        ("-p gpt-4o", "provider:model"),
        ("-p nope:x", "unknown provider"),
        ("-p openai:a -m fastest", "invalid choice"),
        ("-p openai:a -o 2bad", "variable name"),
        ("-p openai:a,openai:b -q 7", "quorum"),
        ('-p openai:a -s "unbalanced', "cannot read the options"),
    ],
)
def test_bad_input_is_one_usage_line_and_no_call(shell: InteractiveShell, emulator_env: Emulator, line: str,
                                                 message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        shell.run_cell_magic("fuse", line, "hi")
    assert type(info.value) is UsageError and "\n" not in str(info.value)
    assert emulator_env.requests == []


def test_missing_key_says_which_variable(shell: InteractiveShell, emulator: Emulator) -> None:
    with pytest.raises(UsageError, match="set ANTHROPIC_API_KEY"):
        shell.run_cell_magic("fuse", "-p anthropic:claude-sonnet-4-5,openai:x", "hi")
    assert emulator.requests == []


def test_raise_errors_env_shows_the_real_exception(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSION_MAGIC_RAISE_ERRORS", "1")
    with pytest.raises(MissingKeyError):
        shell.run_cell_magic("fuse", "-p anthropic:claude-sonnet-4-5", "hi")


def test_empty_prompt(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="prompt is empty"):
        shell.run_cell_magic("fuse", "-p openai:a", "\n# NBVAL_IGNORE_OUTPUT\n")


def test_estimate_needs_no_key(shell: InteractiveShell, emulator: Emulator) -> None:
    est = shell.run_cell_magic("fuse", "-p openai:gpt-4o,anthropic:claude-sonnet-4-5 -j gemini:gemini-2.5-flash "
                                       "--estimate", "Explain entropy.")
    assert isinstance(est, Estimate) and est.total_usd is not None and emulator.requests == []
    with pytest.raises(UsageError, match="set OPENAI_API_KEY"):  # running it still needs the keys
        shell.run_cell_magic("fuse", "-p openai:gpt-4o,anthropic:claude-sonnet-4-5 --budget 5", "Explain entropy.")


def test_estimate_and_budget(shell: InteractiveShell, emulator_env: Emulator) -> None:
    est = shell.run_cell_magic("fuse", "-p openai:gpt-4o,anthropic:claude-sonnet-4-5 -j openai:gpt-4o-mini "
                                       "--estimate", "Explain entropy.")
    assert isinstance(est, Estimate) and est.total_usd is not None and "Total: $" in str(est)
    with pytest.raises(UsageError, match="above --budget"):
        shell.run_cell_magic("fuse", "-p openai:gpt-4o,anthropic:claude-sonnet-4-5 --budget 0.0001", "Explain.")
    assert emulator_env.requests == []


def test_config_traits_are_the_defaults(shell: InteractiveShell, emulator_env: Emulator) -> None:
    shell.run_line_magic("config", 'FusionMagics.pool = ["openai:x1", "gemini:x2"]')
    shell.run_line_magic("config", 'FusionMagics.judge = "vote"')
    shell.run_line_magic("config", 'FusionMagics.mode = "merge"')
    r = shell.run_cell_magic("fuse", "", "hello")
    assert r.pool == ["openai:x1", "gemini:x2"] and r.mode == "merge" and r.judge == "vote"
    assert {q.model for q in emulator_env.requests} == {"x1", "x2"}


def test_config_lists_options(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("config", "FusionMagics")
    out = capsys.readouterr().out
    assert "FusionMagics.pool" in out and "FusionMagics.judge" in out and "FusionMagics.cache" in out


def test_help_lists_every_flag(shell: InteractiveShell) -> None:
    doc = shell.find_cell_magic("fuse").__doc__ or ""
    for flag in ("--pool", "--self", "--judge", "--mode", "--rounds", "--quorum", "--deadline", "--timeout",
                 "--max-tokens", "--temperature", "--system", "--estimate", "--budget", "--background",
                 "--out", "rejudge", "list"):
        assert flag in doc


def test_fuse_list_shows_key_state_not_values(shell: InteractiveShell, emulator_env: Emulator) -> None:
    listing = shell.run_line_magic("fuse", "list")
    text = str(listing)
    assert "OPENROUTER_API_KEY" in text and "set" in text and "gpt-4o" in text
    for key in emulator_env.test_keys().values():
        assert key not in text


def script_two_members_and_a_merge_judge(emulator: Emulator) -> None:
    emulator.script("a", ModelScript(reply="It is 4."))
    emulator.script("b", ModelScript(reply="Four, i.e. 4."))
    emulator.script("j", ModelScript(reply='{"reasoning": "fine", "answer": "4 (merged)"}'))


def test_rejudge_uses_the_last_result(shell: InteractiveShell, emulator_env: Emulator) -> None:
    script_two_members_and_a_merge_judge(emulator_env)
    shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote", "2+2?")
    n = len(emulator_env.requests)
    again = shell.run_line_magic("fuse", "rejudge -m merge -j openai:j -o r")
    assert again.answer == "4 (merged)" and shell.user_ns["r"] is again
    assert [q.model for q in emulator_env.requests[n:]] == ["j"]


def test_rejudge_line_uses_the_cache(shell: InteractiveShell, emulator_env: Emulator) -> None:
    script_two_members_and_a_merge_judge(emulator_env)
    shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote -o first --cache on", "2+2?")
    n = len(emulator_env.requests)
    shell.run_line_magic("fuse", "rejudge -m merge -j openai:j --cache on first")
    again = shell.run_line_magic("fuse", "rejudge -m merge -j openai:j --cache on first")
    assert [q.model for q in emulator_env.requests[n:]] == ["j"]  # the second came from the cache
    assert again.answer == "4 (merged)" and again.judge_responses[-1].cost_source.startswith("cache")


def test_rejudge_without_a_result(shell: InteractiveShell) -> None:
    magics_of(shell).last = None
    with pytest.raises(UsageError, match="needs an earlier"):
        shell.run_line_magic("fuse", "rejudge")


@pytest.mark.parametrize(("words", "message"), [
    ("--orders 9", "--orders must be between 1 and 8"),
    ("--orders 0", "--orders must be between 1 and 8"),
    ("--orders -3", "--orders must be between 1 and 8"),
])
def test_rejudge_checks_its_options_as_fuse_does(shell: InteractiveShell, emulator_env: Emulator, words: str,
                                                 message: str) -> None:
    """``%fuse rejudge`` takes --orders from FuseOptions' declaration, its 1..8 bound included: one line, and
    not even the judge is called."""
    script_two_members_and_a_merge_judge(emulator_env)
    shell.run_cell_magic("fuse", "-p openai:a,openai:b -j vote", "2+2?")
    n = len(emulator_env.requests)
    with pytest.raises(UsageError, match=message) as info:
        shell.run_line_magic("fuse", f"rejudge -j openai:j {words}")
    assert "\n" not in str(info.value) and emulator_env.requests[n:] == []


def test_rejudge_from_python_checks_orders_mode_and_cache() -> None:
    from fusion_magic.api import plan_rejudge, rejudge

    previous = FusionResult(prompt="2+2?", mode="best-of", judge="vote", pool=["openai:a"])
    with pytest.raises(ConfigError, match="--orders must be between 1 and 8"):
        rejudge(previous, orders=20)
    with pytest.raises(ConfigError, match="mode must be one of"):
        plan_rejudge(previous, mode="fuse-harder")
    with pytest.raises(ConfigError, match="cache must be one of"):
        plan_rejudge(previous, cache="sometimes")
    assert plan_rejudge(previous, orders=8).orders == 8


def test_every_member_failing_is_one_line(shell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script("x", ModelScript(faults=[Fault("status", status=401)]))
    with pytest.raises(UsageError, match="every pool member failed"):
        shell.run_cell_magic("fuse", "-p openai:x,openai:x -j vote -o r", "hi")
    assert shell.user_ns["r"].degraded  # what arrived is still there to inspect


def test_background_then_result(shell: InteractiveShell, emulator_env: Emulator) -> None:
    emulator_env.script("slowish", ModelScript(reply="done", ttft_s=0.3))
    assert shell.run_cell_magic("fuse", "-p openai:slowish,openai:slowish -j vote --background -o job", "q") is None
    job = shell.user_ns["job"]
    assert job.result(timeout=10).answer == "done"


def test_interrupt_closes_every_connection(shell: InteractiveShell, emulator_env: Emulator) -> None:
    for name in ("h1", "h2", "h3"):
        emulator_env.script(name, ModelScript(faults=[Fault("hang")]))
    fired: list[float] = []

    def interrupt() -> None:
        fired.append(time.monotonic())
        _thread.interrupt_main()

    threading.Timer(0.5, interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        shell.run_cell_magic("fuse", "-p openai:h1,anthropic:h2,gemini:h3 -j vote", "never answered")
    closed = emulator_env.wait_for(lambda reqs: len(reqs) == 3 and all(q.disconnected for q in reqs), timeout=5)
    assert closed
    # the server saw each connection close within a second of the interrupt (the design's promise)
    assert all((q.ended or 0) - fired[0] < 1.0 for q in emulator_env.requests)
    # and the shell is still usable
    emulator_env.script("after", ModelScript(reply="still here"))
    r: Any = shell.run_cell_magic("fuse", "-p openai:after,openai:after -j vote", "hi")
    assert r.answer == "still here"


def widget_html(widget: Any) -> str:
    """Every HTML value under a widget, depth first (what the browser would render)."""
    import ipywidgets

    if isinstance(widget, ipywidgets.HTML):
        return widget.value
    return "".join(widget_html(c) for c in getattr(widget, "children", ()))


def test_widget_view_tree(shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    magics = magics_of(shell)
    magics.view = "widgets"
    emulator_env.script("w1", ModelScript(reply="It is **4**."))
    emulator_env.script("w2", ModelScript(reply="<img src=x onerror=alert(1)> 4"))
    emulator_env.script("w3", ModelScript(faults=[Fault("status", status=500, message="exploded")]))
    emulator_env.script("wj", ModelScript(reply='{"reasoning": "A and B agree on 4", "answer": "4"}'))
    r = shell.run_cell_magic("fuse", "-p openai:w1,anthropic:w2,gemini:w3 -j openai:wj -m merge -o r", "2+2?")
    view = magics.last_view
    tab = view.tab
    assert tab.titles == ("Overview", "Fused", "Judge", "w1", "w2", "w3", "Cost & latency")
    overview, fused, judge, w1, w2, w3, ledger = (widget_html(c) for c in tab.children)
    assert all(f"<b>{name}</b>" in overview for name in ("w1", "w2", "w3", "judge"))
    assert "4" in fused and "A and B agree on 4" in judge and "wj" in judge
    assert "<strong>4</strong>" in w1 and "done" in w1
    assert "onerror" not in w2 or "&lt;img" in w2  # model HTML is inert
    assert "<img" not in w2
    assert "failed" in w3 and "exploded" in w3
    assert ledger.count("<tr") == 1 + 4 + 2  # header, 3 members + judge, totals + overhead
    # the cell's own result repeats only the stable summary; the view holds the report
    assert r._repr_mimebundle_() == {"text/plain": r.summary()}
    later = r._repr_mimebundle_()  # shown again in a later cell: the full report
    assert "exploded" in later["text/plain"] and "<table" in later["text/html"]
    assert "exploded" in view._repr_mimebundle_()["text/plain"]
    capsys.readouterr()


def test_ipython_config_file_values_apply(shell: InteractiveShell) -> None:
    from traitlets.config import Config

    cfg = Config()
    cfg.FusionMagics.timeout = 33.0
    cfg.FusionMagics.judge = "vote"
    saved = shell.config
    try:
        shell.config = cfg  # what ipython_config.py's c.FusionMagics.* lines produce
        fresh = FusionMagics(shell)
        assert fresh.timeout == 33.0 and fresh.settings().judge == "vote"
    finally:
        shell.configurables.remove(fresh)
        shell.config = saved


def test_an_interrupted_view_says_it_stopped(shell: InteractiveShell, emulator_env: Emulator) -> None:
    magics = magics_of(shell)
    magics.view = "widgets"
    emulator_env.script("hx", ModelScript(faults=[Fault("hang")]))
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(FusionInterrupted, match="0 of 2 answers done, 2 cancelled; the partial result is in r"):
        shell.run_cell_magic("fuse", "-p openai:hx,openai:hx -j vote -o r", "never answered")
    view = magics.last_view
    assert "stopped: cancelled" in view.status.value
    assert all(p.status == "cancelled" for p in view.members.values())
    # The saved output is the partial run's static report, never a widget a reopened notebook cannot show.
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle and "hx" in bundle["text/html"]
    assert [x.status for x in shell.user_ns["r"].responses] == ["cancelled", "cancelled"]


@pytest.mark.parametrize("line", ["-p openai:a,local:gemma3 -j vote", "-p local:/no/such/model.gguf -j vote",
                                  "-p openai:a,openai:b -j local:gemma3"])
def test_an_unknown_local_model_is_refused_before_anything_starts(
    shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("fuse", line, "hi")
    message = str(info.value)
    assert type(info.value) is UsageError and "\n" not in message
    assert "local:gemma3-270m" in message and "local:/path/to/model.gguf" in message  # the valid forms
    assert emulator_env.requests == []
    assert local.current_worker("gemma3") is None and local.current_worker("/no/such/model.gguf") is None
    assert capsys.readouterr() == ("", "")  # no "fusing ..." or "judging ..." line before the error


def test_estimate_counts_the_local_models_few_shot_prompt(shell: InteractiveShell) -> None:
    est = shell.run_cell_magic("fuse", "-p local:gemma3-270m --self 2 -j vote --estimate", "hi")
    estimated = est.rows[0]["est_input_tokens"]
    r = shell.run_cell_magic("fuse", "-p local:gemma3-270m --self 2 -j vote --max-tokens 2", "hi")
    sent = r.responses[0]
    assert sent.tokens_source == "reported"  # llama.cpp's own count of the prompt it was sent
    assert sent.input_tokens is not None and sent.input_tokens > 50
    assert isinstance(estimated, int) and abs(estimated - sent.input_tokens) <= 0.2 * sent.input_tokens
    # HTTP members keep characters / 4 of the prompt itself
    http = shell.run_cell_magic("fuse", "-p openai:gpt-4o,openai:gpt-4o -j vote --estimate", "hi")
    assert http.rows[0]["est_input_tokens"] == 1


def test_the_no_key_notice_is_printed_once_per_kernel(shell: InteractiveShell,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    magics = magics_of(shell)
    magics.notices_shown.clear()  # as in a fresh kernel
    magics.max_tokens = 2
    first = shell.run_cell_magic("fuse", "", "What is 2+2?")
    second = shell.run_cell_magic("fuse", "", "What is 3+3?")
    printed = capsys.readouterr()
    assert (printed.out + printed.err).count("No API key set") == 1
    assert first.pool == ["local:gemma3-270m"] * 3 and first.judge == "vote"
    # the result's report does not repeat the notice printed above
    for r in (first, second):
        assert not any("No API key" in w for w in r.warnings) and "No API key" not in r.to_text()


def test_the_python_api_keeps_the_notice_in_the_result() -> None:
    import fusion_magic

    r = fusion_magic.fuse("What is 2+2?", max_tokens=2)
    assert r.warnings and r.warnings[0].startswith("No API key set: using the offline pool")
