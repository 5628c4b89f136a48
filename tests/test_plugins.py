"""Provider plugins: a protocol registered through the ``fusion_magic.providers`` entry-point group.

The end-to-end tests build real distributions on disk (a ``*.dist-info`` with ``entry_points.txt`` beside a
module), put them on a child interpreter's path, and run calls against the loopback emulator: a child, so
that its package metadata is read fresh.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fusion_magic.core.errors import ConfigError, MissingKeyError, UnknownModelError
from fusion_magic.providers.chat.openai_compat import OpenAICompatProvider
from fusion_magic.providers.plugins import GROUP, ProtocolTable, contract_problem
from fusion_magic.providers.registry import (
    BUILTIN,
    BUILTIN_PROTOCOLS,
    PROTOCOLS,
    known_providers,
    provider_class,
    provider_specs,
    resolve_endpoint,
    split_model_id,
)
from fusion_magic.providers.video import video_protocol
from fusion_magic.testing import Emulator, ModelScript

ROOT = Path(__file__).resolve().parent.parent

PLUGIN_MODULE = '''
from fusion_magic.providers.chat.openai_compat import OpenAICompatProvider


class MyProvider(OpenAICompatProvider):
    """An OpenAI-compatible vendor with its own variables."""

    protocol = "myproto"
    default_base_url = "https://api.myproto.invalid/v1"
    base_url_env = "MYPROTO_BASE_URL"
    key_envs = ("MYPROTO_API_KEY",)


NOT_A_PROVIDER = "a string"
'''

# A plugin that reads the table while it is being imported (its lock is re-entrant: no deadlock), then wrongly
# registers itself by hand as well.
EAGER_MODULE = '''
from fusion_magic.providers.registry import PROTOCOLS, split_model_id
from myproto_plugin import MyProvider

assert split_model_id("openai:gpt-4o")[0].protocol == "openai"


class EagerProvider(MyProvider):
    protocol = "eager"


PROTOCOLS.register(EagerProvider)
'''

# What the child prints: the answer, then where each protocol row came from.
CHILD = '''
import fusion_magic
from fusion_magic.providers.registry import PROTOCOLS

r = fusion_magic.complete(MODEL, "hi")
print("STATUS", r.status)
print("TEXT", r.text)
for name, row in PROTOCOLS.items():
    print("ROW", name, row.origin)
'''


def dist(site: Path, name: str, version: str, entry_points: dict[str, str] | None) -> None:
    """A distribution as pip installs one: ``<name>-<version>.dist-info`` with METADATA and entry points."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if entry_points is not None:
        rows = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{rows}")


