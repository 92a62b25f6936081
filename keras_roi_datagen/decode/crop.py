"""Cutting one row out of a decoded image: its window, the pixels it reads, the resampling.

A row's crop window is decided once, by `row_window_of` (decoding and
`RoiDataset.explain` both ask it): the box in displayed pixels, clipped to the
image, then augmented, trimmed to the aspect ratio and bordered
(`augment.row_window`). A window that stays unrotated inside the image is cut
as a plain box (`crop_region`); any other is sampled (`sample_window`).

Each crop is cut and resized in one resampling step (`Image.resize(box=...)`,
sub-pixel exact, antialiased like Pillow's filters), from a window of pixels
that depends only on the row's box, never on the image or strip it is cut
from, so the region-decode fast path and the full decode give the same bytes.
Pixels stay `uint8` here; the dataset casts once at the end.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

from keras_roi_datagen.augment import Augmentation, Window, row_window
from keras_roi_datagen.boxes import clip_box, to_pixel_xyxy
from keras_roi_datagen.decode.image import ImageProblem, crop_unchecked
from keras_roi_datagen.decode.jobs import DecodeOptions
from keras_roi_datagen.options import INTERPOLATIONS

__all__ = [
    "Cut",
    "RowWindow",
    "crop_region",
    "cut_extent",
    "cut_pixels",
    "filter_window",
    "read_box",
    "row_window_of",
    "sample_region",
    "sample_window",
    "scale_cut",
]

Box = tuple[float, float, float, float]

Cut = Box | Window
"""What one row cuts: a box inside the image (a plain crop), or a `Window`."""

# Keras's filter names are Pillow's, lower-cased.
_FILTERS = {name: Image.Resampling[name.upper()] for name in INTERPOLATIONS}
# `Image.transform` takes only nearest, bilinear and bicubic sampling (bilinear for the rest).
_TRANSFORM_FILTERS = {"nearest": Image.Resampling.NEAREST, "bicubic": Image.Resampling.BICUBIC,
                      "lanczos": Image.Resampling.BICUBIC}
# Half-width of each Pillow filter's kernel, in source pixels when not shrinking.
_SUPPORT = {"nearest": 0.0, "box": 0.5, "bilinear": 1.0, "hamming": 1.0, "bicubic": 2.0,
            "lanczos": 3.0}


class RowWindow(NamedTuple):
    """Where one row's crop comes from, in its image's displayed pixels.

    Attributes:
        box: The row's box, `xyxy`, clipped to the image.
        window: The crop window: `box` with the augmentation's context,
            jitter and rotation, the aspect-ratio trim and the border policy
            applied (`augment.row_window`).
        cut: What decoding cuts: `box` itself when nothing moves it (no
            augmentation and `"squash"`), the window's box when the window is
            unrotated and inside the image, else the window.
    """

    box: Box
    window: Window
    cut: Cut


def clip_to_image(pixels: Sequence[float], image_size: tuple[int, int]) -> Box:
    """The part of a box inside its image: the one rule (and message) for a box outside it.

    Args:
        pixels: The box, `xyxy` in displayed pixels.
        image_size: The image's displayed `(width, height)`.

    Returns:
        The box clipped to the image.

    Raises:
        ImageProblem: `"box_outside_image"` if the box lies wholly outside the image.

    Example:
    >>> clip_to_image((-2.0, 1.0, 5.0, 3.0), (4, 4))
    (0.0, 1.0, 4.0, 3.0)
    """
    width, height = image_size
    inside = clip_box(pixels, width, height)
    if inside is None:
        shown = tuple(round(v, 2) for v in pixels)
        raise ImageProblem("box_outside_image", f"box {shown} (xyxy, pixels) lies wholly outside "
                           f"the {width}x{height} image.")
    return inside


def row_window_of(
    box: Sequence[float],
    relative: bool,
    image_size: tuple[int, int],
    params: np.ndarray | None,
    augment: Augmentation | None,
    options: DecodeOptions,
) -> RowWindow:
    """Decides one row's crop window: the one rule for decoding and `explain`.

    Args:
        box: The row's box, `xyxy`, as the index holds it (pixels or
            fractions of the image).
        relative: Whether `box` is in fractions of the image size.
        image_size: The image's displayed `(width, height)`.
        params: The row's augmentation parameters (a row of `augment.draw`),
            or `None`.
        augment: The augmentation options, or `None`.
        options: The `DecodeOptions` (`image_size`, `aspect_ratio`, `border`).

    Returns:
        The `RowWindow`: the clipped box, the window and what decoding cuts.

    Raises:
        ImageProblem: `"box_outside_image"` if the box lies wholly outside
            the image.

    Example:
    >>> row = row_window_of((0.0, 0.0, 0.5, 0.5), True, (40, 20), None, None,
    ...                     DecodeOptions((8, 8)))
    >>> row.box, row.cut == row.box
    ((0.0, 0.0, 20.0, 10.0), True)
    """
    width, height = image_size
    inside = clip_to_image(to_pixel_xyxy(box, relative, width, height), image_size)
    window = row_window(inside, params, augment, image_size, options.image_size,
                        options.aspect_ratio, options.border)
    if augment is None and options.aspect_ratio == "squash":
        return RowWindow(inside, window, inside)  # the annotated box, exactly
    return RowWindow(inside, window, window.box if window.inside(width, height) else window)


def cut_extent(cut: Cut) -> Box:
    """The unrotated `xyxy` extent of a cut (what the fast path sizes its scale by).

    Args:
        cut: A box or a `Window`.

    Returns:
        The box, or the window's unrotated box.
    """
    return cut.box if isinstance(cut, Window) else cut


def scale_cut(cut: Cut, scale: int, bounds: tuple[int, int]) -> Cut:
    """A cut in the pixels of the image reduced by `scale` (a box stays inside `bounds`).

    Args:
        cut: A box or a `Window`, in displayed full-size pixels.
        scale: The DCT scale denominator.
        bounds: `(width, height)` of the reduced image.

    Returns:
        The cut in reduced pixels.
    """
    if isinstance(cut, Window):
        return cut.scaled(1.0 / scale)
    x0, y0, x1, y1 = cut
    return (x0 / scale, y0 / scale, min(x1 / scale, bounds[0]), min(y1 / scale, bounds[1]))


def cut_pixels(image: Image.Image, cut: Cut, options: DecodeOptions,
               origin: tuple[int, int] = (0, 0), bounds: tuple[int, int] | None = None) -> np.ndarray:
    """One row's crop: a box is cropped (`crop_region`), a window sampled (`sample_window`).

    Args:
        image: A decoded image, or a decoded strip of one.
        cut: The row's cut, in pixels of the whole (possibly reduced) image.
        options: The `DecodeOptions`.
        origin: Where `image` starts within the whole image (for strips).
            Defaults to `(0, 0)`.
        bounds: `(width, height)` of the whole image; defaults to `image.size`.

    Returns:
        `uint8` array of shape `(height, width, channels)`.
    """
    if isinstance(cut, Window):
        return sample_window(image, cut, options, origin, bounds)
    return crop_region(image, cut, options, origin, bounds)


@functools.lru_cache(maxsize=1024)
def _last_float32_below(size: int) -> float:
    return float(np.nextafter(np.float32(size), np.float32(0)))


def crop_region(
    image: Image.Image,
    box: tuple[float, float, float, float],
    options: DecodeOptions,
    origin: tuple[int, int] = (0, 0),
    bounds: tuple[int, int] | None = None,
) -> np.ndarray:
    """Cuts one region out of a loaded image and resizes it in one step.

    The region is first cut out with a margin as wide as the filter's reach
    (a "window"), then resized from that window. Pillow's rounding depends
    on the source's shape, so resizing from a window that depends only on
    the box makes the crop the same whether the source is the whole image or
    a strip of it (the region-decode fast path).

    Args:
        image: An image from `load_image`, or a decoded strip of one (the
            region-decode fast path).
        box: `xyxy` in pixels of the whole (possibly reduced) image, inside it.
        options: The `DecodeOptions`.
        origin: Where `image` starts within the whole image (for strips).
            Defaults to `(0, 0)`.
        bounds: `(width, height)` of the whole image; defaults to `image.size`.

    Returns:
        `uint8` array of shape `(height, width, channels)`.

    Raises:
        KeyError: If `options.interpolation` is not a filter name.
    """
    full_w, full_h = bounds if bounds is not None else image.size
    x0, y0, x1, y1 = box
    # Pillow reads the box as single-precision floats: a sliver thinner than
    # one float32 step at the right or bottom edge would round onto that edge,
    # sample outside the image and come out black. Keep its start inside.
    x0 = min(x0, _last_float32_below(full_w))
    y0 = min(y0, _last_float32_below(full_h))
    wx0, wy0, wx1, wy1 = filter_window((x0, y0, x1, y1), options, (full_w, full_h))
    window = _window(image, (wx0, wy0, wx1, wy1), origin)
    resized = window.resize(
        _inner_size(x1 - x0, y1 - y0, options), _FILTERS[options.interpolation],
        box=(x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0),
    )
    return _padded(_pixels(resized), options)


def _window(image: Image.Image, box: tuple[int, int, int, int],
            origin: tuple[int, int]) -> Image.Image:
    """The pixels `box` (whole-image coordinates) of an image or strip that starts at `origin`."""
    left, top = origin
    return crop_unchecked(image, (box[0] - left, box[1] - top, box[2] - left, box[3] - top))


def _pixels(image: Image.Image) -> np.ndarray:
    """An image's pixels as `uint8` `(h, w)` or `(h, w, c)`.

    An `"RGBX"` image (a region-decoded strip, stored as Pillow stores RGB)
    gives its three colour channels.
    """
    if image.mode == "RGBX":
        packed = image.tobytes("raw", "RGB")
        return np.frombuffer(packed, dtype=np.uint8).reshape(image.height, image.width, 3)
    return np.asarray(image, dtype=np.uint8)


def _inner_size(width: float, height: float, options: DecodeOptions) -> tuple[int, int]:
    """The `(width, height)` a window is resized to.

    All of `image_size`, or with `aspect_ratio="pad"` its largest undistorted part.
    """
    out_h, out_w = options.image_size
    if options.aspect_ratio != "pad" or width <= 0 or height <= 0:
        return (out_w, out_h)
    scale = min(out_w / width, out_h / height)
    return (max(1, min(out_w, round(width * scale))), max(1, min(out_h, round(height * scale))))


def _padded(pixels: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """`(h, w, c)` pixels, centred on a zero canvas of `image_size` when smaller."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    out_h, out_w = options.image_size
    height, width = pixels.shape[:2]
    if (height, width) == (out_h, out_w):
        return pixels
    canvas = np.zeros((out_h, out_w, pixels.shape[2]), dtype=np.uint8)
    top, left = (out_h - height) // 2, (out_w - width) // 2
    canvas[top:top + height, left:left + width] = pixels
    return canvas


