"""``local:frames``: what is in a video file, measured offline with PyAV, in a child process.

    analysis = await analyse(Path("clip.mp4"), Path("thumbs"))   # runs python -m fusion_magic.videos.analyse
    print(analysis.describe())        # "clip.mp4: 4.5 s, 320x180 at 24 fps, h264, no audio. 2 cuts: ..."
    probe(Path("notes.txt"))          # "notes.txt cannot be decoded: Invalid data found when processing input"

Why a child process: FFmpeg is native code, and a native crash must never take the notebook kernel down
(the lesson of llama.cpp segfaulting on some CPUs); decoding a long file must not block the kernel's event
loop either. The kernel only starts ``python -m fusion_magic.videos.analyse --serve`` and sends it one request (a
run starts it ahead of need, :func:`warm_analysers`, so its imports overlap the jobs), which prints
one JSON line, the :class:`Analysis` or ``{"error": ..., "cause": ...}``. A crash, a timeout or a cancel
ends as :class:`AnalysisFailed` (the child is killed and reaped first). Only :func:`probe` opens a file in
the kernel, and only its header.

What is measured, on every decoded frame scaled down to a tiny RGB grid (64 pixels on the long side), one
frame at a time (memory does not grow with the file's length, except a few floats per quarter second):

- a change score per frame: the mean of the mean absolute difference from the previous frame and the
  colour-histogram distance between them. A moving object changes few pixels and barely moves the
  histogram; a cut changes both. A cut is a score above ``CUT_MIN`` that is the peak of its neighbourhood
  (``CUT_WINDOW`` frames either side) and ``CUT_RATIO`` times their median: a jump above the local level,
  so steady fast motion does not read as a string of cuts.
- black: at least 98 % of the grid darker than 10 % luma; frozen: no visible change from the previous
  frame (mean difference under ``FROZEN_DIFF`` and no pixel over ``FROZEN_MAX``, which tolerates encoder
  noise) while not black. Stretches shorter than ``MIN_STRETCH_S`` are not reported.
- motion: the mean frame difference over each quarter second, cut frames left out.
- thumbnails: one per scene, taken a few frames after its start (past any transition), at most
  ``max_keyframes`` spread evenly over the scenes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import json
import os
import signal
import statistics
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ProviderError

if TYPE_CHECKING:
    import av.container
    import av.video.frame
    import av.video.stream
    import numpy as np

GRID_SIDE = 64  # the long side of the grid every frame is scaled to before it is measured
THUMB_SIDE = 160  # the long side of a keyframe thumbnail
CUT_MIN = 0.1
CUT_RATIO = 3.0
CUT_WINDOW = 3
BLACK_LUMA = 0.10
BLACK_SHARE = 0.98
FROZEN_DIFF = 0.003
FROZEN_MAX = 0.05
MIN_STRETCH_S = 0.5
MOTION_STEP_S = 0.25
MAX_KEYFRAMES = 8
# Variables the analyser never needs: keys stay in the kernel (and out of any native crash dump).
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET")
_STDERR_LINES = 20


class AnalysisFailed(ProviderError):
    """``local:frames`` could not analyse a file. The message is one line a user can act on.

    ``cause`` is a stable label: ``"missing"`` (no such file), ``"no_video"`` (no video stream),
    ``"undecodable"`` (FFmpeg cannot read it; its reason is in the message), ``"crashed"`` (the analyser
    process died; ``signal`` names the signal), ``"timeout"``, or ``"failed"`` (anything else).
    """

    kind = "analysis"

    def __init__(self, message: str, *, cause: str = "failed", signal: str | None = None,
                 stderr_tail: str = "") -> None:
        super().__init__(message, provider="local", model="frames")
        self.cause = cause
        self.signal = signal
        self.stderr_tail = stderr_tail


Span = tuple[float, float]


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyse` measured in one video file. Times are seconds from the start of the file.

    ``motion`` holds (time, mean absolute frame difference 0..1) per quarter second; ``black`` and
    ``frozen`` hold (start, end) stretches of at least half a second; ``keyframes`` the paths of JPEG
    thumbnails, one per scene (at most eight, spread evenly); ``notes`` anything odd about the file.
    """

    path: str
    duration_s: float
    fps: float
    width: int
    height: int
    video_codec: str
    audio: str | None = None
    audio_channels: int = 0
    bit_rate: int | None = None
    frame_count: int = 0
    cuts: tuple[float, ...] = ()
    motion: tuple[Span, ...] = ()
    black: tuple[Span, ...] = ()
    frozen: tuple[Span, ...] = ()
    keyframes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        """The inverse of :meth:`to_dict`; unknown keys are ignored (a newer analyser may add some)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("cuts", "keyframes", "notes"):
            values[name] = tuple(values.get(name, ()))
        for name in ("motion", "black", "frozen"):
            values[name] = tuple((float(a), float(b)) for a, b in values.get(name, ()))
        return cls(**values)

    def describe(self) -> str:
        """A plain-text report for a person: size and format, then cuts, black and frozen stretches, motion."""
        name = Path(self.path).name
        sound = (f"{self.audio} audio ({self.audio_channels} channel{'s' if self.audio_channels != 1 else ''})"
                 if self.audio else "no audio")
        length = f"{self.duration_s:.1f} s" if self.duration_s < 60 else clock(self.duration_s)
        lines = [f"{name}: {length}, {self.width}x{self.height} at {_number(self.fps)} fps, "
                 f"{self.video_codec}, {sound}."]
        if self.cuts:
            shown = ", ".join(clock(t) for t in self.cuts[:20])
            more = f" and {len(self.cuts) - 20} more" if len(self.cuts) > 20 else ""
            lines.append(f"{len(self.cuts)} cut{'s' if len(self.cuts) != 1 else ''}: {shown}{more}.")
        else:
            lines.append("No cuts (one continuous shot).")
        for label, spans in (("Black", self.black), ("Frozen", self.frozen)):
            if spans:
                lines.append(f"{label} " + ", ".join(f"{clock(a)}-{clock(b)}" for a, b in spans) + ".")
        if not self.black and not self.frozen:
            lines.append("No black or frozen stretches.")
        if self.motion:
            values = [m for _, m in self.motion]
            peak_t, peak = max(self.motion, key=lambda tm: tm[1])
            lines.append(f"Motion (mean frame difference, 0-1): average {sum(values) / len(values):.3f}, "
                         f"peak {peak:.3f} at {clock(peak_t)}.")
        if self.keyframes:
            lines.append(f"{len(self.keyframes)} keyframe thumbnail{'s' if len(self.keyframes) != 1 else ''} "
                         f"in {Path(self.keyframes[0]).parent}.")
        lines.extend(f"Note: {note}" for note in self.notes)
        return "\n".join(lines)


def clock(seconds: float) -> str:
    """``M:SS.s``, e.g. ``clock(95.25) == "1:35.2"`` (rounded to the tenth first, so 59.96 s is 1:00.0)."""
    tenths = round(seconds * 10)
    minutes, rest = divmod(tenths, 600)
    return f"{minutes}:{rest // 10:02d}.{rest % 10}"


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- the kernel's side


def probe(path: Path) -> str | None:
    """None when ``path`` opens as a media file with a video stream, else the one-line reason why not.

    Meant for plan time, to refuse a file before anything is sent or started. It runs in the calling
    process (the kernel): FFmpeg reads the container header and probes the first packets (its probesize,
    a few MB at most), which is quick and the best-trodden code in FFmpeg; decoding, where a malformed
    stream is likelier to hit a native bug, happens only in :func:`analyse`'s child process. That is the
    trade-off: a plan-time answer without starting a process, at the price of trusting FFmpeg's demuxer.
    """
    try:
        with _open(path) as container:
            if not _pictures(container):
                return _no_video_message(path, container)
    except AnalysisFailed as error:
        return error.message
    return None


class Analysers:
    """Analyser children started ahead of need, one at a time, for a run that will analyse ``clips`` files.

    A child spends most of a short clip's analysis importing PyAV and NumPy. Started while the run's jobs are
    still going, that start-up is overlapped with them, and the analysis after the last download is only the
    decoding. Each child still analyses exactly one file (a native crash costs that file only); when one is
    taken and more clips are to come, the next is started at once. Used through :func:`warm_analysers`.
    """

    def __init__(self, clips: int) -> None:
        self._left = clips
        self._spare: asyncio.Task[asyncio.subprocess.Process] | None = None

    def prewarm(self) -> None:
        """Start the next child now, unless one is waiting or no clip is left to analyse."""
        if self._spare is None and self._left > 0:
            self._spare = asyncio.create_task(_spawn())

    async def take(self) -> asyncio.subprocess.Process | None:
        """A started child for one analysis (None when none was started), and the next one on its way."""
        self._left -= 1
        spare, self._spare = self._spare, None
        self.prewarm()
        if spare is None:
            return None
        try:
            return await spare
        except OSError:
            return None  # analyse() starts one itself, and says why if that fails too

    async def close(self) -> None:
        """Stop the child no clip took, so none outlives the run."""
        spare, self._spare = self._spare, None
        if spare is None:
            return
        spare.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await _stop(await spare)


_ANALYSERS: contextvars.ContextVar[Analysers | None] = contextvars.ContextVar("fusion_magic_analysers", default=None)


@contextlib.asynccontextmanager
async def warm_analysers(clips: int) -> AsyncIterator[None]:
    """Within this block, :func:`analyse` (in this task and the tasks it starts) takes children started ahead of
    need, for up to ``clips`` files; the first starts at the first :func:`prewarm_analyser` (once a job was
    submitted: spawning a process before the submits would delay them).

        async with warm_analysers(len(jobs)):
            await asyncio.gather(*(make_and_analyse(job) for job in jobs))
    """
    analysers = Analysers(clips)
    token = _ANALYSERS.set(analysers)
    try:
        yield
    finally:
        _ANALYSERS.reset(token)
        await asyncio.shield(analysers.close())


def prewarm_analyser() -> None:
    """Start an analyser child now for the clip to come, inside :func:`warm_analysers` (else nothing)."""
    analysers = _ANALYSERS.get()
    if analysers is not None:
        analysers.prewarm()


async def _spawn() -> asyncio.subprocess.Process:
    """A child that imports what decoding needs, then waits for one request on its stdin."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith(_SECRET_SUFFIXES)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fusion_magic.videos.analyse", "--serve",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env,
        # Its own session: an interrupt sent to the kernel's process group must not kill it behind our
        # back; cancelling the task is what stops it.
        start_new_session=True,
    )


