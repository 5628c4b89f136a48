"""Every exception fusion_magic raises, in one place.

The tree::

    FusionError                      base of everything we raise on purpose
    ├── ConfigError                  the user asked for something we cannot do (no network call was made)
    │   ├── MissingKeyError          a provider needs a key that is not set; says which variable
    │   └── UnknownModelError        a model id whose provider prefix we do not know
    ├── BudgetError                  --budget refused the run before it started
    ├── ReplayMissError              cache mode "replay" and the request was never recorded
    └── ProviderError                one call to one model failed; ``.kind`` is the stable label
        ├── AuthError                401/403: bad or missing key, no permission      kind="auth"
        ├── PaymentError             402: credits or billing                          kind="payment"
        ├── RateLimitError           429 (and OpenRouter's in-flight 402)            kind="rate_limit"
        ├── BadRequestError          400/404/413/422: the request itself is wrong    kind="bad_request"
        ├── BlockedError             safety/moderation refused the prompt            kind="blocked"
        ├── ServerError              5xx, 529, overload                              kind="server"
        ├── ProviderTimeout          no answer within the call's timeout             kind="timeout"
        ├── ProtocolError            malformed JSON, stream cut, bad framing         kind="protocol"
        ├── WorkerCrashed            the local model's worker process died mid-call  kind="crashed"
        └── CallCancelled            the user interrupted or the run was cancelled   kind="cancelled"

Library exceptions are translated at one boundary per library, with ``raise ... from``: httpx in
``fusion_magic.providers._http.translate_transport_error``, llama.cpp in the local model's worker process
(``fusion_magic.providers.chat.local.worker``), whose errors cross the pipe as a kind and a message.
Only the magic turns these into IPython's one-line ``UsageError``.
"""

from __future__ import annotations


class FusionError(Exception):
    """Base class of every error fusion_magic raises on purpose."""


class ConfigError(FusionError):
    """The request cannot be made as written; nothing was sent."""


class MissingKeyError(ConfigError):
    """A provider needs an API key that is not set.

    >>> MissingKeyError("openrouter", ("OPENROUTER_API_KEY",)).args[0]
    "openrouter needs an API key: set OPENROUTER_API_KEY (e.g. os.environ['OPENROUTER_API_KEY'] = getpass())"
    """

    def __init__(self, provider: str, env_vars: tuple[str, ...]) -> None:
        names = " or ".join(env_vars)
        super().__init__(
            f"{provider} needs an API key: set {names} (e.g. os.environ['{env_vars[0]}'] = getpass())"
        )
        self.provider = provider
        self.env_vars = env_vars


class UnknownModelError(ConfigError):
    """A model id whose ``provider:`` prefix is not registered."""


class BudgetError(FusionError):
    """The projected cost is above ``--budget``; no call was made."""


class ReplayMissError(FusionError):
    """Cache mode is ``replay`` and this exact request was never recorded."""


class ProviderError(FusionError):
    """One call to one model failed.

    Carries the context a user needs: which provider and model, the HTTP status (None when the
    failure happened before or outside HTTP), the provider's own message, and ``retry_after``
    seconds when the server suggested one. Never carries the API key.
    """

    kind = "error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after
        self.code = code

    def __str__(self) -> str:
        where = ":".join(p for p in (self.provider, self.model) if p)
        status = f" HTTP {self.status}" if self.status is not None else ""
        prefix = f"{where}{status}: " if where or status else ""
        return f"{prefix}{self.kind}: {self.message}"


class AuthError(ProviderError):
    kind = "auth"


class PaymentError(ProviderError):
    kind = "payment"


class RateLimitError(ProviderError):
    kind = "rate_limit"
    retryable = True


class BadRequestError(ProviderError):
    kind = "bad_request"


class BlockedError(ProviderError):
    kind = "blocked"


class ServerError(ProviderError):
    kind = "server"
    retryable = True


class ProviderTimeout(ProviderError):
    kind = "timeout"


class ProtocolError(ProviderError):
    kind = "protocol"


class WorkerCrashed(ProviderError):
    """The local model's worker process died (a segfault, an abort, the out-of-memory killer) while
    this call was running in it. The kernel is unharmed; the next call starts a fresh worker.

    ``signal`` is the signal's name (``"SIGSEGV"``) or None for a plain exit, ``exit_code`` the raw
    return code, ``stderr_tail`` the worker's last lines of native output (for a bug report).
    """

    kind = "crashed"

    def __init__(self, message: str, *, signal: str | None = None, exit_code: int | None = None,
                 stderr_tail: str = "", provider: str | None = None, model: str | None = None) -> None:
        super().__init__(message, provider=provider, model=model)
        self.signal = signal
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class CallCancelled(ProviderError):
    kind = "cancelled"


def error_for_status(status: int) -> type[ProviderError]:
    """The error class for an HTTP status, following the cross-provider table in the wire reference."""
    if status in (401, 403):
        return AuthError
    if status == 402:
        return PaymentError
    if status == 429:
        return RateLimitError
    if status == 408 or status == 504:
        return ProviderTimeout
    if status >= 500:
        return ServerError
    return BadRequestError
