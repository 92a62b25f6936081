"""Image decoding and cropping: open, orient, convert, crop, resize.

This module imports only NumPy and Pillow, never Keras or a backend, so worker
processes start fast and decoding is byte-identical on every backend.

What happens to one image, in order:

1. Open lazily (header only) and check the pixel count against
   `max_image_pixels` (the decompression-bomb guard; configurable per dataset
   without touching Pillow's global setting).
2. Fast path (`fast=True`, JPEG only): when a region, and the smallest region
   of its image in the dataset, are at least twice as large as `image_size`,
   ask libjpeg to decode at 1/2, 1/4 or 1/8 scale (`Image.draft`, DCT-domain
   downscaling; for a mirrored or rotated image only by a factor that divides
   both sides). The image's smallest region sets the scale of all its rows, so
   a batch decodes each image once, and a crop never depends on its batch.
   Crops then differ from the reference path by resampling noise only (tests
   bound it).
3. Apply the EXIF orientation, so boxes refer to the image as displayed, which
   is how VGG Image Annotator shows it.
4. Convert the mode: palette, CMYK, 1-bit, 16-bit and float images become
   8-bit; for `color_mode` `"rgb"` and `"grayscale"` any transparency is
   composited over black (keep it with `"rgba"`).
5. Crop and resize each region in one resampling step
   (`Image.resize(box=...)`, sub-pixel exact, antialiased like Pillow's filters).

Pixels stay `uint8` here; the dataset casts once at the end.
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_roi_datagen import jpeg_region, storage
from keras_roi_datagen.augment import Augmentation, Window, apply_pixel_ops, row_window
from keras_roi_datagen.boxes import clip_box, to_pixel_xyxy
from keras_roi_datagen.errors import StorageError

__all__ = [
    "ASPECT_RATIOS",
    "COLOR_MODES",
    "INTERPOLATIONS",
    "BatchJob",
    "BatchResult",
    "DecodeOptions",
    "ImageProblem",
    "RowFailure",
    "crop_region",
    "decode_batch",
    "load_image",
    "read_image_size",
]

INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}
COLOR_MODES: dict[str, int] = {"rgb": 3, "grayscale": 1, "rgba": 4}
ASPECT_RATIOS = ("squash", "crop", "pad")
"""How a window's shape meets `image_size`: stretch, trim the window, or pad the crop."""
_PIL_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
_SWAPS_AXES = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112
_JPEG_FORMATS = ("JPEG", "MPO")


@dataclass(frozen=True)
class DecodeOptions:
    """How regions become pixels.

    Args:
        image_size: `(height, width)` of every crop.
        interpolation: One of `INTERPOLATIONS`.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`.
        max_image_pixels: Refuse images with more pixels than this (`None`:
            no limit).
        fast: Allow DCT-domain downscaling of JPEGs (see the module docstring).
        aspect_ratio: `"squash"` (stretch each window to `image_size`),
            `"crop"` (trim the window to the aspect ratio of `image_size`,
            keeping its centre) or `"pad"` (resize without distortion and pad
            with zeros, centred), as Keras's `crop_to_aspect_ratio` and
            `pad_to_aspect_ratio`.
        border: Window parts outside the image: `"constant"` (zeros),
            `"reflect"` (the image mirrored at its edge, edge pixel repeated)
            or `"clip"` (the window is clipped to the image).
        storage_options: Passed to fsspec for images given as URLs.
    """

    image_size: tuple[int, int]
    interpolation: str = "bilinear"
    color_mode: str = "rgb"
    max_image_pixels: int | None = None
    fast: bool = True
    aspect_ratio: str = "squash"
    border: str = "constant"
    storage_options: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def channels(self) -> int:
        """Channels of the output."""
        return COLOR_MODES[self.color_mode]


