"""local:frames: the offline video analysis on real MP4 files with known scenes (made by
fusion_magic.testing.media), in process and through its child process, including the child dying by a
signal, being cancelled and timing out; and the --check local:frames score."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fusion_magic.core.errors import ProviderError
from fusion_magic.testing.media import Scene, make_clip
from fusion_magic.videos.analyse import (
    Analysis,
    AnalysisFailed,
    analyse,
    analyse_in_process,
    clock,
    prewarm_analyser,
    probe,
    warm_analysers,
)
from fusion_magic.videos.frames_check import check_spec, spec_tally

NEAR = 0.5  # seconds: how close a found cut or stretch must be to the true one


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clips every test reads; made once (a few hundred ms each)."""
    folder = tmp_path_factory.mktemp("media")
    # Cuts at 1.5 and 3.5 s.
    make_clip(folder / "three.mp4", scenes=[Scene(1.5), Scene(2.0), Scene(1.0)], audio=True)
    # A long moving scene first (no cut may be found inside it), then cuts at 3.0, 4.0 and 4.5 s.
    make_clip(folder / "four.mp4", scenes=[Scene(3.0), Scene(1.0), Scene(0.5), Scene(1.0)])
    # Cuts at 1.5, 3.5 (into black) and 4.5 (into a frozen frame); black 3.5-4.5, frozen 4.5-5.5.
    make_clip(folder / "stills.mp4", scenes=[Scene(1.5), Scene(2.0), Scene(1.0, "black"), Scene(1.0, "frozen")])
    # Twelve short scenes: more than the thumbnails kept.
    make_clip(folder / "many.mp4", scenes=[Scene(0.3)] * 12, size=(160, 90))
    (folder / "notes.mp4").write_text("These are notes, not a video.\n" * 20)
    _audio_only(folder / "song.mp4")
    _variable_rate(folder / "vfr.mp4")
    return folder


