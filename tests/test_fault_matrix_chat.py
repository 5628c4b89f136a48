"""The chat providers' fault matrix (issue #21): every fault against every chat provider, in one sweep.

Each cell is one real fused run, ``fusion_magic.fuse(prompt, pool=[faulty, healthy], judge="vote")``, against the
loopback emulator over real sockets: the faulty member meets one fault, the healthy one (another provider) answers.
A cell checks the faulty member's record (its failure kind, its attempts, the text that arrived before the fault,
its latency holding any wait), the same in the ledger, the healthy member finishing, and ``degraded``. The module
prints the table of outcomes at its end (rows providers, columns faults), also under ``-q``.

Faults the emulator cannot play itself are played on a real socket: a refused connection is a base URL on a port
nobody listens on, a reset is a relay in front of the emulator that sends a TCP RST once some text went through.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.record import Response
from fusion_magic.providers.registry import BUILTIN
from fusion_magic.testing import Emulator, Fault, ModelScript

# provider -> how a pool names its faulty member (``{}`` is the model as the wire spells it)
PROVIDERS: dict[str, str] = {
    "openrouter": "openrouter:t/{}",
    "openai": "openai:{}",
    "anthropic": "anthropic:{}",
    "gemini": "gemini:{}",
    "ollama": "ollama:{}",
}
REPLY = "AAAAABBBBBCCCCCDDDDDEEEEE"  # five chunks of five: a partial answer reads as whole chunks
KEPT = REPLY[:10]  # what arrived before a fault after two chunks
HEALTHY_REPLY = "The healthy member's answer."
RETRY_AFTER_S = 0.3
TIMEOUT_S = 0.5  # the whole-call deadline of the hang and drip cells
# One retry: a fault scripted for the first attempt only (times=1) then succeeds; a refused port fails twice.
SETTINGS = Settings(timeout=5.0, max_retries=1, retry_max_wait=2.0, run_log="off")
# The backoff's first wait when the server gives none (calls/call.py: 0.5 s, jitter down to 75 %).
MIN_BACKOFF_S = 0.5 * 0.75


@dataclass(frozen=True)
class Column:
    """One fault: how it is played (a scripted emulator ``Fault``, or on a real socket: ``socket``)."""

    name: str
    fault: Fault | None = None
    socket: str | None = None  # "refused" | "reset"
    timeout: float | None = None  # a shorter whole-call deadline for this cell


def status(code: int, retry_after: float | None = None) -> Fault:
    """A status fault on the first attempt only: a retry, where it is safe, then gets the answer."""
    return Fault("status", status=code, times=1, message=f"scripted {code}", retry_after=retry_after)


COLUMNS: list[Column] = [
    *(Column(str(code), status(code)) for code in (400, 401, 402, 403, 404, 408)),
    Column("429+RA", status(429, retry_after=RETRY_AFTER_S)),
    Column("429", status(429)),
    *(Column(str(code), status(code)) for code in (500, 502, 503, 529)),
    Column("malformed", Fault("malformed", after_chunks=2)),
    Column("cut", Fault("cut", after_chunks=2)),
    Column("error@200", Fault("error_chunk", status=503, after_chunks=2, message="went away mid-answer")),
    Column("refused", socket="refused"),
    Column("hang", Fault("hang"), timeout=TIMEOUT_S),
    Column("drip", Fault("drip", drip_s=0.02), timeout=TIMEOUT_S),
    Column("reset", socket="reset"),
]


@dataclass(frozen=True)
class Expect:
    """What a cell must end with: the faulty member's failure kind (None: it answered), attempts, the text it
    keeps (``prefix``: any prefix of the reply, a drip's bytes), the least latency its waits add up to."""

    kind: str | None
    attempts: int = 1
    text: str = ""
    prefix: bool = False
    min_latency: float = 0.0

    def word(self) -> str:
        """The table's word for the cell."""
        if self.kind is None:
            return "ok"
        word = self.kind
        if self.attempts > 1:
            word += f" x{self.attempts}"
        return word + (", text kept" if self.text else "")


def expect(provider: str, column: Column) -> Expect:
    """The expected outcome of one cell (the wire reference's cross-provider table, and the retry policy:
    retry only before the first text, only what is safe to send again)."""
    name = column.name
    if name in ("400", "404"):
        return Expect("bad_request")
    if name in ("401", "403"):
        return Expect("auth")
    if name == "402":
        return Expect("payment")
    if name == "429" and provider == "anthropic":
        # Anthropic's 429 without retry-after is its spend cap: waiting does not help (providers/chat/anthropic.py).
        return Expect("rate_limit")
    if name in ("408", "429", "500", "502", "503", "529"):
        return Expect(None, attempts=2, text=REPLY, min_latency=MIN_BACKOFF_S)
    if name == "429+RA":
        return Expect(None, attempts=2, text=REPLY, min_latency=RETRY_AFTER_S)
    if name in ("malformed", "cut", "reset"):
        return Expect("protocol", text=KEPT)
    if name == "error@200":
        return Expect("server", text=KEPT)
    if name == "refused":
        # Nothing reached a server: safe to retry, and every attempt is refused.
        return Expect("server", attempts=1 + SETTINGS.max_retries, min_latency=MIN_BACKOFF_S)
    if name in ("hang", "drip"):
        # The whole-call deadline ends both: a drip keeps every read under a read timeout.
        return Expect("timeout", text="", prefix=name == "drip", min_latency=TIMEOUT_S)
    raise AssertionError(f"no expectation for {name}")


# What a retried cell failed with before it answered: the table says "rate_limit→ok".
RETRIED_KIND = {"408": "timeout", "429": "rate_limit", "429+RA": "rate_limit", "500": "server", "502": "server",
                "503": "server", "529": "server"}


def cell_word(column: Column, exp: Expect) -> str:
    if exp.kind is None and column.name in RETRIED_KIND:
        return f"{RETRIED_KIND[column.name]}→ok"
    return exp.word()


# ---- a socket that refuses, a relay that resets ------------------------------------------------------------------


def closed_port() -> int:
    """A port that was just free and has no listener: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ResettingRelay:
    """A TCP relay in front of the emulator that resets the client's connection (an RST, SO_LINGER 0) once the
    server-sent event holding ``marker`` went through (nothing after it), after a moment for the client to read it."""

    def __init__(self, upstream: int, marker: bytes) -> None:
        self.upstream, self.marker = upstream, marker
        self.resets = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="reset-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        # One thread per connection, both directions through select(): a close here is the socket's last, so
        # the kernel sends the RST (a thread blocked in recv on it would hold the socket open).
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        seen = b""
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                if client in readable:
                    if not (data := client.recv(65536)):
                        return
                    upstream.sendall(data)
                if upstream in readable:
                    if not (data := upstream.recv(65536)):
                        return
                    seen += data
                    at = seen.find(self.marker)
                    end = seen.find(b"\n\n", at) if at >= 0 else -1
                    if end < 0:
                        client.sendall(data)
                        continue
                    # Up to the end of the marker's event, however many events this read holds; then the reset.
                    client.sendall(data[: end + 2 - (len(seen) - len(data))])
                    time.sleep(0.05)  # the client reads what went through before the reset
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.resets += 1
                    return
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._server.close()


# ---- the sweep ---------------------------------------------------------------------------------------------------


@dataclass
class Table:
    """The cells' words as they finish, printed at the module's end."""

    words: dict[tuple[str, str], str] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        names = [c.name for c in COLUMNS]
        cells = {(p, n): self.words.get((p, n), "-") for p in PROVIDERS for n in names}
        width = {n: max(len(n), *(len(cells[p, n]) for p in PROVIDERS)) for n in names}
        first = max(len(p) for p in PROVIDERS)
        out = [" | ".join([" " * first, *(n.ljust(width[n]) for n in names)]).rstrip()]
        out.append("-+-".join(["-" * first, *("-" * width[n] for n in names)]))
        for p in PROVIDERS:
            out.append(" | ".join([p.ljust(first), *(cells[p, n].ljust(width[n]) for n in names)]).rstrip())
        out.append("x2: every attempt failed (max_retries=1); →ok: failed once, then the retry answered; "
                   "anthropic's 429 without Retry-After is its spend cap, not retried")
        total = len(COLUMNS) * len(PROVIDERS)
        ran = len(self.words)
        if ran == total and not self.wrong:
            out.append(f"{len(COLUMNS)} faults x {len(PROVIDERS)} providers = {total} cells, all as expected")
        else:
            out.append(f"{len(COLUMNS)} faults x {len(PROVIDERS)} providers = {total} cells: {ran} ran, "
                       f"{len(self.wrong)} not as expected ({', '.join(self.wrong) or 'none'})")
        return out


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> Iterator[Table]:
    """The matrix, printed once every cell ran (through the terminal reporter, so ``-q`` shows it too)."""
    t = Table()
    yield t
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or not t.words:
        return
    # What capsys.disabled() does, for a module's fixture: the table goes to the terminal, not the capture.
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write("\n")  # after the progress dots
        reporter.section("chat providers' fault matrix", sep="-")
        for line in t.lines():
            reporter.write_line(line)


def member(result: fusion_magic.FusionResult, model_id: str) -> Response:
    (found,) = [r for r in result.members if r.model == model_id]
    return found


@pytest.mark.parametrize("column", COLUMNS, ids=[c.name for c in COLUMNS])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_fault_cell(provider: str, column: Column, emulator_env: Emulator, table: Table,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    emu = emulator_env
    faulty = PROVIDERS[provider].format(f"faulty-{provider}")
    wire = faulty.split(":", 1)[1]  # the model as the request body (or Gemini's path) names it
    healthy = "anthropic:healthy" if provider == "openai" else "openai:healthy"
    emu.script("healthy", ModelScript(reply=HEALTHY_REPLY))
    # Paced under a reset: the answer is still streaming when the relay resets the connection.
    emu.script(wire, ModelScript(reply=REPLY, chunk_chars=5, tokens_per_s=20 if column.socket == "reset" else None,
                                 faults=[column.fault] if column.fault else []))
    relay: ResettingRelay | None = None
    base_env = BUILTIN[provider].base_url_env
    assert base_env is not None
    if column.socket == "refused":
        monkeypatch.setenv(base_env, emu.env()[base_env].replace(emu.url, f"http://127.0.0.1:{closed_port()}"))
    elif column.socket == "reset":
        relay = ResettingRelay(emu.port, marker=KEPT[5:].encode())
        monkeypatch.setenv(base_env, emu.env()[base_env].replace(emu.url, f"http://127.0.0.1:{relay.port}"))
    exp = expect(provider, column)
    word = cell_word(column, exp)
    settings = SETTINGS.with_(timeout=column.timeout)
    try:
        result = fusion_magic.fuse("Spell the alphabet in fives.", pool=[faulty, healthy], judge="vote",
                                   settings=settings)
        got, fine = member(result, faulty), member(result, healthy)
        actual = Expect(got.failure, got.attempts, got.text)
        word = cell_word(column, exp) if actual.kind is None else actual.word()
        # The faulty member: its typed failure kind (or its answer after a safe retry), its attempts.
        assert (got.failure, got.attempts) == (exp.kind, exp.attempts), got.error
        assert got.status == (exp.kind or "ok")
        # Nothing that arrived is lost: the text before a fault stays (a drip's bytes hold no whole chunk).
        if exp.prefix:
            assert REPLY.startswith(got.text)
        else:
            assert got.text == exp.text
        # The waits are on the record: a Retry-After or the backoff, a deadline.
        assert got.latency_s is not None and got.latency_s >= exp.min_latency
        (row,) = [row for row in result.ledger.to_dict("records") if row["model"] == faulty]
        assert (row["status"], int(row["attempts"])) == (exp.kind or "ok", exp.attempts)
        assert float(row["latency_s"]) >= exp.min_latency
        # The rest of the pool finishes, and the run says whether it is degraded.
        assert fine.ok and fine.text == HEALTHY_REPLY and fine.attempts == 1
        if exp.kind is not None:
            assert result.answer == HEALTHY_REPLY  # the vote takes the one answer that arrived whole
        assert result.degraded is (exp.kind is not None)
        # The server side agrees on how often it was asked (a refused port was never reached).
        asked = [q for q in emu.requests if q.model == wire]
        assert len(asked) == (0 if column.socket == "refused" else exp.attempts)
        if relay is not None:
            assert relay.resets == 1
        if column.name in ("hang", "drip"):
            # The deadline closed the connection; a hang never answered, a drip had begun its 200.
            (gone,) = emu.wait_for(lambda reqs: [q for q in reqs if q.model == wire and q.disconnected])
            assert gone.status == (200 if column.name == "drip" else None)
    except AssertionError:
        table.wrong.append(f"{provider}/{column.name}")
        table.words[provider, column.name] = f"✗ {word}"
        raise
    finally:
        if relay is not None:
            relay.close()
    table.words[provider, column.name] = word
