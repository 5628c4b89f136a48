"""docs/architecture.md, "How to add …", followed: the recipes stay true.

Each recipe kept as prose is applied, step by step, to a scratch copy of the package (``fusion_magic/``,
``tests/``, ``pyproject.toml`` and the docs the tests read), and the result is checked in a child interpreter
whose ``PYTHONPATH`` is the copy, against the loopback emulator: the new flag parses, the new provider answers, the
new mode judges. Then each step is left out once, in a copy of its own, and the same check must fail, at the stage
that step serves: so a recipe lists every step the code needs (and a step whose omission nothing notices would
show here). The steps of each recipe below are the recipe's own list; the test's data and the doc change together.

The job-kind recipe is a list generated from the code (what each existing job kind has); ``python
tests/test_docs_recipes.py --write`` rewrites it in the doc, and ``test_the_job_kind_list_is_generated`` fails
while the two differ.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from IPython.core.interactiveshell import InteractiveShell

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
COPIED = ("fusion_magic", "tests", "pyproject.toml", "README.md", "docs")  # the package, its tests and docs
WORKERS = 3  # a recipe's variants run side by side: each child spends most of its time importing


# ---- following a recipe ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One edit of a scratch copy: ``old`` (there exactly once, or the test fails: the recipe names a place that
    moved) replaced by ``new`` in ``path``; with no ``old``, ``path`` written as a new file."""

    path: str
    new: str
    old: str | None = None

    def apply(self, root: Path) -> None:
        target = root / self.path
        if self.old is None:
            assert not target.exists(), f"{self.path} exists already"
            target.write_text(self.new)
            return
        text = target.read_text()
        assert text.count(self.old) == 1, f"{self.old!r} is not in {self.path} exactly once"
        target.write_text(text.replace(self.old, self.new))


def after(path: str, anchor: str, text: str) -> Edit:
    return Edit(path, anchor + text, anchor)


def before(path: str, anchor: str, text: str) -> Edit:
    return Edit(path, text + anchor, anchor)


@dataclass(frozen=True)
class Step:
    """One step of a recipe, in the recipe's words, as the edits that make it; ``named`` is what the recipe's text
    names for it (``test_the_recipes_name_their_steps``: a step dropped from the doc fails there)."""

    what: str
    edits: tuple[Edit, ...]
    named: str

    def apply(self, root: Path) -> None:
        for edit in self.edits:
            edit.apply(root)


def step(what: str, *edits: Edit, named: str) -> Step:
    return Step(what, edits, named)


def scratch(tmp_path: Path, name: str) -> Path:
    """A copy of the package and its tests, to edit."""
    copy = tmp_path / name
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for item in COPIED:
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, copy / item, ignore=ignore)
        else:
            shutil.copy2(ROOT / item, copy / item)
    return copy


def follow(tmp_path: Path, steps: Sequence[Step], leave_out: Step | None = None) -> Path:
    """A scratch copy with every step of a recipe applied, but ``leave_out``."""
    copy = scratch(tmp_path, "all-steps" if leave_out is None else f"without-{steps.index(leave_out)}")
    for step in steps:
        if step is not leave_out:
            step.apply(copy)
    return copy


def install_metadata(copy: Path) -> None:
    """What ``pip install -e .`` (``make test`` after a change of pyproject.toml) writes: the distribution's
    metadata with its entry points, from the copy's pyproject.toml, first on the copy's path."""
    project = tomllib.loads((copy / "pyproject.toml").read_text())["project"]
    info = copy / f"{project['name']}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in rows.items()) + "\n"
                     for group, rows in project.get("entry-points", {}).items())
    (info / "entry_points.txt").write_text(groups)


def child_env(copy: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The test's environment (hermetic: conftest's), ``extra``, and the copy first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return {**env, **extra, "PYTHONPATH": str(copy)}


# Every child starts here: fusion_magic must be the copy's (an editable install must not win over the path).
PRELUDE = '''
import pathlib, sys
import fusion_magic
assert pathlib.Path(fusion_magic.__file__).resolve().is_relative_to(pathlib.Path.cwd().resolve()), fusion_magic.__file__

def stage(name):
    print("STAGE", name, flush=True)
'''


@dataclass(frozen=True)
class Outcome:
    """What a check of one copy showed: the stages its child reached, and whether it (and its tests) passed."""

    stages: tuple[str, ...]
    passed: bool
    output: str

    @property
    def stopped_at(self) -> str:
        return self.stages[-1] if self.stages else "(start)"


def check(copy: Path, script: str, env: Mapping[str, str], tests: Sequence[str] = ()) -> Outcome:
    """Run ``script`` (stages marked with ``stage(name)``, ``stage("done")`` last) in a child on ``copy``; where it
    gets through, run ``tests`` (pytest arguments) in the copy too, as the stage ``tests``."""
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script)], cwd=copy,
                          env=child_env(copy, env), capture_output=True, text=True, timeout=240, check=False)
    stages = tuple(line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("STAGE "))
    output = done.stdout + done.stderr
    if done.returncode != 0 or stages[-1:] != ("done",):
        return Outcome(stages, False, output)
    if tests:
        ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p",
                              "no:cacheprovider", *tests], cwd=copy, env=child_env(copy, env),
                             capture_output=True, text=True, timeout=240, check=False)
        if ran.returncode != 0:
            return Outcome((*stages, "tests"), False, output + ran.stdout + ran.stderr)
    return Outcome(stages, True, output)


