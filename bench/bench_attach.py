"""How much memory does an attachment cost? One ~20 MB PDF sent to four providers at once.

``fusion_magic.fuse(prompt, pool=[OpenAI, Anthropic, Gemini, OpenRouter], judge=..., attach=[pdf])`` against
the emulator, which runs in a separate process so that its own copies of the requests (it decodes and records
every body) do not count against us. The PDF is a real one (a page that draws one large uncompressed image,
random bytes so nothing compresses it), written to a temporary folder; it passes our own attachment checks
(``load_attachment`` sniffs it as ``application/pdf``, pypdf reads its page, every member's limits take it). At
20 MB, its base64 (26.7 MB) is past Gemini's 20 MB inline limit, so the Gemini member uploads it through the
Files API; the other three send it inline in their JSON, and the judge (an Anthropic model) gets it once more
after the members.

Each measurement runs in a fresh process (spawned), after a warm-up run with a small PDF (imports, the engine
thread, the run log): ``tracemalloc`` is started after a ``gc.collect()``, and the peak of traced memory over
the traced memory just before ``fuse`` is the growth. The RSS high-water mark (``VmHWM`` in
``/proc/self/status``, reset through ``/proc/self/clear_refs``) over the RSS before, less tracemalloc's own
bookkeeping, is printed beside it as a check on what tracemalloc cannot see (buffers outside Python's
allocator). "retained" is what the run left held once ``fuse`` returned (the result keeps its attachments).

What the wire needs, the ideal: the file once (``fuse`` reads it into memory: one ``bytes``), plus what the
same run needs without the attachment (measured side by side in the same process, alternating order: events,
answers, the run log). Nothing per provider: a request body can be written to the socket a piece at a time,
its base64 encoded from the file's bytes as it goes, so no provider needs a whole copy of the file, of its
base64 or of the JSON around it; the Files API upload is sent from the same bytes in chunks. A run that
encodes the file per provider and holds the serialized bodies whole shows up as extra copies per provider
(4/3 of the file for each base64 string, as much again for each JSON body and its socket buffer).

    growth / (what the wire needs) = peak growth with the PDF / (file size + peak growth of the run without it)

1.00 is the ideal; the target, 1.10, leaves room for a few socket buffers and chunks in flight (under 1 MB
each) and for noise in the bookkeeping. We also print the extra copies of the file per provider: (growth
with the PDF - growth without it - the file) / file size / providers (0.00 is the ideal, below it reads as
0.00; target 0.10). Missed targets are reported, not failed: only an error exits non-zero.

    .venv/bin/python bench/bench_attach.py [--mb 20] [--reps 2]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import multiprocessing as mp
import os
import statistics
import tempfile
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROMPT = "Summarise the attached paper in one sentence."
POOL = ["openai:gpt-4o", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-flash", "openrouter:openai/gpt-4o"]
JUDGE = "anthropic:bench-judge"
REPLY = "The paper is one large figure."
JUDGE_REPLY = '{"reasoning": "Answer A says it in one sentence.", "winner": "A"}'
PDF_NAME = "paper.pdf"
WARM_NAME = "warm.pdf"
RATIO_TARGET = 1.10
COPIES_TARGET = 0.10
MB = 1 << 20


# ---- the PDF -------------------------------------------------------------------------------------------------


def make_pdf(path: Path, size: int, seed: int = 0) -> int:
    """Write a valid one-page PDF of about ``size`` bytes (``fusion_magic.testing.media.pdf_bytes``: random image
    samples, so the file cannot be smaller than its data, and a line of text). The size of the file."""
    from fusion_magic.testing.media import pdf_bytes

    data = pdf_bytes(size, seed, text="fusion_magic attachment benchmark")
    path.write_bytes(data)
    return len(data)


def check_pdf(path: Path) -> None:
    """The PDF passes our own checks: sniffed as a PDF, one readable page, and every member may take it."""
    from fusion_magic.core.attachment import load_attachment
    from fusion_magic.core.media_tokens import measure

    a = load_attachment(path)
    m = measure(a)
    if a.kind != "pdf" or not m.readable or len(m.pages) != 1:
        raise RuntimeError(f"{path.name} is not a readable one-page PDF to us ({a.mime}, {m.describe()})")


# ---- the emulator's process ----------------------------------------------------------------------------------


def script(emu: Any) -> None:
    from fusion_magic.testing import ModelScript, VideoScript
    from fusion_magic.testing.families.gemini_files import upload_key

    for model_id in POOL:
        emu.script(model_id.split(":", 1)[1], ModelScript(reply=REPLY, ttft_s=0.05, tokens_per_s=200,
                                                          chunk_chars=8))
    emu.script(JUDGE.split(":", 1)[1], ModelScript(reply=JUDGE_REPLY, ttft_s=0.05, tokens_per_s=400,
                                                   chunk_chars=8))
    for name in (PDF_NAME, WARM_NAME):
        emu.script(upload_key(name), VideoScript(polls=0))


def serve(conn: Connection) -> None:
    """Script the models, send the environment back, then forget what was recorded whenever asked (the
    emulator keeps every body it decoded: tens of MB a run), until told to stop or the parent goes away."""
    from fusion_magic.testing import Emulator

    with Emulator() as emu:
        script(emu)
        conn.send({**emu.env(), **emu.test_keys()})
        with contextlib.suppress(EOFError):
            while conn.recv() == "reset":
                emu.reset()
                script(emu)
                conn.send("ok")


# ---- one measurement, in a fresh process ---------------------------------------------------------------------


def _status(field: str) -> int:
    """A ``/proc/self/status`` figure in bytes (0 where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_high_water() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _one_run(attach: list[Path]) -> dict[str, float]:
    """One ``fuse`` of the pool and the judge; its peak growth of traced memory and of RSS."""
    import fusion_magic
    from fusion_magic.calls.settings import Settings

    settings = Settings(max_retries=0, timeout=120)
    gc.collect()
    resettable = _reset_high_water()
    rss0 = _status("VmRSS")
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    r = fusion_magic.fuse(PROMPT, pool=POOL, judge=JUDGE, mode="best-of", settings=settings, attach=attach)
    wall = time.perf_counter() - t0
    now, peak = tracemalloc.get_traced_memory()
    overhead = tracemalloc.get_tracemalloc_memory()
    tracemalloc.stop()
    rss_peak = _status("VmHWM") - overhead if resettable else float("nan")
    if r.n_ok != len(POOL) or r.degraded or r.answer != REPLY:
        errors = [x.error for x in r.responses if x.error]
        raise RuntimeError(f"the run did not answer as scripted ({r.n_ok} of {len(POOL)} ok): {errors}")
    return {"traced": peak - traced0, "rss": rss_peak - rss0, "retained": now - traced0, "wall": wall}


def measure_worker(conn: Connection, env: dict[str, str], pdf: str, warm: str, attach_first: bool) -> None:
    """A fresh process: warm up with the small PDF, then the run with the PDF and the run without it, in the
    order asked."""
    os.environ.update(env)
    try:
        _one_run([Path(warm)])
        order = [True, False] if attach_first else [False, True]
        out = {("attach" if with_pdf else "plain"): _one_run([Path(pdf)] if with_pdf else []) for with_pdf in order}
        conn.send(out)
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


def measure(env: dict[str, str], pdf: Path, warm: Path, attach_first: bool, timeout: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=measure_worker, args=(theirs, env, str(pdf), str(warm), attach_first))
    child.start()
    try:
        if not ours.poll(timeout):
            raise RuntimeError(f"a measurement took over {timeout:g} s")
        result: dict[str, Any] = ours.recv()
    finally:
        child.join(30)
        if child.is_alive():
            child.terminate()
    if "error" in result:
        raise RuntimeError(f"the measuring process failed: {result['error']}")
    return result


# ---- main ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=20.0, help="the PDF's size in MB (MiB)")
    parser.add_argument("--reps", type=int, default=2, help="fresh measuring processes, alternating order")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds one measuring process may take")
    ns = parser.parse_args()
    if ns.mb <= 0 or ns.reps < 1:
        parser.error("--mb and --reps must be positive")
    size = int(ns.mb * MB)
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    emulator = ctx.Process(target=serve, args=(theirs,), daemon=True)
    emulator.start()
    here = Path.cwd()
    rows: list[dict[str, Any]] = []
    try:
        if not ours.poll(120):
            raise RuntimeError("the emulator process did not start within 120 s")
        env = {**ours.recv()}
        with tempfile.TemporaryDirectory(prefix="bench_attach_") as tmp:
            folder = Path(tmp)
            pdf, warm = folder / PDF_NAME, folder / WARM_NAME
            file_size = make_pdf(pdf, size)
            make_pdf(warm, 64 << 10, seed=1)
            check_pdf(pdf)
            # The run log is written as a user's would be, into this folder (then removed), not the user's own.
            env["FUSION_MAGIC_RUN_LOG"] = str(folder / "fusion_runs.sqlite")
            os.chdir(tmp)
            try:
                for rep in range(ns.reps):
                    rows.append(measure(env, pdf, warm, attach_first=rep % 2 == 0, timeout=ns.timeout))
                    ours.send("reset")
                    ours.recv()
            finally:
                os.chdir(here)
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        emulator.join(10)
        if emulator.is_alive():
            emulator.terminate()

    providers = len(POOL)
    print(f"a {file_size / MB:.1f} MB PDF ({file_size:,} bytes; base64 {4 * ((file_size + 2) // 3) / MB:.1f} MB) "
          f"attached to {providers} members ({', '.join(POOL)}) and the judge {JUDGE}; emulator in another "
          f"process; {ns.reps} fresh measuring processes, alternating order")
    print("(needed = the file once + the same run without the attachment; growth = peak traced memory over the "
          "traced memory before fuse)")
    print(f"{'rep':>3} {'attach_MB':>9} {'plain_MB':>8} {'needed_MB':>9} {'ratio':>6} {'rss_attach':>10} "
          f"{'rss_plain':>9} {'retained':>8} {'wall_s':>6}")
    ratios, copies, growths, rss = [], [], [], []
    for i, row in enumerate(rows, 1):
        a, p = row["attach"], row["plain"]
        needed = file_size + p["traced"]
        ratios.append(a["traced"] / needed)
        # Below zero is noise in the bookkeeping (the run without the file peaked elsewhere): it reads as none.
        copies.append(max(0.0, (a["traced"] - p["traced"] - file_size) / file_size / providers))
        growths.append(a["traced"])
        rss.append(a["rss"])
        print(f"{i:>3} {a['traced'] / MB:9.1f} {p['traced'] / MB:8.1f} {needed / MB:9.1f} {ratios[-1]:6.3f} "
              f"{a['rss'] / MB:10.1f} {p['rss'] / MB:9.1f} {a['retained'] / MB:8.1f} {a['wall']:6.2f}")
    label = f"attach {ns.mb:g} MB PDF to {providers} providers"
    print(f"median RSS high-water growth with the PDF: {statistics.median(rss) / MB:.1f} MB "
          "(tracemalloc's own bookkeeping taken out)")
    print(f"{label}: peak memory growth = {statistics.median(growths) / MB:.1f} MB")
    print(f"{label}: extra copies of the file per provider = {statistics.median(copies):.2f}  "
          f"(ideal 0.00, target <= {COPIES_TARGET:.2f})")
    print(f"{label}: growth / (what the wire needs) = {statistics.median(ratios):.3f}  "
          f"(target <= {RATIO_TARGET:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
