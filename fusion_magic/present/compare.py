"""Clips side by side: a grid of players that one play/pause button and one scrubber drive together, each clip's
label, model, length, cost and check under it. Shown once a run has ``MIN_CLIPS`` saved clips: in the live view
(``view.video.ComparePane``, ipywidgets players) and in the static report a saved notebook keeps
(``compare_html``, ``<video>`` elements pointing at the saved files, as the report's own players do).

Syncing needs a little script. As with the copy button (``fold.COPY_HANDLER``), it is two fixed handler strings,
never built from model text or file names: ``PLAY_HANDLER`` on the button's ``onclick`` and ``SCRUB_HANDLER`` on
the range's ``oninput``. Each finds its grid (the nearest ``.fm-compare`` ancestor) and drives every ``<video>``
in it; no ``<script>`` tag, no handler on the players. Where the output is not trusted the handlers are stripped
and the players are still there (without controls: the file links under each clip's own section open them).

Clips of different lengths: the scrubber spans the longest clip; a shorter one stops on its last frame while the
others go on, and starts again when the scrubber goes back inside it. While playing, the longest clip is the
clock: every tenth of a second the scrubber follows it and a clip more than a quarter second off is put back.

    compare_html([(video, file_href(video.path)) for video in saved])   # the static grid
    controls_html(longest_seconds(videos)); caption_html(video)          # the live view's pieces
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .sanitize import escape_text

__all__ = [
    "CLIP_CLASS", "COMPARE_CLASS", "GRID_COLUMNS", "MIN_CLIPS", "PLAY_CLASS", "PLAY_HANDLER", "SCRUB_CLASS",
    "SCRUB_HANDLER", "TIME_CLASS", "ComparedClip", "caption_html", "clip_figures", "compare_html", "controls_html",
    "longest_seconds",
]

# A grid is worth its space from three clips; two sit side by side in their own sections well enough.
MIN_CLIPS = 3

COMPARE_CLASS = "fm-compare"  # the grid and its controls: what the handlers look for
PLAY_CLASS = "fm-compare-play"
SCRUB_CLASS = "fm-compare-scrub"
TIME_CLASS = "fm-compare-time"
CLIP_CLASS = "fm-compare-clip"
# Columns of at least 16rem, as many as fit: three across a laptop's cell, one on a phone.
GRID_COLUMNS = "repeat(auto-fill, minmax(16rem, 1fr))"

_PLAY = "\u25b6 Play"

# The play/pause button's handler. Playing: every clip from the scrubber's place (from the start once it is at
# the end), muted (one clip's sound over another's is noise; a browser also plays muted clips without asking),
# then a timer that moves the scrubber with the longest clip that loaded, puts back a clip that drifted, and stops
# when the longest clip ended, or pauses them all when the grid or its button left the page (redrawn).
# ``g.fmPlaying`` and ``g.fmTimer`` live on the grid's element.
PLAY_HANDLER = (
    "(function(b){var g=b.closest('.fm-compare');if(!g)return;"
    "var r=g.querySelector('input.fm-compare-scrub'),l=g.querySelector('.fm-compare-time');"
    "function vs(){return [].slice.call(g.querySelectorAll('video'))}"
    "function d(v){return isFinite(v.duration)?v.duration:Infinity}"
    "function go(v){var p=v.play();if(p&&p.catch)p.catch(function(){})}"
    "function len(){var m=parseFloat(r.max)||0;vs().forEach(function(v){if(isFinite(v.duration)&&v.duration>m)"
    "m=v.duration});return m}"
    "function show(t){var m=len();r.max=m;r.value=t;if(l)l.textContent=t.toFixed(1)+' / '+m.toFixed(1)+' s'}"
    "function stop(){clearInterval(g.fmTimer);g.fmTimer=0;g.fmPlaying=false;b.textContent='\\u25b6 Play'}"
    "if(g.fmPlaying){vs().forEach(function(v){v.pause()});stop();return}"
    "var t=parseFloat(r.value)||0;if(t>=len()-0.05)t=0;"
    "vs().forEach(function(v){v.muted=true;v.playsInline=true;v.currentTime=Math.min(t,d(v));"
    "if(t<d(v)-0.05)go(v)});"
    "g.fmPlaying=true;b.textContent='\\u275a\\u275a Pause';show(t);clearInterval(g.fmTimer);"
    "g.fmTimer=setInterval(function(){if(!g.isConnected||!b.isConnected){vs().forEach(function(v){v.pause()});"
    "stop();return}"
    "var a=vs(),m=null;a.forEach(function(v){if(!v.error&&isFinite(v.duration)&&(!m||v.duration>m.duration))m=v});"
    "if(!m)return;if(m.ended){stop();show(len());return}"
    "var t=m.currentTime;show(t);"
    "a.forEach(function(v){if(v!==m&&t<d(v)-0.1&&Math.abs(v.currentTime-t)>0.25){v.currentTime=t;"
    "if(v.paused)go(v)}})},100)})(this)"
)

# The scrubber's handler: every clip to the scrubber's place (a shorter clip to its last frame); while playing,
# a clip the place is inside plays on and one it is past stops there.
SCRUB_HANDLER = (
    "(function(r){var g=r.closest('.fm-compare');if(!g)return;"
    "var l=g.querySelector('.fm-compare-time'),t=parseFloat(r.value)||0,m=parseFloat(r.max)||0;"
    "[].forEach.call(g.querySelectorAll('video'),function(v){var d=isFinite(v.duration)?v.duration:Infinity;"
    "if(d>m&&d<Infinity)m=d;v.muted=true;v.currentTime=Math.min(t,d);"
    "if(g.fmPlaying){if(t<d-0.05){if(v.paused){var p=v.play();if(p&&p.catch)p.catch(function(){})}}"
    "else v.pause()}});"
    "if(m>parseFloat(r.max))r.max=m;if(l)l.textContent=t.toFixed(1)+' / '+m.toFixed(1)+' s'})(this)"
)


class ComparedClip(Protocol):
    """What the grid reads of a clip (``videos.result.Video``, by duck typing: ``present`` sits below it)."""

    @property
    def label(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def seconds(self) -> float | None: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def reused(self) -> bool: ...
    @property
    def best(self) -> bool: ...
    @property
    def best_words(self) -> str: ...
    def check_words(self) -> str | None: ...


def longest_seconds(clips: Iterable[ComparedClip]) -> float:
    """The longest measured clip, in seconds (0 when none was measured): where the scrubber ends until the
    browser reads the files' own lengths."""
    return max((c.seconds for c in clips if c.seconds is not None), default=0.0)