def each_left_out(tmp_path: Path, steps: Sequence[Step], expected: Mapping[str, str],
                  run: Callable[[Path], Outcome]) -> None:
    """The recipe followed in full passes ``run``; each step left out fails it, at the stage ``expected`` names for
    that step (by its ``what``): the omission is noticed, and for the reason the step exists."""
    assert set(expected) == {s.what for s in steps}, "every step of the recipe is left out once"
    copies = [follow(tmp_path, steps)] + [follow(tmp_path, steps, leave_out=s) for s in steps]
    with ThreadPoolExecutor(WORKERS) as pool:
        full, *without = pool.map(run, copies)
    assert full.passed, full.output[-4000:]
    for step, outcome in zip(steps, without, strict=True):
        assert not outcome.passed, f"leaving out {step.what!r} changed nothing the check sees"
        assert outcome.stopped_at == expected[step.what], (step.what, outcome.stages, outcome.output[-3000:])


def emulator_vars(emulator: Any) -> dict[str, str]:
    return {**emulator.env(), **emulator.test_keys()}


# ---- An option of %%fuse ---------------------------------------------------------------------------------------

OPTIONS_PY = "fusion_magic/fusion/options.py"
OPTION_STEPS = (
    step("one field in FuseOptions, declared with option(..., config=...)",
         before(OPTIONS_PY, '\n    def __post_init__(self) -> None:\n        object.__setattr__(self, "pool", tuple',
                '    nudge: int = option(\n'
                '        0, "--nudge", metavar="N", help="how far to nudge each answer (the recipe\'s option)",\n'
                '        check=at_least(0, "--nudge must be at least 0"), config="How far to nudge each answer.")\n'),
         named='`FuseOptions`'),
    step("its keyword in FuseKeywords",
         after(OPTIONS_PY, "    pool: Sequence[str] | None\n", "    nudge: int | None\n"), named='`FuseKeywords`'),
    step("its session value in Settings",
         after("fusion_magic/calls/settings.py", "    pool: tuple[str, ...] = ()\n", "    nudge: int = 0\n"),
         named='`Settings`'),
)

OPTION_CHECK = '''
from IPython.core.interactiveshell import InteractiveShell
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.ipython.args import FUSE_HELP, parse_fuse_line

stage("flag")
assert parse_fuse_line("--nudge 3").given == {"nudge": 3}
stage("help")
assert "  --nudge N               how far to nudge each answer (the recipe's option)" in FUSE_HELP.splitlines()
stage("config")
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "fusion_magic")
magics = next(c for c in shell.configurables if type(c).__name__ == "FusionMagics")
magics.view = "text"
shell.run_line_magic("config", "FusionMagics.nudge = 5")
assert FuseOptions.defaults(magics.settings()).nudge == 5
stage("keyword")
result = fusion_magic.fuse("Why?", pool=["openai:gpt-a", "openai:gpt-b"], judge="vote", nudge=2)
assert result.n_ok == 2, result
stage("magic")
shell.run_cell_magic("fuse", "-p openai:gpt-a,openai:gpt-b -j vote --nudge 4 -o r", "Why?")
assert shell.user_ns["r"].n_ok == 2
stage("done")
'''


def test_an_option_of_fuse(tmp_path: Path, emulator: Any) -> None:
    """The flag parses and is in the help, ``%config`` sets its session default, ``fuse()`` takes the keyword and
    ``%%fuse`` runs with the flag; tests/test_declared.py and tests/test_help.py pass in the copy. Without the field
    nothing knows the flag; without the keyword only the declaration test sees it (a type checker's need); without
    the Settings value the session cannot be frozen."""
    env = emulator_vars(emulator)
    each_left_out(tmp_path, OPTION_STEPS, {
        OPTION_STEPS[0].what: "flag",
        OPTION_STEPS[1].what: "tests",
        OPTION_STEPS[2].what: "config",
    }, lambda copy: check(copy, OPTION_CHECK, env, ["tests/test_declared.py", "tests/test_help.py"]))


VIDEO_OPTIONS_PY = "fusion_magic/videos/options.py"
EVAL_OPTIONS_PY = "fusion_magic/evaluation/options.py"
TILT = ('    tilt: int = option(0, "--tilt", metavar="DEG", group="Generate",\n'
        '                       help="camera tilt (the recipe\'s option)", config="Camera tilt in degrees.")\n')
