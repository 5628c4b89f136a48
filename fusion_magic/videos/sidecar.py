"""The JSON file beside each clip: what was asked, of which model, the job id, and what came of it.

Jobs are money. The sidecar is written the moment the provider accepts a job (status "submitted", with its
``JobRef``), before the first poll, so a timeout, an interrupt or a dead kernel never loses a paid job:
``%video resume`` and a re-run of the same cell find it here and re-attach instead of paying again (the prompt and
the run's ``--check`` are kept too, so a resume reports and checks the clip as its run would have). It is
updated as the job ends (ok, failed, filtered, cancelled, or still pending when we stopped waiting: then
``note`` says why, and ``error`` stays empty). Its ``status`` words are the file's own (``state_of`` and
``word_for`` translate them to and from ``core.state.State``), so every sidecar ever written still reads.

No key is ever written: a ``JobRef`` holds none, errors are redacted before they reach a record, and the
clip's provider URI (``clip_uri``, what ``--extend`` sends back to Veo) is kept without any key parameter.

    stem = clip_stem("A fox in snow!", "gemini:veo-3.1-generate-preview", key)   # "a-fox-in-snow-veo-3-1-...-3f2a9c1e"
    write(out_dir / f"{stem}.json", sidecar)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
import types
import typing
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..core.state import State
from ..providers.video.base import JobRef, VideoRequest

FORMAT_VERSION = 1
# The states a sidecar records that resume picks up: "submitted" and "pending" (the job may still be running
# at the provider) and "succeeded" (it finished there, but the download did not complete).
OPEN_STATES = frozenset({"submitted", "pending", "succeeded"})
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
# Query parameters that carry a key in some API (Gemini's ``?key=``); never written next to a clip.
_KEY_PARAMS = frozenset({"key", "api_key", "apikey", "access_token", "token"})


def slug(text: str, limit: int) -> str:
    """Lower-case ASCII letters, digits and single hyphens, at most ``limit`` characters ("" if none)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _SLUG_CHARS.sub("-", ascii_text.lower()).strip("-")[:limit].strip("-")


def request_key(model_id: str, request: VideoRequest, seat: int = 0) -> str:
    """A stable hash of everything that changes the clip: model, prompt, every parameter, and the first
    frame's bytes (not its path). The same cell run again has the same key. ``seat`` tells apart the same
    model named twice in one pool (two paid clips, two files)."""
    image = None
    if request.image is not None:
        image = hashlib.sha256(request.image.read_bytes()).hexdigest()
    # Added only when set, so every key written before these existed stays the same (a re-run still finds
    # its clip). An extension's key names the clip it extends: never the key of that clip itself.
    later: dict[str, Any] = {}
    if request.last_frame is not None:
        later["last_frame"] = hashlib.sha256(request.last_frame.read_bytes()).hexdigest()
    if request.extend_uri is not None:
        later["extends"] = request.extend_uri
    if request.references:
        later["references"] = [hashlib.sha256(r.read_bytes()).hexdigest() for r in request.references]
    canonical = {"v": FORMAT_VERSION, "model": model_id, "prompt": request.prompt, "seconds": request.seconds,
                 "aspect": request.aspect, "resolution": request.resolution, "negative": request.negative,
                 "image": image, "previous": request.previous_job, **({"seat": seat} if seat else {}), **later}
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def clip_stem(prompt: str, model_id: str, key: str) -> str:
    """A file name stem safe on every OS whatever the prompt: prompt words, model, and the request key
    (so two requests never share a file, and the same request always finds its own)."""
    model = slug(model_id.partition(":")[2].rsplit("/", 1)[-1], 30) or "model"
    return f"{slug(prompt, 40) or 'clip'}-{model}-{key[:10]}"


def public_uri(uri: str) -> str:
    """``uri`` without a key: no ``key=``-like query parameter and no user:password part. What a provider
    names as a clip's URI carries none (the key rides in a header); this makes sure none is ever written."""
    parts = urlsplit(uri)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in _KEY_PARAMS]
    if len(kept) == len(pairs) and "@" not in parts.netloc:
        return uri  # the usual case: nothing to take out, and the URI stays byte for byte what the provider said
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept, safe=":/"), parts.fragment))


