"""Region augmentation: parameters drawn per row, box-space windows, pixel operations.

Every random number is a pure function of `(seed, epoch, row, operation)`,
computed with the Philox4x32-10 counter-based generator (Salmon et al., 2011;
the generator of Random123, cuRAND and TensorFlow's stateless ops) written
here in NumPy integer arithmetic. A row's parameters therefore do not depend
on which batch it lands in, which worker decodes it, the backend, the number
of hosts or where a run was resumed; and they do not change with the NumPy
version (only `uint64` multiplies, shifts and xors are used, no NumPy
distribution whose stream NumPy does not promise).

The pipeline of one row (`imaging` applies it; this module decides it):

1. Box space, before decoding: `context` grows the annotated box, then
   `zoom`, `aspect` and `shift` jitter it, then `crop_to_aspect_ratio`
   trims it, and `rotation` turns it. The result is a `Window` in image
   pixels. Decoding reads only what the window needs, so region decoding
   and JPEG DCT scaling still apply. Parts of a window outside the image
   follow the dataset's `border` policy.
2. Pixel space, after resizing: flips, brightness, contrast, saturation,
   hue, random erasing, in that order, in NumPy on `uint8` crops.

This module imports only NumPy and Pillow: no backend op ever touches the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from PIL import Image

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

BORDERS = ("constant", "reflect", "clip")
"""Policies for window parts outside the image: zeros, mirrored image, or a window clipped to it."""

PARAMETERS = ("zoom", "shift_x", "shift_y", "aspect", "angle", "horizontal_flip",
              "vertical_flip", "brightness", "contrast", "saturation", "hue", "erase",
              "erase_x0", "erase_y0", "erase_x1", "erase_y1", "erase_r", "erase_g", "erase_b")
"""Columns of the per-row parameter array `draw` returns (identity values when an op is off)."""

_IDENTITY = {"zoom": 1.0, "aspect": 1.0, "contrast": 1.0, "saturation": 1.0}
_COLUMN = {name: k for k, name in enumerate(PARAMETERS)}

# Operation numbers: the fourth counter word. Fixed forever: changing one
# changes every augmented batch ever produced with this library.
_OP_ZOOM, _OP_SHIFT, _OP_ASPECT, _OP_ROTATION, _OP_FLIP = 1, 2, 3, 4, 5
_OP_BRIGHTNESS, _OP_CONTRAST, _OP_SATURATION, _OP_HUE, _OP_ERASE, _OP_ERASE_FILL = (
    6, 7, 8, 9, 10, 11)

_ERASE_AREA = (0.02, 0.33)  # fraction of the crop, as Keras's RandomErasing `scale`
_ERASE_RATIO = (0.3, 1 / 0.3)  # width / height, log-uniform (Zhong et al., 2020)
_EPSILON = 1e-7  # Keras's backend epsilon, in RandomSaturation's factor / (1 - factor)


# -- the generator ----------------------------------------------------------------------------

_MASK = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_SHIFT = np.uint64(32)


def philox4x32(counter: np.ndarray, key: Sequence[int]) -> np.ndarray:
    """Philox4x32-10: four 32-bit words for each 4-word counter, under a 2-word key.

    Args:
        counter: `(n, 4)` integers below 2**32.
        key: Two integers below 2**32.

    Returns:
        `(n, 4)` `uint64` array of 32-bit outputs.

    Example:
    >>> [hex(v) for v in philox4x32(np.zeros((1, 4), np.uint64), (0, 0))[0]]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c = np.asarray(counter, dtype=np.uint64) & _MASK
    c0, c1, c2, c3 = (c[:, i].copy() for i in range(4))
    k0, k1 = np.uint64(key[0]) & _MASK, np.uint64(key[1]) & _MASK
    for round_no in range(10):
        if round_no:
            k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT) ^ c1 ^ k0, p1 & _MASK, (p0 >> _SHIFT) ^ c3 ^ k1,
                          p0 & _MASK)
    return np.stack([c0, c1, c2, c3], axis=1)


