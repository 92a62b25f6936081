"""The augmentation options: `Augmentation` and `parse_augmentation`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from keras_roi_datagen.options import check_flag, check_fraction

__all__ = ["Augmentation", "parse_augmentation"]

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
        put("shift", check_fraction("shift", self.shift, 10.0))
        put("aspect", _range("aspect", self.aspect, 1e-3, 1e3, _around_one))
        put("context", check_fraction("context", self.context, 10.0))
        put("horizontal_flip", check_flag("horizontal_flip", self.horizontal_flip))
        put("vertical_flip", check_flag("vertical_flip", self.vertical_flip))
        put("rotation", _range("rotation", self.rotation, -360.0, 360.0, _around_zero))
        put("brightness", _range("brightness", self.brightness, -1.0, 1.0, _around_zero))
        # Keras's RandomContrast: a number f is (f, f), meaning [1 - f, 1 + f].
        put("contrast", _range("contrast", self.contrast, 0.0, 1.0, _twice))
        put("saturation", _range("saturation", self.saturation, 0.0, 1.0, _from_zero))
        put("hue", _range("hue", self.hue, 0.0, 1.0, _from_zero))
        put("erasing", check_fraction("erasing", self.erasing, 1.0))

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