def read_box(window: Window, bounds: tuple[int, int], options: DecodeOptions
             ) -> tuple[float, float, float, float]:
    """The part of the image (`xyxy`, inside `bounds`) that sampling `window` reads.

    Used to choose the JPEG reduction and the strip to decode; with
    `border="reflect"` it includes the mirrored parts a window beyond an edge shows.

    Args:
        window: The crop window.
        bounds: The image's `(width, height)`.
        options: The `DecodeOptions` (for `border` and the filter's reach).

    Returns:
        A box with positive area inside the image.
    """
    x0, y0, x1, y1 = window.bounds()
    extent = []
    for low, high, size in ((x0, x1, bounds[0]), (y0, y1, bounds[1])):
        if options.border == "reflect":
            reach = _margin(window, options)
            if low - reach < 0:
                high = max(high, reach - low)
            if high + reach > size:
                low = min(low, 2 * size - high - reach)
        low, high = min(max(low, 0.0), size - 1.0), max(min(high, float(size)), 1.0)
        extent.append((low, max(high, low + 1.0)))
    return (extent[0][0], extent[1][0], extent[0][1], extent[1][1])


def sample_region(window: Window, bounds: tuple[int, int], options: DecodeOptions
                  ) -> tuple[int, int, int, int]:
    """The integer pixels `sample_window` reads: `read_box` plus the samplers' reach.

    The reach covers the resize filter at the window's scale and one output
    pixel more for the affine sampler, whichever of the window and the read
    box is the larger.

    Args:
        window: The crop window.
        bounds: The image's `(width, height)`.
        options: The `DecodeOptions`.

    Returns:
        Integer `xyxy` pixels within `bounds`.
    """
    x0, y0, x1, y1 = read_box(window, bounds, options)
    height, width = options.image_size
    shrink = max(1.0, window.width / width, window.height / height,
                 (x1 - x0) / width, (y1 - y0) / height)
    margin = math.ceil(_SUPPORT[options.interpolation] * shrink) + 2 + math.ceil(shrink)
    return (max(0, math.floor(x0) - margin), max(0, math.floor(y0) - margin),
            min(bounds[0], math.ceil(x1) + margin), min(bounds[1], math.ceil(y1) + margin))