def _uniforms(seed: int, epoch: int, rows: np.ndarray, operations: Sequence[int]
              ) -> dict[int, np.ndarray]:
    """Per operation, `(len(rows), 4)` floats in (0, 1) keyed on (seed, epoch, row, operation)."""
    rows = np.asarray(rows, dtype=np.uint64)
    n = len(rows)
    counter = np.empty((n * len(operations), 4), dtype=np.uint64)
    counter[:, 0] = np.tile(rows & _MASK, len(operations))
    counter[:, 1] = np.tile(rows >> _SHIFT, len(operations))
    counter[:, 2] = np.uint64(epoch) & _MASK
    counter[:, 3] = np.repeat(np.asarray(operations, dtype=np.uint64), n)
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    words = philox4x32(counter, (seed & 0xFFFFFFFF, seed >> 32))
    values = (words.astype(np.float64) + 0.5) / 2.0**32
    return {op: values[k * n:(k + 1) * n] for k, op in enumerate(operations)}


# -- the options ------------------------------------------------------------------------------


def _range(name: str, value: Any, low: float, high: float,
           number: Callable[[float], tuple[float, float]]) -> tuple[float, float] | None:
    """A `(low, high)` range from a pair, or from a number through `number(v)`; checked."""
    if value is None:
        return None
    rule = (f"`{name}` must be a number or a pair of numbers (low, high) within "
            f"[{low}, {high}]. Received: {name}={value!r}")

    def real(v: Any) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    if real(value):
        if not math.isfinite(float(value)) or float(value) < 0:
            raise ValueError(rule)
        pair = number(float(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(real(v) for v in value):
        pair = (float(value[0]), float(value[1]))
    else:
        raise ValueError(rule)
    if not all(math.isfinite(v) and low <= v <= high for v in pair) or pair[0] > pair[1]:
        raise ValueError(rule)
    return pair


def _around_one(v: float) -> tuple[float, float]:
    return (1.0 - v, 1.0 + v)


def _around_zero(v: float) -> tuple[float, float]:
    return (-v, v)


def _from_zero(v: float) -> tuple[float, float]:
    return (0.0, v)


def _twice(v: float) -> tuple[float, float]:
    return (v, v)


def _fraction(name: str, value: Any, high: float) -> float:
    if (not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool)
            or not math.isfinite(float(value)) or not 0 <= float(value) <= high):
        raise ValueError(f"`{name}` must be a number in [0, {high}]. Received: {name}={value!r}")
    return float(value)


@dataclass(frozen=True)
class Augmentation:
    """What to randomise in each crop; every option is off by default.

    Box-space options move the crop window before decoding (so the model sees
    real image content, not padding, when a box grows or shifts); pixel options
    change the resized crop. Each row draws its own parameters from
    `(seed, epoch, row)`: see `RoiDataset.explain`.

    Args:
        zoom: Range of the box's scale factor, e.g. `(0.9, 1.2)` (above 1:
            a larger window, more context, the object looks smaller). A
            number `z` means `(1 - z, 1 + z)`. Defaults to `None` (off).
        shift: Largest move of the box centre, as a fraction of the box's
            width (horizontally) and height (vertically), e.g. `0.1`.
            Defaults to `0.0`.
        aspect: Range of the aspect-ratio change (width / height multiplied
            by a factor drawn log-uniformly in it, area kept), e.g.
            `(0.8, 1.25)`. A number `a` means `(1 - a, 1 + a)`. Defaults to
            `None`.
        context: Fixed margin added on every side of the box, as a fraction
            of its width and height, before any jitter: `0.5` doubles both
            sides. Defaults to `0.0`.
        horizontal_flip: Mirror half of the crops left-right. Defaults to `False`.
        vertical_flip: Mirror half of the crops top-bottom. Defaults to `False`.
        rotation: Range of the window's rotation in degrees; the crop's
            content turns counter-clockwise for positive angles (as Keras's
            `RandomRotation`). A number `r` means `(-r, r)`. Defaults to `None`.
        brightness: Keras's `RandomBrightness` factor: a number `f` in
            [0, 1] means `(-f, f)`; a pair in [-1, 1] is `(low, high)`. A drawn
            value `d` adds `d * 255` to every pixel (clipped to 0..255).
            Defaults to `None`.
        contrast: Keras's `RandomContrast` factor as its documentation states
            it: a number `f` in [0, 1] means the contrast factor is drawn in
            `[1 - f, 1 + f]`; a pair `(low, high)` means `[1 - low, 1 + high]`.
            Each channel becomes `(x - mean) * factor + mean`, clipped.
            Defaults to `None`.
        saturation: Keras's `RandomSaturation` factor: a number `f` in [0, 1]
            draws `x` in `[0, f]`, a pair draws in `[low, high]`; the HSV
            saturation is multiplied by `x / (1 - x)`, so `0.5` keeps it, `0`
            is grayscale and values near `1` saturate fully. A symmetric
            jitter is a pair around 0.5, e.g. `(0.4, 0.6)`. Defaults to `None`.
        hue: Keras's `RandomHue` factor: a number `f` in [0, 1] draws `x` in
            `[0, f]`, a pair in `[low, high]`; the hue turns by `x / 2` of a
            full turn in a random direction. Defaults to `None`.
        erasing: Probability that a random rectangle of the crop (2% to 33%
            of its area) is filled with one random colour. Defaults to `0.0`.

    Example:
    ```python
    augment = Augmentation(zoom=(0.9, 1.2), shift=0.1, horizontal_flip=True,
                           brightness=0.2, contrast=0.2)
    ds = RoiDataset("via_export.csv", augment=augment, seed=1337)
    ds.explain(0)  # the parameters and window of row 0 in the current epoch
    ```
    """

    zoom: tuple[float, float] | None = None
    shift: float = 0.0
    aspect: tuple[float, float] | None = None
    context: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    rotation: tuple[float, float] | None = None
    brightness: tuple[float, float] | None = None
    contrast: tuple[float, float] | None = None
    saturation: tuple[float, float] | None = None
    hue: tuple[float, float] | None = None
    erasing: float = 0.0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("zoom", _range("zoom", self.zoom, 1e-3, 1e3, _around_one))
        put("shift", _fraction("shift", self.shift, 10.0))
        put("aspect", _range("aspect", self.aspect, 1e-3, 1e3, _around_one))
        put("context", _fraction("context", self.context, 10.0))
        for name in ("horizontal_flip", "vertical_flip"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"`{name}` must be True or False. "
                                 f"Received: {name}={getattr(self, name)!r}")
            put(name, bool(getattr(self, name)))
        put("rotation", _range("rotation", self.rotation, -360.0, 360.0, _around_zero))
        put("brightness", _range("brightness", self.brightness, -1.0, 1.0, _around_zero))
        # Keras's RandomContrast: a number f is (f, f), meaning [1 - f, 1 + f].
        put("contrast", _range("contrast", self.contrast, 0.0, 1.0, _twice))
        put("saturation", _range("saturation", self.saturation, 0.0, 1.0, _from_zero))
        put("hue", _range("hue", self.hue, 0.0, 1.0, _from_zero))
        put("erasing", _fraction("erasing", self.erasing, 1.0))

    @property
    def changes_pixels(self) -> bool:
        """Whether any option changes the resized crop (pixel space)."""
        return bool(self.horizontal_flip or self.vertical_flip or self.brightness
                    or self.contrast or self.saturation or self.hue or self.erasing)

    def to_dict(self) -> dict[str, Any]:
        """Returns the options that are on, as JSON-able data (the inverse of `parse_augmentation`)."""
        defaults = {f.name: f.default for f in fields(Augmentation)}
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if v != defaults[k]}

    def __repr__(self) -> str:
        on = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}"
                       for k, v in self.to_dict().items())
        return f"Augmentation({on})"


