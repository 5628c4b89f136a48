"""fusion_magic: compare, fuse and check AI models from a notebook.

    %load_ext fusion_magic
    %%fuse -p openrouter:openai/gpt-4o,gemini:gemini-2.5-flash -j vote
    Why is the sky blue?

The same from Python: ``fusion_magic.fuse(prompt, pool=[...])`` or ``await fusion_magic.afuse(...)``;
judge again: ``fusion_magic.rejudge(result, mode="merge")``; one model: ``fusion_magic.complete(model_id, prompt)``.
Is fusion worth it on my questions: ``fusion_magic.evaluate(data, pool=[...])`` or ``%fuse eval``.
Video: ``%%video`` in a notebook, ``fusion_magic.video(prompt, models=[...])`` or ``await fusion_magic.avideo(...)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import (
        EvalJob,
        FusionJob,
        VideoJob,
        acomplete,
        aevaluate,
        afuse,
        arejudge,
        avideo,
        complete,
        estimate_evaluation,
        estimate_video,
        evaluate,
        export_history,
        fuse,
        history,
        rejudge,
        resume_evaluation,
        video,
    )
    from .calls.job import JobResult
    from .calls.settings import Settings
    from .core.record import Response
    from .evaluation import EvalResult
    from .fusion.result import FusionResult, Verdict
    from .videos.result import Video, VideoResult

# Where each public name lives. They load on first use (PEP 562), so ``import fusion_magic`` is cheap, and a
# child process that runs one module of the package (the video analyser, the local model's worker) does not
# import httpx, pandas and the engines it never uses. No public name is also a subpackage's (the job kinds live
# in ``fusion/`` and ``videos/``), so ``import fusion_magic.fusion.engine as m`` never meets the function ``fuse``.
_HOMES = {
    **dict.fromkeys(("EvalJob", "FusionJob", "VideoJob", "acomplete", "aevaluate", "afuse", "arejudge", "avideo",
                     "complete", "estimate_evaluation", "estimate_video", "evaluate", "export_history", "fuse",
                     "history", "rejudge", "resume_evaluation", "video"), ".api"),
    "JobResult": ".calls.job",
    "Settings": ".calls.settings",
    "Response": ".core.record",
    "EvalResult": ".evaluation",
    "FusionResult": ".fusion.result",
    "Verdict": ".fusion.result",
    "Video": ".videos.result",
    "VideoResult": ".videos.result",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fusion_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__version__ = "0.1.0"

__all__ = [
    "EvalJob",
    "EvalResult",
    "FusionJob",
    "FusionResult",
    "JobResult",
    "Response",
    "Settings",
    "Verdict",
    "Video",
    "VideoJob",
    "VideoResult",
    "acomplete",
    "aevaluate",
    "afuse",
    "arejudge",
    "avideo",
    "complete",
    "estimate_evaluation",
    "estimate_video",
    "evaluate",
    "export_history",
    "fuse",
    "history",
    "load_ipython_extension",
    "rejudge",
    "resume_evaluation",
    "unload_ipython_extension",
    "video",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext fusion_magic``: register %%fuse, %fuse, %%video and %video."""
    from .ipython.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext fusion_magic``: forget the configurable and cancel running work."""
    from .ipython.extension import unload

    unload(ipython)
