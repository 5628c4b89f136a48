"""``%%video --extend`` (Veo scene extension) and ``--last-frame`` (first+last frame) in a real InteractiveShell:
every job through the loopback emulator's Veo, Omni and fal routes over a socket; clips are real MP4 files.

The evidence is what the emulator received (``emu.requests``: the bodies, the URIs) and what was written
(sidecars); the emulator refuses what Veo refuses (video bytes, a length other than 8 s, a URI Veo did not
make), so an extension that succeeds here was sent as the API wants it.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.providers.video.base import VideoRequest
from fusion_magic.providers.video.fal import FalProvider
from fusion_magic.testing import Emulator, RecordedRequest, VideoScript
from fusion_magic.testing.media import png_bytes
from fusion_magic.videos import sidecar
from fusion_magic.videos.options import ExtendOf, VideoOptions
from fusion_magic.videos.plan import plan_video
from fusion_magic.videos.result import VideoResult

OMNI, VEO = "gemini-omni-1.2-flash", "veo-3.1-fast-generate-preview"
KLING = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
KEYS = tuple(Emulator.test_keys().values())


def veo_submits(emu: Emulator) -> list[RecordedRequest]:
    return [q for q in emu.requests if q.family == "gemini-veo" and q.method == "POST"]


def sample_uri(emu: Emulator, job_id: str) -> str:
    """The URI the finished operation names for its clip, read raw from the emulator (not through our code)."""
    answer = httpx.get(f"{emu.url}/gemini/v1beta/{job_id}", headers={"x-goog-api-key": "AIza-test-emulator"})
    uri: str = answer.json()["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    return uri


def side_of(result: VideoResult, n: int = 0) -> dict[str, Any]:
    path = result.videos[n].sidecar
    assert path is not None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def no_key_written() -> None:
    """No test key in any sidecar, and no ``key=`` in any URI they hold."""
    for path in (Path.cwd() / "videos").glob("*.json"):
        text = path.read_text()
        assert not any(k in text for k in KEYS), path.name
        assert "key=" not in text, path.name


@pytest.fixture
def first(vshell: InteractiveShell, emulator_env: Emulator) -> VideoResult:
    """A finished Veo clip (1 s as served, 8 s as asked) in the variable ``v``."""
    emulator_env.script(VEO, VideoScript(polls=1, clip_seconds=1.0))
    out = vshell.run_cell_magic("video", f"-p gemini:{VEO} -o v", "A fox trots through fresh snow")
    assert isinstance(out, VideoResult) and out.videos[0].ok
    return out


# ---- extension ---------------------------------------------------------------------------------------------


def test_extend_sends_the_first_clips_sample_uri_and_saves_a_longer_clip_with_its_own_sidecar(
        vshell: InteractiveShell, emulator_env: Emulator, first: VideoResult,
        capsys: pytest.CaptureFixture[str]) -> None:
    emu = emulator_env
    original = first.videos[0]
    assert original.job_id is not None
    uri = sample_uri(emu, original.job_id)
    assert side_of(first)["clip_uri"] == uri  # kept as the operation said it, not the storage redirect target
    assert "/storage/" not in uri

    capsys.readouterr()
    out = vshell.run_cell_magic("video", "--extend v", "The fox dives into a snowdrift")
    printed = capsys.readouterr().out
    longer = out.videos[0]
    assert longer.ok and longer.model == f"gemini:{VEO}" and emu.video_jobs(VEO) == 2
    # What was sent: the first clip's URI, 8 s at 720p, nothing else; and the note says so.
    extension = veo_submits(emu)[-1]
    assert extension.status == 200
    assert extension.body == {
        "instances": [{"prompt": "The fox dives into a snowdrift", "video": {"uri": uri}}],
        "parameters": {"resolution": "720p", "durationSeconds": 8, "sampleCount": 1},
    }
    assert "--extend: sends the clip's URI with durationSeconds 8 at 720p" in printed
    # A new clip, longer than the first (the combined video), beside its own sidecar.
    assert longer.path is not None and original.path is not None and longer.path != original.path
    assert longer.seconds is not None and original.seconds is not None
    assert longer.seconds == pytest.approx(original.seconds + 1.0, abs=0.25)
    side = side_of(out)
    assert side["status"] == "ok" and side["parameters"]["extends"] == uri
    assert side["request_key"] != side_of(first)["request_key"]
    assert side["clip_uri"] and side["clip_uri"] != uri and side["file"] == longer.path.name
    # Billed as the 7 s the extension adds ($0.10/s for Veo 3.1 Fast), not the whole clip it returns.
    assert side["parameters"]["billed_seconds"] == 7
    assert longer.record.video_seconds == 7 and longer.cost_usd == pytest.approx(0.70)
    no_key_written()


def test_the_same_extension_again_reuses_its_clip_and_extending_it_continues_the_longer_clip(
        vshell: InteractiveShell, emulator_env: Emulator, first: VideoResult) -> None:
    emu = emulator_env
    once = vshell.run_cell_magic("video", "--extend v -o w", "The fox dives into a snowdrift")
    again = vshell.run_cell_magic("video", "--extend v", "The fox dives into a snowdrift")
    assert emu.video_jobs(VEO) == 2  # the first clip and one extension: the re-run paid nothing
    assert again.videos[0].reused and again.videos[0].path == once.videos[0].path
    assert again.videos[0].cost_usd == 0.0 and len(veo_submits(emu)) == 2
    # Shown again, it still counts the 7 s the extension added, not the whole longer clip.
    assert again.videos[0].record.video_seconds == once.videos[0].record.video_seconds == 7.0
    # The extension is itself a Veo clip with a URI: extending it sends that URI (8 + 7 = 15 s in).
    third = vshell.run_cell_magic("video", "--extend w", "It shakes the snow off")
    assert third.videos[0].ok and emu.video_jobs(VEO) == 3
    assert veo_submits(emu)[-1].body["instances"][0]["video"] == {"uri": side_of(once)["clip_uri"]}
    assert third.videos[0].seconds is not None and once.videos[0].seconds is not None
    assert third.videos[0].seconds > once.videos[0].seconds
    no_key_written()


def test_estimate_and_budget_count_the_seven_seconds_an_extension_adds(
        vshell: InteractiveShell, emulator_env: Emulator, first: VideoResult) -> None:
    emu = emulator_env
    estimate = str(vshell.run_cell_magic("video", "--extend v --estimate", "Further"))
    assert "Total: $0.70" in estimate and "billed here as 7 s" in estimate
    row = next(line for line in estimate.splitlines() if line.startswith("clip "))
    assert " 7 s x $0.10/s " in row and row.endswith("$0.70")  # the row shows the seconds it bills, not the 8 s sent
    before = len(emu.requests)
    with pytest.raises(UsageError, match="above --budget"):
        vshell.run_cell_magic("video", "--extend v --budget 0.65", "Further")
    assert len(emu.requests) == before
    # $0.75 covers 7 s at $0.10/s but not 8 s: the run goes ahead, one submission.
    out = vshell.run_cell_magic("video", "--extend v --budget 0.75", "Further")
    assert out.videos[0].ok and emu.video_jobs(VEO) == 2


@pytest.mark.parametrize(("line", "words"), [
    ("--extend v --seconds 4", "drop --seconds 4"),
    ("--extend v --seconds 8 --resolution 1080p", "720p only"),
    ("--extend v --aspect 9:16", "drop --aspect"),
    ("--extend v --image first.png", "drop --image and --last-frame"),
    ("--extend v --edit v", "one at a time"),
    (f"--extend v -p gemini:{OMNI}", "--extend continues a Veo clip"),
    (f"--extend v -p gemini:{VEO},fal:{KLING}", f"fal:{KLING} cannot"),
    ("--extend nothing_here", "variable 'nothing_here' is not a finished VideoResult"),
    ("--extend v --understand clip.mp4", "--extend are for generating"),
])
def test_conflicting_flags_are_one_line_and_no_call(vshell: InteractiveShell, emulator_env: Emulator,
                                                    first: VideoResult, line: str, words: str) -> None:
    Path("first.png").write_bytes(png_bytes())
    before = len(emulator_env.requests)
    with pytest.raises(UsageError, match=words) as info:
        vshell.run_cell_magic("video", line, "Further")
    assert "\n" not in str(info.value)
    assert len(emulator_env.requests) == before


def test_extending_an_omni_result_is_one_usage_error_naming_what_to_do(vshell: InteractiveShell,
                                                                      emulator_env: Emulator) -> None:
    emulator_env.script(OMNI, VideoScript(polls=0))
    vshell.run_cell_magic("video", f"-p gemini:{OMNI} -o v", "A fox")
    before = len(emulator_env.requests)
    for line in ("--extend v", "--extend"):  # the named result, and the last one
        with pytest.raises(UsageError) as info:
            vshell.run_cell_magic("video", line, "Further")
        message = str(info.value)
        assert "\n" not in message and "Veo" in message and f"gemini:{OMNI}" in message and "--edit" in message
    assert len(emulator_env.requests) == before and emulator_env.video_jobs(VEO) == 0


def test_a_veo_clip_that_came_back_inline_has_no_uri_to_extend(vshell: InteractiveShell,
                                                               emulator_env: Emulator) -> None:
    emulator_env.script(VEO, VideoScript(polls=0, delivery="inline"))
    out = vshell.run_cell_magic("video", f"-p gemini:{VEO} -o v", "A fox")
    assert out.videos[0].ok and side_of(out)["clip_uri"] is None
    before = len(emulator_env.requests)
    with pytest.raises(UsageError, match="has no Veo URI in its sidecar") as info:
        vshell.run_cell_magic("video", "--extend v", "Further")
    assert "--new" in str(info.value) and len(emulator_env.requests) == before


def test_a_clip_longer_than_141_seconds_is_refused_before_anything_is_sent(emulator: Emulator) -> None:
    source = ExtendOf(f"gemini:{VEO}", "https://generativelanguage.googleapis.com/v1beta/files/a:download",
                      seconds=148.0, file="long.mp4")
    with pytest.raises(ConfigError, match=re.escape("up to 141 s; long.mp4 is 148 s")):
        plan_video("Further", Settings(), VideoOptions(extend_of=source, estimate=True))
    fits = plan_video("Further", Settings(), VideoOptions(extend_of=replace(source, seconds=141.0), estimate=True))
    assert fits.clips[0].billed_seconds == 7 and fits.clips[0].model_id == f"gemini:{VEO}"
    assert emulator.requests == []


def test_the_uri_kept_beside_a_clip_never_holds_a_key() -> None:
    secret = "AIza-should-never-be-written"
    uri = f"https://user:{secret}@generativelanguage.googleapis.com/v1beta/files/a:download?alt=media&key={secret}"
    kept = sidecar.public_uri(uri)
    assert secret not in kept
    assert kept == "https://generativelanguage.googleapis.com/v1beta/files/a:download?alt=media"
    plain = "https://generativelanguage.googleapis.com/v1beta/files/a%2Fb:download?alt=media"
    assert sidecar.public_uri(plain) == plain  # nothing to take out: byte for byte what the provider said


# ---- first and last frame ------------------------------------------------------------------------------------


def test_last_frame_goes_to_veo_with_the_first_and_changes_the_request_key(vshell: InteractiveShell,
                                                                           emulator_env: Emulator) -> None:
    emu = emulator_env
    emu.script(VEO, VideoScript(polls=0))
    Path("a.png").write_bytes(png_bytes(colour=(10, 10, 200)))
    Path("b.png").write_bytes(png_bytes(colour=(200, 10, 10)))
    framed = vshell.run_cell_magic("video", f"-p gemini:{VEO} --image a.png --last-frame b.png", "Blue to red")
    assert framed.videos[0].ok
    [submit] = veo_submits(emu)
    instance = submit.body["instances"][0]
    assert base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == Path("b.png").read_bytes()
    assert instance["lastFrame"]["mimeType"] == "image/png" and "image" in instance
    assert submit.body["parameters"]["durationSeconds"] == 8
    assert side_of(framed)["parameters"]["last_frame"] == "b.png"
    first_only = vshell.run_cell_magic("video", f"-p gemini:{VEO} --image a.png", "Blue to red")
    assert not first_only.videos[0].reused and emu.video_jobs(VEO) == 2  # another request, another clip
    assert side_of(first_only)["request_key"] != side_of(framed)["request_key"]


@pytest.mark.parametrize(("line", "words"), [
    (f"-p gemini:{VEO} --last-frame b.png", "--last-frame needs --image"),
    (f"-p gemini:{VEO} --image a.png --last-frame b.png --seconds 6", "need --seconds 8"),
    (f"-p gemini:{VEO} --image a.png --last-frame notimage.png", "not a PNG or JPEG image"),
    (f"-p gemini:{VEO} --image a.png --last-frame missing.png", "--last-frame: no such file"),
    (f"-p gemini:{OMNI} --image a.png --last-frame b.png", "has no last-frame control"),
    ("-p fal:fal-ai/kling-video/v2.1/master/text-to-video --image a.png --last-frame b.png",
     "has no last-frame input"),
])
def test_last_frame_refusals_are_one_line_and_no_call(vshell: InteractiveShell, emulator_env: Emulator,
                                                      line: str, words: str) -> None:
    Path("a.png").write_bytes(png_bytes())
    Path("b.png").write_bytes(png_bytes(colour=(200, 10, 10)))
    Path("notimage.png").write_text("not an image")
    with pytest.raises(UsageError, match=words) as info:
        vshell.run_cell_magic("video", line, "Blue to red")
    assert "\n" not in str(info.value)
    assert emulator_env.requests == []


@pytest.mark.parametrize(("model", "endpoint", "first_field", "last_field"), [
    ("fal-ai/veo3.1", "fal-ai/veo3.1/first-last-frame-to-video", "first_frame_url", "last_frame_url"),
    ("fal-ai/veo3.1/fast", "fal-ai/veo3.1/fast/first-last-frame-to-video", "first_frame_url", "last_frame_url"),
    (KLING, "fal-ai/kling-video/v2.5-turbo/pro/image-to-video", "image_url", "tail_image_url"),
    ("fal-ai/minimax/hailuo-02/standard/text-to-video", "fal-ai/minimax/hailuo-02/standard/image-to-video",
     "image_url", "end_image_url"),
])
def test_fal_maps_the_last_frame_where_the_endpoint_has_one(tmp_path: Path, model: str, endpoint: str,
                                                            first_field: str, last_field: str) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes(colour=(10, 10, 200)))
    b.write_bytes(png_bytes(colour=(200, 10, 10)))
    request = VideoRequest(model, "blue to red", image=a, last_frame=b)
    assert FalProvider.check_request(request) == []
    sent_to, body = FalProvider.model_input(request)
    assert sent_to == endpoint
    assert body[first_field] == "data:image/png;base64," + base64.b64encode(a.read_bytes()).decode()
    assert body[last_field] == "data:image/png;base64," + base64.b64encode(b.read_bytes()).decode()


def test_fal_last_frame_crosses_the_socket_to_the_first_last_endpoint(vshell: InteractiveShell,
                                                                     emulator_env: Emulator) -> None:
    emulator_env.script("fal-ai/veo3.1/first-last-frame-to-video", VideoScript(polls=0))
    Path("a.png").write_bytes(png_bytes())
    Path("b.png").write_bytes(png_bytes(colour=(200, 10, 10)))
    out = vshell.run_cell_magic("video", "-p fal:fal-ai/veo3.1 --image a.png --last-frame b.png --seconds 6",
                                "Blue to red")
    assert out.videos[0].ok
    [submit] = [q for q in emulator_env.requests if q.family == "fal" and q.method == "POST"]
    assert submit.path == "/fal/fal-ai/veo3.1/first-last-frame-to-video"
    assert submit.body["first_frame_url"].startswith("data:image/png;base64,")
    assert submit.body["last_frame_url"].startswith("data:image/png;base64,") and submit.body["duration"] == "6s"


def test_an_unknown_fal_model_says_the_last_frame_is_not_sent(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes())
    b.write_bytes(png_bytes())
    [note] = FalProvider.check_request(VideoRequest("someone/new-model", "x", image=a, last_frame=b))
    assert "--last-frame" in note and "only the prompt is sent" in note


def test_the_python_api_takes_last_frame(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    import fusion_magic

    monkeypatch.chdir(tmp_path)
    emulator_env.script(VEO, VideoScript(polls=0))
    Path("a.png").write_bytes(png_bytes())
    Path("b.png").write_bytes(png_bytes(colour=(200, 10, 10)))
    r = fusion_magic.video("Blue to red", models=[f"gemini:{VEO}"], image="a.png", last_frame="b.png", poll_s=0.01)
    assert r.videos[0].ok
    [submit] = veo_submits(emulator_env)
    assert "lastFrame" in submit.body["instances"][0]
