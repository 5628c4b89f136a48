"""The IPython face: the table of magics the extension registers (``extension``), the magics (``magics``),
parsing their flags (``args``) and ``%fuse list`` (``listing``). The only place that knows IPython, and
the only one that makes errors one-line.
"""
