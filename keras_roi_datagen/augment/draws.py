"""Drawing every row's parameters for one epoch: `draw`, `PARAMETERS`, `parameters_of`."""

from __future__ import annotations

import math

import numpy as np

from keras_roi_datagen.augment.ops import Augmentation
from keras_roi_datagen.augment.philox import uniforms

__all__ = ["COLUMN", "IDENTITY", "PARAMETERS", "draw", "parameters_of"]

PARAMETERS = ("zoom", "shift_x", "shift_y", "aspect", "angle", "horizontal_flip",
              "vertical_flip", "brightness", "contrast", "saturation", "hue", "erase",
              "erase_x0", "erase_y0", "erase_x1", "erase_y1", "erase_r", "erase_g", "erase_b")
"""Columns of the per-row parameter array `draw` returns (identity values when an op is off)."""

IDENTITY = {"zoom": 1.0, "aspect": 1.0, "contrast": 1.0, "saturation": 1.0}
COLUMN = {name: k for k, name in enumerate(PARAMETERS)}

# Operation numbers: the fourth counter word. Fixed forever: changing one
# changes every augmented batch ever produced with this library.
_OP_ZOOM, _OP_SHIFT, _OP_ASPECT, _OP_ROTATION, _OP_FLIP = 1, 2, 3, 4, 5
_OP_BRIGHTNESS, _OP_CONTRAST, _OP_SATURATION, _OP_HUE, _OP_ERASE, _OP_ERASE_FILL = (
    6, 7, 8, 9, 10, 11)

_ERASE_AREA = (0.02, 0.33)  # fraction of the crop, as Keras's RandomErasing `scale`
_ERASE_RATIO = (0.3, 1 / 0.3)  # width / height, log-uniform (Zhong et al., 2020)
_EPSILON = 1e-7  # Keras's backend epsilon, in RandomSaturation's factor / (1 - factor)


def _between(u: np.ndarray, pair: tuple[float, float]) -> np.ndarray:
    return pair[0] + (pair[1] - pair[0]) * u


def draw(augmentation: Augmentation, seed: int, epoch: int, rows: np.ndarray) -> np.ndarray:
    """Draws every row's parameters for one epoch.

    Args:
        augmentation: The options.
        seed: The dataset's seed.
        epoch: The epoch.
        rows: Index rows (the plan's row ids, not positions in a batch).

    Returns:
        `(len(rows), len(PARAMETERS))` `float64` array; see `PARAMETERS`.

    Example:
    >>> a = draw(Augmentation(zoom=(0.5, 2.0)), seed=1, epoch=0, rows=np.array([3, 4]))
    >>> b = draw(Augmentation(zoom=(0.5, 2.0)), seed=1, epoch=0, rows=np.array([4]))
    >>> bool(a[1, 0] == b[0, 0])
    True
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), len(PARAMETERS)), dtype=np.float64)
    for name, value in IDENTITY.items():
        out[:, COLUMN[name]] = value
    if len(rows) == 0:
        return out
    a = augmentation
    needed = [op for op, on in (
        (_OP_ZOOM, a.zoom), (_OP_SHIFT, a.shift), (_OP_ASPECT, a.aspect),
        (_OP_ROTATION, a.rotation), (_OP_FLIP, a.horizontal_flip or a.vertical_flip),
        (_OP_BRIGHTNESS, a.brightness), (_OP_CONTRAST, a.contrast),
        (_OP_SATURATION, a.saturation), (_OP_HUE, a.hue), (_OP_ERASE, a.erasing),
        (_OP_ERASE_FILL, a.erasing)) if on]
    drawn = uniforms(seed, epoch, rows, needed)

    def u(operation: int) -> np.ndarray:
        return drawn[operation]

    if a.zoom:
        out[:, COLUMN["zoom"]] = _between(u(_OP_ZOOM)[:, 0], a.zoom)
    if a.shift:
        s = u(_OP_SHIFT)
        out[:, COLUMN["shift_x"]] = _between(s[:, 0], (-a.shift, a.shift))
        out[:, COLUMN["shift_y"]] = _between(s[:, 1], (-a.shift, a.shift))
    if a.aspect:
        logs = _between(u(_OP_ASPECT)[:, 0], (math.log(a.aspect[0]), math.log(a.aspect[1])))
        out[:, COLUMN["aspect"]] = np.exp(logs)
    if a.rotation:
        out[:, COLUMN["angle"]] = _between(u(_OP_ROTATION)[:, 0], a.rotation)
    if a.horizontal_flip or a.vertical_flip:
        f = u(_OP_FLIP)
        out[:, COLUMN["horizontal_flip"]] = (f[:, 0] < 0.5) if a.horizontal_flip else 0.0
        out[:, COLUMN["vertical_flip"]] = (f[:, 1] < 0.5) if a.vertical_flip else 0.0
    if a.brightness:
        out[:, COLUMN["brightness"]] = _between(u(_OP_BRIGHTNESS)[:, 0], a.brightness) * 255.0
    if a.contrast:
        low, high = a.contrast
        out[:, COLUMN["contrast"]] = _between(u(_OP_CONTRAST)[:, 0], (1.0 - low, 1.0 + high))
    if a.saturation:
        x = _between(u(_OP_SATURATION)[:, 0], a.saturation)
        out[:, COLUMN["saturation"]] = x / (1.0 - x + _EPSILON)
    if a.hue:
        h = u(_OP_HUE)
        sign = np.where(h[:, 0] > 0.5, -1.0, 1.0)
        out[:, COLUMN["hue"]] = sign * _between(h[:, 1], a.hue) * 0.5
    if a.erasing:
        _draw_erasing(out, u(_OP_ERASE), u(_OP_ERASE_FILL), a.erasing)
    return out


def _draw_erasing(out: np.ndarray, e: np.ndarray, fill: np.ndarray, probability: float) -> None:
    area = _between(e[:, 1], _ERASE_AREA)
    ratio = np.exp(_between(e[:, 2], (math.log(_ERASE_RATIO[0]), math.log(_ERASE_RATIO[1]))))
    width = np.minimum(np.sqrt(area * ratio), 1.0)
    height = np.minimum(np.sqrt(area / ratio), 1.0)
    left = e[:, 3] * (1.0 - width)
    top = fill[:, 3] * (1.0 - height)
    out[:, COLUMN["erase"]] = e[:, 0] < probability
    out[:, COLUMN["erase_x0"]], out[:, COLUMN["erase_x1"]] = left, left + width
    out[:, COLUMN["erase_y0"]], out[:, COLUMN["erase_y1"]] = top, top + height
    for k, channel in enumerate(("erase_r", "erase_g", "erase_b")):
        out[:, COLUMN[channel]] = np.floor(fill[:, k] * 256.0)


def parameters_of(params: np.ndarray) -> dict[str, float]:
    """Names one row's parameter vector (a row of `draw`'s result)."""
    return {name: float(params[k]) for k, name in enumerate(PARAMETERS)}
