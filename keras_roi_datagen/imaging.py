"""Image decoding and cropping: open, orient, convert, crop, resize.

This module imports only NumPy and Pillow, never Keras or a backend, so worker
processes start fast and decoding is byte-identical on every backend.

What happens to one image, in order:

1. Open lazily (header only) and check the pixel count against
   `max_image_pixels` (the decompression-bomb guard; configurable per dataset
   without touching Pillow's global setting).
2. Fast path (`fast=True`, JPEG only): when every region of this image in the
   batch is at least twice as large as `image_size`, ask libjpeg to decode at
   1/2, 1/4 or 1/8 scale (`Image.draft`, DCT-domain downscaling; for a
   mirrored or rotated image only by a factor that divides both sides). Crops
   then differ from the reference path by resampling noise only (tests bound it).
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

import contextlib
import math
import os
import threading
import traceback
import zlib
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_roi_datagen import jpeg_region
from keras_roi_datagen.boxes import clip_box, to_pixel_xyxy

__all__ = [
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
_PIL_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
_SWAPS_AXES = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112
_JPEG_FORMATS = ("JPEG", "MPO")
_OPEN_LOCK = threading.Lock()


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
    """

    image_size: tuple[int, int]
    interpolation: str = "bilinear"
    color_mode: str = "rgb"
    max_image_pixels: int | None = None
    fast: bool = True

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
    """

    paths: tuple[str, ...]
    path_index: np.ndarray
    boxes: np.ndarray
    relative: bool
    options: DecodeOptions


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
    """

    pixels: np.ndarray
    failures: list[RowFailure] = field(default_factory=list)
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


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


@contextlib.contextmanager
def _pillow_limit_lifted() -> Iterator[None]:
    # Pillow's bomb check reads a module global; it is lifted under a lock only
    # around our own header reads and crops, and the dataset's limit applies.
    with _OPEN_LOCK:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _open(path: str, max_image_pixels: int | None) -> Image.Image:
    try:
        with _pillow_limit_lifted():
            image = Image.open(path)
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
    with _open(path, max_image_pixels) as image:
        return _displayed_size(image, _orientation(image))


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


def _last_float32_below(size: int) -> float:
    return float(np.nextafter(np.float32(size), np.float32(0)))


