"""The table of emulated provider families: each family registers its routes, the core serves what is registered.

A family is a :class:`Family` subclass: its routes (absolute paths, ``{name}`` for one path segment and
``{name:path}`` for any text), the key it reads and the error it answers without one, the environment
variables that point a client at it, and its fake keys. Built-in families are rows in
``families.BUILTIN``; a test may :func:`register` one of its own and :func:`unregister` it afterwards.
Every Emulator, running or not, consults the table on each request.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._exchange import Exchange, RecordedRequest
from .batch import BatchBook
from .script import ScriptBook
from .video_script import VideoBook

Handler = Callable[["Request"], Awaitable[None]]

_PARAM = re.compile(r"\{(\w+)(:path)?\}")


@dataclass(frozen=True)
class Route:
    """One endpoint of a family.

        Route("POST", "/anthropic/v1/messages", self.chat)
        Route("GET", "/openrouter/api/v1/models", self.models, auth=False)  # served without a key

    ``path`` is absolute; a ``{model}`` parameter also names the model in the request log.
    """

    method: str
    path: str
    handler: Handler
    auth: bool = True


@dataclass(frozen=True)
class Request:
    """One request as a family's handler sees it: unredacted headers and query, the decoded body (None when
    it is not JSON), the path parameters, and the exchange to answer on.

        async def echo(self, req: Request) -> None:
            await req.json(200, {"echo": req.body, "id": req.request_id})
    """

    family: Family
    exchange: Exchange
    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    raw_body: bytes
    body: Any
    params: Mapping[str, str]
    # Per emulator, counting every request a family handled; ids in responses derive from it.
    seq: int
    scripts: ScriptBook
    # Emulator.expected_keys[family.name]: the only key accepted, or None for any non-empty one.
    expected_key: str | None
    # Video models' scripts, jobs and stored clips (video_script.py).
    video: VideoBook
    # The batch APIs' batches, files and scripted outcomes (batch.py); a fresh book where none is given.
    batches: BatchBook = field(default_factory=BatchBook)

    @property
    def record(self) -> RecordedRequest:
        """This request's entry in the emulator's log (handlers set ``fault`` on it)."""
        return self.exchange.record

    @property
    def request_id(self) -> str:
        """The id the real APIs send back in a request-id header."""
        return f"req_emu{self.seq:06d}"

    async def json(self, status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer with a whole JSON body."""
        await self.exchange.json(status, body, headers)


class Family(ABC):
    """One provider API: its routes, how it reads a key and how it says no.

        class Echo(Family):
            name = "echo"; env = {"ECHO_BASE_URL": "/echo"}; test_keys = {"ECHO_API_KEY": "echo-test"}
            def routes(self): return [Route("POST", "/echo/v1/echo", self.echo)]

    The defaults read ``Authorization: Bearer`` and answer a bad key with a generic 401; override
    :meth:`presented_key`, :meth:`key_error`, :meth:`auth_headers` and :meth:`check_headers` to
    speak the family's own dialect.
    """

    name: ClassVar[str]
    # Variable -> path under the emulator's URL (Emulator.env()).
    env: ClassVar[Mapping[str, str]] = {}
    # Variable -> a fake key (Emulator.test_keys()).
    test_keys: ClassVar[Mapping[str, str]] = {}
    # Redacted in the log of every request, whichever route it hits (a key sent to the wrong place is still a key).
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})
    secret_query: ClassVar[frozenset[str]] = frozenset()
    # Whose entry of Emulator.expected_keys this family honours when it has none of its own (a batch API
    # takes its chat API's key); None: its own name only.
    key_family: ClassVar[str | None] = None

    @abstractmethod
    def routes(self) -> Sequence[Route]:
        """The family's endpoints."""

    def presented_key(self, req: Request) -> str:
        """The key the request carries, "" for none."""
        scheme, _, key = req.headers.get("authorization", "").partition(" ")
        return key if scheme.lower() == "bearer" else ""

    def key_error(self, req: Request, has_key: bool) -> tuple[int, Any]:
        """Status and body for a missing (``has_key`` False) or wrong key."""
        message = "wrong API key" if has_key else "missing API key"
        return 401, {"error": {"code": 401, "message": message}}

    def auth_headers(self, req: Request) -> list[tuple[str, str]]:
        """Headers sent with an auth or header-check rejection (request ids)."""
        return []

    def check_headers(self, req: Request) -> tuple[int, Any] | None:
        """Status and body when a required header other than the key is missing, else None."""
        return None

    async def authorize(self, req: Request) -> bool:
        """Answer the request with the family's rejection and return False, or return True to let it through."""
        key = self.presented_key(req).strip()
        if not key or (req.expected_key is not None and key != req.expected_key):
            status, body = self.key_error(req, bool(key))
        elif (rejected := self.check_headers(req)) is not None:
            status, body = rejected
        else:
            return True
        await req.json(status, body, self.auth_headers(req))
        return False


