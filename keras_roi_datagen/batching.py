"""From planned rows to the `(x, y)` batches a Keras model consumes.

Each rule has one owner here:

- `OutputSpec`: the structure of a batch (`(x,)`, `(x, y)` or
  `(x, y, sample_weight)`, with `y` a bare array, a tuple or a dict), built
  once from the dataset's options. It packs a batch's arrays (the final dtype
  cast, done once, and the label encoding per head), and gives the same
  structure as `tf.TensorSpec`s and as an empty batch, so every hook of every
  backend sees one structure.
- `decode_rows`: index rows, with the augmentation drawn for them from
  `(seed, epoch, row)`, decoded through an executor into `DecodedRows`: their
  pixels and a `Problem` for each row that failed. It never raises for a row;
  the caller decides what a failed row becomes.
- `BatchAssembler`: a planned batch and its decoded rows into a batch, as
  `on_error` says: raise the library's error naming the row, or leave the
  row out and record it.
- `stream_batches`: a pass over an `EpochPlan` with a bounded read-ahead on a
  `BatchExecutor`.

Neither Keras nor TensorFlow is imported here (`OutputSpec.signature`
imports TensorFlow when it is called).
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from keras_roi_datagen.augment import Augmentation, draw
from keras_roi_datagen.decode import BatchResult, DecodeOptions
from keras_roi_datagen.errors import Problem, RoiDatagenError, raise_problems
from keras_roi_datagen.index import RoiIndex
from keras_roi_datagen.labels import LabelMode, LabelVocabulary, encode_labels
from keras_roi_datagen.mapped import gather
from keras_roi_datagen.options import OnError
from keras_roi_datagen.planning import EpochPlan, PlannedBatch
from keras_roi_datagen.storage import StorageStats
from keras_roi_datagen.workers import BatchExecutor, InlineExecutor, worker_error

__all__ = ["Batch", "BatchAssembler", "DecodedRows", "OutputSpec", "class_weights_by_index",
           "decode_rows", "describe_batch", "stream_batches", "submit_rows"]

Batch = tuple[Any, ...]

_DECODE_HINT = ("Pass on_error='skip' to leave such rows out and list them in `ds.skipped`, or check "
                "the data first with `ds.validate()`.")


def class_weights_by_index(
    class_weight: Mapping[str, Mapping[Any, float]] | None,
    vocabularies: Mapping[str, LabelVocabulary],
) -> dict[str, np.ndarray] | None:
    """Turns `{column: {class: weight}}` into each head's weight per class index.

    Args:
        class_weight: Weights keyed by label column, then by class as the
            table holds it (not by index); classes left out weigh 1.
        vocabularies: One vocabulary per label column, in `y_cols` order.

    Returns:
        One `float32` array per head (every head, in `vocabularies` order), or
        `None` without `class_weight`.

    Raises:
        ValueError: If a column is not a label column, or a class not one of
            its column's classes.

    Example:
    >>> vocab = {"kind": LabelVocabulary(["cat", "dog"], name="kind")}
    >>> class_weights_by_index({"kind": {"dog": 2.0}}, vocab)["kind"].tolist()
    [1.0, 2.0]
    """
    if class_weight is None:
        return None
    weights = {}
    for column, table in class_weight.items():
        if column not in vocabularies:
            raise ValueError(f"`class_weight` names {column!r}, which is not one of y_cols "
                             f"{list(vocabularies)}. Received: class_weight={class_weight!r}")
        vocab = vocabularies[column]
        per_index = np.ones(vocab.num_classes, dtype=np.float32)
        for key, weight in table.items():
            if key not in vocab:
                raise ValueError(
                    f"`class_weight` for {column!r} names {key!r}, which is not a class of "
                    f"{column!r}. Keys are labels as the table holds them (not indices); the "
                    f"classes are {list(vocab.classes)}.")
            per_index[vocab.index(key)] = float(weight)
        weights[column] = per_index
    return {c: weights.get(c, np.ones(v.num_classes, np.float32)) for c, v in vocabularies.items()}


def _concat(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.concatenate([first, second])


@dataclass(frozen=True, eq=False)
class OutputSpec:
    """The structure of every batch: built once, it packs batches and describes them.

    A batch is `(x,)` without label columns, else `(x, y)`, or
    `(x, y, sample_weight)` when it carries weights. `y` and `sample_weight`
    hold one array per head: a dict keyed by column with
    `output_format="dict"`, the bare array with one head, else a tuple in
    `y_cols` order.

    Args:
        heads: Classes of each label column, in `y_cols` order.
        label_mode: `"categorical"` (one-hot `float32`) or `"int"` (`int32`).
        output_format: `"tuple"` or `"dict"`.
        dtype: dtype of `x`.
        image_size: `(height, width)` of the crops.
        channels: Channels of the crops.
        channels_first: Whether `x` is `(batch, channels, height, width)`.
            Defaults to `False`.
        class_weights: Optional weight of each class index, per head
            (`class_weights_by_index`).
        weighted: Whether batches carry sample weights even without class
            weights: the plan pads the last global batch of a multi-host
            epoch with weight-0 rows. Defaults to `False`.

    Example:
    >>> spec = OutputSpec({"kind": 2}, "int", "tuple", np.dtype("uint8"), (4, 4), 3)
    >>> x, y = spec.pack(np.zeros((1, 4, 4, 3), np.uint8), {"kind": np.array([1])},
    ...                  np.ones(1, np.float32))
    >>> x.shape, y.tolist()
    ((1, 4, 4, 3), [1])
    """

    heads: Mapping[str, int]
    label_mode: LabelMode
    output_format: str
    dtype: np.dtype
    image_size: tuple[int, int]
    channels: int
    channels_first: bool = False
    class_weights: Mapping[str, np.ndarray] | None = None
    weighted: bool = False

    @classmethod
    def build(
        cls,
        vocabularies: Mapping[str, LabelVocabulary],
        *,
        label_mode: LabelMode,
        output_format: str,
        dtype: np.dtype,
        data_format: str,
        image_size: tuple[int, int],
        channels: int,
        class_weight: Mapping[str, Mapping[Any, float]] | None = None,
        weighted: bool = False,
    ) -> OutputSpec:
        """Builds the spec of a dataset's batches from its options.

        Args:
            vocabularies: One vocabulary per label column, in `y_cols` order.
            label_mode: See `OutputSpec`.
            output_format: See `OutputSpec`.
            dtype: See `OutputSpec`.
            data_format: `"channels_last"` or `"channels_first"`.
            image_size: See `OutputSpec`.
            channels: See `OutputSpec`.
            class_weight: `{column: {class: weight}}`, classes as the table
                holds them. Defaults to `None`.
            weighted: See `OutputSpec`.

        Returns:
            The `OutputSpec`.

        Raises:
            ValueError: If `class_weight` names a column or class that is not
                one.
        """
        return cls({c: v.num_classes for c, v in vocabularies.items()}, label_mode, output_format,
                   np.dtype(dtype), (int(image_size[0]), int(image_size[1])), channels,
                   data_format == "channels_first", class_weights_by_index(class_weight, vocabularies),
                   weighted)

    @property
    def emits_weights(self) -> bool:
        """Whether batches are `(x, y, sample_weight)`."""
        return bool(self.heads) and (self.class_weights is not None or self.weighted)

    def raw(self) -> OutputSpec:
        """The same structure with `x` as decoded (`uint8`), the bytes that cross into TensorFlow."""
        return replace(self, dtype=np.dtype(np.uint8))

    def structure(self, x: Any, heads: Mapping[str, Any], weights: Mapping[str, Any] | None = None
                  ) -> Batch:
        """Puts one value per part into the batch structure (the one place it is decided).

        Args:
            x: The pixels (or what stands for them: a tensor spec, a tensor).
            heads: One value per label column.
            weights: One value per label column, used when the batch
                carries sample weights.

        Returns:
            The batch tuple.
        """
        if not self.heads:
            return (x,)
        y = self._group(heads)
        if not self.emits_weights:
            return (x, y)
        return (x, y, self._group(weights or {}))

    def _group(self, per_head: Mapping[str, Any]) -> Any:
        if self.output_format == "dict":
            return {column: per_head[column] for column in self.heads}
        values = tuple(per_head[column] for column in self.heads)
        return values[0] if len(values) == 1 else values

    def flatten(self, batch: Batch) -> list[Any]:
        """Returns the parts of a batch in a fixed order: `x`, the heads, then their weights."""
        leaves = [batch[0]]
        for part in batch[1:]:
            if self.output_format == "dict":
                leaves.extend(part[column] for column in self.heads)
            else:
                leaves.extend([part] if len(self.heads) == 1 else part)
        return leaves

    def unflatten(self, leaves: Sequence[Any]) -> Batch:
        """The inverse of `flatten`: puts parts given in its order back into the structure."""
        n = len(self.heads)
        return self.structure(leaves[0], dict(zip(self.heads, leaves[1:1 + n])),
                              dict(zip(self.heads, leaves[1 + n:])))

    def map(self, function: Callable[..., Any], *batches: Batch) -> Batch:
        """Applies `function` to each part of the batches (part by part) and keeps the structure."""
        return self.unflatten([function(*parts)
                               for parts in zip(*(self.flatten(b) for b in batches))])

    def pack(self, pixels: np.ndarray, codes: Mapping[str, np.ndarray], row_weights: np.ndarray
             ) -> Batch:
        """Builds one batch from decoded pixels, class indices and row weights.

        Args:
            pixels: `uint8` crops, `(rows, height, width, channels)`.
            codes: The class index of each row, per label column.
            row_weights: `float32` weight of each row (0 for padding).

        Returns:
            The batch tuple.
        """
        x = pixels if pixels.dtype == self.dtype else pixels.astype(self.dtype)
        if self.channels_first:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        heads = {c: encode_labels(codes[c], n, self.label_mode) for c, n in self.heads.items()}
        weights = {
            c: (row_weights if self.class_weights is None
                else self.class_weights[c][codes[c]] * row_weights)
            for c in self.heads
        } if self.emits_weights else None
        return self.structure(x, heads, weights)

    def empty(self) -> Batch:
        """Returns a batch of no rows (what ends a pass of the TensorFlow pipeline)."""
        height, width = self.image_size
        return self.pack(np.zeros((0, height, width, self.channels), np.uint8),
                         {c: np.zeros(0, np.int64) for c in self.heads}, np.zeros(0, np.float32))

    def signature(self) -> Any:
        """Returns the batch structure as `tf.TensorSpec`s (the batch dimension `None`)."""
        import tensorflow as tf

        return self.map(lambda part: tf.TensorSpec((None, *part.shape[1:]), tf.as_dtype(part.dtype)),
                        self.empty())


@dataclass(frozen=True)
class DecodedRows:
    """Rows decoded as one job: every row's pixels, and a problem for each row that failed.

    Args:
        pixels: `uint8` array `(rows, height, width, channels)`; a failed
            row's pixels are zeros.
        problems: The position (in the rows decoded) of each row that
            failed, mapped to its `Problem`, in the order the decoder found
            them.
        retries: One URL per request retried while decoding.
    """

    pixels: np.ndarray
    problems: Mapping[int, Problem] = field(default_factory=dict)
    retries: Sequence[str] = ()

    @classmethod
    def of(cls, index: RoiIndex, rows: np.ndarray, result: BatchResult,
           where: str | None = None) -> DecodedRows:
        """Names each failure of `result` by its row of `index` (the one rule for every caller).

        Args:
            index: The index the rows belong to.
            rows: The index rows decoded, in the order of `result`.
            result: Their `BatchResult`.
            where: Which batch this is, added to each message (e.g.
                `"epoch 2, batch 7 of 9"`). Defaults to `None`.

        Returns:
            The `DecodedRows`.
        """
        suffix = f" ({where})" if where else ""
        problems = {f.position: index.problem(int(rows[f.position]), f.kind, f"{f.message}{suffix}",
                                              details=f.details)
                    for f in result.failures}
        return cls(result.pixels, problems, list(result.retries))

    def kept(self) -> np.ndarray:
        """Returns a boolean mask of the rows that decoded."""
        keep = np.ones(len(self.pixels), dtype=bool)
        keep[list(self.problems)] = False
        return keep


def submit_rows(
    index: RoiIndex,
    options: DecodeOptions,
    rows: np.ndarray,
    *,
    augment: Augmentation | None = None,
    seed: int = 0,
    epoch: int = 0,
    executor: BatchExecutor | None = None,
) -> Future[BatchResult]:
    """Starts decoding index rows, with their augmentation drawn from `(seed, epoch, row)`.

    Args:
        index: The `RoiIndex`.
        options: The `DecodeOptions`.
        rows: Index rows, in the order wanted.
        augment: Optional augmentation. Defaults to `None`.
        seed: Seed of the augmentation draws. Defaults to 0.
        epoch: Epoch of the augmentation draws. Defaults to 0.
        executor: Where decoding runs. Defaults to the calling thread.

    Returns:
        The future of their `BatchResult`.
    """
    params = None if augment is None else draw(augment, seed, epoch, rows)
    job = index.job(rows, options, augment, params)
    return (InlineExecutor() if executor is None else executor).submit(job)


def _wait(future: Future[BatchResult], timeout: float | None, where: str) -> BatchResult:
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        raise worker_error(
            "worker_timeout",
            f"no decode worker delivered {where} within {timeout} s. Raise `worker_timeout` "
            "if such batches are legitimately slow.") from None
    except RoiDatagenError:
        raise
    except Exception as exc:
        details = "".join(traceback.format_exception(exc))
        raise worker_error(
            "worker_exception", f"decoding {where} failed in a worker thread: {exc!r}",
            details) from exc


def decode_rows(
    index: RoiIndex,
    options: DecodeOptions,
    rows: np.ndarray,
    *,
    augment: Augmentation | None = None,
    seed: int = 0,
    epoch: int = 0,
    executor: BatchExecutor | None = None,
    timeout: float | None = None,
    where: str | None = None,
) -> DecodedRows:
    """Decodes index rows as the batches do; a row that fails is returned as a problem, not raised.

    The one road from rows to pixels: batches (through `BatchAssembler`),
    `ds[i]` and contact sheets all decode through it.

    Args:
        index: The `RoiIndex`.
        options: The `DecodeOptions`.
        rows: Index rows, in the order wanted.
        augment: Optional augmentation. Defaults to `None`.
        seed: Seed of the augmentation draws. Defaults to 0.
        epoch: Epoch of the augmentation draws. Defaults to 0.
        executor: Where decoding runs (e.g. a `CachingExecutor`). Defaults to
            the calling thread.
        timeout: Seconds to wait for the result. Defaults to `None` (no limit).
        where: Which batch this is, for messages. Defaults to `None`.

    Returns:
        The `DecodedRows`.

    Raises:
        WorkerError: If the executor fails or times out (never for a row).

    Example:
    ```python
    decoded = decode_rows(ds.index, ds.options, np.array([0, 5]), augment=ds.augment,
                          seed=ds.seed, epoch=ds.epoch)
    decoded.pixels.shape, decoded.problems  # ((2, 224, 224, 3), {})
    ```
    """
    future = submit_rows(index, options, rows, augment=augment, seed=seed, epoch=epoch,
                         executor=executor)
    return DecodedRows.of(index, rows, _wait(future, timeout, where or "the rows"), where)


def describe_batch(plan: EpochPlan, number: int) -> str:
    """Names batch `number` of the plan's epoch for messages: `"epoch 2, batch 7 of 9"`."""
    return f"epoch {plan.epoch}, batch {number} of {plan.epoch_steps}"


