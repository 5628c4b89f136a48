"""The kernel's side of the local model: worker processes per model, started on first use, kept warm.

No llama.cpp here (the import-linter contract in pyproject.toml says so): this module only starts
``python -m fusion_magic.providers.chat.local.worker MODEL`` and talks to it over pipes (``protocol.py``).

    worker = worker_for("gemma3-270m")       # the model's first worker; starts one if none is alive
    call = WorkerCall(job, deliver=print)    # deliver() gets every message for this job, on a thread
    submit(call); ...; call.cancel()         # an idle worker of the model, else a new one, else the least busy

Seats run side by side: a model gets up to ``cpu.max_workers()`` workers (3, 1 on a single core, or
``$FUSION_MAGIC_LOCAL_WORKERS``), one per job running at once, each with its own context. The cores are shared
out among the workers that have jobs (every model's together): ``cpu.allot_threads(cores, busy)`` threads each,
sent to a worker whenever the number of busy workers changes, and taken between two tokens. One call alone
gets every core; three seats on two cores get one thread each, since llama.cpp's threads spin-wait and
oversubscribed cores slow every worker down several times over (figures in ``cpu.py``).
``$FUSION_MAGIC_LOCAL_THREADS`` fixes the count instead.

When the worker dies (a segfault, an abort, the OOM killer), its reader thread sees the pipe close and:

- the job that was running (it had said ``start``) gets a ``crashed`` message naming the signal;
- jobs still waiting in the dead worker's queue never ran, so they move to a fresh worker unseen;
- if the worker died before it was ready (while loading), every job gets the crash: retrying a load that
  crashes would only crash again.

Invariants: a job is in exactly one worker's ``_calls`` from ``submit`` until its terminal message
(``end``/``error``/``stopped``/``crashed``) is delivered; ``_calls`` and ``_dead`` change together under
``_lock``, so a job submitted while the worker dies is either refused or handed over by the reader.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from ....core.errors import FusionError, ServerError
from . import cpu
from .files import check_installed
from .protocol import TERMINAL, Job, decode, encode, error_from_wire

_IDS = itertools.count(1)
_STDERR_LINES = 40
# A running job answers a cancel within one token. One that has not after this long is stuck in native
# code (or its prompt is enormous): the worker is killed, so the model's next call gets a fresh one.
CANCEL_GRACE_S = 15.0
# Variables the worker never needs: keys stay in the kernel (and out of any native crash dump).
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET")

Deliver = Callable[[dict[str, Any]], None]


@dataclass(eq=False)
class WorkerCall:
    """One job on its way through a worker; ``deliver`` is called on the worker's reader thread."""

    job: Job
    deliver: Deliver
    id: int = field(default_factory=lambda: next(_IDS))
    started: bool = False
    worker: LocalWorker | None = None
    # Set before the cancel is sent: a job moved off a dead worker must not run again for nobody.
    cancelled: bool = False

    def cancel(self) -> None:
        """Ask the worker to stop this job (between two tokens); its ``stopped`` message follows."""
        self.cancelled = True
        if self.worker is not None:
            self.worker.cancel(self.id)


def _describe_exit(code: int) -> tuple[str, str | None]:
    """(words for how the worker ended, the signal's name)."""
    if code < 0:
        try:
            sig = signal.Signals(-code)
        except ValueError:
            return f"was killed by signal {-code}", None
        why = {
            signal.SIGSEGV: "a segmentation fault in llama.cpp",
            signal.SIGBUS: "a bus error in llama.cpp",
            signal.SIGILL: "an instruction this CPU does not have",
            signal.SIGABRT: "llama.cpp aborted (a failed assertion)",
            signal.SIGKILL: "killed, often by the out-of-memory killer",
        }.get(sig, signal.strsignal(sig.value) or sig.name)
        return f"died with {sig.name} ({why})", sig.name
    return f"exited with code {code}", None


