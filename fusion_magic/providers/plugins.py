"""The table of wire protocols: the built-ins and any installed plugin, found through one entry-point group.

A package adds a protocol by naming its provider class in the ``fusion_magic.providers`` group; the entry
point's name is the protocol's name (and, for a plugin, the provider prefix users type, ``myproto:model``).
This package registers its own protocols the same way, in its ``pyproject.toml``::

    [project.entry-points."fusion_magic.providers"]
    myproto = "my_package.provider:MyProvider"

A provider class declares everything as class attributes (see docs/plugins.md):

- ``protocol``: its name, equal to the entry point's name;
- ``stream(request)`` (a chat protocol) or ``submit``/``poll``/``download`` (a video job protocol);
- its capabilities, declared: ``supports_json_schema``, ``needs_http`` (read before a provider is built),
  ``watches_video`` (it answers a ``VideoQuestion``: read by ``video.video_protocol``), ``attachment_limits``
  (what it takes besides text; none: text only), ``check_model``, ``check_attachments`` and ``check_request``
  (asked by the plan before anything is sent);
- where it connects: ``default_base_url``, ``base_url_env``, ``key_envs``, and optionally ``key_required``,
  ``flavor``, ``base_url_suffix``, ``placeholder_key`` (``registry.ProviderSpec``'s fields).

Built-in protocols load on first use (a run imports only the protocols it uses), and a built-in name is
resolved without reading the installed packages at all: a run of built-in protocols never scans the entry
points or imports a plugin. The plugins are found, and each imported, the first time a name that is not built
in is looked up or the table is listed, so that a broken one is reported once, as one warning line naming it,
and skipped: the built-ins keep working.

    table = ProtocolTable(GROUP, builtin={"openai": "fusion_magic.providers.chat.openai_compat:OpenAICompatProvider"})
    table.provider_class("openai")   # OpenAICompatProvider, imported now
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

# The entry-point group every protocol registers in.
GROUP = "fusion_magic.providers"
# This package's own distribution, normalized (PEP 503): its entry points are the built-ins.
OWN_DISTRIBUTION = "fusion-magic"

log = logging.getLogger("fusion_magic")

# Class attributes a plugin may declare about where it connects, with the types they must have.
CONNECTION_ATTRIBUTES: Mapping[str, tuple[type, ...]] = {
    "default_base_url": (str,),
    "base_url_env": (str, type(None)),
    "key_envs": (tuple,),
    "key_required": (bool,),
    "flavor": (str,),
    "base_url_suffix": (str,),
    "placeholder_key": (str, type(None)),
}


@dataclass(frozen=True)
class Registration:
    """One protocol in the table: its name, the ``module:attr`` that speaks it, and where the row came from.

        PROTOCOLS["openai"].origin   # "fusion_magic 0.1.0 entry point", or "built-in table" (stale metadata)
    """

    name: str
    target: str
    origin: str
    builtin: bool
    # Set for a plugin (imported and checked when found); a built-in's class is kept apart (ProtocolTable).
    cls: type | None = field(default=None, compare=False, repr=False)


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``Fusion_Magic`` and ``fusion-magic`` are one project."""
    return "-".join(name.replace("_", "-").replace(".", "-").lower().split("-"))