def clip_figures(clip: ComparedClip) -> str:
    """A clip's figures as plain words: ``6.0 s · $0.60 · score 7/10 (best)``; the cost says "cost unknown" when
    the provider said nothing, "not paid again" for a clip an earlier run made; the check only when one ran."""
    parts = [f"{clip.seconds:.1f} s" if clip.seconds is not None else "length unknown"]
    if clip.reused:
        parts.append("from an earlier run, not paid again")
    else:
        parts.append(f"${clip.cost_usd:.2f}" if clip.cost_usd is not None else "cost unknown")
    words = clip.check_words()
    if words is not None:
        parts.append(words + (f" ({clip.best_words})" if clip.best else ""))
    return " · ".join(parts)


def caption_html(clip: ComparedClip) -> str:
    """What a grid cell says under its player: label and model, then the figures (every string escaped)."""
    return (f'<div class="fm-compare-caption" style="font-size:90%;line-height:1.35;margin:.2em 0 0 0">'
            f"<b>{escape_text(clip.label)}</b> · <code>{escape_text(clip.model)}</code><br>"
            f"{escape_text(clip_figures(clip))}</div>")


def controls_html(longest: float) -> str:
    """The one play/pause button, the one scrubber (0 to ``longest`` seconds) and the time it stands at."""
    end = f"{max(longest, 0.0):.2f}"
    return (
        '<div class="fm-compare-controls" style="display:flex;align-items:center;gap:.6em;margin:0 0 .4em 0">'
        f'<button class="{PLAY_CLASS}" type="button" title="play or pause every clip together" '
        f'onclick="{escape_text(PLAY_HANDLER)}">{_PLAY}</button>'
        f'<input class="{SCRUB_CLASS}" type="range" min="0" max="{end}" step="0.01" value="0" '
        f'aria-label="the place in every clip" style="flex:1;min-width:8em" '
        f'oninput="{escape_text(SCRUB_HANDLER)}">'
        f'<span class="{TIME_CLASS}" style="font-variant-numeric:tabular-nums;white-space:nowrap">'
        f"0.0 / {max(longest, 0.0):.1f} s</span></div>"
    )


def compare_html(clips: Sequence[tuple[ComparedClip, str]]) -> str:
    """The static grid: the controls over one cell per ``(clip, src)``; ``src`` is the saved file as a link
    target (``present.paths.file_href``, percent-encoded). The players have no controls of their own (the shared
    ones drive them), never autoplay or loop, and load only the clip's metadata until played."""
    cells = []
    for clip, src in clips:
        cells.append(
            '<div class="fm-compare-cell">'
            f'<video class="{CLIP_CLASS}" muted playsinline preload="metadata" src="{escape_text(src)}" '
            'style="width:100%;display:block;background:#000"></video>'
            f"{caption_html(clip)}</div>"
        )
    grid = (f'<div class="fm-compare-grid" style="display:grid;grid-template-columns:{GRID_COLUMNS};gap:8px">'
            + "".join(cells) + "</div>")
    return (f'<div class="{COMPARE_CLASS}" style="margin:.4em 0 1em 0">'
            f"{controls_html(longest_seconds(c for c, _ in clips))}{grid}</div>")
