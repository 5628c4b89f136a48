"""``--check local:frames``: check a generated clip's technical spec against what was asked, from its
:class:`Analysis`. It measures length, aspect, resolution, audio and black or frozen stretches, never what the
clip shows, so wherever its result is shown it is called "spec" (``spec 5/6 checks passed``, "best spec"),
never a score of how well the clip matches the prompt.

    score, reasons = check_spec(analysis, seconds=8, aspect="16:9", resolution="720p", want_audio=True)
    # 8.3, ["✓ duration 8.0 s (asked 8 s)", ..., "✗ frozen 0:03.5-0:05.0"]
    spec_tally(reasons)  # (5, 6): checks passed, checks made

Each requested property is one check (an argument left None is not checked); "no black stretch" and "no
frozen stretch" are always checked. The score is 10 x passed / checked: it ranks clips by their spec, it says
nothing of their content. Every check gives one reason line, starting with ✓ or ✗.
"""

from __future__ import annotations

import re

from .analyse import Analysis, Span, clock

DURATION_TOLERANCE_S = 0.5
ASPECT_TOLERANCE = 0.02
# Encoders may round a side to a multiple of 8 or 16 (1080 -> 1088 before cropping); 2 % allows for that.
SIZE_TOLERANCE = 0.02
_NAMED = {"4k": 2160, "2k": 1440}

CHECKER = "local:frames"
PASSED, FAILED = "✓", "✗"
# Said beside a spec check's result wherever it is shown, so that nobody reads it as a verdict on the content.
MEASURES = "the technical spec (length, aspect, resolution, black or frozen stretches), not the content"


def check_spec(analysis: Analysis, *, seconds: float | None = None, aspect: str | None = None,
               resolution: str | None = None, want_audio: bool | None = None) -> tuple[float, list[str]]:
    """(score 0..10 for ranking by spec, one reason line per check). Pure: reads only ``analysis``.

    ``aspect`` is ``"W:H"`` (``"16:9"``, ``"9:16"``, ``"1:1"``), matched within 2 %. ``resolution`` is
    ``"720p"``-style (the short side: height 720 for a landscape clip, width 720 for a portrait one; also
    ``"4k"``) or ``"WxH"``. ``want_audio`` True asks for an audio stream, False for none.
    """
    checks: list[tuple[bool, str]] = []
    if seconds is not None:
        off = analysis.duration_s - seconds
        ok = abs(off) <= DURATION_TOLERANCE_S
        checks.append((ok, f"duration {analysis.duration_s:.1f} s (asked {seconds:g} s"
                           + (")" if ok else f", {abs(off):.1f} s too {'long' if off > 0 else 'short'})")))
    if aspect is not None:
        checks.append(_check_aspect(analysis, aspect))
    if resolution is not None:
        checks.append(_check_resolution(analysis, resolution))
    if want_audio is not None:
        has = analysis.audio is not None
        what = f"{analysis.audio} audio" if has else "no audio"
        checks.append((has == want_audio, f"{what} (asked {'with' if want_audio else 'without'} audio)"))
    checks.append(_check_spans("black", analysis.black))
    checks.append(_check_spans("frozen", analysis.frozen))
    passed = sum(ok for ok, _ in checks)
    score = round(10 * passed / len(checks), 1)
    return score, [f"{PASSED if ok else FAILED} {reason}" for ok, reason in checks]


def spec_tally(reasons: list[str]) -> tuple[int, int]:
    """(checks passed, checks made) from ``check_spec``'s reason lines: what a spec check is shown as."""
    return sum(r.startswith(PASSED) for r in reasons), len(reasons)


def _check_aspect(analysis: Analysis, aspect: str) -> tuple[bool, str]:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[:/x]\s*(\d+(?:\.\d+)?)\s*", aspect)
    size = f"{analysis.width}x{analysis.height}"
    if not match or not analysis.height or float(match[2]) == 0:
        return False, f"aspect {aspect!r} not understood (clip is {size})"
    wanted = float(match[1]) / float(match[2])
    actual = analysis.width / analysis.height
    ok = abs(actual / wanted - 1) <= ASPECT_TOLERANCE
    return ok, f"aspect {size} = {actual:.3f}:1 (asked {aspect.strip()} = {wanted:.3f}:1)"


def _check_resolution(analysis: Analysis, resolution: str) -> tuple[bool, str]:
    text = resolution.strip().lower()
    size = f"{analysis.width}x{analysis.height}"
    explicit = re.fullmatch(r"(\d+)\s*x\s*(\d+)", text)
    if explicit:
        ok = _close(analysis.width, int(explicit[1])) and _close(analysis.height, int(explicit[2]))
        return ok, f"resolution {size} (asked {resolution.strip()})"
    short = _NAMED.get(text)
    if short is None and (named := re.fullmatch(r"(\d+)p", text)):
        short = int(named[1])
    if short is None:
        return False, f"resolution {resolution!r} not understood (clip is {size})"
    ok = _close(min(analysis.width, analysis.height), short)
    return ok, f"resolution {size} (asked {resolution.strip()}: short side {short})"


def _close(actual: int, wanted: int) -> bool:
    return abs(actual - wanted) <= SIZE_TOLERANCE * wanted


def _check_spans(label: str, spans: tuple[Span, ...]) -> tuple[bool, str]:
    if not spans:
        return True, f"no {label} stretch"
    listed = ", ".join(f"{clock(a)}-{clock(b)}" for a, b in spans[:5])
    more = f" and {len(spans) - 5} more" if len(spans) > 5 else ""
    return False, f"{label} {listed}{more}"


__all__ = ["CHECKER", "FAILED", "MEASURES", "PASSED", "check_spec", "spec_tally"]
