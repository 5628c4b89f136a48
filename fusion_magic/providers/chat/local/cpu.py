"""This CPU as the local model sees it: pure Python, no llama.cpp, so the kernel may import it too.

Two decisions, each a function of plain values so that a test can hand it any CPU:

- ``choose_extra_buffers(cpuinfo, setting)``: whether llama.cpp may repack weights into its "extra buffer
  types". Off on CPUs with AMX, where they crash; on everywhere else (why, with the figures: ``native.py``).
  The worker decides from its own ``/proc/cpuinfo``.
- ``allot_threads(cores, busy)``: the threads each busy worker gets, so that the workers generating at once
  never ask for more threads than there are cores. llama.cpp's threads spin-wait for each other: three seats'
  calls in three processes with two threads each on two cores took 2.8-4.9x the wall time of the same calls
  one after another in one process (three runs on a shared 2-core AMD EPYC), while one thread each took
  0.64-0.69x. ``bench/bench_local.py`` measures the seats against sequential calls and the cores' bound.

The user's environment wins over each automatic choice::

    FUSION_MAGIC_LOCAL_EXTRA_BUFTS=1|0   extra buffer types on / off, whatever the CPU
    FUSION_MAGIC_LOCAL_THREADS=N         every worker uses N threads, however many run at once
    FUSION_MAGIC_LOCAL_WORKERS=N         at most N worker processes per model (1: its calls take turns)
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from ....core.errors import ConfigError

EXTRA_BUFTS_ENV = "FUSION_MAGIC_LOCAL_EXTRA_BUFTS"
THREADS_ENV = "FUSION_MAGIC_LOCAL_THREADS"
WORKERS_ENV = "FUSION_MAGIC_LOCAL_WORKERS"

# A 270M model has too little work per token to use more than a few threads well.
MAX_THREADS = 8
# The default pool's three seats, each in its own worker; more would only add memory and load time.
DEFAULT_WORKERS = 3

_ON = frozenset({"1", "on", "true", "yes"})
_OFF = frozenset({"0", "off", "false", "no"})
# ARM and other CPUs have no AMX; x86 is the only family whose AMX path crashes.
_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """Every feature flag named in ``/proc/cpuinfo`` text: ``flags`` lines on x86, ``Features`` on ARM.

    The union over all CPUs listed: one core with AMX is enough for llama.cpp to pick the AMX path.
    """
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def amx_flags(flags: frozenset[str]) -> tuple[str, ...]:
    """The AMX flags among ``flags`` (amx_tile, amx_int8, amx_bf16, and newer amx_* ones), sorted."""
    return tuple(sorted(f for f in flags if f.startswith("amx")))


def read_cpuinfo() -> str | None:
    """``/proc/cpuinfo``'s text, or None where there is none (macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None


def parse_switch(name: str, value: str | None) -> bool | None:
    """An on/off environment setting: True, False, or None when unset or empty; ``ConfigError`` otherwise."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise ConfigError(f"{name} must be 1 (on) or 0 (off), not {value!r}")


@dataclass(frozen=True)
class BufferChoice:
    """Whether llama.cpp's extra buffer types are on, and why, in words for the worker's one-line note."""

    on: bool
    reason: str

    def note(self, buffers: tuple[str, ...] | list[str] = ()) -> str:
        """One line: ``extra buffer types on (no AMX in this CPU's flags); weights in CPU_Mapped, CPU_REPACK``."""
        where = f"; weights in {', '.join(buffers)}" if buffers else ""
        return f"extra buffer types {'on' if self.on else 'off'} ({self.reason}){where}"


def choose_extra_buffers(cpuinfo: str | None, setting: str | None = None, machine: str | None = None) -> BufferChoice:
    """Whether to let llama.cpp repack weights, from ``/proc/cpuinfo``'s text and ``$FUSION_MAGIC_LOCAL_EXTRA_BUFTS``.

    The setting wins both ways. Otherwise: off on a CPU with AMX (llama.cpp's AMX path segfaults in decode,
    ggml-org/llama.cpp#20824), on when the flags show none. Without flags to read, an x86 CPU stays off (it
    might have AMX) and any other (``machine``, default ``platform.machine()``) goes on: only x86 has AMX.
    """
    forced = parse_switch(EXTRA_BUFTS_ENV, setting)
    if forced is not None:
        return BufferChoice(forced, f"{EXTRA_BUFTS_ENV}={setting.strip() if setting else ''}")
    if cpuinfo is None:
        arch = (machine if machine is not None else platform.machine()).lower()
        if arch in _X86 or not arch:
            return BufferChoice(False, "this x86 CPU's flags could not be read, and AMX crashes")
        return BufferChoice(True, f"{arch}: no AMX")
    amx = amx_flags(cpu_flags(cpuinfo))
    if amx:
        return BufferChoice(False, f"this CPU has AMX ({', '.join(amx)}), where they crash")
    return BufferChoice(True, "no AMX in this CPU's flags")


def extra_buffers_here() -> BufferChoice:
    """``choose_extra_buffers`` for this machine and this process's environment."""
    return choose_extra_buffers(read_cpuinfo(), os.environ.get(EXTRA_BUFTS_ENV))


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask on Linux; the CPU count elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} must be a whole number from 1 up, not {text!r}")
    return int(text)


def thread_setting() -> int | None:
    """``$FUSION_MAGIC_LOCAL_THREADS``: the user's fixed thread count per worker, or None."""
    return _positive_int(THREADS_ENV)


def max_workers() -> int:
    """How many worker processes one model may have: ``$FUSION_MAGIC_LOCAL_WORKERS``, else ``DEFAULT_WORKERS``
    (one on a single core, where two workers could only take turns and each would process the prompt)."""
    return _positive_int(WORKERS_ENV) or (DEFAULT_WORKERS if usable_cores() > 1 else 1)


def check_settings() -> None:
    """Raise ``ConfigError`` (one line) if any of the three settings is malformed. The kernel checks them on every
    call; a worker reads the extra-buffer setting once, when it starts."""
    parse_switch(EXTRA_BUFTS_ENV, os.environ.get(EXTRA_BUFTS_ENV))
    thread_setting()
    max_workers()


def allot_threads(cores: int, busy: int, setting: int | None = None) -> int:
    """Threads for each of ``busy`` workers generating at once on ``cores`` cores (``setting`` wins).

    An equal share, at least one and at most ``MAX_THREADS``. With more busy workers than cores each gets one
    thread: a single thread never spin-waits, so the operating system can share the cores fairly.
    """
    if setting is not None:
        return setting
    return max(1, min(MAX_THREADS, cores // max(1, busy)))


__all__ = [
    "DEFAULT_WORKERS",
    "EXTRA_BUFTS_ENV",
    "MAX_THREADS",
    "THREADS_ENV",
    "WORKERS_ENV",
    "BufferChoice",
    "allot_threads",
    "amx_flags",
    "check_settings",
    "choose_extra_buffers",
    "cpu_flags",
    "extra_buffers_here",
    "max_workers",
    "parse_switch",
    "read_cpuinfo",
    "thread_setting",
    "usable_cores",
]