@dataclass(frozen=True)
class BatchJob:
    """The decoding work of one batch, as plain data (it crosses process pipes).

    Args:
        paths: The distinct image files of the batch.
        path_index: For each row of the batch, its image's position in `paths`.
        boxes: `(rows, 4)` boxes, `xyxy`, in pixels or fractions.
        relative: Whether `boxes` are fractions of the image size.
        options: The `DecodeOptions`.
        augment: The augmentation options, or `None`.
        params: `(rows, len(augment.PARAMETERS))` parameters drawn for the
            rows (`augment.draw`), or `None`.
        smallest: `(len(paths), 2)`: per image, the width and height of its
            smallest region in the whole dataset (units of `boxes`), or
            `None`. With it, the fast path decodes an image at no coarser
            DCT scale than that region needs: one decode serves all of the
            image's rows in a batch, and a crop still depends only on its
            row and its image, never on which rows share its batch.
    """

    paths: tuple[str, ...]
    path_index: np.ndarray
    boxes: np.ndarray
    relative: bool
    options: DecodeOptions
    augment: Augmentation | None = None
    params: np.ndarray | None = None
    smallest: np.ndarray | None = None


@dataclass(frozen=True)
class RowFailure:
    """A row of a batch that could not be decoded.

    Args:
        position: The row's position within the batch.
        kind: The problem kind (see `keras_roi_datagen.errors.Problem`).
        message: What went wrong.
        path: The image file.
        details: The original traceback text, for unexpected errors.
    """

    position: int
    kind: str
    message: str
    path: str
    details: str | None = None


@dataclass
class BatchResult:
    """Pixels of a batch plus the rows that failed (their pixels are zero).

    Args:
        pixels: `uint8` array of shape `(rows, height, width, channels)`.
        failures: The rows that could not be decoded.
        image_sizes: Displayed `(width, height)` of each image that opened.
        retries: One URL per request retried while decoding the batch
            (`storage.counting_retries`).
    """

    pixels: np.ndarray
    failures: list[RowFailure] = field(default_factory=list)
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    retries: list[str] = field(default_factory=list)


