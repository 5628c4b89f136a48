"""What a judge decides: the ``Verdict`` on a set of answers, and the ``Judgement`` that carries it with the judge's
own calls. Plain data: every job kind that judges answers (a fused run, answers about a video, an evaluation's
strategies) holds one.

    judgement = await judge_answers(question, answers, settings, ctx, mode="best-of", judge="vote")
    judgement.verdict.choice, judgement.answer, judgement.judge_responses
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.record import Response

if TYPE_CHECKING:
    from .analysis import JudgeAnalysis


@dataclass
class Verdict:
    """What the judge decided.

    ``choice`` is the winning model id (best-of and vote), ``choice_label`` the anonymous label it had
    ("Answer B"), ``answer`` the fused text, ``labels`` the permutation used: label -> model id.
    ``best_label`` is the answer a merging judge ranked best ("Answer C"), when it said.

    ``analysis`` is the judge's structured comparison of the answers (None for the vote, a fallback, or a
    judge that gave none: then ``notes`` says so, or for a fallback its ``reasoning``). With ``--orders N``
    the judge ran on N orderings of the answers: ``orders`` holds the member each ordering ranked best (None
    where one gave no usable pick) and ``agreement`` (agreeing, usable) how many of the usable ones agree with
    the verdict's pick; the verdict itself (``labels``, ``raw``, ``analysis``) is one ordering's, which ``notes`` names.

    ``undecided``: the vote found no value that most answers state, and picked no answer (``reasoning`` says
    so at length); a run with a tiebreak judge then asks it. ``no_majority`` is the reason in short, as data
    ("No majority: a tie ('42': 2, '41': 2)"; None when the vote picked one), for whoever says it again.
    ``votes`` (stating the chosen value, voting): how many answers the vote's pick stands on, when a vote chose.
    """

    model: str
    mode: str
    reasoning: str = ""
    answer: str = ""
    choice: str | None = None
    choice_label: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    raw: str = ""
    fallback: bool = False
    notes: list[str] = field(default_factory=list)
    best_label: str | None = None
    analysis: JudgeAnalysis | None = None
    orders: list[str | None] = field(default_factory=list)
    agreement: tuple[int, int] | None = None
    undecided: bool = False
    no_majority: str | None = None
    votes: tuple[int, int] | None = None

    @property
    def position_consistency(self) -> float | None:
        """The share of the orderings whose pick agrees with the verdict's, or None when fewer than two
        orderings gave a usable pick (nothing was measured)."""
        if self.agreement is None or self.agreement[1] < 2:
            return None
        agreeing, usable = self.agreement
        return agreeing / usable


@dataclass
class Judgement:
    """A verdict and the calls that reached it (none for the vote), as ``judge_answers`` returns it.

        j = await judge_answers("What happens?", records, settings, ctx, mode="best-of", judge="vote")
        j.answer, j.verdict.reasoning
    """

    verdict: Verdict
    judge_responses: list[Response] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def answer(self) -> str:
        """The fused answer ("" when the judge gave none, or an undecided vote picked none)."""
        return self.verdict.answer


__all__ = ["Judgement", "Verdict"]
