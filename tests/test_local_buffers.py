"""The local model on every CPU: llama.cpp's extra buffer types off where they crash (AMX) and on elsewhere,
decided in the worker from the CPU's flags (the user's setting wins), and the cores shared among the workers
of seats that generate at once. The rules on any CPU's flags first (no model), then through real workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from fusion_magic.core.errors import ConfigError
from fusion_magic.providers.base import ChatRequest, Message
from fusion_magic.providers.chat import local
from fusion_magic.providers.chat.local import cpu
from fusion_magic.providers.chat.local.client import LocalWorker, WorkerCall, submit
from fusion_magic.providers.chat.local.provider import job_for

# /proc/cpuinfo excerpts: an Intel Sapphire Rapids core (AMX), this project's AMD EPYC (AVX-512, no AMX),
# and an ARM core (its features line is called "Features").
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep avx2 avx512f avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8

processor\t: 1
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep avx2 avx512f avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8
"""
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme de pse tsc fma cx16 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512_bf16 avx512_vnni
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm dcpop asimddp sve
CPU implementer\t: 0x41
"""
PLAIN_BUFFERS = {"CPU", "CPU_Mapped"}
PREFILL = ", ".join(str(i) for i in range(1, 61)) + ","


# ---- the rules, on any CPU's flags (no model) -------------------------------------------------------------


def test_flags_are_read_from_x86_and_arm_lines() -> None:
    assert {"avx2", "amx_tile", "amx_int8", "amx_bf16"} <= cpu.cpu_flags(SAPPHIRE_RAPIDS)
    assert "avx512f" in cpu.cpu_flags(EPYC) and not cpu.amx_flags(cpu.cpu_flags(EPYC))
    assert {"asimd", "sve"} <= cpu.cpu_flags(GRAVITON)
    assert cpu.amx_flags(cpu.cpu_flags(SAPPHIRE_RAPIDS)) == ("amx_bf16", "amx_int8", "amx_tile")
    assert cpu.cpu_flags("") == frozenset()


@pytest.mark.parametrize("flag", ["amx_tile", "amx_int8", "amx_bf16", "amx_fp16"])
def test_any_amx_flag_turns_extra_buffers_off(flag: str) -> None:
    choice = cpu.choose_extra_buffers(EPYC.replace("avx512_vnni", f"avx512_vnni {flag}"))
    assert not choice.on and flag in choice.reason


def test_one_amx_core_among_many_is_enough() -> None:
    mixed = EPYC + "\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_tile\n"
    assert not cpu.choose_extra_buffers(mixed).on


def test_cpus_without_amx_get_extra_buffers() -> None:
    assert cpu.choose_extra_buffers(EPYC) == cpu.BufferChoice(True, "no AMX in this CPU's flags")
    assert cpu.choose_extra_buffers(GRAVITON).on
    assert not cpu.choose_extra_buffers(SAPPHIRE_RAPIDS).on


@pytest.mark.parametrize(("setting", "on"), [("1", True), ("on", True), ("true", True), ("0", False),
                                              ("off", False), (" FALSE ", False)])
def test_the_users_setting_wins_both_ways(setting: str, on: bool) -> None:
    for cpuinfo in (SAPPHIRE_RAPIDS, EPYC, GRAVITON, None):
        choice = cpu.choose_extra_buffers(cpuinfo, setting)
        assert choice.on is on and cpu.EXTRA_BUFTS_ENV in choice.reason


def test_an_empty_setting_leaves_the_choice_to_the_cpu() -> None:
    assert cpu.choose_extra_buffers(SAPPHIRE_RAPIDS, "").on is False
    assert cpu.choose_extra_buffers(EPYC, "  ").on is True


def test_a_malformed_setting_is_one_clear_line() -> None:
    with pytest.raises(ConfigError, match=r"FUSION_MAGIC_LOCAL_EXTRA_BUFTS must be 1 \(on\) or 0 \(off\), not 'maybe'"):
        cpu.choose_extra_buffers(EPYC, "maybe")


def test_without_cpuinfo_only_x86_stays_off() -> None:
    assert not cpu.choose_extra_buffers(None, machine="x86_64").on  # might have AMX: cannot tell
    assert not cpu.choose_extra_buffers(None, machine="AMD64").on
    assert cpu.choose_extra_buffers(None, machine="arm64").on  # Apple silicon: no AMX in the x86 sense


def test_the_note_is_one_line_naming_the_decision_and_the_buffers() -> None:
    note = cpu.choose_extra_buffers(SAPPHIRE_RAPIDS).note(("CPU_Mapped",))
    assert note == ("extra buffer types off (this CPU has AMX (amx_bf16, amx_int8, amx_tile), where they crash); "
                    "weights in CPU_Mapped")
    assert "\n" not in cpu.choose_extra_buffers(EPYC).note(("CPU_Mapped", "CPU_REPACK"))


@pytest.mark.parametrize(("cores", "busy", "threads"), [(2, 1, 2), (2, 2, 1), (2, 3, 1), (16, 3, 5), (16, 1, 8),
                                                         (4, 0, 4), (1, 3, 1)])
def test_busy_workers_share_the_cores(cores: int, busy: int, threads: int) -> None:
    assert cpu.allot_threads(cores, busy) == threads
    assert cpu.allot_threads(cores, busy, setting=3) == 3  # the user's setting wins


def test_thread_and_worker_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cpu.THREADS_ENV, "0")
    with pytest.raises(ConfigError, match="FUSION_MAGIC_LOCAL_THREADS must be a whole number from 1 up, not '0'"):
        cpu.thread_setting()
    monkeypatch.setenv(cpu.WORKERS_ENV, "two")
    with pytest.raises(ConfigError, match="FUSION_MAGIC_LOCAL_WORKERS must be a whole number"):
        cpu.max_workers()
    monkeypatch.setenv(cpu.WORKERS_ENV, "1")
    assert cpu.max_workers() == 1
    monkeypatch.delenv(cpu.WORKERS_ENV)
    assert cpu.max_workers() == (cpu.DEFAULT_WORKERS if cpu.usable_cores() > 1 else 1)


# ---- through real workers -----------------------------------------------------------------------------------


def ready_info(worker: LocalWorker) -> dict[str, Any]:
    try:
        assert worker.wait_ready(120), worker.exit
        assert worker.info is not None
        return worker.info
    finally:
        worker.close()


def test_the_worker_applies_the_decision_for_this_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker decides from this machine's /proc/cpuinfo, and llama.cpp's load log shows it was applied."""
    monkeypatch.delenv(cpu.EXTRA_BUFTS_ENV, raising=False)
    info = ready_info(LocalWorker(local.DEFAULT_MODEL))  # a separate, unregistered worker
    expected = cpu.choose_extra_buffers(cpu.read_cpuinfo())
    assert info["extra_buffers"] is expected.on
    assert info["note"] == expected.note(info["buffers"])
    flags = cpu.cpu_flags(cpu.read_cpuinfo() or "")
    if not expected.on:
        assert set(info["buffers"]) <= PLAIN_BUFFERS, info
    elif "avx2" in flags or "asimd" in flags:
        # The bundled model's Q4_K tensors are repacked for AVX2 and NEON (ARM's asimd) CPUs.
        assert "CPU_REPACK" in info["buffers"], info


