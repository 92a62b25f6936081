"""The decoding work of a batch and its result, as plain data.

A `BatchJob` crosses the pipe to a worker process and a `BatchResult` comes
back (its pixels through shared memory), so both hold only picklable data:
paths, NumPy arrays and frozen option records. Pixels are `uint8` arrays whose
data starts on a 64-byte boundary (`new_pixels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_roi_datagen.augment import Augmentation
from keras_roi_datagen.options import (
    BORDERS,
    COLOR_MODES,
    INTERPOLATIONS,
    check_choice,
    check_image_size,
)

__all__ = ["PIXEL_ALIGNMENT", "BatchJob", "BatchResult", "DecodeOptions", "RowFailure", "new_pixels"]

PIXEL_ALIGNMENT = 64
"""Bytes the data of every pixel array the decoder hands out is aligned to."""


@dataclass(frozen=True)
class DecodeOptions:
    """How regions become pixels.

    Args:
        image_size: `(height, width)` of every crop.
        interpolation: One of `options.INTERPOLATIONS`. Defaults to
            `"bilinear"`.
        color_mode: One of `options.COLOR_MODES`: `"rgb"`, `"grayscale"` or
            `"rgba"`. Defaults to `"rgb"`.
        max_image_pixels: Refuse images with more pixels than this (`None`:
            no limit). Defaults to `None`.
        fast: Allow DCT-domain downscaling of JPEGs (see
            `keras_roi_datagen.decode`). Defaults to `True`.
        aspect_ratio: One of `options.ASPECT_RATIOS`: `"squash"` (stretch
            each window to `image_size`), `"crop"` (trim the window to the
            aspect ratio of `image_size`, keeping its centre) or `"pad"`
            (resize without distortion and pad with zeros, centred), as
            Keras's `crop_to_aspect_ratio` and `pad_to_aspect_ratio`.
            Defaults to `"squash"`.
        border: One of `options.BORDERS`, for window parts outside the image:
            `"constant"` (zeros), `"reflect"` (the image mirrored at its
            edge, edge pixel repeated) or `"clip"` (the window is clipped to
            the image). Defaults to `"constant"`.
        storage_options: Passed to fsspec for images given as URLs. Defaults
            to `None`.
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

    @classmethod
    def from_arguments(
        cls,
        image_size: Any = (224, 224),
        *,
        interpolation: str = "bilinear",
        color_mode: str = "rgb",
        max_image_pixels: int | None = -1,
        fast_decode: bool = True,
        crop_to_aspect_ratio: bool = False,
        pad_to_aspect_ratio: bool = False,
        border: str = "constant",
        storage_options: Mapping[str, Any] | None = None,
    ) -> DecodeOptions:
        """Checks the crop arguments users give (`RoiDataset`'s names) and makes the options.

        The one place they are checked and defaulted: `RoiDataset`,
        `RoiDataModule` and the command line all come here.

        Args:
            image_size: `(height, width)` of the crops.
            interpolation: One of `options.INTERPOLATIONS`.
            color_mode: One of `options.COLOR_MODES`.
            max_image_pixels: The decompression-bomb limit; `-1` (default):
                Pillow's (`PIL.Image.MAX_IMAGE_PIXELS`, read, never changed);
                `None`: no limit.
            fast_decode: Allow DCT-domain downscaling of JPEGs.
            crop_to_aspect_ratio: Trim windows to the aspect ratio of `image_size`.
            pad_to_aspect_ratio: Resize without distortion and pad.
            border: One of `options.BORDERS`.
            storage_options: Passed to fsspec for images given as URLs.

        Returns:
            The `DecodeOptions`.

        Raises:
            ValueError: For a value outside its rule, naming it.

        Example:
        >>> DecodeOptions.from_arguments((96, 96), crop_to_aspect_ratio=True).aspect_ratio
        'crop'
        """
        from PIL import Image

        size = check_image_size(image_size)
        check_choice("interpolation", interpolation, INTERPOLATIONS)
        check_choice("color_mode", color_mode, COLOR_MODES)
        check_choice("border", border, BORDERS)
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(
                "Only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True. "
                f"Received: crop_to_aspect_ratio={crop_to_aspect_ratio}, "
                f"pad_to_aspect_ratio={pad_to_aspect_ratio}")
        return cls(
            image_size=size, interpolation=interpolation, color_mode=color_mode,
            max_image_pixels=Image.MAX_IMAGE_PIXELS if max_image_pixels == -1 else max_image_pixels,
            fast=bool(fast_decode),
            aspect_ratio="crop" if crop_to_aspect_ratio else "pad" if pad_to_aspect_ratio else "squash",
            border=border, storage_options=storage_options)


@dataclass(frozen=True)
class BatchJob:
    """The decoding work of one batch, as plain data (it crosses process pipes).

    Args:
        paths: The distinct image files of the batch.
        path_index: For each row of the batch, its image's position in `paths`.
        boxes: `(rows, 4)` boxes, `xyxy`, in pixels or fractions.
        relative: Whether `boxes` are fractions of the image size.
        options: The `DecodeOptions`.
        augment: The augmentation options, or `None`. Defaults to `None`.
        params: `(rows, len(augment.PARAMETERS))` parameters drawn for the
            rows (`augment.draw`), or `None`. Defaults to `None`.
        smallest: `(len(paths), 2)`: per image, the width and height of its
            smallest region in the whole dataset (units of `boxes`), or
            `None`. With it, the fast path decodes an image at no coarser
            DCT scale than that region needs: one decode serves all of the
            image's rows in a batch, and a crop still depends only on its
            row and its image, never on which rows share its batch.
            Defaults to `None`.
    """

    paths: tuple[str, ...]
    path_index: np.ndarray
    boxes: np.ndarray
    relative: bool
    options: DecodeOptions
    augment: Augmentation | None = None
    params: np.ndarray | None = None
    smallest: np.ndarray | None = None

    @property
    def pixel_shape(self) -> tuple[int, int, int, int]:
        """`(rows, height, width, channels)`: the shape of the batch's pixels."""
        height, width = self.options.image_size
        return (len(self.path_index), height, width, self.options.channels)


@dataclass(frozen=True)
class RowFailure:
    """A row of a batch that could not be decoded.

    Args:
        position: The row's position within the batch.
        kind: The problem kind (see `keras_roi_datagen.errors.Problem`).
        message: What went wrong.
        path: The image file.
        details: The original traceback text, for unexpected errors.
            Defaults to `None`.
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
        failures: The rows that could not be decoded. Defaults to none.
        image_sizes: Displayed `(width, height)` of each image that opened.
            Defaults to none.
        retries: One URL per request retried while decoding the batch
            (`storage.counting_retries`). Defaults to none.
    """

    pixels: np.ndarray
    failures: list[RowFailure] = field(default_factory=list)
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    retries: list[str] = field(default_factory=list)


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
