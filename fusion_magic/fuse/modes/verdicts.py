"""Reading a judge's reply: the JSON verdict object, strict or found inside prose (pure text in, dict out).

    parse_json_verdict('Sure! ```json {"winner": "B", "reasoning": "..."} ```')  # {"winner": "B", ...}
"""

from __future__ import annotations

import json
import re
from typing import Any

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_json_verdict(text: str) -> dict[str, Any] | None:
    """The verdict object from a judge's text: strict JSON, or the outermost {...} inside prose or a
    ```json fence (judges without structured output wrap it)."""
    for candidate in (text.strip(), *(_JSON_OBJECT.findall(text))):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


__all__ = ["parse_json_verdict"]
