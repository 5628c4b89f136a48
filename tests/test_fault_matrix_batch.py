"""The batch APIs' fault matrix (issue #21): every fault a batch can meet, at submit, at poll and at the results,
against each of the four batch APIs (OpenAI, Anthropic, Gemini, OpenRouter), in a 2-provider pool so the other
provider's rows show the run degrades instead of failing. Each cell is one batch evaluation on the emulator, its
outcome read back as a short word from what happened (rows, call records, the emulator's log and counters, the
receipts), checked against what is expected, and printed as one table at the end:

    provider    submit 400       ...  submit 500*          ...  poll 401 x2                      ...
    openai      refused: bad_... ...  looked up, adopted   ...  rows failed: auth, receipt kept  ...

In every cell: no request id submitted twice, the other provider's rows all answered, the scripted fault met, and
the receipts open exactly where a paid batch could not be read (a rerun then fetches it, creating nothing).
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from test_batch_eval import FAST, QUESTIONS, A, B, C, D, member, script

from fusion_magic.calls.call import CallContext
from fusion_magic.calls.receipts import Receipts
from fusion_magic.calls.runlog import RunLog
from fusion_magic.core.runner import HTTP_LIMITS
from fusion_magic.evaluation import EvalPlan, EvalResult, plan_evaluation, run_evaluation
from fusion_magic.testing import Emulator, Fault, ModelScript

FAMILIES = ("openai", "anthropic", "gemini", "openrouter")
MODEL = {"openai": A, "anthropic": B, "gemini": C, "openrouter": D}
# The pool's other provider, whose rows must finish whatever happens to the first one's batch.
OTHER = {"openai": B, "anthropic": A, "gemini": A, "openrouter": A}
BASE_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "gemini": "GEMINI_BASE_URL",
            "openrouter": "OPENROUTER_BASE_URL"}
# The list route a lost submit is looked up on (``BatchAPI.find``), as the emulator logs its path.
LIST_PATH = {"openai": "/openai/v1/batches", "anthropic": "/anthropic/v1/messages/batches",
             "gemini": "/gemini/v1beta/batches", "openrouter": "/openrouter/api/v1/batches"}
QS = QUESTIONS.iloc[:3]
N = len(QS)
# Short enough that a hung poll costs a second, long enough for any loopback answer.
TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Cell:
    """One column: the fault scripted before the run (``setup(emu, family)``), and the word expected of each
    provider (``expect``: one word for all, or per family)."""

    name: str
    stage: str
    setup: Callable[[Emulator, str], None]
    expect: str | dict[str, str]
    retry_live: bool = False
    closed_port: bool = False
    # What every failed call of the faulted provider says, beside its typed kind.
    says: str | None = None

    def expected(self, family: str) -> str:
        return self.expect if isinstance(self.expect, str) else self.expect[family]


def at(route: str, **fault: Any) -> Callable[[Emulator, str], None]:
    def setup(emu: Emulator, family: str) -> None:
        emu.batches.fault_next(family, route, **fault)  # type: ignore[arg-type]

    return setup


def nothing(emu: Emulator, family: str) -> None:
    pass


def one_error_line(emu: Emulator, family: str) -> None:
    name = MODEL[family].split(":", 1)[1]
    emu.script(name, ModelScript(reply=member(name), faults=[Fault("status", status=500, skip=1, times=1)]))


def whole_batch_fails(emu: Emulator, family: str) -> None:
    emu.batches.fail_next(family, "The batch failed: internal error.")


def expires(emu: Emulator, family: str) -> None:
    emu.batches.expire_next(family, completed=1)


ADOPTED = "looked up, adopted"
CELLS = [
    # At submit: a refusal is final (nothing was created, nothing is paid), a 429 is waited out, and anything after
    # which the provider may hold the batch is looked up before a thought of sending it again.
    Cell("submit 400", "submit", at("create", status=400), "refused: bad_request"),
    Cell("submit 401", "submit", at("create", status=401), "refused: auth"),
    Cell("submit 402", "submit", at("create", status=402), "refused: payment"),
    Cell("submit 403", "submit", at("create", status=403), "refused: auth"),
    Cell("submit 404", "submit", at("create", status=404), "refused: bad_request"),
    Cell("submit 408", "submit", at("create", status=408), "retried→ok"),  # refused before anything was done
    Cell("submit 429+RA", "submit", at("create", status=429, retry_after=0.05), "retried→ok"),
    Cell("submit 500*", "submit", at("create", status=500, created=True), ADOPTED),
    Cell("submit 502*", "submit", at("create", status=502, created=True), ADOPTED),
    Cell("submit 503", "submit", at("create", status=503), "looked up, lost: protocol, receipt kept",
         says="server: Service unavailable.; the provider may have accepted the batch but does not list it yet, so "
              "it is not sent again"),
    Cell("submit 529", "submit", at("create", status=529), "looked up, lost: protocol, receipt kept"),
    Cell("submit bad JSON*", "submit", at("create", malformed=True, created=True), ADOPTED),
    Cell("submit reset*", "submit", at("create", cut=True, created=True), ADOPTED),
    Cell("submit conn refused", "submit", nothing, "never sent: server", closed_port=True,
         says="could not connect before a response"),
    # At poll: the batch is paid for, so passing trouble is waited out; a key that stops working fails the rows
    # but keeps the receipt for a resume.
    Cell("poll 429+RA", "poll", at("poll", status=429, retry_after=0.05), "went on→ok"),
    Cell("poll 429", "poll", at("poll", status=429), "went on→ok"),
    Cell("poll 500", "poll", at("poll", status=500), "went on→ok"),
    Cell("poll 503", "poll", at("poll", status=503), "went on→ok"),
    Cell("poll 401 x2", "poll", at("poll", status=401, times=2), "rows failed: auth, receipt kept",
         says="goes on at the provider and its receipt is kept: a resume fetches it"),
    Cell("poll hang", "poll", at("poll", hang=True), "went on→ok"),
    Cell("poll bad JSON", "poll", at("poll", malformed=True), "went on→ok"),
    # At the results.
    Cell("results 1 error line", "results", one_error_line, "1 of 3 failed: server"),
    Cell("results batch failed", "results", whole_batch_fails,
         {"openai": "rows failed: protocol", "anthropic": "rows failed: server", "gemini": "rows failed: protocol",
          "openrouter": "rows failed: protocol"}, says="The batch failed: internal error."),
    Cell("results expired", "results", expires,
         {"openai": "2 asked live→ok", "anthropic": "2 asked live→ok", "gemini": "3 asked live→ok",
          "openrouter": "2 asked live→ok"}, retry_live=True),
    Cell("results cut", "results", at("results", cut=True), "read again→ok"),
]


@dataclass
class Observed:
    """What one cell's run did, as read back from its result, the emulator and the run log."""

    word: str
    failed: int
    kinds: list[str]
    creations: int
    open_receipts: list[str] = field(default_factory=list)


