"""Fast path: decode only the part of a JPEG that a batch's regions need.

Pillow decodes a whole photo to crop one region of it. The optional C
extension `_jpeg_region` (built at install time against the system's
libjpeg-turbo; the package installs without it) decodes only one strip of
rows and columns spanning the regions, at the same 1/2, 1/4 or 1/8 DCT scale the Pillow
path would use (`Image.draft`). The decoded pixels are libjpeg's own, so the
crops are byte-identical to the Pillow path at that scale: each decoded strip
carries a margin wide enough for libjpeg's chroma upsampling at its edges and
for the resampling filter's support (tests check the identity).

Used only where it is exact: baseline or progressive JPEGs in YCbCr, RGB or
grayscale, EXIF orientation 1, `color_mode` `"rgb"` or `"grayscale"`. Anything
else, a file without its end-of-image marker (possibly truncated after the
regions) and any libjpeg warning (corrupt data) fall back to the Pillow path,
which also reports real errors with their kind.

`KERAS_ROI_DATAGEN_NATIVE_DECODER=0` in the environment turns the decoder off
(worker processes inherit it); `unavailable_reason()` says why it is not used.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from types import ModuleType

import numpy as np
from PIL import Image

__all__ = ["AVAILABLE", "SWITCH", "crop_rows", "unavailable_reason"]

SWITCH = "KERAS_ROI_DATAGEN_NATIVE_DECODER"
_OFF = ("0", "false", "off", "no")


def _load() -> tuple[ModuleType | None, str]:
    """The extension module, or `None` and why it cannot be used."""
    try:  # by its full name: `from keras_roi_datagen import ...` hides a missing module
        extension = importlib.import_module("keras_roi_datagen._jpeg_region")
    except ModuleNotFoundError as exc:
        if exc.name != "keras_roi_datagen._jpeg_region":
            return None, f"the C extension failed to load: {exc}"
        return None, ("the C extension keras_roi_datagen._jpeg_region is not installed (it builds "
                      "only where a C compiler and libjpeg headers exist at install time)")
    except ImportError as exc:  # built, but its libjpeg is missing or incompatible
        return None, f"the C extension failed to load: {exc}"
    return extension, ""


_native, _LOAD_PROBLEM = _load()
_SWITCH_VALUE = os.environ.get(SWITCH, "")
_SWITCHED_OFF = _SWITCH_VALUE.strip().lower() in _OFF

AVAILABLE = _native is not None and not _SWITCHED_OFF


def unavailable_reason() -> str:
    """Why the region decoder is not used, or `""` when it is.

    Returns:
        One sentence: the extension is not installed (no compiler or libjpeg
        headers at install time), failed to load (the message names the
        library), was turned off by `KERAS_ROI_DATAGEN_NATIVE_DECODER`, or by
        setting `AVAILABLE = False`.

    Example:
    ```python
    from keras_roi_datagen.decode import native
    native.AVAILABLE, native.unavailable_reason()
    ```
    """
    if AVAILABLE:
        return ""
    if _native is None:
        return _LOAD_PROBLEM
    if _SWITCHED_OFF:
        return f"turned off by the environment variable {SWITCH}={_SWITCH_VALUE}"
    return "turned off: keras_roi_datagen.decode.native.AVAILABLE is False"
Box = tuple[float, float, float, float]

# libjpeg's fancy chroma upsampling treats a crop's edge as the image's edge;
# one iMCU (16 pixels for 4:2:0) beyond the window keeps the window exact.
_UPSAMPLING_MARGIN = 16


def crop_rows(
    data: bytes,
    windows: Mapping[int, Box],
    scale: int,
    gray: bool,
    crop: Callable[[Image.Image, int, tuple[int, int], tuple[int, int]], np.ndarray],
) -> dict[int, np.ndarray] | None:
    """Crops regions of one JPEG by decoding only the strip that spans them.

    Args:
        data: The JPEG file's bytes.
        windows: Per batch position, the pixel window (in the image reduced
            by `scale`) that cropping that row reads (`crop.filter_window`).
        scale: DCT scale denominator (1, 2, 4 or 8).
        gray: Decode to grayscale (else RGB).
        crop: `(strip, position, origin, bounds) -> crop`: cuts a row's crop
            out of a decoded strip (an `"RGBX"` or `"L"` image sharing the
            decoder's buffer) that starts at `origin` in an image of
            `bounds` pixels.

    Returns:
        Per position, the crop; or `None` when this file needs the Pillow
        path (unsupported kind of JPEG, a missing end marker, or libjpeg
        reported a problem).
    """
    if _native is None:
        return None
    if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        # No end-of-image marker: the file may be cut short after the regions,
        # which only a full decode notices; let the Pillow path judge it.
        return None
    grown = {p: (w[0] - _UPSAMPLING_MARGIN, w[1] - _UPSAMPLING_MARGIN,
                 w[2] + _UPSAMPLING_MARGIN, w[3] + _UPSAMPLING_MARGIN) for p, w in windows.items()}
    # One strip spanning every region: libjpeg entropy-decodes every row down
    # to a strip's bottom across the full width anyway, so separate strips
    # would pay that again each (measured: 8 strips cost 2.4 full decodes).
    x0 = max(0, min(g[0] for g in grown.values())) * scale
    y0 = max(0, min(g[1] for g in grown.values())) * scale
    x1 = max(g[2] for g in grown.values()) * scale
    y1 = max(g[3] for g in grown.values()) * scale
    try:
        pixels, width, height, _, left, top, full_w, full_h = _native.decode_region(
            data, int(x0), int(y0), int(x1), int(y1), scale, gray)
    except ValueError:
        return None
    mode = "L" if gray else "RGBX"
    image = Image.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1)
    return {p: crop(image, p, (left, top), (full_w, full_h)) for p in windows}
