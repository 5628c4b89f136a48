"""The model-free judge: a vote on the final values the answers state.

No call, no cost, no position or brand bias. Each answer's final value is read as the evaluation's scorer
reads it (``judge.answers.answer_key``: "The answer is 2x." and "2x" state "2x"; "not 5" or "5 or 6" state
nothing), so a vote and a score agree on what an answer says. The value most answers state wins when at
least two state it and no other value is as common (self-consistency's plurality); the first answer that
states it is the fused answer. Otherwise (free text, all different, a tie) the vote says so and picks
nothing: ``Verdict.undecided``; the caller may defer to a judge model.

    verdict = vote([r1, r2, r3])
    verdict.choice, verdict.answer, verdict.undecided
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher

from ..core.record import Response
from .answers import _WORD, answer_key
from .verdict import Verdict


def similarity(a: str, b: str) -> float:
    """Word-level similarity in [0, 1]; cheap and good enough to find the consensus answer."""
    wa, wb = _WORD.findall(a.lower()), _WORD.findall(b.lower())
    if not wa and not wb:
        return 1.0
    return SequenceMatcher(None, wa, wb, autojunk=False).ratio()


def vote(responses: Sequence[Response], *, mode: str = "vote") -> Verdict:
    """Pick the answer whose final value most answers state, without calling a model; ``undecided`` when
    none does (see the module docstring)."""
    ok = [r for r in responses if r.ok and r.text.strip()]
    if not ok:
        return Verdict(model="vote", mode=mode, reasoning="No answer arrived, so there is nothing to vote on.")
    labels = {r.label or r.model: r.model for r in ok}
    if len(ok) == 1:
        only = ok[0]
        return Verdict(model="vote", mode=mode, choice=only.model, choice_label=only.label, answer=only.text,
                       labels=labels, reasoning="One answer arrived, so the vote takes it.")
    values = [answer_key(r.text) for r in ok]
    counted = Counter(v for v in values if v is not None)
    tally = ", ".join(f"{v!r}: {c}" for v, c in counted.most_common())
    if counted:
        (top, n), *rest = counted.most_common()
        if n >= 2 and not (rest and rest[0][1] == n):
            winner = ok[values.index(top)]
            kind = "majority" if n * 2 > len(ok) else "plurality, not a majority"
            return Verdict(
                model="vote", mode=mode, choice=winner.model, choice_label=winner.label,
                answer=winner.text, labels=labels, votes=(n, len(ok)),
                reasoning=f"Vote on the final answers ({tally}): {n} of {len(ok)} say {top!r} (a {kind}).",
            )
    unread = values.count(None)
    if not counted:
        why = f"no final value could be read from the {_answers(len(ok))} (free text, hedged or negated)"
    elif max(counted.values()) == 1:
        why = f"no two answers state the same final value ({tally})" + (f"; {unread} stated none" if unread else "")
    else:
        why = f"a tie ({tally})" + (f"; {unread} stated none" if unread else "")
    reason = f"No majority: {why}"
    return Verdict(
        model="vote", mode=mode, labels=labels, undecided=True, no_majority=reason,
        reasoning=f"{reason}. The vote picks no answer; a judge model (-j MODEL) can weigh them.",
    )


def _answers(n: int) -> str:
    return "answer" if n == 1 else f"{n} answers"


def agree(responses: Sequence[Response], threshold: float = 0.9) -> bool:
    """True when all ok answers state the same final value, or are near-identical text (debate stops)."""
    ok = [r for r in responses if r.ok and r.text.strip()]
    if len(ok) < 2:
        return True
    values = {answer_key(r.text) for r in ok}
    if len(values) == 1 and None not in values:
        return True
    return all(similarity(a.text, b.text) >= threshold for i, a in enumerate(ok) for b in ok[i + 1 :])
