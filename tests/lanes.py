"""Which tests need a real component (a browser, the local model, a Jupyter kernel) or run a benchmark.

``make test`` runs everything; ``make test-fast`` deselects the four markers below. ``tests/conftest.py`` marks
each collected test from the code it runs: its own body, its fixtures, and the helpers under ``tests/`` those
call (the library itself is not read: it names the local model in its defaults). A test may also carry a marker
itself. A marked test still starts what it needs, or fails: markers select, they never skip.

    needs(item)   # {"local_model"} for a test whose fixture preloads the local model
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import FunctionType

import pytest

TESTS = Path(__file__).resolve().parent

# Marker -> what the code a test runs says when it needs that component (docstrings and comments are not read).
NEEDS: dict[str, re.Pattern[str]] = {
    # Chromium driven by Playwright, in JupyterLab (tests/browser.py).
    "browser": re.compile(r"\bchromium\b|\bplaywright\b|\bjupyter_lab\("),
    # llama.cpp on the bundled model, in its worker process or llama-cpp-python's server.
    "local_model": re.compile(r"\bpreload\(|\bworker_for\(|\bLocalProvider\(|\bllama_cpp\b|\bllama_server\b|"
                              r"bench_local"),
    # A real Jupyter kernel (nbclient, jupyter_client); notebooks under nbval run outside tests/ (make test).
    "notebook": re.compile(r"\bNotebookClient\(|\bKernelManager\(|\bstart_new_kernel\(|\bjupyter_client\b"),
    # A script of bench/ (or run_all over several) end to end in a fresh interpreter: seconds of CPU each.
    "bench": re.compile(r"\brun\(BENCH\b"),
}
# A test that names the local model and runs a cell or a job runs it, unless the model is refused first (which
# costs nothing to mark); one that only names it in a record or a report (most of them) does not.
LOCAL_MODEL_ID = re.compile(r"local:gemma3")
RUNS = re.compile(r"\b(run_cell_magic|run_line_magic|run_cell|a?fuse|a?complete|a?evaluate|a?rejudge|a?video)\(")


def needs(item: pytest.Item) -> set[str]:
    """The markers ``item`` needs, from the code it runs and its parameters (``bench_local.py``)."""
    roots: list[Callable[..., object]] = []
    function = getattr(item, "function", None)
    if function is not None:
        roots.append(function)
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        roots.extend(fixturedef.func for fixturedef in (getattr(info, "name2fixturedefs", {}).get(name) or ()))
    text = _reached_code(tuple(roots)) + "\n" + item.name
    found = {marker for marker, pattern in NEEDS.items() if pattern.search(text)}
    if LOCAL_MODEL_ID.search(text) and RUNS.search(text):
        found.add("local_model")
    return found


@cache
def _reached_code(roots: tuple[Callable[..., object], ...]) -> str:
    """The code of the test function, its fixtures' functions, and every helper under tests/ that those name."""
    seen: set[Callable[..., object] | str] = set()
    todo: list[Callable[..., object] | str] = [f for f in roots if _ours(f)]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(g for g in _named(f) if g not in seen)
    return "\n".join(_code(f) for f in seen)


@cache
def _ours(obj: Callable[..., object]) -> bool:
    """A function or class defined in a file under tests/ (a test module, conftest, a helper module)."""
    code = getattr(obj, "__code__", None)
    try:
        where = code.co_filename if code is not None else inspect.getsourcefile(obj)
    except TypeError:
        return False
    return where is not None and _under_tests(where)


@cache
def _under_tests(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(TESTS)


@cache
def _source(f: Callable[..., object]) -> str:
    try:
        return textwrap.dedent(inspect.getsource(f))
    except (OSError, TypeError):
        return ""


@cache
def _code(f: Callable[..., object] | str) -> str:
    """``f``'s source without its comments and docstrings (they name components a test does not start)."""
    if isinstance(f, str):
        return f
    try:
        tree = ast.parse(_source(f))
    except SyntaxError:
        return _source(f)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@cache
def _named(f: Callable[..., object] | str) -> tuple[Callable[..., object] | str, ...]:
    """The functions and classes of tests/ that ``f``'s body names (module globals it can reach), and the module
    strings it names."""
    if isinstance(f, str):
        return ()
    scope = getattr(f, "__globals__", None)
    if scope is None and isinstance(f, type):
        scope = vars(inspect.getmodule(f)) if inspect.getmodule(f) is not None else None
    if scope is None:
        return ()
    try:
        tree = ast.parse(_source(f))
    except SyntaxError:
        return ()
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    found = [scope.get(name) for name in names]
    # A module's string constant is code too when a test runs it in a kernel (a cell's source).
    cells = tuple(obj for obj in found if isinstance(obj, str))
    return cells + tuple(obj for obj in found if isinstance(obj, FunctionType | type) and _ours(obj))


__all__ = ["NEEDS", "needs"]