def parse_augmentation(value: Augmentation | Mapping[str, Any] | None) -> Augmentation | None:
    """Returns an `Augmentation` from the `augment=` argument of a dataset.

    Args:
        value: An `Augmentation`, a dict of its keyword names, or `None`.

    Returns:
        The `Augmentation`, or `None` when nothing is randomised.

    Raises:
        ValueError: For an unknown option name or a bad value.

    Example:
    >>> parse_augmentation({"zoom": [0.9, 1.2], "horizontal_flip": True}).zoom
    (0.9, 1.2)
    """
    if value is None or isinstance(value, Augmentation):
        augmentation = value
    elif isinstance(value, Mapping):
        names = [f.name for f in fields(Augmentation)]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"`augment` accepts the options {names}; {unknown} are not among "
                             f"them. Received: augment={dict(value)!r}")
        augmentation = Augmentation(**value)
    else:
        raise ValueError("`augment` must be an `Augmentation`, a dict of its options, or None. "
                         f"Received: augment={value!r}")
    if augmentation is None or not augmentation.to_dict():
        return None
    return augmentation


# -- drawing parameters -----------------------------------------------------------------------


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
    for name, value in _IDENTITY.items():
        out[:, _COLUMN[name]] = value
    if len(rows) == 0:
        return out
    a = augmentation
    needed = [op for op, on in (
        (_OP_ZOOM, a.zoom), (_OP_SHIFT, a.shift), (_OP_ASPECT, a.aspect),
        (_OP_ROTATION, a.rotation), (_OP_FLIP, a.horizontal_flip or a.vertical_flip),
        (_OP_BRIGHTNESS, a.brightness), (_OP_CONTRAST, a.contrast),
        (_OP_SATURATION, a.saturation), (_OP_HUE, a.hue), (_OP_ERASE, a.erasing),
        (_OP_ERASE_FILL, a.erasing)) if on]
    drawn = _uniforms(seed, epoch, rows, needed)

    def u(operation: int) -> np.ndarray:
        return drawn[operation]

    if a.zoom:
        out[:, _COLUMN["zoom"]] = _between(u(_OP_ZOOM)[:, 0], a.zoom)
    if a.shift:
        s = u(_OP_SHIFT)
        out[:, _COLUMN["shift_x"]] = _between(s[:, 0], (-a.shift, a.shift))
        out[:, _COLUMN["shift_y"]] = _between(s[:, 1], (-a.shift, a.shift))
    if a.aspect:
        logs = _between(u(_OP_ASPECT)[:, 0], (math.log(a.aspect[0]), math.log(a.aspect[1])))
        out[:, _COLUMN["aspect"]] = np.exp(logs)
    if a.rotation:
        out[:, _COLUMN["angle"]] = _between(u(_OP_ROTATION)[:, 0], a.rotation)
    if a.horizontal_flip or a.vertical_flip:
        f = u(_OP_FLIP)
        out[:, _COLUMN["horizontal_flip"]] = (f[:, 0] < 0.5) if a.horizontal_flip else 0.0
        out[:, _COLUMN["vertical_flip"]] = (f[:, 1] < 0.5) if a.vertical_flip else 0.0
    if a.brightness:
        out[:, _COLUMN["brightness"]] = _between(u(_OP_BRIGHTNESS)[:, 0], a.brightness) * 255.0
    if a.contrast:
        low, high = a.contrast
        out[:, _COLUMN["contrast"]] = _between(u(_OP_CONTRAST)[:, 0], (1.0 - low, 1.0 + high))
    if a.saturation:
        x = _between(u(_OP_SATURATION)[:, 0], a.saturation)
        out[:, _COLUMN["saturation"]] = x / (1.0 - x + _EPSILON)
    if a.hue:
        h = u(_OP_HUE)
        sign = np.where(h[:, 0] > 0.5, -1.0, 1.0)
        out[:, _COLUMN["hue"]] = sign * _between(h[:, 1], a.hue) * 0.5
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
    out[:, _COLUMN["erase"]] = e[:, 0] < probability
    out[:, _COLUMN["erase_x0"]], out[:, _COLUMN["erase_x1"]] = left, left + width
    out[:, _COLUMN["erase_y0"]], out[:, _COLUMN["erase_y1"]] = top, top + height
    for k, channel in enumerate(("erase_r", "erase_g", "erase_b")):
        out[:, _COLUMN[channel]] = np.floor(fill[:, k] * 256.0)