@pytest.mark.parametrize(("setting", "on"), [("0", False), ("1", True)])
def test_the_users_setting_reaches_the_worker(monkeypatch: pytest.MonkeyPatch, setting: str, on: bool) -> None:
    monkeypatch.setenv(cpu.EXTRA_BUFTS_ENV, setting)
    info = ready_info(LocalWorker(local.DEFAULT_MODEL))
    assert info["extra_buffers"] is on and f"{cpu.EXTRA_BUFTS_ENV}={setting}" in info["note"]
    if on:  # every CPU llama.cpp repacks Q4_K for (AVX2, AMX, NEON): the buffers come from the switch
        assert set(info["buffers"]) - PLAIN_BUFFERS, info
    else:
        assert set(info["buffers"]) <= PLAIN_BUFFERS, info


@pytest.mark.parametrize(("name", "value"), [(cpu.EXTRA_BUFTS_ENV, "maybe"), (cpu.THREADS_ENV, "-2"),
                                           (cpu.WORKERS_ENV, "0")])
def test_a_malformed_setting_is_refused_before_the_call(monkeypatch: pytest.MonkeyPatch, name: str,
                                                        value: str) -> None:
    import fusion_magic

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name} must be"):
        fusion_magic.complete(f"local:{local.DEFAULT_MODEL}", "Hi?", max_tokens=4)


def counting(max_tokens: int) -> ChatRequest:
    """A prefilled count the model continues greedily to max_tokens: a long, predictable stream."""
    return ChatRequest(local.DEFAULT_MODEL, (Message("user", "Count from 1 to 500, separated by commas."),
                                             Message("assistant", PREFILL)),
                       temperature=0.0, seed=1, max_tokens=max_tokens)


def run_together(n: int, max_tokens: int) -> list[tuple[dict[str, Any], WorkerCall]]:
    """Submit ``n`` counting jobs at once through the registry, as the seats of one cell do; their ends."""
    ends: dict[int, dict[str, Any]] = {}
    done = threading.Event()

    def deliver_for(i: int) -> Any:
        def deliver(message: dict[str, Any]) -> None:
            if message["t"] in ("end", "error", "stopped", "crashed"):
                ends[i] = message
                if len(ends) == n:
                    done.set()
        return deliver

    calls = [WorkerCall(job_for(counting(max_tokens)), deliver_for(i)) for i in range(n)]
    for call in calls:
        submit(call)
    assert done.wait(180), ends
    return [(ends[i], calls[i]) for i in range(n)]


def test_three_seats_run_in_three_workers_sharing_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cpu.WORKERS_ENV, raising=False)
    monkeypatch.delenv(cpu.THREADS_ENV, raising=False)
    local.preload(count=3)
    ran = run_together(3, 60)
    assert [end["t"] for end, _ in ran] == ["end"] * 3, ran
    assert len({call.worker.pid for _, call in ran if call.worker is not None}) == 3
    share = cpu.allot_threads(cpu.usable_cores(), 3)
    # Each ran with its share while all three generated (and may have got more once the others had finished).
    assert all(share in end["threads"] for end, _ in ran), [end["threads"] for end, _ in ran]
    alone = run_together(1, 8)[0][0]
    assert alone["threads"] == [cpu.allot_threads(cpu.usable_cores(), 1)]  # one call alone: every core (up to 8)


def test_the_users_settings_win_over_the_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    local.preload(count=3)
    monkeypatch.setenv(cpu.WORKERS_ENV, "1")
    monkeypatch.setenv(cpu.THREADS_ENV, "1")
    ran = run_together(3, 20)
    assert [end["t"] for end, _ in ran] == ["end"] * 3, ran
    oldest = local.current_worker(local.DEFAULT_MODEL)
    assert all(call.worker is oldest for _, call in ran)  # one worker: the seats took turns
    assert all(end["threads"] == [1] for end, _ in ran)