@dataclass
class BatchAssembler:
    """Turns planned batches of an index into batches, applying `on_error` to failed rows.

    Built from the index and immutable options, and never changed; the
    augmentation's seed and epoch come with each plan.

    Args:
        index: The `RoiIndex`.
        options: The `DecodeOptions`.
        on_error: `"raise"` or `"skip"`.
        on_skip: Called with the problems of rows skipped at decode time.
        augment: Optional augmentation. Defaults to `None`.
        storage_stats: Where the URL retries each batch reports are counted.
            Defaults to `None`.
    """

    index: RoiIndex
    options: DecodeOptions
    on_error: OnError
    on_skip: Callable[[list[Problem]], None]
    augment: Augmentation | None = None
    storage_stats: StorageStats | None = None

    def submit(self, rows: np.ndarray, plan: EpochPlan, executor: BatchExecutor) -> Future[BatchResult]:
        """Starts decoding `rows` of `plan`'s epoch (which, with its seed, keys their augmentation)."""
        return submit_rows(self.index, self.options, rows, augment=self.augment, seed=plan.seed,
                           epoch=plan.epoch, executor=executor)

    def assemble(self, planned: PlannedBatch, decoded: DecodedRows, spec: OutputSpec
                 ) -> tuple[Batch, PlannedBatch]:
        """Builds one batch.

        Args:
            planned: Index rows of the batch, in batch order, and their weights.
            decoded: Their decoded rows.
            spec: The batch structure.

        Returns:
            `(batch, used)`: the batch tuple and the rows (with weights) it holds.

        Raises:
            RoiDatagenError: With `on_error="raise"`, naming the rows that failed.
        """
        rows, row_weights, pixels = planned.rows, planned.weights, decoded.pixels
        if decoded.retries and self.storage_stats is not None:
            self.storage_stats.add(list(decoded.retries))
        if decoded.problems:
            problems = list(decoded.problems.values())
            if self.on_error == "raise":
                raise_problems(problems, _DECODE_HINT)
            self.on_skip(problems)
            keep = decoded.kept()
            rows, row_weights, pixels = rows[keep], row_weights[keep], pixels[keep]
        codes = {column: gather(self.index.codes[column], rows) for column in spec.heads}
        return spec.pack(pixels, codes, row_weights), PlannedBatch(rows, row_weights)

    def decode(self, planned: PlannedBatch, plan: EpochPlan, spec: OutputSpec, executor: BatchExecutor,
               timeout: float | None = None, where: str | None = None) -> tuple[Batch, PlannedBatch]:
        """Decodes and builds one planned batch of `plan` (`decode_rows`, then `assemble`).

        Args:
            planned: Index rows of the batch and their weights.
            plan: The plan it belongs to (its seed and epoch key the augmentation).
            spec: The batch structure.
            executor: Where decoding runs.
            timeout: Seconds to wait for the decode. Defaults to `None`.
            where: Which batch this is, for messages. Defaults to `None`.

        Returns:
            `(batch, used)`, as `assemble` returns them.
        """
        decoded = decode_rows(self.index, self.options, planned.rows, augment=self.augment,
                              seed=plan.seed, epoch=plan.epoch, executor=executor, timeout=timeout,
                              where=where)
        return self.assemble(planned, decoded, spec)


