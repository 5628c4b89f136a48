"""The strategies an evaluation compares, by name, and how each answers one question.

    single            each pool member alone (one strategy per distinct model)
    single:<model>    that model alone
    self:<k>          k samples of the pool's first model, majority vote (self-consistency); ``self`` is self:5
    vote              the whole pool, majority vote (no judge call)
    best-of           the whole pool, the judge picks one answer
    merge             the whole pool, the judge writes one answer from them
    debate            the whole pool revises over rounds, then the judge writes the answer
    openrouter-fusion           OpenRouter's own server-side fusion (``openrouter/fusion``, its default Quality
                                panel and analyst), once per question: the baseline ours is measured against
    openrouter-fusion:<preset>  the same with one of OpenRouter's presets: high, budget or fast (its
                                ``general-high``, ``general-budget``, ``general-fast``; either spelling);
                                ``quality`` is the default

A vote (``vote``, ``self:<k>``) with no majority defers to the evaluation's judge when it is a model, else it
abstains (scored wrong, with the vote's reason).

``openrouter-fusion`` is one call, like ``single``: to ``openrouter:openrouter/fusion`` with ``tool_choice``
"required" (else the router's model may answer without convening the panel) and, for a preset, the ``fusion``
plugin naming it (docs/openrouter-fusion.md). It needs an OpenRouter key like any OpenRouter model, and its row's
note says how the panel went; the whole analysis OpenRouter returned stays on the call's ``provider_analysis``.

Everything else is a fused run, planned once per strategy with ``fusion.engine.plan_fusion`` (so every
model id and key is checked before any call) and run per question with ``run_fusion``: the same requests,
judge and vote a ``%%fuse`` cell sends.

    strategies, warnings = plan_strategies(["single", "self:5", "best-of"], pool, "vote", settings, "2+2?")
    attempt = await answer(strategies[0], "What is 2+2?", repeat=0, ctx=ctx)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..calls.call import CallContext, Target, prepare, run_call
from ..calls.requests import Context
from ..calls.settings import Settings
from ..core.attachment import Attachment
from ..core.errors import ConfigError
from ..core.names import short_name
from ..core.record import Response
from ..fusion.engine import FusionPlan, new_result, plan_fusion, run_fusion
from ..fusion.options import FuseOptions
from ..fusion.pool import Member
from ..fusion.requests import member_request
from ..judge.analysis import from_openrouter
from ..present.ledger_table import shorten
from ..present.wording import failure_detail

DEFAULT_SELF_K = 5
# Repeat r of a strategy shifts every seat's seed by r * SEED_STRIDE: each repeat is its own request (a
# fresh sample, and its own cache entry) while repeat 0 sends exactly what a %%fuse cell would.
SEED_STRIDE = 1000
FUSED = ("vote", "best-of", "merge", "debate")
OPENROUTER_FUSION = "openrouter-fusion"
# OpenRouter's Fusion router, asked like any OpenRouter model (so the key check and the call path are the usual ones).
OPENROUTER_FUSION_MODEL = "openrouter:openrouter/fusion"
# Our preset names -> OpenRouter's preset slug (the fusion plugin's ``preset``, an enum in its OpenAPI schema). None:
# no plugin, OpenRouter's default panel (its docs: the Quality preset of the Fusion lab).
FUSION_PRESETS: dict[str, str | None] = {
    "quality": None,
    "high": "general-high",
    "budget": "general-budget",
    "fast": "general-fast",
}
NAMES_HELP = ("single, single:<model>, self:<k>, vote, best-of, merge, debate, openrouter-fusion or "
              f"openrouter-fusion:<preset> ({', '.join(FUSION_PRESETS)})")


@dataclass(frozen=True)
class Strategy:
    """One planned strategy: its ``name`` (a row label), the run's ``options``, and either the ``target`` of
    a single model or the ``fusion`` plan (its prompt is replaced per question)."""

    name: str
    kind: Literal["single", "fused", "provider-fused"]
    options: FuseOptions
    settings: Settings
    target: Target | None = None
    fusion: FusionPlan | None = None
    # Vendor fields every request of a one-call strategy carries (``ChatRequest.extra``): OpenRouter's fusion
    # plugin and tool_choice for ``openrouter-fusion``.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def local_only(self) -> bool:
        """Every answering model is the local one (the judge aside)."""
        if self.target is not None:
            return self.target.is_local
        assert self.fusion is not None
        return all(m.target.is_local for m in self.fusion.members)

    @property
    def targets(self) -> list[Target]:
        """The resolved models this strategy calls, the judge included."""
        if self.target is not None:
            return [self.target]
        assert self.fusion is not None
        judge = [] if self.fusion.judge is None else [self.fusion.judge]
        return [*(m.target for m in self.fusion.members), *judge]

    @property
    def models(self) -> list[str]:
        """The model ids this strategy calls (the judge included)."""
        if self.target is not None:
            return [self.target.model_id]
        assert self.fusion is not None
        judge = [] if self.fusion.judge is None else [self.fusion.judge_id]
        tiebreak = [] if self.fusion.tiebreak is None else [self.fusion.tiebreak.model_id]
        return [*dict.fromkeys(self.fusion.pool), *judge, *tiebreak]


@dataclass
class Attempt:
    """A strategy's answer to one question: the text (empty when nothing usable arrived), every call it
    made, and why it has no answer (``error``: it failed; ``abstained``: a vote found no majority, its reason)
    or what went wrong on the way (``note``)."""

    answer: str
    calls: list[Response] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    abstained: str | None = None


def expand_names(names: Sequence[str], pool: Sequence[str]) -> list[str]:
    """The strategy names, ``single`` expanded to one per distinct pool model, ``self`` to ``self:5``, an
    ``openrouter-fusion`` preset in its short spelling (``quality`` the bare name), duplicates dropped (first
    kept)."""
    out: list[str] = []
    for raw in names:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"a strategy name must be a non-empty string ({NAMES_HELP}), not {raw!r}")
        name = raw.strip()
        if name == "single":
            out.extend(f"single:{m}" for m in dict.fromkeys(pool))
        elif name == "self":
            out.append(f"self:{DEFAULT_SELF_K}")
        elif name.startswith(f"{OPENROUTER_FUSION}:"):
            out.append(_fusion_name(name.partition(":")[2]))
        else:
            out.append(name)
    return list(dict.fromkeys(out))


def plan_strategies(names: Sequence[str], pool: Sequence[str], judge: str, settings: Settings,
                    probe: str, *, seed: int | None = None) -> tuple[list[Strategy], list[str]]:
    """Plan every strategy (``ConfigError`` on a bad name, model id, key or option) and collect their
    warnings. ``probe`` is any question's prompt: plans do not depend on it, it only has to be valid.
    ``seed`` goes into every strategy's options (``FuseOptions.seed``)."""
    if not pool:
        raise ConfigError("the pool is empty: pass pool=[...] (model ids)")
    base = FuseOptions.defaults(settings).with_(pool=tuple(pool), judge=judge, seed=seed)
    strategies: list[Strategy] = []
    warnings: list[str] = []
    for name in expand_names(names, pool):
        strategy = _plan_one(name, base, settings, probe)
        strategies.append(strategy)
        if strategy.fusion is not None:
            warnings.extend(w for w in strategy.fusion.warnings if w not in warnings)
        if strategy.kind == "fused" and strategy.options.mode in ("merge", "debate") and judge == "vote":
            warnings.append(f"{name} with the vote judge: the final answers are voted on, not merged.")
    if not strategies:
        raise ConfigError(f"no strategy given: use {NAMES_HELP}")
    return strategies, warnings


