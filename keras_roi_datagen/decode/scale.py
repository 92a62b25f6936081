"""The fast path's decode scale: how far libjpeg may reduce a JPEG while decoding it.

With `DecodeOptions.fast`, a JPEG whose regions are at least twice as large
as `image_size` is decoded at 1/2, 1/4 or 1/8 scale (`Image.draft`, DCT-domain
downscaling; for a mirrored or rotated image only by a factor that divides
both sides). The image's smallest region in the dataset sets the coarsest
scale any of its rows may use, so a batch decodes each image once, and a crop
never depends on its batch. Crops then differ from full-size decoding by
resampling noise only (tests bound it).
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from keras_roi_datagen.boxes import to_pixel_xyxy
from keras_roi_datagen.decode.jobs import BatchJob, DecodeOptions

__all__ = ["JPEG_FORMATS", "image_floor", "reduction"]

JPEG_FORMATS = ("JPEG", "MPO")
"""Pillow formats libjpeg decodes (the only ones the fast path reduces)."""

Box = tuple[float, float, float, float]


def _draft_scale(boxes: Sequence[Box], out_hw: tuple[int, int]) -> int:
    ratio = min(min((b[2] - b[0]) / out_hw[1], (b[3] - b[1]) / out_hw[0]) for b in boxes)
    scale = 1
    while scale < 8 and scale * 2 <= ratio:
        scale *= 2
    return scale


def reduction(image: Image.Image, orientation: int, options: DecodeOptions,
              pixel_boxes: Sequence[Box] | None) -> int:
    """The DCT scale the fast path may decode an image at for these boxes.

    Args:
        image: The opened (not yet decoded) image.
        orientation: Its EXIF orientation (1 to 8).
        options: The `DecodeOptions` (`fast`, `image_size`).
        pixel_boxes: Boxes (displayed pixels) that will be cut from it, or
            `None`.

    Returns:
        The scale denominator: 1 (full size), 2, 4 or 8.
    """
    if not (options.fast and pixel_boxes and image.format in JPEG_FORMATS):
        return 1
    wanted = _draft_scale(pixel_boxes, options.image_size)
    stored_w, stored_h = image.size
    if orientation not in (1, 5):
        while wanted > 1 and (stored_w % wanted or stored_h % wanted):
            wanted //= 2
    return wanted


def image_floor(job: BatchJob, image_no: int, header: Image.Image, orientation: int,
                size: tuple[int, int]) -> int:
    """The coarsest DCT scale any row of an image may use (8 without `job.smallest`).

    Decoding a JPEG at a second scale costs most of a first one (entropy
    decoding is the same), so every row of an image shares the scale its
    smallest region needs.

    Args:
        job: The `BatchJob`.
        image_no: The image's position in `job.paths`.
        header: The opened image.
        orientation: Its EXIF orientation.
        size: Its displayed `(width, height)`.

    Returns:
        The scale denominator (1, 2, 4 or 8).
    """
    if job.smallest is None:
        return 8
    width, height = (float(v) for v in job.smallest[image_no])
    box = to_pixel_xyxy((0.0, 0.0, width, height), job.relative, size[0], size[1])
    return reduction(header, orientation, job.options, [box])
