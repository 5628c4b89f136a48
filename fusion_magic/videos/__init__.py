"""The video job kind: ``%%video`` generates clips with a pool of video models, plays them, and answers
questions about videos (Gemini, Omni, or ``local:frames`` offline), including generate-then-check.

Modules: ``options`` (every flag, its default and check), ``plan`` (resolve models, files and the budget
before anything is paid), ``sidecar`` (the JSON file beside each clip: the job id is written the moment a
job is accepted), ``state`` (the one place a clip changes state: the clip, its record and its sidecar
together), ``jobs`` (submit, poll, download, resume), ``understand`` (questions about a video,
fused with the ``%%fuse`` judge), ``analyse`` and ``frames_check`` (``local:frames``, PyAV in a child
process), ``engine`` (one run), ``result``, ``report``, ``events``, ``view``.
"""
