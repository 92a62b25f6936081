"""Decoding a batch: every row's crop, opening each image file once.

Rows are grouped by image. For each image: open it (header only), decide
every row's window (`crop.row_window_of`), choose each row's DCT scale
(`scale`), then cut the rows of each scale from one decode: the region
decoder's strip (`native`) where it is exact, else Pillow's decode of the
whole image. Pixel augmentation runs last, on the `uint8` crops.

A row that cannot be decoded is a `RowFailure` with zero pixels, never an
exception, so the caller decides between raising and skipping.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from keras_roi_datagen import storage
from keras_roi_datagen.augment import Window, apply_pixel_ops
from keras_roi_datagen.decode import native
from keras_roi_datagen.decode.crop import (
    Cut,
    RowWindow,
    cut_extent,
    cut_pixels,
    filter_window,
    row_window_of,
    sample_region,
    scale_cut,
)
from keras_roi_datagen.decode.image import (
    ImageProblem,
    displayed_size,
    open_checked,
    orientation_of,
    prepare,
)
from keras_roi_datagen.decode.jobs import BatchJob, BatchResult, DecodeOptions, RowFailure, new_pixels
from keras_roi_datagen.decode.scale import JPEG_FORMATS, image_floor, reduction

__all__ = ["decode_batch"]


def _row_windows(job: BatchJob, positions: list[int], path: str, size: tuple[int, int],
                 result: BatchResult) -> dict[int, RowWindow]:
    """The windows of an image's rows; a row whose box misses the image is a failure."""
    rows = {}
    for position in positions:
        params = job.params[position] if job.params is not None else None
        try:
            rows[position] = row_window_of(job.boxes[position], job.relative, size, params,
                                           job.augment, job.options)
        except ImageProblem as problem:
            result.failures.append(RowFailure(position, problem.kind, str(problem), path))
    return rows


def _by_scale(job: BatchJob, image_no: int, header: Image.Image, orientation: int,
              size: tuple[int, int], rows: dict[int, RowWindow]) -> dict[int, dict[int, Cut]]:
    """The rows' cuts grouped by the DCT scale each is decoded at."""
    # A row's reduction depends on its own box and its image's smallest region,
    # never on its batch neighbours. A window reduces no further than its box
    # would (a zoomed-out row then shares its neighbours' decode).
    floor = image_floor(job, image_no, header, orientation, size)
    by_scale: dict[int, dict[int, Cut]] = {}
    for position, row in rows.items():
        scale = min(floor, reduction(header, orientation, job.options,
                                     [cut_extent(row.cut), row.box]))
        by_scale.setdefault(scale, {})[position] = row.cut
    return by_scale


def _pillow_crops(opened: Image.Image, orientation: int, options: DecodeOptions, scale: int,
                  cuts: dict[int, Cut]) -> dict[int, np.ndarray]:
    image = prepare(opened, orientation, options, scale)
    return {position: cut_pixels(image, scale_cut(cut, scale, image.size), options)
            for position, cut in cuts.items()}