def _plan_one(name: str, base: FuseOptions, settings: Settings, probe: str) -> Strategy:
    kind, _, arg = name.partition(":")
    if kind == OPENROUTER_FUSION:
        return _plan_openrouter_fusion(name, arg, base, settings)
    if kind == "single" and arg:
        options = base.with_(pool=(arg,))
        target = prepare(arg, options.run_settings(settings))
        return Strategy(name, "single", options, options.run_settings(settings), target=target)
    if kind == "self":
        k = _self_k(arg, name)
        options = base.with_(pool=base.pool[:1], self_n=k, judge="vote", mode="best-of")
    elif name == "vote":
        if len(base.pool) < 2:
            raise ConfigError("the vote strategy needs a pool of at least two (or use self:<k> for one model)")
        options = base.with_(judge="vote", mode="best-of")
    elif name in FUSED:
        options = base.with_(mode=name)
    else:
        raise ConfigError(f"unknown strategy {name!r}: use {NAMES_HELP}")
    plan = plan_fusion(probe, settings, options)
    if options.judge == "vote" and base.judge not in ("", "vote"):
        # The evaluation has a judge model: a vote that finds no majority defers to it rather than pick none.
        plan = replace(plan, tiebreak=prepare(base.judge, plan.settings))
    return Strategy(name, "fused", options, plan.settings, fusion=plan)


