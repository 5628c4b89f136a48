"""Prompts and schema bounds for a small *base* model (no chat template): pure functions, no llama.cpp.

A base model continues text. Through a chat template the bundled Gemma 3 270M answers nothing or loops;
shown a few ``Question: … / Answer: …`` pairs, it answers the next question in a line and stops at the
blank line. For structured output the examples are JSON objects that fit the caller's schema, and the
string fields get a ``maxLength`` so the grammar-constrained object always closes within the token cap.

    prompt = build_prompt(request)                   # text ends with "Answer:"
    schema, worst = bound_schema(request.json_schema, max_chars=240)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...base import ChatRequest, Message

# Stops that end a text answer: the model starting the next example, or the blank line after its answer.
TEXT_STOPS: tuple[str, ...] = ("\nQuestion:", "\n\n")

_TEXT_HEADER = "Answer each question briefly and correctly, in one or two sentences."
# Chosen by trying them on the 270M model: a "why" example in another field than the likely questions
# (an answer about seasons got copied verbatim into "Why is the sky blue?"), and an arithmetic one
# (without it "7 times 6" came out wrong more often).
_TEXT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the largest planet in the solar system?", "Jupiter."),
    ('Who wrote "Romeo and Juliet"?', "William Shakespeare."),
    ("What is 3 times 5?", "15."),
    ("Why do ice cubes float in water?", "Because ice is less dense than liquid water."),
)

_JSON_HEADER = "Reply with one JSON object on a single line, in the same form as the example."
_JSON_EXAMPLE_QUESTION = (
    'Which answer is best? Question: Who wrote "Hamlet"? Answer A: Charles Dickens. '
    "Answer B: William Shakespeare. Answer C: Jane Austen."
)
# Example values by field name; anything else gets a neutral short phrase. They describe the example
# question above, so a model that copies them copies something harmless.
_EXAMPLE_STRINGS: Mapping[str, str] = {
    "reasoning": "B is correct: Shakespeare wrote Hamlet; A and C are wrong.",
    "rationale": "B is correct: Shakespeare wrote Hamlet; A and C are wrong.",
    "explanation": "B is correct: Shakespeare wrote Hamlet; A and C are wrong.",
    "answer": "William Shakespeare wrote Hamlet.",
    "summary": "William Shakespeare wrote Hamlet.",
}
_DEFAULT_EXAMPLE_STRING = "William Shakespeare"


def build_prompt(request: ChatRequest) -> str:
    """The whole completion prompt for ``request``: header, examples, the conversation, ``Answer:``.

    System text goes first, as the document's preamble: a base model follows instructions poorly
    either way, and there it reads as context rather than as one of the questions.
    """
    schema = request.json_schema
    parts: list[str] = []
    if request.system:
        parts.append(request.system.strip() + "\n\n")
    if schema is None:
        parts.append(_TEXT_HEADER + "\n\n")
        parts.extend(f"Question: {q}\nAnswer: {a}\n\n" for q, a in _TEXT_EXAMPLES)
    else:
        example = json.dumps(example_for_schema(schema), ensure_ascii=False)
        parts.append(f"{_JSON_HEADER}\n\nQuestion: {_JSON_EXAMPLE_QUESTION}\nAnswer: {example}\n\n")
    parts.append(_render_turns(request.turns, system=request.system))
    prompt = "".join(parts)
    if schema is not None and prompt.endswith("Answer:"):
        # The grammar's first character is "{"; without the space the model would want " {".
        prompt += " "
    return prompt


def _render_turns(turns: tuple[Message, ...], system: str | None) -> str:
    """Earlier turns become answered questions; the text ends with ``Answer:`` (or inside a prefill)."""
    if not turns:  # only system text: that is the question
        return f"Question: {(system or '').strip()}\nAnswer:"
    out: list[str] = []
    pending: list[str] = []  # user turns since the last answer (consecutive ones are joined)
    for message in turns:
        if message.role == "user":
            pending.append(message.text.strip())
            continue
        if pending:
            out.append("Question: " + "\n".join(pending) + "\n")
            pending = []
        out.append(f"Answer: {message.text.strip()}\n\n")
    if pending:
        out.append("Question: " + "\n".join(pending) + "\nAnswer:")
    elif out:  # the conversation ends with an assistant turn: continue it (prefill)
        out[-1] = out[-1].rstrip("\n")
    return "".join(out)


def copied_example(text: str, schema: Mapping[str, Any]) -> bool:
    """True when a structured answer repeats a free-text value of the prompt's example verbatim: a tiny
    base model does that instead of answering, and the copy must not pass for a verdict."""
    try:
        produced = json.loads(text)
    except json.JSONDecodeError:
        return False
    example = example_for_schema(schema)
    if not isinstance(produced, dict) or not isinstance(example, dict):
        return False
    return any(
        isinstance(value, str) and len(value) > 12 and produced.get(key) == value for key, value in example.items()
    )


def example_for_schema(schema: Mapping[str, Any], name: str = "") -> Any:
    """A small value that fits ``schema``, for the few-shot example (best effort for exotic schemas)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        values = list(schema["enum"])
        # The middle value rather than the first, so the example does not teach a bias towards "A".
        return values[len(values) // 2]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_for_schema(schema[key][0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props: Mapping[str, Any] = schema.get("properties", {})
        return {key: example_for_schema(sub, key) for key, sub in props.items()}
    if kind == "array":
        items = schema.get("items")
        count = max(1, int(schema.get("minItems", 1)))
        return [example_for_schema(items, name) for _ in range(count)] if isinstance(items, Mapping) else []
    if kind == "integer":
        return 1
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _EXAMPLE_STRINGS.get(name.lower(), _DEFAULT_EXAMPLE_STRING)


# Worst-case sizes in tokens, counting one token per character (a grammar-constrained token always
# adds at least one character, and the model rarely does worse than that).
_SCALAR_WORST = {"integer": 24, "number": 32, "boolean": 5, "null": 4}
_UNBOUNDED_WORST = 256  # a part of the schema we cannot bound (free-form "any" values)
_DEFAULT_MAX_ITEMS = 4


def bound_schema(schema: Mapping[str, Any], max_chars: int) -> tuple[dict[str, Any], int]:
    """``schema`` with ``maxLength`` on free strings and ``maxItems`` on arrays, and its worst-case
    size in tokens: a token cap at least that large lets the constrained output always close.

    Existing bounds are kept when they are tighter.
    """
    out: dict[str, Any] = dict(schema)
    for key in ("$defs", "definitions"):  # referenced sub-schemas get the same bounds
        if isinstance(out.get(key), Mapping):
            out[key] = {name: bound_schema(sub, max_chars)[0] for name, sub in out[key].items()}
    if "$ref" in out:
        return out, _UNBOUNDED_WORST
    if "const" in out:
        return out, len(json.dumps(out["const"])) + 1
    if "enum" in out:
        return out, max((len(json.dumps(v)) for v in out["enum"]), default=4) + 1
    for key in ("anyOf", "oneOf"):
        if out.get(key):
            options = [bound_schema(sub, max_chars) for sub in out[key]]
            out[key] = [s for s, _ in options]
            return out, max(w for _, w in options)
    kind = out.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    worst = 0
    if "object" in kinds or "properties" in out:
        props = {k: bound_schema(v, max_chars) for k, v in out.get("properties", {}).items()}
        out["properties"] = {k: s for k, (s, _) in props.items()}
        # braces, and per property: quoted key, colon, comma and the optional spaces around them
        worst = max(worst, 4 + sum(len(k) + 8 + w for k, (_, w) in props.items()))
    if "array" in kinds:
        items = out.get("items")
        item_worst = _UNBOUNDED_WORST
        if isinstance(items, Mapping):
            out["items"], item_worst = bound_schema(items, max_chars)
        limit = min(int(out.get("maxItems", _DEFAULT_MAX_ITEMS)), _DEFAULT_MAX_ITEMS)
        limit = max(limit, int(out.get("minItems", 0)))
        out["maxItems"] = limit
        worst = max(worst, 4 + limit * (item_worst + 2))
    if "string" in kinds:
        if not {"pattern", "format"} & out.keys():
            out["maxLength"] = min(int(out.get("maxLength", max_chars)), max_chars)
            worst = max(worst, int(out["maxLength"]) + 3)
        else:
            worst = max(worst, _UNBOUNDED_WORST)
    for scalar, size in _SCALAR_WORST.items():
        if scalar in kinds:
            worst = max(worst, size)
    if worst == 0:
        worst = _UNBOUNDED_WORST
    return out, worst
