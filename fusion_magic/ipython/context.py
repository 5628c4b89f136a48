"""What a cell body can quote of the notebook, as jupyter-ai's ``%%ai`` does: ``{In[3]}`` (the source of
cell 3), ``{Out[3]}`` (its output), ``{Err[3]}`` (the error it raised) and ``{_}`` (the last output).

IPython keeps ``In`` and ``Out`` in the user namespace; the errors it does not keep (IPython 8), so the
extension records them: ``start_recording(shell)`` registers a ``post_run_cell`` hook that keeps the last
``KEEP_ERRORS`` errors, as traceback text (no colour codes, API keys taken out, at most ``MAX_VALUE_CHARS``),
by execution count, in the user namespace under ``ERRORS_NAME`` (a hidden name, as IPython's ``_oh``: ``%reset``
clears it with ``In`` and ``Out``). ``history_text`` reads all three back; ``args.interpolate`` puts them in.

    start_recording(shell)                   # %load_ext fusion_magic
    history_text(shell.user_ns, "Err", 3)   # "Traceback (most recent call last): ..." or None
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
import weakref
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

MAX_VALUE_CHARS = 20_000  # one interpolated value, at most (a longer one is cut, and says so)
TRUNCATED = "[... truncated]"
KEEP_ERRORS = 50  # the last errors {Err[N]} can quote
ERRORS_NAME = "_fusion_magic_errors"  # where the recorded errors live in the user namespace (hidden)
HISTORY_KINDS = ("In", "Out", "Err")

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def as_text(value: Any) -> str:
    """A data frame as CSV, anything else as ``str``: a class, or a frame whose ``to_csv`` needs a path, as text."""
    to_csv = getattr(value, "to_csv", None)
    if callable(to_csv) and not isinstance(value, type):
        try:
            csv = to_csv(index=False)
        except Exception:  # dask, vaex: to_csv writes to a path it requires
            csv = None
        if isinstance(csv, str):
            return csv
    return str(value)


def redact_keys(text: str) -> str:
    """``text`` with the value of every key-like environment variable (``OPENAI_API_KEY``, ``FAL_KEY``, ...)
    replaced by ``<redacted>``: a traceback, an output or a cell may echo one."""
    # Here, not at the top: the run log's module brings sqlite3, which %load_ext does not need (#22).
    from ..calls.runlog import environ_secrets, redact_secrets

    return redact_secrets(text, environ_secrets())


def _ipython_dir() -> str:
    import IPython

    return os.path.dirname(IPython.__file__) + os.sep


def error_text(error: BaseException) -> str:
    """The traceback of ``error`` as plain text, as the cell showed it: IPython's own frames above the cell
    left out (as IPython does), colour codes stripped, keys redacted, at most ``MAX_VALUE_CHARS`` (the end
    kept: the error itself is on the last line)."""
    from IPython.core.error import UsageError

    if type(error) is UsageError:  # IPython shows a magic's usage error as one line, no traceback
        text = f"UsageError: {error}"
    else:
        tb: TracebackType | None = error.__traceback__
        ipython = _ipython_dir()
        while tb is not None and tb.tb_frame.f_code.co_filename.startswith(ipython):
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(error), error, tb))
    text = redact_keys(_ANSI.sub("", text)).rstrip("\n")
    if len(text) > MAX_VALUE_CHARS:
        marker = TRUNCATED + "\n"
        text = marker + text[len(text) - (MAX_VALUE_CHARS - len(marker)):]
    return text


class ErrorHistory(dict[int, str]):
    """The last ``keep`` errors' traceback text, by execution count (a plain dict: pickles with the namespace)."""

    def __init__(self, keep: int = KEEP_ERRORS) -> None:
        super().__init__()
        self.keep = keep

    def add(self, count: int, text: str) -> None:
        self.pop(count, None)
        self[count] = text
        while len(self) > self.keep:
            del self[next(iter(self))]


class _Recorder:
    """The ``post_run_cell`` hook: a cell that raised, kept in history (it has an ``In[N]``), leaves its error."""

    def __init__(self, shell: Any) -> None:
        self._shell = weakref.ref(shell)

    def __call__(self, result: Any) -> None:
        shell = self._shell()
        info = getattr(result, "info", None)
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        count = getattr(result, "execution_count", None)
        # Without store_history the cell has no number: its execution_count is the next cell's.
        if shell is None or error is None or not isinstance(count, int) or not getattr(info, "store_history", False):
            return
        with contextlib.suppress(Exception):  # a hook must never break the user's next cell
            errors = shell.user_ns.get(ERRORS_NAME)
            if not isinstance(errors, ErrorHistory):
                errors = shell.user_ns[ERRORS_NAME] = ErrorHistory()
                shell.user_ns_hidden[ERRORS_NAME] = errors
            errors.add(count, error_text(error))


_RECORDERS: weakref.WeakKeyDictionary[Any, _Recorder] = weakref.WeakKeyDictionary()


def start_recording(shell: Any) -> None:
    """Register the ``post_run_cell`` hook that records errors (once per shell)."""
    if shell in _RECORDERS:
        return
    recorder = _RECORDERS[shell] = _Recorder(shell)
    shell.events.register("post_run_cell", recorder)


def stop_recording(shell: Any) -> None:
    """Unregister the hook and forget the errors recorded."""
    recorder = _RECORDERS.pop(shell, None)
    if recorder is not None:
        with contextlib.suppress(ValueError):  # already gone
            shell.events.unregister("post_run_cell", recorder)
    shell.user_ns.pop(ERRORS_NAME, None)
    shell.user_ns_hidden.pop(ERRORS_NAME, None)


def history_text(namespace: Mapping[str, Any], kind: str, index: int) -> str | None:
    """``In[index]`` (the cell's source, as typed), ``Out[index]`` (its output, as text) or ``Err[index]`` (the
    error it raised, as traceback text); ``None`` where the notebook has none. Nothing here is evaluated."""
    if index < 1:  # cells count from 1; In[0] is IPython's empty placeholder
        return None
    if kind == "In":
        raw = namespace.get(f"_i{index}")  # the source as typed (%magics included); In[N] is the transformed one
        if isinstance(raw, str):
            return raw
        cells = namespace.get("In")
        if isinstance(cells, Sequence) and index < len(cells) and isinstance(cells[index], str):
            return cells[index]
        return None
    if kind == "Out":
        outputs = namespace.get("Out")
        if isinstance(outputs, Mapping) and index in outputs:
            return as_text(outputs[index])
        return None
    if kind == "Err":
        errors = namespace.get(ERRORS_NAME)
        if isinstance(errors, Mapping) and isinstance(errors.get(index), str):
            return str(errors[index])
        return None
    return None


def last_output_missing(namespace: Mapping[str, Any], name: str) -> bool:
    """Whether ``{_}`` (``{__}``, ``{___}``: the last, second and third last output) has nothing to quote: the
    name is not in the namespace, or it still holds IPython's empty start value and fewer outputs were shown."""
    if name not in namespace:
        return True
    value, outputs = namespace[name], namespace.get("Out")
    return isinstance(value, str) and value == "" and isinstance(outputs, Mapping) and len(outputs) < len(name)


__all__ = [
    "ERRORS_NAME", "HISTORY_KINDS", "KEEP_ERRORS", "MAX_VALUE_CHARS", "ErrorHistory", "as_text", "error_text",
    "history_text", "last_output_missing", "redact_keys", "start_recording", "stop_recording",
]
