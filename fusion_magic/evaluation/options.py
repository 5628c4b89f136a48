"""The options of one evaluation (``%fuse eval``, ``evaluate()``), each declared once (``core/option.py``): its
type, default, check, flag and help line.

``%fuse eval``'s flags (generated from these fields), the ``evaluate()``/``aevaluate()`` keywords and
``plan_evaluation`` all build an ``EvalOptions``; a bad value is a ``ConfigError`` with one line before any
question is read or any call is made.

    options = EvalOptions(pool=("local:gemma3-270m",), strategies=("single", "self:5"), repeats=2)
    plan = plan_evaluation("questions.csv", Settings(cache="on"), options)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from ..core.errors import ConfigError
from ..core.option import check_options, option, positive_number, split_list, whole_number
from ..fusion.options import check_seed
from .data import AUTO
from .scoring import SCORERS_METAVAR, Scorer, ScorerFunction

DEFAULT_CONCURRENCY = 4


class EvalKeywords(TypedDict, total=False):
    """The option keywords of ``evaluate()``/``aevaluate()``/``plan_evaluation`` for a type checker: each is
    the ``EvalOptions`` field of the same name (``tests/test_options.py`` holds them to the fields)."""

    pool: Sequence[str] | None
    strategies: Sequence[str] | str | None
    repeats: int
    judge: str | None
    concurrency: int
    rubric_judge: str | None
    instruction: str | None
    seed: int | None
    scorer: str | Scorer | ScorerFunction | None
    batch: bool
    retry_live: bool
    poll_s: float | None


@dataclass(frozen=True)
class EvalOptions:
    """Every option of one evaluation, checked when built. An empty ``pool`` or ``judge`` comes from the
    settings, else the defaults for the keys that are set (as ``%%fuse``); no ``strategies``: every single
    member plus best-of (a pool of one model: plus self:5). ``judge`` judges best-of, merge and debate; open
    questions are scored by ``rubric_judge`` (default: ``judge`` when it is a model). ``instruction`` is
    appended to closed questions: ``"auto"`` asks HTTP models for a final line and the local model nothing
    (``data.AUTO``); None is the bare question. ``batch`` sends the calls whose provider has a batch API
    through it (``calls/batch.py``; ``retry_live``, ``poll_s``). ``seed`` makes the evaluation repeatable (see
    ``plan_evaluation``). ``scorer`` scores closed questions (``scoring``: ``match`` by default, ``exact``,
    ``includes``, ``numeric``, ``choice``, ``re:PATTERN``, ``judge:MODEL`` or a function).

        options = EvalOptions(strategies="single,self:5", scorer="numeric")
        options.with_(repeats=3).strategies   # ("single", "self:5")
    """

    pool: tuple[str, ...] = option((), "-p", "--pool", metavar="IDS", items="provider:model id",
                                   help="the pool (default: %config FusionMagics.pool)")
    strategies: tuple[str, ...] = option(
        (), "--strategies", metavar="single,self:5,vote,best-of,merge,debate", items="strategy", renamed=("-s",),
        help="the strategies to compare (default: each member alone, and best-of)")
    # -s and -r mean the system prompt and the rounds in %%fuse: here they are long-only (the old letters
    # still parse, with a note, until core.option.RENAMED_UNTIL).
    repeats: int = option(1, "--repeats", metavar="N", help="answer every question N times", renamed=("-r",),
                          check=whole_number(1, None, "repeats must be a whole number >= 1, not {value!r}"))
    judge: str = option("", "-j", "--judge", metavar="ID", help="the judge of best-of, merge and debate")
    concurrency: int = option(
        DEFAULT_CONCURRENCY, "--concurrency", metavar="N",
        help=f"rows answered at once (default {DEFAULT_CONCURRENCY})",
        check=whole_number(1, None, "concurrency must be a whole number >= 1, not {value!r}"))
    rubric_judge: str | None = option(None, "--rubric-judge", metavar="ID",
                                      help="the judge that scores open questions by their rubric")
    instruction: str | None = option(AUTO, "--instruction", metavar="TEXT",
                                     help="appended to closed questions (default: ask for a final line)")
    seed: int | None = option(None, "--seed", metavar="N", help="a repeatable evaluation", check=check_seed)
    # ruff's RUF009 takes option() for a call in a default; it returns a dataclasses.field, as field() does.
    scorer: str | Scorer | ScorerFunction | None = option(
        None, "--scorer", metavar=SCORERS_METAVAR,
        help="how closed answers are scored (default match)", check=Scorer.parse)

    batch: bool = option(False, "--batch", help="through the providers' batch APIs: about half the price, "
                                                "answers within 24 h (local models run live beside)")
    retry_live: bool = option(False, "--retry-live", help="with --batch: ask again live what a batch failed "
                                                          "(expired, cancelled, errored)")
    poll_s: float | None = option(None, "--poll", metavar="SECONDS", check=positive_number("--poll"),
                                  help="with --batch: first poll after this (default 5 s), then slower, up to 60 s")

    def __post_init__(self) -> None:
        for name in ("batch", "retry_live"):
            if not isinstance(getattr(self, name), bool):  # batch="no" must not turn batch mode on
                raise ConfigError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if (self.retry_live or self.poll_s is not None) and not self.batch:
            raise ConfigError(f"{'--retry-live' if self.retry_live else '--poll'} applies to batch evaluations: "
                              "add --batch (batch=True)")
        object.__setattr__(self, "pool", split_list(self.pool))
        object.__setattr__(self, "strategies", split_list(self.strategies))
        object.__setattr__(self, "judge", self.judge or "")
        if self.scorer is not None:
            # Parsed once, here: the declared check then sees a Scorer, and the plan takes it as it is.
            object.__setattr__(self, "scorer", Scorer.parse(self.scorer))
        check_options(self)

    def with_(self, **given: Any) -> EvalOptions:
        """A copy with the options given (every value counts: ``instruction=None`` is the bare question)."""
        return replace(self, **given)


__all__ = ["DEFAULT_CONCURRENCY", "EvalKeywords", "EvalOptions"]