def _margin(window: Window, options: DecodeOptions) -> int:
    height, width = options.image_size
    shrink = max(1.0, window.width / width, window.height / height)
    return math.ceil(_SUPPORT[options.interpolation] * shrink) + 2


def sample_window(
    image: Image.Image,
    window: Window,
    options: DecodeOptions,
    origin: tuple[int, int] = (0, 0),
    bounds: tuple[int, int] | None = None,
) -> np.ndarray:
    """Samples a window that is turned or reaches outside the image.

    The pixels the window covers are first reduced (antialiased, with the
    dataset's filter) to about the output's resolution, padded past the
    image's edges as `options.border` says, then sampled through the
    window's affine map (Pillow's `Image.transform`), so the cost follows
    the output size, not the window's.

    Args:
        image: An image from `load_image`, or a decoded strip of one.
        window: The window, in pixels of the whole (possibly reduced) image.
        options: The `DecodeOptions`.
        origin: Where `image` starts within the whole image (for strips).
            Defaults to `(0, 0)`.
        bounds: `(width, height)` of the whole image; defaults to `image.size`.

    Returns:
        `uint8` array of shape `(height, width, channels)`.

    Raises:
        KeyError: If `options.interpolation` is not a filter name.
    """
    if bounds is None:
        bounds = image.size
    wx0, wy0, wx1, wy1 = sample_region(window, bounds, options)
    region = _window(image, (wx0, wy0, wx1, wy1), origin)
    out_w, out_h = _inner_size(window.width, window.height, options)
    fx, fy = max(1.0, window.width / out_w), max(1.0, window.height / out_h)
    if window.angle:
        fx = fy = min(fx, fy)
    small = (max(1, round(region.width / fx)), max(1, round(region.height / fy)))
    if small != region.size:
        region = region.resize(small, _FILTERS[options.interpolation])
    fx, fy = (wx1 - wx0) / small[0], (wy1 - wy0) / small[1]
    pixels = _pixels(region)
    pads = _pads(window, (wx0, wy0, wx1, wy1), bounds, (fx, fy), options)
    if any(pads):
        mode = "symmetric" if options.border == "reflect" else "constant"
        spec = ((pads[1], pads[3]), (pads[0], pads[2])) + (((0, 0),) if pixels.ndim == 3 else ())
        pixels = np.pad(pixels, spec, mode=mode)  # type: ignore[call-overload]
    theta = math.radians(window.angle)
    cos, sin = math.cos(theta), math.sin(theta)
    w, h = window.width, window.height
    ox, oy = wx0 - pads[0] * fx, wy0 - pads[1] * fy
    coefficients = (
        w / out_w * cos / fx, -h / out_h * sin / fx, (window.cx - 0.5 * w * cos + 0.5 * h * sin - ox) / fx,
        w / out_w * sin / fy, h / out_h * cos / fy, (window.cy - 0.5 * w * sin - 0.5 * h * cos - oy) / fy,
    )
    source = Image.fromarray(np.ascontiguousarray(pixels))
    turned = source.transform(
        (out_w, out_h), Image.Transform.AFFINE, coefficients,
        _TRANSFORM_FILTERS.get(options.interpolation, Image.Resampling.BILINEAR), fillcolor=0)
    return _padded(np.asarray(turned, dtype=np.uint8), options)


