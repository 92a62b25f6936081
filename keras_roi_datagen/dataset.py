"""`RoiDataset`: a `keras.utils.PyDataset` of labelled image regions.

Why it is also its own Keras `DataAdapter`: `model.fit` accepts a
`DataAdapter` instance as is (`keras.src.trainers.data_adapters.
get_data_adapter`, Keras >= 3.7). Going through Keras's `PyDatasetAdapter`
instead would bring three faults this library exists to avoid:

- its `OrderedEnqueuer` keeps batches prefetched for a pass that was cut
  short (the one `fit` starts to build the model, or `steps_per_epoch`) and
  serves them at the start of the next pass, so an epoch sees some batches
  twice and never sees others;
- `fit(shuffle=True)`, the default, reorders batches with Python's unseeded
  global `random`, so two runs with the same seed differ;
- process workers are forked from the training process every epoch (JAX warns
  and can deadlock) and a worker killed by the OS hangs `fit` forever.

As its own adapter (the hooks are `adapter.KerasAdapter`), `RoiDataset`
serves each pass itself, in the order of its seeded epoch plan
(`planning.py`; where iteration stands is one `planning.Progress`), with its
own threads or worker processes (`decode_workers.py`, `workers/`); batches
are built and shaped in `batching.py`.
`fit`'s `shuffle` argument has no effect on it: shuffling is
`RoiDataset(shuffle=True, seed=...)`. Used by hand, it is a plain
`PyDataset`: `len(ds)` batches, `ds[i]` decoded in the caller.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
from keras.utils import PyDataset
from PIL import Image

from keras_roi_datagen import storage
from keras_roi_datagen.adapter import KerasAdapter
from keras_roi_datagen.augment import (
    Augmentation,
    Explanation,
    draw,
    parameters_of,
    parse_augmentation,
)
from keras_roi_datagen.batching import Batch, BatchAssembler, OutputSpec, describe_batch, stream_batches
from keras_roi_datagen.boxes import BoxFormat
from keras_roi_datagen.cache import CropStore, check_cache_allowed, open_cache
from keras_roi_datagen.decode import DecodeOptions, ImageProblem, read_image_size, row_window_of
from keras_roi_datagen.decode_workers import DecodeWorkers
from keras_roi_datagen.errors import Problem, raise_problems
from keras_roi_datagen.formats.registry import Source
from keras_roi_datagen.index import IndexBuild, RoiIndex, build_index, resolve_table
from keras_roi_datagen.index.cache import image_table
from keras_roi_datagen.labels import LabelMode, LabelVocabulary
from keras_roi_datagen.mapped import read_range
from keras_roi_datagen.options import (
    DATA_FORMATS,
    LABEL_MODES,
    ON_ERROR,
    OUTPUT_FORMATS,
    OnError,
    check_choice,
    check_dtype,
    check_non_negative_int,
    check_positive_int,
    check_seed,
    check_shuffle_window,
)
from keras_roi_datagen.planning import (
    LARGE_TABLE_ROWS,
    EpochPlan,
    ImageTable,
    PassInfo,
    Position,
    Progress,
    check_shard,
    count_steps,
    plan_epoch,
)
from keras_roi_datagen.sharding import discover_shard
from keras_roi_datagen.state import batch_config, make_state, restore
from keras_roi_datagen.validation import ValidationReport, scan_images
from keras_roi_datagen.workers import PassExecutor

_LOG = logging.getLogger("keras_roi_datagen")

__all__ = ["PassInfo", "RoiDataset"]

_SKIP_HINT = (
    "Pass on_error='skip' to leave such rows out (each is listed in `ds.skipped`), "
    "or list every problem first with `keras-roi-datagen validate TABLE`."
)


def _check_shard(shard: Any) -> tuple[int, int]:
    if isinstance(shard, str):
        if shard != "auto":
            raise ValueError(f"`shard` must be 'auto' or (index, count). Received: shard={shard!r}")
        return discover_shard()
    return check_shard(shard)


# `KerasAdapter` comes first: its `num_batches` must win over `PyDataset`'s.
class RoiDataset(KerasAdapter, PyDataset):  # type: ignore[misc]
    """Batches of regions cropped from images, with one label array per head.

    Each row of the table is one region of one image. A batch is `(x, y)`:
    `x` of shape `(batch, height, width, channels)`, `y` one array per label
    column in `y_cols` order (a tuple, or a dict keyed by column with
    `output_format="dict"`; a bare array when there is one label column; no `y`
    when `y_cols=()`). Pixels are 0..255 (`float32` by default, or `uint8`):
    nothing is rescaled, as with Keras's image utilities; put a `Rescaling`
    layer in the model if it expects 0..1.

    Args:
        table: A DataFrame, or the path of a VIA export (CSV or JSON) or of
            another CSV file (or an `IndexBuild` from `build_index`, to share
            one read of a table between datasets, as `RoiDataModule` does).
        image_dir: Folder that relative file names are resolved against.
            Defaults to the table file's folder (or the working directory for
            a DataFrame). Names that lead outside it are refused.
        x_col: Column of image file names. Defaults to `"filename"`.
        box_col: Column holding each box as a VIA shape (dict or JSON text)
            or a list of four numbers. Defaults to `"region_shape_attributes"`.
        box_cols: Four numeric columns holding the box instead, read with
            `box_format`. Defaults to `None`.
        box_format: `"xywh"` (VIA rect; default), `"xyxy"`, `"rel_xywh"` or
            `"rel_xyxy"` (fractions of the image size).
        y_cols: Label columns, one output head each. In a VIA export these are
            keys of `region_attributes`. Defaults to `None`: the format's
            label columns (`formats.label_columns`): `("label",)` for a COCO,
            VOC, YOLO, Label Studio or CVAT path and for the frame
            `read_annotations` makes of one, `("name", "type")` for a VIA
            export or a plain table (a URL counts as one unless `format`
            names it).
        vocabularies: Optional dict of label column to `LabelVocabulary` or
            list of classes. Columns left out get a vocabulary built from this
            table (sorted).
        image_size: `(height, width)` of the crops. Defaults to `(224, 224)`.
        interpolation: `"bilinear"` (default), `"nearest"`, `"bicubic"`,
            `"hamming"`, `"box"` or `"lanczos"` (Pillow filters; downscaling
            is antialiased).
        color_mode: `"rgb"` (default), `"grayscale"` or `"rgba"`.
        batch_size: Regions per batch. Defaults to 32.
        shuffle: Whether to shuffle rows every epoch. Defaults to `True`.
        seed: Seed of the shuffle, an integer in `[0, 2**63)`. The same seed
            gives the same sequence of epochs on every backend, worker mode,
            machine and host count. Defaults to a random seed (kept in
            `ds.seed`); required when the run has several hosts, since they
            must agree on one order.
        drop_remainder: Whether to drop the last, shorter batch.
        class_weight: Optional dict of label column to `{class: weight}`,
            classes given as the table holds them (not as indices; see
            `ds.vocabularies[column].classes`). Batches then carry per-head
            sample weights, `(x, y, sample_weight)`, which is how Keras
            weights several heads (its own `fit(class_weight=...)` does not
            apply to a dataset adapter, nor to several outputs).
        label_mode: `"categorical"` (one-hot `float32`; default) or `"int"`.
        output_format: `"tuple"` (default) or `"dict"` (to match named outputs).
        dtype: dtype of `x`: `"float32"` (default), `"float16"`, `"float64"`
            or `"uint8"` (or the NumPy dtype).
        data_format: `"channels_last"`: `x` is `(batch, height, width,
            channels)`; `"channels_first"`: `(batch, channels, height, width)`,
            the same pixels transposed. Defaults to
            `keras.config.image_data_format()`.
        on_error: `"raise"` (default): any bad row is an error naming the
            file, row, column and value. `"skip"`: bad rows are left out
            before batching and listed in `ds.skipped`; rows that fail only
            when decoded are left out and replaced by rows of the epoch's last
            batch, and listed too.
        group_by_image: With `shuffle`, keep the regions of an image together
            (images are shuffled, then regions within each), so a batch needs
            fewer decodes. Faster when images hold many regions; batches are
            less mixed. Defaults to `False`.
        shuffle_window: With `shuffle` (and without `group_by_image`), rows
            are shuffled in two steps: images (with their regions) over the
            whole epoch, then every run of `shuffle_window` consecutive rows
            among themselves. A batch then mixes the regions of many images,
            while the regions of one image stay within one or two windows,
            and the batches of a window are decoded together by one worker,
            which decodes each of their images once. `None` or 1: every row
            is shuffled independently (every region of a photo is decoded
            on its own; slower when images hold several regions). Defaults to
            128 (with 32-row batches, four batches per window).
        fast_decode: Let JPEGs be decoded at reduced size when every region
            is at least twice `image_size` (libjpeg's DCT scaling). Defaults
            to `True`; `False` is the reference path.
        max_image_pixels: Images with more pixels are refused (the
            decompression-bomb guard). Defaults to Pillow's limit.
        allow_outside_image_dir: Accept file names that lead outside
            `image_dir`. Defaults to `False`.
        shard: `"auto"` (default) or `(index, count)`: this host's place in a
            data-parallel run. `"auto"` asks JAX multi-process, then
            `torch.distributed`, then TensorFlow's `TF_CONFIG` (see
            `keras_roi_datagen.sharding`), else `(0, 1)`. Every step takes one
            global batch of `batch_size * count` rows of the epoch's order and
            this host gets its `batch_size` of them; with several hosts the
            last global batch is padded with weight-0 rows, so batches are
            `(x, y, sample_weight)`, equally shaped on every host, and every
            row is trained exactly once per epoch.
        workers: Keras's `workers`: `0`/`1` decode in the calling thread,
            more run that many threads (or processes).
        use_multiprocessing: Decode in `workers` worker processes, fresh
            interpreters started without forking the training process.
        max_queue_size: Batches decoded ahead of training, at most.
        worker_timeout: Seconds one batch may take before its worker is
            declared hung. Defaults to 600; `None` waits forever.
        format: The annotation format of a `table` path: `"auto"` (default:
            detected) or `"via"`, `"coco"`, `"voc"`, `"yolo"`,
            `"labelstudio"`, `"cvat"` (see `read_annotations`). Such a path
            (or the frame `read_annotations` returns) needs no box
            arguments: its `x`, `y`, `w`, `h` columns are used, its class
            column `label` is the default `y_cols`, and `image_dir`
            defaults to where the format keeps its images.
        augment: Region augmentation: an `Augmentation` or a dict of its
            options (`zoom`, `shift`, `aspect`, `context`, `horizontal_flip`,
            `vertical_flip`, `rotation`, `brightness`, `contrast`,
            `saturation`, `hue`, `erasing`). Each row's parameters are drawn
            from `(seed, epoch, row)`, so batches stay the same on every
            backend and worker mode; `ds.explain(row)` shows them. Defaults
            to `None` (off).
        border: What a crop window shows where it leaves the image (after
            `context`, `zoom`, `shift` or `rotation`): `"constant"` (zeros;
            default), `"reflect"` (the image mirrored) or `"clip"` (the window
            is clipped to the image before it is turned; corners a rotation
            still takes outside are zeros).
        crop_to_aspect_ratio: Trim each window (around its centre) to the
            aspect ratio of `image_size` instead of stretching it, as Keras's
            `crop_to_aspect_ratio`. Defaults to `False`.
        pad_to_aspect_ratio: Resize each window without distortion and pad
            the crop with zeros (centred), as Keras's `pad_to_aspect_ratio`.
            Defaults to `False` (stretch: Keras's default too).
        storage_options: For tables and images given as URLs (`s3://`,
            `gs://`, `https://`, any fsspec protocol): passed to fsspec, as
            in pandas. Defaults to `None` (credentials from the usual places).
            See `keras_roi_datagen.storage`.
        index_cache: For a table file: a folder where the compiled index is
            kept as memory-mapped columns and reused while the table is
            unchanged (`True`: `~/.cache/keras_roi_datagen/index`). Defaults
            to `None` (no cache). See `keras_roi_datagen.index.cache`.
        cache: Keep each row's final crop after it is first decoded, so later
            epochs read it instead of decoding again: a folder (shared by
            processes and runs; entries are checksummed and written
            atomically) or `True` (this process's memory). Batches are the
            same bytes with or without it. A changed image file invalidates
            its rows, a changed crop option every row. Cannot be combined
            with random augmentation. See `keras_roi_datagen.cache`.
            Defaults to `None` (no cache).
        cache_max_bytes: The most bytes the cache stores; once full it keeps
            its entries and stops adding (no eviction). Defaults to 2 GiB in
            memory, 64 GiB in a folder.

    Decode workers (threads or processes) start on the first pass and stay
    for the next ones (epochs, validation passes) until `ds.close()`, the end
    of a `with RoiDataset(...) as ds:` block, garbage collection or
    interpreter exit.

    Example:
    ```python
    ds = RoiDataset("via_export.csv", y_cols=("name", "type"),
                    image_size=(96, 96), batch_size=32, seed=1337)
    x, (y_name, y_type) = ds[0]
    model.fit(ds, epochs=10, validation_data=val_ds)
    ```
    """

    def __init__(
        self,
        table: pd.DataFrame | str | os.PathLike[str] | Source | IndexBuild,
        *,
        image_dir: str | os.PathLike[str] | None = None,
        x_col: str = "filename",
        box_col: str = "region_shape_attributes",
        box_cols: Sequence[str] | None = None,
        box_format: BoxFormat | str = "xywh",
        y_cols: Sequence[str] | None = None,
        vocabularies: Mapping[str, LabelVocabulary | Sequence[Any]] | None = None,
        image_size: tuple[int, int] = (224, 224),
        interpolation: str = "bilinear",
        color_mode: str = "rgb",
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int | None = None,
        drop_remainder: bool = False,
        class_weight: Mapping[str, Mapping[Any, float]] | None = None,
        label_mode: str = "categorical",
        output_format: str = "tuple",
        dtype: str = "float32",
        on_error: str = "raise",
        group_by_image: bool = False,
        shuffle_window: int | None = 128,
        fast_decode: bool = True,
        max_image_pixels: int | None = -1,
        allow_outside_image_dir: bool = False,
        shard: tuple[int, int] | str = "auto",
        data_format: str | None = None,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        worker_timeout: float | None = 600.0,
        format: str = "auto",
        augment: Augmentation | Mapping[str, Any] | None = None,
        border: str = "constant",
        crop_to_aspect_ratio: bool = False,
        pad_to_aspect_ratio: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        index_cache: str | os.PathLike[str] | bool | None = None,
        cache: str | os.PathLike[str] | bool | None = None,
        cache_max_bytes: int | None = None,
    ) -> None:
        super().__init__(
            workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size
        )
        self._batch_size = check_positive_int("batch_size", batch_size)
        check_non_negative_int("workers", workers)
        check_positive_int("max_queue_size", max_queue_size)
        self.options = DecodeOptions.from_arguments(
            image_size, interpolation=interpolation, color_mode=color_mode,
            max_image_pixels=max_image_pixels, fast_decode=fast_decode,
            crop_to_aspect_ratio=crop_to_aspect_ratio, pad_to_aspect_ratio=pad_to_aspect_ratio,
            border=border, storage_options=storage_options)
        self.image_size = self.options.image_size
        self.interpolation, self.color_mode = self.options.interpolation, self.options.color_mode
        self.label_mode = cast(LabelMode, check_choice("label_mode", label_mode, LABEL_MODES))
        self.output_format = check_choice("output_format", output_format, OUTPUT_FORMATS)
        if data_format is None:
            from keras import config as keras_config

            data_format = keras_config.image_data_format()
        self.data_format = check_choice("data_format", data_format, DATA_FORMATS)
        self.on_error = cast(OnError, check_choice("on_error", on_error, ON_ERROR))
        self.augment = parse_augmentation(augment)
        if not (cache is None or isinstance(cache, (bool, str, os.PathLike))):
            raise ValueError("`cache` must be a folder path, True (memory) or None. "
                             f"Received: cache={cache!r}")
        if cache_max_bytes is not None and (
                not isinstance(cache_max_bytes, (int, np.integer)) or cache_max_bytes < 1):
            raise ValueError("`cache_max_bytes` must be a positive integer or None. "
                             f"Received: cache_max_bytes={cache_max_bytes!r}")
        check_cache_allowed(cache, self.augment)
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        given_seed = check_seed(seed)
        self.dtype = check_dtype(dtype)
        self.group_by_image = bool(group_by_image)
        self.shuffle_window = check_shuffle_window(shuffle_window)
        self.shard = _check_shard(shard)
        if given_seed is None and self.shard[1] > 1 and self.shuffle:
            raise ValueError(
                f"This process is host {self.shard[0]} of {self.shard[1]} (shard={shard!r}), and "
                "hosts that each draw their own random seed shuffle differently, so rows would be "
                "served twice or never. Pass the same `seed` on every host. Received: seed=None")
        self._seed_given = given_seed is not None
        self.seed = given_seed if given_seed is not None else random.SystemRandom().randrange(2**31)
        self.worker_timeout = worker_timeout
        if isinstance(table, IndexBuild):
            build = table
            self.y_cols = tuple(table.vocabularies) if y_cols is None else (
                (y_cols,) if isinstance(y_cols, str) else tuple(y_cols))
        else:  # after every check: the table is opened, a path's head read to name its format
            source, spec = resolve_table(
                table, image_dir=image_dir, x_col=x_col, box_col=box_col, box_cols=box_cols,
                box_format=box_format, y_cols=y_cols,
                allow_outside_image_dir=allow_outside_image_dir, format=format,
                storage_options=storage_options)
            self.y_cols = spec.y_cols
            build = build_index(source, spec, vocabularies, cache=index_cache)
        self._build(build)
        self.output_spec = OutputSpec.build(
            self.vocabularies, label_mode=self.label_mode, output_format=self.output_format,
            dtype=self.dtype, data_format=self.data_format, image_size=self.image_size,
            channels=self.options.channels, class_weight=class_weight,
            weighted=self.shard[1] > 1 and not self.drop_remainder)
        self.class_weight = self.output_spec.class_weights
        if len(self) == 0:
            raise ValueError(
                f"drop_remainder=True with batch_size={self._batch_size} leaves no batch: the "
                f"table has {len(self.index)} usable rows (shard {self.shard}). Lower batch_size "
                "or pass drop_remainder=False.")
        self._decode_skips: dict[Any, Problem] = {}
        self._plan_cache: tuple[tuple[int, int], EpochPlan] | None = None
        self._progress = Progress()
        self.cache: CropStore | None = open_cache(cache, cache_max_bytes)
        self._decode_workers = DecodeWorkers(workers, use_multiprocessing, worker_timeout, self.cache)

    # -- building -----------------------------------------------------------------------------

    def _build(self, build: IndexBuild, keep_skips: bool = False) -> None:
        errors = [] if keep_skips else build.errors
        if errors and self.on_error == "raise":
            raise_problems(errors, _SKIP_HINT)
        missing = [c for c in self.y_cols if c not in build.vocabularies]
        if missing:
            raise ValueError(f"The index has no labels for {missing}; it was built for "
                             f"{list(build.vocabularies)}. Received: y_cols={self.y_cols}")
        if len(build.index) == 0:
            detail = f" All {build.n_rows} rows had problems." if build.n_rows else ""
            raise_problems(errors or [Problem(
                "table_empty", f"the table has no usable region rows.{detail}",
                source=build.index.source)], _SKIP_HINT)
        self.index: RoiIndex = build.index
        self.vocabularies: dict[str, LabelVocabulary] = {
            c: build.vocabularies[c] for c in self.y_cols}
        self.problems: list[Problem] = build.problems
        self.rows_without_regions = build.rows_without_regions
        if not keep_skips:
            self._build_skips = errors
        self._rows_read = build.n_rows
        if not hasattr(self, "_storage_stats"):  # kept when validate() rebuilds the index
            self._storage_stats = storage.StorageStats()
        self._assembler = BatchAssembler(self.index, self.options, self.on_error, self._record_skips,
                                         self.augment, self._storage_stats)

    def _record_skips(self, problems: list[Problem]) -> None:
        for problem in problems:
            self._decode_skips.setdefault(problem.row, problem)

    @property
    def skipped(self) -> list[Problem]:
        """Every row left out, with its reason: when the table was read, and when decoded."""
        return self._build_skips + list(self._decode_skips.values())

    @property
    def warnings(self) -> list[Problem]:
        """Things noticed but kept: stripped label whitespace, duplicate rows."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def storage_stats(self) -> storage.StorageStats:
        """Requests to URLs retried after transient failures, by this dataset so far.

        Counted in every worker mode: the calling thread, worker threads and
        worker processes (which send their retries back with each batch), and
        `validate()`. A pass that retried also logs one warning line naming
        the URLs (logger `"keras_roi_datagen"`). A snapshot: read it after a
        pass.

        Example:
        >>> for batch in ds.iter_batches():  # doctest: +SKIP
        ...     pass
        >>> ds.storage_stats.retried_urls  # doctest: +SKIP
        {'s3://bucket/images/a.jpg': 2}
        """
        return self._storage_stats.copy()

    def validate(self, *, decode: bool = False, progress: bool = True) -> ValidationReport:
        """Checks every image and box now, instead of at batch 57 of epoch 3.

        Reads each image's header and EXIF once (with `decode=True`, decodes
        it fully, which finds truncated files) and checks every box against
        the displayed image size. For a JPEG behind a URL only its first
        64 KiB are requested (a range read; more only when its header is
        longer); other formats, and `decode=True`, read the whole file.
        With `on_error="skip"` the rows found bad are left out from here on
        (so `len(ds)` and batch shapes stay honest) and listed in
        `ds.skipped`; call it before training. With
        `on_error="raise"` nothing changes: read the report.

        Args:
            decode: Fully decode every image. Defaults to `False`.
            progress: Show a progress bar. Defaults to `True`.

        Returns:
            A `ValidationReport` of every problem, with what the table
            reading found.
        """
        retries = storage.retry_count()
        found = scan_images(self.index, self.options, decode=decode, progress=progress,
                            threads=max(2, self.workers))
        retried = storage.retried_urls(retries)  # this process's checking threads
        self._storage_stats.add(retried)
        errors = [problem for _, problem in found if problem.severity == "error"]
        skipped = self.on_error == "skip"
        if errors and skipped:
            keep = np.ones(len(self.index), dtype=bool)
            keep[[row for row, problem in found if problem.severity == "error"]] = False
            if not keep.any():
                raise_problems([*self._build_skips, *errors], "Every row is unusable.")
            self._build_skips = self._build_skips + errors
            self._build(IndexBuild(self.index.select(keep), self.vocabularies, self.problems,
                                   self.rows_without_regions, self._rows_read),
                        keep_skips=True)
            self._plan_cache = None
            self._progress.move_to(Position(self._progress.origin.epoch, 0))
        return ValidationReport(
            [*self.problems, *(problem for _, problem in found)], n_rows=self._rows_read,
            n_images=len(np.unique(self.index.path_ids)), decoded=decode, skipped=skipped,
            retries=len(retried))

    def preview(self, n: int = 16, **kwargs: Any) -> Image.Image:
        """Returns a contact sheet of crops as the model sees them, for notebooks.

        With `augment`, the crops are augmented as in the current epoch
        (`ds.set_epoch(k)` shows epoch `k`); the same seed gives the same sheet.

        Args:
            n: How many rows to show (a seeded sample).
            **kwargs: See `keras_roi_datagen.preview.contact_sheet` (`rows=`,
                `seed=`, `columns=`, `boxes=True` for source images with boxes).

        Returns:
            A PIL image; each tile is captioned with its labels.
        """
        from keras_roi_datagen.preview import contact_sheet

        return contact_sheet(self, n, **kwargs)

    def explain(self, row: int, epoch: int | None = None) -> Explanation:
        """Returns what augmentation does to one row in one epoch, and its crop window.

        The parameters are those the batches use (the same draw, keyed on
        `(seed, epoch, row)`), and the window is the exact region of the
        image, in displayed pixels, that is resized into the crop.

        Args:
            row: The index row (`0 <= row < len(ds.index)`, as `ds.plan()`
                lists them).
            epoch: The epoch. Defaults to the current one.

        Returns:
            An `Explanation`: parameters by name, the annotated box, the
            window (with its corners), the image and its size.

        Raises:
            IndexError: If `row` is not an index row.
            ImageReadError: If the image cannot be opened (the error a batch
                of this row raises with `on_error="raise"`).
            BoxError: If the row's box lies wholly outside its image.

        Example:
        ```python
        ds = RoiDataset("via_export.csv", augment={"zoom": (0.9, 1.2)}, seed=1)
        ds.explain(0, epoch=3).window  # Window(xyxy=(...), size=...)
        ```
        """
        if not isinstance(row, (int, np.integer)) or not 0 <= row < len(self.index):
            raise IndexError(f"`row` must be an index row in [0, {len(self.index)}). "
                             f"Received: row={row!r}")
        epoch = self.position.epoch if epoch is None else int(epoch)
        path = self.index.path_of(int(row))
        params = draw(self.augment or Augmentation(), self.seed, epoch, np.array([row]))[0]
        try:  # the rule batches follow, and its failure as a batch reports it
            size = read_image_size(path, self.options.max_image_pixels)
            found = row_window_of(self.index.boxes[row], self.index.relative, size, params,
                                  self.augment, self.options)
        except ImageProblem as problem:
            raise_problems([self.index.problem(int(row), problem.kind, str(problem),
                                               details=problem.details)])
            raise
        return Explanation(int(row), self.index.row_label(int(row)), epoch, path, size, found.box,
                           found.window, parameters_of(params), self.options.border)

    # -- the plan and the position ------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """Regions per batch on this host."""
        return self._batch_size

    @property
    def epoch(self) -> int:
        """The epoch being served (0-based)."""
        return self.position.epoch

    def set_epoch(self, epoch: int) -> None:
        """Moves to the start of `epoch` (e.g. to line up with `fit(initial_epoch=...)`)."""
        if epoch < 0:
            raise ValueError(f"`epoch` must be >= 0. Received: epoch={epoch}")
        self._progress.move_to(Position(int(epoch), 0))

    def plan(self, epoch: int | None = None, start: int = 0) -> EpochPlan:
        """Returns this host's `EpochPlan` (index rows per step) of an epoch.

        Args:
            epoch: The epoch; defaults to the current one.
            start: Global rows of the epoch already consumed; step 0 begins
                there. Defaults to 0 (the whole epoch).

        Returns:
            The plan; `plan[i]` are the index rows of this host's batch `i`,
            `plan.batch(i)` adds their weights.
        """
        key = (self.seed, self.position.epoch if epoch is None else int(epoch))
        if self._plan_cache is None or self._plan_cache[0] != key:
            self._plan_cache = (key, plan_epoch(
                len(self.index), self._batch_size, seed=key[0], epoch=key[1], shuffle=self.shuffle,
                drop_remainder=self.drop_remainder, groups=self._groups(), shard=self.shard,
                window=0 if self.group_by_image else self.shuffle_window,
            ))
        plan = self._plan_cache[1]
        return plan if start == 0 else dataclasses.replace(plan, start=start)

    def _groups(self) -> np.ndarray | ImageTable | None:
        if not self.shuffle or not (self.group_by_image or self.shuffle_window):
            return None  # table order needs no image groups
        if len(self.index) >= LARGE_TABLE_ROWS and self.index.cache_folder is not None:
            return image_table(self.index)  # memory-mapped: nothing per row in memory
        # A sorted plan holds every row anyway; read by position, the column's pages stay unmapped.
        return read_range(self.index.path_ids, 0, len(self.index))

    def __len__(self) -> int:
        return count_steps(len(self.index), self._batch_size * self.shard[1], self.drop_remainder)

    @property
    def position(self) -> Position:
        """Where iteration stands: the epoch and its global rows consumed.

        The one record of progress (kept by a `planning.Progress`): passes
        start from it, `get_state` saves it, `DatasetCheckpoint` maps trained
        steps onto it with `position_after`. During a pass it includes the
        batches served so far.
        """
        return self._progress.position

    def position_after(self, start: Position, steps: int) -> Position:
        """Returns the position reached after `steps` steps of a pass from `start`.

        Args:
            start: Where the pass began.
            steps: Steps (batches on each host) done since.

        Returns:
            The position; after the pass's last step, the start of the next
            epoch.
        """
        return self.plan(start.epoch, start.rows).position_after(steps)

    @property
    def current_pass(self) -> PassInfo | None:
        """The pass being served (its number and start), or `None` between passes."""
        return self._progress.current

    def predictions_in_table_order(self, predictions: Any, epoch: int | None = None
                                   ) -> tuple[np.ndarray, Any]:
        """Puts `model.predict(ds)` output in table order, one per row, padding removed.

        `predict` returns this host's rows of one epoch in plan order, with the
        weight-0 rows that fill the last global batch when there are several
        hosts. This drops those and sorts the rest by index row.

        Args:
            predictions: What `model.predict(ds)` returned over a whole epoch:
                an array, or a list, tuple or dict of arrays (one per head).
            epoch: The epoch the predictions were made in. Defaults to the
                last epoch a pass completed (or the current one). Without
                `shuffle` every epoch has the same order.

        Returns:
            `(rows, predictions)`: this host's index rows in table order (see
            `ds.index.row_label(row)` for the table's own label) and the
            predictions in the same structure, reordered. With several hosts,
            concatenate the hosts' results and sort by row.

        Raises:
            ValueError: If the predictions do not cover one epoch of this host.
        """
        if epoch is None:
            completed = self._progress.completed_epoch
            epoch = completed if completed is not None else self.epoch
        return self.plan(epoch).in_table_order(predictions)

    # -- PyDataset ----------------------------------------------------------------------------

    def __getitem__(self, index: int) -> Batch:
        """Returns batch `index` of the current epoch, decoded in the calling thread."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise IndexError(f"batch index must be in [0, {len(self)}). Received: {index!r}")
        plan, step = self.plan(self.position.epoch), int(index)
        batch, _ = self._assembler.decode(plan.batch(step), plan, self.output_spec,
                                          self._decode_workers.inline(), where=describe_batch(plan, step))
        self._progress.fetch(step)
        return batch

    def on_epoch_begin(self) -> None:
        """Called by Keras before a pass; nothing to do (the plan is a pure function)."""

    def on_epoch_end(self) -> None:
        """Moves to the next epoch once a pass has served every batch of this one.

        Keras also calls this after passes it cuts short or drops: the peek
        `fit` makes to build the model (discarded: the epoch's first pass
        starts again where it stood) and `steps_per_epoch` cuts (kept: Keras
        continues the same pass in its next epoch). So no row is seen twice
        or missed, for any `len(ds)`, 1 included. Batch-by-batch access
        (`ds[i]` for every `i`) completes an epoch too.
        """
        error = self._take_pending_error()
        dropped = self._progress.take_reset()
        if error is not None:
            raise error
        self._progress.end_epoch(len(self), dropped)

    # -- passes ---------------------------------------------------------------------------------

    def iter_batches(self) -> Iterator[Batch]:
        """Yields the remaining batches of the current epoch, decoding ahead.

        This is what `fit`, `evaluate` and `predict` consume. Decoding runs on
        `workers` threads or processes, at most `max_queue_size` batches ahead.
        """
        for _, batch, _ in self._pass_batches():
            yield batch

    def _pass_batches(self, spec: OutputSpec | None = None) -> Iterator[tuple[int, Batch, np.ndarray]]:
        start = self.position
        plan = self.plan(start.epoch, start.rows)
        current = self._progress.start_pass(plan)
        executor = PassExecutor(self._decode_workers.for_passes())
        parallel = self.workers >= 2 or self.use_multiprocessing
        retries_before = self._storage_stats.copy()
        try:
            for number, batch, rows in stream_batches(
                plan, self._assembler, self.output_spec if spec is None else spec, executor,
                self.max_queue_size if parallel else 1, self.worker_timeout,
            ):
                self._progress.serve(current, number + 1 - plan.first_step)
                yield number, batch, rows
            self._progress.serve(current, len(plan))  # a last batch emptied by skips counts as served
        finally:
            # The workers stay for the next pass; what this pass queued does not.
            executor.close()
            retried = self._storage_stats.since(retries_before)
            if retried.retries:
                _LOG.warning("Epoch %d, pass %d: %s", start.epoch, current.number,
                             retried.describe())

    # -- decode workers -------------------------------------------------------------------------

    def close(self) -> None:
        """Stops the decode workers (threads or processes); a later pass starts new ones.

        Also happens when the dataset is garbage collected, at interpreter
        exit, and at the end of a `with RoiDataset(...) as ds:` block.
        """
        self._decode_workers.close()

    def __enter__(self) -> RoiDataset:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the decode worker processes (empty before the first pass and after `close()`)."""
        return self._decode_workers.pids

    # -- iteration state -----------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return batch_config(
            {"rows": len(self.index), "batch_size": self._batch_size, "shuffle": self.shuffle,
             "drop_remainder": self.drop_remainder, "group_by_image": self.group_by_image,
             "shuffle_window": self.shuffle_window, "image_size": list(self.image_size),
             "interpolation": self.interpolation, "color_mode": self.color_mode,
             "dtype": str(self.dtype), "label_mode": self.label_mode,
             "fast_decode": self.options.fast, "data_format": self.data_format,
             "y_cols": list(self.y_cols),
             "vocabularies": {c: list(map(str, v.classes)) for c, v in self.vocabularies.items()},
             "table": self.index.fingerprint()},
            augment=self.augment.to_dict() if self.augment is not None else None,
            aspect_ratio=self.options.aspect_ratio, border=self.options.border)

    def get_state(self) -> dict[str, Any]:
        """Returns where iteration stands, as JSON-able data (see `keras_roi_datagen.state`).

        The position is `(seed, epoch, rows)`: the plan is a pure function of
        the first two, and `rows` counts the epoch's global rows consumed by
        all hosts together, so the state means the same on any number of
        hosts. `config` records the table's fingerprint and every option that
        changes batches, so `set_state` can refuse a state that belongs to
        another dataset.

        Returns:
            `{"version", "seed", "epoch", "rows", "config"}`.
        """
        return make_state(self.seed, self.position, self._config())

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continues from a `get_state()` result: the next pass starts at its position.

        A state saved with another number of hosts is accepted (elastic
        resume): the rest of that epoch is cut into this run's global batches
        and served exactly once. A dataset built with `seed=None` takes the
        saved seed; one built with another explicit seed is refused.

        Args:
            state: What `get_state()` returned (possibly in another process).

        Raises:
            StateMismatchError: If the state was saved for another table or
                with options that change batches; the message names them.
        """
        self.seed, position = restore(state, self._config(), rows=len(self.index),
                                      seed=self.seed if self._seed_given else None)
        self._progress.move_to(position)

    # -- display -----------------------------------------------------------------

    def __repr__(self) -> str:
        heads = ", ".join(f"{c}: {len(v)}" for c, v in self.vocabularies.items())
        return (
            f"RoiDataset(rows={len(self.index)}, images={len(self.index.paths)}, "
            f"batches={len(self)}, batch_size={self._batch_size}, image_size={self.image_size}, "
            f"heads={{{heads}}}, shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch}, "
            f"workers={self.workers}, use_multiprocessing={self.use_multiprocessing}, "
            f"skipped={len(self.skipped)})"
        )