OTHER_OPTION_STEPS = (
    # %%fuse's, for one run only: no config=, no Settings value.
    step("a field of FuseOptions without config=", Edit(OPTIONS_PY, OPTION_STEPS[0].edits[0].new.replace(
        ', config="How far to nudge each answer."', ""), OPTION_STEPS[0].edits[0].old), named='config="..."'),
    OPTION_STEPS[1],
    step("a field of VideoOptions, with group= (its section of the help)",
         before(VIDEO_OPTIONS_PY, "    edit_of: tuple[str, str] | None = None", TILT), named='`group=`'),
    step("its keyword in VideoKeywords",
         after(VIDEO_OPTIONS_PY, "    models: Sequence[str]\n", "    tilt: int | None\n"), named='`VideoKeywords`'),
    step("a field of EvalOptions",
         before(EVAL_OPTIONS_PY, '\n    def __post_init__(self) -> None:\n        for name in ("batch"',
                '    rigor: int = option(1, "--rigor", metavar="N",\n'
                '                        help="how hard to check (the recipe\'s option)")\n'), named='`EvalOptions`'),
    step("its keyword in EvalKeywords",
         after(EVAL_OPTIONS_PY, "    pool: Sequence[str] | None\n", "    rigor: int | None\n"), named='`EvalKeywords`'),
)

OTHER_OPTION_CHECK = '''
from IPython.core.interactiveshell import InteractiveShell
from fusion_magic.evaluation.options import EvalOptions
from fusion_magic.ipython.args import FUSE_HELP, VIDEO_HELP, command_help, parse_fuse_line, parse_line_magic
from fusion_magic.ipython.args import parse_video_line
from fusion_magic.ipython.declared import config_values
from fusion_magic.videos.options import VideoOptions

stage("fuse")
assert parse_fuse_line("--nudge 3").given == {"nudge": 3}
assert fusion_magic.fuse("Why?", pool=["openai:gpt-a", "openai:gpt-b"], judge="vote", nudge=2).n_ok == 2
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "fusion_magic")
magics = next(c for c in shell.configurables if type(c).__name__ == "FusionMagics")
assert "nudge" not in magics.class_traits(config=True) and magics.settings()
stage("video")
assert parse_video_line("--tilt 5").given == {"tilt": 5}
generate = VIDEO_HELP.split("Generate:\\n", 1)[1].split("Understand:", 1)[0]
assert "  --tilt DEG              camera tilt (the recipe's option)" in generate.splitlines()
shell.run_line_magic("config", "VideoMagics.tilt = 7")
video_magics = next(c for c in shell.configurables if type(c).__name__ == "VideoMagics")
assert config_values(video_magics, VideoOptions)["tilt"] == 7 and VideoOptions.from_keywords({"tilt": 7}).tilt == 7
stage("eval")
assert parse_line_magic("eval bundled --rigor 2")[1].given["rigor"] == 2
assert "  --rigor N               how hard to check (the recipe's option)" in command_help("eval").splitlines()
assert EvalOptions().with_(rigor=2).rigor == 2
stage("done")
'''


def test_the_other_option_kinds_are_declared_the_same_way(tmp_path: Path, emulator: Any) -> None:
    """An option of one run (no ``config=``) needs no Settings value; a ``%%video`` option is a field of
    VideoOptions with its keyword in VideoKeywords (configurable: a VideoMagics trait, no Settings value) and its
    help section (``group=``: left out, the help cannot be built); a ``%fuse eval`` option is a field of EvalOptions
    with its keyword in EvalKeywords. tests/test_declared.py and tests/test_help.py pass in the copy."""
    no_group = step("a field of VideoOptions without group=",
                    before(VIDEO_OPTIONS_PY, "    edit_of: tuple[str, str] | None = None",
                           TILT.replace(' group="Generate",', "")), named="`group=`")
    assert no_group.edits[0].new != OTHER_OPTION_STEPS[2].edits[0].new
    (tmp_path / "grouped").mkdir()
    (tmp_path / "ungrouped").mkdir()
    ungrouped_steps = [no_group if s is OTHER_OPTION_STEPS[2] else s for s in OTHER_OPTION_STEPS]
    copies = [follow(tmp_path / "grouped", OTHER_OPTION_STEPS), follow(tmp_path / "ungrouped", ungrouped_steps)]
    env = emulator_vars(emulator)
    tests = ["tests/test_declared.py", "tests/test_help.py"]
    with ThreadPoolExecutor(WORKERS) as pool:
        full, ungrouped = pool.map(lambda copy: check(copy, OTHER_OPTION_CHECK, env, tests), copies)
    assert full.passed, full.output[-4000:]
    assert not ungrouped.passed and ungrouped.stopped_at == "(start)", ungrouped.output[-3000:]
    assert "options in no help section: ['tilt']" in ungrouped.output


# ---- A provider that speaks an existing protocol ---------------------------------------------------------------

EXISTING_STEPS = (
    step("its row in registry.py's BUILTIN",
         before("fusion_magic/providers/registry.py", '        ProviderSpec("local", "local", "", None, ()),\n',
                '        ProviderSpec("acme", "openai", "https://api.acme.invalid/v1", "ACME_BASE_URL",\n'
                '                     ("ACME_API_KEY",)),\n'
                '        ProviderSpec("tabby", "openai", "http://127.0.0.1:8081/v1", "TABBY_BASE_URL",\n'
                '                     ("TABBY_API_KEY",), flavor="llamacpp", placeholder_key="tabby"),\n'),
         named="`registry.py`'s `BUILTIN`"),
    step("a server on the user's machine: its name in FREE_PROVIDERS",
         after("fusion_magic/core/pricing.py", 'FREE_PROVIDERS = frozenset({"local", ', '"tabby", '),
         named='`FREE_PROVIDERS`'),
    step("its variables in tests/conftest.py's _SCRUB",
         after("tests/conftest.py", '    "RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL",\n',
               '    "ACME_API_KEY", "ACME_BASE_URL", "TABBY_API_KEY", "TABBY_BASE_URL",\n'), named='`_SCRUB`'),
)

