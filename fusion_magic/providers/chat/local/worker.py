"""The local model's worker process: ``python -m fusion_magic.providers.chat.local.worker MODEL``.

Started by ``client.py`` (up to three per model, on first use, kept warm). llama.cpp's native library is loaded
here and nowhere in the kernel, so a segfault, an abort or the out-of-memory killer ends this process
only: the kernel sees the pipe close and the signal, fails the call that was running, and starts a fresh
worker for the next one.

Two threads::

    reader thread                         main thread
    -------------                         -----------
    stdin line "generate" -> inbox  --->  load the model once (extra buffer types as cpu.py decides
    stdin line "cancel"   -> cancels      from this CPU's flags), say "ready" with a one-line load note
    stdin line "threads"  -> threads      take a job: "start", "text"..., then "end" | "error" | "stopped"
    end of stdin          -> cancel all   (between tokens: checks cancels, takes the thread count the
                                          kernel last sent), exit when the inbox closes

Jobs run one at a time: they share one llama.cpp context and its KV cache, and one thread keeps
llama.cpp's OpenMP thread team warm (a fresh thread per call measured 7% fewer tokens/s). A model that
fills several seats gets several workers (``client.py``); the kernel shares the cores among the busy ones.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

from ....core.errors import BadRequestError
from . import cpu
from .fewshot import bound_schema
from .protocol import Job, decode, encode, error_to_wire

# maxLength tried for free JSON strings, largest first, until the worst-case object fits the context.
_JSON_STRING_CHARS = (240, 120, 48, 16)
_MIN_ROOM = 8  # tokens that must be left in the context after the prompt


class _Sender:
    """Writes protocol lines to the kernel; if the kernel is gone, there is nobody to work for."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, message: Mapping[str, Any]) -> None:
        try:
            with self._lock:
                self._stream.write(encode(message))
                self._stream.flush()
        except (BrokenPipeError, ValueError):
            os._exit(0)


class _Cancels:
    """Job ids the kernel cancelled; once its input ends, every job counts as cancelled."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._all = False
        self._lock = threading.Lock()

    def add(self, job_id: int) -> None:
        with self._lock:
            self._ids.add(job_id)

    def cancel_all(self) -> None:
        with self._lock:
            self._all = True

    def __contains__(self, job_id: int) -> bool:
        with self._lock:
            return self._all or job_id in self._ids

    def discard(self, job_id: int) -> None:
        with self._lock:
            self._ids.discard(job_id)


class Threads:
    """The thread count the kernel asked for, applied by the generating thread between two tokens."""

    def __init__(self, initial: int) -> None:
        self.wanted = initial  # set by the reader thread; one int, so no lock is needed
        self.current = initial

    def apply(self, llm: Any, used: list[int]) -> None:
        """Switch ``llm`` to the wanted count if it changed; ``used`` collects the counts this job ran with."""
        wanted = self.wanted
        if wanted != self.current:
            from . import native

            native.set_threads(llm, wanted)
            self.current = wanted
        if not used or used[-1] != wanted:
            used.append(wanted)


def _read_commands(stream: IO[bytes], inbox: queue.Queue[dict[str, Any] | None], cancels: _Cancels,
                   threads: Threads) -> None:
    try:
        for line in stream:
            message = decode(line)
            if message.get("op") == "generate":
                inbox.put(message)
            elif message.get("op") == "cancel":
                cancels.add(int(message["id"]))
            elif message.get("op") == "threads":
                threads.wanted = max(1, int(message["n"]))
    except (OSError, ValueError):
        pass  # a garbled pipe means the kernel is gone or broken: stop as if the input ended
    finally:
        cancels.cancel_all()
        inbox.put(None)


def _protocol_stream() -> IO[bytes]:
    """The kernel's end of the pipe, moved off fd 1: whatever native code prints to stdout then goes to
    stderr instead of into the protocol."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "wb")


def _fit_grammar(schema: Mapping[str, Any], room: int) -> tuple[Any, int]:
    """The grammar for ``schema`` with strings short enough that the whole object fits in ``room``."""
    from . import native

    for chars in _JSON_STRING_CHARS:
        bounded, worst = bound_schema(schema, chars)
        if worst <= room:
            break
    return native.grammar(json.dumps(bounded)), worst  # key order kept: "reasoning" first