def parameters_of(params: np.ndarray) -> dict[str, float]:
    """Names one row's parameter vector (a row of `draw`'s result)."""
    return {name: float(params[k]) for k, name in enumerate(PARAMETERS)}


# -- box space --------------------------------------------------------------------------------


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
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    angle = 0.0
    if augmentation is not None and params is not None:
        grow = 1.0 + 2.0 * augmentation.context
        width, height = width * grow, height * grow
        p = params
        cx += p[_COLUMN["shift_x"]] * width
        cy += p[_COLUMN["shift_y"]] * height
        stretch = math.sqrt(p[_COLUMN["aspect"]])
        width *= p[_COLUMN["zoom"]] * stretch
        height *= p[_COLUMN["zoom"]] / stretch
        angle = float(p[_COLUMN["angle"]])
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


# -- pixel space ------------------------------------------------------------------------------


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] to HSV in [0, 1] (hue in turns), in the dtype of `rgb`."""
    value = rgb.max(axis=-1)
    spread = value - rgb.min(axis=-1)
    saturation = spread / np.where(value > 0, value, 1)
    safe = np.where(spread > 0, spread, 1)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(value == r, (g - b) / safe,
                   np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = np.where(hue < 0, hue + 6, hue) / 6  # in [0, 1): no slow floating modulo
    return np.stack([np.where(spread > 0, hue, 0), saturation, value], axis=-1)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV (hue in turns, in [0, 1)) to RGB in [0, 1]."""
    # Each channel is v - v*s*clip(min(k, 4 - k), 0, 1) with k = (n + 6h) mod 6,
    # n = 5, 3, 1 for red, green, blue: no per-sector branches.
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chroma = v * s
    channels = []
    for n in (5, 3, 1):
        k = h * 6 + n
        k = np.where(k >= 6, k - 6, k)
        channels.append(v - chroma * np.clip(np.minimum(k, 4 - k), 0, 1))
    return np.stack(channels, axis=-1)