async def analyse(path: Path, thumbs_dir: Path, *, timeout: float = 120.0,
                  max_keyframes: int = MAX_KEYFRAMES, on_start: Callable[[int], None] | None = None) -> Analysis:
    """Analyse ``path`` in a child process and write keyframe thumbnails into ``thumbs_dir``.

    ``on_start`` is called with the child's pid as soon as it runs. The child is killed (and reaped) when
    this is cancelled or runs past ``timeout`` seconds. Raises :class:`AnalysisFailed` for a file that is
    not a video, a crash of the analyser (the kernel is unharmed), or the timeout. Inside
    :func:`warm_analysers`, the child was started ahead of need.
    """
    analysers = _ANALYSERS.get()
    proc = await analysers.take() if analysers is not None else None
    if proc is None:
        try:
            proc = await _spawn()
        except OSError as error:
            raise AnalysisFailed(f"could not start the video analyser: {error}") from error
    request = json.dumps({"path": str(path), "thumbs": str(thumbs_dir), "max_keyframes": max_keyframes})
    try:
        if on_start is not None:
            on_start(proc.pid)
        out, err = await asyncio.wait_for(proc.communicate(request.encode() + b"\n"), timeout)
    except TimeoutError:
        await _stop(proc)
        raise AnalysisFailed(f"analysing {path.name} took longer than {timeout:g} s; the analyser was stopped",
                             cause="timeout") from None
    except BaseException:
        await _stop(proc)
        raise
    return _result(path, proc.returncode, out, err)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Kill the child and wait for it, so no process outlives the call (not even as a zombie)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    # Shielded: a second cancel while we wait must not leave the child unreaped.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(proc.wait())


