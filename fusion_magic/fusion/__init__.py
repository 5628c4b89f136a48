"""The ``fuse`` job kind: one prompt to a pool of models, then a judge. ``options`` (every per-run option,
once), ``requests`` (every message and token cap it sends), ``engine`` (plan and run), ``pool``
(fan-out, quorum, deadline), ``modes/`` (one module per judged mode, verdict parsing, the table of modes,
the vote), ``estimate``, ``result`` and ``report`` (the run as a document), ``events`` (what a fused run
adds to the call events), ``view`` (its live widget view) and ``progress`` (its terminal lines).
"""
