"""Presentation without widgets: records in, safe text and HTML out.

``sanitize`` makes model-written strings inert (HTML and Markdown), ``wording`` turns a call's state into
the words and colour every view shares. Below the job kinds and the view; above the records they read.
"""
