"""llama-cpp-python's OpenAI-compatible server, started with fusion_magic's safe llama.cpp defaults.

    python -m fusion_magic.providers.chat.local.llama_server --model model.gguf --host 127.0.0.1 --port 8080

Takes exactly ``python -m llama_cpp.server``'s arguments. The only difference: the model loads with
llama.cpp's extra buffer types off (see ``native.py``), so the server does not segfault on its first
request on CPUs with AMX. Then point ``LLAMACPP_BASE_URL`` at it and use ``llamacpp:MODEL_ALIAS``.
"""

from __future__ import annotations

from . import native


def main() -> None:
    native.use_plain_cpu_buffers(not native.extra_buffers_allowed())
    from llama_cpp.server.__main__ import main as server_main

    server_main()


if __name__ == "__main__":
    main()
