"""`Explanation`: what augmentation did to one row in one epoch (`RoiDataset.explain`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_roi_datagen.augment.ops import PIPELINE
from keras_roi_datagen.augment.windows import Window

__all__ = ["Explanation"]

@dataclass(frozen=True)
class Explanation:
    """What augmentation did to one row in one epoch (`RoiDataset.explain`).

    Args:
        row: The index row.
        label: The row's label in the source table.
        epoch: The epoch.
        path: The image file.
        image_size: The image's displayed `(width, height)`.
        box: The annotated box, `xyxy` pixels, clipped to the image.
        window: The crop window in image pixels.
        parameters: Every drawn parameter, by name (identity values for
            options that are off): `zoom`, `shift_x`/`shift_y` (fractions of
            the box after `context`), `aspect`, `angle` (degrees), the flips
            (0 or 1), `brightness` (added to 0..255 pixels), `contrast` and
            `saturation` (multipliers), `hue` (turns), `erase` (0 or 1) and
            the erased rectangle (fractions of the crop) and colour.
        border: The border policy for window parts outside the image.

    Example:
    ```python
    ds = RoiDataset("via_export.csv", augment=Augmentation(zoom=0.2), seed=1)
    ds.explain(0)  # Explanation(row=0, ..., window=Window(...), parameters={'zoom': 0.8716})
    ```
    """

    row: int
    label: Any
    epoch: int
    path: str
    image_size: tuple[int, int]
    box: tuple[float, float, float, float]
    window: Window
    parameters: dict[str, float]
    border: str

    @property
    def corners(self) -> np.ndarray:
        """The window's corners in image pixels (see `Window.corners`)."""
        return self.window.corners()

    def __repr__(self) -> str:
        changed: dict[str, Any] = {}
        for op in PIPELINE:
            changed.update(op.shown(self.parameters))
        box = ", ".join(f"{v:.2f}" for v in self.box)
        return (f"Explanation(row={self.row}, label={self.label!r}, epoch={self.epoch}, "
                f"image={self.path!r} {self.image_size[0]}x{self.image_size[1]}, "
                f"box=({box}), window={self.window!r}, border={self.border!r}, "
                f"parameters={changed})")