def _audio_only(dest: Path) -> None:
    """An MP4 holding one second of AAC and a cover picture: a "video" stream that is no video."""
    with av.open(str(dest), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=22050)
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 36, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.zeros((36, 64, 3), np.uint8), format="rgb24")
        picture = picture.reformat(format="yuvj420p")
        picture.pts = 0
        for packet in [*cover.encode(picture), *cover.encode()]:
            container.mux(packet)
        for start in range(0, 22050, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 22050, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _variable_rate(dest: Path) -> None:
    """One second at 10 fps, then a cut to one second at 30 fps (timestamps in milliseconds)."""
    with av.open(str(dest), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast"}
        times = [i * 100 for i in range(10)] + [1000 + round(i * 1000 / 30) for i in range(30)]
        for n, ms in enumerate(times):
            image = np.zeros((90, 160, 3), np.uint8)
            image[:] = (200, 40, 40) if ms < 1000 else (40, 40, 200)
            x = (n * 3) % 120
            image[30:60, x:x + 30] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _near(found: tuple[float, ...], expected: list[float]) -> None:
    assert len(found) == len(expected), (found, expected)
    for got, want in zip(found, expected, strict=True):
        assert abs(got - want) <= NEAR, (found, expected)


def _span_near(found: tuple[tuple[float, float], ...], expected: list[tuple[float, float]]) -> None:
    assert len(found) == len(expected), (found, expected)
    for (a, b), (x, y) in zip(found, expected, strict=True):
        assert abs(a - x) <= NEAR and abs(b - y) <= NEAR, (found, expected)


def test_cuts_format_audio_and_thumbnails(media: Path, tmp_path: Path) -> None:
    a = analyse_in_process(media / "three.mp4", tmp_path / "thumbs")
    _near(a.cuts, [1.5, 3.5])
    assert (a.width, a.height, a.fps, a.video_codec) == (320, 180, 24.0, "h264")
    assert a.frame_count == 108  # 4.5 s at 24 fps, every frame decoded
    assert abs(a.duration_s - 4.5) <= 0.1
    assert a.audio == "aac" and a.audio_channels >= 1
    assert a.bit_rate and a.bit_rate > 0
    assert a.black == () and a.frozen == () and a.notes == ()
    # Motion: about four samples a second, every one showing the moving square, none showing a cut.
    assert 16 <= len(a.motion) <= 19
    assert all(0.002 < m < 0.05 for _, m in a.motion), a.motion
    # One thumbnail per scene, real JPEGs of 160 pixels across.
    assert len(a.keyframes) == 3
    for path in a.keyframes:
        assert Path(path).parent == tmp_path / "thumbs"
        assert Path(path).read_bytes()[:2] == b"\xff\xd8"
        with av.open(path) as image:
            frame = next(image.decode(video=0))
            assert (frame.width, frame.height) == (160, 90)
    text = a.describe()
    assert "0:01.5" in text and "0:03.5" in text and "2 cuts" in text
    assert "4.5 s, 320x180 at 24 fps, h264, aac audio" in text


def test_three_cuts_and_no_false_cut_in_a_long_moving_scene(media: Path, tmp_path: Path) -> None:
    a = analyse_in_process(media / "four.mp4", tmp_path)
    _near(a.cuts, [3.0, 4.0, 4.5])
    assert not any(t < 2.9 for t in a.cuts)  # the square crossing the first scene is motion, not a cut
    assert a.audio is None and a.audio_channels == 0
    assert len(a.keyframes) == 4


def test_black_and_frozen_stretches(media: Path, tmp_path: Path) -> None:
    a = analyse_in_process(media / "stills.mp4", tmp_path)
    _near(a.cuts, [1.5, 3.5, 4.5])
    _span_near(a.black, [(3.5, 4.5)])
    _span_near(a.frozen, [(4.5, 5.5)])  # black is not also reported as frozen
    text = a.describe()
    assert f"Black {clock(a.black[0][0])}-{clock(a.black[0][1])}" in text
    assert f"Frozen {clock(a.frozen[0][0])}-" in text


def test_keyframes_are_capped_and_spread(media: Path, tmp_path: Path) -> None:
    a = analyse_in_process(media / "many.mp4", tmp_path, max_keyframes=3)
    assert len(a.cuts) == 11
    names = [Path(p).name for p in a.keyframes]
    assert len(names) == 3 and names[0] == "many-scene00.jpg"
    assert int(names[-1][len("many-scene"):-4]) >= 8, names  # from the end of the clip, not the first three
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # nothing else was written


def test_variable_frame_rate_uses_timestamps(media: Path, tmp_path: Path) -> None:
    a = analyse_in_process(media / "vfr.mp4", tmp_path)
    _near(a.cuts, [1.0])
    assert a.frame_count == 40
    assert any("variable frame rate" in note for note in a.notes), a.notes


def test_clock() -> None:
    assert [clock(t) for t in (0, 1.5, 59.96, 95.25, 3600)] == ["0:00.0", "0:01.5", "1:00.0", "1:35.2", "60:00.0"]


def test_child_process_gives_the_same_analysis(media: Path, tmp_path: Path) -> None:
    started: list[int] = []
    a = asyncio.run(analyse(media / "stills.mp4", tmp_path / "thumbs", on_start=started.append))
    assert len(started) == 1 and started[0] != os.getpid()
    local = analyse_in_process(media / "stills.mp4", tmp_path / "again")
    assert a.to_dict() == {**local.to_dict(), "keyframes": a.to_dict()["keyframes"]}
    assert [Path(p).name for p in a.keyframes] == [Path(p).name for p in local.keyframes]
    assert all(Path(p).is_file() for p in a.keyframes)
    assert Analysis.from_dict(a.to_dict()) == a


def _children() -> set[int]:
    """This process's live child pids (zombies included: a child not reaped is still a leak)."""
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(os.getpid()):
            found.add(int(status.parent.name))
    return found


def test_warm_analysers_answer_from_a_child_started_ahead_and_leave_none(media: Path, tmp_path: Path) -> None:
    """Inside warm_analysers, the child that analyses a clip was started before the clip was asked about (its
    imports overlap the jobs); the spare no clip took is stopped and reaped when the block ends."""
    before = _children()

    async def scenario() -> tuple[set[int], list[int], Analysis, set[int]]:
        async with warm_analysers(3):
            prewarm_analyser()
            await asyncio.sleep(0.2)  # the spare is running
            waiting = _children() - before
            used: list[int] = []
            a = await analyse(media / "stills.mp4", tmp_path / "warm", on_start=used.append)
            await asyncio.sleep(0.2)  # the next spare for the two clips to come
            spare = _children() - before
        return waiting, used, a, spare

    waiting, used, a, spare = asyncio.run(scenario())
    assert len(waiting) == 1 and used == sorted(waiting)  # the analysis ran in the child started ahead
    assert a.to_dict() == {**analyse_in_process(media / "stills.mp4", tmp_path / "local").to_dict(),
                           "keyframes": a.to_dict()["keyframes"]}
    assert len(spare) == 1 and spare != waiting  # one more started for the clips to come
    assert _children() == before  # none left: not the spare, not a zombie


def test_warm_child_closed_without_a_request_exits() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "fusion_magic.videos.analyse", "--serve"], input=b"",
                          capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b""


def test_not_a_video(media: Path, tmp_path: Path) -> None:
    async def both() -> tuple[Analysis | BaseException, Analysis | BaseException]:
        return await asyncio.gather(analyse(media / "notes.mp4", tmp_path), analyse(media / "song.mp4", tmp_path),
                                    return_exceptions=True)

    text, song = asyncio.run(both())
    assert isinstance(text, AnalysisFailed) and isinstance(text, ProviderError)
    assert text.kind == "analysis" and text.cause == "undecodable"
    assert text.message == "notes.mp4 cannot be decoded: Invalid data found when processing input"
    assert str(text) == "local:frames: analysis: " + text.message
    assert isinstance(song, AnalysisFailed) and song.cause == "no_video"
    assert song.message == "song.mp4 has no video stream (audio only: aac)"
    # probe() says the same at plan time, in process, and nothing for a real video.
    assert probe(media / "notes.mp4") == text.message
    assert probe(media / "song.mp4") == song.message
    assert probe(media / "missing.mp4") == "missing.mp4 does not exist"
    assert probe(media / "three.mp4") is None


@pytest.fixture
def no_core_dumps() -> Iterator[None]:
    """A child killed by SIGSEGV must not leave a core file behind (children inherit this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_child_killed_by_a_signal(media: Path, tmp_path: Path, sig: signal.Signals, no_core_dumps: None) -> None:
    # A real signal to the real child, the moment it runs (it needs far longer than that to finish).
    with pytest.raises(AnalysisFailed) as caught:
        asyncio.run(analyse(media / "stills.mp4", tmp_path, on_start=lambda pid: os.kill(pid, sig)))
    error = caught.value
    assert error.cause == "crashed" and error.signal == sig.name
    assert sig.name in error.message and "the kernel is fine" in error.message
    assert "stills.mp4" in error.message and "\n" not in error.message


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cancel_kills_the_child(media: Path, tmp_path: Path) -> None:
    async def scenario() -> int:
        running = asyncio.Event()
        pids: list[int] = []

        def started(pid: int) -> None:
            pids.append(pid)
            running.set()

        task = asyncio.create_task(analyse(media / "stills.mp4", tmp_path, on_start=started))
        await running.wait()
        assert not _gone(pids[0])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pids[0]

    pid = asyncio.run(scenario())
    assert _gone(pid)  # killed and reaped: not even a zombie is left


def test_timeout_kills_the_child(media: Path, tmp_path: Path) -> None:
    pids: list[int] = []
    # A child cannot even import Python's standard library in a millisecond.
    with pytest.raises(AnalysisFailed) as caught:
        asyncio.run(analyse(media / "stills.mp4", tmp_path, timeout=0.001, on_start=pids.append))
    assert caught.value.cause == "timeout"
    assert caught.value.message == "analysing stills.mp4 took longer than 0.001 s; the analyser was stopped"
    assert _gone(pids[0])


def _analysis(**overrides: object) -> Analysis:
    values: dict[str, object] = {"path": "clip.mp4", "duration_s": 8.0, "fps": 24.0, "width": 1280,
                                 "height": 720, "video_codec": "h264", "audio": "aac", "audio_channels": 2}
    values.update(overrides)
    return Analysis(**values)  # type: ignore[arg-type]


def test_check_spec_matching() -> None:
    score, reasons = check_spec(_analysis(), seconds=8, aspect="16:9", resolution="720p", want_audio=True)
    assert score == 10.0
    assert len(reasons) == 6 and all(r.startswith("✓ ") for r in reasons)
    portrait = _analysis(width=720, height=1280, audio=None, audio_channels=0, duration_s=7.6)
    assert check_spec(portrait, seconds=8, aspect="9:16", resolution="720p", want_audio=False)[0] == 10.0
    assert check_spec(_analysis(width=1920, height=1080), resolution="1920x1080")[0] == 10.0
    assert check_spec(_analysis())[0] == 10.0  # only black and frozen checked


def test_check_spec_mismatching() -> None:
    bad = _analysis(duration_s=4.5, audio=None, audio_channels=0, black=((3.5, 4.5),), frozen=((1.0, 2.5),))
    score, reasons = check_spec(bad, seconds=8, aspect="9:16", resolution="1080p", want_audio=True)
    assert score == 0.0
    assert all(r.startswith("✗ ") for r in reasons)
    assert "✗ duration 4.5 s (asked 8 s, 3.5 s too short)" in reasons
    assert "✗ no audio (asked with audio)" in reasons
    assert "✗ black 0:03.5-0:04.5" in reasons
    assert "✗ frozen 0:01.0-0:02.5" in reasons
    # 4 of 6 pass: the clip is 16:9 but not 1080p and has a frozen stretch.
    score, reasons = check_spec(_analysis(frozen=((2.0, 3.0),)), seconds=8, aspect="16:9", resolution="1080p",
                                want_audio=True)
    assert score == 6.7 and sum(r.startswith("✗") for r in reasons) == 2
    assert spec_tally(reasons) == (4, 6)  # what the reports show: "spec 4/6 checks passed", not a score
    # An aspect 3 % off is a mismatch; an unreadable spec fails its check rather than raising.
    assert check_spec(_analysis(width=1318), aspect="16:9")[0] < 10
    assert check_spec(_analysis(), resolution="huge")[1][0].startswith("✗ resolution 'huge' not understood")


def test_check_spec_on_a_real_analysis(media: Path, tmp_path: Path) -> None:
    a = analyse_in_process(media / "stills.mp4", tmp_path)
    score, reasons = check_spec(a, seconds=5.5, aspect="16:9", want_audio=False)
    assert score == 6.0  # duration, aspect and silence pass; black and frozen fail
    assert any(r.startswith("✗ black 0:03.5-0:04.5") for r in reasons), reasons