class LocalWorker:
    """One worker process serving one local model. Use ``worker_for(model)`` rather than building one.

        worker = worker_for("gemma3-270m")
        worker.wait_ready(60); print(worker.info["load_s"], worker.pid)
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.info: dict[str, Any] | None = None  # the worker's "ready" message
        self.exit: str | None = None  # how the process ended, once it has
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._calls: dict[int, WorkerCall] = {}
        self._dead = False
        self._closing = False  # close() ended it: queued jobs stop instead of moving to a new worker
        self._killed_stuck = False  # the cancel watchdog ended it: say so rather than blame the OOM killer
        self._load_error: dict[str, Any] | None = None
        self._ready = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self.threads: int | None = None  # the thread count last sent; None: the worker's own default
        env = {k: v for k, v in os.environ.items() if not k.upper().endswith(_SECRET_SUFFIXES)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "fusion_magic.providers.chat.local.worker", model],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            # Its own session: a kernel interrupt (SIGINT to the process group) or a terminal's Ctrl-C
            # must not kill it; cancelling goes through the pipe instead.
            start_new_session=True,
        )
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self._stdin: IO[bytes] = self._proc.stdin
        threading.Thread(target=self._read_replies, args=(self._proc.stdout,), daemon=True,
                         name=f"fusion_magic-local-{model}").start()
        self._stderr_thread = threading.Thread(target=self._drain_stderr, args=(self._proc.stderr,), daemon=True,
                                               name=f"fusion_magic-local-{model}-stderr")
        self._stderr_thread.start()

    # ---- state ----------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        with self._lock:
            return not self._dead

    @property
    def busy(self) -> bool:
        """Whether any job is queued or running in this worker."""
        return not self._idle.is_set()

    @property
    def pending(self) -> int:
        """Jobs queued or running here."""
        with self._lock:
            return len(self._calls)

    @property
    def note(self) -> str | None:
        """The worker's one-line load note (extra buffer types on or off, why, and the weights' buffers),
        once the model is loaded."""
        return None if self.info is None else str(self.info.get("note", ""))

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the model is loaded (True) or the worker failed or died first (False)."""
        self._ready.wait(timeout)
        return self.info is not None

    def load_error(self) -> FusionError | None:
        """Why the model could not be loaded, once the worker said so."""
        return None if self._load_error is None else error_from_wire(self._load_error, self.model)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running here; True if that happened within ``timeout``."""
        return self._idle.wait(timeout)

    # ---- requests -------------------------------------------------------------------------------

    def submit(self, call: WorkerCall) -> bool:
        """Queue ``call`` here; False if this worker is already dead (take another from ``worker_for``)."""
        if call.cancelled:  # cancelled while it waited to move off a dead worker: it is over
            call.deliver({"t": "stopped", "id": call.id})
            return True
        with self._lock:
            if self._dead:
                return False
            self._calls[call.id] = call
            call.worker, call.started = self, False
            self._idle.clear()
        # Before the job's line, so the worker already runs it with its share of the cores.
        _share_cores()
        # A write to a worker that just died fails here; the reader thread, seeing the pipe close,
        # then hands the registered call over, so nothing is lost either way.
        self._write({"op": "generate", "id": call.id, "job": call.job.to_wire()})
        return True

    def set_threads(self, n: int) -> None:
        """Ask the worker to generate with ``n`` threads from its next token on (sent only when it changes)."""
        if n != self.threads:
            self.threads = n
            self._write({"op": "threads", "n": n})

    def cancel(self, call_id: int) -> None:
        with self._lock:
            if call_id not in self._calls:
                return
        self._write({"op": "cancel", "id": call_id})
        watchdog = threading.Timer(CANCEL_GRACE_S, self._kill_if_stuck, args=(call_id,))
        watchdog.daemon = True
        watchdog.start()

    def _kill_if_stuck(self, call_id: int) -> None:
        with self._lock:
            call = self._calls.get(call_id)
            stuck = call is not None and call.started and not self._dead
        if stuck:
            self._killed_stuck = True
            with contextlib.suppress(OSError):
                self._proc.kill()

    def close(self, timeout: float = 2.0) -> None:
        """End the worker: close its input (it stops and exits), then make sure it is gone."""
        self._closing = True
        with self._write_lock, contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _write(self, message: dict[str, Any]) -> None:
        try:
            with self._write_lock:
                self._stdin.write(encode(message))
                self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    # ---- the reader thread ----------------------------------------------------------------------

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        # Drained so a chatty native library can never fill the pipe and stall the worker; the tail
        # goes into the crash report.
        with stream:
            for line in stream:
                self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def _read_replies(self, stream: IO[bytes]) -> None:
        with stream:
            self._dispatch(stream)
        self._on_exit()

    def _dispatch(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                message = decode(line)
            except ValueError:
                continue  # not ours (native output that slipped past the fd swap)
            kind = message.get("t")
            if kind == "ready":
                self.info = message
                self._ready.set()
                continue
            if kind == "load_error":
                self._load_error = message
                continue
            went_idle = False
            with self._lock:
                call = self._calls.get(int(message.get("id", -1)))
                if call is None:
                    continue
                if kind == "start":
                    call.started = True
                if kind in TERMINAL:
                    del self._calls[call.id]
                    if not self._calls:
                        self._idle.set()
                        went_idle = True
            if went_idle:
                _share_cores()  # the cores this worker used go to the ones still generating
            call.deliver(message)

    def _on_exit(self) -> None:
        code = self._proc.wait()
        with self._write_lock, contextlib.suppress(OSError):
            self._stdin.close()
        how, sig = _describe_exit(code)
        if self._killed_stuck:
            how = f"was stopped by fusion_magic: a cancel went unanswered for {CANCEL_GRACE_S:g} s"
        with self._lock:
            self._dead = True
            self.exit = how
            orphans = list(self._calls.values())
            self._calls.clear()
        self._ready.set()
        _forget(self)
        # The last native lines (a GGML_ASSERT, say) explain the crash: let the drain thread read them first.
        self._stderr_thread.join(timeout=1.0)
        tail = "\n".join(self._stderr)
        for call in orphans:
            if self._load_error is not None:
                call.deliver({"t": "error", "id": call.id, **{k: self._load_error[k] for k in ("kind", "message")}})
            elif call.cancelled or self._closing:
                call.deliver({"t": "stopped", "id": call.id})  # nobody waits for it: never run it again
            elif call.started or self.info is None:
                # The running job, or every job when the model never finished loading: retrying a
                # load that crashes would only crash again.
                during = "while generating" if call.started else "while loading the model"
                call.deliver({"t": "crashed", "id": call.id, "signal": sig, "exit_code": code, "stderr": tail,
                              "message": f"the local model's worker process {how} {during}; the kernel is "
                                         "fine and the next call starts a fresh worker"})
            else:
                _resubmit(call, self.model)
        self._idle.set()
        _share_cores()


# ---- the registry: the live workers of each model, and the cores they share ---------------------------

_WORKERS: dict[str, list[LocalWorker]] = {}
_REGISTRY_LOCK = threading.Lock()
_SHARE_LOCK = threading.Lock()


def _live(model: str) -> list[LocalWorker]:
    """``model``'s live workers, oldest first (call with ``_REGISTRY_LOCK`` held)."""
    live = [w for w in _WORKERS.get(model, ()) if w.alive]
    if live:
        _WORKERS[model] = live
    else:
        _WORKERS.pop(model, None)  # asking about a model never leaves an entry behind
    return list(live)


