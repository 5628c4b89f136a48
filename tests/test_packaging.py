"""Dependencies: uvicorn serves only the emulator, so it is an extra, with a clear error without it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_uvicorn_is_an_extra_not_a_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(d.startswith("uvicorn") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert "uvicorn>=0.30" in extras["testing"] and "uvicorn>=0.30" in extras["dev"]


def test_testing_without_uvicorn_says_what_to_install() -> None:
    # sys.modules[name] = None is how Python marks a module as not importable.
    code = "import sys; sys.modules['uvicorn'] = None; import fusion_magic.testing"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError") and "pip install 'fusion_magic[testing]'" in last


def test_the_library_itself_imports_without_uvicorn() -> None:
    code = "import sys; sys.modules['uvicorn'] = None; import fusion_magic, fusion_magic.ipython.magics"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