def _native_crops(data: bytes, size: tuple[int, int], options: DecodeOptions, scale: int,
                  cuts: dict[int, Cut]) -> dict[int, np.ndarray] | None:
    # The reduced image's size, as libjpeg rounds it (up).
    bounds = (-(-size[0] // scale), -(-size[1] // scale))
    scaled = {p: scale_cut(cut, scale, bounds) for p, cut in cuts.items()}
    windows = {p: sample_region(c, bounds, options) if isinstance(c, Window)
               else filter_window(c, options, bounds) for p, c in scaled.items()}
    return native.crop_rows(
        data, windows, scale, options.color_mode == "grayscale",
        lambda strip, p, origin, full: cut_pixels(strip, scaled[p], options, origin, full))


def _read_bytes(path: str) -> bytes:
    source = storage.open_image(path)  # a URL's bytes were read when its header was
    if not isinstance(source, str):
        return source.getvalue()
    with open(source, "rb") as handle:
        return handle.read()


def _native_fits(header: Image.Image, orientation: int, options: DecodeOptions) -> bool:
    """Whether the region decoder gives this image's exact pixels (see `native`)."""
    return (options.fast and native.AVAILABLE and orientation == 1
            and header.format in JPEG_FORMATS and header.mode in ("RGB", "L")
            and options.color_mode in ("rgb", "grayscale"))


def _decode_image(job: BatchJob, image_no: int, positions: list[int], result: BatchResult) -> None:
    path = job.paths[image_no]
    options = job.options
    done: set[int] = set()
    try:
        with open_checked(path, options.max_image_pixels) as header:
            orientation = orientation_of(header)
            size = displayed_size(header, orientation)
            rows = _row_windows(job, positions, path, size, result)
            by_scale = _by_scale(job, image_no, header, orientation, size, rows)
            use_native = _native_fits(header, orientation, options)
            data = _read_bytes(path) if use_native and by_scale else b""  # once, for every scale
            unused: Image.Image | None = header  # the open file serves the first Pillow decode
            for scale, cuts in sorted(by_scale.items()):
                crops = _native_crops(data, size, options, scale, cuts) if use_native else None
                if crops is None and unused is not None:
                    crops, unused = _pillow_crops(unused, orientation, options, scale, cuts), None
                elif crops is None:
                    with open_checked(path, options.max_image_pixels) as again:
                        crops = _pillow_crops(again, orientation, options, scale, cuts)
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


def _checked_out(out: np.ndarray, job: BatchJob) -> np.ndarray:
    if out.dtype != np.uint8 or out.shape != job.pixel_shape or not out.flags.writeable:
        raise ValueError(
            f"`out` must be a writeable uint8 array of shape {job.pixel_shape} (the job's "
            f"rows, image_size and channels). Received: out with dtype={out.dtype}, "
            f"shape={out.shape}, writeable={out.flags.writeable}")
    return out


def decode_batch(job: BatchJob, out: np.ndarray | None = None) -> BatchResult:
    """Decodes every region of a batch, opening each image file once.

    Rows that fail are reported in `BatchResult.failures` (their pixels are
    zero) instead of raising, so the caller decides between raising and
    skipping with the row's table coordinates at hand.

    Args:
        job: The `BatchJob`.
        out: Where the pixels go: a writeable `uint8` array of shape
            `job.pixel_shape` (e.g. a view of shared memory), whose earlier
            content is overwritten. Defaults to a new 64-byte-aligned array
            (`new_pixels`).

    Returns:
        The `BatchResult`; its `pixels` are `out` when given.

    Raises:
        ValueError: If `out` has another dtype or shape, or is read-only.
        KeyError: If `job.options` names an unknown filter or colour mode
            (options are checked before a job is built).

    Example:
    >>> import numpy as np
    >>> job = BatchJob(("missing.jpg",), np.zeros(1, np.int32),
    ...                np.array([[0., 0., 4., 4.]]), False, DecodeOptions((8, 8)))
    >>> [f.kind for f in decode_batch(job).failures]
    ['missing_file']
    >>> out = np.full(job.pixel_shape, 7, np.uint8)
    >>> decode_batch(job, out).pixels is out, int(out.max())
    (True, 0)
    """
    pixels = new_pixels(job.pixel_shape) if out is None else _checked_out(out, job)
    result = BatchResult(pixels)
    path_index = np.asarray(job.path_index)
    with storage.counting_retries() as result.retries, storage.prefetch(
            job.paths, job.options.storage_options):  # URLs read concurrently
        for image_no in np.unique(path_index).tolist():
            _decode_image(job, image_no, np.flatnonzero(path_index == image_no).tolist(), result)
    result.failures.sort(key=lambda failure: failure.position)
    failed = {failure.position for failure in result.failures}
    pixels[sorted(failed)] = 0  # `out` may hold an earlier batch's pixels
    if job.augment is not None and job.params is not None and job.augment.changes_pixels:
        for position in range(len(pixels)):
            if position not in failed:
                pixels[position] = apply_pixel_ops(pixels[position], job.params[position])
    return result
