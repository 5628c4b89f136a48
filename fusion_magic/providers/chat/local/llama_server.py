"""llama-cpp-python's OpenAI-compatible server, started with fusion_magic's safe llama.cpp defaults.

    python -m fusion_magic.providers.chat.local.llama_server --model model.gguf --host 127.0.0.1 --port 8080

Takes exactly ``python -m llama_cpp.server``'s arguments. The only difference: llama.cpp's extra buffer types
follow the local worker's rule (``cpu.choose_extra_buffers``: off on CPUs with AMX, where the stock server
segfaults on its first request; on elsewhere; ``FUSION_MAGIC_LOCAL_EXTRA_BUFTS=1|0`` wins), and the decision
is printed as one line on stderr. Then point ``LLAMACPP_BASE_URL`` at it and use ``llamacpp:MODEL_ALIAS``.
"""

from __future__ import annotations

import sys

from ....core.errors import ConfigError
from . import cpu, native


def main() -> None:
    try:
        choice = cpu.extra_buffers_here()
    except ConfigError as exc:
        sys.exit(f"fusion_magic: {exc}")
    print(f"fusion_magic: {choice.note()}", file=sys.stderr, flush=True)
    native.use_plain_cpu_buffers(not choice.on)
    from llama_cpp.server.__main__ import main as server_main

    server_main()


if __name__ == "__main__":
    main()