@dataclass(frozen=True)
class Match:
    """The route a request hit and its path parameters."""

    family: Family
    route: Route
    params: dict[str, str]


@dataclass(frozen=True)
class _Row:
    family: Family
    route: Route
    pattern: re.Pattern[str]


def _compile(path: str) -> re.Pattern[str]:
    parts: list[str] = []
    pos = 0
    for param in _PARAM.finditer(path):
        parts.append(re.escape(path[pos : param.start()]))
        parts.append(f"(?P<{param[1]}>.+)" if param[2] else f"(?P<{param[1]}>[^/]+)")
        pos = param.end()
    parts.append(re.escape(path[pos:]))
    return re.compile("".join(parts))


class Registry:
    """Families by name, and their routes in registration order.

        registry.register(Echo()); ...; registry.unregister("echo")

    Thread-safe: registration swaps in new tuples, so the server thread reads a consistent table without a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: tuple[Family, ...] = ()
        self._rows: tuple[_Row, ...] = ()
        self._secret_headers: frozenset[str] = frozenset()
        self._secret_query: frozenset[str] = frozenset()

    def register(self, family: Family) -> Family:
        """Serve ``family`` from now on; ValueError if its name or one of its routes is taken."""
        rows = [_Row(family, route, _compile(route.path)) for route in family.routes()]
        with self._lock:
            if any(f.name == family.name for f in self._families):
                raise ValueError(f"emulator family {family.name!r} is already registered")
            taken = {(row.route.method, row.route.path) for row in self._rows}
            for row in rows:
                if (row.route.method, row.route.path) in taken:
                    raise ValueError(f"emulator route {row.route.method} {row.route.path} is already registered")
            self._families = (*self._families, family)
            self._rows = (*self._rows, *rows)
            self._secret_headers |= family.secret_headers
            self._secret_query |= family.secret_query
        return family

    def unregister(self, name: str) -> None:
        """Stop serving the family called ``name`` (no error if there is none)."""
        with self._lock:
            self._families = tuple(f for f in self._families if f.name != name)
            self._rows = tuple(row for row in self._rows if row.family.name != name)
            self._secret_headers = frozenset().union(*(f.secret_headers for f in self._families))
            self._secret_query = frozenset().union(*(f.secret_query for f in self._families))

    def families(self) -> tuple[Family, ...]:
        """The registered families, in registration order."""
        return self._families

    def match(self, method: str, path: str) -> Match | int:
        """The route for a request, or the HTTP status (404/405) when there is none."""
        found = False
        for row in self._rows:
            hit = row.pattern.fullmatch(path)
            if hit is None:
                continue
            if row.route.method == method:
                return Match(row.family, row.route, hit.groupdict())
            found = True
        return 405 if found else 404

    def family_of(self, path: str) -> str:
        """The family an unrouted path was meant for, by its first segment; "unknown" if none."""
        head = path.strip("/").split("/", 1)[0]
        return head if any(f.name == head for f in self._families) else "unknown"

    @property
    def secret_headers(self) -> frozenset[str]:
        """Header names (lower case) that any family sends a key in."""
        return self._secret_headers

    @property
    def secret_query(self) -> frozenset[str]:
        """Query parameters that any family sends a key in."""
        return self._secret_query


# The one table every Emulator serves; families/__init__.py fills it with the built-in families.
registry = Registry()


def register(family: Family) -> Family:
    """Serve ``family`` from every Emulator (see :meth:`Registry.register`)."""
    return registry.register(family)


def unregister(name: str) -> None:
    """Stop serving the family called ``name`` (see :meth:`Registry.unregister`)."""
    registry.unregister(name)


__all__ = ["Family", "Handler", "Match", "Registry", "Request", "Route", "register", "registry", "unregister"]