def _tone_tables(image: Image.Image, p: np.ndarray, channels: int) -> list[int]:
    """Brightness then contrast, as Keras's layers compute them, as per-band tables.

    Both are functions of a pixel's value (and, for contrast, of the channel's
    mean), so a 256-entry table per band gives the same result as the float
    computation; Pillow's `histogram` and `point` do the pixel work in C.
    """
    values = np.clip(_LEVELS + p[_COLUMN["brightness"]], 0.0, 255.0)
    tables = np.empty((len(image.getbands()), 256))
    tables[:channels] = values
    factor = p[_COLUMN["contrast"]]
    if factor != 1:
        counts = np.asarray(image.histogram(), dtype=np.float64).reshape(-1, 256)[:channels]
        means = counts @ values / (image.width * image.height)
        tables[:channels] = np.clip((values - means[:, None]) * factor + means[:, None], 0.0, 255.0)
    tables[channels:] = _LEVELS  # alpha is kept
    return np.rint(tables).astype(np.uint8).ravel().tolist()


_LEVELS = np.arange(256, dtype=np.float64)


def _point(image: Image.Image, tables: list[int]) -> Image.Image:
    """`image.point(tables)` for tables of integers already in 0..255.

    `Image.point` rounds every entry in Python first (768 calls for RGB, a
    fifth of this module's per-crop cost); the core lookup takes the tables
    as they are. Falls back to `Image.point` where the core is not there.
    """
    core = getattr(image, "im", None)
    if core is None or not hasattr(core, "point"):
        return image.point(tables)
    return image._new(core.point(tables, None))


