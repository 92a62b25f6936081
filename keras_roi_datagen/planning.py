"""The epoch plan: which rows go in which batch, on which host, as a pure function.

Nothing else in the library decides batch membership. Every backend, worker
mode, process and host asks `plan_epoch` for the same `(seed, epoch)` and gets
the same batches, which is what makes parity, exactly-once accounting and exact
resume possible.

One global order per epoch. With `count` hosts, a step consumes one *global
batch* of `batch_size * count` consecutive rows of that order, and host `index`
takes its `batch_size` rows of it. Where an epoch is in progress is therefore
one number, a `Position`: the epoch and the global rows consumed. It means the
same on any number of hosts, so a run saved on 4 hosts resumes on 3.

When the rows do not fill the last global batch, several hosts still need
equal batch shapes (or collectives hang). The empty slots are filled with real
rows of the epoch that carry weight 0: every row is trained exactly once with
weight 1, and no host runs a step more than another.

The shuffle does not use `Generator.permutation` (NumPy does not promise its
stream across versions); it sorts raw 64-bit outputs of a PCG64 bit generator
seeded by `(seed, epoch, purpose)`. Raw bit-generator streams are stable, so a
plan is the same on every machine and NumPy release.

By default (`RoiDataset(shuffle_window=...)`) the order is *windowed*:
images are shuffled, their regions kept together, and then every run of
`window` consecutive rows is shuffled again. A batch mixes the regions of
many images, and an image's regions stay inside one or two windows, so the
worker that decodes a window's batches together decodes each image about
once instead of once per region.

Tables of `LARGE_TABLE_ROWS` rows or more (2**24, about 16.8 million) are not
sorted: their order is a keyed bijection (`permutation.KeyedPermutation`, a
Feistel network with cycle-walking; `TwoLevelPermutation` over images, then
regions; `WindowedPermutation` over that for windows), computed only for the
rows a batch needs, so a plan takes memory proportional to a batch (plus 16
bytes per image for grouped and windowed orders), not to the table. Both
kinds of order are pure functions of `(seed, epoch)`; small and large tables
get different (equally valid) orders.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_roi_datagen.mapped import read_range
from keras_roi_datagen.permutation import KeyedPermutation, TwoLevelPermutation, WindowedPermutation

__all__ = ["LARGE_TABLE_ROWS", "EpochPlan", "ImageTable", "PassInfo", "PermutedOrder", "PlannedBatch",
           "Position", "Progress", "check_shard", "count_steps", "plan_epoch", "random_keys"]

_ROWS, _GROUPS, _WINDOWS = 0, 1, 2
LARGE_TABLE_ROWS = 1 << 24
"""From this many rows on (about 16.8 million), an epoch's order is computed per batch by a keyed
bijection (`permutation.py`) instead of sorted, so the plan costs memory proportional to a batch."""


class ImageTable:
    """The regions of each image: the plan's view of which rows share a photo.

    `index_cache.image_table` maps it from a cache entry (or computes it for
    any index); `plan_epoch` takes it as `groups`.

    Args:
        starts: `n_images + 1` offsets into `by_image`.
        by_image: Region rows sorted by image (stable).

    Example:
    ```python
    images = image_table(ds.index)
    rows_of_image_3 = images.regions(3)
    ```
    """

    def __init__(self, starts: np.ndarray, by_image: np.ndarray) -> None:
        self.starts, self.by_image = starts, by_image

    @classmethod
    def from_group_ids(cls, group_ids: np.ndarray) -> ImageTable:
        """Builds the table from a group id per row (ids are made dense first)."""
        _, dense = np.unique(np.asarray(group_ids), return_inverse=True)
        dense = dense.ravel()
        starts = np.zeros(int(dense.max(initial=-1)) + 2, dtype=np.int64)
        np.cumsum(np.bincount(dense, minlength=len(starts) - 1), out=starts[1:])
        return cls(starts, np.argsort(dense, kind="stable").astype(np.int64))

    def group_ids(self) -> np.ndarray:
        """The image of each region row (the inverse of `from_group_ids`, densely numbered)."""
        ids = np.empty(len(self.by_image), dtype=np.int64)
        ids[np.asarray(self.by_image)] = np.repeat(np.arange(len(self), dtype=np.int64), self.counts())
        return ids

    def __len__(self) -> int:
        return len(self.starts) - 1

    def counts(self) -> np.ndarray:
        """Regions per image."""
        return np.diff(self.starts)

    def regions(self, image: int) -> np.ndarray:
        """Returns the region rows of `image`, in table order."""
        return read_range(self.by_image, int(self.starts[image]), int(self.starts[image + 1]))

    def __repr__(self) -> str:
        return f"ImageTable({len(self)} images, {len(self.by_image)} regions)"


class PermutedOrder:
    """An epoch's order computed where it is read: `order[positions]`, never all of it.

    Args:
        permutation: A `KeyedPermutation`, `TwoLevelPermutation` or
            `WindowedPermutation`.
    """

    def __init__(self, permutation: KeyedPermutation | TwoLevelPermutation | WindowedPermutation
                 ) -> None:
        self.permutation = permutation

    def __len__(self) -> int:
        return len(self.permutation)

    def __getitem__(self, positions: np.ndarray | slice) -> np.ndarray:
        if isinstance(positions, slice):
            start, stop, step = positions.indices(len(self))
            positions = np.arange(start, stop, step, dtype=np.int64)
        return np.asarray(self.permutation(np.asarray(positions, dtype=np.int64)), dtype=np.int64)

    def tolist(self) -> list[int]:
        """The whole order as a list (for small tables and tests)."""
        return list(self[:].tolist())


def random_keys(n: int, seed: int, epoch: int, purpose: int = _ROWS) -> np.ndarray:
    """Returns `n` reproducible random `uint64` keys for `(seed, epoch, purpose)`.

    Args:
        n: How many keys.
        seed: The dataset's seed (a non-negative integer).
        epoch: The epoch number.
        purpose: Separates independent streams drawn for the same epoch.

    Returns:
        A `uint64` array of shape `(n,)`.
    """
    bits = np.random.PCG64(np.random.SeedSequence([seed, epoch, purpose]))
    return np.asarray(bits.random_raw(n), dtype=np.uint64)


@dataclass(frozen=True, order=True)
class Position:
    """Where iteration stands: an epoch and the global rows of it already consumed.

    Args:
        epoch: The epoch (0-based).
        rows: Rows of that epoch's global order consumed by all hosts together.
    """

    epoch: int
    rows: int = 0


@dataclass(frozen=True)
class PlannedBatch:
    """One host's batch of one step: index rows and their weights.

    Args:
        rows: Index rows, in batch order.
        weights: `float32` weight per row: 1 for a row trained this step, 0 for
            a row that only fills a slot of the epoch's last global batch.
    """

    rows: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class EpochPlan:
    """One host's steps of one epoch, from a start row of the global order.

    Behaves like a read-only list of index arrays: `len(plan)` steps,
    `plan[i]` the rows of this host's batch of step `i` (`plan.batch(i)` adds
    their weights).

    Args:
        order: Every row of the epoch, in the order the epoch serves them.
        batch_size: Rows per host per step.
        shard: `(index, count)`: this host and the number of hosts.
        start: Global rows consumed before step 0. Defaults to 0.
        drop_remainder: Drop the rows that do not fill a last global batch
            instead of padding it. Defaults to `False`.
        window: Rows per shuffle window of the order (see `plan_epoch`), or
            0 when the order has none. Defaults to 0.
        seed: The seed the order was drawn with; with `epoch` it also keys
            each row's augmentation. Defaults to 0.
        epoch: The epoch planned. Defaults to 0.
    """

    order: np.ndarray | PermutedOrder
    batch_size: int
    shard: tuple[int, int] = (0, 1)
    start: int = 0
    drop_remainder: bool = False
    window: int = 0
    seed: int = 0
    epoch: int = 0

    @property
    def global_batch_size(self) -> int:
        """Rows consumed by one step of all hosts together."""
        return self.batch_size * self.shard[1]

    @property
    def epoch_steps(self) -> int:
        """Steps in the whole epoch, from its first row (not only from `start`)."""
        return count_steps(len(self.order), self.global_batch_size, self.drop_remainder)

    @property
    def first_step(self) -> int:
        """The epoch's number of step 0 (past 0 when the plan starts mid-epoch)."""
        return self.start // self.global_batch_size

    def __len__(self) -> int:
        return count_steps(len(self.order) - self.start, self.global_batch_size, self.drop_remainder)

    def batch(self, step: int) -> PlannedBatch:
        """Returns this host's rows and weights for `step`.

        Args:
            step: The step, `0 <= step < len(plan)`.

        Returns:
            A `PlannedBatch`. With one host the last batch may be shorter;
            with several, every batch has `batch_size` rows, padded with
            weight-0 rows where the epoch has run out.

        Raises:
            IndexError: If `step` is out of range.
        """
        if not 0 <= step < len(self):
            raise IndexError(f"step out of range: {step} (the plan has {len(self)}).")
        index, count = self.shard
        first = self.start + step * self.global_batch_size + index * self.batch_size
        slots = np.arange(first, first + self.batch_size, dtype=np.int64)
        n = len(self.order)
        if count == 1:
            slots = slots[slots < n]
        real = slots < n
        rows = np.asarray(self.order[np.where(real, slots, (slots - n) % n)])
        return PlannedBatch(rows.astype(np.int64, copy=False), real.astype(np.float32))

    def __getitem__(self, step: int) -> np.ndarray:
        return self.batch(step).rows

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def window_of(self, step: int) -> int:
        """Returns the shuffle window that `step`'s batch begins in.

        Consecutive steps of one window share images, so they are decoded
        together. Without windows every step is its own group.
        """
        if self.window < 1:
            return step
        return (self.start + step * self.global_batch_size) // self.window

    def rows_after(self, steps: int) -> int:
        """Global rows consumed once `steps` steps of this plan are done."""
        if steps >= len(self):
            return len(self.order)
        return min(len(self.order), self.start + steps * self.global_batch_size)

    def in_table_order(self, predictions: Any) -> tuple[np.ndarray, Any]:
        """Puts one prediction per served slot of this plan in table order, padding removed.

        Args:
            predictions: One value per slot of every step, in plan order: an
                array, or a list, tuple or dict of arrays (one per head).

        Returns:
            `(rows, predictions)`: the plan's rows of weight 1, sorted, and
            the predictions in the same structure, reordered to match.

        Raises:
            ValueError: If the predictions do not cover this plan's slots.
        """
        batches = [self.batch(i) for i in range(len(self))]
        rows = np.concatenate([b.rows for b in batches]) if batches else np.zeros(0, np.int64)
        keep = np.concatenate([b.weights for b in batches]) > 0 if batches else rows.astype(bool)
        order = np.argsort(rows[keep], kind="stable")

        def reorder(array: Any) -> Any:
            values = np.asarray(array)
            if len(values) != len(rows):
                raise ValueError(
                    f"Got {len(values)} predictions, but epoch {self.epoch} of this dataset serves "
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

    def position_after(self, steps: int) -> Position:
        """Returns where iteration stands once `steps` steps of this plan are done.

        After the last step that is the start of the next epoch.
        """
        if steps >= len(self):
            return Position(self.epoch + 1, 0)
        return Position(self.epoch, self.rows_after(steps))


@dataclass
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


class Progress:
    """Where iteration stands: the one record of it, and every count that moves it.

    Between passes it is a `Position`, `origin`. A pass opened there
    (`start_pass`) counts the batches it serves, and `position` includes
    them. Keras ends every pass with `on_epoch_end`, also the passes it cuts
    short or drops; `end_epoch` tells them apart:

    - a pass Keras dropped (it read `num_batches` to reset its iterator,
      `note_reset`, as it does after the peek `fit` makes to build the model)
      is discarded: the next pass starts where that one did;
    - a pass that served every batch moves to the next epoch;
    - a pass cut short (`steps_per_epoch`) stays open: the next pass goes on
      from where it stopped.

    Batch-by-batch access records the batches it fetched (`fetch`); once every
    batch of the epoch is fetched, `end_epoch` moves to the next epoch too.

    Args:
        position: Where to start. Defaults to the start of epoch 0.

    Example:
    >>> progress = Progress()
    >>> info = progress.start_pass(plan_epoch(5, 2, seed=1, epoch=0))
    >>> progress.serve(info, 1)
    >>> progress.position
    Position(epoch=0, rows=2)
    >>> progress.serve(info, 3)
    >>> progress.end_epoch(steps=3)
    >>> progress.position, progress.completed_epoch
    (Position(epoch=1, rows=0), 0)
    """

    def __init__(self, position: Position = Position(0)) -> None:
        self.passes = 0  # passes started: numbers the next one
        self.completed_epoch: int | None = None
        self.reset_seen = False
        self.move_to(position)

    def move_to(self, position: Position) -> None:
        """Stands at `position` between passes; the open pass and the fetched batches are forgotten."""
        self.origin = position
        self.current: PassInfo | None = None
        self._plan: EpochPlan | None = None
        self.fetched: set[int] = set()

    @property
    def position(self) -> Position:
        """The epoch and its global rows consumed, including the open pass's served batches."""
        if self.current is None or self._plan is None:
            return self.origin
        return self._plan.position_after(self.current.served)

    def start_pass(self, plan: EpochPlan) -> PassInfo:
        """Opens a pass over `plan` (planned from `position`) and returns it.

        Args:
            plan: The rest of the epoch, from where the pass starts.

        Returns:
            The new open pass (`current`).
        """
        self.origin, self.reset_seen = Position(plan.epoch, plan.start), False
        self.passes += 1
        self.current, self._plan = PassInfo(self.passes, self.origin, len(plan)), plan
        return self.current

    def serve(self, info: PassInfo, served: int) -> None:
        """Records that the pass `info` has served `served` batches (a pass no longer open counts nothing)."""
        info.served = served

    def fetch(self, step: int) -> None:
        """Records that batch `step` of the epoch at `origin` was fetched on its own (`ds[step]`)."""
        self.fetched.add(step)

    def note_reset(self) -> None:
        """Records that Keras reset an iterator: the pass ended next is discarded."""
        self.reset_seen = True

    def discard(self) -> None:
        """Forgets the open pass: the next pass starts where it did."""
        self.current = self._plan = None

    def finish(self) -> None:
        """Completes the epoch at `origin`: iteration moves to the start of the next one."""
        self.completed_epoch = self.origin.epoch
        self.move_to(Position(self.origin.epoch + 1, 0))

    def take_reset(self) -> bool:
        """Returns whether Keras reset an iterator since the last pass began, and clears it."""
        seen, self.reset_seen = self.reset_seen, False
        return seen

    def end_epoch(self, steps: int, dropped: bool = False) -> None:
        """Ends what Keras calls an epoch (its `on_epoch_end`).

        Args:
            steps: Batches in a whole epoch.
            dropped: Whether Keras reset the iterator of the open pass
                (`take_reset()`). Defaults to `False`.
        """
        current = self.current
        if current is not None:
            if dropped:
                self.discard()
            elif current.served >= current.steps:
                self.finish()
        elif self.fetched.issuperset(range(steps)):
            self.finish()


def count_steps(rows: int, global_batch_size: int, drop_remainder: bool = False) -> int:
    """Returns how many steps serve `rows` rows, `global_batch_size` per step.

    Args:
        rows: Rows left in the epoch.
        global_batch_size: Rows per step over all hosts.
        drop_remainder: Whether rows that do not fill a step are dropped.

    Returns:
        The number of steps (the last one padded or shorter unless dropped).
    """
    rows = max(0, rows)
    return rows // global_batch_size if drop_remainder else -(-rows // global_batch_size)


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    """Checks `(index, count)` and returns it as two ints.

    Raises:
        ValueError: If it is not `0 <= index < count`.
    """
    try:
        index, count = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise ValueError(f"`shard` must be (index, count) with 0 <= index < count. Received: "
                         f"shard={shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"`shard` must be (index, count) with 0 <= index < count. Received: "
                         f"shard={shard!r}")
    return index, count


def plan_epoch(
    n_rows: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = False,
    groups: np.ndarray | ImageTable | None = None,
    shard: tuple[int, int] = (0, 1),
    start: int = 0,
    large_table_rows: int = LARGE_TABLE_ROWS,
    window: int = 0,
) -> EpochPlan:
    """Plans one host's part of one epoch.

    Args:
        n_rows: Number of rows in the index.
        batch_size: Rows per host per step.
        seed: Seed of the shuffle.
        epoch: Epoch number; each epoch has its own order.
        shuffle: Whether to shuffle. Without shuffling rows keep table order.
        drop_remainder: Whether to drop the rows that do not fill a last
            global batch. Defaults to `False`: with one host the last batch is
            shorter; with several it is padded with weight-0 rows.
        groups: Optional group id per row (the image a row comes from), or
            the index's `ImageTable`. When given and `shuffle` is on, groups
            are shuffled and the rows of a group stay together (in shuffled
            order), so a batch holds few images and each is decoded once.
            Defaults to `None`: rows are shuffled independently.
        window: With `groups` and `shuffle`, shuffle the grouped order again
            inside each run of `window` consecutive rows: a batch then mixes
            the regions of many images, while an image's regions stay within
            one or two windows (decoded together). Defaults to 0 (no
            windows: the groups stay whole).
        shard: `(index, count)`: this host's place. Each step takes
            `batch_size * count` rows of the global order; the host gets rows
            `index * batch_size` to `(index + 1) * batch_size` of them.
            Defaults to `(0, 1)`.
        start: Global rows of the epoch already consumed (a resume point);
            step 0 begins there. Defaults to 0.
        large_table_rows: From this many rows on, the order is a keyed
            permutation computed per batch instead of a sort. Defaults to
            `LARGE_TABLE_ROWS` (2**24).

    Returns:
        The `EpochPlan`. Over all hosts, every row is in exactly one batch
        with weight 1 (with `drop_remainder=True`, at most one).

    Example:
    >>> plan = plan_epoch(5, 2, seed=1, epoch=0, shuffle=False)
    >>> [b.tolist() for b in plan]
    [[0, 1], [2, 3], [4]]
    """
    shard = check_shard(shard)
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size}")
    if not 0 <= start <= n_rows:
        raise ValueError(f"`start` must be in [0, {n_rows}]. Received: start={start}")
    if window < 0:
        raise ValueError(f"`window` must be a non-negative integer. Received: window={window}")
    window = window if shuffle and groups is not None else 0
    order: np.ndarray | PermutedOrder
    if not shuffle:
        order = np.arange(n_rows, dtype=np.int64)
    elif n_rows >= large_table_rows:
        order = PermutedOrder(_permutation(n_rows, seed, epoch, groups, window))
    else:
        groups = groups.group_ids() if isinstance(groups, ImageTable) else groups
        order = _shuffled_order(n_rows, seed, epoch, groups, window).astype(np.int64, copy=False)
    return EpochPlan(order, batch_size, shard, start, drop_remainder, window, seed, epoch)


