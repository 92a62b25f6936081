"""From decoded pixels to the `(x, y)` batches a Keras model consumes.

`BatchAssembler` turns one batch's rows and their `BatchResult` into arrays:
the final dtype cast (done once, here), label encoding per head, and the
handling of rows that failed to decode: raise the library's error naming the
row, or leave the row out and record it. `stream_batches` runs a pass over an
epoch plan with a bounded read-ahead on a `BatchExecutor`.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from keras_roi_datagen.augment import Augmentation, draw
from keras_roi_datagen.errors import Problem, RoiDatagenError, raise_problems
from keras_roi_datagen.imaging import BatchResult, DecodeOptions
from keras_roi_datagen.index import RoiIndex
from keras_roi_datagen.labels import LabelMode, LabelVocabulary, encode_labels
from keras_roi_datagen.mapped import gather
from keras_roi_datagen.planning import PlannedBatch
from keras_roi_datagen.storage import StorageStats
from keras_roi_datagen.workers import BatchExecutor, worker_error

__all__ = ["BatchAssembler", "stream_batches"]

Batch = tuple[Any, ...]


@dataclass
class BatchAssembler:
    """Builds batches from an index, decode options and label settings.

    Args:
        index: The `RoiIndex`.
        options: The `DecodeOptions`.
        vocabularies: One vocabulary per label column, in `y_cols` order.
        label_mode: `"categorical"` or `"int"`.
        output_format: `"tuple"` or `"dict"`.
        dtype: Final dtype of `x`.
        on_error: `"raise"` or `"skip"`.
        on_skip: Called with the problems of rows skipped at decode time.
        sample_weights: Optional per-head weight of each class index.
        weighted: Whether batches carry sample weights (`(x, y, sample_weight)`)
            even without class weights: the plan pads the last global batch
            of a multi-host epoch with weight-0 rows.
        channels_first: Whether `x` is `(batch, channels, height, width)`.
        augment: Optional augmentation, drawn per row from `seed` and the epoch.
        seed: The dataset's seed (keys the augmentation draws).
        storage_stats: Where the URL retries each batch reports are counted.
    """

    index: RoiIndex
    options: DecodeOptions
    vocabularies: Mapping[str, LabelVocabulary]
    label_mode: LabelMode
    output_format: str
    dtype: np.dtype
    on_error: str
    on_skip: Callable[[list[Problem]], None]
    sample_weights: Mapping[str, np.ndarray] | None = None
    weighted: bool = False
    channels_first: bool = False
    augment: Augmentation | None = None
    seed: int = 0
    storage_stats: StorageStats | None = None

    def job(self, rows: np.ndarray, epoch: int = 0) -> Any:
        """Returns the `BatchJob` decoding `rows` in `epoch` (which keys their augmentation)."""
        if self.augment is None:
            return self.index.job(rows, self.options)
        params = draw(self.augment, self.seed, epoch, rows)
        return self.index.job(rows, self.options, self.augment, params)

    def _failures(self, rows: np.ndarray, result: BatchResult, where: str) -> np.ndarray:
        problems = [
            self.index.problem(int(rows[f.position]), f.kind, f"{f.message} ({where})",
                               details=f.details)
            for f in result.failures
        ]
        if self.on_error == "raise":
            raise_problems(problems, "Pass on_error='skip' to leave such rows out and list them "
                           "in `ds.skipped`, or check the data first with `ds.validate()`.")
        self.on_skip(problems)
        keep = np.ones(len(rows), dtype=bool)
        keep[[f.position for f in result.failures]] = False
        return keep

    @property
    def emits_weights(self) -> bool:
        """Whether batches are `(x, y, sample_weight)`."""
        return bool(self.vocabularies) and (self.sample_weights is not None or self.weighted)

    def assemble(self, planned: PlannedBatch, result: BatchResult,
                 where: str) -> tuple[Batch, PlannedBatch]:
        """Builds one batch.

        Args:
            planned: Index rows of the batch, in batch order, and their weights.
            result: Their decoded pixels.
            where: Which batch this is, for messages (e.g. "epoch 2, batch 7").

        Returns:
            `(batch, used)`: the batch tuple and the rows (with weights) it holds.
        """
        rows, row_weights, pixels = planned.rows, planned.weights, result.pixels
        if result.retries and self.storage_stats is not None:
            self.storage_stats.add(result.retries)
        if result.failures:
            keep = self._failures(rows, result, where)
            rows, row_weights, pixels = rows[keep], row_weights[keep], pixels[keep]
        used = PlannedBatch(rows, row_weights)
        x = pixels if pixels.dtype == self.dtype else pixels.astype(self.dtype)
        if self.channels_first:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        if not self.vocabularies:
            return (x,), used
        codes = {column: gather(self.index.codes[column], rows) for column in self.vocabularies}
        heads = {
            column: encode_labels(codes[column], vocab.num_classes, self.label_mode)
            for column, vocab in self.vocabularies.items()
        }
        y: Any = heads if self.output_format == "dict" else (
            next(iter(heads.values())) if len(heads) == 1 else tuple(heads.values()))
        if not self.emits_weights:
            return (x, y), used
        weights = {
            c: (row_weights if self.sample_weights is None
                else self.sample_weights[c][codes[c]] * row_weights)
            for c in self.vocabularies
        }
        sw: Any = weights if self.output_format == "dict" else (
            next(iter(weights.values())) if len(weights) == 1 else tuple(weights.values()))
        return (x, y, sw), used


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


def _concat(first: Any, second: Any) -> Any:
    if isinstance(first, np.ndarray):
        return np.concatenate([first, second])
    if isinstance(first, dict):
        return {key: _concat(first[key], second[key]) for key in first}
    return tuple(_concat(a, b) for a, b in zip(first, second))


def _join(first: PlannedBatch, second: PlannedBatch) -> PlannedBatch:
    return PlannedBatch(np.concatenate([first.rows, second.rows]),
                        np.concatenate([first.weights, second.weights]))


@dataclass
class _Reserve:
    """Rows of the epoch's last batch, lent to batches that lost rows to skips."""

    rows: np.ndarray
    weights: np.ndarray

    def top_up(self, batch: Batch, used: PlannedBatch, wanted: int, assembler: BatchAssembler,
               executor: BatchExecutor, timeout: float | None, where: str,
               epoch: int = 0) -> tuple[Batch, PlannedBatch]:
        while len(used.rows) < wanted and len(self.rows):
            take = min(wanted - len(used.rows), len(self.rows))
            borrowed = PlannedBatch(self.rows[-take:], self.weights[-take:])
            self.rows, self.weights = self.rows[:-take], self.weights[:-take]
            result = _wait(executor.submit(assembler.job(borrowed.rows, epoch)), timeout, where)
            extra, extra_used = assembler.assemble(borrowed, result, where)
            if len(extra_used.rows):
                batch, used = _concat(batch, extra), _join(used, extra_used)
        return batch, used


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
    """Consecutive batches submitted as one decode job, and the job's future."""

    numbers: list[int]
    planned: list[PlannedBatch]
    future: Future[BatchResult]

    def results(self, timeout: float | None, where: str) -> list[BatchResult]:
        result = _wait(self.future, timeout, where)
        if len(self.planned) == 1:
            return [result]
        return _split(result, [len(p.rows) for p in self.planned])


