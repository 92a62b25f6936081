"""Box space: the crop window of a row, from its box, `context` and the drawn jitter.

A row's window is decided before decoding, so decoding reads only what the
window needs (region decoding and JPEG DCT scaling still apply), and the model
sees real image content, not padding, when a box grows or shifts. Parts of a
window outside the image follow the dataset's `border` policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keras_roi_datagen.augment.draws import COLUMN
from keras_roi_datagen.augment.ops import Augmentation

__all__ = ["Window", "row_window"]

@dataclass(frozen=True)
class Window:
    """A crop window in image pixels, possibly turned.

    A rectangle of `width` x `height` centred on `(cx, cy)`, turned by
    `angle` degrees (so its content turns counter-clockwise).

    Args:
        cx: Centre, x (displayed image pixels).
        cy: Centre, y.
        width: Width along the window's own x axis.
        height: Height along its y axis.
        angle: Rotation in degrees.

    Example:
    >>> window = Window.from_box((0, 0, 40, 20), angle=90)
    >>> [round(v, 6) for v in window.bounds()]
    [10.0, -10.0, 30.0, 30.0]
    """

    cx: float
    cy: float
    width: float
    height: float
    angle: float = 0.0

    @classmethod
    def from_box(cls, box: Sequence[float], angle: float = 0.0) -> Window:
        """The window of an `xyxy` box."""
        x0, y0, x1, y1 = (float(v) for v in box)
        return cls((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, float(angle))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The unrotated window as `xyxy`."""
        return (self.cx - self.width / 2, self.cy - self.height / 2,
                self.cx + self.width / 2, self.cy + self.height / 2)

    def corners(self) -> np.ndarray:
        """Returns the `(4, 2)` corners in image pixels.

        In the crop's order: top-left, top-right, bottom-right, bottom-left.
        """
        theta = math.radians(self.angle)
        cos, sin = math.cos(theta), math.sin(theta)
        local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
        local *= (self.width / 2, self.height / 2)
        x = self.cx + local[:, 0] * cos - local[:, 1] * sin
        y = self.cy + local[:, 0] * sin + local[:, 1] * cos
        return np.stack([x, y], axis=1)

    def bounds(self) -> tuple[float, float, float, float]:
        """The axis-aligned `xyxy` box around the (rotated) window."""
        if self.angle == 0:
            return self.box
        c = self.corners()
        return (float(c[:, 0].min()), float(c[:, 1].min()),
                float(c[:, 0].max()), float(c[:, 1].max()))

    def scaled(self, factor: float) -> Window:
        """The window in an image scaled by `factor` (for reduced JPEG decodes)."""
        return Window(self.cx * factor, self.cy * factor, self.width * factor,
                      self.height * factor, self.angle)

    def inside(self, width: int, height: int) -> bool:
        """Whether an unrotated window lies within a `width` x `height` image."""
        x0, y0, x1, y1 = self.box
        return self.angle == 0 and x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height

    def __repr__(self) -> str:
        x0, y0, x1, y1 = self.box
        turn = f", angle={self.angle:.2f}" if self.angle else ""
        return (f"Window(xyxy=({x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}), "
                f"size={self.width:.2f}x{self.height:.2f}{turn})")


def row_window(
    box: Sequence[float],
    params: np.ndarray | None,
    augmentation: Augmentation | None,
    image_size: tuple[int, int],
    output_size: tuple[int, int],
    aspect_ratio: str = "squash",
    border: str = "constant",
) -> Window:
    """The crop window of one row: its box with context, jitter, aspect trim and rotation.

    Args:
        box: The row's box, `xyxy` in displayed pixels, clipped to the image.
        params: The row's parameters (a row of `draw`'s result), or `None`.
        augmentation: The options (for `context`), or `None`.
        image_size: The image's displayed `(width, height)`.
        output_size: The crop's `(height, width)`.
        aspect_ratio: `"squash"`, `"crop"` (`crop_to_aspect_ratio`) or
            `"pad"` (`pad_to_aspect_ratio`; the window is kept, the crop padded).
        border: One of `BORDERS`; `"clip"` clips the window to the image.

    Returns:
        The `Window`. Without augmentation and with `"squash"` it is the box.

    Example:
    >>> row_window((10, 20, 50, 40), None, None, image_size=(100, 100), output_size=(32, 32),
    ...            aspect_ratio="crop")
    Window(xyxy=(20.00, 20.00, 40.00, 40.00), size=20.00x20.00)
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    angle = 0.0
    if augmentation is not None and params is not None:
        grow = 1.0 + 2.0 * augmentation.context
        width, height = width * grow, height * grow
        p = params
        cx += p[COLUMN["shift_x"]] * width
        cy += p[COLUMN["shift_y"]] * height
        stretch = math.sqrt(p[COLUMN["aspect"]])
        width *= p[COLUMN["zoom"]] * stretch
        height *= p[COLUMN["zoom"]] / stretch
        angle = float(p[COLUMN["angle"]])
    if border == "clip":
        cx, cy, width, height = _clip(cx, cy, width, height, image_size)
    if aspect_ratio == "crop":
        target = output_size[1] / output_size[0]
        if width / height > target:
            width = height * target
        else:
            height = width / target
    return Window(cx, cy, width, height, angle)


def _clip(cx: float, cy: float, width: float, height: float,
          image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    x0, x1 = max(cx - width / 2, 0.0), min(cx + width / 2, float(image_size[0]))
    y0, y1 = max(cy - height / 2, 0.0), min(cy + height / 2, float(image_size[1]))
    if x1 - x0 <= 0 or y1 - y0 <= 0:  # shifted wholly outside: keep a sliver at the edge
        x0, x1 = (min(max(x0, 0.0), image_size[0] - 1.0),) * 2
        y0, y1 = (min(max(y0, 0.0), image_size[1] - 1.0),) * 2
        x1, y1 = x0 + 1.0, y0 + 1.0
    return (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0

