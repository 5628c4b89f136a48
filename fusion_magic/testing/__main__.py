"""Run the emulator in the foreground: ``python -m fusion_magic.testing [--port N]``.

Prints ``export`` lines for its base URLs and fake keys (paste them into another shell, or a
notebook's ``%env``), then serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from .emulator import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fusion_magic.testing",
        description="Loopback emulator of the provider APIs fusion_magic speaks (OpenRouter, OpenAI, Ollama, ...).",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    emu = Emulator(port=args.port)
    try:
        emu.start()
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        for name, value in {**emu.env(), **emu.test_keys()}.items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"# fusion_magic emulator on {emu.url}; Ctrl-C to stop", file=sys.stderr, flush=True)
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
