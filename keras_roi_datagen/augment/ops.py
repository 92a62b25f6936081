"""The augmentation operations: one table, `OPS`, and the options it checks, `Augmentation`.

An operation is one `Op` in `OPS`: the `Augmentation` option it reads, how
that option is checked, the Philox streams it draws from, the parameter
columns it fills (with their values when it is off), how it draws them, and
the space it acts in. The rest is derived from the table: `PARAMETERS` and
its identity values, the streams `draw` asks for, `Augmentation`'s checks and
`changes_pixels`, and what `Explanation` shows.

Adding an operation touches two places besides its tests:

1. here: a field of `Augmentation` with its `Args` entry, and its `Op` at the
   same position in `OPS`, drawing from stream numbers no op has used (never
   renumber a stream: every augmented batch ever produced depends on it);
2. its effect, reading its columns by name: `windows.row_window` for a box
   space op, `pixels.apply_pixel_ops` for a pixel space op.

Example:
>>> [op.option for op in OPS if op.space == "box"]
['zoom', 'shift', 'aspect', 'context', 'rotation']
>>> Augmentation(zoom=0.1).zoom
(0.9, 1.1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any, Literal

import numpy as np

from keras_roi_datagen.options import check_flag, check_fraction

__all__ = ["OPS", "PIPELINE", "Augmentation", "Op", "parse_augmentation"]

Space = Literal["box", "pixel"]
Parse = Callable[[str, Any], Any]
Draw = Callable[[Any, tuple[np.ndarray, ...]], Mapping[str, np.ndarray]]
Show = Callable[[Mapping[str, float]], dict[str, Any]]


@dataclass(frozen=True, eq=False)
class Op:
    """One augmentation operation: an entry of `OPS`.

    Args:
        option: The `Augmentation` field it reads; the op is on when the
            field's value is true (a range, a non-zero number, `True`).
        space: `"box"`: it moves the crop window before decoding
            (`row_window` applies it); `"pixel"`: it changes the resized crop
            (`apply_pixel_ops`).
        parse: `(name, value) -> value`: checks the user's value, raising a
            `ValueError` that states the rule and the value, and returns it
            normalised (a number becomes its range).
        streams: The Philox operation numbers (the counter's fourth word)
            it draws from. Fixed forever. Defaults to `()`.
        columns: The parameter columns it fills, each with its identity
            value (the value when the op is off). Defaults to none.
        draw: `(value, uniforms) -> {column: values}`: the columns from the
            parsed option and one `(rows, 4)` array of uniforms in (0, 1) per
            stream. Defaults to drawing nothing (`context` is fixed).
        show: `parameters -> {name: value}`: what `Explanation` shows of its
            columns. Defaults to `None`: each column that differs from its
            identity, rounded to 4 places.

    Example:
    >>> zoom = OPS[0]
    >>> zoom.option, zoom.space, zoom.streams, dict(zoom.columns)
    ('zoom', 'box', (1,), {'zoom': 1.0})
    """

    option: str
    space: Space
    parse: Parse
    streams: tuple[int, ...] = ()
    columns: Mapping[str, float] = field(default_factory=dict)
    draw: Draw = lambda value, uniforms: {}
    show: Show | None = None

    def shown(self, parameters: Mapping[str, float]) -> dict[str, Any]:
        """What `Explanation` shows of this op's columns among one row's `parameters`."""
        if self.show is not None:
            return self.show(parameters)
        return {name: round(parameters[name], 4) for name, identity in self.columns.items()
                if name in parameters and parameters[name] != identity}


# -- checking options -------------------------------------------------------------------------


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


def _pair(low: float, high: float, number: Callable[[float], tuple[float, float]]) -> Parse:
    """The rule of a range option within `[low, high]`; a number `v` means `number(v)`."""
    return partial(_range, low=low, high=high, number=number)


def _fraction(high: float) -> Parse:
    """The rule of a number in `[0, high]`."""
    return partial(check_fraction, high=high)


def _around_one(v: float) -> tuple[float, float]:
    return (1.0 - v, 1.0 + v)


def _around_zero(v: float) -> tuple[float, float]:
    return (-v, v)


def _from_zero(v: float) -> tuple[float, float]:
    return (0.0, v)


def _twice(v: float) -> tuple[float, float]:
    return (v, v)


# -- drawing parameters -----------------------------------------------------------------------

_ERASE_AREA = (0.02, 0.33)  # fraction of the crop, as Keras's RandomErasing `scale`
_ERASE_RATIO = (0.3, 1 / 0.3)  # width / height, log-uniform (Zhong et al., 2020)
_ERASE_BOX = ("erase_x0", "erase_y0", "erase_x1", "erase_y1")
_ERASE_FILL = ("erase_r", "erase_g", "erase_b")
_EPSILON = 1e-7  # Keras's backend epsilon, in RandomSaturation's factor / (1 - factor)


def _between(u: np.ndarray, pair: tuple[float, float]) -> np.ndarray:
    return pair[0] + (pair[1] - pair[0]) * u


def _log_between(u: np.ndarray, pair: tuple[float, float]) -> np.ndarray:
    values: np.ndarray = np.exp(_between(u, (math.log(pair[0]), math.log(pair[1]))))
    return values


def _draw_saturation(saturation: tuple[float, float], u: tuple[np.ndarray, ...]
                     ) -> dict[str, np.ndarray]:
    x = _between(u[0][:, 0], saturation)
    return {"saturation": x / (1.0 - x + _EPSILON)}


def _draw_erasing(probability: float, u: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    e, fill = u
    area = _between(e[:, 1], _ERASE_AREA)
    ratio = _log_between(e[:, 2], _ERASE_RATIO)
    width = np.minimum(np.sqrt(area * ratio), 1.0)
    height = np.minimum(np.sqrt(area / ratio), 1.0)
    left = e[:, 3] * (1.0 - width)
    top = fill[:, 3] * (1.0 - height)
    return {"erase": e[:, 0] < probability,
            "erase_x0": left, "erase_y0": top, "erase_x1": left + width, "erase_y1": top + height,
            **{channel: np.floor(fill[:, k] * 256.0) for k, channel in enumerate(_ERASE_FILL)}}


def _show_erasing(parameters: Mapping[str, float]) -> dict[str, Any]:
    """`erase` and the erased rectangle of an erased crop (not its colour)."""
    if not parameters.get("erase"):
        return {}
    return {"erase": round(parameters["erase"], 4),
            "erase_xyxy": tuple(round(parameters[name], 3) for name in _ERASE_BOX)}


# -- the table --------------------------------------------------------------------------------

OPS: tuple[Op, ...] = (
    Op("zoom", "box", _pair(1e-3, 1e3, _around_one), streams=(1,), columns={"zoom": 1.0},
       draw=lambda zoom, u: {"zoom": _between(u[0][:, 0], zoom)}),
    Op("shift", "box", _fraction(10.0), streams=(2,), columns={"shift_x": 0.0, "shift_y": 0.0},
       draw=lambda shift, u: {"shift_x": _between(u[0][:, 0], (-shift, shift)),
                              "shift_y": _between(u[0][:, 1], (-shift, shift))}),
    Op("aspect", "box", _pair(1e-3, 1e3, _around_one), streams=(3,), columns={"aspect": 1.0},
       draw=lambda aspect, u: {"aspect": _log_between(u[0][:, 0], aspect)}),
    Op("context", "box", _fraction(10.0)),
    # The two flips share stream 5: word 0 decides the horizontal one, word 1 the vertical.
    Op("horizontal_flip", "pixel", check_flag, streams=(5,), columns={"horizontal_flip": 0.0},
       draw=lambda _, u: {"horizontal_flip": u[0][:, 0] < 0.5}),
    Op("vertical_flip", "pixel", check_flag, streams=(5,), columns={"vertical_flip": 0.0},
       draw=lambda _, u: {"vertical_flip": u[0][:, 1] < 0.5}),
    Op("rotation", "box", _pair(-360.0, 360.0, _around_zero), streams=(4,), columns={"angle": 0.0},
       draw=lambda rotation, u: {"angle": _between(u[0][:, 0], rotation)}),
    Op("brightness", "pixel", _pair(-1.0, 1.0, _around_zero), streams=(6,),
       columns={"brightness": 0.0},
       draw=lambda brightness, u: {"brightness": _between(u[0][:, 0], brightness) * 255.0}),
    # Keras's RandomContrast: a number f is (f, f), meaning [1 - f, 1 + f].
    Op("contrast", "pixel", _pair(0.0, 1.0, _twice), streams=(7,), columns={"contrast": 1.0},
       draw=lambda contrast, u: {
           "contrast": _between(u[0][:, 0], (1.0 - contrast[0], 1.0 + contrast[1]))}),
    Op("saturation", "pixel", _pair(0.0, 1.0, _from_zero), streams=(8,),
       columns={"saturation": 1.0}, draw=_draw_saturation),
    Op("hue", "pixel", _pair(0.0, 1.0, _from_zero), streams=(9,), columns={"hue": 0.0},
       draw=lambda hue, u: {
           "hue": np.where(u[0][:, 0] > 0.5, -1.0, 1.0) * _between(u[0][:, 1], hue) * 0.5}),
    Op("erasing", "pixel", _fraction(1.0), streams=(10, 11),
       columns=dict.fromkeys(("erase", *_ERASE_BOX, *_ERASE_FILL), 0.0), draw=_draw_erasing,
       show=_show_erasing),
)
"""The augmentation operations, one per `Augmentation` option, in the order of its fields."""

PIPELINE = tuple(sorted(OPS, key=lambda op: op.space == "pixel"))
"""`OPS`, box space first (the order a row meets them), table order within each space.

The order of the parameter columns (`PARAMETERS`) and of what `Explanation` shows.
"""


# -- the options ------------------------------------------------------------------------------


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
        for op in OPS:
            object.__setattr__(self, op.option, op.parse(op.option, getattr(self, op.option)))

    @property
    def changes_pixels(self) -> bool:
        """Whether any option changes the resized crop (pixel space)."""
        return any(getattr(self, op.option) for op in OPS if op.space == "pixel")

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
