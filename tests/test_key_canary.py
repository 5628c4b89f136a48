"""Keys never leak (issue #21, point 3): a distinct canary key per provider, the emulator accepting exactly those,
one shell session that does everything a user does (a fused cell with a judge and a member whose 401 echoes its
key, a follow-up, videos, a batch evaluation, the history and result exports, the cache, a failing cell), then
every artifact it left is scanned for every canary: 0 occurrences.

Also: the cache keys a local server's and a hosted API's answers apart, even for the same model name."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import tempfile
import traceback
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.calls.cache import CallCache, moved_endpoint, request_key
from fusion_magic.calls.call import prepare
from fusion_magic.calls.settings import Settings
from fusion_magic.core.record import CallRecord
from fusion_magic.fusion.result import FusionResult
from fusion_magic.providers.base import ChatRequest, Message
from fusion_magic.testing import Emulator, Fault, ModelScript, VideoScript

# One long, unique canary per key variable; the emulator accepts exactly these.
CANARIES = {
    "OPENROUTER_API_KEY": "sk-or-canary-openrouter-7f3a9c1e5b2d4a6f8e0c9b7a5d3f1e2c",
    "OPENAI_API_KEY": "sk-canary-openai-7f3a9c2d8e4b6a1f0c5e9d3b7a2f4e6c8d",
    "ANTHROPIC_API_KEY": "sk-ant-canary-anthropic-3b9e7c1a5f2d8e4c6a0b9f7d3e1c5a",
    "GEMINI_API_KEY": "AIza-canary-gemini-9d2f4b6e8a1c3e5f7b9d0a2c4e6f8b1d3",
    "FAL_KEY": "fal-canary-id-5e1c7a3f:fal-canary-secret-9b2d6f4a8c0e1d3b5f7a",
    "RUNWAYML_API_SECRET": "key_canary_runway_" + "c4e8a2f6b0d9e1c3a5f7b9d2e4c6a8f0" * 3,
}
# Emulator family -> the variable whose canary it expects (batch APIs take their chat API's key).
FAMILY_KEYS = {
    "openrouter": "OPENROUTER_API_KEY", "openrouter_video": "OPENROUTER_API_KEY", "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY", "gemini-files": "GEMINI_API_KEY",
    "gemini-veo": "GEMINI_API_KEY", "gemini-interactions": "GEMINI_API_KEY", "fal": "FAL_KEY",
    "runway": "RUNWAYML_API_SECRET",
}
OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
FAL = "fal-ai/minimax/hailuo-02/standard/text-to-video"
RUNWAY = "gen4.5"


def needles() -> list[bytes]:
    """Every canary, and each half of fal's id:secret, as raw bytes (UTF-8; SQLite stores text so)."""
    out = {v.encode() for v in CANARIES.values()}
    out |= {part.encode() for part in CANARIES["FAL_KEY"].split(":")}
    return sorted(out)


class Scan:
    """The artifacts read, their bytes, and every canary found (where)."""

    def __init__(self) -> None:
        self.artifacts = 0
        self.bytes = 0
        self.leaks: list[str] = []

    def text(self, where: str, value: str | bytes) -> None:
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        self.artifacts += 1
        self.bytes += len(data)
        self.leaks += [f"{where}: {n.decode()[:24]}..." for n in needles() if n in data]

    def file(self, path: Path) -> None:
        if path.is_file():
            self.text(str(path), path.read_bytes())

    def tree(self, root: Path) -> None:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                self.file(path)


