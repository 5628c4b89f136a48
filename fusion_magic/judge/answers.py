"""Reading a closed-form answer, and scoring it against a reference: right, wrong, or unscorable.

One reader serves the evaluation's scorers, the vote, the rubric judge's fallback and the video check, so a
self-consistency vote counts the same value the score reads. Built on what careful evaluation tools do
(Inspect AI's ``match``/``numeric``/``choice`` scorers, SQuAD's exact-match normalisation, the MATH
benchmark's equivalence of numeric forms), with one rule above all: **a wrong answer is never scored right**.

1. The *final span* is what the answer states last: the text after the last "Final answer:", "The answer is",
   "Answer:", "####" or ``\\boxed{}``; a short reply (at most ``SHORT_WORDS`` words) is its own span; a long reply
   with no such line has none (unscorable: guessing would flatter).
2. The span is reduced to its value: "6 x 7 = 42" -> "42", "7 times 6 is 42" -> "42", "42, because ..." -> "42".
3. The value is compared with the reference by the reference's kind:
   a number only with a span that *is* that number ("2y" and "3/4" are not 4 or 2; "3 hours and 6 minutes" is
   two numbers, so unscorable), in any exact form (1,000 = 1000, 0.5 = 1/2 = 50 %, 2 x 10^3 = 2e3 = 2000,
   seven = 7) with units checked when both sides give one; a letter choice (with the question's options);
   yes/no; a date; an expression, compared by value at fixed points (``x^2+1`` = ``1 + x**2``, ``2x`` != ``2y``);
   a list, item by item; else normalised text. A negated ("not 5") or hedged ("5 or 6", "maybe 5") answer is
   never right.

    score("Final answer: 2y", ["2x"])      # Score(correct=False, extracted="2y", why="...")
    score("Final answer: 0.5", ["1/2"])    # Score(correct=True, extracted="0.5")
    score("3 hours and 6 minutes", ["186"])  # Score(correct=None, ...): several numbers, unscorable
    answer_key("It is 2y")                 # "2y": what a vote counts
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

SHORT_WORDS = 12
ARTICLES = frozenset({"a", "an", "the"})

# ---- 1. the final span ------------------------------------------------------------------------------------

_MARKER = re.compile(
    r"(?:final\s+answer|the\s+(?:final\s+|correct\s+)?answer\s+is|(?<![a-z])answer(?=\s*(?:is\b|[:=])))"
    r"\s*(?:is\s*)?[:=]?"
    r"|####|=>",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\boxed\s*\{")


@dataclass(frozen=True)
class Score:
    """A closed-form score. ``correct``: True (right), False (wrong) or None (unscorable: the answer could
    not be read with confidence). ``extracted``: the value read from the answer (None: none was found);
    ``why``: the reason it is wrong or unscorable, in a few words (None when right).

        s = score("Final answer: 1,000 metres", ["1000"]); s.correct, s.extracted   # True, "1000 metres"
    """

    correct: bool | None
    extracted: str | None
    why: str | None = None


def _boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, braces balanced (LaTeX answers put fractions inside)."""
    found = None
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found = text[m.end():i - 1]
    return found


def final_span(text: str) -> str | None:
    """The span of ``text`` that states its final answer, as written; None when there is none (a long reply
    with no final-answer line, or an empty one)."""
    boxed = _boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    markers = list(_MARKER.finditer(text))
    for m in reversed(markers):
        rest = text[m.end():]
        line = rest.split("\n", 1)[0].strip()
        if not _strip_edges(line):  # "Final answer:\n42": the value is on the next line
            following = [ln.strip() for ln in rest.split("\n")[1:] if _strip_edges(ln.strip())]
            line = following[0] if following else ""
        if _strip_edges(line):
            return line
    stripped = text.strip()
    if not stripped or len(stripped.split()) > SHORT_WORDS:
        return None
    return " ".join(stripped.split())


