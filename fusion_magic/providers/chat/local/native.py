"""Everything that touches llama.cpp's native library, and nothing else.

Imported only inside the worker process (``worker.py``), by ``llama_server.py`` (its own process) and by
``bench/bench_local.py``'s direct side; an import-linter contract keeps it out of the kernel.

Extra buffer types, off on CPUs with AMX and on everywhere else. llama.cpp repacks some weight matrices into
CPU-specific layouts, its "extra buffer types": AMX tiles on Intel Sapphire Rapids and later, and CPU_REPACK
(interleaved Q4_0, Q4_K, IQ4_NL and Q8_0 blocks) for its AVX2, AVX-512 and ARM NEON kernels. On CPUs with AMX
the AMX path segfaults in decode on Q4_K models (ggml-org/llama.cpp#20824), and which path runs depends on the
CPU, not on our code, so a CI machine without AMX never sees it: there they are off. Elsewhere they are on,
llama.cpp's own default, because it is the path llama.cpp runs and tests on those CPUs, and because here it
cost nothing measurable where it hardly applies and gained much where it does. Measured on an AMD EPYC
(AVX-512, no AMX, 2 cores), one thread a side, alternating, in tokens per CPU-second (with one thread, the
work done, however busy the shared machine is):

    .venv/bin/python bench/bench_local.py --reps 3 --q4-0      off/on per CPU-second   decode  prompt
    the bundled Q4_K_M model (27 Q4_K matrices repacked: 13 MiB of 235)      0.98-1.02  0.96-1.03
    the same model requantized to Q4_0 (every matrix but the embedding)      0.75-0.85  0.72-0.77

(Ranges over six runs and four.) So on the bundled model it makes no difference either way here; on a Q4_0 file, the
commonest kind of a user's ``local:/path/model.gguf``, on does 18-39% more per CPU-second. Wall-clock tokens
per second at two threads swing more than that from run to run on this shared machine (off/on 1.029 before
this change, 0.91-1.38 while measuring it), which is why the rule rests on the CPU-second figures.

The worker decides from ``/proc/cpuinfo`` (``cpu.choose_extra_buffers``, with the reason in its one-line load
note); ``FUSION_MAGIC_LOCAL_EXTRA_BUFTS=1|0`` wins both ways. llama-cpp-python has no keyword for it, so the
default model parameters are wrapped (in this process only) before the model is loaded.
"""

from __future__ import annotations

import ctypes
import functools
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_capi

from . import cpu

N_CTX = 4096
# A light penalty: without it the 270M model sometimes repeats one sentence until max_tokens.
REPEAT_PENALTY = 1.1
# The plain CPU buffers; anything else in the load log is an extra (repacked) buffer type.
PLAIN_BUFFERS = frozenset({"CPU", "CPU_Mapped"})
_BUFFER_LINE = re.compile(r"^\S+:\s+(\S+) model buffer size")


def threads() -> int:
    """The threads a worker loads with: ``$FUSION_MAGIC_LOCAL_THREADS``, else the usable cores (at most
    ``cpu.MAX_THREADS``). The kernel then sets each job's share (``cpu.allot_threads``) with ``set_threads``."""
    return cpu.allot_threads(cpu.usable_cores(), 1, cpu.thread_setting())


def set_threads(llm: Any, n: int) -> None:
    """Use ``n`` threads from the next llama.cpp decode on (safe between two tokens of one completion:
    llama.cpp hands its thread count to the CPU backend on every graph it computes)."""
    llama_capi.llama_set_n_threads(llm.ctx, n, n)
    llm.n_threads = llm.n_threads_batch = n


_ORIGINAL_DEFAULTS = llama_capi.llama_model_default_params


def _defaults_without_extra_bufts() -> Any:
    params = _ORIGINAL_DEFAULTS()
    params.use_extra_bufts = False
    return params


def use_plain_cpu_buffers(enabled: bool = True) -> None:
    """Make every ``llama_cpp.Llama`` loaded from now on in this process skip extra buffer types.

    ``Llama.__init__`` reads ``llama_model_default_params`` from the bindings module at load time, so
    replacing it there is enough; ``enabled=False`` puts llama.cpp's own default back.
    """
    if not hasattr(_ORIGINAL_DEFAULTS(), "use_extra_bufts"):
        raise RuntimeError(
            "this llama-cpp-python has no llama_model_params.use_extra_bufts; upgrade it: "
            "pip install -U 'llama-cpp-python>=0.3.36'"
        )
    llama_capi.llama_model_default_params = _defaults_without_extra_bufts if enabled else _ORIGINAL_DEFAULTS