def _result(path: Path, code: int | None, out: bytes, err: bytes) -> Analysis:
    tail = "\n".join(err.decode(errors="replace").strip().splitlines()[-_STDERR_LINES:])
    lines = [line for line in out.decode(errors="replace").splitlines() if line.strip()]
    message: dict[str, Any] | None = None
    if lines:
        with contextlib.suppress(ValueError):
            message = json.loads(lines[-1])
    if code is not None and code < 0:
        name, why = _signal_words(-code)
        raise AnalysisFailed(f"the video analyser died with {name} ({why}) while reading {path.name}; "
                             "the kernel is fine", cause="crashed", signal=name, stderr_tail=tail)
    if isinstance(message, dict) and "error" in message:
        raise AnalysisFailed(str(message["error"]), cause=str(message.get("cause", "failed")), stderr_tail=tail)
    if code == 0 and isinstance(message, dict):
        try:
            return Analysis.from_dict(message)
        except (TypeError, ValueError) as error:
            raise AnalysisFailed(f"the video analyser's answer about {path.name} could not be read: {error}",
                                 stderr_tail=tail) from error
    last = tail.splitlines()[-1] if tail else "no output"
    raise AnalysisFailed(f"the video analyser exited with code {code} while reading {path.name} ({last}); "
                         "the kernel is fine", cause="crashed", stderr_tail=tail)