def runlog_tables(path: Path) -> str:
    """Every row of every table of the run log (receipts included), as text."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [f"{t}: {row!r}" for t in tables for row in db.execute(f'SELECT * FROM "{t}"')]
    return "\n".join(rows)


def test_no_canary_key_reaches_any_artifact(vshell: InteractiveShell, emulator_env: Emulator, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    emu, shell = emulator_env, vshell
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    emu.expected_keys.update({family: CANARIES[var] for family, var in FAMILY_KEYS.items()})
    caplog.set_level(logging.DEBUG)
    logging.getLogger("markdown_it").setLevel(logging.INFO)  # its DEBUG lines are parser steps, megabytes
    scan = Scan()
    outputs: list[tuple[str, str]] = []

    def shown(label: str, value: object) -> None:
        """Every face of a returned object: repr, text, HTML, Markdown, mimebundle."""
        outputs.append((f"{label} repr", repr(value)))
        outputs.append((f"{label} str", str(value)))
        for face in ("to_text", "_repr_html_", "_repr_markdown_", "to_markdown", "to_html"):
            method = getattr(value, face, None)
            if callable(method):
                outputs.append((f"{label} {face}", str(method())))
        bundle = getattr(value, "_repr_mimebundle_", None)
        if callable(bundle):
            outputs.append((f"{label} mimebundle", json.dumps(bundle(), default=str)))

    # 1. A fused cell over four providers with a judge; one member's 401 echoes the key it was sent.
    emu.script("m-openai", ModelScript(reply="It is 4."))
    emu.script("claude-m", ModelScript(reply="Four."))
    emu.script("gemini-m", ModelScript(reply="4"))
    echo = f"Incorrect API key provided: {CANARIES['OPENROUTER_API_KEY']}. Find your key at openrouter.ai/keys"
    emu.script("t/leaky", ModelScript(faults=[Fault("status", status=401, message=echo)]))
    emu.script("judge-j", ModelScript(reply='{"reasoning": "the answers agree", "winner": "A"}'))
    pool = "openai:m-openai,anthropic:claude-m,gemini:gemini-m,openrouter:t/leaky"
    r = shell.run_cell_magic("fuse", f"-p {pool} -j openai:judge-j --cache on -o r", "What is 2+2?")
    assert isinstance(r, FusionResult) and r.n_ok == 3
    # The leaky member failed with the provider's message, the key in it redacted (not the message dropped).
    assert any("Incorrect API key provided: <redacted>" in (resp.error or "") for resp in r.responses)
    shown("fuse", r)
    # The same cell again: the answers come from the cache now.
    again = shell.run_cell_magic("fuse", f"-p {pool} -j openai:judge-j --cache on", "What is 2+2?")
    shown("fuse cached", again)
    assert any((resp.cost_source or "").startswith("cache") for resp in again.responses)

    # 2. A follow-up.
    r2 = shell.run_cell_magic("fuse", "--continue r -o r2 --cache on", "And 3+3?")
    shown("continue", r2)

    # 3. Videos from three video providers; clips and sidecars go to tmp_path/videos.
    for model in (VEO, FAL, RUNWAY):
        emu.script(model, VideoScript(polls=1, clip_seconds=1.0))
    v = shell.run_cell_magic("video", f"-p gemini:{VEO},fal:{FAL},runway:{RUNWAY} -o v", "A paper boat")
    shown("video", v)

    # 4. A batch evaluation.
    emu.script("eval-a", ModelScript(reply="Final answer: 4"))
    emu.script("claude-e", ModelScript(reply="Final answer: 4"))
    shell.user_ns["qs"] = pd.DataFrame({"question": ["What is 2+2?", "What is 1+3?"], "reference": ["4", "4"]})
    ev = shell.run_line_magic("fuse", "eval qs -p openai:eval-a,anthropic:claude-e --strategies single "
                                      "--batch --poll 0.01 -o ev")
    shown("eval", ev)
    shown("eval summary", ev.summary.to_csv())

    # 5. Exports: the history and the result.
    exports = [tmp_path / "runs.jsonl", tmp_path / "runs.csv"]
    for dest in exports:
        shell.run_line_magic("fuse", f"history --export {dest}")
    shown("history", shell.run_line_magic("fuse", "history -n 50").to_csv())
    for suffix in (".md", ".jsonl", ".csv"):
        dest = tmp_path / f"r2{suffix}"
        r2.export(dest)
        exports.append(dest)
    shown("list", shell.run_line_magic("fuse", "list"))

    # 6. Failing cells. The user's own exception that quotes a key: IPython shows it as the user wrote it (not
    # ours to change, so not scanned), but what the extension keeps of it ({Err[N]}) and sends on must not.
    before = capsys.readouterr()
    failing = shell.run_cell("import os\nraise RuntimeError('boom ' + os.environ['OPENAI_API_KEY'])",
                             store_history=True)
    assert failing.error_in_exec is not None and CANARIES["OPENAI_API_KEY"] in capsys.readouterr().out
    count = failing.execution_count
    quoted = shell.run_cell_magic("fuse", "-p openai:m-openai -j vote", f"Why did this fail? {{Err[{count}]}}")
    shown("Err quoted", quoted)
    outputs += [(f"recorded Err[{n}]", text) for n, text in dict(shell.user_ns["_fusion_magic_errors"]).items()]
    # Our own exceptions, with their tracebacks: a call whose 401 echoes the key, raised through the API in a
    # cell (IPython prints the traceback and keeps sys.last_value; the record's error raised), and the same in
    # %%fuse, with raise-errors off and on.
    api_cell = shell.run_cell("import fusion_magic\nrec = fusion_magic.complete('openrouter:t/leaky', 'hi')\n"
                              "assert rec.ok, rec.error")
    shown("complete()", shell.user_ns.pop("rec"))
    every = shell.run_cell("%%fuse -p openrouter:t/leaky -j vote\nhi")
    monkeypatch.setenv("FUSION_MAGIC_RAISE_ERRORS", "1")
    raised = shell.run_cell("%%fuse -p openrouter:t/leaky -j vote\nhi")
    monkeypatch.delenv("FUSION_MAGIC_RAISE_ERRORS")
    for label, outcome in (("complete()", api_cell), ("%%fuse all failed", every), ("raise-errors", raised)):
        error = outcome.error_in_exec
        assert error is not None, label
        outputs.append((f"{label} traceback", "".join(traceback.format_exception(error))))
        outputs.append((f"{label} args", repr(error.args)))
    last = getattr(sys, "last_value", None)
    if last is not None:
        outputs.append(("sys.last_value", "".join(traceback.format_exception(last))))
    outputs += [("stdout before the user's error", before.out), ("stderr before the user's error", before.err)]

    # Scan: outputs, printed text, logs, files on disk, the run log's tables, leftover batch request files.
    printed = capsys.readouterr()
    outputs += [("stdout", printed.out), ("stderr", printed.err), ("caplog", caplog.text)]
    # What reached the providers: no body carries a key (the emulator's log already redacts key headers).
    outputs += [(f"request {q.family} {q.path}", json.dumps([q.body, q.query, q.headers], default=str))
                for q in emu.requests]
    outputs += [(f"log record {rec.name}", f"{rec.getMessage()} {rec.exc_text or ''}") for rec in caplog.records]
    for label, text in outputs:
        scan.text(label, text)
    for dest in exports:
        assert dest.is_file()
        scan.file(dest)
    runlog = tmp_path / "api_runs.sqlite"
    assert runlog.is_file()
    scan.text("run log tables", runlog_tables(runlog))
    for suffix in ("", "-wal", "-shm", "-journal"):
        scan.file(Path(f"{runlog}{suffix}"))
    cache_dirs = [tmp_path / "fusion_cache", tmp_path / ".fusion_cache"]
    assert any(d.is_dir() and any(d.rglob("*.json")) for d in cache_dirs), "the cache recorded nothing"
    for d in cache_dirs:
        scan.tree(d)
    videos = tmp_path / "videos"
    assert any(videos.glob("*.json")), "no video sidecars"
    scan.tree(videos)
    for leftover in Path(tempfile.gettempdir()).glob("fusion-batch-*"):
        if leftover.is_dir():
            scan.tree(leftover)
        else:
            scan.file(leftover)
    scan.tree(tmp_path / "user_data")

    with capsys.disabled():
        print(f"\ncanary scan: {scan.artifacts} artifacts, {scan.bytes} bytes, {len(scan.leaks)} leaks")
    assert scan.leaks == []
    # Every canary was really sent (so "0 leaks" means something): each family got requests with its key.
    assert {q.family for q in emu.requests} >= {"openai", "anthropic", "gemini", "openrouter", "fal", "runway"}


def test_a_local_and_a_hosted_model_of_the_same_name_never_share_an_answer(
        shell: InteractiveShell, emulator_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ollama:m`` and ``openai:m`` are different endpoints: neither replays the other's recorded answer; nor does
    ``openai:m`` at a local server (OPENAI_BASE_URL moved) replay the hosted API's, or the other way round."""
    request = ChatRequest(model="m", messages=(Message(role="user", content="hi"),))
    assert request_key("ollama:m", request) != request_key("openai:m", request)
    cache = CallCache(tmp_path / "c")
    cache.store("ollama:m", request, CallRecord(model="ollama:m", text="local answer", status="ok"))
    assert cache.lookup("openai:m", request) is None

    emulator_env.script("m", ModelScript(replies=["first answer", "second answer", "third answer"]))
    local = shell.run_cell_magic("fuse", "-p ollama:m -j vote --cache on", "Same question?")
    hosted = shell.run_cell_magic("fuse", "-p openai:m -j vote --cache on", "Same question?")
    assert local.answer == "first answer" and hosted.answer == "second answer"
    # The same id, openai:m, sent to another server (one that speaks OpenAI's protocol): asked, not replayed.
    monkeypatch.setenv("OPENAI_BASE_URL", emulator_env.url + "/openrouter/api/v1")
    elsewhere = shell.run_cell_magic("fuse", "-p openai:m -j vote --cache on", "Same question?")
    assert elsewhere.answer == "third answer"
    assert [q.family for q in emulator_env.requests] == ["ollama", "openai", "openrouter"]
    # Each replays its own.
    assert shell.run_cell_magic("fuse", "-p openai:m -j vote --cache on", "Same question?").answer == "third answer"
    monkeypatch.setenv("OPENAI_BASE_URL", emulator_env.url + "/openai/v1")
    assert shell.run_cell_magic("fuse", "-p openai:m -j vote --cache on", "Same question?").answer == "second answer"
    assert shell.run_cell_magic("fuse", "-p ollama:m -j vote --cache on", "Same question?").answer == "first answer"
    assert len(emulator_env.requests) == 3


def test_at_the_default_base_url_the_cache_key_is_what_it_always_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recordings made before the endpoint was part of the key still replay where nothing moved the provider."""
    request = ChatRequest(model="m", messages=(Message(role="user", content="hi"),))
    settings = Settings(keys={"openai": "sk-test"})

    def moved() -> str | None:
        target = prepare("openai:m", settings)
        return moved_endpoint(target.endpoint.base_url, target.spec.default_base_url)

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert moved() is None
    assert request_key("openai:m", request, moved()) == request_key("openai:m", request)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")
    assert moved() == "http://localhost:8000/v1"
    assert request_key("openai:m", request, moved()) != request_key("openai:m", request)