@dataclass
class _NativeLog:
    """llama.cpp's log, kept instead of printed: llama.cpp writes some notices straight to fd 2 even with
    verbose=False. Lines are collected while ``capturing`` (the model load, to read its buffer types)."""

    capturing: bool = False
    lines: list[str] = field(default_factory=list)
    callback: Any = None  # the C callback must outlive every llama.cpp call, so it is kept here

    def __call__(self, level: int, text: bytes, user_data: Any) -> None:
        if self.capturing:
            self.lines.append(text.decode("utf-8", "replace"))


_LOG = _NativeLog()
_LOG_LOCK = threading.Lock()


def _install_log() -> None:
    if _LOG.callback is None:
        _LOG.callback = llama_capi.llama_log_callback(_LOG)
        llama_capi.llama_log_set(_LOG.callback, ctypes.c_void_p())


@dataclass(frozen=True)
class Loaded:
    """A loaded model and what its load reported."""

    llm: Any  # llama_cpp.Llama
    buffers: tuple[str, ...]  # the weight buffer types llama.cpp used, e.g. ("CPU_Mapped", "CPU_REPACK")
    choice: cpu.BufferChoice  # whether extra buffer types were allowed, and why

    @property
    def note(self) -> str:
        """One line for the worker's load note: the decision, its reason, the buffers llama.cpp used."""
        return self.choice.note(self.buffers)


def load(path: str, *, n_threads: int | None = None, n_ctx: int = N_CTX,
         choice: cpu.BufferChoice | None = None) -> Loaded:
    """Load a GGUF file the way fusion_magic runs it: extra buffer types as ``choice`` says (default: this
    CPU's flags and the user's setting, ``cpu.extra_buffers_here()``)."""
    choice = choice or cpu.extra_buffers_here()
    use_plain_cpu_buffers(not choice.on)
    n = n_threads or threads()
    with _LOG_LOCK:
        _install_log()
        _LOG.lines.clear()
        _LOG.capturing = True
        try:
            llm = llama_cpp.Llama(
                model_path=path, n_ctx=n_ctx, n_threads=n, n_threads_batch=n, verbose=False, seed=0,
            )
        finally:
            _LOG.capturing = False
        log = "".join(_LOG.lines)
        _LOG.lines.clear()
    buffers = []
    for line in log.splitlines():
        match = _BUFFER_LINE.match(line.strip())
        if match and match.group(1) not in buffers:
            buffers.append(match.group(1))
    return Loaded(llm, tuple(buffers), choice)


@functools.lru_cache(maxsize=64)
def grammar(schema_json: str) -> Any:
    """A compiled-once grammar per (bounded) schema; LlamaGrammar only holds text, so sharing is safe."""
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(schema_json)
    # llama-cpp-python's converter lets raw control characters into strings ([^"\\]), which
    # json.loads rejects; llama.cpp's own converter excludes them. Do the same.
    gbnf = gbnf.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]')
    return LlamaGrammar.from_string(gbnf, verbose=False)


def completion_kwargs(*, max_tokens: int, temperature: float, seed: int, stop: tuple[str, ...],
                      grammar: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``Llama.create_completion`` (shared with bench/bench_local.py)."""
    return {
        "stream": True, "max_tokens": max_tokens, "temperature": temperature, "seed": seed,
        "stop": list(stop), "repeat_penalty": REPEAT_PENALTY, "grammar": grammar,
    }


def output_tokens(llm: Any, n_prompt: int, max_tokens: int) -> int:
    """Tokens generated by the last completion."""
    # llama-cpp-python evaluates every sampled token except the last one (EOS, the token that
    # completed a stop string, or the max_tokens-th), so the context holds prompt + output - 1.
    return max(0, min(max_tokens, llm.n_tokens - n_prompt + 1))


__all__ = [
    "N_CTX",
    "PLAIN_BUFFERS",
    "Loaded",
    "completion_kwargs",
    "grammar",
    "load",
    "output_tokens",
    "set_threads",
    "threads",
    "use_plain_cpu_buffers",
]
