"""``make demo``: execute a notebook headlessly (a real kernel, through nbclient) and print what each
cell showed, as a terminal would. With no key set it runs on the bundled local model.

    python -m fusion_magic.demo notebooks/01-quickstart.ipynb
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

BAR = "─" * 100


def _cell_text(outputs: list[dict]) -> list[str]:
    parts: list[str] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(out.get("text", "").rstrip())
        elif kind in ("display_data", "execute_result"):
            plain = out.get("data", {}).get("text/plain", "")
            parts.append(plain.rstrip())
        elif kind == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return [p for p in parts if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_magic.demo")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--save", type=Path, help="also write the executed notebook here")
    ns = parser.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(ns.notebook, as_version=4)
    started = time.monotonic()
    print(f"Running {ns.notebook} in a headless kernel...", flush=True)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ns.notebook.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        print(f"A cell failed:\n{exc}", file=sys.stderr)
        return 1
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts = _cell_text(cell.get("outputs", []))
        if not texts:
            continue
        print(BAR)
        print("In: " + cell.source.strip().replace("\n", "\n    "))
        print(BAR)
        print("\n".join(texts))
    print(BAR)
    print(f"Done in {time.monotonic() - started:.1f}s (kernel start and model load included).")
    if ns.save:
        nbformat.write(nb, ns.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