def _fusion_name(preset: str) -> str:
    """``openrouter-fusion:<preset>`` in its short spelling: ``general-budget`` -> ``budget``, ``quality`` -> the
    bare name. An unknown preset is kept as written (planning refuses it)."""
    short = preset.strip().lower().removeprefix("general-")
    if short not in FUSION_PRESETS:
        return f"{OPENROUTER_FUSION}:{preset.strip()}"
    return OPENROUTER_FUSION if FUSION_PRESETS[short] is None else f"{OPENROUTER_FUSION}:{short}"


def fusion_extra(preset: str | None) -> dict[str, Any]:
    """The request fields that ask OpenRouter's Fusion router for a fused answer on every question: ``tool_choice``
    "required" (its docs: the alias's model otherwise decides whether the task warrants the panel) and, for a
    preset, the ``fusion`` plugin naming its slug (``general-budget``)."""
    extra: dict[str, Any] = {"tool_choice": "required"}
    if preset is not None:
        extra["plugins"] = [{"id": "fusion", "preset": preset}]
    return extra


def _plan_openrouter_fusion(name: str, arg: str, base: FuseOptions, settings: Settings) -> Strategy:
    short = arg.strip().lower().removeprefix("general-") if arg else "quality"
    if short not in FUSION_PRESETS:
        raise ConfigError(f"{name!r}: unknown OpenRouter Fusion preset {arg!r}; use {', '.join(FUSION_PRESETS)} "
                          f"(as in {OPENROUTER_FUSION}:budget)")
    options = base.with_(pool=(OPENROUTER_FUSION_MODEL,))
    run_settings = options.run_settings(settings)
    target = prepare(OPENROUTER_FUSION_MODEL, run_settings)  # a missing OpenRouter key is refused here
    return Strategy(name, "provider-fused", options, run_settings, target=target,
                    extra=fusion_extra(FUSION_PRESETS[short]))


def _self_k(arg: str, name: str) -> int:
    try:
        k = int(arg)
    except ValueError:
        raise ConfigError(f"{name!r}: self needs a whole number of samples, as in self:5") from None
    if k < 2:
        raise ConfigError(f"{name!r}: self-consistency needs at least 2 samples")
    return k


def seed_for(seed: int | None, repeat: int) -> int | None:
    """The seat's seed in repeat ``repeat`` (unchanged in repeat 0; see ``SEED_STRIDE``)."""
    if repeat == 0:
        return seed
    return (seed or 0) + repeat * SEED_STRIDE


async def answer(strategy: Strategy, prompt: str, *, repeat: int, ctx: CallContext,
                 attachments: tuple[Attachment, ...] = ()) -> Attempt:
    """Ask ``strategy`` one question (``prompt``, with the question's ``attachments``) in repeat ``repeat``.
    Provider failures become the attempt's ``error``; only a setup error (a cache replay miss) or a cancellation
    raises."""
    # A context of its own: run_fusion adds and removes a listener and may leave late members in
    # ``pending``; concurrent questions must not see each other's. Client, cache and call counter are shared.
    own = CallContext(client=ctx.client, settings=strategy.settings, listeners=list(ctx.listeners),
                      cache=ctx.cache, counter=ctx.counter, batch=ctx.batch)
    if strategy.target is not None:
        return await _single(strategy, strategy.target, prompt, repeat, own, attachments)
    assert strategy.fusion is not None
    return await _fused(strategy.fusion, prompt, repeat, own, attachments)


