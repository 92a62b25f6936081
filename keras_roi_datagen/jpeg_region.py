"""Deprecated: the region decoder moved to `keras_roi_datagen.decode.native` (goes in a later release).

This name is the new module itself (`sys.modules` points here at it), so
reading or monkeypatching `keras_roi_datagen.jpeg_region.AVAILABLE` reads or
changes what the decoder uses. Importing it warns once per process.
"""

from __future__ import annotations

import sys
import warnings

from keras_roi_datagen.decode import native
from keras_roi_datagen.decode.native import AVAILABLE, crop_rows

__all__ = ["AVAILABLE", "crop_rows"]

warnings.warn("`keras_roi_datagen.jpeg_region` is deprecated; import "
              "`keras_roi_datagen.decode.native`.", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = native