# ---- 2. cleaning and reducing a span ----------------------------------------------------------------------

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPT_RUN = re.compile(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")
_LATEX = [
    (re.compile(r"\\[dt]?frac\s*\{\s*([\w.]+)\s*\}\s*\{\s*([\w.]+)\s*\}"), r"\1/\2"),
    (re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"(\1)/(\2)"),
    (re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\\(?:times)"), " x "),
    (re.compile(r"\\(?:cdot|ast)"), "*"),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\[,;!: ]|\\left|\\right"), ""),
    (re.compile(r"\^\{([^{}]*)\}"), r"^\1"),
]
# Markup and quotes around a value, and sentence punctuation after it ("**B**.", "'Paris'!").
_EDGES = re.compile(r"^[\s*_`\"'“”‘’$]+(?=\S)|[\s*_`\"'“”‘’.,!:;]+$")
_MATH_DELIMS = re.compile(r"^\\\(|\\\)$|^\\\[|\\\]$")


def _strip_edges(text: str) -> str:
    text = _EDGES.sub("", text.strip())
    return text.strip()


def clean(span: str) -> str:
    """``span`` in one spelling: Unicode folded (accents, the minus sign, superscript powers), LaTeX markup
    read (``\\frac``, ``\\text``, ``$...$``), markup and sentence punctuation off the edges."""
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^" + m.group(0).translate(_SUPERSCRIPTS), span)
    text = text.replace("−", "-").replace("–", "-").replace("×", " x ").replace("·", "*").replace("≈", "~")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.replace("$", " ") if text.count("$") >= 2 else text
    text = _MATH_DELIMS.sub("", text.strip())
    for pattern, repl in _LATEX:
        text = pattern.sub(repl, text)
    out = _strip_edges(" ".join(text.split()))
    # A dollar sign leads a price ("$5"): keep it when a number follows, it is the unit.
    if span.strip().startswith("$") and re.match(r"\d", out):
        out = "$" + out
    return out


# An explanation after the value ("42, because ...", "B) Paris (the capital)"): what follows is never the value.
_EXPLAIN = re.compile(r",?\s+(?:because|since|as|which|so that)\s+|\s+\(|\s+-\s+", re.IGNORECASE)
# Clauses of what is left: "Yes, it is", "You are right, it is 42", "42, not 41".
_CLAUSE = re.compile(r",\s+|;\s*|\.\s+")
# A copula or an equals sign before the value: "7 times 6 is 42", "x = 5", "The capital of France is Paris".
_COPULA = re.compile(r"\s*=\s*|\s+(?:is|are|was|were|equals|would be|will be)\s+", re.IGNORECASE)
_LEAD = re.compile(r"^(?:it's|it is|that's|that is|so|thus|therefore|hence|then|answer|ans)\b[\s:,]*",
                   re.IGNORECASE)


def reduce(value: str, *, split_clauses: bool = True) -> str:
    """The value a cleaned span states: its explanation dropped, then of its clauses the last that states
    something after a copula or "=" ("You are right, it is 42" -> "42"), else the first ("42, not 41" -> "42",
    "Yes, it is" -> "Yes")."""
    value = _LEAD.sub("", value).strip() or value
    if not split_clauses:
        return _strip_edges(_after_copula(value))
    value = _EXPLAIN.split(value, maxsplit=1)[0].strip() or value
    clauses = [c.strip() for c in _CLAUSE.split(value) if c.strip()] or [value]
    stated = [c for c in clauses if _after_copula(c) != c]
    return _strip_edges(_after_copula(stated[-1]) if stated else clauses[0])


def _after_copula(value: str) -> str:
    """What follows the last "is" or "=" ("7 times 6 is 42" -> "42"), or ``value`` when nothing does."""
    value = _LEAD.sub("", value).strip() or value
    parts = _COPULA.split(value)
    return parts[-1].strip() if len(parts) > 1 and parts[-1].strip() else value


# ---- 3. what a value is -----------------------------------------------------------------------------------

_NEGATION = re.compile(r"\b(?:not|never|no|none|neither|nor|cannot|can't|isn't|aren't|wasn't|doesn't|don't)\b"
                       r"|n't\b", re.IGNORECASE)
_HEDGE = re.compile(
    r"\b(?:or|either|maybe|perhaps|possibly|probably|might|unsure|unclear|unknown|between|at least|at most|"
    r"more than|less than|fewer than|over|under|nearly|almost|up to|somewhere|i think|i believe|i guess|"
    r"not sure|don't know|do not know|can't tell|cannot tell|depends)\b",
    re.IGNORECASE,
)
_RANGE = re.compile(r"\d\s*-\s*\d|\d\s+to\s+\d", re.IGNORECASE)
_APPROX = re.compile(r"^(?:~\s*|(?:about|approximately|approx\.?|around|roughly|circa|ca\.)\s+)", re.IGNORECASE)

_NUMBER = re.compile(
    r"""^(?P<sign>[-+])?\s*(?P<cur>[$€£¥])?\s*(?P<sign2>[-+])?
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:[\u00a0\u2009\u202f]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?:\s*/\s*(?P<den>\d+))?
    (?:(?P<e>[eE][-+]?\d+)|\s*(?:x|\*)\s*10\s*(?:\^|\*\*)\s*\(?(?P<pow>[-+]?\d+)\)?)?
    (?:\s*(?P<scale>thousand|million|billion|trillion)\b)?
    (?:\s*(?P<pct>%|percent\b|per\s+cent\b))?
    (?P<rest>.*)$""",
    re.VERBOSE | re.IGNORECASE,
)
_ANY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_FRACTION = re.compile(r"^[-+]?\d+\s*/\s*\d+$")
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_ORDINAL = re.compile(r"^(?:st|nd|rd|th)\b", re.IGNORECASE)
_UNIT = re.compile(r"^[^\W\d][\w°/.\- ]*$|^°\s*[cfk]\b.*$", re.IGNORECASE)

_ONES = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}

# Units that name the same thing, so "12 km" states what "12 kilometres" does; anything else compares as words.
_UNIT_NAMES = {
    "m": "metre", "meter": "metre", "km": "kilometre", "kilometer": "kilometre", "cm": "centimetre",
    "centimeter": "centimetre", "mm": "millimetre", "millimeter": "millimetre", "g": "gram", "gramme": "gram",
    "kg": "kilogram", "kilo": "kilogram", "l": "litre", "liter": "litre", "ml": "millilitre",
    "milliliter": "millilitre", "s": "second", "sec": "second", "min": "minute", "h": "hour", "hr": "hour",
    "d": "day", "wk": "week", "yr": "year", "in": "inch", "inche": "inch", "ft": "foot", "feet": "foot",
    "mi": "mile", "lb": "pound", "oz": "ounce", "°c": "celsius", "degrees celsius": "celsius",
    "degree celsius": "celsius", "c": "celsius", "°f": "fahrenheit", "degrees fahrenheit": "fahrenheit",
    "degree fahrenheit": "fahrenheit", "f": "fahrenheit", "kph": "km/h", "kmh": "km/h", "$": "dollar",
    "usd": "dollar", "€": "euro", "eur": "euro", "£": "pound sterling", "gbp": "pound sterling", "¥": "yen",
    "degree": "degree", "deg": "degree", "°": "degree",
}


# Units written onto their number with no space ("5kg", "3ms", "2GB"): the table's, and the common technical ones.
# Any other letters written onto a number make a term of an expression ("2xy", "2πr"), never a number of things.
_ATTACHED_UNITS = frozenset({*_UNIT_NAMES, *_UNIT_NAMES.values(), "px", "pt", "em", "rem", "ms", "ns", "us", "μs",
                             "nm", "μm", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "hz", "khz", "mhz", "ghz", "w",
                             "kw", "mw", "kwh", "v", "mv", "a", "ma", "mah", "mph", "fps", "bps", "kbps", "mbps",
                             "x", "k", "bn", "mn", "st", "nd", "rd", "th", "am", "pm", "cc", "dl", "cl", "mg",
                             "ha", "kn", "kpa", "pa", "atm", "psi", "cal", "kcal", "j", "kj", "°c", "°f", "%"})


@dataclass(frozen=True)
class Number:
    """An exact number as an answer states it, with its unit (None: none) and whether it was a percent."""

    value: Fraction
    unit: str | None = None
    percent: bool = False

    def text(self) -> str:
        """The number in one plain form (1000, 0.5, -3, 1/3) and its unit or %."""
        v = self.value
        if v.denominator == 1:
            digits = str(v.numerator)
        else:
            d = v.denominator
            while d % 2 == 0:
                d //= 2
            while d % 5 == 0:
                d //= 5
            # A terminating decimal is written out; 1/3 stays a fraction rather than a rounded 0.333.
            digits = _decimal(v) if d == 1 else f"{v.numerator}/{v.denominator}"
        return digits + ("%" if self.percent else "") + (f" {self.unit}" if self.unit else "")


def _decimal(v: Fraction) -> str:
    sign = "-" if v < 0 else ""
    v = abs(v)
    whole, frac = divmod(v.numerator, v.denominator)
    digits: list[str] = []
    while frac and len(digits) < 60:
        frac *= 10
        digit, frac = divmod(frac, v.denominator)
        digits.append(str(digit))
    return f"{sign}{whole}." + "".join(digits)


def unit_name(unit: str | None) -> str | None:
    """A unit in one spelling: lower case, singular, the common abbreviations spelled out."""
    if unit is None:
        return None
    u = " ".join(unit.lower().strip(" .").split())
    if not u:
        return None
    if u in _UNIT_NAMES:
        return _UNIT_NAMES[u]
    words = u.split()
    words = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]
    words = [w.replace("metres", "metre").replace("meters", "metre") for w in words]
    u = " ".join(words)
    u = u.replace("meter", "metre").replace("liter", "litre")
    return _UNIT_NAMES.get(u, u)