async def _single(strategy: Strategy, target: Target, prompt: str, repeat: int, ctx: CallContext,
                  attachments: tuple[Attachment, ...] = ()) -> Attempt:
    member = Member(target, short_name(target.model_id), seed=seed_for(strategy.options.seed, repeat),
                    temperature=strategy.options.temperature)
    request = member_request(member, prompt.strip(), strategy.options, context=Context(attachments=attachments))
    if strategy.extra:
        request = replace(request, extra=strategy.extra)
    r = await run_call(target, request, ctx=ctx, label=member.label, timeout=strategy.options.timeout)
    note = fusion_note(r) if strategy.kind == "provider-fused" else None
    if r.ok and r.text.strip():
        return Attempt(r.text, [r], note=note)
    return Attempt("", [r], error=f"no answer ({failure_detail(r)})" if not r.ok else "an empty answer", note=note)


def fusion_note(r: Response) -> str | None:
    """A row's note on how OpenRouter's Fusion run went, from what it returned (``provider_analysis``):
    "OpenRouter Fusion: 3 panel models, 1 failed". None for a call that failed before any answer."""
    data = r.provider_analysis
    if data is None:
        if r.cost_source.startswith("cache"):
            return "OpenRouter Fusion: replayed from the cache, which keeps no analysis"
        return "OpenRouter Fusion: no analysis returned" if r.ok else None
    if data.get("failure_reason") or data.get("status") in ("error", "incomplete"):
        # A hard failure: the tool result says "error", the output item "incomplete", both with a typed reason.
        reason = data.get("failure_reason") or data.get("error") or "no reason given"
        return f"OpenRouter Fusion failed: {shorten(str(reason), 80)}"
    responses = data.get("responses")
    failed = data.get("failed_models")
    answered = len(responses) if isinstance(responses, list) else 0
    lost = len(failed) if isinstance(failed, list) else 0
    panel = answered + lost
    words = f"OpenRouter Fusion: {panel} panel model{'' if panel == 1 else 's'}, {lost} failed"
    if from_openrouter(data) is None:
        words += "; no analysis (its analyst failed)"
    return words


async def _fused(template: FusionPlan, prompt: str, repeat: int, ctx: CallContext,
                 attachments: tuple[Attachment, ...] = ()) -> Attempt:
    members = tuple(replace(m, seed=seed_for(m.seed, repeat)) for m in template.members)
    options = replace(template.options, attach=attachments) if attachments else template.options
    plan = replace(template, prompt=prompt.strip(), members=members, options=options)
    result = new_result(plan)
    # Repeat 0 shuffles the judge's answers as a %%fuse cell does. A later repeat shuffles them its own
    # way (position bias averages out over repeats), seeded, so a resumed run sends the same judge request;
    # another --seed, another order. Without one the key is as it always was: recorded runs still replay.
    seeded = "" if plan.options.seed is None else f"seed {plan.options.seed}\0"
    rng = None if repeat == 0 else random.Random(f"{seeded}repeat {repeat}\0{plan.prompt}\0{plan.options.mode}")
    await run_fusion(plan, ctx, rng=rng, result=result)
    calls = result.calls
    verdict = result.verdict
    note = "the judge failed: the answers were voted on" if verdict is not None and verdict.fallback else None
    if result.answer.strip():
        return Attempt(result.answer, calls, note=note)
    if verdict is not None and verdict.undecided:
        # An abstention, not a failure: scored wrong (leaving it out would flatter), with the vote's reason.
        return Attempt("", calls, note=verdict.reasoning, abstained=verdict.no_majority or "no majority")
    failed = next((r for r in calls if not r.ok), None)
    why = f"no answer ({failure_detail(failed)})" if failed is not None else "no answer arrived"
    return Attempt("", calls, error=why, note=note)


__all__ = ["DEFAULT_SELF_K", "FUSION_PRESETS", "OPENROUTER_FUSION", "OPENROUTER_FUSION_MODEL", "SEED_STRIDE", "Attempt",
           "Strategy", "answer", "expand_names", "fusion_extra", "fusion_note", "plan_strategies", "seed_for"]