def _saturate(pixels: np.ndarray, factor: float) -> np.ndarray:
    """HSV saturation times `factor` (clipped to 1), hue and value kept, without HSV.

    In HSV each channel is `v - s * v * w` for a weight `w` fixed by the hue,
    so scaling `s` scales every channel's distance below the maximum `v`.
    """
    rgb = pixels[..., :3].astype(np.float64)
    value = rgb.max(axis=-1, keepdims=True)
    spread = value - rgb.min(axis=-1, keepdims=True)
    scale = np.minimum(factor, value / np.where(spread > 0, spread, 1.0))
    out = pixels.copy()
    out[..., :3] = np.clip(np.rint(value - scale * (value - rgb)), 0, 255).astype(np.uint8)
    return out


def apply_pixel_ops(pixels: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Flips, colour changes and erasing of one resized `uint8` crop.

    Flips, brightness, contrast, saturation and hue commute (each colour
    change is a function of a pixel and of whole-crop statistics), so they
    run in the order that is cheapest; erasing comes last.

    Args:
        pixels: `(height, width, channels)` `uint8` crop.
        params: The row's parameters (a row of `draw`'s result).

    Returns:
        The changed crop (`pixels` itself when nothing applies).
    """
    p = params
    channels = 3 if pixels.shape[-1] >= 3 else pixels.shape[-1]
    tone = p[_COLUMN["brightness"]] != 0 or p[_COLUMN["contrast"]] != 1
    flips = [flip for flip, key in ((Image.Transpose.FLIP_LEFT_RIGHT, "horizontal_flip"),
                                    (Image.Transpose.FLIP_TOP_BOTTOM, "vertical_flip"))
             if p[_COLUMN[key]]]
    if tone or flips:  # in Pillow: one copy in, C loops, one copy out
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        if tone:
            image = _point(image, _tone_tables(image, p, channels))
        for flip in flips:
            image = image.transpose(flip)
        pixels = np.asarray(image).reshape(pixels.shape)
    if channels == 3 and p[_COLUMN["hue"]] == 0 and p[_COLUMN["saturation"]] != 1:
        pixels = _saturate(pixels, p[_COLUMN["saturation"]])
    elif channels == 3 and (p[_COLUMN["saturation"]] != 1 or p[_COLUMN["hue"]] != 0):
        hsv = _rgb_to_hsv(pixels[..., :3].astype(np.float32) / np.float32(255))
        hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(p[_COLUMN["saturation"]]), 0, 1)
        hue = hsv[..., 0] + np.float32(p[_COLUMN["hue"]] % 1.0)
        hsv[..., 0] = np.where(hue >= 1, hue - 1, hue)
        pixels = pixels.copy()
        pixels[..., :3] = np.clip(np.rint(_hsv_to_rgb(hsv) * 255), 0, 255).astype(np.uint8)
    if p[_COLUMN["erase"]]:
        height, width = pixels.shape[:2]
        x0, x1 = (round(p[_COLUMN[k]] * width) for k in ("erase_x0", "erase_x1"))
        y0, y1 = (round(p[_COLUMN[k]] * height) for k in ("erase_y0", "erase_y1"))
        pixels = pixels.copy()
        fill = [p[_COLUMN[k]] for k in ("erase_r", "erase_g", "erase_b")]
        pixels[y0:y1, x0:x1, :channels] = np.asarray(fill[:channels], np.uint8)
    return pixels


# -- explain ----------------------------------------------------------------------------------


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
        changed = {k: round(v, 4) for k, v in self.parameters.items()
                   if v != _IDENTITY.get(k, 0.0) and not k.startswith("erase_")}
        if self.parameters.get("erase"):
            changed["erase_xyxy"] = tuple(  # type: ignore[assignment]
                round(self.parameters[k], 3)
                for k in ("erase_x0", "erase_y0", "erase_x1", "erase_y1"))
        box = ", ".join(f"{v:.2f}" for v in self.box)
        return (f"Explanation(row={self.row}, label={self.label!r}, epoch={self.epoch}, "
                f"image={self.path!r} {self.image_size[0]}x{self.image_size[1]}, "
                f"box=({box}), window={self.window!r}, border={self.border!r}, "
                f"parameters={changed})")
