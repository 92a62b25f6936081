"""Deprecated: the decoder moved to `keras_roi_datagen.decode` (this module goes in a later release).

Every public name this module had is still here, as the same object as in
its new home (`INTERPOLATIONS` and `COLOR_MODES` keep their old values:
filter name -> Pillow filter, colour mode -> channels; the option
vocabularies now live in `keras_roi_datagen.options`). Importing it warns
once per process.
"""

from __future__ import annotations

import warnings

from PIL import Image

from keras_roi_datagen.decode import (
    PIXEL_ALIGNMENT,
    BatchJob,
    BatchResult,
    Cut,
    DecodeOptions,
    ImageProblem,
    RowFailure,
    crop_region,
    decode_batch,
    load_image,
    new_pixels,
    read_image_header,
    read_image_size,
    sample_window,
)
from keras_roi_datagen.decode.crop import _FILTERS, filter_window, read_box, sample_region
from keras_roi_datagen.options import ASPECT_RATIOS
from keras_roi_datagen.options import COLOR_MODES as _COLOR_MODES

__all__ = [
    "ASPECT_RATIOS",
    "COLOR_MODES",
    "INTERPOLATIONS",
    "PIXEL_ALIGNMENT",
    "BatchJob",
    "BatchResult",
    "Cut",
    "DecodeOptions",
    "ImageProblem",
    "RowFailure",
    "crop_region",
    "decode_batch",
    "filter_window",
    "load_image",
    "new_pixels",
    "read_box",
    "read_image_header",
    "read_image_size",
    "sample_region",
    "sample_window",
]

INTERPOLATIONS: dict[str, Image.Resampling] = {
    name: _FILTERS[name] for name in ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
}
"""Filter names (in this module's old order) and their Pillow filters."""

COLOR_MODES: dict[str, int] = dict(_COLOR_MODES)
"""Colour modes and their channel counts (`options.COLOR_MODES`)."""

warnings.warn("`keras_roi_datagen.imaging` is deprecated; import from `keras_roi_datagen.decode` "
              "(option vocabularies from `keras_roi_datagen.options`).",
              DeprecationWarning, stacklevel=2)