def _word_number(text: str) -> tuple[Fraction, str] | None:
    """"seven", "twenty-one", "a hundred" and the rest after them; None when ``text`` starts with no number word."""
    words = text.lower().replace("-", " ").split()
    total, i = 0, 0
    if words[:1] in (["a"], ["one"]) and words[1:2] in (["hundred"], ["thousand"]):
        return Fraction(100 if words[1] == "hundred" else 1000), " ".join(text.split()[2:])
    if i < len(words) and words[i] in _TENS:
        total, i = _TENS[words[i]], i + 1
        if i < len(words) and words[i] in _ONES and 0 < _ONES[words[i]] < 10:
            total, i = total + _ONES[words[i]], i + 1
    elif i < len(words) and words[i] in _ONES:
        total, i = _ONES[words[i]], i + 1
    else:
        return None
    rest = " ".join(text.replace("-", " ").split()[i:])
    return Fraction(total), rest


def parse_number(value: str) -> Number | None:
    """The number ``value`` *is* (with an optional unit or %), exactly; None when it is anything else: another
    kind of value, an expression ("2y", "x^2+1"), or more than one number ("3 hours and 6 minutes")."""
    text = _APPROX.sub("", value.strip())
    m = _NUMBER.match(text)
    if m is None:
        words = _word_number(text) if text else None
        if words is None:
            return None
        amount, rest = words
        unit = rest.strip() or None
        if unit is not None and (_ANY_NUMBER.search(unit) or not _UNIT.match(unit) or len(unit.split()) > 3):
            return None
        return Number(amount, unit_name(unit))
    sign = -1 if "-" in ((m["sign"] or "") + (m["sign2"] or "")) else 1
    digits = re.sub(r"[,\u00a0\u2009\u202f]", "", m["num"])
    number = Fraction(digits)
    if m["den"] is not None:
        den = int(m["den"])
        # "81/9" restates a division, it does not answer it: only a fraction in lowest terms is a number.
        if den <= 1 or "." in digits or math.gcd(int(digits), den) != 1:
            return None
        number /= den
    power = m["e"][1:] if m["e"] else m["pow"]
    if power is not None:
        exponent = int(power)
        if abs(exponent) > 400:  # no number in an answer needs more, and 10**10**9 would hang the kernel
            return None
        number *= Fraction(10) ** exponent
    rest = m["rest"].strip()
    scale = (m["scale"] or "").lower()
    if scale:
        number *= _SCALES[scale]
    if _ORDINAL.match(rest) and m["den"] is None and power is None:
        rest = _ORDINAL.sub("", rest).strip()
    unit = rest or None
    if unit is not None:
        attached = not text[m.start("rest"):].startswith(" ")
        if _ANY_NUMBER.search(unit) or not _UNIT.match(unit) or len(unit.split()) > 3:
            return None
        if attached and len(unit) == 1 and unit.lower() not in ("m", "g", "s", "h", "l", "k", "c", "f", "°"):
            return None  # "2x", "3y": a term of an expression, not two of something
        if attached and unit.lower() not in _ATTACHED_UNITS:
            return None  # "2xy", "2πr": letters written onto a number are a term, unless they are a known unit
    if m["cur"]:
        unit = m["cur"] if unit is None else unit
    return Number(sign * number, unit_name(unit), percent=bool(m["pct"]))


