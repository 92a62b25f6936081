"""The default windowed shuffle: mixed batches, each image decoded about once per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_roi_datagen import RoiDataset
from keras_roi_datagen.decode import batch as decode_batch_module
from keras_roi_datagen.planning import plan_epoch


def rows_of(plan):
    return np.concatenate(list(plan)) if len(plan) else np.zeros(0, int)


def image_groups(n_images: int, regions: int) -> np.ndarray:
    return np.repeat(np.arange(n_images), regions)


@given(st.integers(1, 60), st.integers(1, 9), st.integers(1, 40), st.integers(1, 100),
       st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_windowed_plans_serve_every_row_once_on_any_number_of_hosts(
        n_images, regions, batch_size, window, seed, hosts):
    groups = image_groups(n_images, regions)
    n = len(groups)
    rows = np.concatenate([rows_of(plan_epoch(n, batch_size, seed=seed, epoch=2, groups=groups,
                                              window=window, shard=(h, hosts)))
                           for h in range(hosts)])
    weights = np.concatenate([np.concatenate([plan_epoch(
        n, batch_size, seed=seed, epoch=2, groups=groups, window=window,
        shard=(h, hosts)).batch(i).weights for i in range(len(plan_epoch(
            n, batch_size, seed=seed, epoch=2, groups=groups, window=window, shard=(h, hosts))))])
        for h in range(hosts)])
    assert sorted(rows[weights > 0].tolist()) == list(range(n))


@given(st.integers(1, 60), st.integers(1, 9), st.integers(1, 100), st.integers(0, 2**31 - 1))
def test_the_global_order_does_not_depend_on_the_host_count(n_images, regions, window, seed):
    groups = image_groups(n_images, regions)
    one = plan_epoch(len(groups), 4, seed=seed, epoch=0, groups=groups, window=window)
    three = plan_epoch(len(groups), 4, seed=seed, epoch=0, groups=groups, window=window,
                       shard=(1, 3))
    assert np.array_equal(np.asarray(one.order[:]), np.asarray(three.order[:]))


@pytest.mark.parametrize("large", [False, True], ids=["sorted", "permuted"])
def test_an_images_regions_stay_within_two_windows_and_batches_mix_images(large):
    groups = image_groups(200, 8)
    limit = 1 if large else 1 << 24  # a tiny threshold switches to the keyed permutation
    plan = plan_epoch(len(groups), 32, seed=5, epoch=1, groups=groups, window=128,
                      large_table_rows=limit)
    order = np.asarray(plan.order[:])
    assert sorted(order.tolist()) == list(range(len(groups)))
    windows = np.arange(len(order)) // 128
    for image in range(200):
        assert len(set(windows[groups[order] == image].tolist())) <= 2
    distinct = [len(set(groups[batch].tolist())) for batch in plan]
    assert np.mean(distinct) > 10  # independent rows: about 29; group_by_image: 4
    grouped = plan_epoch(len(groups), 32, seed=5, epoch=1, groups=groups, large_table_rows=limit)
    assert max(len(set(groups[batch].tolist())) for batch in grouped) <= 5


def test_windowed_orders_are_seeded_and_change_every_epoch():
    groups = image_groups(50, 6)

    def order(seed, epoch):
        return rows_of(plan_epoch(300, 32, seed=seed, epoch=epoch, groups=groups, window=64))

    assert np.array_equal(order(3, 1), order(3, 1))
    assert not np.array_equal(order(3, 1), order(3, 2))
    assert not np.array_equal(order(3, 1), order(4, 1))


def test_the_window_marks_which_batches_share_a_decode():
    plan = plan_epoch(1000, 32, seed=0, epoch=0, groups=image_groups(125, 8), window=128)
    assert [plan.window_of(step) for step in range(6)] == [0, 0, 0, 0, 1, 1]
    resumed = plan_epoch(1000, 32, seed=0, epoch=0, groups=image_groups(125, 8), window=128,
                         start=96)
    assert [resumed.window_of(step) for step in range(3)] == [0, 1, 1]
    alone = plan_epoch(1000, 32, seed=0, epoch=0)
    assert [alone.window_of(step) for step in range(3)] == [0, 1, 2]


@pytest.fixture
def eight_per_image(scenes) -> tuple[pd.DataFrame, object]:
    frame, folder = scenes  # 4 regions in each of 3 images: twice over, 8 per image
    return pd.concat([frame, frame], ignore_index=True), folder


def test_the_default_decodes_each_image_about_once_per_window(eight_per_image, monkeypatch):
    frame, folder = eight_per_image
    opened: list[str] = []
    real = decode_batch_module._decode_image

    def counting(job, image_no, positions, result):
        opened.append(job.paths[image_no])
        return real(job, image_no, positions, result)

    monkeypatch.setattr(decode_batch_module, "_decode_image", counting)
    kwargs = dict(image_dir=folder, image_size=(8, 8), batch_size=4, seed=1, y_cols=["name"])
    windowed = RoiDataset(frame, shuffle_window=len(frame), **kwargs)
    rows = np.concatenate([r for _, _, r in windowed._pass_batches()])
    assert sorted(rows.tolist()) == list(range(len(frame)))
    assert len(opened) == frame["filename"].nunique()
    opened.clear()
    alone = RoiDataset(frame, shuffle_window=None, **kwargs)
    list(alone._pass_batches())
    assert len(opened) > 2 * frame["filename"].nunique()


@pytest.mark.parametrize(("workers", "processes"), [(0, False), (2, False), (2, True)])
def test_windowed_batches_hold_the_same_pixels_as_rows_decoded_alone(eight_per_image, workers,
                                                                     processes):
    frame, folder = eight_per_image
    kwargs = dict(image_dir=folder, image_size=(8, 8), batch_size=5, seed=3, y_cols=["name"],
                  dtype="uint8")
    with RoiDataset(frame, shuffle_window=16, workers=workers, use_multiprocessing=processes,
                    **kwargs) as windowed:
        served = {int(row): x for _, (x, _), rows in windowed._pass_batches()
                  for row, x in zip(rows, x, strict=True)}
    alone = RoiDataset(frame, shuffle=False, shuffle_window=None, **kwargs)
    for i in range(len(alone)):
        x, _ = alone[i]
        for row, pixels in zip(alone.plan()[i], x, strict=True):
            assert np.array_equal(served[int(row)], pixels)


def test_states_saved_before_windows_resume_with_rows_shuffled_alone(eight_per_image):
    frame, folder = eight_per_image
    kwargs = dict(image_dir=folder, image_size=(8, 8), batch_size=4, seed=1, y_cols=["name"])
    state = RoiDataset(frame, shuffle_window=None, **kwargs).get_state()
    state["config"].pop("shuffle_window")  # as saved by 0.x
    RoiDataset(frame, shuffle_window=None, **kwargs).set_state(state)
    with pytest.raises(Exception, match="shuffle_window"):
        RoiDataset(frame, **kwargs).set_state(state)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "128"])
def test_a_bad_shuffle_window_is_refused_by_name(scenes, bad):
    frame, folder = scenes
    with pytest.raises(ValueError, match="shuffle_window"):
        RoiDataset(frame, image_dir=folder, shuffle_window=bad)
