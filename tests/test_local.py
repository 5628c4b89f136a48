"""The local provider against the real bundled model, run in its worker process (small enough for every
test run), including what happens when that process dies."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import pytest

import fusion_magic
from fusion_magic.core.errors import BadRequestError, ProtocolError, WorkerCrashed
from fusion_magic.core.events import CallDelta, EngineEvent
from fusion_magic.providers.base import (
    ChatRequest,
    Finished,
    Message,
    ProviderEvent,
    TextDelta,
    Usage,
)
from fusion_magic.providers.chat import local
from fusion_magic.providers.chat.local.client import LocalWorker, WorkerCall
from fusion_magic.providers.chat.local.fewshot import bound_schema, build_prompt, copied_example, example_for_schema
from fusion_magic.providers.chat.local.provider import job_for
from fusion_magic.providers.registry import BUILTIN, resolve_endpoint

T = TypeVar("T")

WINNER_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "winner": {"type": "string", "enum": ["A", "B", "C"]}},
    "required": ["reasoning", "winner"],
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["reasoning", "answer"],
}
CANDIDATES = "Question: What is 7 times 6?\n\nAnswer A: 42.\n\nAnswer B: 36.\n\nAnswer C: 7 times 6 is 48."


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def ask(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(local.DEFAULT_MODEL, (Message("user", text),), **kwargs)


def counting(max_tokens: int) -> ChatRequest:
    """A prefilled answer the model continues greedily to max_tokens: a long, predictable stream."""
    # Up to 60: from 30 the model sometimes ends the count itself, depending on what its cache holds.
    prefill = ", ".join(str(i) for i in range(1, 61)) + ","
    return ChatRequest(
        local.DEFAULT_MODEL,
        (Message("user", "Count from 1 to 500, separated by commas."), Message("assistant", prefill)),
        temperature=0.0, seed=1, max_tokens=max_tokens,
    )


async def collect(request: ChatRequest) -> list[ProviderEvent]:
    return [event async for event in local.LocalProvider().stream(request)]


def text_of(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.fixture(scope="module", autouse=True)
def warm_worker() -> None:
    local.preload()


def worker() -> LocalWorker:
    """The model's live, loaded worker (a test before may have killed the last one)."""
    local.preload()
    current = local.current_worker(local.DEFAULT_MODEL)
    assert current is not None, "no live worker"
    return current


def test_streams_text_then_usage_then_finished() -> None:
    provider = local.LocalProvider(resolve_endpoint(BUILTIN["local"]), None)
    assert (provider.protocol, provider.supports_json_schema) == ("local", True)

    async def main() -> list[ProviderEvent]:
        return [e async for e in provider.stream(ask("What is the capital of France?", temperature=0.0))]

    events = run(main())
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert deltas and all(d.text for d in deltas)
    usage, finished = events[-2:]
    assert isinstance(usage, Usage) and isinstance(finished, Finished)
    assert usage.cost_usd == 0.0
    assert usage.input_tokens and usage.input_tokens > 50  # the few-shot prompt
    assert usage.output_tokens and 0 < usage.output_tokens <= local.DEFAULT_MAX_TOKENS
    assert finished.reason == "stop"
    answer = text_of(events)
    assert "Paris" in answer and answer == answer.lstrip()
    assert "\n\n" not in answer and "Question:" not in answer  # stopped after its own answer


def test_max_tokens_caps_output_and_reports_length() -> None:
    events = run(collect(counting(max_tokens=12)))
    usage, finished = events[-2:]
    assert isinstance(usage, Usage) and usage.output_tokens == 12
    assert isinstance(finished, Finished) and finished.reason == "length"


