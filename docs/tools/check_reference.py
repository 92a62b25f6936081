"""Fails when a public name is missing from the built API reference.

Public names are those `keras_roi_datagen.__all__` exports and the `__all__`
of the subpackages `tests/test_public_api.py` documents (`DOCUMENTED`). The
reference is the inventory mkdocstrings writes (`site/objects.inv`): a name
counts when its page renders it.

    python docs/tools/check_reference.py site/objects.inv
"""

from __future__ import annotations

import importlib
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def inventory(path: Path) -> set[str]:
    """The object names of a Sphinx-format inventory (version 2)."""
    data = path.read_bytes()
    lines = data.split(b"\n", 4)
    assert lines[0] == b"# Sphinx inventory version 2", lines[0]
    return {line.split(" ", 1)[0] for line in zlib.decompress(lines[4]).decode().splitlines()}


def public_names() -> list[str]:
    """Every public name, as `module.name`."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_public_api import DOCUMENTED

    import keras_roi_datagen

    names = [f"keras_roi_datagen.{n}" for n in keras_roi_datagen.__all__ if n != "__version__"]
    for module in DOCUMENTED:
        names += [f"{module}.{n}" for n in importlib.import_module(module).__all__]
    return names


def main(argv: list[str]) -> int:
    """Prints each public name missing from the inventory; exit status 1 if any."""
    found = inventory(Path(argv[0]))
    missing = [name for name in public_names() if name not in found]
    for name in missing:
        print(f"not in the API reference: {name}")
    print(f"API reference: {len(public_names()) - len(missing)} public names documented, "
          f"{len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
