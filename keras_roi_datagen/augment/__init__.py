"""Region augmentation: parameters drawn per row, box-space windows, pixel operations.

Every random number is a pure function of `(seed, epoch, row, operation)`,
computed with the Philox4x32-10 counter-based generator (`philox`). A row's
parameters therefore do not depend on which batch it lands in, which worker
decodes it, the backend, the number of hosts or where a run was resumed; and
they do not change with the NumPy version.

The pipeline of one row (`decode` applies it; this package decides it):

1. Box space, before decoding: `context` grows the annotated box, then
   `zoom`, `aspect` and `shift` jitter it, then `crop_to_aspect_ratio`
   trims it, and `rotation` turns it. The result is a `Window` in image
   pixels (`windows`).
2. Pixel space, after resizing: flips, brightness, contrast, saturation,
   hue, random erasing, in that order, in NumPy on `uint8` crops (`pixels`).

One table of operations, `ops.OPS`, says for each `Augmentation` option how
it is checked, which Philox streams it draws from, which parameter columns it
fills and with what, and in which space it acts; `draw` (`draws`),
`Explanation` (`explain`) and `Augmentation` itself derive from it. Adding an
operation is its entry there and its effect in `windows` or `pixels`.

Modules: `philox` (the generator and the uniform draws), `ops` (the table,
`Augmentation`, `parse_augmentation`), `draws` (`draw`, `PARAMETERS`),
`windows` (`Window`, `row_window`), `pixels` (`apply_pixel_ops`), `explain`
(`Explanation`). This package imports only NumPy, Pillow and
`keras_roi_datagen.options`: no backend op ever touches the pixels.

Example:
>>> import numpy as np
>>> augmentation = parse_augmentation({"zoom": 0.2, "horizontal_flip": True})
>>> params = draw(augmentation, seed=1337, epoch=0, rows=np.arange(4))
>>> params.shape == (4, len(PARAMETERS))
True
"""

from keras_roi_datagen.augment.draws import PARAMETERS, draw, parameters_of
from keras_roi_datagen.augment.explain import Explanation
from keras_roi_datagen.augment.ops import Augmentation, parse_augmentation
from keras_roi_datagen.augment.philox import philox4x32
from keras_roi_datagen.augment.pixels import apply_pixel_ops
from keras_roi_datagen.augment.windows import Window, row_window
from keras_roi_datagen.options import BORDERS

__all__ = [
    "BORDERS",
    "PARAMETERS",
    "Augmentation",
    "Explanation",
    "Window",
    "apply_pixel_ops",
    "draw",
    "parameters_of",
    "parse_augmentation",
    "philox4x32",
    "row_window",
]