def test_different_seeds_differ_and_same_seed_at_temperature_zero_repeats() -> None:
    async def main() -> tuple[list[str], list[str]]:
        story = "Tell me a long story about a dragon."
        varied = [text_of(await collect(ask(story, temperature=1.0, seed=s))) for s in (1, 2, 3)]
        same = [text_of(await collect(ask(story, temperature=0.0, seed=7))) for _ in range(2)]
        return varied, same

    varied, same = run(main())
    assert len(set(varied)) >= 2, varied
    assert same[0] and same[0] == same[1]


@pytest.mark.parametrize(
    ("schema", "system"),
    [
        (WINNER_SCHEMA, "You are a judge. Pick the best answer."),
        (ANSWER_SCHEMA, "You are a judge. Merge the answers into one best answer."),
    ],
    ids=["winner", "answer"],
)
def test_json_schema_output_parses_and_validates(schema: dict[str, Any], system: str) -> None:
    request = ChatRequest(
        local.DEFAULT_MODEL, (Message("system", system), Message("user", CANDIDATES)),
        temperature=0.8, seed=2, json_schema=schema, max_tokens=20,  # too small on purpose: raised to fit
    )
    events: list[ProviderEvent] = []

    async def gather() -> ProtocolError | None:
        try:
            async for event in local.LocalProvider().stream(request):
                events.append(event)
        except ProtocolError as exc:  # the 270M model often copies the example: flagged, not passed off
            return exc
        return None

    copied = run(gather())
    value = json.loads(text_of(events))  # the grammar makes whatever streamed parse and validate
    jsonschema.validate(value, schema)
    assert list(value) == list(schema["properties"])  # reasoning first, as the schema orders it
    if copied is None:
        assert isinstance(events[-1], Finished) and events[-1].reason == "stop"
        assert not copied_example(text_of(events), schema)
    else:
        assert "copied its few-shot example" in str(copied) and copied_example(text_of(events), schema)


def test_copied_example_detection() -> None:
    example = json.dumps(example_for_schema(ANSWER_SCHEMA))
    assert copied_example(example, ANSWER_SCHEMA)
    assert not copied_example('{"reasoning": "A and B agree.", "answer": "Rayleigh scattering."}', ANSWER_SCHEMA)
    assert not copied_example("not json", ANSWER_SCHEMA)


def test_event_loop_stays_live_while_generating() -> None:
    async def main() -> list[int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        ticks_at_delta = []
        async for event in local.LocalProvider().stream(counting(max_tokens=80)):
            if isinstance(event, TextDelta):
                ticks_at_delta.append(ticks)
        task.cancel()
        return ticks_at_delta

    ticks_at_delta = run(main())
    # A generation that held the loop would deliver every delta between the same two ticks.
    assert len(set(ticks_at_delta)) >= 5, ticks_at_delta


async def _read_some_then_stop(stream: AsyncIterator[ProviderEvent], how: str,
                               on_first: Callable[[], None] = lambda: None) -> None:
    """Consume until text arrives (calling ``on_first`` then), then close the stream or cancel its task."""
    if how == "aclose":
        seen = 0
        async for event in stream:
            seen += isinstance(event, TextDelta)
            if seen == 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return
    first = asyncio.Event()

    async def consume() -> None:
        async for event in stream:
            if isinstance(event, TextDelta) and not first.is_set():
                on_first()
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_cancelling_stops_the_worker_and_the_next_call_works(how: str) -> None:
    before = worker()

    async def main() -> list[ProviderEvent]:
        # 400 tokens take about four seconds: idle within one second means the worker stopped early.
        await _read_some_then_stop(local.LocalProvider().stream(counting(max_tokens=400)), how)
        assert await asyncio.to_thread(before.wait_idle, 1.0), "the worker still generates a second after the cancel"
        return await collect(ask("What is the capital of France?", temperature=0.0))

    events = run(main())
    assert "Paris" in text_of(events) and isinstance(events[-1], Finished)
    assert worker() is before and before.alive  # reused, not restarted


def test_prompt_longer_than_the_context_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="context"):
        run(collect(ask("word " * 4200)))