def one_line(exc: BaseException) -> str:
    """An exception as one short line for a warning (a plugin's own message may span lines)."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def contract_problem(name: str, obj: object) -> str | None:
    """Why ``obj`` cannot speak protocol ``name``, in a few words, or None when it can."""
    if not isinstance(obj, type):
        return f"it is a {type(obj).__name__}, not a provider class"
    declared = getattr(obj, "protocol", None)
    if declared != name:
        return f"its class says protocol = {declared!r}, not {name!r}"
    if not callable(getattr(obj, "stream", None)) and not callable(getattr(obj, "submit", None)):
        return "it has neither stream() (a chat protocol) nor submit() (a video protocol)"
    for attr, types in CONNECTION_ATTRIBUTES.items():
        value = getattr(obj, attr, None)
        if hasattr(obj, attr) and not isinstance(value, types):
            wanted = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            return f"its {attr} is a {type(value).__name__}, not {wanted}"
        if attr == "key_envs" and value is not None and not all(isinstance(v, str) and v for v in value):
            return "its key_envs must be names of environment variables"
    return None


class ProtocolTable(Mapping[str, Registration]):
    """Protocol name -> ``Registration``, read from the entry-point group the first time it is used.

        PROTOCOLS.provider_class("anthropic")       # the class, imported on first use
        PROTOCOLS.register(MyProvider)              # a class defined in a notebook or a test
        PROTOCOLS.unregister("myproto")

    ``builtin`` is this package's own rows, the same as its ``pyproject.toml`` declares: an editable checkout
    whose installed metadata predates a change still finds every built-in (pip writes entry points only at
    install time, while the code is read live), so a row of this package's metadata is used only when it agrees
    with ``builtin``. ``reserved`` are names a plugin may not take (the built-in provider names).
    Thread-safe: the table is read without a lock once found, and every change swaps in a new dict. A plugin's
    import that reads the table (the lock is re-entrant) sees the rows found before it.
    """

    def __init__(self, group: str, builtin: Mapping[str, str], reserved: Collection[str] = ()) -> None:
        self.group = group
        self._builtin = dict(builtin)
        self._reserved = frozenset(reserved) | frozenset(builtin)
        self._lock = threading.RLock()
        self._rows: dict[str, Registration] | None = None
        self._found: dict[str, Registration] | None = None  # while discovering: the rows so far
        self._builtin_classes: dict[str, type] = {}  # each built-in's class, once first used

    # ---- Mapping --------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Registration:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __contains__(self, name: object) -> bool:
        """A built-in name is known without looking for plugins; any other name looks (once)."""
        return name in self._builtin or name in self._table()

    # ---- use --------------------------------------------------------------------------------------------

    def provider_class(self, name: str) -> Any:
        """The class that speaks protocol ``name``, imported on first use; ``KeyError`` for an unknown name.

        A built-in that fails to import raises as any import does: that is a broken installation, not a
        plugin's fault.
        """
        if name in self._builtin:  # never a plugin's: no need to find the plugins
            cls = self._builtin_classes.get(name)
            if cls is None:
                cls = self._builtin_classes[name] = _imported(self._builtin[name])
            return cls
        row = self[name]
        assert row.cls is not None  # a plugin's class is imported and checked when it is found or registered
        return row.cls

    def plugins(self) -> list[Registration]:
        """The rows that are not built in, in the order they were found."""
        return [row for row in self._table().values() if not row.builtin]

    def register(self, cls: type, *, origin: str = "register()") -> type:
        """Add a provider class under its ``protocol`` name, as an installed plugin would be; returns ``cls``
        (so it works as a decorator). ``ValueError`` when the class breaks the contract or the name is taken."""
        name = getattr(cls, "protocol", None)
        problem = contract_problem(name, cls) if isinstance(name, str) and name else "it has no protocol name"
        if problem is not None:
            raise ValueError(f"cannot register {getattr(cls, '__name__', cls)!r} as a provider: {problem}")
        assert isinstance(name, str)
        with self._lock:
            rows = self._table()
            if self._rows is None:
                raise ValueError(f"{name!r}: a plugin registers through its entry point, not register() on import")
            if name in rows or name in self._reserved:
                raise ValueError(f"provider protocol {name!r} is already registered")
            target = f"{cls.__module__}:{cls.__qualname__}"
            self._rows = {**rows, name: Registration(name, target, origin, False, cls)}
        return cls

    def unregister(self, name: str) -> None:
        """Remove a plugin's protocol (no error if there is none); the built-ins stay."""
        with self._lock:
            rows = self._table()
            if self._rows is not None and name in rows and not rows[name].builtin:
                self._rows = {k: v for k, v in rows.items() if k != name}

    # ---- discovery ----------------------------------------------------------------------------------------

    def _table(self) -> dict[str, Registration]:
        rows = self._rows
        if rows is None:
            with self._lock:
                if self._rows is None and self._found is not None:
                    return self._found  # a plugin's import asked, mid-discovery
                if self._rows is None:
                    try:
                        self._rows = self._discover()
                    finally:
                        self._found = None
                rows = self._rows
        return rows

    def _discover(self) -> dict[str, Registration]:
        """Every row: this package's from its metadata where current, else from ``builtin``; then each plugin,
        imported and checked now. A plugin that fails is logged (one line naming it) and left out."""
        from importlib.metadata import entry_points

        rows = {name: Registration(name, target, "built-in table", True) for name, target in self._builtin.items()}
        self._found = rows
        try:
            found = list(entry_points(group=self.group))
        except Exception as exc:  # one unreadable dist-info anywhere on sys.path must not cost the built-ins
            log.warning("fusion_magic: provider plugins were not loaded (reading installed packages failed: %s)",
                        one_line(exc))
            return rows
        for ep in found:
            dist_name, version = _distribution(ep)
            if canonical_name(dist_name) == OWN_DISTRIBUTION:
                # A row that disagrees with the code is from an install older than the code: the code wins.
                if self._builtin.get(ep.name) == ep.value:
                    rows[ep.name] = Registration(ep.name, ep.value, f"{dist_name}{version} entry point", True)
                continue
            where = f"provider plugin {ep.name!r} ({ep.value} from {dist_name}{version})"
            if ep.name in self._reserved or ep.name in rows:
                taken = "built in" if ep.name in self._reserved else "registered by another plugin"
                log.warning("fusion_magic: ignoring %s: the name %r is %s", where, ep.name, taken)
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a plugin's import error is its own; fusion_magic goes on without it
                log.warning("fusion_magic: %s was not loaded: %s", where, one_line(exc))
                continue
            problem = contract_problem(ep.name, obj)
            if problem is not None:
                log.warning("fusion_magic: %s was not loaded: %s", where, problem)
                continue
            assert isinstance(obj, type)
            rows[ep.name] = Registration(ep.name, ep.value, f"{dist_name}{version}", False, obj)
        return rows


def _imported(target: str) -> Any:
    """The object ``module:attr`` names, its module imported now."""
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    """The name and " version" of the package that declared ``ep``, as far as its metadata says."""
    try:
        dist = ep.dist
        name, version = (dist.name, dist.version) if dist is not None else (None, None)
    except Exception:  # a dist-info without a readable METADATA still named an entry point
        name, version = None, None
    return (name or "an unknown distribution"), (f" {version}" if version else "")


__all__ = ["GROUP", "ProtocolTable", "Registration", "canonical_name", "contract_problem"]
