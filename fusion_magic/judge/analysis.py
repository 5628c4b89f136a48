"""The judge's structured analysis of the answers: what they agree on, where they contradict each other,
what only some of them covered, what only one covered and what none covered; plus which members failed, taken
from their records (a failed member sent nothing to the judge, so the judge cannot know why it failed).

The judge writes the analysis inside the JSON object of its verdict and names answers by their anonymous
letters. ``read_analysis`` maps the letters back to the members and keeps only what fits: a missing key is
an empty list, a value of the wrong type or an unknown letter is dropped, and every list and string is
bounded. A judge whose analysis is unusable keeps its verdict (the caller adds a note).

    properties = {"reasoning": {...}, "analysis": analysis_schema(["A", "B"]), "winner": {...}}
    analysis = read_analysis(data.get("analysis"), {"A": "openai:gpt-4o", "B": "gemini:gemini-2.5-flash"})
    analysis.contradictions[0].stances   # {"openai:gpt-4o": "...", "gemini:gemini-2.5-flash": "..."}

OpenRouter's Fusion router returns an analysis of the same kind beside its answer; ``from_openrouter`` reads it
into the same type (members named by OpenRouter's model slugs), so both show the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..core.record import Response
from ..present.ledger_table import shorten
from ..present.wording import failure_detail
from .labels import read_label

# What is kept of a judge's analysis: enough for a table a reader takes in at a glance. A judge that writes
# more loses the rest, not its verdict.
MAX_ITEMS = 8
MAX_CHARS = 300
# The local judge's grammar must close within its token cap, and a small model fills whatever room it is
# given: its lists and strings are bounded in the schema itself (the worker's own bounds are looser).
LOCAL_MAX_ITEMS = 1
LOCAL_MAX_CHARS = 48
# A failed member's reason in the analysis: its kind and the first clauses of its message.
_REASON_CHARS = 80
_SEAT = re.compile(r" #\d+$")
_T = TypeVar("_T")

FIELDS = ("consensus", "contradictions", "partial_coverage", "unique", "blind_spots")

INSTRUCTIONS = (
    '"analysis" compares the answers: "consensus" lists the points they all make; "contradictions" lists '
    'each topic on which they disagree, as its "topic" and every answer\'s "stances" by letter (what that '
    'answer says on it, or "not addressed"); "partial_coverage" lists what several answers but not all covered, '
    'as the "point" and the "labels" (letters) of the answers that covered it; "unique" lists what only one '
    'answer covered, as its "label" (the letter) and the "point"; "blind_spots" lists what matters for the '
    "question that no answer covered. Each item is one short sentence; a list with nothing to say is empty."
)


@dataclass(frozen=True)
class Contradiction:
    """A topic the answers disagree on, and each member's stance on it (member name -> stance)."""

    topic: str
    stances: dict[str, str]


@dataclass(frozen=True)
class PartialCoverage:
    """A point some answers covered and others did not: the point, and the members that covered it."""

    point: str
    models: tuple[str, ...]


@dataclass(frozen=True)
class UniquePoint:
    """A point only one answer covered: the member that made it, and the point."""

    model: str
    point: str