MATRIX: dict[tuple[str, str], tuple[str, str]] = {}  # (family, cell) -> (observed word, expected word)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(p: EvalPlan) -> EvalResult:
    async def go() -> EvalResult:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=HTTP_LIMITS, follow_redirects=False) as client:
            return await run_evaluation(p, CallContext(client=client, settings=p.settings))

    return asyncio.run(go())


def chat_requests(emu: Emulator, model: str) -> int:
    """The live chat calls the emulator served for ``model`` (its name as sent on the wire)."""
    live = ("/chat/completions", "/v1/messages", ":streamGenerateContent", ":generateContent")
    return sum(1 for r in emu.requests if r.path.endswith(live) and model in f"{r.model} {r.path}")


def observe(emu: Emulator, family: str, cell: Cell, result: EvalResult, receipts: Receipts) -> Observed:
    target = MODEL[family]
    rows = result.rows[result.rows["strategy"] == f"single:{target}"]
    assert len(rows) == N
    failed_calls = [c for c in result.calls if c.model == target and c.failure is not None]
    failed = int(rows["error"].notna().sum())
    assert failed == len(failed_calls)  # every failed row is one failed call, and its error is on the row
    kinds = sorted({str(c.failure) for c in failed_calls})
    batch_family = f"{family}-batch"
    mine = [r for r in emu.requests if r.family == batch_family]
    looked_up = any(r.method == "GET" and r.path == LIST_PATH[family] for r in mine)
    creates = [r for r in mine if r.method == "POST" and r.path.endswith(("/batches", ":batchGenerateContent"))]
    asked_live = chat_requests(emu, target.split(":", 1)[1])
    opened = [f"{r.provider}:{r.state}" for r in receipts.open_receipts()]
    kept = ", receipt kept" if any(r.startswith(f"{family}:") for r in opened) else ""
    what = ", ".join(kinds)
    creations = emu.batches.creations(family)
    if looked_up:
        word = ADOPTED if failed == 0 and creations == 1 else f"looked up, lost: {what}{kept}"
    elif not mine and failed == N:
        word = f"never sent: {what}{kept}"  # not one request reached the provider
    elif creations == 0 and failed == N:
        word = f"refused: {what}{kept}"
    elif failed == 0 and asked_live:
        word = f"{asked_live} asked live→ok"
    elif failed == 0:
        word = {"submit": "retried→ok" if len(creates) > 1 else "ok", "poll": "went on→ok",
                "results": "read again→ok"}[cell.stage]
    elif failed == N:
        word = f"rows failed: {what}{kept}"
    else:
        word = f"{failed} of {N} failed: {what}{kept}"
    return Observed(word, failed, kinds, creations, opened)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_cell(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch, cell: Cell, family: str) -> None:
    emu = emulator_env
    script(emu)
    cell.setup(emu, family)
    if cell.closed_port:
        dead = f"http://127.0.0.1:{closed_port()}"
        monkeypatch.setenv(BASE_ENV[family], emu.env()[BASE_ENV[family]].replace(emu.url, dead))
    target, other = MODEL[family], OTHER[family]
    p = plan_evaluation(QS, FAST, pool=[target, other], strategies=["single"], batch=True, poll_s=0.01,
                        retry_live=cell.retry_live)
    path = p.settings.run_log_path()
    assert path is not None
    receipts = Receipts(RunLog(path), p.identity)

    result = run(p)
    seen = observe(emu, family, cell, result, receipts)
    MATRIX[(family, cell.name)] = (seen.word, cell.expected(family))

    # The fault was met, and what it did is what is expected of this provider.
    assert emu.batches.faults_left() == 0
    assert seen.word == cell.expected(family), f"{family} / {cell.name}: {seen.word}"
    # Nothing paid twice: no request id in two batches, whatever the fault.
    other_family = other.split(":", 1)[0]
    for fam in (family, other_family):
        ids = emu.batches.submitted_ids(fam)
        assert not [i for i, n in Counter(ids).items() if n > 1], f"{fam}: an id submitted twice"
    assert emu.batches.creations(other_family) == 1
    # The other provider's rows are all answered: the run degrades, it does not fail.
    others = result.rows[result.rows["strategy"] == f"single:{other}"]
    assert len(others) == N and others["error"].isna().all()
    # Each failed row says why in one line; its call record names the provider once (no error wrapped in another).
    assert all(str(e) and "\n" not in str(e) for e in result.rows["error"].dropna())
    failed = [c.error for c in result.calls if c.failure is not None]
    assert all(e and e.startswith(family) and e.count(" HTTP ") <= 1 for e in failed), failed
    if cell.says is not None:
        assert failed and all(cell.says in str(e) for e in failed), failed
    # Receipts stay open only where a paid batch could not be read: then the faulted provider's, and the other
    # provider's finished one with it (the evaluation is not over: a rerun reads it again rather than pay again).
    kept = [r for r in seen.open_receipts if r.startswith(f"{family}:")]
    assert ("receipt kept" in seen.word) == bool(kept)
    assert all(r == f"{other_family}:done" for r in seen.open_receipts if r not in kept)
    if kept and seen.creations == 1:
        # Paid for and kept: a rerun of the same evaluation fetches both batches, submitting nothing.
        again = run(p)
        assert again.rows["error"].isna().all()
        assert emu.batches.creations(family) == 1 and emu.batches.creations(other_family) == 1
        assert receipts.open_receipts() == []


