"""Opening an image: the bomb guard, EXIF orientation and mode conversion.

What happens to one image before it is cut, in order:

1. Open lazily (header only) and check the pixel count against
   `max_image_pixels` (the decompression-bomb guard; configurable per dataset
   without touching Pillow's global setting).
2. Decode, for a JPEG at the DCT scale `decode.scale` chose.
3. Apply the EXIF orientation, so boxes refer to the image as displayed, which
   is how VGG Image Annotator shows it.
4. Convert the mode: palette, CMYK, 1-bit, 16-bit and float images become
   8-bit; for `color_mode` `"rgb"` and `"grayscale"` any transparency is
   composited over black (keep it with `"rgba"`).

Every failure is an `ImageProblem` whose `kind` is a problem kind of
`keras_roi_datagen.errors.Problem`.
"""

from __future__ import annotations

import io
import os
import struct
import traceback
from collections.abc import Sequence
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_roi_datagen import storage
from keras_roi_datagen.decode.jobs import DecodeOptions
from keras_roi_datagen.decode.scale import JPEG_FORMATS, reduction
from keras_roi_datagen.errors import StorageError

__all__ = [
    "ImageProblem",
    "crop_unchecked",
    "displayed_size",
    "load_image",
    "open_checked",
    "orientation_of",
    "prepare",
    "read_image_header",
    "read_image_size",
]

_PIL_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
_SWAPS_AXES = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


class ImageProblem(Exception):
    """An image could not be used; `kind` is the problem kind.

    Args:
        kind: The problem kind (see `keras_roi_datagen.errors.Problem`).
        message: What went wrong.
        details: The original traceback text, for unexpected errors.
            Defaults to `None`.
    """

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


def crop_unchecked(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`Image.crop` without Pillow's global bomb limit (the dataset's was applied at open).

    Args:
        image: An image (loaded here if it is not yet).
        box: Integer `xyxy` pixels of `image`.

    Returns:
        The cut-out pixels as a new image.
    """
    image.load()
    return image._new(image.im.crop(tuple(int(v) for v in box)))


def open_checked(path: str, max_image_pixels: int | None) -> Image.Image:
    """Opens an image lazily (header only) and applies the decompression-bomb guard.

    Args:
        path: The image file, or a URL `storage` reads.
        max_image_pixels: Refuse images with more pixels than this (`None`:
            no limit).

    Returns:
        The opened image; close it (it owns its file).

    Raises:
        ImageProblem: If the file is missing, unreadable, not an image, or
            too large.
    """
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


def orientation_of(image: Image.Image) -> int:
    """The EXIF orientation of an opened image.

    Args:
        image: The opened image.

    Returns:
        1 to 8; 1 when the tag is missing, invalid or its EXIF block corrupt.
    """
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a corrupt EXIF block must not lose the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def displayed_size(image: Image.Image, orientation: int) -> tuple[int, int]:
    """The `(width, height)` an image has once its EXIF orientation is applied.

    Args:
        image: The opened image.
        orientation: Its EXIF orientation (`orientation_of`).

    Returns:
        `(width, height)` as displayed.
    """
    width, height = image.size
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def read_image_size(path: str, max_image_pixels: int | None = None) -> tuple[int, int]:
    """Reads an image's displayed `(width, height)` from its header and EXIF.

    Args:
        path: The image file.
        max_image_pixels: Pixel-count limit, as in `DecodeOptions`. Defaults
            to `None`.

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
        max_image_pixels: Pixel-count limit, as in `DecodeOptions`. Defaults
            to `None`.

    Returns:
        `((width, height), format)`: the size after EXIF orientation, and
        Pillow's format name (`"JPEG"`, `"PNG"`, ...).

    Raises:
        ImageProblem: If the file is missing, not an image, or too large.
    """
    with open_checked(path, max_image_pixels) as image:
        return displayed_size(image, orientation_of(image)), image.format


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


def _draft(image: Image.Image, scale: int, color_mode: str) -> None:
    # libjpeg decodes at 1/scale, rounding the size up: the last column and
    # row then hold a partial block, and pixel i covers stored pixels
    # [scale*i, scale*(i+1)). That padding sits at the end of each axis, where
    # it is harmless, unless the orientation mirrors an axis and moves it to
    # the start; for those `scale.reduction` only picks a factor dividing both sides.
    stored_w, stored_h = image.size
    mode = {"rgb": "RGB", "grayscale": "L"}.get(color_mode)
    image.draft(mode, (stored_w // scale, stored_h // scale))


def prepare(image: Image.Image, orientation: int, options: DecodeOptions, scale: int) -> Image.Image:
    """Decodes (at 1/scale when allowed), orients and converts an opened image.

    Args:
        image: An image from `open_checked`.
        orientation: Its EXIF orientation (`orientation_of`).
        options: The `DecodeOptions` (`fast`, `color_mode`).
        scale: The DCT scale denominator (`scale.reduction`).

    Returns:
        The decoded image, as displayed, in the mode of `options.color_mode`.

    Raises:
        ImageProblem: If the pixels cannot be decoded (`"image_truncated"`
            or `"image_unreadable"`).
    """
    path = getattr(image, "filename", "") or "<image>"
    try:
        if options.fast and image.format in JPEG_FORMATS:
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
            decodes at full size. Defaults to `None`.

    Returns:
        `(image, sx, sy)`: the oriented, converted image and the factors that
        map displayed full-size coordinates to its coordinates.

    Raises:
        ImageProblem: If the file cannot be opened or decoded.
    """
    with open_checked(path, options.max_image_pixels) as image:
        orientation = orientation_of(image)
        scale = reduction(image, orientation, options, pixel_boxes)
        return prepare(image, orientation, options, scale), 1.0 / scale, 1.0 / scale
