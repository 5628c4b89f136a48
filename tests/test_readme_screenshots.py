"""The README's pictures came from the browser tests, and still are what those tests took: every image README.md
names under docs/screenshots/ exists, is a PNG under 200 KB no wider than a page, and has an entry in
docs/screenshots/MANIFEST.json written by a test that exists, whose SHA-256 is the file's (a picture drawn, or
edited after the test took it, has none or another). Every picture in the folder is named by an entry, and every
entry by a file. Fast: files only, no browser; tests/test_browser_tour.py takes the pictures:

    FUSION_MAGIC_SHOTS=docs/screenshots .venv/bin/python -m pytest -q -s tests/test_browser_tour.py
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FOLDER = ROOT / "docs" / "screenshots"
MANIFEST = "MANIFEST.json"
REFRESH = "FUSION_MAGIC_SHOTS=docs/screenshots .venv/bin/python -m pytest -q -s tests/test_browser_tour.py"
MAX_BYTES = 200_000
MAX_WIDTH = 1400  # wider than a README's column is scaled down until its text cannot be read
PNG = b"\x89PNG\r\n\x1a\n"
# A name under docs/screenshots/ anywhere in the README: an image, an HTML <img>, a link.
NAMED = re.compile(r"docs/screenshots/([\w./-]+\.(?:png|jpe?g|gif|webp|svg))", re.I)
TOUR = re.compile(r"^## A tour\s*$(.*?)(?=^## |\Z)", re.M | re.S)


def named_in(readme: str) -> list[str]:
    """The files under docs/screenshots/ that ``readme`` names, in order, once each."""
    return list(dict.fromkeys(NAMED.findall(readme)))


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's (width, height) from its header; None when ``data`` is no PNG."""
    if not data.startswith(PNG) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def names_a_test(test: str, root: Path) -> bool:
    """``test`` (a pytest node id, ``tests/x.py::name``) names a test function defined in a file under ``root``."""
    path, _, name = test.partition("::")
    name = name.split("[", 1)[0]
    file = root / path
    if not name or not file.is_file():
        return False
    return re.search(rf"^def {re.escape(name)}\(", file.read_text(encoding="utf-8"), re.M) is not None


def load_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    return {e["file"]: e for e in json.loads(path.read_text(encoding="utf-8"))["screenshots"]}


def problems(readme: str, folder: Path, root: Path) -> list[str]:
    """Every way the pictures ``readme`` names under ``folder`` fall short, one line each."""
    found: list[str] = []
    entries = load_manifest(folder)
    for name in named_in(readme):
        path = folder / name
        if not path.is_file():
            found.append(f"docs/screenshots/{name}: missing (the README shows it); take it with `{REFRESH}`")
            continue
        data = path.read_bytes()
        size = png_size(data)
        if size is None:
            found.append(f"docs/screenshots/{name}: not a PNG")
        elif size[0] > MAX_WIDTH:
            found.append(f"docs/screenshots/{name}: {size[0]} px wide, over {MAX_WIDTH}")
        if len(data) >= MAX_BYTES:
            found.append(f"docs/screenshots/{name}: {len(data)} bytes, over {MAX_BYTES}")
        entry = entries.get(name)
        if entry is None:
            found.append(f"docs/screenshots/{name}: no entry in {MANIFEST}, so no test took it; take it with "
                         f"`{REFRESH}`")
            continue
        missing = [k for k in ("test", "date", "commit", "sha256") if not entry.get(k)]
        if missing:
            found.append(f"docs/screenshots/{name}: its {MANIFEST} entry has no {', '.join(missing)}")
            continue
        if not names_a_test(str(entry["test"]), root):
            found.append(f"docs/screenshots/{name}: taken by {entry['test']}, which is no test here")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            found.append(f"docs/screenshots/{name}: not the picture {entry['test']} took ({MANIFEST}'s SHA-256 "
                         "differs): changed since, or drawn")
    return found


def strays(folder: Path) -> list[str]:
    """Pictures in ``folder`` that no manifest entry names, and entries whose file is gone."""
    entries = load_manifest(folder)
    files = {p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST} if folder.is_dir() else set()
    unnamed = [f"docs/screenshots/{f}: no {MANIFEST} entry (no test took it)" for f in sorted(files - set(entries))]
    gone = [f"{MANIFEST}: an entry for {f}, which is not in docs/screenshots/" for f in sorted(set(entries) - files)]
    return unnamed + gone