def _permutation(n_rows: int, seed: int, epoch: int, groups: np.ndarray | ImageTable | None,
                 window: int) -> KeyedPermutation | TwoLevelPermutation | WindowedPermutation:
    if groups is None:
        return KeyedPermutation(n_rows, seed, epoch)
    if not isinstance(groups, ImageTable):
        groups = ImageTable.from_group_ids(np.asarray(groups))
    grouped = TwoLevelPermutation(groups.starts, groups.by_image, seed, epoch)
    return WindowedPermutation(grouped, window, seed, epoch) if window else grouped


def _shuffled_order(n_rows: int, seed: int, epoch: int, groups: np.ndarray | None,
                    window: int = 0) -> np.ndarray:
    row_keys = random_keys(n_rows, seed, epoch, _ROWS)
    if groups is None:
        return np.argsort(row_keys, kind="stable")
    groups = np.asarray(groups)
    group_ids, inverse = np.unique(groups, return_inverse=True)
    group_keys = random_keys(len(group_ids), seed, epoch, _GROUPS)
    # Primary key: the group's random rank; secondary: the row's own random key.
    grouped = np.lexsort((row_keys, group_keys[inverse]))
    if not window:
        return grouped
    # Then each run of `window` positions is shuffled by keys of its own.
    slot_keys = random_keys(n_rows, seed, epoch, _WINDOWS)
    return grouped[np.lexsort((slot_keys, np.arange(n_rows) // window))]
