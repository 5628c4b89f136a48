"""The view layer: ipywidgets panes that job kinds compose into their live views (model text reaches them
only through ``present.sanitize``). It consumes events and records; it knows nothing of HTTP or providers.

    pane = MemberPane("gpt-4o", "openai:gpt-4o")
    pane.start(response); pane.delta(response, now); pane.finish(response)
"""

from __future__ import annotations

from .tabs import LedgerPane, MarkdownStream, MemberPane, Pane, StreamingPane

__all__ = ["LedgerPane", "MarkdownStream", "MemberPane", "Pane", "StreamingPane"]