def generate(llm: Any, job: Job, on_text: Callable[[str], None], cancelled: Callable[[], bool],
             threads: Threads | None = None) -> dict[str, Any]:
    """Run one job on a loaded model; returns the terminal message (``end`` or ``stopped``). With ``threads``,
    the kernel's thread count is taken before the prompt and between tokens."""
    from . import native

    used: list[int] = []
    if threads is not None:
        threads.apply(llm, used)

    # Tokenized here rather than by create_completion: the count is exact, and text from other
    # models (a judge reads their answers) cannot smuggle in special tokens such as <eos>.
    tokens: list[int] = llm.tokenize(job.prompt.encode("utf-8"), add_bos=True, special=False)
    room = llm.n_ctx() - len(tokens)
    if room < _MIN_ROOM:
        raise BadRequestError(
            f"prompt is {len(tokens)} tokens; the local model's context holds {llm.n_ctx()}",
            provider="local", model=job.model,
        )
    grammar, max_tokens = None, job.max_tokens
    if job.schema is not None:
        try:
            grammar, worst = _fit_grammar(job.schema, room)
        except Exception as exc:  # the converter asserts on schemas it cannot express
            raise BadRequestError(
                f"json_schema cannot be turned into a llama.cpp grammar: {exc}", provider="local",
                model=job.model,
            ) from exc
        max_tokens = max(max_tokens, worst)  # a cap that cannot cut the object open
    max_tokens = min(max_tokens, room)
    kwargs = native.completion_kwargs(max_tokens=max_tokens, temperature=job.temperature, seed=job.seed,
                                      stop=job.stop, grammar=grammar)
    chunks = llm.create_completion(tokens, **kwargs)
    reason: str | None = None
    try:
        for chunk in chunks:
            if cancelled():
                return {"t": "stopped"}
            if threads is not None:
                threads.apply(llm, used)
            choice = chunk["choices"][0]
            if choice["text"]:
                on_text(choice["text"])
            reason = choice["finish_reason"] or reason
    finally:
        chunks.close()
    return {"t": "end", "input_tokens": len(tokens),
            "output_tokens": native.output_tokens(llm, len(tokens), max_tokens), "reason": reason,
            "threads": used}


def main(argv: list[str] | None = None) -> int:
    """Serve one model over stdin/stdout until stdin ends."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fusion_magic.providers.chat.local.worker MODEL", file=sys.stderr)
        return 2
    model = args[0]
    # The kernel cancels through the pipe. It starts us in our own session, so a terminal's Ctrl-C or
    # Jupyter's process-group interrupt never reaches us; ignoring SIGINT covers any other launcher.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send = _Sender(_protocol_stream())
    inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancels = _Cancels()
    began = time.perf_counter()
    try:
        threads = Threads(cpu.allot_threads(cpu.usable_cores(), 1, cpu.thread_setting()))
        choice = cpu.extra_buffers_here()  # this CPU's own flags; the user's setting wins
    except Exception as exc:  # a malformed setting: one line for every call, not a traceback
        send({"t": "load_error", **error_to_wire(exc)})
        return 0
    threading.Thread(target=_read_commands, args=(sys.stdin.buffer, inbox, cancels, threads), daemon=True,
                     name="fusion_magic-worker-reader").start()

    try:
        from . import native
        from .files import model_path

        imported = time.perf_counter()
        path = model_path(model)
        loaded = native.load(str(path), n_threads=threads.current, choice=choice)
    except Exception as exc:
        send({"t": "load_error", **error_to_wire(exc)})
        return 0
    send({"t": "ready", "pid": os.getpid(), "path": str(path), "import_s": imported - began,
          "load_s": time.perf_counter() - imported, "buffers": list(loaded.buffers),
          "extra_buffers": choice.on, "note": loaded.note, "threads": threads.current})

    while (message := inbox.get()) is not None:
        job_id = int(message["id"])
        if job_id in cancels:
            send({"t": "stopped", "id": job_id})
            cancels.discard(job_id)
            continue
        send({"t": "start", "id": job_id})

        def on_text(text: str, job_id: int = job_id) -> None:
            send({"t": "text", "id": job_id, "text": text})

        def cancelled(job_id: int = job_id) -> bool:
            return job_id in cancels

        try:
            terminal = generate(loaded.llm, Job.from_wire(message["job"]), on_text, cancelled, threads)
        except Exception as exc:
            terminal = {"t": "error", **error_to_wire(exc)}
        send({**terminal, "id": job_id})
        cancels.discard(job_id)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Skip interpreter teardown: freeing llama.cpp's objects at exit has nothing left to protect and
    # has crashed in some versions; the kernel only waits for the pipe to close.
    os._exit(code)