def test_the_matrix_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """The table of every cell run above (rows providers, columns faults) and one line that counts them."""
    names = [c.name for c in CELLS if any((f, c.name) in MATRIX for f in FAMILIES)]
    families = [f for f in FAMILIES if any((f, n) in MATRIX for n in names)]
    if not names:
        pytest.skip("no cell of the matrix ran (deselected)")
    wrong = [(f, n) for (f, n), (seen, want) in MATRIX.items() if seen != want]
    width = {n: max(len(n), *(len(MATRIX.get((f, n), ("-", ""))[0]) for f in families)) for n in names}
    lines = ["", "Batch APIs' fault matrix (* = the provider created the batch before the fault)"]
    for stage in ("submit", "poll", "results"):
        cols = [n for n in names if n.startswith(stage)]
        if not cols:
            continue
        lines.append("")
        lines.append("  ".join([f"{'provider':<10}", *(f"{n:<{width[n]}}" for n in cols)]).rstrip())
        for f in families:
            cells = [MATRIX.get((f, n), ("-", ""))[0] for n in cols]
            lines.append("  ".join([f"{f:<10}", *(f"{c:<{width[n]}}" for c, n in zip(cells, cols, strict=True))])
                         .rstrip())
    ran = len(MATRIX)
    verdict = "all as expected" if not wrong else f"{len(wrong)} not as expected: {wrong}"
    lines.append("")
    lines.append(f"{len(names)} faults x {len(families)} providers = {ran} cells, {verdict}")
    with capsys.disabled():
        print("\n".join(lines))
    assert not wrong
