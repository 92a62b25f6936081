"""Smoke test of an installed keras-roi-datagen, run from a folder outside the checkout.

`nox -s package` copies this file and `tests/annotation_scene.py` into an
empty temporary folder and runs it with the interpreter the wheel (or the
sdist) was installed for, so `import keras_roi_datagen` can only find the
installed package. It checks what an editable install cannot:

- the package comes from the install, not from `--checkout`;
- `info()` names the decode path expected (`--expect native` for a wheel
  built where libjpeg headers exist, `pillow` for one built without them),
  and `keras-roi-datagen --version` prints it;
- the console script runs (`demo`, `validate`);
- one batch from each annotation format (the scene `annotation_scene.py`
  writes in every format);
- a pass with `use_multiprocessing=True` (worker processes start
  `python -m keras_roi_datagen.workers`) gives the bytes of a pass on threads;
- with `--expect native`, the region decoder really decodes the demo JPEGs.

    python package_smoke.py --checkout /path/to/repo --expect native
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from annotation_scene import TRUTH, WRITERS


def check_installed(checkout: Path) -> None:
    import keras_roi_datagen

    where = Path(keras_roi_datagen.__file__).resolve()
    assert where.parent != checkout / "keras_roi_datagen", f"imported from the checkout: {where}"
    print(f"installed package: {where.parent}")


def check_info(expect: str) -> None:
    import keras_roi_datagen

    about = keras_roi_datagen.info()
    assert about.decode_path == expect, f"decode path {about.decode_path}, expected {expect}: {about}"
    if expect == "pillow":  # and it says why: built without libjpeg headers
        assert "is not installed" in about.native_reason, about.native_reason
    shown = subprocess.run([*console_script(), "--version"], capture_output=True, text=True,
                           check=True)
    assert f"decode path: {expect}" in shown.stdout, shown.stdout
    print(shown.stdout, end="")


def console_script() -> list[str]:
    """The installed `keras-roi-datagen` script (in a `--target` folder's bin, or the venv's)."""
    for folder in (*(Path(p) / "bin" for p in sys.path if p), Path(sys.executable).parent):
        script = folder / "keras-roi-datagen"
        if script.exists():
            return [str(script)]
    raise AssertionError("the keras-roi-datagen console script is not installed")


def check_cli(folder: Path) -> Path:
    command = console_script()
    subprocess.run([*command, "demo", str(folder)], check=True, capture_output=True)
    table = folder / "via_region_data.csv"
    done = subprocess.run([*command, "validate", str(table)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"console script: demo and validate ok ({command[0]})")
    return table


def check_formats(folder: Path) -> None:
    from keras_roi_datagen import RoiDataset

    for name, write in sorted(WRITERS.items()):
        source = write(folder / name)
        x, _ = RoiDataset(source, y_cols="label", image_size=(16, 16), batch_size=4,
                          shuffle=False)[0]
        assert np.asarray(x).shape == (len(TRUTH), 16, 16, 3), (name, np.asarray(x).shape)
    print(f"one batch from each format: {', '.join(sorted(WRITERS))}")


def check_workers(table: Path, expect: str) -> None:
    from keras_roi_datagen import RoiDataset
    from keras_roi_datagen.decode import native

    options = {"y_cols": ("name", "type"), "image_size": (32, 32), "batch_size": 8, "seed": 3}
    calls = 0
    if expect == "native":
        decode_region = native._native.decode_region  # type: ignore[union-attr]

        def counting(*args: object) -> object:
            nonlocal calls
            calls += 1
            return decode_region(*args)

        native._native = type("Counted", (), {"decode_region": staticmethod(counting)})
    with RoiDataset(table, workers=2, **options) as threads:
        expected = [np.asarray(x).tobytes() for x, _ in threads.iter_batches()]
    with RoiDataset(table, workers=2, use_multiprocessing=True, **options) as processes:
        got = [np.asarray(x).tobytes() for x, _ in processes.iter_batches()]
    assert got == expected, "worker processes gave other bytes than threads"
    if expect == "native":
        assert calls > 0, "the region decoder decoded nothing"
    print(f"use_multiprocessing=True: {len(got)} batches, the bytes of the threaded pass"
          + (f"; region decoder used {calls} times" if expect == "native" else ""))


def main(argv: list[str] | None = None) -> int:
    """Runs every check; an `AssertionError` names what failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", type=Path, required=True, help="the repository's folder")
    parser.add_argument("--expect", choices=("native", "pillow"), required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    check_installed(args.checkout.resolve())
    check_info(args.expect)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table = check_cli(folder / "demo")
        check_formats(folder)
        check_workers(table, args.expect)
    print(f"smoke test ({args.expect}): ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
