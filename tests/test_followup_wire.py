"""Follow-up turns on the wire, through real sockets: ``r.ask(...)`` and ``%%fuse --continue r`` send each member
the whole thread in its provider's shape (shared/reference/attachments.md §8), the attachments in the first user
turn only, and Anthropic's cache point on the last user turn; cached input tokens come back in each family's own
usage shape and reach the records."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.fusion.result import FusionResult
from fusion_magic.testing import Emulator, ModelScript, RecordedRequest
from fusion_magic.testing.judges import content_judge

FAST = Settings(max_retries=0, timeout=20)
POOL = ["openai:gpt-4o", "anthropic:claude-x", "gemini:gem", "openrouter:t/delta"]
REPLIES = {"gpt-4o": "Alpha says 42.", "claude-x": "Beta says 41.", "gem": "Gamma says 40.",
           "t/delta": "Delta says 39."}
FIRST = "What does the chart show?"
NOTES = "x = 42\n"
FIRST_TEXT = f"{FIRST}\n\nnotes.py:\n```python\nx = 42\n```"


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 8), "navy").save(out, format="JPEG")
    return out.getvalue()


JPEG_B64 = base64.b64encode(jpeg()).decode("ascii")


@pytest.fixture
def chart(tmp_path: Path) -> list[Path]:
    """A JPEG saved as chart.png and a text file, in the working folder."""
    (tmp_path / "chart.png").write_bytes(jpeg())
    (tmp_path / "notes.py").write_text(NOTES, encoding="utf-8")
    return [tmp_path / "chart.png", tmp_path / "notes.py"]


def script(emu: Emulator, *, mode_merged: str | None = None) -> None:
    for model, reply in REPLIES.items():
        emu.script(model, ModelScript(reply=reply))
    emu.script("judge", ModelScript(reply=content_judge("Alpha", merged=mode_merged)))


def sent(emu: Emulator, since: int, model: str) -> dict[str, Any]:
    """The body of the one chat request ``model`` got after the first ``since`` requests."""
    found: list[RecordedRequest] = [q for q in emu.requests[since:] if q.model == model and q.method == "POST"]
    assert len(found) == 1 and found[0].status == 200, [(q.model, q.status) for q in emu.requests[since:]]
    body = found[0].body
    assert isinstance(body, dict)
    return body


def openai_first_turn() -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": FIRST_TEXT},
                                        {"type": "image_url",
                                         "image_url": {"url": f"data:image/jpeg;base64,{JPEG_B64}"}}]}


def anthropic_first_turn() -> dict[str, Any]:
    return {"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG_B64}},
        {"type": "text", "text": FIRST_TEXT}]}


def gemini_first_turn() -> dict[str, Any]:
    return {"role": "user", "parts": [{"inline_data": {"mime_type": "image/jpeg", "data": JPEG_B64}},
                                      {"text": FIRST_TEXT}]}


def assert_thread(emu: Emulator, since: int, answers: dict[str, list[str]], prompts: list[str]) -> None:
    """Each member's request after ``since``: the first user turn with the attachments, then for each earlier
    run its assistant answer (``answers[model]``) and the next prompt, in its provider's shape."""
    for model in ("gpt-4o", "t/delta"):
        later: list[dict[str, Any]] = []
        for answer, prompt in zip(answers[model], prompts, strict=True):
            later += [{"role": "assistant", "content": answer}, {"role": "user", "content": prompt}]
        assert sent(emu, since, model)["messages"] == [openai_first_turn(), *later]

    later = []
    for answer, prompt in zip(answers["claude-x"], prompts, strict=True):
        later += [{"role": "assistant", "content": answer}, {"role": "user", "content": prompt}]
    # Anthropic caches only where asked: the last block of the thread so far (the judge's next request repeats
    # it) and of the last user turn, and nowhere else.
    later[-2] = {"role": "assistant", "content": [{"type": "text", "text": answers["claude-x"][-1],
                                                   "cache_control": {"type": "ephemeral"}}]}
    later[-1] = {"role": "user", "content": [{"type": "text", "text": prompts[-1],
                                              "cache_control": {"type": "ephemeral"}}]}
    assert sent(emu, since, "claude-x")["messages"] == [anthropic_first_turn(), *later]

    later = []
    for answer, prompt in zip(answers["gem"], prompts, strict=True):
        later += [{"role": "model", "parts": [{"text": answer}]}, {"role": "user", "parts": [{"text": prompt}]}]
    assert sent(emu, since, "gem")["contents"] == [gemini_first_turn(), *later]


