"""The questions of an evaluation: read from a DataFrame, a CSV file or a JSONL file, checked before any call.

Each row needs a ``question`` and either a ``reference`` (also spelled ``answer``: a closed-form answer,
scored by its final value, see ``judge.answers``) or a ``rubric`` (an open question, scored 0/1 by a judge
model). Optional columns: ``id`` (else the row number), ``topic``, ``attachments`` (files every strategy's
models see with the question: paths separated by ``,`` or a list; a relative path is read from the questions
file's folder), ``scorer`` (this row's scorer, over the
run's: ``match``, ``exact``, ``includes``, ``numeric``, ``choice``, ``re:PATTERN`` or ``judge:MODEL``). A
reference may list several accepted answers separated by ``|`` (``Ulaanbaatar|Ulan Bator``).

    questions = load_questions("my_questions.csv")
    questions = load_questions(BUNDLED_QUESTIONS)     # the small offline set shipped with the package
    questions[0].kind                                 # "closed" or "open"

Anything wrong is a ``ConfigError`` with one line naming the file, row and column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..core.attachment import Attachment, load_attachments
from ..core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

# A few dozen closed-form questions written for this package (arithmetic, capitals, units, facts).
BUNDLED_QUESTIONS = Path(__file__).with_name("questions.jsonl")

# Appended to a closed-form question: a final line we can find however much the model writes before it
# (``judge.answers.final_span`` reads "Final answer: ..."), so a long answer is not left unscorable.
CLOSED_INSTRUCTION = (
    'Answer briefly. End with a line "Final answer: <answer>", where <answer> is only a number, '
    "a name or a short phrase."
)
# The default ``instruction`` of an evaluation: CLOSED_INSTRUCTION for models over HTTP, none for the local
# model, whose few-shot prompt already asks for one brief line (the 270M base model echoes instructions:
# "<answer> is a number, the name or a short phrase.").
AUTO = "auto"

_REFERENCE_COLUMNS = ("reference", "answer")
ALTERNATIVES = "|"

Kind = Literal["closed", "open"]


@dataclass(frozen=True)
class Question:
    """One question of an evaluation. ``kind`` is ``"closed"`` (a ``reference``, matched after
    normalising) or ``"open"`` (a ``rubric``, scored by a judge model; a reference, if also given, is shown
    to that judge).

        Question("q1", "What is 6 x 7?", reference="42").prompt()   # the question plus CLOSED_INSTRUCTION
    """

    id: str
    question: str
    reference: str | None = None
    rubric: str | None = None
    kind: Kind = "closed"
    topic: str | None = None
    scorer: str | None = None
    attachments: tuple[Attachment, ...] = ()

    @property
    def references(self) -> tuple[str, ...]:
        """The accepted answers (the reference split on ``|``), empty for an open question."""
        if self.reference is None:
            return ()
        return tuple(p.strip() for p in self.reference.split(ALTERNATIVES) if p.strip())

    def prompt(self, instruction: str | None = CLOSED_INSTRUCTION) -> str:
        """What the strategies are asked: the question, plus ``instruction`` for a closed one."""
        if self.kind == "closed" and instruction:
            return f"{self.question}\n\n{instruction}"
        return self.question


def load_questions(data: Any) -> list[Question]:
    """The questions in ``data``: a pandas DataFrame, a path to a ``.csv`` or ``.jsonl`` file (``str`` or
    ``Path``), or a sequence of mappings or ``Question`` objects. Raises ``ConfigError`` (one line) for a
    missing file or column, an empty set, a duplicate id, or a row with neither reference nor rubric."""
    import pandas as pd

    base: Path | None = None
    if isinstance(data, str | Path):
        rows, where = _read_file(Path(data))
        base = Path(data).expanduser().parent
    elif isinstance(data, pd.DataFrame):
        rows, where = _frame_rows(data), "the DataFrame"
    elif isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if data and all(isinstance(q, Question) for q in data):
            return _checked(list(data), "the questions")
        rows, where = [_mapping(item, n) for n, item in enumerate(data, 1)], "the questions"
    else:
        raise ConfigError(
            f"questions must be a DataFrame, a .csv or .jsonl path, or a list of dicts, not {type(data).__name__}"
        )
    return _checked(_questions(rows, where, base), where)


def _mapping(item: object, n: int) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise ConfigError(f"question {n} is a {type(item).__name__}, not a dict with a 'question' key")
    return item


def _read_file(path: Path) -> tuple[list[Mapping[str, Any]], str]:
    where = path.name
    if not path.is_file():
        raise ConfigError(f"no questions file at {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_rows(path), where
    if suffix == ".csv":
        return _csv_rows(path), where
    raise ConfigError(f"{where}: questions are read from .csv or .jsonl files, not {suffix or 'a file without suffix'}")


def _jsonl_rows(path: Path) -> list[Mapping[str, Any]]:
    rows: list[Mapping[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name} could not be read ({type(exc).__name__})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path.name} line {n} is not JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{path.name} line {n} is not a JSON object")
        rows.append(value)
    return rows


def _csv_rows(path: Path) -> list[Mapping[str, Any]]:
    import pandas as pd

    try:
        # Every cell as text: "007" and "3.0" stay as written; only an empty cell is missing ("NA" is Sodium).
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return []
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path.name} could not be read as CSV ({type(exc).__name__})") from None
    return _frame_rows(frame)


def _frame_rows(frame: pd.DataFrame) -> list[Mapping[str, Any]]:
    # Column names as strings, stripped and lower-cased: "Question " from a spreadsheet still counts.
    renamed = frame.rename(columns=lambda c: str(c).strip().lower())
    return [{str(k): v for k, v in row.items()} for row in renamed.to_dict("records")]


def _text(value: object) -> str | None:
    """A cell as stripped text; None for missing (None, NaN, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a reference read as 3.0 by pandas was written 3
    text = str(value).strip()
    return text or None


def _attachments(value: object, base: Path | None, where: str, n: int) -> tuple[Attachment, ...]:
    """A row's ``attachments`` cell: paths separated by ``,`` (or a list of paths, bytes, images ...), a relative
    path read from ``base`` (the questions file's folder). ``ConfigError`` naming the row for a bad one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    items: list[object]
    if isinstance(value, str):
        items = [p for p in (part.strip() for part in value.split(",")) if p]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    resolved = [base / item if base is not None and isinstance(item, str) and not Path(item).expanduser().is_absolute()
                else item for item in items]
    try:
        return load_attachments(resolved)
    except ConfigError as exc:
        raise ConfigError(f"{where} row {n}: {exc}") from None


def _questions(rows: Iterable[Mapping[str, Any]], where: str, base: Path | None = None) -> list[Question]:
    rows = list(rows)
    if not rows:
        raise ConfigError(f"{where} has no questions")
    columns = {str(k).strip().lower() for row in rows for k in row}
    if "question" not in columns:
        raise ConfigError(f"{where} has no 'question' column (columns: {', '.join(sorted(columns)) or 'none'})")
    if not columns & {*_REFERENCE_COLUMNS, "rubric"}:
        raise ConfigError(f"{where} needs a 'reference' (or 'answer') column or a 'rubric' column")
    out = []
    for n, raw in enumerate(rows, 1):
        row = {str(k).strip().lower(): v for k, v in raw.items()}
        question = _text(row.get("question"))
        if question is None:
            raise ConfigError(f"{where} row {n} has an empty question")
        reference = next((t for c in _REFERENCE_COLUMNS if (t := _text(row.get(c))) is not None), None)
        rubric = _text(row.get("rubric"))
        if reference is None and rubric is None:
            raise ConfigError(f"{where} row {n} has neither a reference nor a rubric")
        out.append(Question(
            id=_text(row.get("id")) or str(n), question=question, reference=reference, rubric=rubric,
            kind="open" if rubric is not None else "closed", topic=_text(row.get("topic")),
            scorer=_text(row.get("scorer")), attachments=_attachments(row.get("attachments"), base, where, n),
        ))
    return out


def _checked(questions: list[Question], where: str) -> list[Question]:
    if not questions:
        raise ConfigError(f"{where} has no questions")
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise ConfigError(f"{where}: the id {q.id!r} is used by more than one question")
        seen.add(q.id)
        if q.kind == "closed" and not q.references:
            raise ConfigError(f"{where}: question {q.id!r} has no reference to match")
        if q.kind == "open" and not q.rubric:
            raise ConfigError(f"{where}: open question {q.id!r} has no rubric")
    return questions


__all__ = ["AUTO", "BUNDLED_QUESTIONS", "CLOSED_INSTRUCTION", "Question", "load_questions"]
