"""The epoch plan: which rows go in which batch, as a pure function.

Nothing else in the library decides batch membership. Every backend, worker
mode and process asks `plan_epoch` for the same `(seed, epoch)` and gets the
same batches, which is what makes parity, exactly-once accounting and exact
resume possible.

The shuffle does not use `Generator.permutation` (NumPy does not promise its
stream across versions); it sorts raw 64-bit outputs of a PCG64 bit generator
seeded by `(seed, epoch, purpose)`. Raw bit-generator streams are stable, so a
plan is the same on every machine and NumPy release.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["EpochPlan", "plan_epoch", "random_keys"]

_ROWS, _GROUPS = 0, 1


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


@dataclass(frozen=True)
class EpochPlan:
    """The batches of one epoch: `order` cut into runs of `batch_size`.

    Behaves like a read-only list of index arrays: `len(plan)` batches,
    `plan[i]` the row indices of batch `i`.

    Args:
        order: Row indices in the order they are served this epoch.
        batch_size: Rows per batch; the last batch may be shorter.
    """

    order: np.ndarray
    batch_size: int

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index out of range: {index} (the epoch has {len(self)}).")
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def plan_epoch(
    n_rows: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = False,
    groups: np.ndarray | None = None,
    shard: tuple[int, int] = (0, 1),
) -> EpochPlan:
    """Plans one epoch: a partition of the rows into batches.

    Args:
        n_rows: Number of rows in the index.
        batch_size: Rows per batch.
        seed: Seed of the shuffle.
        epoch: Epoch number; each epoch has its own order.
        shuffle: Whether to shuffle. Without shuffling rows keep table order.
        drop_remainder: Whether to drop the last, shorter batch.
        groups: Optional group id per row (the image a row comes from). When
            given and `shuffle` is on, groups are shuffled and the rows of a
            group stay together (in shuffled order), so a batch holds few
            images and each is decoded once. Defaults to `None`: rows are
            shuffled independently.
        shard: `(index, count)`: this host's part of the plan. The shuffled
            order is cut into `count` contiguous, equally long slices (up to
            `count - 1` rows, different ones each epoch, are left out so that
            every host runs the same number of steps); the host takes slice
            `index`. Defaults to `(0, 1)`: the whole plan.

    Returns:
        The `EpochPlan`. Every row appears in at most one batch; with
        `drop_remainder=False` and one shard, in exactly one.

    Example:
    >>> plan = plan_epoch(5, 2, seed=1, epoch=0, shuffle=False)
    >>> [b.tolist() for b in plan]
    [[0, 1], [2, 3], [4]]
    """
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"`shard` must be (index, count) with 0 <= index < count. Received: {shard}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: {batch_size}")
    order = _shuffled_order(n_rows, seed, epoch, groups) if shuffle else np.arange(n_rows)
    if count > 1:
        per_shard = n_rows // count
        order = order[index * per_shard : (index + 1) * per_shard]
    if drop_remainder:
        order = order[: len(order) - len(order) % batch_size]
    return EpochPlan(order.astype(np.int64, copy=False), batch_size)


def _shuffled_order(n_rows: int, seed: int, epoch: int, groups: np.ndarray | None) -> np.ndarray:
    row_keys = random_keys(n_rows, seed, epoch, _ROWS)
    if groups is None:
        return np.argsort(row_keys, kind="stable")
    groups = np.asarray(groups)
    group_ids, inverse = np.unique(groups, return_inverse=True)
    group_keys = random_keys(len(group_ids), seed, epoch, _GROUPS)
    # Primary key: the group's random rank; secondary: the row's own random key.
    return np.lexsort((row_keys, group_keys[inverse]))