def test_ask_sends_each_member_the_fused_thread_in_its_shape(emulator_env: Emulator, chart: list[Path]) -> None:
    script(emulator_env)
    r = fusion_magic.fuse(FIRST, pool=POOL, judge="openai:judge", settings=FAST, attach=chart)
    assert r.answer == "Alpha says 42." and not r.degraded
    n = len(emulator_env.requests)
    r2 = r.ask("Why?")
    assert r2.n_ok == 4 and not r2.degraded
    fused = {model: [r.answer] for model in REPLIES}
    assert_thread(emulator_env, n, fused, ["Why?"])
    assert r2.parent is r and r2.thread == "fused" and r2.turns == [r, r2] and r.turns == [r]

    # A third turn: five turns, the attachments still in the first only, each fused answer in its place.
    n = len(emulator_env.requests)
    r3 = r2.ask("And then?")
    assert_thread(emulator_env, n, {model: [r.answer, r2.answer] for model in REPLIES}, ["Why?", "And then?"])
    assert len(sent(emulator_env, n, "gpt-4o")["messages"]) == 5
    assert r3.parent is r2 and r3.turns == [r, r2, r3]


def test_own_thread_gives_each_member_its_own_answer_and_the_judge_the_fused_one(
        emulator_env: Emulator, chart: list[Path]) -> None:
    script(emulator_env)
    r = fusion_magic.fuse(FIRST, pool=POOL, judge="openai:judge", settings=FAST, attach=chart)
    n = len(emulator_env.requests)
    r2 = r.ask("Why?", thread="own")
    assert r2.thread == "own" and r2.parent is r
    assert_thread(emulator_env, n, {model: [reply] for model, reply in REPLIES.items()}, ["Why?"])
    judge = sent(emulator_env, n, "judge")["messages"]
    assert [m["role"] for m in judge] == ["system", "user", "assistant", "user"]
    assert judge[1] == openai_first_turn() and judge[2] == {"role": "assistant", "content": r.answer}
    assert "## Question\nWhy?" in judge[3]["content"]


def test_a_follow_up_defaults_to_the_earlier_runs_pool_judge_and_mode(emulator_env: Emulator) -> None:
    script(emulator_env, mode_merged="Merged: 42.")
    pool = ["openai:gpt-4o", "gemini:gem"]
    r = fusion_magic.fuse(FIRST, pool=pool, judge="openai:judge", mode="merge", settings=FAST)
    assert r.answer == "Merged: 42."
    n = len(emulator_env.requests)
    r2 = r.ask("Why?")
    assert r2.pool == pool and r2.judge == "openai:judge" and r2.mode == "merge"
    assert sorted(q.model or "" for q in emulator_env.requests[n:]) == ["gem", "gpt-4o", "judge"]
    # No attachments: the first turn is plain text in every shape.
    assert sent(emulator_env, n, "gpt-4o")["messages"] == [
        {"role": "user", "content": FIRST}, {"role": "assistant", "content": "Merged: 42."},
        {"role": "user", "content": "Why?"}]
    assert [c["role"] for c in sent(emulator_env, n, "gem")["contents"]] == ["user", "model", "user"]


# ---- %%fuse --continue -------------------------------------------------------------------------------------