# ---- the README as it is ---------------------------------------------------------------------------------------


def test_the_tour_shows_screenshots() -> None:
    tour = TOUR.search(README.read_text(encoding="utf-8"))
    assert tour is not None, "README.md has no '## A tour' section"
    assert named_in(tour.group(1)), "the README's tour names no picture under docs/screenshots/"


def test_every_screenshot_the_readme_names_came_from_a_test() -> None:
    found = problems(README.read_text(encoding="utf-8"), FOLDER, ROOT)
    assert not found, "\n".join(found)


def test_every_screenshot_has_its_entry() -> None:
    found = strays(FOLDER)
    assert not found, "\n".join(found)


# ---- the checks catch what they are for -------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A PNG header of ``width`` x ``height`` (all ``png_size`` reads) and some bytes."""
    return PNG + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x02\x00\x00\x00" + b"\x00" * 64


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with a test that takes pictures and a docs/screenshots/ folder."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_shots.py").write_text("def test_takes_them() -> None:\n    ...\n", encoding="utf-8")
    (tmp_path / "docs" / "screenshots").mkdir(parents=True)
    return tmp_path


def record(folder: Path, entries: list[dict[str, Any]]) -> None:
    (folder / MANIFEST).write_text(json.dumps({"screenshots": entries}), encoding="utf-8")


def entry(file: str, data: bytes, test: str = "tests/test_shots.py::test_takes_them") -> dict[str, Any]:
    return {"file": file, "test": test, "date": "2026-12-06 20:00 UTC", "commit": "abc1234",
            "sha256": hashlib.sha256(data).hexdigest()}


def test_a_picture_taken_by_a_test_passes(repo: Path) -> None:
    folder = repo / "docs" / "screenshots"
    data = png(900, 400)
    (folder / "a.png").write_bytes(data)
    record(folder, [entry("a.png", data)])
    assert problems("![a](docs/screenshots/a.png)", folder, repo) == []
    assert strays(folder) == []


def test_each_shortfall_is_one_line(repo: Path) -> None:
    folder = repo / "docs" / "screenshots"
    taken, edited, wide, drawn, orphan = png(900, 400), png(900, 401), png(2000, 400), png(800, 300), png(10, 10)
    (folder / "edited.png").write_bytes(edited)
    (folder / "wide.png").write_bytes(wide)
    (folder / "drawn.png").write_bytes(drawn)
    (folder / "by-nobody.png").write_bytes(taken)
    (folder / "orphan.png").write_bytes(orphan)
    (folder / "big.png").write_bytes(png(900, 400) + b"\x00" * MAX_BYTES)
    (folder / "fake.png").write_bytes(b"GIF89a not a png")
    big = (folder / "big.png").read_bytes()
    record(folder, [entry("edited.png", taken), entry("wide.png", wide), entry("big.png", big),
                    entry("by-nobody.png", taken, test="tests/test_shots.py::test_gone"),
                    entry("fake.png", (folder / "fake.png").read_bytes()), entry("gone.png", taken)])
    readme = "\n".join(f"![{n}](docs/screenshots/{n}.png)"
                       for n in ("missing", "edited", "wide", "drawn", "by-nobody", "big", "fake"))
    found = problems(readme, folder, repo)
    expected = {
        "missing": "missing (the README shows it)",
        "edited": "differs): changed since, or drawn",
        "wide": "2000 px wide, over 1400",
        "drawn": "no entry in MANIFEST.json",
        "by-nobody": "which is no test here",
        "big": f"bytes, over {MAX_BYTES}",
        "fake": "not a PNG",
    }
    for name, words in expected.items():
        assert any(line.startswith(f"docs/screenshots/{name}.png: ") and words in line for line in found), (
            f"{name}: no line saying {words!r} in {found}")
    assert len(found) == len(expected), found
    assert strays(folder) == ["docs/screenshots/drawn.png: no MANIFEST.json entry (no test took it)",
                              "docs/screenshots/orphan.png: no MANIFEST.json entry (no test took it)",
                              "MANIFEST.json: an entry for gone.png, which is not in docs/screenshots/"]
