"""Train / validation / test splits that keep an image's regions together.

Regions of one photo look alike; a photo split across training and
validation leaks. `split_groups` assigns whole groups (images) to splits so
that each split holds close to its fraction of the rows and, with labels
given, close to its fraction of every class (iterative stratification: groups
holding the rarest classes are placed first, each where it fills the largest
remaining need). Deterministic from the seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_roi_datagen.planning import random_keys

__all__ = ["SPLITS", "split_groups"]

SPLITS = ("train", "val", "test")
_SPLIT_PURPOSE = 7


def _check_fractions(validation_split: float, test_split: float) -> None:
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
    if validation_split + test_split >= 1.0:
        raise ValueError(
            "`validation_split + test_split` must leave rows for training. Received: "
            f"validation_split={validation_split}, test_split={test_split}")


def split_groups(
    groups: np.ndarray,
    validation_split: float,
    test_split: float = 0.0,
    *,
    seed: int,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Assigns every row to a split, whole groups at a time.

    Args:
        groups: Group id per row (e.g. the image of each region).
        validation_split: Fraction of rows for validation.
        test_split: Fraction of rows for testing.
        seed: Seed of the assignment.
        labels: Optional class index per row to stratify on.

    Returns:
        `int8` array: the split of each row (0 train, 1 val, 2 test), indices
        into `SPLITS`.

    Example:
    >>> split_groups(np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]), 0.2, seed=0).tolist().count(1)
    2
    """
    _check_fractions(validation_split, test_split)
    group_ids, row_group = np.unique(np.asarray(groups), return_inverse=True)
    row_group = row_group.ravel()
    n_groups = len(group_ids)
    keys = random_keys(n_groups, seed, 0, _SPLIT_PURPOSE)
    if labels is None:
        counts = np.bincount(row_group, minlength=n_groups)[:, None].astype(np.float64)
    else:
        labels = np.asarray(labels)
        _, label_index = np.unique(labels, return_inverse=True)
        counts = np.zeros((n_groups, int(label_index.max()) + 1 if len(labels) else 0))
        np.add.at(counts, (row_group, label_index.ravel()), 1.0)
    fractions = np.array([1.0 - validation_split - test_split, validation_split, test_split])
    group_split = _assign(counts, fractions, keys)
    return group_split[row_group].astype(np.int8)


def _assign(counts: np.ndarray, fractions: np.ndarray, keys: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=0)
    need = fractions[:, None] * totals[None, :]
    filled = np.zeros_like(need)
    # Rarest classes first, so the few groups holding them can be spread out.
    rarity = np.where(counts > 0, 1.0 / np.maximum(totals, 1.0)[None, :], 0.0).max(axis=1)
    order = np.lexsort((keys, -rarity))
    assigned = np.zeros(len(counts), dtype=np.int8)
    open_splits = fractions > 0
    for group in order.tolist():
        have = counts[group]
        # Relative need left per split and class; a group goes where its
        # classes are most wanted, so every split fills in proportion.
        remaining = np.where(need > 0, (need - filled) / np.where(need > 0, need, 1.0), -1.0)
        score = (remaining * have[None, :]).sum(axis=1) / max(have.sum(), 1.0)
        score[~open_splits] = -np.inf
        split = int(np.argmax(score))
        assigned[group] = split
        filled[split] += have
    return assigned


def split_names(codes: Sequence[int] | np.ndarray) -> list[str]:
    """Maps split indices to their names (`"train"`, `"val"`, `"test"`)."""
    return [SPLITS[int(c)] for c in np.asarray(codes).tolist()]
