"""Property tests (hypothesis) for what crosses a boundary other than model text: the magic line, the streamed
wire (over a real socket to the emulator), sidecars on disk, the run log, prices and the Wilson interval.

Each test's docstring names the promise it checks, quoted from the code's docstrings where there is one.
``tests/test_properties_text.py`` has the properties of model text and the cell body.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import tempfile
import types
import typing
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import fusion_magic
from fusion_magic.calls.runlog import RunLog, redact_secrets
from fusion_magic.calls.settings import Settings
from fusion_magic.core.errors import ConfigError
from fusion_magic.core.pricing import Price, price_for
from fusion_magic.core.record import CallRecord
from fusion_magic.evaluation.result import wilson_interval
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.ipython import args as magic_args
from fusion_magic.providers.base import REDACTED
from fusion_magic.providers.video.base import JobRef, VideoRequest
from fusion_magic.testing import Emulator, ModelScript
from fusion_magic.videos import sidecar
from fusion_magic.videos.engine import open_jobs, plan_resume
from fusion_magic.videos.options import VideoOptions

# Text that can be stored as UTF-8 (no lone surrogates) and shown (no NUL).
storable = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)

# ---- the magic line -------------------------------------------------------------------------------------


def _flags(parser: Any) -> list[str]:
    return sorted(flag for action in parser._actions for flag in action.option_strings)


_VALUES = ["0", "1", "-1", "2", "8", "9", "nan", "inf", "-inf", "1e999", "0.5", "vote", "best-of", "merge",
           "debate", "on", "off", "replay", "x", "r", "", ",", " , ", "openai:gpt-4o", "16:9", "4k", "720P", "#",
           "# comment", "'", '"', "--", "-", "class", "1_000", "\u0663", "--self", "a b"]


def _line(flags: list[str]) -> st.SearchStrategy[str]:
    """A magic line of real flags and awkward values, shell-quoted or not (unbalanced quotes included)."""
    tokens = st.lists(st.one_of(st.sampled_from(flags), st.sampled_from(_VALUES), st.text(max_size=6)), max_size=8)
    return st.tuples(tokens, st.booleans()).map(
        lambda tq: " ".join(shlex.quote(t) for t in tq[0]) if tq[1] else " ".join(tq[0]))


@settings(max_examples=300)
@given(_line(_flags(magic_args.FUSE_PARSER)))
def test_any_fuse_line_parses_or_is_one_usage_error(line: str) -> None:
    """``parse_fuse_line``: "raise UsageError with one line on any problem"; a parsed line's bad value is the
    ``ConfigError`` of ``FuseOptions`` (which the magic shows as one line too). Nothing else escapes."""
    try:
        parsed = magic_args.parse_fuse_line(line)
    except UsageError:
        return
    with contextlib.suppress(ConfigError):
        parsed.options(FuseOptions())


@settings(max_examples=300)
@given(_line(_flags(magic_args.VIDEO_PARSER)))
def test_any_video_line_parses_or_is_one_usage_error(line: str) -> None:
    """``parse_video_line``: "raise UsageError with one line on any problem"; the options it gives build a
    ``VideoOptions`` or fail with its one-line ``ConfigError``."""
    try:
        parsed = magic_args.parse_video_line(line)
    except UsageError:
        return
    with contextlib.suppress(ConfigError):
        VideoOptions.from_keywords(dict(parsed.given))  # type: ignore[arg-type]


_LINE_MAGIC_FLAGS = sorted({*_flags(magic_args.REJUDGE_PARSER), *_flags(magic_args.HISTORY_PARSER),
                            *_flags(magic_args.EVAL_PARSER), *_flags(magic_args.VIDEO_RESUME_PARSER)})


@settings(max_examples=200)
@given(st.sampled_from([*magic_args.LINE_COMMANDS, *magic_args.VIDEO_COMMANDS, "x"]), _line(_LINE_MAGIC_FLAGS))
def test_any_line_magic_parses_or_is_one_usage_error(command: str, rest: str) -> None:
    """``%fuse ...`` and ``%video ...``: a known command and its options, or one ``UsageError``."""
    for parse in (magic_args.parse_line_magic, magic_args.parse_video_line_magic):
        with contextlib.suppress(UsageError):
            parse(f"{command} {rest}")


# ---- the streamed wire, over a real socket --------------------------------------------------------------

STREAM_MODELS = {"openai": "gpt-4o-mini", "openrouter": "openai/gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
                 "gemini": "gemini-2.5-flash", "ollama": "llama3.2"}
# SSE syntax, every line end str.splitlines() knows (an SSE reader must split on \r and \n only), and
# multi-byte characters that a byte-level cut would break.
_WIRE_PIECES = ["data: x", "data:", "\n", "\r\n", "\r", "\n\n", "event: error", ": ping", "[DONE]", "id: 1",
                "retry: 0", '{"a": 1}', '"', "\\", "\u2028", "\u2029", "\x85", "\x0b", "\x1c", "é", "日本", "🙂",
                "\u200d", " ", "x"]
reply_text = st.one_of(st.lists(st.sampled_from(_WIRE_PIECES), min_size=1, max_size=12).map("".join),
                       storable.filter(bool))


@settings(max_examples=25)
@given(st.sampled_from(sorted(STREAM_MODELS)), reply_text, st.integers(min_value=1, max_value=13), st.booleans(),
       st.booleans())
def test_the_streamed_answer_is_exactly_the_reply(emulator_env: Emulator, provider: str, reply: str,
                                                  chunk_chars: int, crlf: bool, split_events: bool) -> None:
    """Whatever the reply holds (unicode, line ends, ``data:`` and SSE syntax inside the text) and however the
    server cuts it (chunk size, CRLF, events split across TCP writes), ``complete`` returns exactly it."""
    model = STREAM_MODELS[provider]
    emulator_env.script(model, ModelScript(reply=reply, chunk_chars=chunk_chars, crlf=crlf,
                                           split_events=split_events))
    r = fusion_magic.complete(f"{provider}:{model}", "Say it.", timeout=20)
    assert r.status == "ok", (r.status, r.error)
    assert r.text == reply


# ---- sidecars ---------------------------------------------------------------------------------------------

_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}

_PARAMETERS: dict[str, st.SearchStrategy[Any]] = {
    "prompt": storable, "seconds": st.none() | st.integers(1, 60), "aspect": st.sampled_from([None, "16:9", "9:16"]),
    "resolution": st.sampled_from([None, "720p", "1080p", "4k"]), "negative": st.none() | storable,
    "previous_job": st.none() | st.text(max_size=12),
}
video_requests = st.builds(VideoRequest, model=st.just("veo-3.1-generate-preview"), **_PARAMETERS)


@settings(max_examples=300)
@given(st.text(), st.text())
@example(prompt="../../etc/passwd", model_id="gemini:../x")
@example(prompt="CON", model_id="fal:nul")
@example(prompt="\x00\x1f\u202e", model_id="")
def test_the_clip_stem_is_a_safe_file_name_for_any_prompt(prompt: str, model_id: str) -> None:
    """``clip_stem``: "A file name stem safe on every OS whatever the prompt", the same for the same request."""
    key = sidecar.request_key(model_id, VideoRequest(model=model_id, prompt=prompt))
    stem = sidecar.clip_stem(prompt, model_id, key)
    assert stem == sidecar.clip_stem(prompt, model_id, key)
    assert 0 < len(stem) <= 100
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in stem), stem
    assert ".." not in stem and stem.split(".")[0].lower() not in _WINDOWS_RESERVED
    assert stem.endswith(key[:10])


@settings(max_examples=300)
@given(video_requests, st.sampled_from([None, *sorted(_PARAMETERS)]), st.data(), st.integers(0, 3),
       st.integers(0, 3))
def test_the_request_key_differs_when_anything_that_changes_the_clip_differs(
        a: VideoRequest, changed: str | None, data: st.DataObject, seat_a: int, seat_b: int) -> None:
    """``request_key``: "A stable hash of everything that changes the clip: model, prompt, every parameter"
    ("The same cell run again has the same key"); ``seat`` tells the same model named twice apart."""
    b = a if changed is None else replace(a, **{changed: data.draw(_PARAMETERS[changed])})
    same = (a, seat_a) == (b, seat_b)
    model = "gemini:" + a.model
    assert (sidecar.request_key(model, a, seat_a) == sidecar.request_key(model, b, seat_b)) == same


def _sidecar(request: VideoRequest, **fields: Any) -> sidecar.Sidecar:
    key = sidecar.request_key("gemini:" + request.model, request)
    side = sidecar.Sidecar.for_request("gemini:" + request.model, request, key)
    return replace(side, **fields)


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False)
sidecar_fields = st.fixed_dictionaries({}, optional={
    "status": st.sampled_from(["submitted", "pending", "succeeded", "ok", "failed", "filtered", "cancelled"]),
    "job": st.none() | st.builds(lambda i: JobRef("veo", "veo-3.1", i).as_dict(), storable),
    "file": st.none() | st.from_regex(r"[a-z0-9-]{1,20}\.mp4", fullmatch=True),
    "submitted_at": st.none() | st.just(sidecar.now_iso()), "seconds": st.none() | finite,
    "cost_usd": st.none() | finite, "latency_s": st.none() | finite, "polls": st.integers(0, 10**6),
    "error": st.none() | storable, "reason": st.none() | storable, "notes": st.lists(storable, max_size=3),
})


@settings(max_examples=100)
@given(video_requests, sidecar_fields)
def test_a_sidecar_written_then_read_is_the_same(tmp_path: Path, request: VideoRequest,
                                                 fields: dict[str, Any]) -> None:
    """``write`` then ``read`` round-trips every field (the sidecar is the only receipt of a paid job)."""
    side = _sidecar(request, **fields)
    path = tmp_path / "clip.json"
    sidecar.write(path, side)
    assert sidecar.read(path) == side


@settings(max_examples=150)
@given(video_requests, st.data())
def test_a_truncated_or_garbled_sidecar_reads_as_none(tmp_path: Path, request: VideoRequest,
                                                      data: st.DataObject) -> None:
    """``read``: "None when it is missing, unreadable or not ours"; never another exception."""
    side = _sidecar(request, job=JobRef("veo", "veo-3.1", "operations/1").as_dict())
    path = tmp_path / "clip.json"
    sidecar.write(path, side)
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    path.write_bytes(raw[:cut] + data.draw(st.binary(max_size=8)))
    got = sidecar.read(path)
    assert got is None or got == side  # only a cut in the trailing newline leaves it whole


def _conforms(value: object, hint: Any) -> bool:
    """Whether ``value`` (from JSON) has the type a ``Sidecar`` field declares."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_conforms(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint in (int, str):
        return isinstance(value, hint) and not isinstance(value, bool)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    raise AssertionError(f"no check for {hint!r}")