def same_number(answer: Number, reference: Number) -> tuple[bool, str | None]:
    """Whether two numbers state the same amount: exactly equal, a percent read either way (50 % = 50 = 0.5),
    and, when both give a unit, the same unit."""
    if answer.unit and reference.unit and answer.unit != reference.unit:
        return False, f"in {answer.unit}, not {reference.unit}"
    candidates = {answer.value}
    if answer.percent and not reference.percent:
        candidates.add(answer.value / 100)
    if reference.percent and not answer.percent:
        candidates.add(answer.value * 100)
    if reference.value in candidates:
        return True, None
    return False, f"{answer.text()} is not {reference.text()}"


# ---- expressions: compared by value at fixed points ---------------------------------------------------------

_EXPR_CHARS = re.compile(r"^[\w\s+\-*/^().]+$")
_IMPLICIT = re.compile(r"(?<=[\d)])\s*(?=[a-z(])|(?<=[a-z)])\s*(?=\()", re.IGNORECASE)
_POINTS = (Fraction(3, 7), Fraction(-5, 3), Fraction(11, 2))


def expression(value: str) -> str | None:
    """``value`` as a canonical expression (spaces and ``*`` off, ``**`` as ``^``, lower case), or None when
    it is not one (words, more than one letter in a row)."""
    text = value.replace("**", "^").replace("\\cdot", "*").strip()
    if not text or not _EXPR_CHARS.match(text) or not re.search(r"[a-z]", text, re.IGNORECASE):
        return None
    # Letters of any script: "a*ð" is as much two letters in a row as "a*b" once the product sign goes.
    if re.search(r"[^\W\d_]{2,}", text) or not re.search(r"[\d+\-*/^]", text):
        return None  # a word, or a lone letter (an option, not an expression)
    if re.search(r"\d\s+\d", text):
        return None  # "42 42": two numbers, which dropping the space would merge
    canonical = re.sub(r"\s+|\*(?!\*)", "", text).lower()
    if re.search(r"[^\W\d_]{2,}|[^\W\d_]\d", canonical) or parse_number(canonical) is not None:
        return None  # "x x" would read as the name "xx", "42 e5" as 42e5: a number, not an expression
    try:
        ast.parse(_python(canonical), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return canonical


def _python(canonical: str) -> str:
    """A canonical expression as Python reads it: implicit products made explicit, ``^`` as ``**``."""
    return _IMPLICIT.sub("*", canonical).replace("^", "**")


def _evaluate(node: ast.AST, env: dict[str, Fraction]) -> Fraction:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _evaluate(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left, env), _evaluate(node.right, env)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        if isinstance(node.op, ast.Pow) and b.denominator == 1 and abs(b) <= 12:
            return a ** int(b)
    raise ValueError("not a polynomial expression")


def _variables(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z]", text))


def same_expression(answer: str, reference: str) -> bool:
    """Whether two expressions are equal: the same text once canonical, or the same variables and the same
    value at three fixed rational points (``2x+1`` = ``1+2*x``; ``2x`` != ``2y``)."""
    a, b = expression(answer), expression(reference)
    if a is None or b is None:
        return False
    if a == b:
        return True
    if _variables(a) != _variables(b):
        return False
    try:
        trees = [ast.parse(_python(t), mode="eval") for t in (a, b)]
        for point in _POINTS:
            env = {v: point + i for i, v in enumerate(sorted(_variables(a)))}
            if _evaluate(trees[0], env) != _evaluate(trees[1], env):
                return False
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return False
    return True


# ---- dates ------------------------------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate([
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december"], 1)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_M_D_Y = re.compile(r"^([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{3,4})$", re.IGNORECASE)
_D_M_Y = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([a-z]+)\.?,?\s+(\d{3,4})$", re.IGNORECASE)
_M_Y = re.compile(r"^([a-z]+)\.?,?\s+(\d{3,4})$", re.IGNORECASE)


def parse_date(value: str) -> tuple[int, int, int | None] | None:
    """(year, month, day) of a date written ISO-style or with the month's name; None for anything else.
    Numeric day/month orders (03/04/2020) are left out: they read two ways."""
    text = value.strip().rstrip(".")
    if m := _ISO.match(text):
        return int(m[1]), int(m[2]), int(m[3])
    if (m := _M_D_Y.match(text)) and m[1].lower() in _MONTHS:
        return int(m[3]), _MONTHS[m[1].lower()], int(m[2])
    if (m := _D_M_Y.match(text)) and m[2].lower() in _MONTHS:
        return int(m[3]), _MONTHS[m[2].lower()], int(m[1])
    if (m := _M_Y.match(text)) and m[1].lower() in _MONTHS:
        return int(m[2]), _MONTHS[m[1].lower()], None
    return None


# ---- choices, yes/no, text, lists -----------------------------------------------------------------------------

_LETTER_REF = re.compile(r"^\(?([A-Za-z])\)?$")
_CHOICE = re.compile(
    r"^(?:(?i:option|choice|letter)\s+)?\(?([A-J])\)?(?=$|[.):,]|\s+[-:]|\s+(?:because|since|as)\b|\s+\w)",
)
_LOWER_CHOICE = re.compile(r"^(?:(?:option|choice|letter)\s+)?\(([a-j])\)|^([a-j])\)|^([a-j])$"
                           r"|^(?:option|choice|letter)\s+([a-j])$", re.IGNORECASE)
_OPTION_LINE = re.compile(r"(?:^|\s)\(?([A-J])[).:]\s+(.+?)(?=\s+\(?[A-J][).:]\s|$)", re.MULTILINE)
_BOOLS = {"yes": "yes", "no": "no", "true": "yes", "false": "no", "correct": "yes", "incorrect": "no"}
_WORD = re.compile(r"[a-z0-9]+")
# A word, or a number kept whole with its sign and decimal point ("-5" is not "5", "3.5" not "3 5"); a minus
# joined to a word or number before it ("3-5", "x-1") is a hyphen, not a sign. An operator between two numbers
# is a token of its own, written tight or spaced on both sides ("42 -3" is two numbers): dropped like other
# punctuation, "2*3" and "2^3" (or "3:4" and "3/4") would read alike.
# Words are letters and digits of any script: a Greek letter or a CJK word is part of the answer ("2πr" is not
# "2 r", which would then read as the number 2).
_TOKEN = re.compile(r"(?<![^\W_])-?\d+(?:\.\d+)*|[^\W_]+|(?<=[0-9])(?:[-+*/^×÷:=<>]|\s+[-+*/^×÷:=<>]\s+)(?=[0-9])")
_LIST_SPLIT = re.compile(r"\s*(?:,|;|\band\b|&)\s*", re.IGNORECASE)


def normalise(text: str) -> str:
    """SQuAD-style normal form: lower case, accents, punctuation and articles off, one space between words;
    numbers keep their sign and decimal point ("-5" stays "-5", "3.5" stays "3.5"), and an operator between
    two numbers is kept ("2^3" is "2 ^ 3", not "2 3")."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()
    return " ".join(w.strip() for w in _TOKEN.findall(folded) if w not in ARTICLES)


def read_choice(value: str) -> str | None:
    """The option letter ``value`` names ("B", "(b)", "B) Paris", "Option C because ..."), upper case."""
    text = value.strip()
    if m := _CHOICE.match(text):
        return m[1]
    if m := _LOWER_CHOICE.match(text):
        return next(g for g in m.groups() if g).upper()
    return None


def options_in(question: str) -> dict[str, str]:
    """The lettered options a question lists ("A) Paris  B) Lyon", one per line or inline), normalised."""
    found: dict[str, str] = {}
    for m in _OPTION_LINE.finditer(question):
        found.setdefault(m[1], normalise(m[2]))
    return found


def _bool(value: str) -> str | None:
    words = _WORD.findall(value.lower())
    return _BOOLS.get(words[0]) if words else None


def _is_list(reference: str) -> bool:
    return len([p for p in _LIST_SPLIT.split(reference) if p.strip()]) >= 2 and parse_number(reference) is None


# ---- scoring ----------------------------------------------------------------------------------------------

def _wrong(extracted: str, why: str) -> Score:
    return Score(False, extracted, why)


def _unscorable(extracted: str | None, why: str) -> Score:
    return Score(None, extracted, why)


def _hedged(value: str, reference: str) -> str | None:
    """Why ``value`` commits to no single answer, unless the reference says so too: negated ("not 5") or a
    question ("5?") in the value itself; hedged ("5 or 6", "maybe 5", "5, or maybe 6") or a range anywhere
    before its explanation ("5 because 4 or 6 ..." is not a hedge)."""
    ref = reference.lower()
    stated = reduce(value)
    scope = _after_copula(_EXPLAIN.split(_LEAD.sub("", value), maxsplit=1)[0])
    if (m := _NEGATION.search(stated)) and not _NEGATION.search(ref):
        return f"negated ({m.group(0).strip()!r})"
    if stated.endswith("?") or ((m := _HEDGE.search(scope)) and not _HEDGE.search(ref)):
        return "hedged ('?')" if stated.endswith("?") else f"hedged ({m.group(0).strip()!r})" if m else "hedged"
    if _RANGE.search(scope) and not _RANGE.search(ref) and parse_number(stated) is None:
        return "a range, not one value"
    return None


def _compare(value: str, reference: str, question: str | None) -> Score:
    """``value`` (a cleaned final span) against one reference, by the reference's kind."""
    ref = clean(reference)
    if (why := _hedged(value, ref)) is not None:
        return _wrong(value, why)
    # Text without digits may match as written ("not applicable", "rock or paper"); numbers never do, since
    # normalising drops the operators between them ("3:4" and "3/4" both read "3 4"): they compare by value.
    if not re.search(r"\d", ref) and normalise(ref) and normalise(value) == normalise(ref):
        return Score(True, value)
    if (m := _LETTER_REF.match(ref)) and (len(ref) > 1 or ref.isupper()):
        return _compare_choice(value, m[1].upper(), question)
    if _bool(ref) is not None and len(ref.split()) == 1:
        said = _bool(reduce(value))
        if said is None or (_HEDGE.search(value) and not _HEDGE.search(ref)):
            return _wrong(value, "no plain yes or no")
        return Score(True, said) if said == _bool(ref) else _wrong(said, f"{said}, not {_bool(ref)}")
    date = parse_date(ref)
    is_list = date is None and _is_list(ref)
    reduced = reduce(value, split_clauses=date is None and not is_list)
    if date is not None:
        said_date = parse_date(reduced)
        if said_date is None:
            return _wrong(reduced, "not a date")
        return Score(True, reduced) if said_date == date else _wrong(reduced, "another date")
    if (number := parse_number(ref)) is not None:
        return _compare_number(reduced, number)
    if expression(ref) is not None:
        if same_expression(reduced, ref):
            return Score(True, reduced)
        return _wrong(reduced, "another expression" if expression(reduced) else "not an expression")
    if is_list:
        return _compare_list(reduced, ref, question)
    if normalise(ref) and normalise(reduced) == normalise(ref):
        return Score(True, reduced)
    return _wrong(reduced, "another answer")


def _compare_number(reduced: str, reference: Number) -> Score:
    said = parse_number(reduced)
    if said is None:
        found = _ANY_NUMBER.findall(reduced)
        if expression(reduced) is not None:
            return _wrong(reduced, "an expression, not a number")
        if _FRACTION.match(reduced):
            return _wrong(reduced, "a division written out, not its result")
        if len(found) > 1:
            return _unscorable(reduced, f"several numbers ({', '.join(found[:4])}): which is the answer?")
        if found:
            return _wrong(reduced, "not a plain number")
        return _wrong(reduced, "not a number")
    ok, why = same_number(said, reference)
    if ok:
        return Score(True, reduced)
    # Said as the answer wrote it ("210 centimetres is not 200"), the unit named only when it is the difference.
    return _wrong(reduced, why if why and why.startswith("in ") else f"{reduced} is not {reference.text()}")


def _compare_choice(value: str, letter: str, question: str | None) -> Score:
    said = read_choice(value) or read_choice(reduce(value))
    if said is None and question:
        named = [k for k, text in options_in(question).items() if text and text == normalise(reduce(value))]
        said = named[0] if len(named) == 1 else None
    if said is None:
        return _unscorable(value, "names no option letter")
    rest = value[1:] if value.upper().startswith(said) else value
    if re.search(r"\b[A-J]\b", rest) and re.search(r"\b(?:or|and)\b|,", rest[:12]) and not re.search(
            r"\b(?:because|since|as)\b", rest[:12]):
        return _wrong(value, "more than one option")
    if (why := _hedged(value, "")) is not None and _NEGATION.search(value):
        return _wrong(value, why)
    return Score(True, said) if said == letter else _wrong(said, f"{said}, not {letter}")


def _compare_list(reduced: str, reference: str, question: str | None) -> Score:
    said = [p for p in _LIST_SPLIT.split(reduced) if p.strip()]
    wanted = [p for p in _LIST_SPLIT.split(reference) if p.strip()]
    if len(said) != len(wanted):
        return _wrong(reduced, f"{len(said)} items, not {len(wanted)}")
    for a, b in zip(said, wanted, strict=True):
        if not _compare(_strip_edges(a), b, question).correct:
            return _wrong(reduced, f"{a.strip()!r} is not {b.strip()!r}")
    return Score(True, reduced)


def score(answer: str, references: Sequence[str], *, question: str | None = None) -> Score:
    """``answer`` scored against the accepted ``references``: right when it states one of them, unscorable
    when no final value can be read with confidence, else wrong (see the module docstring). ``question``,
    when given, lets an answer that names an option by its text ("Paris") be read as its letter."""
    span = final_span(answer)
    if span is None:
        whole = clean(answer)
        if any(normalise(whole) == normalise(r) and normalise(r) for r in references):
            return Score(True, whole)
        if not answer.strip():
            return _unscorable(None, "an empty answer")
        return _unscorable(None, "no final answer: a long reply with no 'Final answer:' line")
    value = clean(span)
    if not value:
        return _unscorable(None, "an empty final answer")
    best: Score | None = None
    for reference in references:
        s = _compare(value, reference, question)
        if s.correct:
            return s
        # Several references: wrong against one and unreadable against another is still unreadable.
        if best is None or (best.correct is False and s.correct is None):
            best = s
    return best if best is not None else _unscorable(value, "no reference to compare with")


def answer_key(answer: str, *, _depth: int = 0) -> str | None:
    """The value an answer states, in the form equal answers share, for counting votes: a number in one plain
    form ("1000", "0.5"), an option letter, yes/no, an expression, or normalised words. None when it states
    none with confidence (free text, negated, hedged, several numbers)."""
    span = final_span(answer)
    if span is None:
        return None
    value = clean(span)
    if not value or (_hedged(value, "") is not None and _bool(reduce(value)) != "no"):
        return None
    reduced = reduce(value)
    for candidate in (value, reduced):
        said = read_choice(candidate)
        if said is not None and (len(candidate) <= 3 or _CHOICE.match(candidate)) and len(candidate.split()) <= 3:
            return said
    if (flag := _bool(reduced)) is not None and len(reduced.split()) <= 3:
        return flag
    if (number := parse_number(reduced)) is not None:
        return Number(number.value, None, number.percent).text()
    if len(_ANY_NUMBER.findall(reduced)) > 1 and expression(reduced) is None:
        return None
    if (expr := expression(reduced)) is not None:
        return expr
    words = normalise(reduced)
    # Read the normal form again only where normalising changed what is said, not where it merely set letters
    # apart from the number they were written onto ("2xy" is not "2 xy", two of xy).
    merely_split = words.replace(" ", "") == reduced.lower().replace(" ", "")
    if merely_split and words != " ".join(reduced.lower().split()):
        return " ".join(reduced.lower().split())  # the term as written: read again, it is itself
    if words and words != reduced and not merely_split and _depth < 3:
        # The normal form read as an answer, so that a key read again is itself ("0\x1bB" and "0 b" both say 0).
        return answer_key(words, _depth=_depth + 1)
    # A lone letter is an option, however it was dressed ("b", "B\x1b"): the same key as "(B)".
    return words.upper() if len(words) == 1 and words in "abcdefghij" else words or None


_OUT_OF = re.compile(r"^(.+?)\s*(?:/|out\s+of)\s*(\d+)$", re.IGNORECASE)


def labelled_number(text: str, label: str, *, out_of: int | None = None) -> Number | None:
    """The number after the last ``label:`` in prose ("Score: 7", "score = 7/10" with ``out_of=10``), read as a
    final answer is: None when it is hedged, negated, or not one number ("score: 7 or 8")."""
    found = list(re.finditer(rf"\b{re.escape(label)}\b[\"']?\s*(?:is\s*)?[:=]?\s*([^\n]+)", text, re.IGNORECASE))
    if not found:
        return None
    value = reduce(clean(found[-1].group(1)))
    if _hedged(value, "") is not None:
        return None
    if out_of is not None and (m := _OUT_OF.match(value)) and int(m[2]) == out_of:
        value = m[1]
    number = parse_number(value)
    return None if number is None or number.unit is not None or number.percent else number


__all__ = ["Number", "Score", "answer_key", "clean", "expression", "final_span", "labelled_number", "normalise",
           "parse_number", "reduce", "score"]
