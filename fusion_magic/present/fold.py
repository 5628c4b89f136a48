"""What keeps a finished report to one screen: long Markdown folded under "show all", sections folded under
``<details>``, and a copy button for the answer.

The copy button is the one element of ours with a script: a fixed ``onclick`` (``COPY_HANDLER``, never built
from model text) that copies the answer's source, kept as escaped text in a hidden ``<textarea>`` beside it.
It works where the output is trusted (a live cell, a notebook its owner saved and reopened); elsewhere
(GitHub, an untrusted notebook) the handler is stripped and the button does nothing, and the answer is still
there to select.

    capped_markdown(answer)          # rendered Markdown; past ~1500 characters the rest under "show all"
    folded("Judge · chose B", html)  # <details><summary>…</summary>…</details>
    copy_button(answer)              # the button and the hidden source it copies
"""

from __future__ import annotations

from .sanitize import escape_text, render_markdown

# A projector shows about 100 characters of body text a line at a readable size; so does a laptop's cell.
REPORT_STYLE = "max-width:56rem"
# Where a long text folds: the first block boundary before this many characters (or lines).
CAP_CHARS = 1500
CAP_LINES = 30

# The copy button's handler: copies the report's answer source; says "Copied" for a moment. The Clipboard API
# needs a secure context (https or localhost); elsewhere the older execCommand path copies a selection.
COPY_HANDLER = (
    "(function(b){var s=b.parentNode.parentNode.querySelector('textarea.fm-answer-source');"
    "var t=s?s.value:'';function ok(){b.textContent='Copied';setTimeout(function(){b.textContent='Copy'},1500)}"
    "function old(){var a=document.createElement('textarea');a.value=t;document.body.appendChild(a);a.select();"
    "try{document.execCommand('copy');ok()}finally{a.remove()}}"
    "if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(t).then(ok,old)}else{old()}"
    "})(this)"
)


def copy_button(source: str) -> str:
    """A "Copy" button and the hidden text it copies (``source``, escaped: a textarea shows text, never tags)."""
    return (
        f'<button class="fm-copy" type="button" title="copy the answer (Markdown)" onclick="{COPY_HANDLER}">Copy'
        f'</button><textarea class="fm-answer-source" hidden readonly>{escape_text(source)}</textarea>'
    )


def folded(summary_html: str, body_html: str, *, open_: bool = False, cls: str = "") -> str:
    """``body_html`` under a ``<details>`` whose summary line is ``summary_html`` (both already safe HTML)."""
    attrs = (f' class="{cls}"' if cls else "") + (" open" if open_ else "")
    return f"<details{attrs}><summary>{summary_html}</summary>{body_html}</details>"


def capped_markdown(text: str, *, chars: int = CAP_CHARS, lines: int = CAP_LINES, empty: str = "") -> str:
    """``text`` rendered as safe HTML; a long one shows its first blocks and folds the rest under "show all"
    (cut between Markdown blocks, never inside a code fence). ``empty`` is the HTML for no text."""
    cut = fold_point(text, chars=chars, lines=lines)
    if cut is None:
        return render_markdown(text) or empty
    head, rest = text[:cut], text[cut:]
    more = rest.count("\n") + (0 if rest.endswith("\n") else 1)
    summary = f"show all ({more} more line{'s' if more != 1 else ''}, {len(rest):,} characters)"
    return render_markdown(head) + folded(f"<i>{summary}</i>", render_markdown(rest), cls="fm-more")


def fold_point(text: str, *, chars: int = CAP_CHARS, lines: int = CAP_LINES) -> int | None:
    """Where to fold ``text``: the last block boundary within the first ``chars`` characters and ``lines``
    lines; None when the text is short enough, or when folding would hide less than a fifth of it."""
    if len(text) <= chars and text.count("\n") < lines:
        return None
    window = text[:chars]
    newlines = [i for i, ch in enumerate(window) if ch == "\n"]
    if len(newlines) >= lines:
        window = window[: newlines[lines - 1] + 1]
    cut = block_boundary(window) or block_boundary(window, any_line=True)
    if cut <= 0 or len(text) - cut < len(text) // 5:
        return None
    return cut


def block_boundary(text: str, *, any_line: bool = False, before_end: bool = False) -> int:
    """Offset just past the last blank line outside fenced code (0 if none): a safe place to split Markdown
    into separately rendered pieces. With ``any_line``, any line end outside a fence will do; with
    ``before_end``, never the end of ``text`` itself (a stream's last line may still grow). A piece rendered on
    its own is still sanitized on its own, so a bad cut only looks odd."""
    pos, cut, fence = 0, 0, ""
    for line in text.splitlines(keepends=True):
        pos += len(line)
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
        elif stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif (any_line or not stripped) and line.endswith("\n") and not (before_end and pos >= len(text)):
            cut = pos
    return cut


__all__ = ["COPY_HANDLER", "REPORT_STYLE", "block_boundary", "capped_markdown", "copy_button", "fold_point",
           "folded"]
