"""Files as a notebook shows them: relative to the working folder (the notebook's), so a saved notebook
reveals no home directory and a link still opens the file.

    shown_path(Path("/home/ana/work/videos/fox.mp4"))   # videos/fox.mp4 when the kernel runs in /home/ana/work
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote


def shown_path(path: Path) -> Path:
    """``path`` relative to the working directory when inside it, else as given."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except (OSError, ValueError):
        return path


def file_href(path: Path) -> str:
    """``path`` as a link target: ``shown_path``, percent-encoded, so a name with spaces, ``#`` or quotes
    still points at the file."""
    return quote(shown_path(path).as_posix(), safe="/")


__all__ = ["file_href", "shown_path"]
