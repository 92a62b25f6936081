import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_roi_datagen.windows import windowed_order


def groups_of(sizes):
    return np.repeat(np.arange(len(sizes)), sizes)


@given(st.lists(st.integers(1, 12), max_size=60), st.integers(1, 16), st.integers(1, 6),
       st.integers(0, 2**31 - 1), st.integers(0, 20))
def test_every_row_once_and_each_image_within_adjacent_windows(
        sizes, batch_size, window_batches, seed, epoch):
    groups = groups_of(sizes)
    order = windowed_order(groups, batch_size, seed=seed, epoch=epoch, window_batches=window_batches)
    assert sorted(order.tolist()) == list(range(len(groups)))
    window = batch_size * window_batches
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    for group in np.unique(groups):
        windows = np.unique(position[groups == group] // window)
        rows = int((groups == group).sum())
        # Consecutive windows, as few as the image's rows allow (one more at a seam).
        assert windows.max() - windows.min() == len(windows) - 1
        assert len(windows) <= -(-rows // window) + 1


def test_same_seed_and_epoch_give_the_same_order_and_epochs_differ():
    groups = groups_of([8] * 200)
    first = windowed_order(groups, 32, seed=3, epoch=1)
    assert np.array_equal(first, windowed_order(groups, 32, seed=3, epoch=1))
    assert not np.array_equal(first, windowed_order(groups, 32, seed=3, epoch=2))
    assert not np.array_equal(first, windowed_order(groups, 32, seed=4, epoch=1))


def distinct_images_per_batch(order, groups, batch_size):
    return np.mean([len(np.unique(groups[order[i:i + batch_size]]))
                    for i in range(0, len(order), batch_size)])


def test_windows_mix_batches_between_grouped_and_fully_shuffled():
    groups = groups_of([8] * 512)
    grouped = windowed_order(groups, 32, seed=0, epoch=0, window_batches=1)
    windowed = windowed_order(groups, 32, seed=0, epoch=0, window_batches=8)
    shuffled = windowed_order(groups, 32, seed=0, epoch=0, window_batches=len(groups))
    mixing = [distinct_images_per_batch(o, groups, 32) for o in (grouped, windowed, shuffled)]
    assert mixing[0] <= 5 < 15 < mixing[1] < mixing[2]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="window_batches"):
        windowed_order(np.zeros(3), 2, seed=0, epoch=0, window_batches=0)
    with pytest.raises(ValueError, match="batch_size"):
        windowed_order(np.zeros(3), 0, seed=0, epoch=0)
    assert windowed_order(np.zeros(0), 2, seed=0, epoch=0).tolist() == []
