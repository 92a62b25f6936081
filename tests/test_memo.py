"""Kept decoded images (`ImageMemo`): crops identical to decoding each batch afresh."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from keras_roi_datagen import jpeg_region
from keras_roi_datagen.imaging import BatchJob, DecodeOptions, decode_batch
from keras_roi_datagen.memo import ImageMemo
from keras_roi_datagen.workers import make_executor


def photo(path, seed, size=(640, 480)):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    noise = rng.integers(-20, 20, (size[1], size[0], 3))
    Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8)).save(path, quality=90)
    return str(path)


def jobs(paths, options, n_jobs=4, rows=6, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n_jobs):
        index = rng.integers(0, len(paths), rows).astype(np.int32)
        x0, y0 = rng.uniform(0, 300, rows), rng.uniform(0, 200, rows)
        side = rng.uniform(10, 300, rows)  # from upscaled to 1/4 DCT scale
        boxes = np.column_stack([x0, y0, x0 + side, y0 + side * rng.uniform(0.5, 1.5, rows)])
        yield BatchJob(tuple(paths), index, boxes, False, options)


@pytest.mark.skipif(not jpeg_region.AVAILABLE, reason="the region decoder is not built")
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_kept_images_give_the_same_crops_and_are_reused(tmp_path, color_mode):
    paths = [photo(tmp_path / f"p{i}.jpg", i) for i in range(3)]
    options = DecodeOptions((32, 40), color_mode=color_mode)
    memo = ImageMemo()
    for job in jobs(paths, options):
        assert decode_batch(job, memo).pixels.tobytes() == decode_batch(job).pixels.tobytes()
    assert memo.hits > 0  # later batches cropped from kept images


@pytest.mark.skipif(not jpeg_region.AVAILABLE, reason="the region decoder is not built")
@pytest.mark.parametrize("processes", [False, True])
def test_executors_that_keep_images_give_the_same_batches(tmp_path, processes):
    paths = [photo(tmp_path / f"p{i}.jpg", i) for i in range(3)]
    options = DecodeOptions((32, 40))
    executor = make_executor(2, processes, 60.0, reuse_images=True)
    try:
        for job in jobs(paths, options, n_jobs=6):
            assert executor.submit(job).result().pixels.tobytes() == decode_batch(job).pixels.tobytes()
    finally:
        executor.close()


def test_memo_decodes_a_key_once_for_concurrent_callers_and_respects_its_bound():
    memo = ImageMemo(max_bytes=250)
    calls = []
    gate = threading.Event()

    def make():
        calls.append(1)
        gate.wait(5)
        return np.zeros(100, np.uint8)

    threads = [threading.Thread(target=memo.get_or_make, args=("a", make)) for _ in range(4)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    memo.get_or_make("b", lambda: np.zeros(100, np.uint8))
    memo.get_or_make("c", lambda: np.zeros(100, np.uint8))  # pushes out "a", the oldest
    assert memo.used <= 250
    assert memo.get_or_make("a", lambda: None) is None


@pytest.mark.skipif(not jpeg_region.AVAILABLE, reason="the region decoder is not built")
@pytest.mark.parametrize("processes", [False, True])
def test_a_new_pass_forgets_kept_images(tmp_path, processes):
    from keras_roi_datagen.workers import PassExecutor

    paths = [photo(tmp_path / "p0.jpg", 0)]
    job = next(jobs(paths, DecodeOptions((32, 40)), n_jobs=1))
    executor = make_executor(1 if processes else 2, processes, 60.0, reuse_images=True)
    try:
        PassExecutor(executor).submit(job).result()
        memo = getattr(executor, "memo", None)
        if memo is not None:
            assert memo.used > 0
            PassExecutor(executor)  # the next pass
            assert memo.used == 0
        else:  # a worker process: a new pass number makes it start a fresh memo
            generation = executor.generation
            PassExecutor(executor)
            assert executor.generation == generation + 1
        assert PassExecutor(executor).submit(job).result().pixels.tobytes() == \
            decode_batch(job).pixels.tobytes()
    finally:
        executor.close()