def run_child(site: Path, model: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", f"MODEL = {model!r}\n" + CHILD], env=child_env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def rows_of(stdout: str) -> dict[str, str]:
    """Protocol name -> where its row came from, as the child printed them."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("ROW "):
            _, name, origin = line.split(" ", 2)
            rows[name] = origin
    return rows


def test_pyproject_declares_the_builtin_table() -> None:
    # The code's table is the fallback for stale metadata: it must say what pyproject.toml says.
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][GROUP]
    assert declared == dict(BUILTIN_PROTOCOLS)
    for name in BUILTIN_PROTOCOLS:
        assert contract_problem(name, PROTOCOLS.provider_class(name)) is None, name


def test_a_plugin_adds_a_chat_protocol_and_broken_plugins_cost_one_line_each(emulator: Emulator,
                                                                            tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "myproto_plugin.py").write_text(PLUGIN_MODULE)
    (site / "eager_plugin.py").write_text(EAGER_MODULE)
    dist(site, "myproto_plugin", "1.0", {"myproto": "myproto_plugin:MyProvider"})
    dist(site, "eager_plugin", "0.4", {"eager": "eager_plugin:EagerProvider"})
    dist(site, "broken_plugin", "0.1", {"broken": "no_such_module_for_fusion_magic:Provider"})
    dist(site, "wrong_type_plugin", "0.2", {"wrongtype": "myproto_plugin:NOT_A_PROVIDER"})
    dist(site, "hijack_plugin", "0.3", {"openrouter": "myproto_plugin:MyProvider"})
    emulator.script("plugin-model", ModelScript(reply="Bonjour from the plugin."))
    env = {"MYPROTO_BASE_URL": emulator.env()["OPENAI_BASE_URL"], "MYPROTO_API_KEY": "sk-myproto-test"}

    done = run_child(site, "myproto:plugin-model", env, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "STATUS ok" in done.stdout and "TEXT Bonjour from the plugin." in done.stdout
    rows = rows_of(done.stdout)
    assert rows["myproto"] == "myproto_plugin 1.0"
    assert set(rows) == {*BUILTIN_PROTOCOLS, "myproto"}
    # It crossed the socket, to the route the plugin's variable named, with the plugin's key.
    [sent] = [r for r in emulator.requests if r.model == "plugin-model"]
    assert (sent.method, sent.path, sent.status) == ("POST", "/openai/v1/chat/completions", 200)
    assert sent.body["messages"][-1] == {"role": "user", "content": "hi"}
    assert "sk-myproto-test" not in str(sent.headers) and sent.headers["authorization"]
    # One warning line per broken plugin, naming it; no traceback.
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert len(lines) == 4, done.stderr
    broken, wrong, hijack, eager = (next(ln for ln in lines if f"provider plugin '{n}'" in ln)
                                    for n in ("broken", "wrongtype", "openrouter", "eager"))
    assert "broken_plugin 0.1" in broken and "ModuleNotFoundError" in broken
    assert "wrong_type_plugin 0.2" in wrong and "not a provider class" in wrong
    assert "hijack_plugin 0.3" in hijack and "built in" in hijack
    assert "eager_plugin 0.4" in eager and "registers through its entry point" in eager


@pytest.mark.parametrize("metadata", ["absent", "stale", "current"])
def test_builtins_work_whatever_this_packages_metadata_says(metadata: str, emulator: Emulator,
                                                            tmp_path: Path) -> None:
    # A fusion_magic dist-info first on the path stands for this package's installed metadata.
    site = tmp_path / "site"
    site.mkdir()
    if metadata == "absent":  # an install from before the entry-point group existed
        dist(site, "fusion_magic", "0.0", None)
    elif metadata == "stale":  # the code has moved on since: a renamed module, a protocol added later
        rows = dict(BUILTIN_PROTOCOLS)
        rows["openai"] = "fusion_magic.providers.chat.old_openai:Gone"
        del rows["anthropic"]
        dist(site, "fusion_magic", "0.0", rows)
    else:
        dist(site, "fusion_magic", "0.0", dict(BUILTIN_PROTOCOLS))
    emulator.script("gpt-builtin", ModelScript(reply="Built in."))

    done = run_child(site, "openai:gpt-builtin", emulator.env() | emulator.test_keys(), tmp_path)

    assert done.returncode == 0, done.stderr
    assert "TEXT Built in." in done.stdout and done.stderr == ""
    assert [r.path for r in emulator.requests] == ["/openai/v1/chat/completions"]
    rows = rows_of(done.stdout)
    assert set(rows) == set(BUILTIN_PROTOCOLS)
    from_metadata = {name for name, origin in rows.items() if origin == "fusion_magic 0.0 entry point"}
    assert from_metadata == {"absent": set(), "stale": set(BUILTIN_PROTOCOLS) - {"openai", "anthropic"},
                             "current": set(BUILTIN_PROTOCOLS)}[metadata]
    assert all(origin == "built-in table" for name, origin in rows.items() if name not in from_metadata)


# ---- in-process: register() applies the same contract as discovery -------------------------------------


class Vendor(OpenAICompatProvider):
    protocol: ClassVar[str] = "vendorx"
    default_base_url: ClassVar[str] = "https://vendorx.invalid/v1"
    base_url_env: ClassVar[str] = "VENDORX_BASE_URL"
    key_envs: ClassVar[tuple[str, ...]] = ("VENDORX_API_KEY", "VENDORX_TOKEN")


class Clips:
    """A video job protocol: it generates, and does not say it watches video."""

    protocol: ClassVar[str] = "clipsy"
    poll_interval: ClassVar[float] = 1.0
    default_base_url: ClassVar[str] = "https://clipsy.invalid"
    key_envs: ClassVar[tuple[str, ...]] = ("CLIPSY_KEY",)

    async def submit(self, request: Any) -> Any:
        raise NotImplementedError


class Watcher(Clips):
    protocol: ClassVar[str] = "watcher"
    watches_video: ClassVar[bool] = True
    key_required: ClassVar[bool] = False


@pytest.fixture
def registered() -> Iterator[None]:
    for cls in (Vendor, Clips, Watcher):
        PROTOCOLS.register(cls)
    yield
    for cls in (Vendor, Clips, Watcher):
        PROTOCOLS.unregister(cls.protocol)
    assert set(PROTOCOLS) >= set(BUILTIN_PROTOCOLS) and not {"vendorx", "clipsy", "watcher"} & set(PROTOCOLS)


def test_a_registered_class_is_a_provider_with_its_own_variables(registered: None) -> None:
    spec, model = split_model_id("vendorx:big-model")
    assert (spec.protocol, spec.key_envs, spec.key_required, model) == (
        "vendorx", ("VENDORX_API_KEY", "VENDORX_TOKEN"), True, "big-model")
    assert provider_class(spec) is Vendor
    assert "vendorx" in known_providers() and "openrouter" in known_providers()
    assert [s.name for s in provider_specs({"mine": {"base_url": "http://x.invalid/v1"}})][-4:] == [
        "vendorx", "clipsy", "watcher", "mine"]
    endpoint = resolve_endpoint(spec, environ={"VENDORX_TOKEN": "t-123", "VENDORX_BASE_URL": "http://h:1/v1/"})
    assert (endpoint.base_url, endpoint.api_key) == ("http://h:1/v1", "t-123")
    assert resolve_endpoint(spec, environ={}, require_key=False).base_url == "https://vendorx.invalid/v1"
    with pytest.raises(MissingKeyError, match="VENDORX_API_KEY"):
        resolve_endpoint(spec, environ={})
    # A keyless plugin (key_required False) resolves without any variable.
    assert resolve_endpoint(split_model_id("watcher:m")[0], environ={}).api_key is None


def test_video_protocol_reads_a_plugins_declared_capabilities(registered: None) -> None:
    assert video_protocol("clipsy", "m1", "generate") == "clipsy"
    with pytest.raises(ConfigError, match="clipsy:m1 cannot watch video"):
        video_protocol("clipsy", "m1", "understand")
    assert video_protocol("watcher", "m1", "understand") == "watcher"
    with pytest.raises(ConfigError, match="vendorx:m cannot generate video"):
        video_protocol("vendorx", "m", "generate")
    # The built-in rules are unchanged, and a built-in protocol name is not a provider name.
    assert video_protocol("gemini", "veo-3.1-generate-preview", "generate") == "veo"
    with pytest.raises(UnknownModelError, match="unknown provider 'veo'"):
        split_model_id("veo:veo-3.1-generate-preview")


class NoProtocol(OpenAICompatProvider):
    protocol: ClassVar[str] = "openai"  # inherited by a subclass that forgot its own


class Nothing:
    protocol: ClassVar[str] = "nothing"


class BadKeys(OpenAICompatProvider):
    protocol: ClassVar[str] = "badkeys"
    key_envs: ClassVar = ["BADKEYS_API_KEY"]  # a list where a tuple is declared


class BadUrl(OpenAICompatProvider):
    protocol: ClassVar[str] = "badurl"
    default_base_url: ClassVar = None


class TakesAName(Vendor):
    protocol: ClassVar[str] = "openrouter"


@pytest.mark.parametrize(("cls", "why"), [
    (NoProtocol, "already registered"),
    (TakesAName, "already registered"),
    (Nothing, "neither stream"),
    (BadKeys, "key_envs is a list, not tuple"),
    (BadUrl, "default_base_url is a NoneType, not str"),
])
def test_register_refuses_what_discovery_would_skip(cls: type, why: str) -> None:
    before = dict(PROTOCOLS)
    with pytest.raises(ValueError, match=why):
        PROTOCOLS.register(cls)
    assert dict(PROTOCOLS) == before
    assert BUILTIN["openrouter"].protocol == "openai"


def test_contract_problem_names_what_is_wrong() -> None:
    assert contract_problem("x", "a string") == "it is a str, not a provider class"
    assert contract_problem("myproto", Vendor) == "its class says protocol = 'vendorx', not 'myproto'"
    assert contract_problem("vendorx", Vendor) is None


def test_a_builtin_protocol_is_used_without_looking_for_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of built-in protocols neither scans the installed packages' entry points nor imports a plugin:
    only a name that is not built in, or a listing, looks for the plugins (once)."""
    table = ProtocolTable(GROUP, BUILTIN_PROTOCOLS)
    looked: list[int] = []

    def discover() -> dict[str, Any]:
        looked.append(1)
        return {}

    monkeypatch.setattr(table, "_discover", discover)
    assert "openai" in table and table.provider_class("openai") is OpenAICompatProvider
    assert table.provider_class("openai") is OpenAICompatProvider and looked == []
    assert "myproto" not in table and looked == [1]
    assert table.plugins() == [] and looked == [1]


def test_a_run_of_builtin_protocols_imports_no_plugin(emulator: Emulator, tmp_path: Path) -> None:
    """End to end: with a plugin (and a broken one) installed, a built-in model's run imports neither and warns
    of nothing; the broken plugin's one line comes when the plugins are first listed."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "myproto_plugin.py").write_text(PLUGIN_MODULE)
    dist(site, "myproto_plugin", "1.0", {"myproto": "myproto_plugin:MyProvider"})
    dist(site, "broken_plugin", "0.1", {"broken": "no_such_module_for_fusion_magic:Provider"})
    emulator.script("m", ModelScript(reply="Built in."))
    child = """
import sys
import fusion_magic
from fusion_magic.providers.registry import PROTOCOLS
r = fusion_magic.complete("openai:m", "hi")
print("STATUS", r.status, "PLUGIN", "myproto_plugin" in sys.modules, flush=True)
sys.stderr.write("LISTING\\n")
print("PLUGINS", [row.name for row in PROTOCOLS.plugins()])
"""
    env = {**os.environ, **emulator.env(), **Emulator.test_keys(),
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", child], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "STATUS ok PLUGIN False" in done.stdout and "PLUGINS ['myproto']" in done.stdout
    before, _, after = done.stderr.partition("LISTING")
    assert "broken" not in before and "provider plugin 'broken'" in after