EXISTING_CHECK = '''
sys.path.insert(0, "tests")
from test_docs_recipes import unscrubbed

stage("hosted")
answer = fusion_magic.complete("acme:acme-large", "Hello?")
assert answer.ok and answer.text == "Acme says hello.", answer.error
stage("local")
answer = fusion_magic.complete("tabby:tabby-small", "Hello?")  # no TABBY_API_KEY: a local server needs none
assert answer.ok and answer.text == "Tabby says hello." and answer.cost_usd == 0, (answer.error, answer.cost_usd)
stage("scrubbed")
assert unscrubbed() == [], unscrubbed()
stage("done")
'''


def unscrubbed() -> list[str]:
    """The key and base-URL variables of built-in providers that the tests' hermetic environment does not remove
    (tests/conftest.py's ``_SCRUB``): a test would see the developer's own key or server."""
    from conftest import _SCRUB

    from fusion_magic.providers.registry import BUILTIN

    wanted = {v for spec in BUILTIN.values() for v in (*spec.key_envs, spec.base_url_env) if v}
    return sorted(wanted - set(_SCRUB))


def test_every_builtin_providers_variables_are_scrubbed() -> None:
    assert unscrubbed() == []


def test_a_provider_of_an_existing_protocol_is_a_builtin_row(tmp_path: Path, emulator: Any) -> None:
    """A BUILTIN row (and, for a server on the user's machine, its name in FREE_PROVIDERS: no key, no cost) reaches
    the emulator's OpenAI route under its own name and variables."""
    emulator.script("acme-large", _script("Acme says hello."))
    emulator.script("tabby-small", _script("Tabby says hello."))
    openai = emulator.env()["OPENAI_BASE_URL"]
    env = {"ACME_BASE_URL": openai, "ACME_API_KEY": "sk-acme-test", "TABBY_BASE_URL": openai}
    each_left_out(tmp_path, EXISTING_STEPS, {
        EXISTING_STEPS[0].what: "hosted",
        EXISTING_STEPS[1].what: "local",
        EXISTING_STEPS[2].what: "scrubbed",
    }, lambda copy: check(copy, EXISTING_CHECK, env))
    sent = [r for r in emulator.requests if r.model in ("acme-large", "tabby-small")]
    assert sent and {r.path for r in sent} == {"/openai/v1/chat/completions"}


def _script(reply: str) -> Any:
    from fusion_magic.testing import ModelScript

    return ModelScript(reply=reply)


