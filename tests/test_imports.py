"""Every module imports on its own, in a fresh process, in both spellings a plugin author or a test writes:
``import fusion_magic.x.y as m`` and ``from fusion_magic.x import y``. A public function that shared its name
with a subpackage (``fuse`` and ``fuse/``) broke the first spelling, depending on what had been imported before:
a fresh process per module is the only order-free check."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import fusion_magic


def modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(fusion_magic.__path__, "fusion_magic.")]
    return sorted(n for n in names if not n.endswith(".__main__"))


def test_there_are_modules_to_check() -> None:
    names = modules()
    assert len(names) > 100 and "fusion_magic.fusion.engine" in names and "fusion_magic.videos.jobs" in names


def _import(name: str) -> tuple[str, str]:
    parent, _, leaf = name.rpartition(".")
    code = f"import {name} as m\nfrom {parent} import {leaf} as n\nassert m is n, (m, n)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return name, "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["(no output)"])[-1]


def test_every_module_imports_alone_in_both_spellings() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {name: err for name, err in pool.map(_import, modules()) if err}
    assert failures == {}


def test_no_public_name_is_also_a_subpackage() -> None:
    subpackages = {m.name for m in pkgutil.iter_modules(fusion_magic.__path__)}
    assert not subpackages & set(fusion_magic.__all__)