def _signal_words(number: int) -> tuple[str, str]:
    try:
        sig = signal.Signals(number)
    except ValueError:
        return f"signal {number}", "an unknown signal"
    why = {
        signal.SIGSEGV: "a crash in FFmpeg",
        signal.SIGBUS: "a crash in FFmpeg",
        signal.SIGABRT: "FFmpeg aborted",
        signal.SIGKILL: "killed, often by the out-of-memory killer",
    }.get(sig, signal.strsignal(sig.value) or sig.name)
    return sig.name, why


# ------------------------------------------------------------------------------------------ the child's side


def _open(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading, or raise AnalysisFailed with FFmpeg's reason."""
    import av

    if not path.exists():
        raise AnalysisFailed(f"{path.name} does not exist", cause="missing")
    if path.is_dir():
        raise AnalysisFailed(f"{path.name} is a folder, not a video file", cause="undecodable")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError) as error:
        raise AnalysisFailed(f"{path.name} cannot be decoded: {_reason(error)}", cause="undecodable") from error


def _reason(error: BaseException) -> str:
    return str(getattr(error, "strerror", None) or error).splitlines()[0]


def _pictures(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The video streams that move: an audio file's cover art is a one-picture "video" stream too."""
    import av

    return [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]


def _no_video_message(path: Path, container: av.container.InputContainer) -> str:
    audio = container.streams.audio
    what = f" (audio only: {audio[0].codec_context.name})" if audio else ""
    return f"{path.name} has no video stream{what}"


def analyse_in_process(path: Path, thumbs_dir: Path, *, max_keyframes: int = MAX_KEYFRAMES) -> Analysis:
    """The analysis itself, in this process: what the child runs. Use :func:`analyse` from the kernel."""
    with _open(path) as container:
        pictures = _pictures(container)
        if not pictures:
            raise AnalysisFailed(_no_video_message(path, container), cause="no_video")
        stream = pictures[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        scan = _Scan(fps, max_keyframes)
        errors: list[str] = []
        for frame in _frames(container, stream, errors):
            scan.add(frame)
        if not scan.count:
            reason = errors[0] if errors else "the video stream holds no frames"
            raise AnalysisFailed(f"{path.name} cannot be decoded: {reason}", cause="undecodable")
        scan.finish()
        notes = list(scan.notes)
        if errors:
            notes.append(f"{len(errors)} damaged packet{'s' if len(errors) != 1 else ''} skipped "
                         f"(first: {errors[0]})")
        if len(pictures) > 1:
            notes.append(f"{len(pictures)} video streams: only the first was analysed")
        duration = container.duration / 1_000_000 if container.duration else scan.end
        if abs(duration - scan.end) > MIN_STRETCH_S:
            notes.append(f"the picture ends at {clock(scan.end)} but the file lasts {clock(duration)}")
        audio = container.streams.audio[0] if container.streams.audio else None
        keyframes = scan.write_thumbs(thumbs_dir, path.stem)
        return Analysis(
            path=str(path), duration_s=round(duration, 3), fps=round(fps or scan.measured_fps(), 3),
            width=stream.codec_context.width, height=stream.codec_context.height,
            video_codec=stream.codec_context.name,
            audio=audio.codec_context.name if audio else None,
            audio_channels=audio.codec_context.channels if audio else 0,
            bit_rate=container.bit_rate or None, frame_count=scan.count,
            cuts=tuple(scan.cuts), motion=tuple(scan.motion), black=tuple(scan.black), frozen=tuple(scan.frozen),
            keyframes=tuple(str(p) for p in keyframes), notes=tuple(notes),
        )


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
            errors: list[str]) -> Iterator[av.video.frame.VideoFrame]:
    """Every decodable frame, in order; a damaged packet is skipped and its reason kept in ``errors``."""
    import av

    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.FFmpegError as error:
            errors.append(_reason(error))


@dataclass
class _Frame:
    """One frame's measurements, kept only while its cut decision waits for the frames after it."""

    time: float
    diff: float  # mean absolute difference from the previous frame, 0..1
    peak: float  # largest single difference, 0..1
    score: float  # change score: mean of diff and the histogram distance
    black: bool
    first: bool


@dataclass
class _Scan:
    """The streaming state: measures each frame, decides cuts ``CUT_WINDOW`` frames late, keeps spans."""

    fps: float
    max_keyframes: int
    count: int = 0
    end: float = 0.0
    cuts: list[float] = field(default_factory=list)
    motion: list[Span] = field(default_factory=list)
    black: list[Span] = field(default_factory=list)
    frozen: list[Span] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _prev: Any = None  # the previous frame's grid (int16) and histogram
    _past: deque[_Frame] = field(default_factory=lambda: deque(maxlen=CUT_WINDOW))
    _pending: deque[_Frame] = field(default_factory=deque)
    _last: Any = None  # the newest decoded VideoFrame: the thumbnail source when a scene is confirmed
    _last_time: float = -1.0
    _disordered: bool = False
    _intervals: tuple[float, float] = (float("inf"), 0.0)
    _scenes: int = 0
    _thumbs: _Thumbs | None = None
    _bin: tuple[int, float, int] = (0, 0.0, 0)  # quarter second, sum of differences, frames
    _black_from: float | None = None
    _frozen_from: float | None = None
    _decided_time: float = 0.0

    def add(self, frame: av.video.frame.VideoFrame) -> None:
        import numpy as np

        step = 1 / self.fps if self.fps else 0.04
        time = float(frame.time) if frame.time is not None else self._last_time + step
        if time <= self._last_time:
            if not self._disordered:
                self.notes.append(f"frame timestamps go backwards or repeat near {clock(time)}")
                self._disordered = True
            time = self._last_time + step
        if self.count:
            gap = time - self._last_time
            self._intervals = (min(self._intervals[0], gap), max(self._intervals[1], gap))
        width, height = _fit(frame.width, frame.height, GRID_SIDE)
        grid = frame.reformat(width=width, height=height, format="rgb24").to_ndarray().astype(np.int16)
        hist = np.stack([np.bincount(grid[..., c].ravel() >> 4, minlength=16) for c in range(3)]) / grid[..., 0].size
        luma = grid @ np.array([0.299, 0.587, 0.114])
        black = bool((luma < BLACK_LUMA * 255).mean() >= BLACK_SHARE)
        if self._prev is None:
            measured = _Frame(time, 0.0, 0.0, 0.0, black, first=True)
        else:
            before, before_hist = self._prev
            delta = np.abs(grid - before)
            diff = float(delta.mean()) / 255
            hist_distance = float(np.abs(hist - before_hist).sum()) / 6  # 3 channels, each 0..2
            measured = _Frame(time, diff, float(delta.max()) / 255, (diff + hist_distance) / 2, black, first=False)
        self._prev = (grid, hist)
        self._last, self._last_time = frame, time
        self.count += 1
        self._pending.append(measured)
        if len(self._pending) > CUT_WINDOW:
            self._decide(self._pending.popleft())

    def finish(self) -> None:
        while self._pending:
            self._decide(self._pending.popleft())
        low, high = self._intervals
        step = 1 / self.fps if self.fps else (low if low < float("inf") else 0.04)
        self.end = self._last_time + step
        if self.count > 2 and high > 1.5 * low:
            self.notes.append(f"variable frame rate: frames {low * 1000:.0f} to {high * 1000:.0f} ms apart")
        self._close_black(self.end)
        self._close_frozen(self.end)
        if self._bin[2]:
            self._emit_motion()

    def measured_fps(self) -> float:
        return (self.count - 1) / self._last_time if self._last_time > 0 else 0.0

    def _decide(self, frame: _Frame) -> None:
        past = [f.score for f in self._past]
        future = [f.score for f in self._pending]
        neighbours = past + future
        cut = (not frame.first and frame.score >= CUT_MIN
               and frame.score > max(past, default=0.0) and frame.score >= max(future, default=0.0)
               and frame.score >= CUT_RATIO * (statistics.median(neighbours) if neighbours else 0.0))
        if frame.first or cut:
            if cut:
                self.cuts.append(round(frame.time, 3))
            self._offer_thumb()
        self._track_motion(frame, cut)
        if frame.black and self._black_from is None:
            self._black_from = frame.time
        elif not frame.black:
            self._close_black(frame.time)
        still = (not frame.first and not cut and not frame.black
                 and frame.diff <= FROZEN_DIFF and frame.peak <= FROZEN_MAX)
        if still and self._frozen_from is None:
            self._frozen_from = self._decided_time  # the frame that is held started the stretch
        elif not still:
            self._close_frozen(frame.time)
        self._decided_time = frame.time
        self._past.append(frame)

    def _close_black(self, end: float) -> None:
        if self._black_from is not None and end - self._black_from >= MIN_STRETCH_S - 1e-6:
            self.black.append((round(self._black_from, 3), round(end, 3)))
        self._black_from = None

    def _close_frozen(self, end: float) -> None:
        if self._frozen_from is not None and end - self._frozen_from >= MIN_STRETCH_S - 1e-6:
            self.frozen.append((round(self._frozen_from, 3), round(end, 3)))
        self._frozen_from = None

    def _track_motion(self, frame: _Frame, cut: bool) -> None:
        if frame.first or cut:
            return
        index = int(frame.time / MOTION_STEP_S)
        if self._bin[2] and index != self._bin[0]:
            self._emit_motion()
        at, total, n = self._bin if self._bin[2] else (index, 0.0, 0)
        self._bin = (at, total + frame.diff, n + 1)

    def _emit_motion(self) -> None:
        at, total, n = self._bin
        self.motion.append((round(at * MOTION_STEP_S, 3), round(total / n, 5)))
        self._bin = (0, 0.0, 0)

    def _offer_thumb(self) -> None:
        if self._thumbs is None:
            self._thumbs = _Thumbs(self.max_keyframes)
        if self._last is not None:
            self._thumbs.offer(self._scenes, self._last)
        self._scenes += 1

    def write_thumbs(self, folder: Path, stem: str) -> list[Path]:
        return self._thumbs.write(folder, stem) if self._thumbs is not None else []


class _Thumbs:
    """Thumbnails of at most ``2 * keep`` scenes in memory, spread evenly however many scenes come: when
    full, every other one is dropped and only every ``stride``-th scene is kept from then on."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.stride = 1
        self.kept: list[tuple[int, np.ndarray]] = []

    def offer(self, scene: int, frame: av.video.frame.VideoFrame) -> None:
        if self.keep <= 0 or scene % self.stride:
            return
        width, height = _fit(frame.width, frame.height, THUMB_SIDE)
        self.kept.append((scene, frame.reformat(width=width, height=height, format="rgb24").to_ndarray()))
        if len(self.kept) > 2 * self.keep:
            self.stride *= 2
            self.kept = [(s, image) for s, image in self.kept if s % self.stride == 0]

    def write(self, folder: Path, stem: str) -> list[Path]:
        if not self.kept:
            return []
        count = min(self.keep, len(self.kept))
        picks = sorted({round(i * (len(self.kept) - 1) / max(1, count - 1)) for i in range(count)})
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for i in picks:
            scene, image = self.kept[i]
            dest = folder / f"{stem}-scene{scene:02d}.jpg"
            dest.write_bytes(_jpeg(image))
            written.append(dest)
        return written


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled so the long side is ``side``, both even (what 4:2:0 needs)."""
    scale = side / max(width, height, 1)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _jpeg(image: np.ndarray) -> bytes:
    import av

    height, width = image.shape[:2]
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


def main(argv: list[str] | None = None) -> int:
    """``python -m fusion_magic.videos.analyse PATH --thumbs DIR``: one JSON line on stdout, exit 0 or 1.

    ``--serve``: import what decoding needs first, then read the request as one JSON line on stdin
    (``{"path": ..., "thumbs": ..., "max_keyframes": ...}``); how the kernel starts a child ahead of need. A
    stdin closed with no request exits 0 at once.
    """
    parser = argparse.ArgumentParser(prog="python -m fusion_magic.videos.analyse", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, nargs="?")
    parser.add_argument("--thumbs", type=Path, help="folder for the keyframe thumbnails")
    parser.add_argument("--max-keyframes", type=int, default=MAX_KEYFRAMES)
    parser.add_argument("--serve", action="store_true", help="read one request from stdin (after the imports)")
    args = parser.parse_args(argv)
    if args.serve:
        import av  # noqa: F401  (the start-up a child started ahead of need has done before it is asked)
        import numpy  # noqa: F401

        line = sys.stdin.readline()
        if not line.strip():
            return 0
        request = json.loads(line)
        path, thumbs = Path(request["path"]), Path(request["thumbs"])
        max_keyframes = int(request.get("max_keyframes", MAX_KEYFRAMES))
    elif args.path is None or args.thumbs is None:
        parser.error("PATH and --thumbs are needed (or --serve)")
    else:
        path, thumbs, max_keyframes = args.path, args.thumbs, args.max_keyframes
    try:
        analysis = analyse_in_process(path, thumbs, max_keyframes=max_keyframes)
    except AnalysisFailed as error:
        print(json.dumps({"error": error.message, "cause": error.cause}), flush=True)
        return 1
    except Exception as error:  # a bug of ours or an odd file: still one line the kernel can show
        print(json.dumps({"error": f"analysing {path.name} failed: {type(error).__name__}: {error}",
                          "cause": "failed"}), flush=True)
        return 1
    print(json.dumps(analysis.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