class ImageProblem(Exception):
    """An image could not be used; `kind` is the problem kind."""

    def __init__(self, kind: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details


def _is_empty(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def _open_unchecked(source: str | io.BytesIO) -> Image.Image:
    """`Image.open` without Pillow's global decompression-bomb check.

    Pillow checks `Image.MAX_IMAGE_PIXELS`, a module global, inside
    `Image.open`. Changing it, even briefly under a lock, changes it for every
    thread of the user's process, and a lock held at fork time hangs forked
    children. So the dataset opens files through Pillow's format registry
    itself and applies its own `max_image_pixels` afterwards.

    Args:
        source: A local path, or the bytes of a remote file.
    """
    handle: IO[bytes] = open(source, "rb") if isinstance(source, str) else source  # noqa: SIM115
    path = source if isinstance(source, str) else ""
    try:
        prefix = handle.read(16)
        for loader in (Image.preinit, Image.init):
            loader()
            for format_id in list(Image.ID):
                factory, accept = Image.OPEN[format_id]
                try:
                    accepted = accept(prefix) if accept is not None else True
                    if isinstance(accepted, str) or not accepted:  # a str is Pillow's warning
                        continue
                    handle.seek(0)
                    image = factory(handle, path)
                except (SyntaxError, IndexError, TypeError, struct.error):
                    continue
                image._exclusive_fp = True  # closing the image closes the file
                return image
    except BaseException:
        handle.close()
        raise
    handle.close()
    raise UnidentifiedImageError(f"cannot identify image file {path or source!r}")


def _crop_unchecked(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`Image.crop` without Pillow's global bomb limit (the dataset's applied at open)."""
    image.load()
    return image._new(image.im.crop(tuple(int(v) for v in box)))


def _open(path: str, max_image_pixels: int | None) -> Image.Image:
    try:
        image = _open_unchecked(storage.open_image(path))  # a URL's bytes are fetched first
    except StorageError as exc:
        kind = "missing_file" if exc.kind == "storage_not_found" else exc.kind
        raise ImageProblem(kind, str(exc)) from None
    except FileNotFoundError:
        raise ImageProblem("missing_file", f"image file not found: {path!r}.") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ImageProblem("image_unreadable", f"cannot open {path!r}: {exc.strerror}.") from None
    except UnidentifiedImageError:
        if _is_empty(path):  # the same kind as `paths.check_image_file` reports
            raise ImageProblem(
                "image_empty_file", f"image file is empty (0 bytes): {path!r}."
            ) from None
        raise ImageProblem(
            "image_not_an_image",
            f"{path!r} is not an image Pillow can read (wrong extension, or not an image at all).",
        ) from None
    except Exception as exc:
        # A file cut inside its header fails here ("Truncated File Read").
        kind = "image_truncated" if "truncated" in str(exc).lower() else "image_unreadable"
        raise ImageProblem(kind, f"cannot open {path!r}: {exc}", traceback.format_exc()) from None
    width, height = image.size
    if max_image_pixels is not None and width * height > max_image_pixels:
        image.close()
        raise ImageProblem(
            "image_too_large",
            f"{path!r} has {width}x{height} = {width * height} pixels, more than "
            f"max_image_pixels={max_image_pixels} (the decompression-bomb guard). "
            "Raise `max_image_pixels` if the file is trusted.",
        )
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a corrupt EXIF block must not lose the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _displayed_size(image: Image.Image, orientation: int) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def read_image_size(path: str, max_image_pixels: int | None = None) -> tuple[int, int]:
    """Reads an image's displayed `(width, height)` from its header and EXIF.

    Args:
        path: The image file.
        max_image_pixels: Pixel-count limit, as in `DecodeOptions`.

    Returns:
        `(width, height)` after EXIF orientation.

    Raises:
        ImageProblem: If the file is missing, not an image, or too large.
    """
    return read_image_header(path, max_image_pixels)[0]


def read_image_header(path: str, max_image_pixels: int | None = None
                      ) -> tuple[tuple[int, int], str | None]:
    """Reads an image's displayed `(width, height)` and its format from its header and EXIF.

    Args:
        path: The image file.
        max_image_pixels: Pixel-count limit, as in `DecodeOptions`.

    Returns:
        `((width, height), format)`: the size after EXIF orientation, and
        Pillow's format name (`"JPEG"`, `"PNG"`, ...).

    Raises:
        ImageProblem: If the file is missing, not an image, or too large.
    """
    with _open(path, max_image_pixels) as image:
        return _displayed_size(image, _orientation(image)), image.format


def _to_eight_bit(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if image.mode == "1":
        return image.convert("L")
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _convert(image: Image.Image, color_mode: str) -> Image.Image:
    image = _to_eight_bit(image)
    target = _PIL_MODES[color_mode]
    if color_mode != "rgba" and _has_alpha(image):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    return image if image.mode == target else image.convert(target)


def _draft_scale(boxes: Sequence[tuple[float, float, float, float]], out_hw: tuple[int, int]) -> int:
    ratio = min(min((b[2] - b[0]) / out_hw[1], (b[3] - b[1]) / out_hw[0]) for b in boxes)
    scale = 1
    while scale < 8 and scale * 2 <= ratio:
        scale *= 2
    return scale


def _draft(image: Image.Image, scale: int, color_mode: str) -> None:
    # libjpeg decodes at 1/scale, rounding the size up: the last column and
    # row then hold a partial block, and pixel i covers stored pixels
    # [scale*i, scale*(i+1)). That padding sits at the end of each axis, where
    # it is harmless, unless the orientation mirrors an axis and moves it to
    # the start; for those `_reduction` only picks a factor dividing both sides.
    stored_w, stored_h = image.size
    mode = {"rgb": "RGB", "grayscale": "L"}.get(color_mode)
    image.draft(mode, (stored_w // scale, stored_h // scale))


def _prepare(image: Image.Image, orientation: int, options: DecodeOptions, scale: int) -> Image.Image:
    """Decodes (at 1/scale when allowed), orients and converts an opened image."""
    path = getattr(image, "filename", "") or "<image>"
    try:
        if options.fast and image.format in _JPEG_FORMATS:
            # Also at scale 1: grayscale then comes straight from libjpeg's luma,
            # as on the region-decode path.
            _draft(image, scale, options.color_mode)
        image.load()
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        return _convert(image, options.color_mode)
    except OSError as exc:
        kind = "image_truncated" if "truncated" in str(exc).lower() else "image_unreadable"
        raise ImageProblem(kind, f"cannot decode {path!r}: {exc}", traceback.format_exc()) from None
    except Exception as exc:
        raise ImageProblem(
            "image_unreadable", f"cannot decode {path!r}: {exc}", traceback.format_exc()
        ) from None


def _reduction(image: Image.Image, orientation: int, options: DecodeOptions,
               pixel_boxes: Sequence[tuple[float, float, float, float]] | None) -> int:
    """The DCT scale the fast path may decode at for these boxes (1: full size)."""
    if not (options.fast and pixel_boxes and image.format in _JPEG_FORMATS):
        return 1
    wanted = _draft_scale(pixel_boxes, options.image_size)
    stored_w, stored_h = image.size
    if orientation not in (1, 5):
        while wanted > 1 and (stored_w % wanted or stored_h % wanted):
            wanted //= 2
    return wanted


def load_image(
    path: str,
    options: DecodeOptions,
    pixel_boxes: Sequence[tuple[float, float, float, float]] | None = None,
) -> tuple[Image.Image, float, float]:
    """Opens, orients and converts an image, decoding it reduced when allowed.

    Args:
        path: The image file.
        options: The `DecodeOptions`.
        pixel_boxes: Boxes (displayed pixels, already clipped) that will be cut
            from the image; they decide how far a JPEG may be reduced. `None`
            decodes at full size.

    Returns:
        `(image, sx, sy)`: the oriented, converted image and the factors that
        map displayed full-size coordinates to its coordinates.

    Raises:
        ImageProblem: If the file cannot be opened or decoded.
    """
    with _open(path, options.max_image_pixels) as image:
        orientation = _orientation(image)
        scale = _reduction(image, orientation, options, pixel_boxes)
        return _prepare(image, orientation, options, scale), 1.0 / scale, 1.0 / scale


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
        bounds: `(width, height)` of the whole image; defaults to `image.size`.

    Returns:
        `uint8` array of shape `(height, width, channels)`.
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
        _inner_size(x1 - x0, y1 - y0, options), INTERPOLATIONS[options.interpolation],
        box=(x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0),
    )
    return _padded(_pixels(resized), options)


def _window(image: Image.Image, box: tuple[int, int, int, int],
            origin: tuple[int, int]) -> Image.Image:
    """The pixels `box` (whole-image coordinates) of an image or strip that starts at `origin`."""
    left, top = origin
    return _crop_unchecked(image, (box[0] - left, box[1] - top, box[2] - left, box[3] - top))


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


_TRANSFORM_FILTERS = {"nearest": Image.Resampling.NEAREST, "bicubic": Image.Resampling.BICUBIC,
                      "lanczos": Image.Resampling.BICUBIC}


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
        bounds: `(width, height)` of the whole image; defaults to `image.size`.

    Returns:
        `uint8` array of shape `(height, width, channels)`.
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
        region = region.resize(small, INTERPOLATIONS[options.interpolation])
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


# Half-width of each Pillow filter's kernel, in source pixels when not shrinking.
_SUPPORT = {"nearest": 0.0, "box": 0.5, "bilinear": 1.0, "hamming": 1.0, "bicubic": 2.0,
            "lanczos": 3.0}


def filter_window(box: tuple[float, float, float, float], options: DecodeOptions,
                  bounds: tuple[int, int]) -> tuple[int, int, int, int]:
    """The integer window of pixels that resizing `box` can read, within `bounds`."""
    height, width = options.image_size
    x0, y0, x1, y1 = box
    shrink = max(1.0, (x1 - x0) / width, (y1 - y0) / height)
    margin = math.ceil(_SUPPORT[options.interpolation] * shrink) + 2
    return (max(0, math.floor(x0) - margin), max(0, math.floor(y0) - margin),
            min(bounds[0], math.ceil(x1) + margin), min(bounds[1], math.ceil(y1) + margin))


def _clip_rows(
    job: BatchJob, positions: list[int], size: tuple[int, int], result: BatchResult
) -> dict[int, tuple[float, float, float, float]]:
    path = job.paths[int(job.path_index[positions[0]])]
    clipped = {}
    for position in positions:
        box = to_pixel_xyxy(job.boxes[position], job.relative, size[0], size[1])
        inside = clip_box(box, size[0], size[1])
        if inside is None:
            shown = tuple(round(v, 2) for v in box)
            result.failures.append(RowFailure(
                position, "box_outside_image",
                f"box {shown} (xyxy, pixels) lies wholly outside the {size[0]}x{size[1]} image.",
                path,
            ))
        else:
            clipped[position] = inside
    return clipped


Cut = tuple[float, float, float, float] | Window
"""What one row cuts: a box inside the image (a plain crop), or a `Window`."""


def _plan_cuts(job: BatchJob, clipped: dict[int, tuple[float, float, float, float]],
               size: tuple[int, int]) -> dict[int, Cut]:
    options = job.options
    if job.augment is None and options.aspect_ratio == "squash":
        return dict(clipped)
    cuts: dict[int, Cut] = {}
    for position, box in clipped.items():
        params = job.params[position] if job.params is not None else None
        window = row_window(box, params, job.augment, size, options.image_size,
                            options.aspect_ratio, options.border)
        cuts[position] = window.box if window.inside(*size) else window
    return cuts


def _cut_size(cut: Cut) -> tuple[float, float, float, float]:
    return cut.box if isinstance(cut, Window) else cut


def _scaled(cut: Cut, scale: int, bounds: tuple[int, int]) -> Cut:
    if isinstance(cut, Window):
        return cut.scaled(1.0 / scale)
    x0, y0, x1, y1 = cut
    return (x0 / scale, y0 / scale, min(x1 / scale, bounds[0]), min(y1 / scale, bounds[1]))


def _cut(image: Image.Image, cut: Cut, options: DecodeOptions,
         origin: tuple[int, int] = (0, 0), bounds: tuple[int, int] | None = None) -> np.ndarray:
    if isinstance(cut, Window):
        return sample_window(image, cut, options, origin, bounds)
    return crop_region(image, cut, options, origin, bounds)


def _pillow_crops(opened: Image.Image, orientation: int, options: DecodeOptions, scale: int,
                  cuts: dict[int, Cut]) -> dict[int, np.ndarray]:
    image = _prepare(opened, orientation, options, scale)
    return {position: _cut(image, _scaled(cut, scale, image.size), options)
            for position, cut in cuts.items()}


def _native_crops(data: bytes, size: tuple[int, int], options: DecodeOptions, scale: int,
                  cuts: dict[int, Cut]) -> dict[int, np.ndarray] | None:
    # The reduced image's size, as libjpeg rounds it (up).
    bounds = (-(-size[0] // scale), -(-size[1] // scale))
    scaled = {p: _scaled(cut, scale, bounds) for p, cut in cuts.items()}
    windows = {p: sample_region(c, bounds, options) if isinstance(c, Window)
               else filter_window(c, options, bounds) for p, c in scaled.items()}
    return jpeg_region.crop_rows(
        data, windows, scale, options.color_mode == "grayscale",
        lambda strip, p, origin, full: _cut(strip, scaled[p], options, origin, full))


def _read_bytes(path: str) -> bytes:
    source = storage.open_image(path)  # a URL's bytes were read when its header was
    if not isinstance(source, str):
        return source.getvalue()
    with open(source, "rb") as handle:
        return handle.read()


def _decode_image(job: BatchJob, image_no: int, positions: list[int], result: BatchResult) -> None:
    path = job.paths[image_no]
    options = job.options
    done: set[int] = set()
    try:
        with _open(path, options.max_image_pixels) as header:
            orientation = _orientation(header)
            size = _displayed_size(header, orientation)
            clipped = _clip_rows(job, positions, size, result)
            cuts = _plan_cuts(job, clipped, size)
            # A row's reduction depends on its own box and its image's smallest region,
            # never on its batch neighbours. A window reduces no further than its box
            # would (a zoomed-out row then shares its neighbours' decode).
            floor = _image_floor(job, image_no, header, orientation, size)
            by_scale: dict[int, dict[int, Cut]] = {}
            for position, cut in cuts.items():
                scale = min(floor, _reduction(header, orientation, options, [_cut_size(cut)]))
                if cut is not clipped[position]:
                    scale = min(scale, _reduction(header, orientation, options,
                                                  [clipped[position]]))
                by_scale.setdefault(scale, {})[position] = cut
            native = (options.fast and jpeg_region.AVAILABLE and orientation == 1
                      and header.format in _JPEG_FORMATS and header.mode in ("RGB", "L")
                      and options.color_mode in ("rgb", "grayscale"))
            data = _read_bytes(path) if native and by_scale else b""  # once, for every scale
            unused: Image.Image | None = header  # the open file serves the first Pillow decode
            for scale, boxes in sorted(by_scale.items()):
                crops = _native_crops(data, size, options, scale, boxes) if native else None
                if crops is None and unused is not None:
                    crops, unused = _pillow_crops(unused, orientation, options, scale, boxes), None
                elif crops is None:
                    with _open(path, options.max_image_pixels) as again:
                        crops = _pillow_crops(again, orientation, options, scale, boxes)
                for position, pixels in crops.items():
                    result.pixels[position] = pixels
                    done.add(position)
    except ImageProblem as problem:
        failed = {f.position for f in result.failures} | done
        _fail_all(result, [p for p in positions if p not in failed], path, problem)
        return
    result.image_sizes[path] = size


def _image_floor(job: BatchJob, image_no: int, header: Image.Image, orientation: int,
                 size: tuple[int, int]) -> int:
    """The coarsest DCT scale any row of this image may use (8 without `job.smallest`).

    Decoding a JPEG at a second scale costs most of a first one (entropy
    decoding is the same), so every row of an image shares the scale its
    smallest region needs.
    """
    if job.smallest is None:
        return 8
    width, height = (float(v) for v in job.smallest[image_no])
    box = to_pixel_xyxy((0.0, 0.0, width, height), job.relative, size[0], size[1])
    return _reduction(header, orientation, job.options, [box])


def _fail_all(result: BatchResult, positions: list[int], path: str, problem: ImageProblem) -> None:
    for position in positions:
        result.failures.append(RowFailure(position, problem.kind, str(problem), path, problem.details))


PIXEL_ALIGNMENT = 64


def new_pixels(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed `uint8` array whose data starts on a 64-byte boundary.

    TensorFlow takes such an array into a tensor as it is (Eigen's alignment);
    NumPy's own large arrays start 16 bytes into their allocation, which cost
    the TensorFlow backend a copy of every batch. Batches sliced from a
    window's pixels stay aligned when a crop's bytes are a multiple of 64
    (224x224x3 is).

    Args:
        shape: The array's shape.

    Returns:
        The array (a view into a slightly larger buffer).

    Example:
    >>> new_pixels((2, 3)).ctypes.data % PIXEL_ALIGNMENT
    0
    """
    size = int(np.prod(shape))
    buffer = np.zeros(size + PIXEL_ALIGNMENT, dtype=np.uint8)
    start = -buffer.ctypes.data % PIXEL_ALIGNMENT
    return buffer[start:start + size].reshape(shape)


def decode_batch(job: BatchJob) -> BatchResult:
    """Decodes every region of a batch, opening each image file once.

    Rows that fail are reported in `BatchResult.failures` (their pixels stay
    zero) instead of raising, so the caller decides between raising and
    skipping with the row's table coordinates at hand.

    Args:
        job: The `BatchJob`.

    Returns:
        The `BatchResult`.

    Example:
    >>> import numpy as np
    >>> job = BatchJob(("missing.jpg",), np.zeros(1, np.int32),
    ...                np.array([[0., 0., 4., 4.]]), False, DecodeOptions((8, 8)))
    >>> [f.kind for f in decode_batch(job).failures]
    ['missing_file']
    """
    height, width = job.options.image_size
    pixels = new_pixels((len(job.path_index), height, width, job.options.channels))
    result = BatchResult(pixels)
    path_index = np.asarray(job.path_index)
    with storage.counting_retries() as result.retries, storage.prefetch(
            job.paths, job.options.storage_options):  # URLs read concurrently
        for image_no in np.unique(path_index).tolist():
            _decode_image(job, image_no, np.flatnonzero(path_index == image_no).tolist(), result)
    result.failures.sort(key=lambda failure: failure.position)
    if job.augment is not None and job.params is not None and job.augment.changes_pixels:
        failed = {failure.position for failure in result.failures}
        for position in range(len(pixels)):
            if position not in failed:
                pixels[position] = apply_pixel_ops(pixels[position], job.params[position])
    return result