def _join(first: PlannedBatch, second: PlannedBatch) -> PlannedBatch:
    return PlannedBatch(np.concatenate([first.rows, second.rows]),
                        np.concatenate([first.weights, second.weights]))


def _split(result: BatchResult, sizes: list[int]) -> list[BatchResult]:
    """Cuts the result of several batches decoded as one job into one result per batch.

    The job's URL retries go with the first batch, so they are counted once.
    """
    parts: list[BatchResult] = []
    first = 0
    for size in sizes:
        failures = [replace(f, position=f.position - first) for f in result.failures
                    if first <= f.position < first + size]
        retries = result.retries if not parts else []
        parts.append(BatchResult(result.pixels[first:first + size], failures, result.image_sizes,
                                 retries))
        first += size
    return parts


@dataclass
class _Group:
    """Consecutive steps submitted as one decode job, and the job's future."""

    steps: list[int]
    planned: list[PlannedBatch]
    future: Future[BatchResult]


@dataclass
class _Pass:
    """What every batch of one pass is decoded and built with."""

    plan: EpochPlan
    assembler: BatchAssembler
    spec: OutputSpec
    executor: BatchExecutor
    timeout: float | None

    def number(self, step: int) -> int:
        """The epoch's number of the plan's step (a resumed plan starts past 0)."""
        return self.plan.first_step + step

    def where(self, step: int) -> str:
        return describe_batch(self.plan, self.number(step))

    def submit(self, steps: list[int]) -> _Group:
        planned = [self.plan.batch(step) for step in steps]
        rows = planned[0].rows if len(planned) == 1 else np.concatenate([p.rows for p in planned])
        return _Group(steps, planned, self.assembler.submit(rows, self.plan, self.executor))

    def built(self, group: _Group) -> Iterator[tuple[int, PlannedBatch, Batch, PlannedBatch]]:
        """Yields `(step, planned, batch, used)` for each batch of a group, once it is decoded."""
        result = _wait(group.future, self.timeout, self.where(group.steps[0]))
        results = [result] if len(group.planned) == 1 else _split(
            result, [len(p.rows) for p in group.planned])
        for step, planned, part in zip(group.steps, group.planned, results, strict=True):
            decoded = DecodedRows.of(self.assembler.index, planned.rows, part, self.where(step))
            yield (step, planned, *self.assembler.assemble(planned, decoded, self.spec))

    def decode(self, planned: PlannedBatch, step: int) -> tuple[Batch, PlannedBatch]:
        return self.assembler.decode(planned, self.plan, self.spec, self.executor, self.timeout,
                                     self.where(step))