@dataclass
class JudgeAnalysis:
    """What the judge found across the answers, with members named (model ids, ``#n`` for a repeated
    model's seat), never by the anonymous letters the judge saw.

    ``models`` are the judged members in pool order (the columns of a "who said what" table); ``failed``
    are the members that had no answer to judge, with the reason in short, from their own records.
    """

    consensus: list[str] = field(default_factory=list)
    contradictions: list[Contradiction] = field(default_factory=list)
    unique: list[UniquePoint] = field(default_factory=list)
    blind_spots: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    # Added after ``models``: the fields above keep their positions for callers that build one positionally.
    partial_coverage: list[PartialCoverage] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the judge found nothing to report (failed members aside)."""
        return not (self.consensus or self.contradictions or self.partial_coverage or self.unique
                    or self.blind_spots)


def member_name(r: Response) -> str:
    """How the analysis names a member: its model id, plus the seat (``#2``) when one model fills several
    seats (the pool labels those seats ``name #n``), so two seats of one model never share a column."""
    seat = _SEAT.search(r.label or "")
    return r.model + (seat.group(0) if seat else "")


def failures(records: Iterable[Response]) -> list[tuple[str, str]]:
    """The members that ended without an answer to judge, each with its reason in short (its record
    keeps the whole error). Calls still running (late members) are not failures."""
    return [(member_name(r), shorten(failure_detail(r), _REASON_CHARS) or r.status)
            for r in records if not r.ok and not r.state.is_running]


# --- the schema -----------------------------------------------------------------------------------


def verdict_schema(labels: Sequence[str], fields: Mapping[str, Any]) -> dict[str, Any]:
    """A mode's verdict schema: its reasoning, the structured analysis, then the mode's own ``fields``."""
    properties = {"reasoning": {"type": "string"}, "analysis": analysis_schema(labels), **fields}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def analysis_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The analysis object of the judge's JSON schema, for answers labelled ``labels``.

    Every property is required and no other is allowed (OpenAI's strict structured output asks for
    that), and there is no length keyword: Anthropic refuses ``maxLength``/``maxItems`` in a schema. The
    local judge gets the bounds through ``bounded_for_local``.
    """
    text: dict[str, Any] = {"type": "string"}
    letters = list(labels)
    stances = {"type": "object", "properties": {k: dict(text) for k in letters}, "required": letters,
               "additionalProperties": False}
    label = {"type": "string", "enum": letters}
    return _object({
        "consensus": {"type": "array", "items": dict(text)},
        "contradictions": {"type": "array", "items": _object({"topic": dict(text), "stances": stances})},
        "partial_coverage": {"type": "array", "items": _object({"point": dict(text),
                                                                "labels": {"type": "array", "items": dict(label)}})},
        "unique": {"type": "array", "items": _object({"label": {"type": "string", "enum": letters},
                                                      "point": dict(text)})},
        "blind_spots": {"type": "array", "items": dict(text)},
    })


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def bounded_for_local(schema: Mapping[str, Any], *, max_items: int = LOCAL_MAX_ITEMS,
                      max_chars: int = LOCAL_MAX_CHARS) -> dict[str, Any]:
    """A judge schema whose ``analysis`` has ``maxItems`` on its lists and ``maxLength`` on its free
    strings: the local judge's grammar then closes within its token cap whatever the model writes."""
    out = dict(schema)
    props = dict(out.get("properties", {}))
    if "analysis" in props:
        props["analysis"] = _bound(props["analysis"], max_items, max_chars)
        out["properties"] = props
    return out


def _bound(node: Any, max_items: int, max_chars: int) -> Any:
    if not isinstance(node, Mapping):
        return node
    out = dict(node)
    if isinstance(out.get("properties"), Mapping):
        out["properties"] = {k: _bound(v, max_items, max_chars) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), Mapping):
        out["items"] = _bound(out["items"], max_items, max_chars)
    if out.get("type") == "array":
        out["maxItems"] = min(int(out.get("maxItems", max_items)), max_items)
    if out.get("type") == "string" and "enum" not in out:
        out["maxLength"] = min(int(out.get("maxLength", max_chars)), max_chars)
    return out


# --- reading it -------------------------------------------------------------------------------------


def read_analysis(value: object, names: Mapping[str, str], models: Sequence[str] = ()) -> JudgeAnalysis | None:
    """The analysis from the judge's ``"analysis"`` value, or None when there is none to read (absent,
    not an object, or none of its lists is a list).

    ``names`` maps each anonymous letter to the member it stands for; ``models`` are the table's columns
    (default: the members of ``names`` in letter order). Strings are whitespace-collapsed and cut at
    ``MAX_CHARS``, lists at ``MAX_ITEMS``; an item of the wrong shape is dropped.
    """
    if not isinstance(value, Mapping) or not any(isinstance(value.get(k), list) for k in FIELDS):
        return None
    columns = list(models) or list(dict.fromkeys(names[k] for k in sorted(names)))
    return JudgeAnalysis(
        consensus=_texts(value.get("consensus")),
        contradictions=_bounded(_contradiction(item, names) for item in _items(value.get("contradictions"))),
        partial_coverage=_bounded(_partial(item, names, columns) for item in _items(value.get("partial_coverage"))),
        unique=_bounded(_unique(item, names) for item in _items(value.get("unique"))),
        blind_spots=_texts(value.get("blind_spots")),
        models=columns,
    )


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 1].rstrip() + "…"
    return text or None


def _texts(value: object) -> list[str]:
    return _bounded(_text(item) for item in _items(value))


def _bounded(items: Iterable[_T | None]) -> list[_T]:
    kept = [item for item in items if item is not None]
    return kept[:MAX_ITEMS]


def _contradiction(item: object, names: Mapping[str, str]) -> Contradiction | None:
    if not isinstance(item, Mapping):
        return None
    topic = _text(item.get("topic"))
    raw = item.get("stances")
    pairs: list[tuple[object, object]] = []
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):  # [{"label": "A", "stance": "..."}]: some judges write it so
        pairs = [(s.get("label"), s.get("stance")) for s in raw if isinstance(s, Mapping)]
    stances: dict[str, str] = {}
    for key, stance in pairs:
        letter = read_label(key, names)
        text = _text(stance)
        if letter is not None and text is not None:
            stances.setdefault(names[letter], text)
    if topic is None or not stances:
        return None
    return Contradiction(topic, stances)