def test_continue_in_the_magic_sends_the_thread(shell: InteractiveShell, emulator_env: Emulator,
                                                chart: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(chart[0].parent)
    script(emulator_env)
    shell.run_cell_magic("fuse", f"-p {','.join(POOL)} -j openai:judge --attach chart.png,notes.py -o r", FIRST)
    r = shell.user_ns["r"]
    assert isinstance(r, FusionResult) and r.answer == "Alpha says 42."
    n = len(emulator_env.requests)
    try:
        r2 = shell.run_cell_magic("fuse", "--continue r -o out", "Why?")
        assert isinstance(r2, FusionResult) and shell.user_ns["out"] is r2
        assert r2.parent is r and r2.pool == POOL and r2.judge == "openai:judge"
        assert_thread(emulator_env, n, {model: [r.answer] for model in REPLIES}, ["Why?"])
    finally:
        shell.user_ns.pop("out", None)


@pytest.mark.parametrize(("value", "message"), [(None, "nope"), (5, "nope")], ids=["undefined", "not a result"])
def test_continue_needs_a_fusion_result(shell: InteractiveShell, emulator_env: Emulator, value: Any,
                                        message: str) -> None:
    if value is not None:
        shell.user_ns["nope"] = value
    try:
        with pytest.raises(UsageError, match=message) as info:
            shell.run_cell_magic("fuse", "--continue nope", "Why?")
    finally:
        shell.user_ns.pop("nope", None)
    assert type(info.value) is UsageError and "\n" not in str(info.value)
    assert emulator_env.requests == []


def test_own_thread_without_a_run_to_continue_is_one_line(shell: InteractiveShell, emulator_env: Emulator) -> None:
    with pytest.raises(UsageError, match="--thread own is for a follow-up: add --continue NAME") as info:
        shell.run_cell_magic("fuse", "-p openai:gpt-4o -j vote --thread own", "Why?")
    assert type(info.value) is UsageError and "\n" not in str(info.value)
    assert emulator_env.requests == []


def test_a_run_with_no_fused_answer_continues_only_on_its_own_threads(emulator_env: Emulator) -> None:
    emulator_env.script("gpt-4o", ModelScript(reply="Blue, because of scattering."))
    emulator_env.script("t/delta", ModelScript(reply="Rayleigh scattering makes it blue."))
    r = fusion_magic.fuse("Why is the sky blue?", pool=["openai:gpt-4o", "openrouter:t/delta"], judge="vote",
                          settings=FAST)
    assert r.answer == "" and r.verdict is not None and r.verdict.undecided  # free text: the vote picks none
    n = len(emulator_env.requests)
    with pytest.raises(ConfigError, match=r"no fused answer .* --thread own"):
        r.ask("Shorter?")
    assert len(emulator_env.requests) == n
    r2 = r.ask("Shorter?", thread="own")
    assert r2.thread == "own" and r2.n_ok == 2
    own = sent(emulator_env, n, "gpt-4o")["messages"]
    assert own[1] == {"role": "assistant", "content": "Blue, because of scattering."}


# ---- cached input tokens, in each family's usage shape ------------------------------------------------------


CACHED = ModelScript(reply="ok", input_tokens=1200, cached_input_tokens=1000, cache_write_tokens=150)


def test_cached_tokens_of_a_follow_up_reach_every_record(emulator_env: Emulator) -> None:
    script(emulator_env)
    r = fusion_magic.fuse(FIRST, pool=POOL, judge="openai:judge", settings=FAST)
    for model in REPLIES:
        emulator_env.script(model, CACHED)
    r2 = r.ask("Why?", judge="vote")
    # Every parser reports the whole prompt and its cached part, whichever way its family splits them.
    assert {x.model: (x.input_tokens, x.cached_input_tokens) for x in r2.responses} == {
        m: (1200, 1000) for m in POOL}


@pytest.fixture
def http(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client


def test_each_family_spells_cached_tokens_its_own_way(http: httpx.Client, emulator: Emulator) -> None:
    emulator.script("m", CACHED)
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    auth = {"Authorization": "Bearer k"}
    usage = http.post("/openai/v1/chat/completions", headers=auth, json=chat).json()["usage"]
    assert usage["prompt_tokens"] == 1200 and usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    usage = http.post("/openrouter/api/v1/chat/completions", headers=auth, json=chat).json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000, "cache_write_tokens": 150}
    # Anthropic's input_tokens leaves out both the cache read and the cache write.
    usage = http.post("/anthropic/v1/messages", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
                      json={**chat, "max_tokens": 16}).json()["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) \
        == (50, 1000, 150)
    assert usage["cache_creation"]["ephemeral_5m_input_tokens"] == 150
    usage = http.post("/gemini/v1beta/models/m:generateContent", headers={"x-goog-api-key": "k"},
                      json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).json()["usageMetadata"]
    assert usage["promptTokenCount"] == 1200 and usage["cachedContentTokenCount"] == 1000
    # Unscripted: nothing cached, and Gemini leaves the zero count out as protobuf JSON does.
    emulator.script("m", ModelScript(reply="ok"))
    usage = http.post("/gemini/v1beta/models/m:generateContent", headers={"x-goog-api-key": "k"},
                      json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).json()["usageMetadata"]
    assert "cachedContentTokenCount" not in usage


def test_the_run_log_links_the_turns_and_names_attachments_by_hash(emulator_env: Emulator, chart: list[Path],
                                                                   tmp_path: Path) -> None:
    script(emulator_env)
    logged = Settings(max_retries=0, timeout=20, run_log=str(tmp_path / "runs.sqlite"))
    r = fusion_magic.fuse(FIRST, pool=POOL, judge="openai:judge", settings=logged, attach=chart)
    r2 = r.ask("Why?", settings=logged)
    runs = fusion_magic.history(logged).set_index("run_id")
    first, second = (json.loads(runs.loc[x.run_id, "options"]) for x in (r, r2))
    assert [a["name"] for a in first["attachments"]] == [p.name for p in chart]
    assert [a["sha256"] for a in first["attachments"]] == [a.sha256 for a in r.attachments]
    assert (second["parent_run"], second["thread"]) == (r.run_id, "fused") and "attachments" not in second
    # Names and hashes only: the bytes (in any encoding) are nowhere in the log.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("runs.sqlite*"))  # the WAL too
    for a in r.attachments:
        if a.binary:
            assert a.base64[:40].encode() not in raw and a.data[:64] not in raw


def test_ask_keeps_the_first_runs_keys_and_settings(emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    key = "sk-kept-for-the-thread-0123456789"
    emulator.script("gpt-4o", ModelScript(reply=f"Blue. (your key was {key})"))
    r = fusion_magic.fuse("Why is the sky blue?", pool=["openai:gpt-4o"], judge="vote", keys={"openai": key},
                          settings=FAST)
    r2 = r.ask("Why?")  # no key in the environment: the first run's keys= carry over
    assert r2.n_ok == 1 and r2.settings is not None and r2.settings.max_retries == FAST.max_retries
    # The thread's transcript never holds the key a model echoed.
    r2.export(tmp_path / "thread.md")
    text = (tmp_path / "thread.md").read_text(encoding="utf-8")
    assert key not in text and "<redacted>" in text


def test_the_judge_reads_the_questions_text_files_with_the_question_not_after_its_task(
        emulator_env: Emulator, chart: list[Path]) -> None:
    script(emulator_env)
    fusion_magic.fuse(FIRST, pool=POOL, judge="openai:judge", settings=FAST, attach=chart)
    [judge] = [r.body for r in emulator_env.requests if r.method == "POST" and r.body.get("model") == "judge"]
    last = judge["messages"][-1]["content"]
    text = next(p["text"] for p in last if p["type"] == "text")
    assert text.index("## Question") < text.index("notes.py:") < text.index("## Answers") < text.index("## Task")
    assert [p["type"] for p in last].count("image_url") == 1  # the chart is still a part of the judge's turn