@dataclass
class Sidecar:
    """What the JSON file holds. ``file`` is the clip's name in the same folder (set once downloaded);
    ``clip_uri`` the URI the provider's finished job named for it (for Veo, what ``--extend`` sends back: the
    operation's own URI, not the storage host a download is redirected to; None for inline clips)."""

    model: str
    prompt: str
    parameters: dict[str, Any]
    request_key: str
    status: str = "submitted"
    job: dict[str, Any] | None = None
    file: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    resolution: str | None = None
    cost_usd: float | None = None
    cost_source: str | None = None
    latency_s: float | None = None
    polls: int = 0
    error: str | None = None
    reason: str | None = None
    version: int = FORMAT_VERSION
    notes: list[str] = field(default_factory=list)
    clip_uri: str | None = None
    # Why the job is pending (we stopped waiting; it goes on at the provider). Older sidecars kept this in
    # ``error``: ``pending_note`` reads both.
    note: str | None = None
    # The run's ``--check`` (a model id, or "local:frames"): a resume checks the clip the same way. A model id
    # only, never a key or an endpoint (those come from the settings of the run that resumes).
    check: str | None = None

    @property
    def pending_note(self) -> str | None:
        """Why an open job was left pending, from this sidecar or one written before ``note`` existed."""
        return (self.note or self.error) if self.status in OPEN_STATES else None

    @property
    def job_ref(self) -> JobRef | None:
        """The job, or None when there is none or its record is damaged (a hand edit, another writer)."""
        if not self.job:
            return None
        try:
            return JobRef.from_dict(self.job)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    @property
    def open(self) -> bool:
        """The job may still be running at the provider: resume polls it instead of submitting again."""
        return self.status in OPEN_STATES and self.job is not None

    @classmethod
    def for_request(cls, model_id: str, request: VideoRequest, key: str, *,
                    billed_seconds: int | None = None, check: str | None = None) -> Sidecar:
        """A fresh receipt. ``billed_seconds``: what the clip is billed for when that is not its measured
        length (a Veo extension bills the seconds it adds, not the whole clip it returns); ``check``: the
        run's ``--check`` model, which a resume runs too."""
        parameters: dict[str, Any] = {
            "seconds": request.seconds, "aspect": request.aspect, "resolution": request.resolution,
            "negative": request.negative, "image": request.image.name if request.image else None,
            "edit_of": request.previous_job}
        if request.last_frame is not None:
            parameters["last_frame"] = request.last_frame.name
        if request.extend_uri is not None:
            parameters["extends"] = public_uri(request.extend_uri)
        if request.references:
            parameters["references"] = [r.name for r in request.references]
        if billed_seconds is not None:
            parameters["billed_seconds"] = billed_seconds
        return cls(model=model_id, prompt=request.prompt, parameters=parameters, request_key=key, check=check)


# The receipt's word for each settled state of its clip. A running clip keeps whatever open word its receipt
# has ("submitted", or "pending" while a resume follows it): both say the job may still be fetched.
_SETTLED_WORDS = {State.DONE: "ok", State.FAILED: "failed", State.FILTERED: "filtered",
                  State.CANCELLED: "cancelled", State.PENDING: "pending"}


def state_of(side: Sidecar) -> State:
    """Where a receipt's job stands, seen by a run that is not following it: an open job ("submitted",
    "pending", "succeeded" but not downloaded) is pending at the provider; an unknown word is a failure."""
    if side.status in OPEN_STATES:
        return State.PENDING
    return next((state for state, word in _SETTLED_WORDS.items() if word == side.status), State.FAILED)


def word_for(state: State, current: str) -> str:
    """The status a receipt whose status is ``current`` gets when its clip moves to ``state``.

    "succeeded" (the provider finished, the file is not on disk yet) is kept until the clip is saved or ends
    otherwise, so a resume downloads it without polling; a clip being downloaded writes it.
    """
    if state is State.DOWNLOADING or (state is State.PENDING and current == "succeeded"):
        return "succeeded"
    if state in _SETTLED_WORDS:
        return _SETTLED_WORDS[state]
    return current if current in OPEN_STATES else "submitted"


def _json_types(annotation: Any) -> tuple[type, ...]:
    """The JSON value types a field annotation allows: ``float | None`` -> (float, int, NoneType)."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    allowed: list[type] = []
    for option in options:
        base = typing.get_origin(option) or option
        allowed += [base, int] if base is float else [base]  # JSON writes 6.0 as 6
    return tuple(allowed)


# Each field's allowed types, read from the dataclass itself so a new field is checked too.
_TYPES = {name: _json_types(hint) for name, hint in typing.get_type_hints(Sidecar).items()}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write(path: Path, sidecar: Sidecar) -> None:
    """Write atomically (a temporary file renamed over the old one): a crash mid-write never leaves half
    a sidecar, and the job id in it is never lost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(asdict(sidecar), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read(path: Path) -> Sidecar | None:
    """The sidecar at ``path``; None when it is missing, unreadable or not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, Mapping) or data.get("version") != FORMAT_VERSION:
        return None
    fields = {k: v for k, v in data.items() if k in _TYPES}
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, _TYPES[name]):
            return None  # a hand edit or another program: not ours to use
    notes, file = fields.get("notes", []), fields.get("file")
    if not all(isinstance(n, str) for n in notes):
        return None
    if file is not None and (Path(file).name != file or file in (".", "..")):
        return None  # the clip's name in this folder, never a path elsewhere
    try:
        return Sidecar(**fields)
    except TypeError:  # a required field is missing
        return None


def sidecars(out_dir: Path) -> Iterator[tuple[Path, Sidecar]]:
    """Every readable sidecar in ``out_dir``, oldest first."""
    if not out_dir.is_dir():
        return
    paths = sorted(out_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for path in paths:
        sidecar = read(path)
        if sidecar is not None:
            yield path, sidecar


__all__ = ["OPEN_STATES", "Sidecar", "clip_stem", "now_iso", "public_uri", "read", "request_key", "sidecars", "slug",
           "state_of", "word_for", "write"]
