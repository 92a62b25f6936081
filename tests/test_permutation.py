"""The keyed permutation: a bijection, a pure function of (seed, epoch, purpose), computed by range."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_roi_datagen.permutation import KeyedPermutation, TwoLevelPermutation

sizes = st.integers(0, 3000)
seeds = st.integers(-(2**63), 2**63)


@settings(max_examples=60, deadline=None)
@given(sizes, seeds, st.integers(0, 10**6))
def test_is_a_bijection_with_an_inverse(n: int, seed: int, epoch: int) -> None:
    perm = KeyedPermutation(n, seed, epoch)
    order = perm.take(0, n)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(perm.inverse(order), np.arange(n))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), seeds, st.lists(st.integers(0, 3000), max_size=6))
def test_ranges_compose_into_the_whole_order(n: int, seed: int, cuts: list[int]) -> None:
    perm = KeyedPermutation(n, seed, 2)
    bounds = sorted({0, n, *(c % (n + 1) for c in cuts)})
    parts = [perm.take(a, b) for a, b in itertools.pairwise(bounds)]
    np.testing.assert_array_equal(np.concatenate(parts), perm.take(0, n))
    # Any positions, in any order and shape, agree with the whole order.
    positions = np.array(bounds[:-1]).reshape(-1, 1) if len(bounds) > 1 else np.zeros((0, 1), int)
    np.testing.assert_array_equal(perm(positions), perm.take(0, n)[positions])


@settings(max_examples=40, deadline=None)
@given(st.integers(30, 3000), seeds, st.integers(0, 1000))
def test_deterministic_and_different_per_epoch_seed_and_purpose(n: int, seed: int,
                                                                epoch: int) -> None:
    order = KeyedPermutation(n, seed, epoch).take(0, n)
    np.testing.assert_array_equal(order, KeyedPermutation(n, seed, epoch).take(0, n))
    for other in (KeyedPermutation(n, seed, epoch + 1), KeyedPermutation(n, seed + 1, epoch),
                  KeyedPermutation(n, seed, epoch, purpose="images")):
        assert not np.array_equal(other.take(0, n), order)


def test_known_values_do_not_drift() -> None:
    # Pinned: a change here changes every shuffled epoch of every user.
    assert KeyedPermutation(10, seed=1, epoch=0).take(0, 10).tolist() == PINNED


def test_huge_domains_cost_only_the_range() -> None:
    perm = KeyedPermutation(10**11, seed=3, epoch=1)
    rows = perm.take(10**10, 10**10 + 100_000)
    assert len(np.unique(rows)) == 100_000 and rows.max() < 10**11
    np.testing.assert_array_equal(perm.inverse(rows), np.arange(10**10, 10**10 + 100_000))


def test_order_looks_shuffled() -> None:
    order = KeyedPermutation(100_000, seed=5).take(0, 100_000)
    # Neighbouring positions land far apart, and each value's displacement is spread out.
    assert abs(np.corrcoef(np.arange(100_000), order)[0, 1]) < 0.02
    assert np.median(np.abs(np.diff(order))) > 20_000


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="Received: n=-1"):
        KeyedPermutation(-1, 0)
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        KeyedPermutation(5, 0)(np.array([5]))


@st.composite
def image_tables(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    counts = draw(st.lists(st.integers(1, 12), min_size=0, max_size=40))
    n = sum(counts)
    image_of_row = np.repeat(np.arange(len(counts)), counts)
    shuffle = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(n)
    path_ids = image_of_row[shuffle]
    by_image = np.argsort(path_ids, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return starts, by_image


@settings(max_examples=60, deadline=None)
@given(image_tables(), seeds, st.integers(0, 100), st.integers(0, 200))
def test_two_level_keeps_images_together_exactly_once(table: tuple[np.ndarray, np.ndarray],
                                                      seed: int, epoch: int, cut: int) -> None:
    starts, by_image = table
    perm = TwoLevelPermutation(starts, by_image, seed, epoch)
    n = int(starts[-1])
    order = perm.take(0, n)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    image_of = np.empty(n, dtype=np.int64)
    for image in range(len(starts) - 1):
        image_of[by_image[starts[image]:starts[image + 1]]] = image
    runs = image_of[order]
    changes = np.count_nonzero(np.diff(runs)) if n else 0
    assert changes == max(0, len(starts) - 2)  # each image is one run
    cut = cut % (n + 1)
    np.testing.assert_array_equal(np.concatenate([perm.take(0, cut), perm.take(cut, n)]), order)
    np.testing.assert_array_equal(TwoLevelPermutation(starts, by_image, seed, epoch).take(0, n),
                                  order)


def test_two_level_shuffles_images_and_regions() -> None:
    counts = np.full(200, 10)
    starts = np.concatenate([[0], np.cumsum(counts)])
    by_image = np.arange(2000)
    a = TwoLevelPermutation(starts, by_image, seed=1, epoch=0).take(0, 2000)
    b = TwoLevelPermutation(starts, by_image, seed=1, epoch=1).take(0, 2000)
    assert not np.array_equal(a, b)
    first_images = a[::10] // 10
    assert not np.array_equal(first_images, np.arange(200))  # images reordered
    within = a[:10] - a[:10].min()
    assert sorted(within.tolist()) == list(range(10)) and within.tolist() != list(range(10))


PINNED = [3, 1, 4, 6, 5, 9, 7, 8, 2, 0]
