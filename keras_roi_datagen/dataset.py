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

As its own adapter, `RoiDataset` serves each pass itself, in the order of its
seeded epoch plan, with its own threads or worker processes (`workers.py`).
`fit`'s `shuffle` argument has no effect on it: shuffling is
`RoiDataset(shuffle=True, seed=...)`. Used by hand, it is a plain
`PyDataset`: `len(ds)` batches, `ds[i]` decoded in the caller.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import weakref
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from keras.src.trainers.data_adapters.data_adapter import DataAdapter
from keras.utils import PyDataset
from PIL import Image

from keras_roi_datagen import storage
from keras_roi_datagen.augment import (
    BORDERS,
    Augmentation,
    Explanation,
    draw,
    parameters_of,
    parse_augmentation,
    row_window,
)
from keras_roi_datagen.batching import Batch, BatchAssembler, stream_batches
from keras_roi_datagen.boxes import BoxFormat, clip_box, to_pixel_xyxy
from keras_roi_datagen.cache import CachingExecutor, CropStore, check_cache_allowed, open_cache
from keras_roi_datagen.errors import Problem, StateMismatchError, UnsupportedSetupError, raise_problems
from keras_roi_datagen.formats.registry import FORMATS, label_columns
from keras_roi_datagen.imaging import (
    COLOR_MODES,
    INTERPOLATIONS,
    DecodeOptions,
    decode_batch,
    read_image_size,
)
from keras_roi_datagen.index import IndexBuild, RoiIndex, TableSpec, build_index
from keras_roi_datagen.index_cache import ImageTable, image_table
from keras_roi_datagen.labels import LabelVocabulary
from keras_roi_datagen.mapped import read_range
from keras_roi_datagen.planning import (
    LARGE_TABLE_ROWS,
    EpochPlan,
    Position,
    check_shard,
    count_steps,
    plan_epoch,
)
from keras_roi_datagen.sharding import discover_shard
from keras_roi_datagen.validation import ValidationReport, scan_images
from keras_roi_datagen.workers import BatchExecutor, InlineExecutor, PassExecutor, make_executor

_LOG = logging.getLogger("keras_roi_datagen")

__all__ = ["RoiDataset"]

_SKIP_HINT = (
    "Pass on_error='skip' to leave such rows out (each is listed in `ds.skipped`), "
    "or list every problem first with `keras-roi-datagen validate TABLE`."
)
_DTYPES = ("float32", "float16", "float64", "uint8")
_DATA_FORMATS = ("channels_last", "channels_first")
_STATE_VERSION = 2
_OPTIONAL_CONFIG = ("augment", "aspect_ratio", "border")  # in `_config` only when not the default


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        resolved: np.dtype = np.dtype(dtype)
    except TypeError:
        resolved = np.dtype(object)
    if resolved.name not in _DTYPES:
        raise ValueError(f"`dtype` must be one of {list(_DTYPES)}. Received: dtype={dtype!r}")
    return resolved


def _check_shuffle_window(window: Any) -> int:
    if window is None:
        return 0
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError("`shuffle_window` must be a positive integer (rows) or None. "
                         f"Received: shuffle_window={window!r}")
    return 0 if window == 1 else int(window)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"`seed` must be None or an integer in [0, 2**63). Received: seed={seed!r}")
    return int(seed)


def _check_shard(shard: Any) -> tuple[int, int]:
    if isinstance(shard, str):
        if shard != "auto":
            raise ValueError(f"`shard` must be 'auto' or (index, count). Received: shard={shard!r}")
        return discover_shard()
    return check_shard(shard)


@dataclasses.dataclass
class PassInfo:
    """One pass over (the rest of) an epoch, as served to a consumer.

    Args:
        number: Counts the passes this dataset has started (1-based).
        start: The position the pass began at.
        steps: Batches the pass has in all.
        served: Batches served so far.
    """

    number: int
    start: Position
    steps: int
    served: int = 0


