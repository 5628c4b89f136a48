"""Text that every encoder accepts.

A JSON ``"\\ud83d"`` escape decodes to a lone surrogate, and a server that cuts UTF-16 text between chunks splits
an emoji into two of them. Python keeps such strings, but UTF-8 (SQLite, the cache's JSON file, nh3, the
browser) refuses them, so a finished answer is made valid once, where it is complete.

    valid_text("\\ud83d\\ude00")   # "😀": a pair split across chunks is joined
    valid_text("\\ud83d!")        # "\\ufffd!": a lone half becomes U+FFFD
"""

from __future__ import annotations


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: surrogate pairs joined, a lone surrogate replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text  # the common case costs one encode and no copy


__all__ = ["valid_text"]