def _start(model: str) -> LocalWorker:
    """A new worker for ``model``, registered (call with ``_REGISTRY_LOCK`` held)."""
    check_installed(model)
    worker = LocalWorker(model)
    _WORKERS.setdefault(model, []).append(worker)
    return worker


def worker_for(model: str) -> LocalWorker:
    """``model``'s first live worker, starting one if there is none (the process starts at once; the
    model loads in the background while jobs queue up in its pipe)."""
    with _REGISTRY_LOCK:
        live = _live(model)
        return live[0] if live else _start(model)


def start_workers(model: str, count: int) -> list[LocalWorker]:
    """``model``'s live workers, started until there are ``count`` of them (at most ``cpu.max_workers()``)."""
    limit = min(count, cpu.max_workers())
    with _REGISTRY_LOCK:
        while len(_live(model)) < max(1, limit):
            _start(model)
        return _live(model)


def _choose(model: str, limit: int) -> LocalWorker:
    """Where a new job for ``model`` goes, among its ``limit`` oldest workers: the first idle one; else a new
    one while there are fewer; else the one with the fewest jobs queued (they run one after another there)."""
    with _REGISTRY_LOCK:
        serving = _live(model)[:limit]
        for worker in serving:
            if not worker.busy:
                return worker
        if len(serving) < limit:
            return _start(model)
        return min(serving, key=lambda w: w.pending)


def workers(model: str) -> list[LocalWorker]:
    """``model``'s live workers, oldest first (for diagnostics, tests and the benchmark)."""
    with _REGISTRY_LOCK:
        return _live(model)


def current_worker(model: str) -> LocalWorker | None:
    """The oldest worker now serving ``model``, if one is alive (for diagnostics and tests)."""
    live = workers(model)
    return live[0] if live else None


def _share_cores() -> None:
    """Give each worker that has jobs (every model's) its share of the cores, ``cpu.allot_threads``."""
    try:
        setting = cpu.thread_setting()
    except FusionError:
        return  # a malformed setting: submit() already refused the call that met it
    with _SHARE_LOCK:
        with _REGISTRY_LOCK:
            busy = [w for ws in _WORKERS.values() for w in ws if w.busy and w.alive]
        n = cpu.allot_threads(cpu.usable_cores(), len(busy), setting)
        for worker in busy:
            worker.set_threads(n)


def submit(call: WorkerCall) -> None:
    """Send ``call`` to one of its model's workers (``_choose``), starting one if needed."""
    cpu.check_settings()  # a malformed setting fails this call with one line
    limit = cpu.max_workers()
    for _ in range(3):  # a worker may die between _choose() and submit(); the next one is fresh
        if _choose(call.job.model, limit).submit(call):
            return
    raise ServerError("the local model's worker keeps dying on start", provider="local", model=call.job.model)


def _resubmit(call: WorkerCall, model: str) -> None:
    try:
        submit(call)
    except Exception as exc:  # could not start a new worker: this call fails, with the reason
        call.deliver({"t": "error", "id": call.id, "kind": "server",
                      "message": f"could not restart the local model's worker: {exc}"})


def _forget(worker: LocalWorker) -> None:
    with _REGISTRY_LOCK:
        others = [w for w in _WORKERS.get(worker.model, ()) if w is not worker]
        if others:
            _WORKERS[worker.model] = others
        else:
            _WORKERS.pop(worker.model, None)


@atexit.register
def shutdown() -> None:
    """Stop every worker (they would also exit on their own once this process's pipes close)."""
    with _REGISTRY_LOCK:
        every = [w for ws in _WORKERS.values() for w in ws]
        _WORKERS.clear()
    for worker in every:
        worker.close()


__all__ = ["LocalWorker", "WorkerCall", "current_worker", "shutdown", "start_workers", "submit", "worker_for",
           "workers"]