def test_unknown_local_model_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="unknown local model"):
        run(collect(ChatRequest("no-such-model", (Message("user", "hi"),))))


# ---- crash isolation: llama.cpp runs in a worker process ----------------------------------------------

LOCAL = f"local:{local.DEFAULT_MODEL}"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_worker_killed_mid_stream_fails_one_member_and_the_run_goes_on(sig: signal.Signals,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # One worker for the model, so the seats queue behind each other in the worker that dies (with the default
    # three, each seat has its own worker: tests/test_kernel.py kills one of those).
    monkeypatch.setenv("FUSION_MAGIC_LOCAL_WORKERS", "1")
    victim = worker()
    killed: list[str] = []

    def kill_on_first_text(event: EngineEvent) -> None:
        if isinstance(event, CallDelta) and not killed:
            killed.append(event.response.label or "")
            os.kill(victim.pid, sig)

    result = fusion_magic.fuse(
        "Count from 1 to 500, separated by commas.", pool=[LOCAL] * 3, judge="vote", max_tokens=300,
        temperature=0.0, listeners=[kill_on_first_text],
    )
    statuses = sorted(r.status for r in result.responses)
    assert statuses == ["crashed", "ok", "ok"], [(r.status, r.error) for r in result.responses]
    crashed = next(r for r in result.responses if r.status == "crashed")
    assert crashed.label == killed[0]
    error = crashed.error or ""
    assert f"died with {sig.name}" in error and "next call starts a fresh worker" in error
    assert crashed.text  # what streamed before the crash is kept
    assert result.degraded and result.answer and result.verdict is not None
    # The two members that were queued behind it never ran in the dead worker: a fresh one served them.
    assert not victim.alive and worker().pid != victim.pid

    again = fusion_magic.complete(LOCAL, "What is the capital of France?", temperature=0.0)
    assert again.status == "ok" and "Paris" in again.text


def test_crashed_is_a_typed_error_on_the_provider_stream() -> None:
    victim = worker()

    async def main() -> WorkerCrashed:
        with pytest.raises(WorkerCrashed) as info:
            async for event in local.LocalProvider().stream(counting(max_tokens=400)):
                if isinstance(event, TextDelta):
                    os.kill(victim.pid, signal.SIGABRT)
        return info.value

    error = run(main())
    assert error.kind == "crashed" and error.signal == "SIGABRT" and error.exit_code == -signal.SIGABRT
    assert "aborted" in str(error) and str(error).startswith("local:gemma3-270m: crashed: ")


def test_a_worker_stuck_in_native_code_is_killed_after_a_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    from fusion_magic.providers.chat.local import client

    monkeypatch.setattr(client, "CANCEL_GRACE_S", 0.5)
    stuck = worker()

    # Frozen mid-generation, as a native deadlock would be; then the cell is cancelled.
    freeze = functools.partial(os.kill, stuck.pid, signal.SIGSTOP)
    run(_read_some_then_stop(local.LocalProvider().stream(counting(max_tokens=400)), "cancel", on_first=freeze))
    assert stuck.wait_idle(10) and not stuck.alive
    assert stuck.exit == "was stopped by fusion_magic: a cancel went unanswered for 0.5 s"
    again = fusion_magic.complete(LOCAL, "What is the capital of France?", temperature=0.0)
    assert again.status == "ok" and "Paris" in again.text and worker().pid != stuck.pid


def test_cancelled_jobs_queued_in_a_dead_worker_are_not_run_again() -> None:
    fresh = LocalWorker(local.DEFAULT_MODEL)  # not the registered one
    assert fresh.wait_ready(120), fresh.exit
    got: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
    done = {name: threading.Event() for name in got}

    def collect(name: str) -> Callable[[dict[str, Any]], None]:
        def deliver(message: dict[str, Any]) -> None:
            got[name].append(message)
            if message["t"] in ("end", "error", "stopped", "crashed"):
                done[name].set()
        return deliver

    calls = {name: WorkerCall(job_for(counting(max_tokens=400)), collect(name)) for name in got}
    for call in calls.values():
        assert fresh.submit(call)
    assert fresh.wait_idle(0.5) is False  # a is generating, b and c wait behind it
    calls["b"].cancel()
    calls["c"].cancel()
    os.kill(fresh.pid, signal.SIGKILL)
    assert all(event.wait(30) for event in done.values())
    assert got["a"][-1]["t"] == "crashed"
    assert got["b"][-1]["t"] == got["c"][-1]["t"] == "stopped"  # not moved to a fresh worker to run for nobody


def test_a_worker_that_dies_while_loading_fails_its_calls_instead_of_retrying() -> None:
    fresh = LocalWorker(local.DEFAULT_MODEL)  # not the registered one: the warm worker stays
    messages: list[dict[str, Any]] = []
    done = threading.Event()

    def deliver(message: dict[str, Any]) -> None:
        messages.append(message)
        done.set()

    assert fresh.submit(WorkerCall(job_for(ask("Hi?")), deliver))
    os.kill(fresh.pid, signal.SIGKILL)
    assert done.wait(30)
    assert messages[-1]["t"] == "crashed" and "while loading the model" in messages[-1]["message"]
    assert not fresh.alive and fresh.exit == "died with SIGKILL (killed, often by the out-of-memory killer)"


def test_a_file_llama_cpp_cannot_load_is_an_error_on_that_call(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all" * 100)
    r = fusion_magic.complete(f"local:{broken}", "Hi?")
    assert r.status == "bad_request" and "load" in (r.error or "").lower(), r.error


def test_the_kernel_process_never_loads_llama_cpp(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import json, sys
        import fusion_magic
        r = fusion_magic.fuse("What is 2 plus 2?", pool=["local:gemma3-270m"] * 2, judge="vote", max_tokens=8)
        maps = open("/proc/self/maps").read()
        print(json.dumps({"statuses": [x.status for x in r.responses],
                          "module": any(m.split(".")[0] == "llama_cpp" for m in sys.modules),
                          "library": "libllama" in maps or "libggml" in maps}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"statuses": ["ok", "ok"], "module": False, "library": False}, out.stderr[-2000:]


# ---- the prompt and schema helpers (no model needed) -----------------------------------------------


def test_prompt_puts_system_text_first_and_ends_with_answer() -> None:
    request = ChatRequest(
        local.DEFAULT_MODEL,
        (Message("system", "Be terse."), Message("user", "Hi?"), Message("assistant", "Hello."),
         Message("user", "Why?")),
    )
    prompt = build_prompt(request)
    assert prompt.startswith("Be terse.\n\n")
    assert prompt.endswith("Question: Hi?\nAnswer: Hello.\n\nQuestion: Why?\nAnswer:")


def test_json_prompt_shows_an_example_that_fits_the_schema() -> None:
    prompt = build_prompt(ask("Which is best?", json_schema=WINNER_SCHEMA))
    example = next(line for line in prompt.splitlines() if line.startswith("Answer: {"))
    jsonschema.validate(json.loads(example.removeprefix("Answer: ")), WINNER_SCHEMA)
    assert prompt.endswith("Answer: ")


def test_bound_schema_limits_strings_and_reports_the_worst_case() -> None:
    bounded, worst = bound_schema(ANSWER_SCHEMA, max_chars=100)
    assert bounded["properties"]["reasoning"]["maxLength"] == 100
    assert bounded["required"] == ["reasoning", "answer"] and "maxLength" not in ANSWER_SCHEMA["properties"]
    # The longest text the grammar admits: every optional space taken, both strings full.
    longest = '{ "reasoning" : "' + "x" * 100 + '" , "answer" : "' + "y" * 100 + '" } '
    assert len(longest) <= worst < 2 * len(longest)