@dataclass
class _Reserve:
    """Rows of the epoch's last batch, lent to batches that lost rows to skips."""

    rows: np.ndarray
    weights: np.ndarray

    def top_up(self, batch: Batch, used: PlannedBatch, wanted: int, run: _Pass, step: int
               ) -> tuple[Batch, PlannedBatch]:
        while len(used.rows) < wanted and len(self.rows):
            take = min(wanted - len(used.rows), len(self.rows))
            borrowed = PlannedBatch(self.rows[-take:], self.weights[-take:])
            self.rows, self.weights = self.rows[:-take], self.weights[:-take]
            extra, extra_used = run.decode(borrowed, step)
            if len(extra_used.rows):
                batch, used = run.spec.map(_concat, batch, extra), _join(used, extra_used)
        return batch, used


def _runs(steps: list[int], plan: EpochPlan) -> Iterator[list[int]]:
    """Runs of consecutive steps in one shuffle window (decoded as one job)."""
    run: list[int] = []
    for step in steps:
        if run and plan.window_of(step) != plan.window_of(run[0]):
            yield run
            run = []
        run.append(step)
    if run:
        yield run


def stream_batches(
    plan: EpochPlan,
    assembler: BatchAssembler,
    spec: OutputSpec,
    executor: BatchExecutor,
    read_ahead: int,
    timeout: float | None,
) -> Iterator[tuple[int, Batch, np.ndarray]]:
    """Yields `(batch_number, batch, rows)` for every step of a plan, in order.

    Up to `read_ahead` batches are submitted to `executor` ahead of the one
    being yielded, so decoding overlaps training; results are yielded strictly
    in plan order whatever the order they complete in.

    Consecutive batches of one shuffle window (`plan.window_of`), which share
    images, are decoded as one job by one worker, which decodes each of their
    images once; each row's pixels are the same as when decoded alone.

    With `on_error="skip"`, a batch that loses rows at decode time is topped
    up with rows taken from the end of the pass's last batch, which is
    therefore decoded last; batch shapes stay whole except the last one. Every
    row is still yielded at most once with a nonzero weight.

    Args:
        plan: The rest of the epoch (its seed and epoch key the rows'
            augmentation).
        assembler: The `BatchAssembler`.
        spec: The batch structure.
        executor: Where decoding runs.
        read_ahead: Batches in flight at most (at least 1; a group in flight
            counts whole).
        timeout: Seconds to wait for one batch (`None`: no limit).

    Yields:
        `(batch_number, batch, rows)`: the batch's number within the epoch
        (`plan.first_step` for the plan's step 0), the batch, and the rows it
        trains (weight above 0; rows that only fill slots of a padded batch
        are left out).
    """
    run = _Pass(plan, assembler, spec, executor, timeout)
    steps = list(range(len(plan)))
    reserve = _Reserve(np.zeros(0, np.int64), np.zeros(0, np.float32))
    if assembler.on_error == "skip" and len(steps) > 1:
        last = plan.batch(steps.pop())
        reserve = _Reserve(last.rows, last.weights)
    read_ahead = max(1, read_ahead)
    pending: deque[_Group] = deque()
    upcoming = _runs(steps, plan)
    while True:
        while sum(len(group.steps) for group in pending) < read_ahead or not pending:
            steps_of_group = next(upcoming, None)
            if steps_of_group is None:
                break
            pending.append(run.submit(steps_of_group))
        if not pending:
            break
        for step, planned, batch, used in run.built(pending.popleft()):
            if len(used.rows) < len(planned.rows):
                batch, used = reserve.top_up(batch, used, len(planned.rows), run, step)
            if len(used.rows):
                yield run.number(step), batch, used.rows[used.weights > 0]
    if len(reserve.rows):
        batch, used = run.decode(PlannedBatch(reserve.rows, reserve.weights), len(steps))
        if len(used.rows):
            yield run.number(len(steps)), batch, used.rows[used.weights > 0]
