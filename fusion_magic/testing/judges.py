"""Scripted judges for the emulator: a judge model that reads the anonymous answers in its request and answers
with the verdict JSON the mode asked for, as a real judge would; and a pool member that revises in a debate.

    emu.script("gpt-4.1", ModelScript(reply=content_judge("1/6")))
    emu.script("gemini-2.5-flash", ModelScript(reply=debater("About 95%.", "I was wrong: 1/6.")))
    fusion_magic.fuse("...", pool=[...], judge="openai:gpt-4.1")   # picks the answer that says "1/6"

fusion_magic shows its judge the answers as ``### Answer B (12 tokens)`` blocks (in a debate, ``### Answer B,
first round (...)`` then ``..., final round (...)``), shuffled afresh for every call, and asks for a JSON
object whose fields the request's schema lists. :func:`content_judge` finds the answer by what it says, never
by where it stands, so it picks the same answer whatever order it is shown (under ``--orders N`` its position
consistency is 1.0), and writes an analysis that names answers by the letters of this request. It works on the
request bodies of every chat family fusion_magic sends judges to: OpenAI-style ``messages`` (OpenAI,
OpenRouter, local servers), Anthropic's ``system`` + ``messages`` and Gemini's ``contents``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .chat import text_of
from .script import SCRIPTED

# A shown answer: its label and its text, up to the next block or the task. In a debate the final round's
# block comes after the first round's, so reading them in order keeps the final round's text. Past 26 answers
# the labels run on as AA, AB, ...; written out here rather than imported from fusion_magic.judge, so this
# judge reads the request as a real one would and a wrong label in it shows up as a wrong pick.
_SHOWN = re.compile(
    r"^### Answer ([A-Z]+)(?:, (?:first|final) round)? \(\d+ tokens\)\n(.*?)(?=\n\n### Answer |\n\n## Task)",
    re.S | re.M)
_ANSWERS = "## Answers\n"
# What a judge answers when its request carries no schema: every field any judged mode reads.
_ALL_FIELDS = ("reasoning", "analysis", "winner", "best", "answer")
NOT_ADDRESSED = "not addressed"


def request_text(body: Mapping[str, Any]) -> str:
    """The judge's task in a request body: the last user turn that shows answers, in any family's shape
    (``messages`` with string or block content, or Gemini's ``contents`` with ``parts``); "" if none."""
    turns: list[tuple[str, str]] = []
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            turns.append((str(message.get("role", "")), text_of(message.get("content"))))
    for content in body.get("contents") or []:
        if isinstance(content, Mapping):
            turns.append((str(content.get("role", "user")), text_of(content.get("parts"))))
    return next((text for role, text in reversed(turns) if role == "user" and _ANSWERS in text), "")


def shown_answers(body: Mapping[str, Any]) -> dict[str, str]:
    """The answers a judge request shows, by letter, in the order shown (a debate's final round over its
    first). Empty when the request is no judge request."""
    return dict(_SHOWN.findall(request_text(body)))


def requested_fields(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The top-level fields the request's JSON schema asks for (OpenAI ``response_format``, Anthropic
    ``output_config``, Gemini ``generationConfig.responseJsonSchema``); every field a mode reads when the
    request carries no schema."""
    schema: Any = None
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        schema = (response_format.get("json_schema") or {}).get("schema")
    output_config = body.get("output_config")
    if schema is None and isinstance(output_config, Mapping):
        schema = (output_config.get("format") or {}).get("schema")
    config = body.get("generationConfig")
    if schema is None and isinstance(config, Mapping):
        schema = config.get("responseJsonSchema")
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return tuple(properties) if isinstance(properties, Mapping) and properties else _ALL_FIELDS


def content_judge(
    prefer: str,
    *,
    analysis: bool = True,
    reasoning: str | Callable[[str, Mapping[str, str]], str] | None = None,
    merged: str | None = None,
    consensus: Sequence[str] = (),
    contradictions: Mapping[str, Mapping[str, str]] | None = None,
    unique: Mapping[str, str] | None = None,
    blind_spots: Sequence[str] = (),
) -> Callable[[Mapping[str, Any]], str]:
    """A judge that picks the answer containing ``prefer`` (case-insensitive), wherever it is shown.

    For ``ModelScript(reply=...)``. The reply is the JSON object with exactly the fields the request's
    schema asks for: best-of's ``reasoning``, ``analysis``, ``winner``; merge's and debate's ``reasoning``,
    ``analysis``, ``best``, ``answer``. When several answers contain ``prefer`` the pick goes by their text,
    not their position (the one that says it most often, then the shortest, then the first in alphabetical
    order), so a run judged in several orders always picks the same answer. When none does, the callable
    raises ``ValueError``: the emulator answers HTTP 500 and fusion_magic falls back to the vote, as it does
    when a real judge fails.

    The analysis names answers by the letters of each request. Its items are given by what the answers
    say, not by letter:

    - ``consensus`` and ``blind_spots``: sentences, as given;
    - ``contradictions``: topic -> {needle: stance}: every answer containing a needle takes that stance
      (the first needle it contains), the others are "not addressed";
    - ``unique``: {needle: point}: the point, credited to the one answer containing the needle (skipped
      when several or none do).

    Left out (None), ``contradictions`` says which answers state ``prefer`` and which do not (when some do
    not), and ``unique`` credits the preferred answer when it alone states it. ``analysis=False`` leaves
    the analysis out (fusion_magic then notes the judge gave none). ``reasoning`` is a text, where
    ``{winner}`` becomes the picked letter, or a callable ``(winner, shown) -> text`` given the picked letter
    and the shown answers by letter (to write reasoning that fits whichever answers arrived). ``merged`` is
    the synthesis for merge and debate (default: the picked answer's text). Left out, ``reasoning`` says
    which answer states ``prefer``, starting with ``script.SCRIPTED`` so no reader takes it for a model's words.
    """
    needle = prefer.casefold()
    if not needle.strip():
        raise ValueError("content_judge needs a non-empty text to prefer")

    def reply(body: Mapping[str, Any]) -> str:
        answers = shown_answers(body)
        if not answers:
            raise ValueError("the request shows no answers to judge")
        matching = [label for label, text in answers.items() if needle in text.casefold()]
        if not matching:
            raise ValueError(f"no answer says {prefer!r}")
        pick = min(matching, key=lambda label: (-answers[label].casefold().count(needle), len(answers[label]),
                                                answers[label]))
        others = [label for label in answers if label not in matching]
        if reasoning is None:
            why = _default_reasoning(prefer, pick, others)
        else:
            why = reasoning(pick, answers) if callable(reasoning) else reasoning.replace("{winner}", pick)
        values: dict[str, Any] = {
            "reasoning": why,
            "winner": pick,
            "best": pick,
            "answer": merged if merged is not None else answers[pick].strip(),
        }
        if analysis:
            values["analysis"] = {
                "consensus": list(consensus),
                "contradictions": _contradictions(answers, prefer, matching, contradictions),
                "partial_coverage": [],  # the schema requires every field; a scripted judge sees no partial points
                "unique": _unique(answers, prefer, matching, unique),
                "blind_spots": list(blind_spots),
            }
        return json.dumps({name: values[name] for name in requested_fields(body) if name in values})

    return reply


def first_answer_judge(
    *,
    reasoning: str | None = None,
    merged: str | None = None,
    analysis: bool = True,
    consensus: Sequence[str] = (),
    contradictions: Mapping[str, Mapping[str, str]] | None = None,
    unique: Mapping[str, str] | None = None,
    blind_spots: Sequence[str] = (),
) -> Callable[[Mapping[str, Any]], str]:
    """A judge with a pure position bias: it picks whichever answer it is shown first, whatever it says.

    The bias LLM judges are known for, at its extreme, to show what ``--orders N`` measures: with no more orders
    than answers, each order puts another answer first, so this judge's pick moves with the order and its
    position consistency is 1/N (the least there is), where :func:`content_judge`'s is 1.0. For
    ``ModelScript(reply=...)``; the reply has exactly the fields the request's schema asks for, as
    :func:`content_judge`'s does.

    ``reasoning`` is a text where ``{winner}`` becomes the picked letter; left out, it says the pick is the
    first answer shown, starting with ``script.SCRIPTED``, so no reader takes it for a model's words.
    ``merged`` is the synthesis for merge and debate (default: the first answer's text). The analysis items
    are given by what the answers say, as :func:`content_judge`'s are (``contradictions``: topic -> {needle:
    stance}; ``unique``: {needle: point}), so the analysis is the same in every order while the pick moves;
    left out, they are empty. ``analysis=False`` leaves the analysis out.
    """

    def reply(body: Mapping[str, Any]) -> str:
        answers = shown_answers(body)
        if not answers:
            raise ValueError("the request shows no answers to judge")
        first = next(iter(answers))
        why = (f"{SCRIPTED} Answer {first} is shown first, and this judge always picks the first answer."
               if reasoning is None else reasoning.replace("{winner}", first))
        values: dict[str, Any] = {
            "reasoning": why,
            "winner": first,
            "best": first,
            "answer": merged if merged is not None else answers[first].strip(),
        }
        if analysis:
            values["analysis"] = {
                "consensus": list(consensus),
                "contradictions": [] if contradictions is None else _contradictions(answers, "", [], contradictions),
                "partial_coverage": [],
                "unique": [] if unique is None else _unique(answers, "", [], unique),
                "blind_spots": list(blind_spots),
            }
        return json.dumps({name: values[name] for name in requested_fields(body) if name in values})

    return reply


def by_question(answers: Mapping[str, str | Callable[[Mapping[str, Any]], str]],
                otherwise: str = "I would need more context to answer that.",
                ) -> Callable[[Mapping[str, Any]], str]:
    """A pool member that answers each question its own way: ``answers[key]`` for the first ``key`` found in
    the request's *first* user turn (the question, case-insensitive), else ``otherwise``.

    Unlike :func:`by_prompt`, which reads the last user turn (a conversation's follow-up), it reads the
    question a run was asked, so a debate's revision request (whose last turn shows the other answers) is
    still answered for its question. A value is a text, or a reply callable given the request body (a
    :func:`debater`, to revise in a debate), so one scripted model can serve every question of a notebook:

        emu.script("gpt-4o", ModelScript(reply=by_question({
            "cranberry": "Final answer: 2",
            "feathers": debater("Steel is heavier.", "They weigh the same: one kilogram each."),
        })))
    """

    def reply(body: Mapping[str, Any]) -> str:
        turns = [*(body.get("messages") or []), *(body.get("contents") or [])]
        users = [t for t in turns if isinstance(t, Mapping) and t.get("role", "user") == "user"]
        asked = text_of(users[0].get("content", users[0].get("parts"))).casefold() if users else ""
        found = next((value for key, value in answers.items() if key.casefold() in asked), otherwise)
        return found(body) if callable(found) else found

    return reply


def debater(first: str, revised: str) -> Callable[[Mapping[str, Any]], str]:
    """A pool member for debates: it answers ``first``, and ``revised`` once it is asked to revise (the
    request carries its own earlier answer as an assistant turn, ``model`` on Gemini, then the others').

    For ``ModelScript(reply=...)``: unlike ``ModelScript(replies=[...])``, which answers by how many
    requests came before, it answers by what the request holds, so best-of and merge runs before a debate
    still get ``first``.
    """

    def reply(body: Mapping[str, Any]) -> str:
        turns = [*(body.get("messages") or []), *(body.get("contents") or [])]
        revising = any(isinstance(t, Mapping) and t.get("role") in ("assistant", "model") for t in turns)
        return revised if revising else first

    return reply


def by_prompt(answers: Mapping[str, str], otherwise: str = "I would need more context to answer that.",
              ) -> Callable[[Mapping[str, Any]], str]:
    """A pool member for conversations: it answers ``answers[key]`` for the first ``key`` found in the request's
    last user turn (case-insensitive), else ``otherwise``, so each follow-up of a thread gets its own answer
    whatever came before.

        emu.script("gpt-4o", ModelScript(reply=by_prompt({"chart": "A loss curve.", "why": "Warm-up ended."})))
    """

    def reply(body: Mapping[str, Any]) -> str:
        turns = [*(body.get("messages") or []), *(body.get("contents") or [])]
        users = [t for t in turns if isinstance(t, Mapping) and t.get("role", "user") == "user"]
        last = text_of(users[-1].get("content", users[-1].get("parts"))).lower() if users else ""
        return next((text for key, text in answers.items() if key.lower() in last), otherwise)

    return reply


def _default_reasoning(prefer: str, pick: str, others: Sequence[str]) -> str:
    if not others:
        return f"{SCRIPTED} Answer {pick} states {prefer!r} most directly."
    return (f"{SCRIPTED} Answer {pick} states {prefer!r}; {_letters(others)} "
            f"{'does' if len(others) == 1 else 'do'} not.")


def _letters(labels: Sequence[str]) -> str:
    names = [f"Answer {label}" for label in labels]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _contradictions(answers: Mapping[str, str], prefer: str, matching: Sequence[str],
                    given: Mapping[str, Mapping[str, str]] | None) -> list[dict[str, Any]]:
    if given is None:
        if len(matching) == len(answers):
            return []
        return [{"topic": f"Whether the answer states {prefer!r}",
                 "stances": {label: f"States {prefer!r}." if label in matching else f"Does not state {prefer!r}."
                             for label in answers}}]
    out = []
    for topic, by_needle in given.items():
        stances = {}
        for label, text in answers.items():
            folded = text.casefold()
            stances[label] = next((s for n, s in by_needle.items() if n.casefold() in folded), NOT_ADDRESSED)
        out.append({"topic": topic, "stances": stances})
    return out


def _unique(answers: Mapping[str, str], prefer: str, matching: Sequence[str],
            given: Mapping[str, str] | None) -> list[dict[str, str]]:
    if given is None:
        if len(matching) != 1:
            return []
        return [{"label": matching[0], "point": f"The only answer that states {prefer!r}."}]
    out = []
    for needle, point in given.items():
        having = [label for label, text in answers.items() if needle.casefold() in text.casefold()]
        if len(having) == 1:
            out.append({"label": having[0], "point": point})
    return out


__all__ = ["NOT_ADDRESSED", "by_prompt", "by_question", "content_judge", "debater", "first_answer_judge",
           "request_text", "requested_fields", "shown_answers"]