def _check_size(image_size: Any) -> tuple[int, int]:
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in image_size)):
        raise ValueError(
            "`image_size` must be a tuple of two positive integers (height, width). "
            f"Received: image_size={image_size!r}")
    return (int(image_size[0]), int(image_size[1]))


class RoiDataset(PyDataset, DataAdapter):  # type: ignore[misc]
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
            to `None` (no cache). See `keras_roi_datagen.index_cache`.
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
        table: pd.DataFrame | str | os.PathLike[str] | IndexBuild,
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
        if isinstance(y_cols, str):
            y_cols = (y_cols,)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"`workers` must be a non-negative integer. Received: workers={workers!r}")
        if not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError("`max_queue_size` must be a positive integer. "
                             f"Received: max_queue_size={max_queue_size!r}")
        if box_cols is not None and len(box_cols) != 4:
            raise ValueError(f"`box_cols` must name four columns. Received: box_cols={box_cols!r}")
        _check_choice("interpolation", interpolation, list(INTERPOLATIONS))
        _check_choice("color_mode", color_mode, list(COLOR_MODES))
        _check_choice("label_mode", label_mode, ["categorical", "int"])
        _check_choice("output_format", output_format, ["tuple", "dict"])
        if data_format is None:
            from keras import config as keras_config

            data_format = keras_config.image_data_format()
        _check_choice("data_format", data_format, _DATA_FORMATS)
        self.data_format = data_format
        _check_choice("on_error", on_error, ["raise", "skip"])
        _check_choice("format", format, ["auto", *FORMATS])
        _check_choice("border", border, BORDERS)
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(
                "Only one of `crop_to_aspect_ratio` and `pad_to_aspect_ratio` can be True. "
                f"Received: crop_to_aspect_ratio={crop_to_aspect_ratio}, "
                f"pad_to_aspect_ratio={pad_to_aspect_ratio}")
        self.augment = parse_augmentation(augment)
        if not (cache is None or isinstance(cache, (bool, str, os.PathLike))):
            raise ValueError("`cache` must be a folder path, True (memory) or None. "
                             f"Received: cache={cache!r}")
        if cache_max_bytes is not None and (
                not isinstance(cache_max_bytes, (int, np.integer)) or cache_max_bytes < 1):
            raise ValueError("`cache_max_bytes` must be a positive integer or None. "
                             f"Received: cache_max_bytes={cache_max_bytes!r}")
        check_cache_allowed(cache, self.augment)
        self.image_size = _check_size(image_size)
        self.box_format = BoxFormat.parse(box_format)
        self.interpolation, self.color_mode = interpolation, color_mode
        self._batch_size = int(batch_size)
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        given_seed = _check_seed(seed)
        self.label_mode, self.output_format = label_mode, output_format
        self.dtype = _check_dtype(dtype)
        self.on_error, self.group_by_image = on_error, bool(group_by_image)
        self.shuffle_window = _check_shuffle_window(shuffle_window)
        self.shard = _check_shard(shard)
        if given_seed is None and self.shard[1] > 1 and self.shuffle:
            raise ValueError(
                f"This process is host {self.shard[0]} of {self.shard[1]} (shard={shard!r}), and "
                "hosts that each draw their own random seed shuffle differently, so rows would be "
                "served twice or never. Pass the same `seed` on every host. Received: seed=None")
        self._seed_given = given_seed is not None
        self.seed = given_seed if given_seed is not None else random.SystemRandom().randrange(2**31)
        self.worker_timeout = worker_timeout
        self.options = DecodeOptions(
            image_size=self.image_size, interpolation=interpolation, color_mode=color_mode,
            max_image_pixels=Image.MAX_IMAGE_PIXELS if max_image_pixels == -1 else max_image_pixels,
            fast=bool(fast_decode),
            aspect_ratio="crop" if crop_to_aspect_ratio else "pad" if pad_to_aspect_ratio else "squash",
            border=border, storage_options=storage_options,
        )
        if y_cols is None:  # after every check: a path's head is read to name its format
            y_cols = (tuple(table.vocabularies) if isinstance(table, IndexBuild)
                      else label_columns(table, format=format))
        self.y_cols = tuple(y_cols)
        self.spec = TableSpec(
            image_dir=os.fspath(image_dir) if image_dir is not None else None,
            x_col=x_col, box_col=box_col, box_cols=tuple(box_cols) if box_cols else None,  # type: ignore[arg-type]
            box_format=self.box_format, y_cols=self.y_cols,
            allow_outside_image_dir=allow_outside_image_dir, format=format,
        )
        build = table if isinstance(table, IndexBuild) else build_index(
            table, self.spec, vocabularies, storage_options=storage_options,
            cache=index_cache)
        self._build(build)
        self.class_weight = self._sample_weights(class_weight)
        self._assembler.sample_weights = self.class_weight
        if len(self) == 0:
            raise ValueError(
                f"drop_remainder=True with batch_size={self._batch_size} leaves no batch: the "
                f"table has {len(self.index)} usable rows (shard {self.shard}). Lower batch_size "
                "or pass drop_remainder=False.")
        self._decode_skips: dict[Any, Problem] = {}
        self._executor: BatchExecutor | None = None
        self._pending_error: Exception | None = None
        self._plan_cache: tuple[int, EpochPlan] | None = None
        self._passes, self._reset_seen = 0, False
        self._completed_epoch: int | None = None
        self.set_epoch(0)
        self.cache: CropStore | None = open_cache(cache, cache_max_bytes)
        self._tf_dataset: Any = None
        self._tf_pass: Generator[Batch, None, None] | None = None

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
        self._assembler = BatchAssembler(
            self.index, self.options, self.vocabularies, self.label_mode,  # type: ignore[arg-type]
            self.output_format, self.dtype, self.on_error, self._record_skips,
            weighted=self.shard[1] > 1 and not self.drop_remainder,
            channels_first=self.data_format == "channels_first",
            augment=self.augment, seed=self.seed, storage_stats=self._storage_stats,
        )

    def _sample_weights(
        self, class_weight: Mapping[str, Mapping[Any, float]] | None
    ) -> dict[str, np.ndarray] | None:
        if class_weight is None:
            return None
        weights = {}
        for column, table in class_weight.items():
            if column not in self.vocabularies:
                raise ValueError(f"`class_weight` names {column!r}, which is not one of y_cols "
                                 f"{list(self.y_cols)}. Received: class_weight={class_weight!r}")
            vocab = self.vocabularies[column]
            per_index = np.ones(vocab.num_classes, dtype=np.float32)
            for key, weight in table.items():
                if key not in vocab:
                    raise ValueError(
                        f"`class_weight` for {column!r} names {key!r}, which is not a class of "
                        f"{column!r}. Keys are labels as the table holds them (not indices); the "
                        f"classes are {list(vocab.classes)}.")
                per_index[vocab.index(key)] = float(weight)
            weights[column] = per_index
        for column in self.vocabularies:
            weights.setdefault(column, np.ones(self.vocabularies[column].num_classes, np.float32))
        return {c: weights[c] for c in self.vocabularies}

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
            self._move_to(Position(self._position.epoch, 0))
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
            ImageProblem: If the image cannot be opened.

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
        size = read_image_size(path, self.options.max_image_pixels)
        box = clip_box(to_pixel_xyxy(self.index.boxes[row], self.index.relative, *size), *size)
        if box is None:
            raise ValueError(f"row {self.index.row_label(int(row))!r}: its box lies outside the "
                             f"{size[0]}x{size[1]} image {path!r}.")
        params = draw(self.augment or Augmentation(), self.seed, epoch, np.array([row]))[0]
        window = row_window(box, params, self.augment, size, self.image_size,
                            self.options.aspect_ratio, self.options.border)
        return Explanation(int(row), self.index.row_label(int(row)), epoch, path, size, box,
                           window, parameters_of(params), self.options.border)

    # -- the plan -----------------------------------------------------------------------------

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
        self._move_to(Position(int(epoch), 0))

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
        epoch = self.position.epoch if epoch is None else epoch
        cached = self._plan_cache
        if cached is None or cached[0] != epoch:
            cached = (epoch, plan_epoch(
                len(self.index), self._batch_size, seed=self.seed, epoch=epoch, shuffle=self.shuffle,
                drop_remainder=self.drop_remainder, groups=self._groups(), shard=self.shard,
                window=0 if self.group_by_image else self.shuffle_window,
            ))
            self._plan_cache = cached
        return cached[1] if start == 0 else dataclasses.replace(cached[1], start=start)

    def _groups(self) -> np.ndarray | ImageTable | None:
        if not self.shuffle or not (self.group_by_image or self.shuffle_window):
            return None  # table order needs no image groups
        if len(self.index) >= LARGE_TABLE_ROWS and self.index.cache_folder is not None:
            return image_table(self.index)  # memory-mapped: nothing per row in memory
        # A sorted plan holds every row anyway; read by position, the column's pages stay unmapped.
        return read_range(self.index.path_ids, 0, len(self.index))

    def __len__(self) -> int:
        return count_steps(len(self.index), self._batch_size * self.shard[1], self.drop_remainder)

    # -- the position -------------------------------------------------------------------------

    @property
    def position(self) -> Position:
        """Where iteration stands: the epoch and its global rows consumed.

        The one record of progress: passes start from it, `get_state` saves
        it, `DatasetCheckpoint` maps trained steps onto it with
        `position_after`. During a pass it includes the batches served so far.
        """
        current = self._pass
        if current is None:
            return self._position
        return self.position_after(current.start, current.served)

    def position_after(self, start: Position, steps: int) -> Position:
        """Returns the position reached after `steps` steps of a pass from `start`.

        Args:
            start: Where the pass began.
            steps: Steps (batches on each host) done since.

        Returns:
            The position; after the pass's last step, the start of the next
            epoch.
        """
        plan = self.plan(start.epoch, start.rows)
        if steps >= len(plan):
            return Position(start.epoch + 1, 0)
        return Position(start.epoch, plan.rows_after(steps))

    @property
    def current_pass(self) -> PassInfo | None:
        """The pass being served (its number and start), or `None` between passes."""
        return self._pass

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
            epoch = self._completed_epoch if self._completed_epoch is not None else self.epoch
        plan = self.plan(epoch)
        batches = [plan.batch(i) for i in range(len(plan))]
        rows = np.concatenate([b.rows for b in batches]) if batches else np.zeros(0, np.int64)
        keep = np.concatenate([b.weights for b in batches]) > 0 if batches else rows.astype(bool)
        order = np.argsort(rows[keep], kind="stable")

        def reorder(array: Any) -> Any:
            values = np.asarray(array)
            if len(values) != len(rows):
                raise ValueError(
                    f"Got {len(values)} predictions, but epoch {epoch} of this dataset serves "
                    f"{len(rows)} rows on this host ({int(keep.sum())} without padding). Predict "
                    "over one whole epoch, from its start.")
            return values[keep][order]

        if isinstance(predictions, Mapping):
            reordered: Any = {key: reorder(value) for key, value in predictions.items()}
        elif isinstance(predictions, (list, tuple)):
            reordered = type(predictions)(reorder(value) for value in predictions)
        else:
            reordered = reorder(predictions)
        return rows[keep][order], reordered

    def _move_to(self, position: Position) -> None:
        self._position = position
        self._pass: PassInfo | None = None
        self._indexed: set[int] = set()

    @property
    def num_batches(self) -> int:
        """Keras `DataAdapter` hook: steps in a full epoch.

        Keras reads it when it drops an iterator (`EpochIterator.reset`, after
        the peek `fit` makes to build the model), right before calling
        `on_epoch_end`; that call then discards the pass instead of counting it.
        """
        self._reset_seen = True
        return len(self)

    # -- PyDataset ----------------------------------------------------------------------------

    def _where(self, epoch: int, number: int) -> str:
        return f"epoch {epoch}, batch {number} of {len(self)}"

    def __getitem__(self, index: int) -> Batch:
        """Returns batch `index` of the current epoch, decoded in the calling thread."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise IndexError(f"batch index must be in [0, {len(self)}). Received: {index!r}")
        epoch = self.position.epoch
        planned = self.plan(epoch).batch(int(index))
        where = self._where(epoch, int(index))
        job = self._assembler.job(planned.rows, epoch)
        result = (decode_batch(job) if self.cache is None
                  else CachingExecutor(InlineExecutor(), self.cache).submit(job).result())
        batch, _ = self._assembler.assemble(planned, result, where)
        self._indexed.add(int(index))
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
        error, self._pending_error = self._pending_error, None
        dropped, self._reset_seen = self._reset_seen, False
        if error is not None:
            raise error
        current = self._pass
        if current is not None:
            if dropped:
                self._pass = None
            elif current.served >= current.steps:
                self._completed_epoch = current.start.epoch
                self._move_to(Position(current.start.epoch + 1, 0))
        elif self._indexed.issuperset(range(len(self))):
            self._completed_epoch = self._position.epoch
            self._move_to(Position(self._position.epoch + 1, 0))

    # -- passes served to Keras -----------------------------------------------------------------

    def iter_batches(self) -> Iterator[Batch]:
        """Yields the remaining batches of the current epoch, decoding ahead.

        This is what `fit`, `evaluate` and `predict` consume. Decoding runs on
        `workers` threads or processes, at most `max_queue_size` batches ahead.
        """
        for _, batch, _ in self._pass_batches():
            yield batch

    def _pass_batches(self, assembler: BatchAssembler | None = None
                      ) -> Iterator[tuple[int, Batch, np.ndarray]]:
        start = self.position
        self._position, self._reset_seen = start, False
        plan = self.plan(start.epoch, start.rows)
        self._passes += 1
        current = self._pass = PassInfo(self._passes, start, len(plan))
        executor = PassExecutor(self._open_executor())
        parallel = self.workers >= 2 or self.use_multiprocessing
        # Batches are numbered within the whole epoch (a resumed pass starts past 0).
        first = start.rows // plan.global_batch_size
        retries_before = self._storage_stats.copy()
        try:
            for number, batch, rows in stream_batches(
                lambda n: plan.batch(n - first), range(first, first + len(plan)),
                assembler or self._assembler, executor, self.max_queue_size if parallel else 1,
                self.worker_timeout,
                lambda n: self._where(start.epoch, n), start.epoch,
                lambda n: plan.window_of(n - first),
            ):
                current.served = number + 1 - first
                yield number, batch, rows
            current.served = len(plan)  # a last batch emptied by skips counts as served
        finally:
            # The workers stay for the next pass; what this pass queued does not.
            executor.close()
            retried = self._storage_stats.since(retries_before)
            if retried.retries:
                _LOG.warning("Epoch %d, pass %d: %s", start.epoch, current.number,
                             retried.describe())

    def _open_executor(self) -> BatchExecutor:
        """The dataset's executor, started on the first pass and kept until `close()`."""
        if self._executor is None:
            executor = make_executor(self.workers, self.use_multiprocessing, self.worker_timeout)
            if self.cache is not None:
                executor = CachingExecutor(executor, self.cache)
            self._executor = executor
            self._finalizer = weakref.finalize(self, executor.close)
        return self._executor

    def close(self) -> None:
        """Stops the decode workers (threads or processes); a later pass starts new ones.

        Also happens when the dataset is garbage collected, at interpreter
        exit, and at the end of a `with RoiDataset(...) as ds:` block.
        """
        executor, self._executor = self._executor, None
        if executor is not None:
            finalizer = getattr(self, "_finalizer", None)
            if finalizer is not None:
                finalizer.detach()
            executor.close()

    def __enter__(self) -> RoiDataset:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the decode worker processes (empty before the first pass and after `close()`)."""
        return list(getattr(self._executor, "pids", []))

    def get_numpy_iterator(self) -> Iterator[Batch]:
        """Keras `DataAdapter` hook: NumPy batches of one pass."""
        return self.iter_batches()

    def get_jax_iterator(self) -> Iterator[Batch]:
        """Keras `DataAdapter` hook: JAX accepts the NumPy batches as they are."""
        return self.iter_batches()

    def get_torch_dataloader(self) -> Any:
        """Keras `DataAdapter` hook: the pass as a PyTorch `DataLoader` of tensors.

        Each array becomes a tensor over the same memory (`torch.from_numpy`);
        handed NumPy arrays, Keras's converter copies every batch first.
        """
        from keras.src.trainers.data_adapters import data_adapter_utils

        return data_adapter_utils.get_torch_dataloader(self._torch_batches())

    def _torch_batches(self) -> Generator[Any, None, None]:
        import torch
        from keras import tree

        def share(value: Any) -> Any:
            # A read-only array stays NumPy: torch warns on it, and Keras copies it.
            if isinstance(value, np.ndarray) and value.flags.writeable:
                return torch.from_numpy(value)
            return value

        batches = self.iter_batches()
        try:
            for batch in batches:
                yield tree.map_structure(share, batch)
        finally:
            batches.close()  # type: ignore[attr-defined]

    def get_tf_dataset(self) -> Any:
        """Keras `DataAdapter` hook: the pass as a `tf.data.Dataset` (no extra prefetch).

        The dataset is built once and reused: each iteration over it is one
        pass. Pixels cross into TensorFlow as `uint8` (a quarter of the bytes
        of `float32`) and are cast by TensorFlow, which gives the same values
        as NumPy's cast.
        """
        if self._tf_dataset is None:
            self._tf_dataset = self._make_tf_dataset()
        return self._tf_dataset

    def _make_tf_dataset(self) -> Any:
        import tensorflow as tf

        signature = self._tf_signature()
        raw = (tf.TensorSpec(signature[0].shape, tf.uint8), *signature[1:])
        specs = tf.nest.flatten(raw)
        # Not `Dataset.from_generator`: its op sets glibc's M_TRIM_THRESHOLD to 128 KB for the
        # whole process ("Memory patch applied"), which also fixes the mmap threshold there, so
        # every decoded strip and crop is a fresh mmap: measured 35-45% fewer crops per
        # CPU-second. A counter mapped through `numpy_function` pulls the same batches.
        flag = tf.TensorSpec((), tf.bool)
        # What ends a pass: `more=False` and a batch of no rows.
        empty = [np.zeros([d or 0 for d in spec.shape], spec.dtype.as_numpy_dtype) for spec in specs]

        def pull(element: Any) -> Any:
            outputs = tf.numpy_function(lambda e: self._tf_next(e, empty), [element],
                                        [flag.dtype, *(t.dtype for t in specs)], stateful=True)
            for tensor, spec in zip(outputs, [flag, *specs], strict=True):
                tensor.set_shape(spec.shape)
            return outputs[0], tf.nest.pack_sequence_as(raw, outputs[1:])

        # Plain graph-building functions: AutoGraph has nothing to convert, and on lambdas it
        # warns ("could not transform") at every `fit`.
        plain = tf.autograph.experimental.do_not_convert
        dataset = (tf.data.Dataset.range(2**62).map(plain(pull))
                   .take_while(plain(lambda more, batch: more))
                   .map(plain(lambda more, batch: batch)))
        if self.dtype != np.uint8:
            dtype = signature[0].dtype
            dataset = dataset.map(plain(lambda x, *rest: (tf.cast(x, dtype), *rest)))
        # The dataset decodes ahead on its own workers; tf.data's autotuner and
        # thread pool would only compete with them for cores (as Keras does for
        # its own enqueuer). Measured: +7% crops/s on 2 cores.
        options = tf.data.Options()
        options.autotune.enabled = False
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        # The dataset shards itself: each host's batches are its own part.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        dataset = dataset.with_options(options)
        self._refuse_multi_worker(tf)
        return dataset

    def _tf_next(self, element: np.ndarray, empty: list[np.ndarray]) -> list[np.ndarray]:
        """The next batch of the TensorFlow pass, flattened behind a `more` flag.

        Element 0 of a `tf.data` iterator starts a pass (closing the previous
        one, whose iterator is gone); the pass's end is `more=False` with the
        `empty` batch, which `take_while` drops.
        """
        import tensorflow as tf

        if int(element) == 0 or self._tf_pass is None:
            self._close_tf_pass()
            self._tf_pass = self._tf_batches()
        batch = next(self._tf_pass, None)
        if batch is None:
            self._tf_pass = None
            return [np.asarray(False), *empty]
        return [np.asarray(True), *(np.asarray(part) for part in tf.nest.flatten(batch))]

    def _close_tf_pass(self) -> None:
        if self._tf_pass is not None:
            self._tf_pass.close()
            self._tf_pass = None

    def _refuse_multi_worker(self, tf: Any) -> None:
        """Refuses TensorFlow multi-worker training, which cannot serve host parts.

        Keras applies `experimental_distribute_dataset` to the dataset, which
        reads each batch as a global one and splits it between all replicas,
        so every host would train on a fraction of its rows. Handing it
        per-host batches (`distribute_datasets_from_function`) gets no
        further: Keras 3.15.1's `fit` under `MultiWorkerMirroredStrategy`
        passes the whole first batch to `strategy.reduce`, which refuses a
        nested batch (also with a plain `tf.data` dataset of `(x, (y1, y2))`).
        """
        multi_worker = tf.distribute.has_strategy() and isinstance(
            tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy)
        if self.shard[1] > 1 and (multi_worker or "TF_CONFIG" in os.environ):
            raise UnsupportedSetupError(
                f"This dataset is host {self.shard[0]} of {self.shard[1]} under TensorFlow "
                "multi-worker training. Keras 3 feeds a multi-worker strategy through "
                "`experimental_distribute_dataset`, which splits every host's batch between all "
                "replicas (each host would train on part of its rows), and its `fit` under "
                "`MultiWorkerMirroredStrategy` fails on multi-output batches. Train on several "
                "hosts with the JAX backend and `keras.distribution.DataParallel`, or with "
                "PyTorch DDP (README: 'Training on several hosts').")

    def _tf_batches(self) -> Generator[Batch, None, None]:
        # TensorFlow turns an exception in a generator into an opaque op error.
        # Instead the pass ends, and `on_epoch_end` (which Keras calls in the
        # training thread when the data ends) raises the library's own error.
        try:
            for _, batch, _ in self._pass_batches(replace(self._assembler, dtype=np.dtype(np.uint8))):
                yield batch
        except Exception as error:
            self._pending_error = error

    def _tf_signature(self) -> Any:
        import tensorflow as tf

        height, width = self.image_size
        channels = self.options.channels
        shape = (None, channels, height, width) if self.data_format == "channels_first" else (
            None, height, width, channels)
        x = tf.TensorSpec(shape, tf.as_dtype(self.dtype))
        if not self.vocabularies:
            return (x,)
        heads = {
            c: tf.TensorSpec((None, v.num_classes), tf.float32) if self.label_mode == "categorical"
            else tf.TensorSpec((None,), tf.int32)
            for c, v in self.vocabularies.items()
        }
        weights = {c: tf.TensorSpec((None,), tf.float32) for c in self.vocabularies}
        if self.output_format == "dict":
            parts: tuple[Any, ...] = (heads, weights)
        elif len(heads) == 1:
            parts = (next(iter(heads.values())), next(iter(weights.values())))
        else:
            parts = (tuple(heads.values()), tuple(weights.values()))
        return (x, *parts) if self._assembler.emits_weights else (x, parts[0])

    @property
    def has_partial_batch(self) -> bool:
        """Keras `DataAdapter` hook: whether this host's last batch is shorter."""
        return self.partial_batch_size is not None

    @property
    def partial_batch_size(self) -> int | None:
        """Keras `DataAdapter` hook: size of this host's shorter last batch, if any.

        Several hosts never have one: the last global batch is padded.
        """
        if self.drop_remainder or self.shard[1] > 1:
            return None
        return (len(self.index) % self._batch_size) or None

    # -- iteration state -----------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "rows": len(self.index), "batch_size": self._batch_size, "shuffle": self.shuffle,
            "drop_remainder": self.drop_remainder, "group_by_image": self.group_by_image,
            "shuffle_window": self.shuffle_window,
            "image_size": list(self.image_size),
            "interpolation": self.interpolation, "color_mode": self.color_mode,
            "dtype": str(self.dtype), "label_mode": self.label_mode, "fast_decode": self.options.fast,
            "data_format": self.data_format, "y_cols": list(self.y_cols),
            "vocabularies": {c: list(map(str, v.classes)) for c, v in self.vocabularies.items()},
            "table": self.index.fingerprint(),
            # Present only when set, so states saved before these options existed still load.
            **({"augment": self.augment.to_dict()} if self.augment is not None else {}),
            **({"aspect_ratio": self.options.aspect_ratio}
               if self.options.aspect_ratio != "squash" else {}),
            **({"border": self.options.border} if self.options.border != "constant" else {}),
        }

    def get_state(self) -> dict[str, Any]:
        """Returns where iteration stands, as JSON-able data.

        The position is `(seed, epoch, rows)`: the plan is a pure function of
        the first two, and `rows` counts the epoch's global rows consumed by
        all hosts together, so the state means the same on any number of
        hosts. `config` records the table's fingerprint and every option that
        changes batches, so `set_state` can refuse a state that belongs to
        another dataset.

        Returns:
            `{"version", "seed", "epoch", "rows", "config"}`.
        """
        position = self.position
        return {"version": _STATE_VERSION, "seed": self.seed, "epoch": position.epoch,
                "rows": position.rows, "config": self._config()}

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
        config = self._config()
        saved = dict(state.get("config", {}))
        if state.get("version", 1) == 1:  # saved as (epoch, next_batch) on one layout of hosts
            hosts = int((saved.pop("shard", None) or [0, 1])[1])
            rows = int(state["next_batch"]) * int(saved.get("batch_size", 0)) * hosts
            saved.setdefault("data_format", "channels_last")
        else:
            rows = int(state["rows"])
        saved.setdefault("shuffle_window", 0)  # saved before windows existed: rows shuffled alone
        keys = [*config, *(k for k in _OPTIONAL_CONFIG if k in saved and k not in config)]
        differs = [key for key in keys if saved.get(key) != config.get(key)]
        if self._seed_given and state.get("seed") != self.seed:
            differs.append("seed")
        if differs:
            details = "; ".join(
                f"{k}: saved {_brief(saved.get(k) if k != 'seed' else state.get('seed'))}, "
                f"this dataset {_brief(config.get(k) if k != 'seed' else self.seed)}"
                for k in differs)
            raise StateMismatchError(
                f"The saved iteration state does not fit this dataset ({details}). Build the "
                "dataset from the same table with the same batch-changing options.")
        self.seed = int(state["seed"])
        self._assembler.seed = self.seed
        self._plan_cache = None
        epoch = int(state["epoch"])
        self._move_to(Position(epoch + 1, 0) if rows >= len(self.index) else Position(epoch, rows))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_executor"] = None  # workers belong to the process that started them
        state.pop("_finalizer", None)
        state["_tf_dataset"] = None
        state["_tf_pass"] = None
        state["_pending_error"] = None
        return state

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