_HINTS = typing.get_type_hints(sidecar.Sidecar)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def _damaged(tmp: Path, field: str, value: object) -> Path:
    """A sidecar of an open job with one field replaced by ``value``, as a hand edit or another program leaves."""
    side = _sidecar(VideoRequest(model="veo-3.1-generate-preview", prompt="a fox"), status="submitted",
                    job=JobRef("veo", "veo-3.1-generate-preview", "operations/1").as_dict())
    data = asdict(side)
    data[field] = value
    path = tmp / "a-fox-veo.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@settings(max_examples=300)
@given(st.sampled_from(sorted(_HINTS)), json_values)
@example(field="status", value=[])
@example(field="parameters", value=None)
def test_a_damaged_sidecar_reads_as_none_or_as_a_well_typed_one(tmp_path: Path, field: str, value: object) -> None:
    """``read``: "None when it is missing, unreadable or not ours". A sidecar whose fields do not have their
    types is not ours to use: ``read`` returns None for it rather than a Sidecar that breaks its readers."""
    side = sidecar.read(_damaged(tmp_path, field, value))
    if side is not None:
        wrong = {name: getattr(side, name) for name, hint in _HINTS.items() if not _conforms(getattr(side, name), hint)}
        assert not wrong, wrong


@settings(max_examples=150)
@given(st.sampled_from(sorted(_HINTS)), json_values)
@example(field="status", value=[])
@example(field="model", value=7)
def test_resume_skips_a_damaged_sidecar_without_a_traceback(tmp_path: Path, field: str, value: object) -> None:
    """``open_jobs``: "Unreadable sidecars are not ours to judge: they are left alone"; ``plan_resume`` lists a
    job it cannot fetch as skipped. Neither raises for what a sidecar holds."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        folder = Path(tmp)
        _damaged(folder, field, value)
        open_jobs(folder)
        plan = plan_resume(folder, Settings())
        assert len(plan.jobs) + len(plan.skipped) <= 1


@settings(max_examples=50)
@given(st.sampled_from(["../clip.mp4", "../../etc/passwd", "/etc/passwd", "nested/clip.mp4", ".", ".."]))
def test_a_sidecar_file_is_a_name_in_its_own_folder(tmp_path: Path, file: str) -> None:
    """``Sidecar.file`` "is the clip's name in the same folder": a sidecar naming a path elsewhere is not ours,
    so a re-run never shows (or measures) a file outside ``out_dir`` as the clip."""
    side = sidecar.read(_damaged(tmp_path, "file", file))
    assert side is None or (side.file is not None and Path(side.file).name == side.file
                            and side.file not in (".", ".."))


# ---- the evaluation's Wilson interval -----------------------------------------------------------------


@settings(max_examples=400)
@given(st.integers(min_value=1, max_value=10**9).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
@example(kn=(0, 1))
@example(kn=(1, 1))
@example(kn=(10**9, 10**9))
def test_the_wilson_interval_holds_the_observed_rate_inside_0_1(kn: tuple[int, int]) -> None:
    """``wilson_interval``: "it stays inside [0, 1] and is not empty at 0 or n successes"."""
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert lo < hi
    assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)


def test_the_wilson_interval_of_no_trials_is_nan() -> None:
    """"NaN for n = 0"."""
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


# ---- prices ---------------------------------------------------------------------------------------------

rate = st.floats(min_value=0, max_value=1000, allow_nan=False) | st.just(0.0)
prices = st.builds(Price, rate, rate, st.just("test"), rate, rate)
tokens = st.none() | st.integers(0, 10**9)
seconds = st.none() | st.floats(min_value=0, max_value=10**5, allow_nan=False)
clips = st.none() | st.integers(0, 100)


@settings(max_examples=400)
@given(prices, tokens, tokens, seconds, clips, st.integers(0, 10**6), st.floats(0, 1000, allow_nan=False))
def test_a_cost_is_unknown_or_non_negative_and_grows_with_usage(
        price: Price, inp: int | None, out: int | None, secs: float | None, n_clips: int | None, more: int,
        more_s: float) -> None:
    """``Price.cost``: "None if a billed unit's amount is unknown (a partial figure would mislead)"; otherwise
    a non-negative figure that does not shrink when any usage grows. A free model costs 0 whatever its usage."""
    cost = price.cost(inp, out, video_seconds=secs, clips=n_clips)
    billed_unknown = ((price.input_per_mtok or price.output_per_mtok) and (inp is None or out is None)) or (
        price.per_second and secs is None) or (price.per_clip and n_clips is None)
    if price.free:
        assert cost == 0.0
        return
    assert (cost is None) == bool(billed_unknown)
    if cost is None:
        return
    assert cost >= 0.0
    grown = [price.cost(None if inp is None else inp + more, out, video_seconds=secs, clips=n_clips),
             price.cost(inp, None if out is None else out + more, video_seconds=secs, clips=n_clips),
             price.cost(inp, out, video_seconds=None if secs is None else secs + more_s, clips=n_clips),
             price.cost(inp, out, video_seconds=secs, clips=None if n_clips is None else n_clips + 1)]
    assert all(g is not None and g >= cost for g in grown)


@settings(max_examples=300)
@given(st.text(max_size=40), st.none() | st.text(max_size=8))
@example(model_id="anthropic:claude-sonnet-4-5-20250929", resolution=None)
def test_every_model_id_has_a_price_or_none(model_id: str, resolution: str | None) -> None:
    """``price_for``: "The price of ``provider:model``, or None when unknown", for any id a user types."""
    price = price_for(model_id, resolution=resolution)
    assert price is None or (price.cost(0, 0, video_seconds=0.0, clips=0) == 0.0 and price.source)


# ---- keys never written ---------------------------------------------------------------------------------

KEY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
api_keys = st.text(st.sampled_from(KEY_CHARS), min_size=8, max_size=48).map(lambda k: "sk-" + k)


def _around(keys: list[str], pieces: list[str], data: st.DataObject) -> str:
    """``pieces`` with one of ``keys`` after each: a key in any surrounding text, repeated, touching others."""
    return "".join(p + data.draw(st.sampled_from(keys)) for p in pieces)


@settings(max_examples=300)
@given(st.lists(api_keys, min_size=1, max_size=4), st.lists(st.text(max_size=12), min_size=1, max_size=5),
       st.data())
def test_redaction_leaves_no_key_in_any_text(keys: list[str], pieces: list[str], data: st.DataObject) -> None:
    """``redact_secrets``: "every one of ``secrets`` replaced by REDACTED, longest first"."""
    text = _around(keys, pieces, data)
    out = redact_secrets(text, keys)
    assert not any(k in out for k in keys)
    assert REDACTED in out


@pytest.fixture
def run_log(tmp_path: Path) -> RunLog:
    return RunLog(tmp_path / "props.sqlite")


@settings(max_examples=40)
@given(api_keys, api_keys, st.lists(storable, min_size=1, max_size=4), st.data())
def test_the_run_log_never_stores_a_key(run_log: RunLog, monkeypatch: pytest.MonkeyPatch, explicit: str,
                                        from_env: str, pieces: list[str], data: st.DataObject) -> None:
    """The run log redacts "every text written (answers, errors, the prompt, options, the summary)" of a run's
    explicit keys and of key-like environment variables: neither is anywhere in the database's bytes."""
    monkeypatch.setenv("PROPERTY_TEST_API_KEY", from_env)
    keys = [explicit, from_env]
    run_id = run_log.start_run("fuse", _around(keys, pieces, data), {"system": _around(keys, pieces, data)},
                               secrets=[explicit])
    record = CallRecord(model="openai:gpt-4o", text=_around(keys, pieces, data), status="auth",
                        error=_around(keys, pieces, data), call_id=1)
    assert run_log.record_call(run_id, record)
    run_log.finish_run(run_id, "failed", 0.1, _around(keys, pieces, data))
    run_log.close()
    stored = b"".join(p.read_bytes() for p in run_log.path.parent.glob(run_log.path.name + "*"))
    assert not any(k.encode() in stored for k in keys)
    export = run_log.path.with_suffix(".jsonl")
    run_log.export(export, run_id)
    assert not any(k in export.read_text(encoding="utf-8") for k in keys)
