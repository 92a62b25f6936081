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

import os
import random
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from keras.src.trainers.data_adapters.data_adapter import DataAdapter
from keras.utils import PyDataset
from PIL import Image

from keras_roi_datagen.batching import Batch, BatchAssembler, stream_batches
from keras_roi_datagen.boxes import BoxFormat
from keras_roi_datagen.cache import CachingExecutor, CropStore, open_cache
from keras_roi_datagen.errors import Problem, StateMismatchError, raise_problems
from keras_roi_datagen.imaging import COLOR_MODES, INTERPOLATIONS, DecodeOptions, decode_batch
from keras_roi_datagen.index import IndexBuild, RoiIndex, TableSpec, build_index
from keras_roi_datagen.labels import LabelVocabulary
from keras_roi_datagen.planning import EpochPlan, plan_epoch
from keras_roi_datagen.validation import ValidationReport, scan_images
from keras_roi_datagen.workers import BatchExecutor, InlineExecutor, PassExecutor, make_executor

__all__ = ["RoiDataset"]

_SKIP_HINT = (
    "Pass on_error='skip' to leave such rows out (each is listed in `ds.skipped`), "
    "or list every problem first with `keras-roi-datagen validate TABLE`."
)
_DTYPES = ("float32", "float16", "float64", "uint8")


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
            keys of `region_attributes`. Defaults to `("name", "type")`.
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
        seed: Seed of the shuffle. The same seed gives the same sequence of
            epochs on every backend, worker mode and machine. Defaults to a
            random seed (kept in `ds.seed`).
        drop_remainder: Whether to drop the last, shorter batch.
        class_weight: Optional dict of label column to `{class: weight}`
            (classes as values or as indices). Batches then carry per-head
            sample weights, `(x, y, sample_weight)`, which is how Keras
            weights several heads (its own `fit(class_weight=...)` does not
            apply to a dataset adapter, nor to several outputs).
        label_mode: `"categorical"` (one-hot `float32`; default) or `"int"`.
        output_format: `"tuple"` (default) or `"dict"` (to match named outputs).
        dtype: dtype of `x`: `"float32"` (default), `"float16"`, `"float64"`
            or `"uint8"`.
        on_error: `"raise"` (default): any bad row is an error naming the
            file, row, column and value. `"skip"`: bad rows are left out
            before batching and listed in `ds.skipped`; rows that fail only
            when decoded are left out and replaced by rows of the epoch's last
            batch, and listed too.
        group_by_image: With `shuffle`, keep the regions of an image together
            (images are shuffled, then regions within each), so a batch needs
            fewer decodes. Faster when images hold many regions; batches are
            less mixed. Defaults to `False`.
        fast_decode: Let JPEGs be decoded at reduced size when every region
            is at least twice `image_size` (libjpeg's DCT scaling). Defaults
            to `True`; `False` is the reference path.
        max_image_pixels: Images with more pixels are refused (the
            decompression-bomb guard). Defaults to Pillow's limit.
        allow_outside_image_dir: Accept file names that lead outside
            `image_dir`. Defaults to `False`.
        shard: `(index, count)`: serve only this host's share of every
            epoch. Defaults to `(0, 1)`.
        workers: Keras's `workers`: `0`/`1` decode in the calling thread,
            more run that many threads (or processes).
        use_multiprocessing: Decode in `workers` worker processes, fresh
            interpreters started without forking the training process.
        max_queue_size: Batches decoded ahead of training, at most.
        worker_timeout: Seconds one batch may take before its worker is
            declared hung. Defaults to 600; `None` waits forever.
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
        y_cols: Sequence[str] = ("name", "type"),
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
        fast_decode: bool = True,
        max_image_pixels: int | None = -1,
        allow_outside_image_dir: bool = False,
        shard: tuple[int, int] = (0, 1),
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
        worker_timeout: float | None = 600.0,
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
        _check_choice("dtype", str(np.dtype(dtype)) if dtype in _DTYPES else dtype, _DTYPES)
        _check_choice("on_error", on_error, ["raise", "skip"])
        if not (cache is None or isinstance(cache, (bool, str, os.PathLike))):
            raise ValueError("`cache` must be a folder path, True (memory) or None. "
                             f"Received: cache={cache!r}")
        if cache_max_bytes is not None and (
                not isinstance(cache_max_bytes, (int, np.integer)) or cache_max_bytes < 1):
            raise ValueError("`cache_max_bytes` must be a positive integer or None. "
                             f"Received: cache_max_bytes={cache_max_bytes!r}")
        self.image_size = _check_size(image_size)
        self.box_format = BoxFormat.parse(box_format)
        self.y_cols = tuple(y_cols)
        self.interpolation, self.color_mode = interpolation, color_mode
        self._batch_size = int(batch_size)
        self.shuffle, self.drop_remainder = bool(shuffle), bool(drop_remainder)
        self._seed_given = seed is not None
        self.seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self.label_mode, self.output_format = label_mode, output_format
        self.dtype = np.dtype(dtype)
        self.on_error, self.group_by_image = on_error, bool(group_by_image)
        self.shard = (int(shard[0]), int(shard[1]))
        plan_epoch(0, 1, seed=0, epoch=0, shard=self.shard)  # validates `shard` early
        self.worker_timeout = worker_timeout
        self.options = DecodeOptions(
            image_size=self.image_size, interpolation=interpolation, color_mode=color_mode,
            max_image_pixels=Image.MAX_IMAGE_PIXELS if max_image_pixels == -1 else max_image_pixels,
            fast=bool(fast_decode),
        )
        self.spec = TableSpec(
            image_dir=os.fspath(image_dir) if image_dir is not None else None,
            x_col=x_col, box_col=box_col, box_cols=tuple(box_cols) if box_cols else None,  # type: ignore[arg-type]
            box_format=self.box_format, y_cols=self.y_cols,
            allow_outside_image_dir=allow_outside_image_dir,
        )
        build = table if isinstance(table, IndexBuild) else build_index(
            table, self.spec, vocabularies)
        self._build(build)
        self.class_weight = self._sample_weights(class_weight)
        self._assembler.sample_weights = self.class_weight
        if len(self) == 0:
            raise ValueError(
                f"drop_remainder=True with batch_size={self._batch_size} leaves no batch: the "
                f"table has {len(self.index)} usable rows (shard {self.shard}). Lower batch_size "
                "or pass drop_remainder=False.")
        self._epoch, self._start, self._served = 0, 0, set[int]()
        self._decode_skips: dict[Any, Problem] = {}
        self._executor: BatchExecutor | None = None
        self._pending_error: Exception | None = None
        self._plan_cache: tuple[int, EpochPlan] | None = None
        self.cache: CropStore | None = open_cache(cache, cache_max_bytes)
        self._tf_dataset: Any = None

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
        self._assembler = BatchAssembler(
            self.index, self.options, self.vocabularies, self.label_mode,  # type: ignore[arg-type]
            self.output_format, self.dtype, self.on_error, self._record_skips,
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
                is_index = isinstance(key, (int, np.integer)) and key not in vocab
                if is_index and not 0 <= key < vocab.num_classes:
                    raise ValueError(
                        f"`class_weight` for {column!r} names class index {key}, but {column!r} "
                        f"has {vocab.num_classes} classes {list(vocab.classes)}.")
                per_index[int(key) if is_index else vocab.index(key)] = float(weight)
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

    def validate(self, *, decode: bool = False, progress: bool = True) -> ValidationReport:
        """Checks every image and box now, instead of at batch 57 of epoch 3.

        Reads each image's header and EXIF once (with `decode=True`, decodes
        it fully, which finds truncated files) and checks every box against
        the displayed image size. With `on_error="skip"` the rows found bad
        are left out from here on (so `len(ds)` and batch shapes stay
        honest) and listed in `ds.skipped`; call it before training. With
        `on_error="raise"` nothing changes: read the report.

        Args:
            decode: Fully decode every image. Defaults to `False`.
            progress: Show a progress bar. Defaults to `True`.

        Returns:
            A `ValidationReport` of every problem, with what the table
            reading found.
        """
        found = scan_images(self.index, self.options, decode=decode, progress=progress,
                            threads=max(2, self.workers))
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
            self._plan_cache, self._served, self._start = None, set(), 0
        return ValidationReport(
            [*self.problems, *(problem for _, problem in found)], n_rows=self._rows_read,
            n_images=len(np.unique(self.index.path_ids)), decoded=decode, skipped=skipped)

    def preview(self, n: int = 16, **kwargs: Any) -> Image.Image:
        """Returns a contact sheet of crops as the model sees them, for notebooks.

        Args:
            n: How many rows to show (a seeded sample).
            **kwargs: See `keras_roi_datagen.preview.contact_sheet` (`rows=`,
                `seed=`, `columns=`, `boxes=True` for source images with boxes).

        Returns:
            A PIL image; each tile is captioned with its labels.
        """
        from keras_roi_datagen.preview import contact_sheet

        return contact_sheet(self, n, **kwargs)

    # -- the plan -----------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """Regions per batch."""
        return self._batch_size

    @property
    def epoch(self) -> int:
        """The epoch being served (0-based); advances in `on_epoch_end`."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Moves to the start of `epoch` (e.g. to line up with `fit(initial_epoch=...)`)."""
        if epoch < 0:
            raise ValueError(f"`epoch` must be >= 0. Received: epoch={epoch}")
        self._epoch, self._start, self._served = int(epoch), 0, set()

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """Returns the `EpochPlan` (row indices per batch) of an epoch.

        Args:
            epoch: The epoch; defaults to the current one.

        Returns:
            The plan; `plan[i]` are the index rows of batch `i`.
        """
        epoch = self._epoch if epoch is None else epoch
        cached = self._plan_cache
        if cached is not None and cached[0] == epoch:
            return cached[1]
        plan = plan_epoch(
            len(self.index), self._batch_size, seed=self.seed, epoch=epoch, shuffle=self.shuffle,
            drop_remainder=self.drop_remainder,
            groups=self.index.path_ids if self.group_by_image else None, shard=self.shard,
        )
        self._plan_cache = (epoch, plan)
        return plan

    def __len__(self) -> int:
        rows = len(self.index) // self.shard[1] if self.shard[1] > 1 else len(self.index)
        if self.drop_remainder:
            return rows // self._batch_size
        return -(-rows // self._batch_size)

    # -- PyDataset ----------------------------------------------------------------------------

    def _where(self, epoch: int, number: int) -> str:
        return f"epoch {epoch}, batch {number} of {len(self)}"

    def __getitem__(self, index: int) -> Batch:
        """Returns batch `index` of the current epoch, decoded in the calling thread."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self):
            raise IndexError(f"batch index must be in [0, {len(self)}). Received: {index!r}")
        rows = self.plan()[int(index)]
        where = self._where(self._epoch, int(index))
        job = self._assembler.job(rows)
        result = (decode_batch(job) if self.cache is None
                  else CachingExecutor(InlineExecutor(), self.cache).submit(job).result())
        batch, _ = self._assembler.assemble(rows, result, where)
        self._served.add(int(index))
        return batch

    def on_epoch_begin(self) -> None:
        """Called by Keras before a pass; nothing to do (the plan is a pure function)."""

    def on_epoch_end(self) -> None:
        """Moves to the next epoch once every batch of this one has been served.

        Keras also calls this after passes it cuts short (when `fit` builds
        the model from a first batch, or with `steps_per_epoch`); those calls
        keep the epoch, so no row is seen twice or missed.
        """
        error, self._pending_error = self._pending_error, None
        if error is not None:
            raise error
        if self._served.issuperset(range(self._start, len(self))):
            self.set_epoch(self._epoch + 1)

    # -- passes served to Keras -----------------------------------------------------------------

    def iter_batches(self) -> Iterator[Batch]:
        """Yields the remaining batches of the current epoch, decoding ahead.

        This is what `fit`, `evaluate` and `predict` consume. Decoding runs on
        `workers` threads or processes, at most `max_queue_size` batches ahead.
        """
        for _, batch, _ in self._pass():
            yield batch

    def _pass(self, assembler: BatchAssembler | None = None) -> Iterator[tuple[int, Batch, np.ndarray]]:
        epoch, start = self._epoch, self._start
        plan = self.plan(epoch)
        executor = PassExecutor(self._open_executor())
        parallel = self.workers >= 2 or self.use_multiprocessing
        try:
            for number, batch, rows in stream_batches(
                plan.__getitem__, range(start, len(plan)), assembler or self._assembler, executor,
                self.max_queue_size if parallel else 1, self.worker_timeout,
                lambda n: self._where(epoch, n),
            ):
                if epoch == self._epoch:
                    self._served.add(number)
                yield number, batch, rows
            if epoch == self._epoch:  # a last batch emptied by skips counts as served
                self._served.update(range(start, len(plan)))
        finally:
            # The workers stay for the next pass; what this pass queued does not.
            executor.close()

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
        """Keras `DataAdapter` hook: the pass as a PyTorch `DataLoader` of tensors."""
        from keras.src.trainers.data_adapters import data_adapter_utils

        return data_adapter_utils.get_torch_dataloader(self.iter_batches())

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
        dataset = tf.data.Dataset.from_generator(self._tf_batches, output_signature=raw)
        if self.dtype != np.uint8:
            dtype = signature[0].dtype
            dataset = dataset.map(lambda x, *rest: (tf.cast(x, dtype), *rest))
        # The dataset decodes ahead on its own workers; tf.data's autotuner and
        # thread pool would only compete with them for cores (as Keras does for
        # its own enqueuer). Measured: +7% crops/s on 2 cores.
        options = tf.data.Options()
        options.autotune.enabled = False
        options.threading.private_threadpool_size = 1
        return dataset.with_options(options)

    def _tf_batches(self) -> Iterator[Batch]:
        # TensorFlow turns an exception in a generator into an opaque op error.
        # Instead the pass ends, and `on_epoch_end` (which Keras calls in the
        # training thread when the data ends) raises the library's own error.
        try:
            for _, batch, _ in self._pass(replace(self._assembler, dtype=np.dtype(np.uint8))):
                yield batch
        except Exception as error:
            self._pending_error = error

    def _tf_signature(self) -> Any:
        import tensorflow as tf

        height, width = self.image_size
        x = tf.TensorSpec((None, height, width, self.options.channels), tf.as_dtype(self.dtype))
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
        return (x, parts[0]) if self.class_weight is None else (x, *parts)

    @property
    def has_partial_batch(self) -> bool:
        """Keras `DataAdapter` hook: whether the last batch is shorter."""
        return not self.drop_remainder and len(self.index) % self._batch_size != 0

    @property
    def partial_batch_size(self) -> int | None:
        """Keras `DataAdapter` hook: size of the shorter last batch, if any."""
        return len(self.index) % self._batch_size if self.has_partial_batch else None

    # -- iteration state -----------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "rows": len(self.index), "batch_size": self._batch_size, "shuffle": self.shuffle,
            "drop_remainder": self.drop_remainder, "group_by_image": self.group_by_image,
            "shard": list(self.shard), "image_size": list(self.image_size),
            "interpolation": self.interpolation, "color_mode": self.color_mode,
            "dtype": str(self.dtype), "label_mode": self.label_mode, "fast_decode": self.options.fast,
            "y_cols": list(self.y_cols),
            "vocabularies": {c: list(map(str, v.classes)) for c, v in self.vocabularies.items()},
            "table": self.index.fingerprint(),
        }

    def get_state(self) -> dict[str, Any]:
        """Returns where iteration stands, as JSON-able data.

        The position is `(seed, epoch, next_batch)`: the plan is a pure function
        of the first two, so nothing else needs saving. `config` records the
        table's fingerprint and every option that changes batches, so
        `set_state` can refuse a state that belongs to another dataset.

        Returns:
            `{"version", "seed", "epoch", "next_batch", "config"}`.
        """
        epoch, position = self._epoch, self._start
        while position in self._served:
            position += 1
        if position >= len(self):
            epoch, position = epoch + 1, 0
        return {"version": 1, "seed": self.seed, "epoch": epoch, "next_batch": position,
                "config": self._config()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continues from a `get_state()` result: the next pass starts at its batch.

        A dataset built with `seed=None` takes the saved seed; one built with
        another explicit seed is refused.

        Args:
            state: What `get_state()` returned (possibly in another process).

        Raises:
            StateMismatchError: If the state was saved for another table or
                with options that change batches; the message names them.
        """
        config = self._config()
        saved = state.get("config", {})
        differs = [key for key in config if saved.get(key) != config[key]]
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
        self._plan_cache = None
        self.set_epoch(int(state["epoch"]))
        self._start = int(state["next_batch"])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_executor"] = None  # workers belong to the process that started them
        state.pop("_finalizer", None)
        state["_tf_dataset"] = None
        state["_pending_error"] = None
        return state

    # -- display -----------------------------------------------------------------

    def __repr__(self) -> str:
        heads = ", ".join(f"{c}: {len(v)}" for c, v in self.vocabularies.items())
        return (
            f"RoiDataset(rows={len(self.index)}, images={len(self.index.paths)}, "
            f"batches={len(self)}, batch_size={self._batch_size}, image_size={self.image_size}, "
            f"heads={{{heads}}}, shuffle={self.shuffle}, seed={self.seed}, epoch={self._epoch}, "
            f"workers={self.workers}, use_multiprocessing={self.use_multiprocessing}, "
            f"skipped={len(self.skipped)})"
        )