def crop_region(
    image: Image.Image | np.ndarray,
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
        image: An image from `load_image`, or the pixels of a decoded strip
            of one as an array (the region-decode fast path).
        box: `xyxy` in pixels of the whole (possibly reduced) image, inside it.
        options: The `DecodeOptions`.
        origin: Where `image` starts within the whole image (for strips).
        bounds: `(width, height)` of the whole image; defaults to `image.size`.

    Returns:
        `uint8` array of shape `(height, width, channels)`.
    """
    height, width = options.image_size
    if bounds is not None:
        full_w, full_h = bounds
    else:
        full_w, full_h = image.size if isinstance(image, Image.Image) else image.shape[1::-1]
    x0, y0, x1, y1 = box
    # Pillow reads the box as single-precision floats: a sliver thinner than
    # one float32 step at the right or bottom edge would round onto that edge,
    # sample outside the image and come out black. Keep its start inside.
    x0 = min(x0, _last_float32_below(full_w))
    y0 = min(y0, _last_float32_below(full_h))
    wx0, wy0, wx1, wy1 = filter_window((x0, y0, x1, y1), options, (full_w, full_h))
    left, top = origin
    if isinstance(image, Image.Image):
        with _pillow_limit_lifted():  # Image.crop applies Pillow's global limit too
            window = image.crop((wx0 - left, wy0 - top, wx1 - left, wy1 - top))
    else:
        window = Image.fromarray(np.ascontiguousarray(image[wy0 - top:wy1 - top, wx0 - left:wx1 - left]))
    resized = window.resize(
        (width, height), INTERPOLATIONS[options.interpolation],
        box=(x0 - wx0, y0 - wy0, x1 - wx0, y1 - wy0),
    )
    out = np.asarray(resized, dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


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


def _pillow_crops(opened: Image.Image, orientation: int, options: DecodeOptions, scale: int,
                  boxes: dict[int, tuple[float, float, float, float]]) -> dict[int, np.ndarray]:
    image = _prepare(opened, orientation, options, scale)
    max_w, max_h = image.size
    return {
        position: crop_region(
            image, (x0 / scale, y0 / scale, min(x1 / scale, max_w), min(y1 / scale, max_h)), options)
        for position, (x0, y0, x1, y1) in boxes.items()
    }


def _native_crops(data: bytes, size: tuple[int, int], options: DecodeOptions, scale: int,
                  boxes: dict[int, tuple[float, float, float, float]],
                  memo: Any = None, identity: Hashable = None) -> dict[int, np.ndarray] | None:
    # The reduced image's size, as libjpeg rounds it (up).
    bounds = (-(-size[0] // scale), -(-size[1] // scale))
    scaled = {p: (x0 / scale, y0 / scale, min(x1 / scale, bounds[0]), min(y1 / scale, bounds[1]))
              for p, (x0, y0, x1, y1) in boxes.items()}
    gray = options.color_mode == "grayscale"
    if memo is not None:  # the whole image, kept for the next batches (memo.py)
        whole = memo.get_or_make((identity, scale, gray),
                                 lambda: jpeg_region.decode_whole(data, size, scale, gray))
        if whole is None:
            return None
        return {p: crop_region(whole, b, options, (0, 0), bounds) for p, b in scaled.items()}
    windows = {p: filter_window(b, options, bounds) for p, b in scaled.items()}
    return jpeg_region.crop_rows(
        data, windows, scale, gray,
        lambda strip, p, origin, full: crop_region(strip, scaled[p], options, origin, full))


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _decode_image(job: BatchJob, image_no: int, positions: list[int], result: BatchResult,
                  memo: Any = None) -> None:
    path = job.paths[image_no]
    options = job.options
    done: set[int] = set()
    try:
        with _open(path, options.max_image_pixels) as header:
            orientation = _orientation(header)
            size = _displayed_size(header, orientation)
            clipped = _clip_rows(job, positions, size, result)
            # Each row's own reduction: a crop never depends on its batch neighbours.
            by_scale: dict[int, dict[int, tuple[float, float, float, float]]] = {}
            for position, box in clipped.items():
                scale = _reduction(header, orientation, options, [box])
                by_scale.setdefault(scale, {})[position] = box
            native = (options.fast and jpeg_region.AVAILABLE and orientation == 1
                      and header.format in _JPEG_FORMATS and header.mode in ("RGB", "L")
                      and options.color_mode in ("rgb", "grayscale"))
            data = _read_bytes(path) if native and by_scale else b""  # once, for every scale
            identity = (path, len(data), zlib.crc32(data)) if memo is not None and data else None
            unused: Image.Image | None = header  # the open file serves the first Pillow decode
            for scale, boxes in sorted(by_scale.items()):
                crops = (_native_crops(data, size, options, scale, boxes, memo if identity else None,
                                       identity) if native else None)
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


def _fail_all(result: BatchResult, positions: list[int], path: str, problem: ImageProblem) -> None:
    for position in positions:
        result.failures.append(RowFailure(position, problem.kind, str(problem), path, problem.details))


def decode_batch(job: BatchJob, memo: Any = None) -> BatchResult:
    """Decodes every region of a batch, opening each image file once.

    Rows that fail are reported in `BatchResult.failures` (their pixels stay
    zero) instead of raising, so the caller decides between raising and
    skipping with the row's table coordinates at hand.

    Args:
        job: The `BatchJob`.
        memo: Optional `memo.ImageMemo`: JPEGs on the region-decode path are
            then decoded whole and kept for later batches. Defaults to `None`.

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
    pixels = np.zeros((len(job.path_index), height, width, job.options.channels), dtype=np.uint8)
    result = BatchResult(pixels)
    path_index = np.asarray(job.path_index)
    for image_no in np.unique(path_index).tolist():
        _decode_image(job, image_no, np.flatnonzero(path_index == image_no).tolist(), result, memo)
    result.failures.sort(key=lambda failure: failure.position)
    return result
