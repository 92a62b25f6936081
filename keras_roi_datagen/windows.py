"""Shuffling in short windows: batches stay mixed, yet each image is decoded about once.

A pure function, like `planning.plan_epoch`, for the plan to use; it decides
only the order of rows within an epoch.

`group_by_image=True` keeps an image's regions together, so a batch holds a
few images and each is decoded once, but batches are poorly mixed (a batch of
32 from images of 8 regions shows 4 images). A fully random order mixes well
but decodes every image once per region. `windowed_order` sits between:

1. images are shuffled and their rows laid out image by image (as
   `group_by_image` does);
2. that order is cut into windows of `window_batches * batch_size` rows;
3. the rows inside each window are shuffled.

A batch then draws its rows from the `window_batches * batch_size / r`
images of one window (r regions per image) instead of from `batch_size / r`
images, and an image's regions all fall in one window (two when it straddles
a window's edge), that is within `window_batches` consecutive batches. An
executor that keeps recently decoded images (see `workers.ImageMemo`)
therefore decodes each image about once per epoch.

Every row appears exactly once; the order is a pure function of
`(seed, epoch)` drawn from the same stable raw PCG64 stream as `planning`.
"""

from __future__ import annotations

import numpy as np

from keras_roi_datagen.planning import random_keys

__all__ = ["windowed_order"]

# Stream purposes; planning.py uses 0 (rows) and 1 (groups).
_WINDOW_GROUPS, _WINDOW_ROWS = 2, 3


def windowed_order(
    groups: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    window_batches: int = 8,
) -> np.ndarray:
    """Returns an epoch's row order, shuffled within windows of whole images.

    Args:
        groups: The group (image) id of each row.
        batch_size: Rows per batch.
        seed: Seed of the shuffle (a non-negative integer).
        epoch: Epoch number; each epoch has its own order.
        window_batches: Batches per window. `1` mixes least (about as
            `group_by_image`); a window as long as the epoch is a full
            shuffle. Defaults to 8.

    Returns:
        An `int64` permutation of `range(len(groups))`.

    Raises:
        ValueError: If `batch_size` or `window_batches` is not positive.

    Example:
    >>> order = windowed_order(np.repeat(np.arange(4), 2), 2, seed=0, epoch=0, window_batches=2)
    >>> sorted(order.tolist())
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size}")
    if window_batches < 1:
        raise ValueError("`window_batches` must be a positive integer. "
                         f"Received: window_batches={window_batches}")
    groups = np.asarray(groups)
    n_rows = len(groups)
    if n_rows == 0:
        return np.zeros(0, dtype=np.int64)
    group_ids, inverse = np.unique(groups, return_inverse=True)
    group_keys = random_keys(len(group_ids), seed, epoch, _WINDOW_GROUPS)
    # Image by image, in a random order of images (rows keep table order within one).
    grouped = np.lexsort((np.arange(n_rows), group_keys[inverse]))
    window = window_batches * batch_size
    row_keys = random_keys(n_rows, seed, epoch, _WINDOW_ROWS)
    # Within each window, the rows in the order of their own random keys.
    window_of = np.arange(n_rows) // window
    within = np.lexsort((row_keys, window_of))
    return grouped[within].astype(np.int64, copy=False)