def _submit_group(numbers: list[int], plan_batches: Callable[[int], PlannedBatch],
                  assembler: BatchAssembler, executor: BatchExecutor, epoch: int) -> _Group:
    planned = [plan_batches(number) for number in numbers]
    rows = planned[0].rows if len(planned) == 1 else np.concatenate([p.rows for p in planned])
    return _Group(numbers, planned, executor.submit(assembler.job(rows, epoch)))


def _groups(numbers: list[int], group_of: Callable[[int], int] | None) -> Iterator[list[int]]:
    """Runs of consecutive batch numbers in one decode group."""
    run: list[int] = []
    for number in numbers:
        if run and (group_of is None or group_of(number) != group_of(run[0])):
            yield run
            run = []
        run.append(number)
    if run:
        yield run


def stream_batches(
    plan_batches: Callable[[int], PlannedBatch],
    batch_numbers: range,
    assembler: BatchAssembler,
    executor: BatchExecutor,
    read_ahead: int,
    timeout: float | None,
    describe: Callable[[int], str],
    epoch: int = 0,
    group_of: Callable[[int], int] | None = None,
) -> Iterator[tuple[int, Batch, np.ndarray]]:
    """Yields `(batch_number, batch, rows)` for a run of batches, in order.

    Up to `read_ahead` batches are submitted to `executor` ahead of the one
    being yielded, so decoding overlaps training; results are yielded strictly
    in `batch_numbers` order whatever the order they complete in.

    Consecutive batches that `group_of` puts in one group (the batches of one
    shuffle window, which share images) are decoded as one job by one worker,
    which decodes each of their images once; each row's pixels are the same
    as when decoded alone.

    With `on_error="skip"`, a batch that loses rows at decode time is topped
    up with rows taken from the end of the pass's last batch, which is
    therefore decoded last; batch shapes stay whole except the last one. Every
    row is still yielded at most once with a nonzero weight.

    Args:
        plan_batches: Returns the planned rows and weights of a batch number.
        batch_numbers: The batches of this pass, in order.
        assembler: The `BatchAssembler`.
        executor: Where decoding runs.
        read_ahead: Batches in flight at most (at least 1; a group in flight
            counts whole).
        timeout: Seconds to wait for one batch (`None`: no limit).
        describe: Returns a batch's description for messages.
        epoch: The epoch (keys the rows' augmentation). Defaults to 0.
        group_of: Returns a batch number's decode group. Defaults to `None`:
            every batch is decoded alone.

    Yields:
        `(batch_number, batch, rows)`, `rows` being the rows the batch trains
        (weight above 0; rows that only fill slots of a padded batch are left
        out).
    """
    numbers = list(batch_numbers)
    reserve = _Reserve(np.zeros(0, np.int64), np.zeros(0, np.float32))
    if assembler.on_error == "skip" and len(numbers) > 1:
        last = plan_batches(numbers[-1])
        reserve = _Reserve(last.rows, last.weights)
        numbers = numbers[:-1]
    read_ahead = max(1, read_ahead)
    pending: deque[_Group] = deque()
    upcoming = _groups(numbers, group_of)
    while True:
        while sum(len(group.numbers) for group in pending) < read_ahead or not pending:
            run = next(upcoming, None)
            if run is None:
                break
            pending.append(_submit_group(run, plan_batches, assembler, executor, epoch))
        if not pending:
            break
        group = pending.popleft()
        results = group.results(timeout, describe(group.numbers[0]))
        for number, planned, result in zip(group.numbers, group.planned, results, strict=True):
            where = describe(number)
            batch, used = assembler.assemble(planned, result, where)
            if len(used.rows) < len(planned.rows):
                batch, used = reserve.top_up(batch, used, len(planned.rows), assembler, executor,
                                             timeout, where, epoch)
            if len(used.rows):
                yield number, batch, used.rows[used.weights > 0]
    if len(reserve.rows):
        last_number = batch_numbers[len(numbers)]
        planned = PlannedBatch(reserve.rows, reserve.weights)
        where = describe(last_number)
        result = _wait(executor.submit(assembler.job(planned.rows, epoch)), timeout, where)
        batch, used = assembler.assemble(planned, result, where)
        if len(used.rows):
            yield last_number, batch, used.rows[used.weights > 0]
