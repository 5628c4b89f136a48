"""The video providers' fault matrix (issue #21): every fault at submit, poll and download, against each of the
five video providers, on the loopback emulator; a printed table of what each cell did.

Each cell runs one pool: the faulted provider and a healthy partner (another provider, another host). Whatever
the fault, in every cell:

- no job is ever submitted twice (``emu.video_jobs``) and a submit request is sent once, never retried;
- the partner's clip is saved, and the result is degraded when the faulted clip is not;
- a failed clip carries the typed error of the fault (``record.failure``);
- a clip whose job exists keeps its receipt (the sidecar, JSON beside the clip) with the job id, and a pending one
  is fetched by a resume without a second submission;
- a submit whose answer was lost (the job made, the answer cut or garbled) is reported lost and not sent again
  when the same request runs again.

    pytest -q tests/test_fault_matrix_video.py      # prints the table and "N faults x M providers = K cells"
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

import fusion_magic
from fusion_magic.api import plan_resume, start
from fusion_magic.core.state import State
from fusion_magic.testing import Emulator, VideoScript
from fusion_magic.testing.script import Fault
from fusion_magic.testing.video_script import DownloadFault
from fusion_magic.videos.result import Video, VideoResult


@dataclass(frozen=True)
class Provider:
    name: str
    model_id: str  # as the pool names it
    wire: str  # as the emulator's scripts and counters name it
    base_env: str  # the variable that points its client at the emulator
    partner: str  # the healthy pool member of its cells (another provider, another host)


PROVIDERS = {p.name: p for p in (
    Provider("omni", "gemini:gemini-omni-1.2-flash", "gemini-omni-1.2-flash", "GEMINI_BASE_URL", "runway"),
    Provider("veo", "gemini:veo-3.1-fast-generate-preview", "veo-3.1-fast-generate-preview", "GEMINI_BASE_URL", "fal"),
    Provider("fal", "fal:fal-ai/veo3.1", "fal-ai/veo3.1", "FAL_BASE_URL", "openrouter"),
    Provider("openrouter", "openrouter:google/veo-3.1", "google/veo-3.1", "OPENROUTER_BASE_URL", "veo"),
    Provider("runway", "runway:gen4.5", "gen4.5", "RUNWAYML_BASE_URL", "omni"),
)}

Where = Literal["submit", "poll", "download"]


@dataclass(frozen=True)
class Cell:
    """One fault: where it strikes, the script that makes it, and the word every provider's cell must show
    (``by_provider`` where one provider's documented behaviour differs)."""

    name: str
    where: Where
    expect: str
    submit: tuple[Fault, ...] = ()
    poll: tuple[Fault, ...] = ()
    download: tuple[DownloadFault, ...] = ()
    refused: bool = False
    by_provider: dict[str, str] = field(default_factory=dict)


def status(code: int, expect: str, retry_after: float | None = None, name: str | None = None) -> Cell:
    return Cell(name or str(code), "submit", expect, submit=(Fault("status", status=code, retry_after=retry_after),))


LOST = "reported lost, not resubmitted"
CELLS = [
    status(400, "failed: bad_request"),
    status(401, "failed: auth"),
    status(402, "failed: payment"),
    status(403, "failed: auth"),
    status(404, "failed: bad_request"),  # a retired or unknown model id
    status(408, "failed: timeout"),  # nothing was done with it; a submit is still never sent again on its own
    status(429, "failed: rate_limit"),
    status(429, "failed: rate_limit", retry_after=1, name="429+RA"),
    status(500, "failed: server"),
    status(502, "failed: server"),
    status(503, "failed: server"),
    status(529, "failed: server"),  # overloaded
    Cell("malformed", "submit", LOST, submit=(Fault("malformed"),)),
    Cell("reset", "submit", LOST, submit=(Fault("cut"),)),
    Cell("refused", "submit", "failed: server", refused=True),  # nothing reached it: no job
    Cell("429+RA", "poll", "retried→saved", poll=(Fault("status", status=429, retry_after=0.05, times=2),)),
    Cell("500", "poll", "retried→saved", poll=(Fault("status", status=500, times=2),)),
    Cell("503", "poll", "retried→saved", poll=(Fault("status", status=503, times=2),)),
    Cell("401", "poll", "pending (auth), resumed", poll=(Fault("status", status=401, times=1),)),
    Cell("hang", "poll", "pending (timeout), resumed", poll=(Fault("hang", times=1),)),
    Cell("reset", "download", "resumed with Range→saved", download=(DownloadFault("reset"),)),
    Cell("drip", "download", "pending (timeout), resumed", download=(DownloadFault("drip"),)),
    Cell("404", "download", "pending (404), resumed", download=(DownloadFault("status", status=404),)),
]
# A tiny clip, polls ~0.02 s apart, and a short wait: a hang or a drip ends in about a second.
TINY = {"clip_seconds": 0.5, "size": (64, 36)}
WAIT_S, POLL_S = 1.0, 0.02

SEEN: dict[tuple[str, str], str] = {}  # (provider, column) -> what the cell did


def column(cell: Cell) -> str:
    return f"{cell.where} {cell.name}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def range_asked(emu: Emulator) -> bool:
    return any("range" in {k.lower() for k in r.headers} for r in emu.requests)


def receipt(video: Video) -> dict[str, object]:
    assert video.sidecar is not None and video.sidecar.is_file(), f"{video.model}: no receipt"
    data: dict[str, object] = json.loads(video.sidecar.read_text())
    return data


def run(provider: Provider, partner: Provider) -> VideoResult:
    return fusion_magic.video("A paper boat on a rainy street", models=[provider.model_id, partner.model_id],
                              timeout=WAIT_S, poll_s=POLL_S, out_dir="videos")


def observe(cell: Cell, provider: Provider, emu: Emulator, result: VideoResult, *,
            finish: Callable[[], None]) -> str:
    """The cell's word, after checking what every cell must hold."""
    clip, other = (next(v for v in result.videos if v.model == m) for m in (provider.model_id,
                                                                            PROVIDERS[provider.partner].model_id))
    assert other.ok, f"the partner {other.model} did not finish: {other.status} {other.error}"
    assert result.degraded == (not clip.ok)
    assert emu.video.requests(provider.wire, "submit") <= 1, "a submit was sent twice"
    jobs = emu.video_jobs(provider.wire)
    assert jobs <= 1
    if clip.ok:
        assert clip.path is not None and clip.path.is_file()
        assert receipt(clip)["status"] == "ok"
        if cell.where == "download" and range_asked(emu):
            return "resumed with Range→saved"
        faulted = emu.video.requests(provider.wire, "poll") > 0 and cell.poll
        return "retried→saved" if faulted else "saved"
    if clip.state is State.FAILED:
        assert clip.error, "a failed clip says why"
        if "not sent again" in clip.error:
            assert jobs == 1 and receipt(clip)["status"] == "lost"
            # The same request again pays nothing: the receipt says a job may be running.
            again = run(provider, PROVIDERS[provider.partner])
            assert next(v for v in again.videos if v.model == provider.model_id).status == "failed"
            assert emu.video_jobs(provider.wire) == 1 and emu.video.requests(provider.wire, "submit") == 1
            return LOST
        assert jobs == 0, f"a job exists but its clip failed without a receipt: {clip.error}"
        return f"failed: {clip.record.failure}"
    assert clip.state is State.PENDING, clip.state
    side = receipt(clip)
    job = side["job"]
    assert isinstance(job, dict) and job["job_id"] == clip.job_id
    # "succeeded": the clip is paid and ready, only its download is owed (a resume fetches it).
    assert side["status"] in ("pending", "succeeded")
    note = clip.note or ""
    why = ("timeout" if "within" in note else "404" if "404" in note or "not found" in note.lower()
           else "auth" if "401" in note or "auth" in note.lower() or "key" in note.lower() else note)
    finish()
    later = start(plan_resume("videos")).result()
    resumed = next(v for v in later.videos if v.job_id == clip.job_id)
    assert resumed.ok and resumed.path is not None and resumed.path.is_file(), (resumed.status, resumed.error)
    assert emu.video_jobs(provider.wire) == 1, "the resume paid again"
    return f"pending ({why}), resumed"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("cell", CELLS, ids=column)
def test_cell(cell: Cell, provider: str, emulator_env: Emulator, here: Path,
              monkeypatch: pytest.MonkeyPatch) -> None:
    faulted, partner = PROVIDERS[provider], PROVIDERS[PROVIDERS[provider].partner]
    emulator_env.script(partner.wire, VideoScript(polls=1, **TINY))  # type: ignore[arg-type]
    emulator_env.script(faulted.wire, VideoScript(polls=1, submit_faults=list(cell.submit),  # type: ignore[arg-type]
                                                  poll_faults=list(cell.poll), download_faults=list(cell.download),
                                                  **TINY))
    if cell.refused:
        monkeypatch.setenv(faulted.base_env, emulator_env.env()[faulted.base_env].replace(
            emulator_env.url, f"http://127.0.0.1:{closed_port()}"))

    def finish() -> None:  # the faults are spent; the job finishes at the provider while nobody waits
        for job in emulator_env.video.jobs(faulted.wire):
            job.script = VideoScript(polls=0, **TINY)  # type: ignore[arg-type]

    word = observe(cell, faulted, emulator_env, run(faulted, partner), finish=finish)
    SEEN[provider, column(cell)] = word
    assert word == cell.by_provider.get(provider, cell.expect)


def test_the_table_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """The matrix as it ran (rows providers, columns faults), and its count; runs after the sweep."""
    if not SEEN:
        pytest.skip("no cell ran in this process")
    columns = [column(c) for c in CELLS if any((p, column(c)) in SEEN for p in PROVIDERS)]
    rows = [p for p in PROVIDERS if any((p, c) in SEEN for c in columns)]
    width = max(len(w) for w in SEEN.values())
    expected = {(p, column(c)): c.by_provider.get(p, c.expect) for c in CELLS for p in PROVIDERS}
    wrong = {k: v for k, v in SEEN.items() if v != expected[k]}
    lines = ["", f"{'fault':<20}" + "".join(f"{p:<{width + 2}}" for p in rows)]
    for c in columns:
        lines.append(f"{c:<20}" + "".join(f"{SEEN.get((p, c), '-'):<{width + 2}}" for p in rows))
    verdict = "all as expected" if not wrong else f"{len(wrong)} not as expected"
    lines.append(f"{len(columns)} faults x {len(rows)} providers = {len(SEEN)} cells, {verdict}")
    with capsys.disabled():
        print("\n".join(lines))
    assert not wrong
