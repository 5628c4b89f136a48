"""One ``%%video`` across three vendors (OpenRouter, Runway and Gemini Omni) on the loopback emulator: three playable
MP4s with their receipts, OpenRouter's clip priced at exactly the cost it reported, no download carrying a key, and
jobs that outlast the wait fetched later by ``%video resume`` without a second paid submission at any vendor."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.core.state import State
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.testing.families.openrouter_video import cost_of
from fusion_magic.testing.media import png_bytes
from fusion_magic.testing.script import Fault

OMNI, VEO, GEN = "gemini-omni-1.2-flash", "google/veo-3.1", "gen4.5"
POOL = f"gemini:{OMNI},openrouter:{VEO},runway:{GEN}"
KEY_HEADERS = ("authorization", "x-goog-api-key", "x-api-key")


def playable(path: Path) -> bool:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0)) > 0


def submissions(emu: Emulator) -> dict[str, int]:
    return {model: emu.video_jobs(model) for model in (OMNI, VEO, GEN)}


def test_three_vendors_three_playable_clips_exact_provider_cost_no_key_on_a_download(
        vshell: InteractiveShell, emulator_env: Emulator, tmp_path: Path) -> None:
    for model in (OMNI, VEO, GEN):
        emulator_env.script(model, VideoScript(polls=1, clip_seconds=4.0, size=(320, 180)))
    result = vshell.run_cell_magic("video", f"-p {POOL} --seconds 8 -o v", "A paper boat on a rainy street")
    assert [v.status for v in result.videos] == ["ok", "ok", "ok"] and not result.degraded
    for clip in result.videos:
        assert clip.path is not None and playable(clip.path)
        receipt = json.loads(clip.path.with_suffix(".json").read_text())
        assert receipt["job"]["job_id"] == clip.job_id and receipt["status"] == "ok"
    by_model = {v.model: v for v in result.videos}
    openrouter = by_model[f"openrouter:{VEO}"].record
    [submitted] = [r.body for r in emulator_env.requests if r.method == "POST" and r.path.endswith("/videos")]
    assert openrouter.cost_source == "provider" and openrouter.cost_usd == cost_of(VEO, submitted)
    assert by_model[f"runway:{GEN}"].record.cost_source == "provider"
    # Each clip's bytes came from a storage host other than the API's (the emulator serves those on another host
    # name), and none of those requests carried a key; the API hosts' redirects were not followed with one.
    api_host = emulator_env.url.removeprefix("http://")
    fetched = [r for r in emulator_env.requests if {k.lower(): v for k, v in r.headers.items()}["host"] != api_host]
    assert len(fetched) == 3 and all(r.status == 200 for r in fetched)
    for request in fetched:
        assert not {h.lower() for h in request.headers} & set(KEY_HEADERS), request.path
    # What was written down (receipts, the run log) holds no key and no signed link.
    written = "\n".join(p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file())
    assert not any(key in written for key in emulator_env.test_keys().values())
    assert "/signed/" not in written and "runway-cdn" not in written
    assert submissions(emulator_env) == {OMNI: 1, VEO: 1, GEN: 1}


def test_jobs_that_outlast_the_wait_are_fetched_later_without_paying_twice(
        vshell: InteractiveShell, emulator_env: Emulator) -> None:
    for model in (OMNI, VEO, GEN):
        emulator_env.script(model, VideoScript(polls=10_000, clip_seconds=4.0, size=(320, 180)))
    first = vshell.run_cell_magic("video", f"-p {POOL} --seconds 8 -t 0.3", "A slow paper boat")
    assert [v.state for v in first.videos] == [State.PENDING] * 3
    assert submissions(emulator_env) == {OMNI: 1, VEO: 1, GEN: 1}
    # They finish at the providers while nobody waits.
    for clip in first.videos:
        job = emulator_env.video.job(clip.job_id or "")
        assert job is not None, clip.model
        job.script = VideoScript(polls=0, clip_seconds=4.0, size=(320, 180))
    later = vshell.run_line_magic("video", "resume -o w")
    assert sorted(v.status for v in later.videos) == ["ok", "ok", "ok"]
    assert all(v.path is not None and playable(v.path) for v in later.videos)
    assert submissions(emulator_env) == {OMNI: 1, VEO: 1, GEN: 1}  # fetched, never submitted again
    assert vshell.run_line_magic("video", "resume") is None


def test_a_clip_filtered_on_its_input_costs_what_the_provider_kept(vshell: InteractiveShell,
                                                                    emulator_env: Emulator) -> None:
    emulator_env.script(GEN, VideoScript(polls=1, outcome="filtered", final_status="SAFETY.INPUT.TEXT",
                                         reason="The prompt may describe a real person."))
    emulator_env.script("gen4_turbo", VideoScript(polls=1, outcome="filtered"))
    out = vshell.run_cell_magic("video", f"-p runway:{GEN} --seconds 4", "A fox")
    (clip,) = out.videos
    assert clip.status == "filtered" and clip.path is None
    # Runway kept the credits of a task its input moderation refused (4 s x 12 credits): its own figure stands.
    assert (clip.record.cost_usd, clip.record.cost_source) == (pytest.approx(0.48), "provider")
    assert json.loads(clip.sidecar.read_text())["cost_usd"] == pytest.approx(0.48)
    # An output the filter withheld is refunded: not billed.
    Path("first.png").write_bytes(png_bytes())
    out = vshell.run_cell_magic("video", "-p runway:gen4_turbo --seconds 4 --image first.png", "A fox")
    assert out.videos[0].status == "filtered" and out.videos[0].record.cost_usd == 0.0


def test_edit_continues_an_openrouter_clip_through_previous_job_id(vshell: InteractiveShell,
                                                                    emulator_env: Emulator) -> None:
    emulator_env.script(VEO, VideoScript(polls=0, clip_seconds=4.0, size=(320, 180)))
    first = vshell.run_cell_magic("video", f"-p openrouter:{VEO} --seconds 8 -o v", "A paper boat")
    (clip,) = first.videos
    assert clip.ok and clip.job_id is not None
    edited = vshell.run_cell_magic("video", "--edit v -o w", "Make it slower")
    assert [v.status for v in edited.videos] == ["ok"] and edited.videos[0].model == f"openrouter:{VEO}"
    bodies = [r.body for r in emulator_env.requests if r.method == "POST" and r.path.endswith("/videos")]
    assert bodies[-1]["previous_job_id"] == clip.job_id and bodies[-1]["model"] == VEO


@pytest.mark.parametrize(("model_id", "model"), [(f"runway:{GEN}", GEN), (f"openrouter:{VEO}", VEO)])
def test_a_submit_whose_answer_is_lost_is_never_sent_again(vshell: InteractiveShell, emulator_env: Emulator,
                                                           model_id: str, model: str) -> None:
    emulator_env.script(model, VideoScript(submit_faults=[Fault("cut", times=1)]))
    first = vshell.run_cell_magic("video", f"-p {model_id} --seconds 8", "A paper boat")
    (clip,) = first.videos
    assert clip.status == "failed" and clip.error is not None and "not sent again" in clip.error
    assert emulator_env.video_jobs(model) == 1
    # The same cell again: the receipt says the first submit may be a paid job; nothing is sent.
    again = vshell.run_cell_magic("video", f"-p {model_id} --seconds 8", "A paper boat")
    assert again.videos[0].status == "failed" and "--new" in (again.videos[0].error or "")
    assert emulator_env.video_jobs(model) == 1
    # --new is the user's word that it is fine to pay again.
    fresh = vshell.run_cell_magic("video", f"-p {model_id} --seconds 8 --new", "A paper boat")
    assert fresh.videos[0].status == "ok" and emulator_env.video_jobs(model) == 2