def _partial(item: object, names: Mapping[str, str], columns: Sequence[str]) -> PartialCoverage | None:
    if not isinstance(item, Mapping):
        return None
    point = _text(item.get("point"))
    raw = item.get("labels")
    letters = [read_label(key, names) for key in (raw if isinstance(raw, list) else [])]
    covered = dict.fromkeys(names[letter] for letter in letters if letter is not None)
    if point is None or not covered:
        return None
    # In the table's column order, not the order of this request's shuffled letters: the same judgement reads
    # the same whatever order the answers were shown in.
    at = {m: i for i, m in enumerate(columns)}
    return PartialCoverage(point, tuple(sorted(covered, key=lambda m: at.get(m, len(at)))))


def _unique(item: object, names: Mapping[str, str]) -> UniquePoint | None:
    if not isinstance(item, Mapping):
        return None
    letter = read_label(item.get("label"), names)
    point = _text(item.get("point"))
    if letter is None or point is None:
        return None
    return UniquePoint(names[letter], point)


# --- OpenRouter's Fusion analysis ------------------------------------------------------------------------------


def from_openrouter(result: object) -> JudgeAnalysis | None:
    """OpenRouter's Fusion result (the ``openrouter:fusion`` item as sent: its ``analysis`` with ``consensus``,
    ``contradictions``, ``partial_coverage``, ``unique_insights``, ``blind_spots``, plus ``responses`` and
    ``failed_models``) as our analysis, members named by OpenRouter's model slugs; None when it carries no analysis
    (the analyst failed, or the run did: ``status`` "error").

    Read as tolerantly and bounded as our judge's: a wrong-shaped item is dropped. The columns are the panel
    models that answered, then those that failed (each with its error, shortened, in ``failed``).

        from_openrouter(record.provider_analysis).partial_coverage[0].models   # ("openai/gpt-5",)
    """
    if not isinstance(result, Mapping):
        return None
    value = result.get("analysis")
    if not isinstance(value, Mapping) or not any(isinstance(value.get(k), list) for k in _OPENROUTER_FIELDS):
        return None
    failed = [(model, shorten(_text(f.get("error")) or "failed", _REASON_CHARS))
              for f in _items(result.get("failed_models")) if isinstance(f, Mapping)
              for model in [_text(f.get("model"))] if model is not None]
    answered = [model for r in _items(result.get("responses")) if isinstance(r, Mapping)
                for model in [_text(r.get("model"))] if model is not None]
    return JudgeAnalysis(
        consensus=_texts(value.get("consensus")),
        contradictions=_bounded(_or_contradiction(item) for item in _items(value.get("contradictions"))),
        partial_coverage=_bounded(_or_partial(item) for item in _items(value.get("partial_coverage"))),
        unique=_bounded(_or_unique(item) for item in _items(value.get("unique_insights"))),
        blind_spots=_texts(value.get("blind_spots")),
        failed=failed[:MAX_ITEMS],
        models=list(dict.fromkeys([*answered, *(m for m, _ in failed)]))[:MAX_ITEMS],
    )


# FusionAnalysisResult's lists (OpenRouter's OpenAPI schema, all required there).
_OPENROUTER_FIELDS = ("consensus", "contradictions", "partial_coverage", "unique_insights", "blind_spots")


def _or_contradiction(item: object) -> Contradiction | None:
    if not isinstance(item, Mapping):
        return None
    topic = _text(item.get("topic"))
    stances: dict[str, str] = {}
    for s in _items(item.get("stances")):
        if isinstance(s, Mapping):
            model, stance = _text(s.get("model")), _text(s.get("stance"))
            if model is not None and stance is not None:
                stances.setdefault(model, stance)
    if topic is None or not stances:
        return None
    return Contradiction(topic, dict(list(stances.items())[:MAX_ITEMS]))


def _or_partial(item: object) -> PartialCoverage | None:
    if not isinstance(item, Mapping):
        return None
    point = _text(item.get("point"))
    models = tuple(dict.fromkeys(m for m in (_text(x) for x in _items(item.get("models"))) if m is not None))
    if point is None or not models:
        return None
    return PartialCoverage(point, models[:MAX_ITEMS])


def _or_unique(item: object) -> UniquePoint | None:
    if not isinstance(item, Mapping):
        return None
    model, insight = _text(item.get("model")), _text(item.get("insight"))
    if model is None or insight is None:
        return None
    return UniquePoint(model, insight)


__all__ = [
    "FIELDS",
    "INSTRUCTIONS",
    "Contradiction",
    "JudgeAnalysis",
    "PartialCoverage",
    "UniquePoint",
    "analysis_schema",
    "bounded_for_local",
    "failures",
    "from_openrouter",
    "member_name",
    "read_analysis",
    "verdict_schema",
]