def _pads(window: Window, region: tuple[int, int, int, int], bounds: tuple[int, int],
          factors: tuple[float, float], options: DecodeOptions) -> tuple[int, int, int, int]:
    """Reduced pixels to add at each side of a region at the image's edges (left, top, right, bottom)."""
    if options.border == "clip" and window.angle == 0:
        return (0, 0, 0, 0)
    x0, y0, x1, y1 = window.bounds()
    reach = _margin(window, options)
    fx, fy = factors
    wanted = (region[0] - (x0 - reach), region[1] - (y0 - reach),
              (x1 + reach) - region[2], (y1 + reach) - region[3])
    at_edge = (region[0] == 0, region[1] == 0, region[2] == bounds[0], region[3] == bounds[1])
    return tuple(  # type: ignore[return-value]
        math.ceil(max(0.0, want) / f) + 1 if edge and want > 0 else 0
        for want, edge, f in zip(wanted, at_edge, (fx, fy, fx, fy)))


def filter_window(box: tuple[float, float, float, float], options: DecodeOptions,
                  bounds: tuple[int, int]) -> tuple[int, int, int, int]:
    """The integer window of pixels that resizing `box` can read, within `bounds`.

    Args:
        box: `xyxy` in pixels of the whole (possibly reduced) image.
        options: The `DecodeOptions` (`image_size`, `interpolation`).
        bounds: The image's `(width, height)`.

    Returns:
        Integer `xyxy` pixels within `bounds`.
    """
    height, width = options.image_size
    x0, y0, x1, y1 = box
    shrink = max(1.0, (x1 - x0) / width, (y1 - y0) / height)
    margin = math.ceil(_SUPPORT[options.interpolation] * shrink) + 2
    return (max(0, math.floor(x0) - margin), max(0, math.floor(y0) - margin),
            min(bounds[0], math.ceil(x1) + margin), min(bounds[1], math.ceil(y1) + margin))