def test_a_provider_of_an_existing_protocol_needs_no_code(shell: InteractiveShell, emulator: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``%config FusionMagics.endpoints``: an OpenAI-compatible server by name, in this very package."""
    emulator.script("together-a", _script("Together, A."))
    emulator.script("together-b", _script("Together, A."))
    monkeypatch.setenv("TOGETHER_API_KEY", "sk-together-test")
    base = emulator.env()["OPENAI_BASE_URL"]
    shell.run_line_magic("config", f"FusionMagics.endpoints = {{'together': {{'base_url': '{base}', "
                                   "'key_env': 'TOGETHER_API_KEY'}}")
    shell.run_cell_magic("fuse", "-p together:together-a,together:together-b -j vote -o r", "Who?")
    assert shell.user_ns["r"].n_ok == 2 and shell.user_ns["r"].answer == "Together, A."
    assert {r.path for r in emulator.requests} == {"/openai/v1/chat/completions"}


def test_a_provider_of_an_existing_protocol_is_a_plugin_class_of_a_few_attributes(emulator: Any,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    """docs/plugins.md's class: its protocol name, base URL, base-URL variable and key variables, nothing else
    (tests/test_plugins.py installs one through the entry-point group)."""
    import fusion_magic
    from fusion_magic.providers.chat.openai_compat import OpenAICompatProvider
    from fusion_magic.providers.registry import PROTOCOLS

    class Vendor(OpenAICompatProvider):
        protocol: ClassVar[str] = "recipevendor"
        default_base_url: ClassVar[str] = "https://api.recipevendor.invalid/v1"
        base_url_env: ClassVar[str] = "RECIPEVENDOR_BASE_URL"
        key_envs: ClassVar[tuple[str, ...]] = ("RECIPEVENDOR_API_KEY",)

    emulator.script("vendor-1", _script("From the vendor."))
    monkeypatch.setenv("RECIPEVENDOR_BASE_URL", emulator.env()["OPENAI_BASE_URL"])
    monkeypatch.setenv("RECIPEVENDOR_API_KEY", "sk-vendor-test")
    PROTOCOLS.register(Vendor)
    try:
        answer = fusion_magic.complete("recipevendor:vendor-1", "Hi")
    finally:
        PROTOCOLS.unregister("recipevendor")
    assert answer.ok and answer.text == "From the vendor.", answer.error


# ---- A provider speaking a new wire protocol -------------------------------------------------------------------

PLAIN_PROVIDER = '''"""Plain chat, the recipe test's wire protocol: ``POST {base}/v1/generate`` with the messages,
answered as SSE events of ``{"text": ...}`` and one closing ``{"done": true, "reason": ..., "input_tokens": N,
"output_tokens": M}``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from ..base import ChatRequest, ProviderEvent, TextDelta, Usage
from ._sse import SSEProvider, StreamParser, json_int, load_event


class PlainParser(StreamParser):
    """One Plain event into ours."""

    missing_end = "no done event"

    def feed(self, data: str) -> Iterator[ProviderEvent]:
        event = load_event(data, self.ctx)
        if isinstance(event.get("text"), str) and event["text"]:
            yield TextDelta(event["text"])
        if event.get("done") is True:
            self.reason = event["reason"] if isinstance(event.get("reason"), str) else None
            yield Usage(input_tokens=json_int(event.get("input_tokens")),
                        output_tokens=json_int(event.get("output_tokens")))
            self.done = True


class PlainProvider(SSEProvider):
    """``plain:MODEL``."""

    protocol: ClassVar[str] = "plain"
    supports_json_schema: ClassVar[bool] = False
    parser_class = PlainParser
    key_header: ClassVar[str] = "authorization"
    key_prefix: ClassVar[str] = "Bearer "

    def url(self, request: ChatRequest) -> str:
        return f"{self.endpoint.base_url}/v1/generate"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        return {"model": request.model, "stream": True,
                "messages": [{"role": m.role, "content": m.content} for m in request.messages]}
'''

PLAIN_FAMILY = '''"""The emulator Plain chat API (the recipe test's protocol): ``POST /plain/v1/generate``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._wire import dumps, sse
from ..chat import ChatFamily, Rejection, Turn
from ..registry import Route
from ..script import Fault


class Plain(ChatFamily):
    """Bearer auth; SSE events of ``{"text"}``, then ``{"done"}`` with the usage."""

    name = "plain"
    env: ClassVar[Mapping[str, str]] = {"PLAIN_BASE_URL": "/plain"}
    test_keys: ClassVar[Mapping[str, str]] = {"PLAIN_API_KEY": "plain-test-key"}
    stop_reason = "stop"
    length_reason = "length"
    refusal_reason: ClassVar[str | None] = "refused"

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/plain/v1/generate", self.chat)]

    def validate(self, body: Mapping[str, Any]) -> str | Rejection | None:
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
            return "model and messages are required"
        return None

    def response_id(self, seq: int) -> str:
        return f"plain-{seq}"

    def text(self, turn: Turn, index: int, piece: str, final_reason: str | None) -> list[bytes]:
        return [sse(dumps({"text": piece}), nl=turn.nl)]

    def end(self, turn: Turn, reason: str, reason_sent: bool) -> list[bytes]:
        done = {"done": True, "reason": reason, "input_tokens": turn.input_tokens,
                "output_tokens": turn.output_tokens}
        return [sse(dumps(done), nl=turn.nl)]

    def stream_error(self, turn: Turn, status: int, message: str) -> list[bytes]:
        return [sse(dumps({"error": {"status": status, "message": message}}), nl=turn.nl)]

    def malformed(self, turn: Turn) -> bytes:
        return f"data: {{not json{turn.nl}{turn.nl}".encode()

    def json_body(self, turn: Turn, text: str, reason: str) -> Any:
        return {"text": text, "reason": reason}

    def error_body(self, status: int, message: str | None = None, *, request_id: str = "",
                   fault: Fault | None = None) -> Any:
        return {"error": {"status": status, "message": message or f"error {status}"}}
'''

REGISTRY_PY = "fusion_magic/providers/registry.py"
FAMILIES_PY = "fusion_magic/testing/families/__init__.py"
PROTOCOL_STEPS = (
    step("providers/chat/<protocol>.py: the class, its capabilities, url, body and stream parser",
         Edit("fusion_magic/providers/chat/plain.py", PLAIN_PROVIDER), named='`providers/chat/<protocol>.py`'),
    step("its row in pyproject.toml's fusion_magic.providers entry points",
         after("pyproject.toml", 'runway = "fusion_magic.providers.video.runway:RunwayProvider"\n',
               'plain = "fusion_magic.providers.chat.plain:PlainProvider"\n'), named='`pyproject.toml`'),
    step("the same row in BUILTIN_PROTOCOLS",
         after(REGISTRY_PY, '    "runway": "fusion_magic.providers.video.runway:RunwayProvider",\n',
               '    "plain": "fusion_magic.providers.chat.plain:PlainProvider",\n'), named='`BUILTIN_PROTOCOLS`'),
    step("the provider names that speak it in BUILTIN",
         before(REGISTRY_PY, '        ProviderSpec("local", "local", "", None, ()),\n',
                '        ProviderSpec("plain", "plain", "https://api.plain.invalid", "PLAIN_BASE_URL",\n'
                '                     ("PLAIN_API_KEY",)),\n'), named='provider names that speak it in `BUILTIN`'),
    step("their variables in tests/conftest.py's _SCRUB",
         after("tests/conftest.py", '    "RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL",\n',
               '    "PLAIN_API_KEY", "PLAIN_BASE_URL",\n'), named="`tests/conftest.py`'s `_SCRUB`"),
    step("its family in the emulator: a module of testing/families/, imported and registered there",
         Edit("fusion_magic/testing/families/plain.py", PLAIN_FAMILY),
         after(FAMILIES_PY, "from .runway import Runway\n", "from .plain import Plain\n"),
         after(FAMILIES_PY, "    Runway(),\n", "    Plain(),\n"), named='`fusion_magic/testing/families/`'),
    step("its models' prices in core/pricing.py, where the provider reports no cost",
         after("fusion_magic/core/pricing.py", "_TABLE: dict[str, tuple[float, float]] = {\n",
               '    "plain-1": (1.00, 4.00),\n'), named="`core/pricing.py`'s table"),
)

PROTOCOL_CHECK = '''
import os
sys.path.insert(0, "tests")
from test_docs_recipes import unscrubbed
from fusion_magic.providers.registry import PROTOCOLS
from fusion_magic.testing import Emulator, ModelScript

stage("protocol")
assert "plain" in PROTOCOLS and PROTOCOLS.provider_class("plain").protocol == "plain", sorted(PROTOCOLS)
with Emulator() as emu:
    emu.script("plain-1", ModelScript(reply="Plainly, yes.", input_tokens=1000, output_tokens=500))
    emu.script("plain-2", ModelScript(reply="Plainly, yes."))
    os.environ.update({**emu.env(), **emu.test_keys()})
    stage("call")
    answer = fusion_magic.complete("plain:plain-1", "Is it?")
    assert answer.ok and answer.text == "Plainly, yes.", answer.error
    assert (answer.input_tokens, answer.output_tokens, answer.finish_reason) == (1000, 500, "stop")
    sent = [r for r in emu.requests if r.path == "/plain/v1/generate"]
    assert sent[0].body["messages"][-1] == {"role": "user", "content": "Is it?"}, sent[0].body
    result = fusion_magic.fuse("Is it?", pool=["plain:plain-1", "plain:plain-2"], judge="vote")
    assert result.n_ok == 2 and result.answer == "Plainly, yes."
    stage("price")
    assert answer.cost_usd == 1000 * 1.00e-6 + 500 * 4.00e-6, (answer.cost_usd, answer.cost_source)
stage("scrubbed")
assert unscrubbed() == [], unscrubbed()
stage("done")
'''


def test_a_provider_speaking_a_new_wire_protocol(tmp_path: Path) -> None:
    """A built-in chat protocol of its own, end to end: the class answers through its own route of the emulator
    (a fused run included), read from the package's metadata as pip installs it, priced by the table, its variables
    scrubbed in tests; tests/test_plugins.py holds pyproject.toml and BUILTIN_PROTOCOLS equal."""

    def run(copy: Path) -> Outcome:
        install_metadata(copy)
        return check(copy, PROTOCOL_CHECK, {}, ["tests/test_plugins.py", "-k", "pyproject_declares"])

    each_left_out(tmp_path, PROTOCOL_STEPS, {
        PROTOCOL_STEPS[0].what: "protocol",  # the rows name a module that is not there
        PROTOCOL_STEPS[1].what: "tests",
        PROTOCOL_STEPS[2].what: "protocol",  # the installed row alone is not trusted: the code's table wins
        PROTOCOL_STEPS[3].what: "call",  # "unknown provider 'plain'"
        PROTOCOL_STEPS[4].what: "scrubbed",
        PROTOCOL_STEPS[5].what: "call",  # no route: the emulator answers 404
        PROTOCOL_STEPS[6].what: "price",  # unknown cost: None, never 0
    }, run)


# ---- A judged mode ---------------------------------------------------------------------------------------------

RANK_MODULE = '''"""rank: the judge orders every answer from best to worst; the fused answer is its first, verbatim."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..core.record import Response
from .analysis import INSTRUCTIONS, verdict_schema
from .verdict import Verdict
from .verdicts import parse_json_verdict, read_label


def schema(labels: Sequence[str]) -> dict[str, Any]:
    return verdict_schema(labels, {"ranking": {"type": "array", "items": {"type": "string", "enum": list(labels)}}})


def instructions(labels: Sequence[str], *, debate: bool = False) -> str:
    return ("Rank the answers from best to worst. Reply with only a JSON object with three fields: "
            f'"reasoning" (briefly, why), "analysis" and "ranking" (every letter, best first: {", ".join(labels)}). '
            + INSTRUCTIONS)


def read_verdict(text: str, candidates: Mapping[str, Response], *, judge: str, mode: str) -> Verdict:
    data = parse_json_verdict(text) or {}
    ranking = data.get("ranking")
    top = read_label(ranking[0], candidates) if isinstance(ranking, list) and ranking else None
    if top is None:
        raise ValueError(f"no ranking of {', '.join(candidates)} in the verdict")
    chosen = candidates[top]
    return Verdict(model=judge, mode=mode, reasoning=str(data.get("reasoning", "")).strip(), answer=chosen.text,
                   choice=chosen.model, choice_label=f"Answer {top}")
'''

MODE_STEPS = (
    step("judge/<mode>.py with schema, instructions and read_verdict", Edit("fusion_magic/judge/rank.py", RANK_MODULE),
         named='`judge/<mode>.py`'),
    step("one row in judge/modes.py (and the module's import)",
         after("fusion_magic/judge/modes.py", "from . import best_of, merge", ", rank"),
         after("fusion_magic/judge/modes.py",
               'JUDGE_STYLES: dict[str, JudgeStyle] = {"best-of": best_of, "merge": merge, "debate": merge',
               ', "rank": rank'), named='`judge/modes.py`'),
    step("its name in MODES",
         after("fusion_magic/calls/settings.py", 'MODES = ("best-of", "merge", "debate"', ', "rank"'), named='`MODES`'),
    step("its name in ANSWER_MODES (it needs no pool to ask again)",
         after("fusion_magic/calls/settings.py", 'ANSWER_MODES = ("best-of", "merge"', ', "rank"'),
         named='`ANSWER_MODES`'),
)

MODE_CHECK = '''
from IPython.core.interactiveshell import InteractiveShell
from fusion_magic.ipython.args import parse_fuse_line
from fusion_magic.videos.options import VideoOptions

stage("parse")
assert parse_fuse_line("-m rank").given == {"mode": "rank"}
stage("video")
assert VideoOptions(mode="rank").mode == "rank"
stage("run")
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "fusion_magic")
next(c for c in shell.configurables if type(c).__name__ == "FusionMagics").view = "text"
shell.run_cell_magic("fuse", "-p openai:rank-long,openai:rank-short -j openai:rank-judge -m rank -o r", "Why?")
verdict = shell.user_ns["r"].verdict
assert verdict.mode == "rank" and not verdict.fallback, (verdict.mode, verdict.fallback, verdict.reasoning)
assert verdict.answer == "Short." and verdict.choice == "openai:rank-short", verdict
stage("done")
'''


def ranking_judge(body: Mapping[str, Any]) -> str:
    """A scripted judge for ``rank``: it ranks the shown answers shortest first, in the mode's own field (a request
    whose schema lacks it gets a 500, as a judge that cannot answer would)."""
    from fusion_magic.testing.judges import requested_fields, shown_answers
    from fusion_magic.testing.script import SCRIPTED

    answers = shown_answers(body)
    if "ranking" not in requested_fields(body) or not answers:
        raise ValueError("not a rank request")
    ranking = sorted(answers, key=lambda label: len(answers[label]))
    return json.dumps({"reasoning": f"{SCRIPTED} shortest first", "ranking": ranking})


def test_a_judged_mode(tmp_path: Path, emulator: Any) -> None:
    """``%%fuse -m rank`` against the emulator with a scripted judge that answers the mode's schema: the verdict
    is the judge's, in the new mode, not the vote's fallback; the help names the mode with no edit of its own
    (tests/test_help.py: the -m and %%video --mode lines spell out their choices)."""
    from fusion_magic.testing import ModelScript

    emulator.script("rank-long", ModelScript(reply="A much longer answer, with every detail."))
    emulator.script("rank-short", ModelScript(reply="Short."))
    emulator.script("rank-judge", ModelScript(reply=ranking_judge))

    each_left_out(tmp_path, MODE_STEPS, {
        MODE_STEPS[0].what: "run",  # judge/modes.py imports a module that is not there, when a judge first runs
        MODE_STEPS[1].what: "run",  # no judge style: the judge fails and the vote decides
        MODE_STEPS[2].what: "parse",
        MODE_STEPS[3].what: "video",
    }, lambda copy: check(copy, MODE_CHECK, emulator_vars(emulator), ["tests/test_help.py", "-k", "choice"]))


# ---- A job kind: what the existing ones have, generated ---------------------------------------------------------

BEGIN = "<!-- generated by tests/test_docs_recipes.py (python tests/test_docs_recipes.py --write) -->"
END = "<!-- end of the generated list -->"
WIDTH = 115
LOWER = ("judge", "view", "present", "calls", "providers", "core")  # the layers below the job kinds


def _package_modules(kind: str) -> list[str]:
    package = importlib.import_module(f"fusion_magic.{kind}")
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__))


def _defined(kind: str, base: type) -> list[str]:
    """The classes of package ``kind`` that subclass ``base``, in module then source order."""
    found = []
    for module in _package_modules(kind):
        mod = importlib.import_module(f"fusion_magic.{kind}.{module}")
        found += [f"{module}.{k}" for k, v in vars(mod).items()
                  if isinstance(v, type) and v.__module__ == mod.__name__ and issubclass(v, base) and v is not base]
    return found


def _module_file(name: str) -> bool:
    """Whether ``fusion_magic.a.b`` names a module or package of the source tree (not a class or function)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> Iterator[str]:
    """The fusion_magic modules and packages a file imports (relative imports resolved), at any depth in it."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for name in (module, *(f"{module}.{a.name}" for a in node.names)):
                if name.startswith("fusion_magic") and _module_file(name):
                    yield name
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("fusion_magic."))


def _used_below(kind: str) -> set[str]:
    """The modules of the layers below the job kinds that package ``kind`` imports."""
    return {name.removeprefix("fusion_magic.") for path in (ROOT / "fusion_magic" / kind).glob("*.py")
            for name in _imports(path) if name.split(".")[1] in LOWER and name.count(".") >= 2}


def job_kind_list() -> str:
    """What each job kind has, read from the code: its modules, its declared options, the plans api.py makes and
    ``start`` runs, its result and events, the magic whose module imports it, its layer; then what all of them
    import from the layers below."""
    import fusion_magic.api as api
    from fusion_magic.calls.job import RunResult
    from fusion_magic.core.events import EngineEvent
    from fusion_magic.core.option import declared
    from fusion_magic.ipython.extension import MAGICS

    started = set(re.findall(r"isinstance\(plan, (\w+)\)", inspect.getsource(api.start)))
    plans: dict[str, list[str]] = {}
    for name, function in sorted(vars(api).items()):
        if name.startswith("plan_") and getattr(function, "__module__", "") == api.__name__:
            plan = typing.get_type_hints(function)["return"]
            kind = plan.__module__.split(".")[1]
            if kind != "api":
                assert plan.__name__ in started, f"start() does not run a {plan.__name__}"
                plans.setdefault(kind, []).append(f"`{name}` (`{plan.__name__}`)")
    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layered = {layer for c in layers if c["type"] == "layers" for layer in c["layers"]}
    imported = {cls: set(_imports(Path(inspect.getfile(cls)))) for cls in MAGICS}
    lines = []
    for kind in sorted(plans):
        options = importlib.import_module(f"fusion_magic.{kind}.options")
        declaring = [k for k, v in vars(options).items()
                     if isinstance(v, type) and v.__module__ == options.__name__ and hasattr(v, "__dataclass_fields__")
                     and declared(v)]
        names = {cls: sorted({f"`%%{n}`" for n in cls.magics["cell"]} | {f"`%{n}`" for n in cls.magics["line"]})
                 for cls in MAGICS}
        magic = [f"{', '.join(names[cls])} (`ipython/{Path(inspect.getfile(cls)).name}`: `{cls.__name__}`"
                 f"{', waiting with `ipython/wait.py`' if 'fusion_magic.ipython.wait' in imported[cls] else ''})"
                 for cls in MAGICS if any(m.split(".")[1] == kind for m in imported[cls])]
        parts = [f"modules {', '.join(_package_modules(kind))}",
                 f"options {', '.join(f'`{o}`' for o in declaring)} (declared with `core.option.option`)",
                 f"plans {', '.join(plans[kind])}",
                 f"result {', '.join(f'`{r}`' for r in _defined(kind, RunResult)) or 'none'} (a `calls.job.RunResult`)",
                 f"events {', '.join(f'`{e}`' for e in _defined(kind, EngineEvent)) or 'none of its own'}",
                 f"magic {', '.join(magic) or 'none'}, a row of `MAGICS`",
                 "its layer in the import-linter contract" if kind in layered else "no layer in the contract"]
        lines += textwrap.wrap(f"- `{kind}/`: " + "; ".join(parts) + ".", WIDTH, subsequent_indent="  ",
                               break_on_hyphens=False)
    shared = set.intersection(*(_used_below(kind) for kind in plans))
    reused = ", ".join(f"`{m}`" for m in sorted(shared))
    lines += ["", *textwrap.wrap(f"Each of them imports, unedited: {reused}.", WIDTH, break_on_hyphens=False)]
    return "\n".join(lines)


def documented_list(doc: str) -> str:
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1, "the job-kind list's markers"
    return doc.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def test_the_job_kind_list_is_generated() -> None:
    """The doc's list of what each job kind has is the code's (run ``python tests/test_docs_recipes.py --write``
    after changing a job kind)."""
    assert documented_list(DOC.read_text()) == job_kind_list()


def recipes() -> dict[str, str]:
    """The doc's "How to add …" recipes: heading -> its text (up to the next recipe)."""
    section = DOC.read_text().split("## How to add …", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^\*\*(.+?)\*\*", section, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# Each recipe and the steps this file follows for it.
FOLLOWED: dict[str, tuple[Step, ...]] = {
    "A provider speaking a new wire protocol": PROTOCOL_STEPS,
    "A provider that speaks an existing protocol": EXISTING_STEPS,
    "An option of `%%fuse`": OPTION_STEPS + OTHER_OPTION_STEPS,
    "A judged mode": MODE_STEPS,
}


def test_the_recipes_are_the_ones_tested() -> None:
    """Every recipe of "How to add …" is one this file follows, or the generated list: a new one needs its test."""
    assert list(recipes()) == [*FOLLOWED, "A job kind"]
    assert BEGIN in recipes()["A job kind"]


@pytest.mark.parametrize("heading", FOLLOWED)
def test_the_recipes_name_their_steps(heading: str) -> None:
    """Each step followed here is named in its recipe's text: a step dropped from the doc fails here, one added
    to the doc and not followed is missing from the test (and its omission unchecked)."""
    text = " ".join(recipes()[heading].split())
    missing = [s.what for s in FOLLOWED[heading] if " ".join(s.named.split()) not in text]
    assert missing == [], missing


def main(argv: Sequence[str]) -> int:
    """``--write``: put the generated job-kind list into docs/architecture.md; otherwise print it."""
    text = job_kind_list()
    if "--write" not in argv:
        print(text)
        return 0
    doc = DOC.read_text()
    documented_list(doc)  # the markers are there, once each
    head, rest = doc.split(BEGIN, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{rest.split(END, 1)[1]}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
