"""Batch evaluations when things go wrong, and in the notebook: a whole batch failed or expired, a throttled poll,
request files split by bytes, and ``%fuse eval --batch`` / ``--background`` / ``resume`` / ``--estimate`` in a
real shell, with one line for every misuse."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from test_batch_eval import FAST, QUESTIONS, A, B, chat_requests, run, script

from fusion_magic.api import EvalJob
from fusion_magic.calls.batch import BatchUpdate
from fusion_magic.calls.call import CallContext
from fusion_magic.calls.receipts import Receipts
from fusion_magic.calls.runlog import RunLog
from fusion_magic.evaluation import EvalResult, plan_evaluation, run_evaluation
from fusion_magic.providers.batch.openai import OpenAIBatch
from fusion_magic.testing import Emulator, ModelScript


def single(model: str = A, **more: object) -> EvalResult:
    return run(plan_evaluation(QUESTIONS, FAST, pool=[model], strategies=[f"single:{model}"], batch=True,
                               poll_s=0.01, **more))  # type: ignore[arg-type]


def test_a_whole_batch_that_fails_fails_its_rows_with_the_providers_reason(emulator_env: Emulator) -> None:
    script(emulator_env)
    emulator_env.batches.fail_next("openai", "The batch failed: quota exceeded for this project.")
    result = single()
    assert result.rows["error"].notna().all()
    assert all("quota exceeded for this project" in str(e) for e in result.rows["error"])
    assert result.batches[0].error and "quota exceeded" in result.batches[0].error
    assert chat_requests(emulator_env) == []  # failed, and not asked live unless retry_live


def test_an_expired_batch_keeps_what_finished_and_retry_live_asks_the_rest(emulator_env: Emulator) -> None:
    script(emulator_env)
    emulator_env.batches.expire_next("openai", completed=1)
    result = single()
    errors = result.rows["error"]
    assert errors.isna().sum() == 1 and errors.notna().sum() == 3
    assert all("expired" in str(e) for e in errors.dropna())

    emulator_env.batches.expire_next("openai", completed=1)
    again = single(retry_live=True, seed=5)
    assert again.rows["error"].isna().all()
    assert len(chat_requests(emulator_env)) == 3
    assert again.batch is not None and again.batch.retried_live == 3


def test_a_throttled_poll_waits_as_told_and_goes_on(emulator_env: Emulator) -> None:
    script(emulator_env)
    emulator_env.batches.throttle_next_poll("anthropic", retry_after=0.3)
    started = time.monotonic()
    result = single(B)
    assert result.rows["error"].isna().all()
    assert time.monotonic() - started >= 0.3
    polls = [r for r in emulator_env.requests if r.method == "GET" and "/messages/batches/" in r.path]
    assert len(polls) >= 3  # the 429, then the polls that saw it through


def test_request_files_are_split_to_the_apis_byte_limit(emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                         ) -> None:
    script(emulator_env)
    # One request line is a few hundred bytes: a 700-byte limit holds one or two.
    monkeypatch.setattr(OpenAIBatch, "max_bytes", 700)
    updates: list[BatchUpdate] = []
    p = plan_evaluation(QUESTIONS, FAST, pool=[A], strategies=[f"single:{A}"], batch=True, poll_s=0.01)
    result = run(p, [lambda e: updates.append(e) if isinstance(e, BatchUpdate) else None])
    assert result.rows["error"].isna().all()
    sizes = {u.receipt: u.requests for u in updates}
    assert len(sizes) >= 2 and sum(sizes.values()) == 4
    assert emulator_env.batches.creations("openai") == len(sizes)


def test_the_eval_magic_runs_a_batch_evaluation_and_shows_its_batches(
        shell: InteractiveShell, emulator_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    script(emulator_env)
    shell.user_ns["qs"] = QUESTIONS
    out = shell.run_line_magic("fuse", f"eval qs -p {A},{B} --strategies single --batch --poll 0.01 -o ev")
    assert isinstance(out, EvalResult) and out.rows["error"].isna().all()
    err = capsys.readouterr().err
    # Outside Jupyter the progress is lines on stderr: each batch as its provider reports it.
    assert "openai gpt-a, wave 1: 4 requests" in err and "anthropic (several), wave 1: 4 requests" in err
    assert "completed (done) 4 done" in err and "ended (done)" in err
    assert chat_requests(emulator_env) == []
    shell.user_ns.pop("qs")
    shell.user_ns.pop("ev")


def test_background_returns_the_job_and_resume_picks_up_an_unfinished_one(
        shell: InteractiveShell, emulator_env: Emulator, tmp_path: Path) -> None:
    script(emulator_env)
    source = tmp_path / "questions.csv"
    QUESTIONS.to_csv(source, index=False)
    emulator_env.batches.hold()
    assert shell.run_line_magic("fuse", f"eval {source} -p {A} --strategies single --batch --poll 0.01 "
                                        "--background -o job") is None
    job = shell.user_ns.pop("job")
    assert isinstance(job, EvalJob) and not job.done()
    deadline = time.monotonic() + 20
    while emulator_env.batches.creations() < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)  # its receipt is written as the provider's answer arrives
    job.cancel()
    with pytest.raises((asyncio.CancelledError, KeyboardInterrupt, BaseException)):
        job.result(timeout=10)
    emulator_env.batches.release()
    resumed = shell.run_line_magic("fuse", "eval resume -o back")
    assert isinstance(resumed, EvalResult) and resumed.rows["error"].isna().all() and len(resumed.entries) == 4
    assert resumed.batch is not None and resumed.batch.reattached == 1
    assert emulator_env.batches.creations() == 1  # nothing submitted twice
    shell.user_ns.pop("back")
    with pytest.raises(UsageError, match="no unfinished batch evaluation"):
        shell.run_line_magic("fuse", "eval resume")


def test_misuse_is_one_line_and_no_request(shell: InteractiveShell, emulator_env: Emulator) -> None:
    shell.user_ns["qs"] = QUESTIONS
    for line, words in (
        (f"eval qs -p {A} --retry-live", "--retry-live applies to batch evaluations"),
        (f"eval qs -p {A} --poll 1", "--poll applies to batch evaluations"),
        (f"eval qs -p {A} --batch --poll 0", "--poll"),
        ("eval qs -p ollama:llama3.2 --batch", "none of these models' providers has a batch API"),
        (f"eval resume -p {A}", "takes the options the evaluation was started with"),
    ):
        with pytest.raises(UsageError, match=words):
            shell.run_line_magic("fuse", line)
    assert emulator_env.requests == []
    estimate = shell.run_line_magic("fuse", f"eval qs -p {A},{B} --strategies single --estimate")
    assert "in batches" in str(estimate) and emulator_env.requests == []
    shell.user_ns.pop("qs")


def test_the_jupyter_progress_shows_each_batch_escaped_and_ends_as_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                               ) -> None:
    from fusion_magic.core.state import State
    from fusion_magic.ipython.progress import EvalProgress

    shown: list[object] = []

    class Handle:
        def update(self, obj: object) -> None:
            shown.append(obj._repr_mimebundle_())  # type: ignore[attr-defined]

    monkeypatch.setattr("IPython.display.display", lambda obj, display_id=False: Handle())
    progress = EvalProgress(8, widgets=True)
    bundle = progress._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the bar and its (empty) batch table
    hostile = "<img src=x onerror=alert(1)>"
    progress.listener(BatchUpdate("fm-1", "openai", "gpt-a", 1, 4, "batch_1", "in_progress", State.RUNNING, 2, 0))
    progress.listener(BatchUpdate("fm-2", "anthropic", "(several)", 1, 4, "msgbatch_1", "ended", State.FAILED,
                                  0, 4, hostile))
    table = progress._table.value
    assert "in_progress" in table and "running" in table and "batch_1" in table
    assert hostile not in table and "&lt;img src=x onerror=alert(1)&gt;" in table
    progress.row(8, 8, None)
    progress.close(1.5)
    final = shown[-1]
    assert isinstance(final, dict)
    assert final["text/plain"].startswith("evaluated 8 of 8 rows in 1.5 s; openai gpt-a, wave 1: 4 requests")
    assert hostile not in final["text/html"]


class LoseCreateAnswers(httpx.AsyncBaseTransport):
    """A real socket to the emulator, except that the answer to a batch create is lost on the way back: the
    provider has the batch (and will bill it), the client sees a dropped connection."""

    def __init__(self, create_paths: tuple[str, ...]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.create_paths = create_paths
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith(self.create_paths):
            await response.aread()
            self.lost += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize(("model", "create_path"), [(A, "/batches"), (B, "/messages/batches")])
def test_a_submit_whose_answer_is_lost_is_looked_up_not_sent_again(emulator_env: Emulator, model: str,
                                                                   create_path: str) -> None:
    script(emulator_env)
    p = plan_evaluation(QUESTIONS, FAST, pool=[model], strategies=[f"single:{model}"], batch=True, poll_s=0.01)
    transport = LoseCreateAnswers((create_path,))

    async def go() -> EvalResult:
        async with httpx.AsyncClient(transport=transport) as client:
            return await run_evaluation(p, CallContext(client=client, settings=p.settings))

    result = asyncio.run(go())
    assert transport.lost == 1
    assert result.rows["error"].isna().all()  # the lookup found the batch the provider had accepted
    assert emulator_env.batches.creations() == 1  # and nothing was submitted twice
    assert len(result.batches) == 1 and result.batches[0].batch_id


def test_a_batch_that_cannot_be_followed_keeps_its_receipt_and_a_rerun_fetches_it(emulator_env: Emulator) -> None:
    script(emulator_env)
    p = plan_evaluation(QUESTIONS, FAST, pool=[A], strategies=[f"single:{A}"], batch=True, poll_s=0.01)
    emulator_env.batches.hold()
    original = emulator_env.expected_keys.get("openai")

    async def revoked_after_submit() -> EvalResult:
        async with httpx.AsyncClient() as client:
            task = asyncio.create_task(run_evaluation(p, CallContext(client=client, settings=p.settings)))
            while emulator_env.batches.creations() < 1:
                await asyncio.sleep(0.01)
            emulator_env.expected_keys["openai"] = "sk-not-this-one"  # the key is revoked: every poll is a 401
            return await task

    first = asyncio.run(revoked_after_submit())
    assert first.rows["error"].notna().all()
    path = p.settings.run_log_path()
    assert path is not None
    # Paid for at the provider, never read: its receipt stays open.
    assert [r.batch_id is not None for r in Receipts(RunLog(path), p.identity).open_receipts()] == [True]

    if original is None:
        emulator_env.expected_keys.pop("openai", None)
    else:
        emulator_env.expected_keys["openai"] = original
    emulator_env.batches.release()
    again = run(p)
    assert again.rows["error"].isna().all()
    assert emulator_env.batches.creations() == 1  # fetched, not paid again


def test_resume_refuses_an_evaluation_whose_questions_changed(shell: InteractiveShell, emulator_env: Emulator,
                                                              tmp_path: Path) -> None:
    script(emulator_env)
    source = tmp_path / "questions.csv"
    QUESTIONS.to_csv(source, index=False)
    emulator_env.batches.hold()
    job = shell.run_line_magic("fuse", f"eval {source} -p {A} --strategies single --batch --poll 0.01 "
                                       "--background -o job")
    job = shell.user_ns.pop("job")
    while emulator_env.batches.creations() < 1:
        time.sleep(0.02)
    time.sleep(0.2)
    job.cancel()
    QUESTIONS.iloc[:3].to_csv(source, index=False)  # the file was edited since
    with pytest.raises(UsageError, match="can no longer be planned the same way"):
        shell.run_line_magic("fuse", "eval resume")
    emulator_env.batches.release()


def test_batch_options_of_the_wrong_type_are_one_line() -> None:
    from fusion_magic.core.errors import ConfigError
    from fusion_magic.evaluation.options import EvalOptions

    with pytest.raises(ConfigError, match="batch must be True or False, not 'no'"):
        EvalOptions(batch="no")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--poll must be a positive number, not '5'"):
        EvalOptions(batch=True, poll_s="5")  # type: ignore[arg-type]


@pytest.mark.parametrize(("model", "sent_again"), [(A, True), (B, False)])
def test_a_receipt_left_submitting_is_looked_up_then_sent_only_where_the_lookup_is_conclusive(
        emulator_env: Emulator, model: str, sent_again: bool) -> None:
    """A kill between writing the receipt and the provider's answer: OpenAI's list finds batches by our label, so
    none there means none was created and the requests go out; Anthropic's cannot tell, so they fail rather than
    risk a second bill."""
    from fusion_magic.calls.batch import BatchRunner

    script(emulator_env)
    p = plan_evaluation(QUESTIONS, FAST, pool=[model], strategies=[f"single:{model}"], batch=True, poll_s=0.01)
    path = p.settings.run_log_path()
    assert path is not None
    receipts = Receipts(RunLog(path), p.identity)

    async def ids() -> list[str]:  # the request ids this evaluation's calls get
        async with httpx.AsyncClient() as client:
            runner = BatchRunner(client, receipts, p.targets)
            strategy = p.strategies[0]
            assert strategy.target is not None
            from fusion_magic.evaluation.engine import instruction_for
            from fusion_magic.fusion.pool import Member
            from fusion_magic.fusion.requests import member_request

            out = []
            for q in p.questions:
                member = Member(strategy.target, "x", seed=strategy.options.seed,
                                temperature=strategy.options.temperature)
                request = member_request(member, q.prompt(instruction_for(strategy, p.instruction)).strip(),
                                         strategy.options)
                out.append(runner._custom_id(strategy.target, request))
            await runner.aclose()
            return out

    custom_ids = asyncio.run(ids())
    provider = "openai" if model == A else "anthropic"
    receipts.intent(provider, emulator_env.url, "x", wave=1, custom_ids=custom_ids)  # and then the kernel died
    result = run(p)
    states = sorted(str(row[0]) for row in RunLog(path).query("SELECT state FROM batches WHERE evaluation = ?",
                                                              (p.identity,)))
    if sent_again:
        assert result.rows["error"].isna().all() and emulator_env.batches.creations() == 1
        assert states == ["absent", "done"]  # the old receipt looked up and found absent; the new batch
    else:
        assert result.rows["error"].notna().all() and emulator_env.batches.creations() == 0
        assert all("not sent again" in str(e) for e in result.rows["error"])
        assert states == ["lost"]


def test_a_hostile_batch_error_and_answer_are_inert_in_every_form_of_the_result(emulator_env: Emulator) -> None:
    """A provider's batch error message and a model's answer are untrusted: the result's HTML is inert, its
    Markdown neutralised, and the progress view escapes them (the same words, never a tag)."""
    from html_checks import assert_inert

    evil = "<img src=x onerror=alert(1)>"
    script(emulator_env, **{"claude-b": ModelScript(reply=f"Final answer: 4 {evil}")})
    emulator_env.batches.fail_next("openai", f"The batch failed: {evil}")
    result = run(plan_evaluation(QUESTIONS, FAST, pool=[A, B], strategies=["single"], batch=True, poll_s=0.01))
    assert any(evil in str(e) for e in result.rows["error"].dropna())  # kept as it came, in the data
    html = result._repr_html_()
    assert_inert(html)
    assert evil not in html and evil not in result.to_markdown()
    from fusion_magic.ipython.progress import batch_table

    table = batch_table(result.batches)
    assert_inert(table)
    assert evil not in table
