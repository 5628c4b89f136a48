"""A video job's life as a hypothesis state machine: any order of submitted, polled, pending at a timeout,
resumed, downloading, done, failed, filtered, cancelled and reused, driven through the functions the job loop
itself calls (``videos.state.move`` and ``write_receipt``, ``jobs.show_receipt``), on real sidecars in a
temporary folder, with the real views listening.

After every step: the clip, its record and its sidecar on disk agree; a paid job is never lost (a job that
may still be fetched has its id in the sidecar); a final state never changes, whatever event comes late;
and nothing a person reads about a pending clip says failed or error.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fusion_magic.calls.call import CallContext
from fusion_magic.calls.settings import Settings
from fusion_magic.core.events import CallFinished, EngineEvent
from fusion_magic.core.state import State
from fusion_magic.present.ledger_table import ledger_display, text_ledger
from fusion_magic.present.wording import status_word
from fusion_magic.providers.video.base import JobRef, VideoRequest
from fusion_magic.videos import sidecar
from fusion_magic.videos.events import VideoUpdated
from fusion_magic.videos.jobs import show_receipt
from fusion_magic.videos.progress import ProgressPrinter
from fusion_magic.videos.report import html_report, text_report
from fusion_magic.videos.result import Video, VideoResult
from fusion_magic.videos.sidecar import Sidecar
from fusion_magic.videos.state import from_job, move, write_receipt
from fusion_magic.view.video import VideoPane

MODEL = "gemini:veo-3.1-fast-generate-preview"
FAILURE = re.compile(r"fail|error", re.IGNORECASE)
# Why the job loop stops waiting for a job (videos/jobs.py says these).
NOTES = st.sampled_from([
    "not finished after 600 s", "interrupted", "could not read the job's state (HTTP 503: server: busy)",
])
FINAL = [State.DONE, State.FAILED, State.FILTERED, State.CANCELLED]
# The receipt's word for each final state of its clip.
FINAL_WORDS = {State.DONE: "ok", State.FAILED: "failed", State.FILTERED: "filtered", State.CANCELLED: "cancelled"}


def fresh_receipt() -> Sidecar:
    """The receipt a new submission starts from (written once the provider accepts the job)."""
    request = VideoRequest(model="veo-3.1-fast-generate-preview", prompt="a fox", seconds=4)
    return Sidecar.for_request(MODEL, request, "k" * 64)


class VideoJobMachine(RuleBasedStateMachine):
    """One request (one sidecar path), made by a sequence of runs; each run has its own clip object."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="fm-state-"))
        self.path = self.folder / "a-fox-veo-0123456789.json"
        self.events: list[EngineEvent] = []
        self.ctx = CallContext(client=None, settings=Settings(), listeners=[self.events.append])
        self.clip: Video | None = None
        self.side: Sidecar | None = None  # the receipt this run holds (the job loop's ``side``)
        self.jobs = 0  # jobs accepted by the provider: each one is paid
        self.history: list[State] = []  # the current clip's states, in order

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- runs ------------------------------------------------------------------------------------------

    def _new_clip(self, **fields: object) -> Video:
        clip = Video(MODEL, "veo #1", "a fox", sidecar=self.path, **fields)  # type: ignore[arg-type]
        clip.record.model, clip.record.label, clip.record.call_id = MODEL, "veo #1", 1
        self.clip, self.history = clip, [clip.state]
        self.progress = io.StringIO()  # this run's progress lines, as a terminal shows them
        self.ctx.listeners = [self.events.append, ProgressPrinter(self.progress)]
        return clip

    @initialize()
    def first_run(self) -> None:
        self._new_clip()
        self.side = fresh_receipt()

    @precondition(lambda self: self.clip is not None and not self.clip.state.is_running)
    @rule()
    def next_run(self) -> None:
        """The same cell again (or ``%video resume``), as the job loop starts it from the receipt on disk."""
        on_disk = sidecar.read(self.path)
        if on_disk is not None and on_disk.status == "ok" and on_disk.file:
            clip = self._new_clip()
            before = self.jobs
            show_receipt(clip, on_disk, self.folder, self.ctx)  # reused: shown again, not paid again
            assert clip.state is State.DONE and clip.reused and clip.cost_usd == 0.0 and self.jobs == before
            self.history.append(clip.state)
            self.side = on_disk
        elif on_disk is not None and on_disk.open:
            job = on_disk.job_ref
            assert job is not None
            clip = self._new_clip(status=State.RUNNING, job_id=job.job_id, reattached=True)  # resumed
            self.side = on_disk
        else:
            self._new_clip()
            self.side = fresh_receipt()

    # --- one run's job -----------------------------------------------------------------------------------

    def _move(self, to: State, **details: object) -> None:
        assert self.clip is not None
        moved = move(self.clip, to, self.ctx, side=self.side, **details)  # type: ignore[arg-type]
        assert moved
        self.history.append(self.clip.state)

    def _has_job(self) -> bool:
        return self.side is not None and self.side.job is not None

    @precondition(lambda self: self.clip is not None and self.clip.state is State.PLANNED
                  and not (self.side is not None and self.side.open))
    @rule()
    def submitting(self) -> None:
        self._move(State.SUBMITTING)

    @precondition(lambda self: self.clip is not None and self.clip.state is State.SUBMITTING
                  and not self._has_job())
    @rule()
    def submitted(self) -> None:
        """The provider accepted the job: its id goes into the sidecar before anything else."""
        assert self.clip is not None and self.side is not None
        self.jobs += 1
        job = JobRef(protocol="veo", model=MODEL, job_id=f"operations/{self.jobs}")
        write_receipt(self.clip, self.side, job)
        self.clip.job_id = self.clip.record.request_id = job.job_id

    @precondition(lambda self: self.clip is not None and self.clip.state is State.SUBMITTING
                  and not self._has_job())
    @rule()
    def refused(self) -> None:
        """The submit itself failed: nothing was paid, and no receipt is written."""
        self._move(State.FAILED, error="veo: HTTP 400: bad_request: no such model", kind="bad_request",
                   http_status=400)

    def _following(self) -> bool:
        return (self.clip is not None and self._has_job()
                and self.clip.state in (State.SUBMITTING, State.QUEUED, State.RUNNING))

    @precondition(_following)
    @rule(job_state=st.sampled_from(["queued", "running"]), progress=st.sampled_from([None, "40 %"]))
    def polled(self, job_state: str, progress: str | None) -> None:
        assert self.clip is not None
        self.clip.polls += 1
        self.clip.progress = progress
        self._move(from_job(job_state))

    @precondition(lambda self: self._following() or (self.clip is not None and self.clip.state is State.DOWNLOADING))
    @rule(note=NOTES)
    def pending(self, note: str) -> None:
        """The cell stops waiting (a timeout, an interrupt, polls that keep failing): the job goes on."""
        self._move(State.PENDING, note=note)

    @precondition(_following)
    @rule()
    def downloading(self) -> None:
        assert self.side is not None
        self.side.clip_uri = "https://example.invalid/clip"
        self._move(State.DOWNLOADING)

    @precondition(lambda self: self.clip is not None and self.clip.state is State.DOWNLOADING)
    @rule()
    def done(self) -> None:
        assert self.clip is not None and self.side is not None
        path = self.path.with_suffix(".mp4")
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
        self.clip.path, self.side.file = path, path.name
        self.clip.record.clips, self.clip.record.cost_usd, self.clip.record.cost_source = 1, 0.6, "price table"
        self._move(State.DONE)

    @precondition(_following)
    @rule(outcome=st.sampled_from([State.FAILED, State.FILTERED, State.CANCELLED]))
    def ended_at_the_provider(self, outcome: State) -> None:
        if outcome is State.FAILED:
            self._move(outcome, error="the job failed (no reason given)")
        elif outcome is State.FILTERED:
            self._move(outcome, reason="person detected")
        else:
            self._move(outcome, error="cancelled at the provider")

    @precondition(lambda self: self.clip is not None and self.clip.state.is_final)
    @rule(to=st.sampled_from(list(State)), note=NOTES)
    def late_event(self, to: State, note: str) -> None:
        """An event after the clip ended (an interrupted submit answering, a cancel): nothing changes."""
        assert self.clip is not None
        before = self.path.read_bytes() if self.path.exists() else None
        state, events = self.clip.state, len(self.events)
        assert not move(self.clip, to, self.ctx, side=self.side, note=note, error="late")
        assert self.clip.state is state and self.clip.record.state is state and len(self.events) == events
        assert (self.path.read_bytes() if self.path.exists() else None) == before

    # --- invariants ------------------------------------------------------------------------------------

    @invariant()
    def clip_record_and_sidecar_agree(self) -> None:
        clip = self.clip
        if clip is None:
            return
        assert clip.record.state is clip.state
        assert clip.record.status == clip.status or (clip.state is State.FAILED and clip.record.failure)
        on_disk = sidecar.read(self.path)
        if not self._has_job() or clip.reused:
            return  # no receipt of this run's job (yet): whatever is on disk is an earlier run's
        assert on_disk is not None
        if clip.state.is_final:
            assert on_disk.status == FINAL_WORDS[clip.state]
        else:
            assert on_disk.open, (clip.state, on_disk.status)
        if clip.state is State.PENDING:
            assert on_disk.note == clip.note == clip.record.note and on_disk.error is None
        if clip.state is State.DOWNLOADING:
            assert on_disk.status == "succeeded"

    @invariant()
    def a_paid_job_is_never_lost(self) -> None:
        on_disk = sidecar.read(self.path)
        if on_disk is not None and on_disk.status in sidecar.OPEN_STATES:
            job = on_disk.job_ref
            assert job is not None and job.job_id == f"operations/{self.jobs}"
        if self.clip is not None and self.clip.state is State.PENDING and self._has_job():
            assert on_disk is not None and on_disk.open and on_disk.job_ref is not None
            assert on_disk.job_ref.job_id == self.clip.job_id

    @invariant()
    def a_final_state_never_changes(self) -> None:
        first = next((i for i, s in enumerate(self.history) if s.is_final), None)
        if first is not None:
            assert set(self.history[first:]) == {self.history[first]}, self.history

    @invariant()
    def listeners_hear_each_settled_clip(self) -> None:
        if self.clip is not None and self.history[-1] is not self.history[0] and not self.clip.state.is_running:
            updates = [e for e in self.events if isinstance(e, VideoUpdated) and e.video is self.clip]
            finished = [e for e in self.events if isinstance(e, CallFinished) and e.response is self.clip.record]
            assert updates and finished

    @invariant()
    def a_pending_clip_never_reads_as_failed(self) -> None:
        clip = self.clip
        if clip is None or clip.state is not State.PENDING:
            return
        result = VideoResult(prompt="a fox", videos=[clip])
        said = [VideoPane(clip).status_text(), status_word(clip.record), text_report(result),
                self.progress.getvalue().splitlines()[-1],
                "\n".join(text_ledger(result.ledger))]
        for words in said:
            assert "pending" in words and not FAILURE.search(words), words
        shown = ledger_display(result.ledger).iloc[0]
        assert shown["status"] == "pending" and shown["error"] == "" and clip.note and clip.note in shown["note"]
        clips_html = html_report(result).partition("<h3>Cost &amp; latency</h3>")[0]
        assert "<b>pending</b>" in clips_html and not FAILURE.search(clips_html)


TestVideoJobStates = VideoJobMachine.TestCase
TestVideoJobStates.settings = settings(max_examples=60, stateful_step_count=30)
