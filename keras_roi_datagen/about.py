"""What this installation is: versions, the Keras backend, the decode path, optional extras.

`info()` answers without importing Keras, a backend or an optional extra
(versions come from the installed distributions' metadata), so
`keras-roi-datagen --version` prints it in well under a second. The line a
bug report needs most is the decode path: the C region decoder
(`decode.native`) or Pillow alone, and why.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from dataclasses import dataclass, field

from keras_roi_datagen.decode import native

__all__ = ["EXTRAS", "PackageInfo", "info"]

# Optional distributions, by the feature they bring (the pyproject extras).
EXTRAS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "jax": ("jax",),
    "torch": ("torch",),
    "fsspec": ("fsspec",),
    "s3fs": ("s3fs",),
    "gcsfs": ("gcsfs",),
    "pyarrow": ("pyarrow",),
    "pyyaml": ("PyYAML",),
}


@dataclass(frozen=True)
class PackageInfo:
    """An installation, as `info()` finds it; `str()` gives the lines `--version` prints.

    Args:
        version: keras-roi-datagen's version.
        python: Python's implementation and version, e.g. `"CPython 3.11.7"`.
        platform: Operating system and machine.
        keras: Keras's version, or `None` when Keras is not installed.
        backend: The Keras backend this process uses or would use.
        backend_source: Where `backend` comes from: `"keras"` (Keras is
            imported), `"KERAS_BACKEND"`, the `keras.json` path, or
            `"default"`.
        numpy: NumPy's version.
        pandas: pandas' version.
        pillow: Pillow's version (Pillow-SIMD's when that is installed).
        pillow_simd: Whether the installed Pillow is Pillow-SIMD.
        libjpeg: The libjpeg Pillow decodes with, e.g. `"libjpeg-turbo 3.0.4"`.
        native_decoder: Whether JPEG regions are decoded by the C region
            decoder (`keras_roi_datagen._jpeg_region`); else Pillow decodes
            whole images.
        native_reason: Why the C decoder is not used (`""` when it is).
        extras: Each optional extra (`EXTRAS`) and its version, `None` when
            not installed.
    """

    version: str
    python: str
    platform: str
    keras: str | None
    backend: str
    backend_source: str
    numpy: str | None
    pandas: str | None
    pillow: str | None
    pillow_simd: bool
    libjpeg: str
    native_decoder: bool
    native_reason: str
    extras: dict[str, str | None] = field(default_factory=dict)

    @property
    def decode_path(self) -> str:
        """`"native"` (the C region decoder, then Pillow for the rest) or `"pillow"`."""
        return "native" if self.native_decoder else "pillow"

    def to_dict(self) -> dict[str, object]:
        """The fields and `decode_path`, as JSON-ready values."""
        return {**{name: getattr(self, name) for name in self.__dataclass_fields__},
                "decode_path": self.decode_path}

    def __str__(self) -> str:
        decoder = ("C region decoder (keras_roi_datagen._jpeg_region), Pillow for the rest"
                   if self.native_decoder else f"Pillow only: {self.native_reason}")
        pillow = f"Pillow{'-SIMD' if self.pillow_simd else ''} {self.pillow}"
        found = [f"{name} {version}" for name, version in self.extras.items() if version]
        missing = [name for name, version in self.extras.items() if not version]
        lines = [
            f"keras-roi-datagen {self.version}",
            f"python:      {self.python} on {self.platform}",
            f"keras:       {self.keras or 'not installed'}; backend {self.backend} "
            f"(from {self.backend_source})",
            f"libraries:   numpy {self.numpy}, pandas {self.pandas}, {pillow} ({self.libjpeg})",
            f"decode path: {self.decode_path}: {decoder}",
            f"extras:      {', '.join(found) or 'none'}"
            + (f"; not installed: {', '.join(missing)}" if missing else ""),
        ]
        return "\n".join(lines)


def info() -> PackageInfo:
    """Describes this installation: versions, backend, decode path and extras.

    Imports nothing heavy: versions are read from the installed metadata, and
    the backend is the one Keras would pick (`KERAS_BACKEND`, then
    `keras.json`), or the one it uses when it is already imported.

    Returns:
        A `PackageInfo`; print it for the lines `keras-roi-datagen --version`
        shows.

    Example:
    ```python
    import keras_roi_datagen
    about = keras_roi_datagen.info()
    print(about)                # what to paste into a bug report
    about.decode_path           # "native" or "pillow"
    ```
    """
    from keras_roi_datagen import __version__

    backend, source = _keras_backend()
    return PackageInfo(
        version=__version__,
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=f"{platform.system()} {platform.machine()}",
        keras=_version("keras"),
        backend=backend,
        backend_source=source,
        numpy=_version("numpy"),
        pandas=_version("pandas"),
        pillow=_version("Pillow-SIMD") or _version("pillow"),
        pillow_simd=_version("Pillow-SIMD") is not None,
        libjpeg=_pillow_libjpeg(),
        native_decoder=native.AVAILABLE,
        native_reason=native.unavailable_reason(),
        extras={name: next(filter(None, map(_version, names)), None)
                for name, names in EXTRAS.items()},
    )


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _keras_backend() -> tuple[str, str]:
    """The backend and where it comes from, in Keras's order, without importing Keras."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return str(keras.config.backend()), "keras"
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    config = os.path.join(home, "keras.json")
    try:
        with open(config, encoding="utf-8") as handle:
            return str(json.load(handle)["backend"]), config
    except (OSError, ValueError, KeyError, TypeError):
        return "tensorflow", "default"


def _pillow_libjpeg() -> str:
    from PIL import features

    version = features.version("jpg")
    if version is None:
        return "no JPEG support"
    turbo = features.version_feature("libjpeg_turbo")
    return f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {version}"
