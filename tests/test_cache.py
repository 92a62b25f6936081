"""The crop cache: same bytes as decoding, survives a killed writer, invalidates what changed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import backend, numpy_batch, scene_table

from keras_roi_datagen import RoiDataset
from keras_roi_datagen.cache import FolderCropStore, check_cache_allowed

ROOT = Path(__file__).resolve().parent.parent


def digest(batches) -> str:
    h = hashlib.sha256()
    for batch in batches:
        for part in (batch[0], *batch[1]):
            h.update(np.ascontiguousarray(numpy_batch(part)).tobytes())
    return h.hexdigest()


def backend_pass(ds: RoiDataset):
    """One pass through the DataAdapter hook `fit` uses on this backend."""
    name = backend()
    if name == "tensorflow":
        yield from ds.get_tf_dataset()
    elif name == "torch":
        yield from ds.get_torch_dataloader()
    else:
        yield from ds.get_jax_iterator()
    ds.on_epoch_end()


def make(scenes, **kwargs) -> RoiDataset:
    table, folder = scenes
    settings = {"image_size": (24, 20), "batch_size": 5, "seed": 7, **kwargs}
    return RoiDataset(table, image_dir=folder, **settings)


@pytest.mark.parametrize(("workers", "processes"), [(0, False), (2, False), (2, True)])
@pytest.mark.parametrize("where", ["memory", "folder"])
def test_cached_epochs_are_byte_identical_to_decoding(scenes, tmp_path, workers, processes, where):
    reference = make(scenes)
    cache = True if where == "memory" else tmp_path / "crops"
    with make(scenes, cache=cache, workers=workers, use_multiprocessing=processes) as ds:
        for epoch in range(3):
            # The reference decodes in the caller, NumPy batches: the backend's adapter,
            # the workers and the cache must all give the same bytes.
            expected = digest(reference.iter_batches())
            reference.on_epoch_end()
            assert digest(backend_pass(ds)) == expected, f"epoch {epoch}"
        stats = ds.cache.stats
    rows = len(reference.index)
    assert stats["misses"] == rows  # decoded once, in the first epoch
    assert stats["hits"] == 2 * rows  # read back in the other two
    assert make(scenes, cache=cache)[1][0].tobytes() == make(scenes)[1][0].tobytes()  # ds[i] too


def test_memory_cache_respects_its_bound_and_keeps_what_it_has(scenes):
    crop_bytes = 24 * 20 * 3
    ds = make(scenes, cache=True, cache_max_bytes=5 * crop_bytes)
    reference = make(scenes)
    for _ in range(2):
        assert digest(ds.iter_batches()) == digest(reference.iter_batches())
        ds.on_epoch_end()
        reference.on_epoch_end()
    assert ds.cache.used <= 5 * crop_bytes
    assert ds.cache.stats["writes"] == 5
    assert ds.cache.stats["hits"] == 5  # the second epoch reads the five it kept


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/*.crop"))


def test_a_changed_image_invalidates_only_its_rows(scenes, tmp_path):
    table, folder = scenes
    cache = tmp_path / "crops"
    list(make(scenes, cache=cache).iter_batches())
    ds = make(scenes, cache=cache)
    # Same pixels, new modification time: the key follows the file, not a guess.
    path = folder / "scene_1.png"
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    batches = list(ds.iter_batches())
    rows_of_image = int((table["filename"] == "scene_1.png").sum())
    assert ds.cache.stats["misses"] == rows_of_image
    assert ds.cache.stats["hits"] == len(table) - rows_of_image
    # Different pixels: the cached crops must not hide the change.
    from PIL import Image

    Image.new("RGB", (160, 90), (5, 5, 5)).save(path)
    ds = make(scenes, cache=cache)
    assert digest(ds.iter_batches()) == digest(make(scenes).iter_batches())
    assert ds.cache.stats["misses"] == rows_of_image
    del batches


def test_a_changed_crop_option_invalidates_every_row(scenes, tmp_path):
    cache = tmp_path / "crops"
    list(make(scenes, cache=cache).iter_batches())
    for change in ({"image_size": (20, 20)}, {"interpolation": "nearest"}, {"fast_decode": False}):
        ds = make(scenes, cache=cache, **change)
        assert digest(ds.iter_batches()) == digest(make(scenes, **change).iter_batches())
        assert ds.cache.stats["hits"] == 0, change
    ds = make(scenes, cache=cache, batch_size=3, seed=1)  # batching options do not touch crops
    list(ds.iter_batches())
    assert ds.cache.stats["misses"] == 0


def test_corrupted_entries_are_detected_and_rewritten(scenes, tmp_path):
    cache = tmp_path / "crops"
    list(make(scenes, cache=cache).iter_batches())
    entries = _entries(cache)
    entries[0].write_bytes(entries[0].read_bytes()[:-7])  # torn
    data = bytearray(entries[1].read_bytes())
    data[-1] ^= 0xFF  # one flipped bit of a pixel
    entries[1].write_bytes(bytes(data))
    ds = make(scenes, cache=cache)
    assert digest(ds.iter_batches()) == digest(make(scenes).iter_batches())
    assert ds.cache.stats["invalid"] == 2 and ds.cache.stats["misses"] == 2
    again = make(scenes, cache=cache)
    list(again.iter_batches())
    assert again.cache.stats["hits"] == len(ds.index)  # both were rewritten


def test_a_writer_killed_mid_pass_leaves_a_usable_cache(tmp_path):
    table, folder = scene_table(tmp_path, n_images=6), tmp_path
    table.to_csv(tmp_path / "table.csv", index=False)
    cache = tmp_path / "crops"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        import pandas as pd
        from keras_roi_datagen import RoiDataset
        from keras_roi_datagen import cache as crop_cache
        put = crop_cache.FolderCropStore.put
        def slow_put(self, key, pixels):  # slow enough to be killed between entries
            put(self, key, pixels)
            print("WROTE", flush=True)
            time.sleep(0.05)
        crop_cache.FolderCropStore.put = slow_put
        ds = RoiDataset(pd.read_csv("table.csv"), image_size=(24, 20),
                        batch_size=2, seed=7, cache={str(cache)!r}, workers=2)
        for _ in ds.iter_batches():
            pass
        print("FINISHED", flush=True)
        """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        seen = 0
        while seen < 5:
            line = writer.stdout.readline()
            assert line, "the writer ended before it was killed"
            seen += line.count("WROTE")
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        writer.kill()
    written = len(_entries(cache))
    assert 5 <= written < len(table)  # a partial cache
    ds = make((table, folder), cache=cache)
    assert digest(ds.iter_batches()) == digest(make((table, folder)).iter_batches())
    stats = ds.cache.stats
    assert stats["invalid"] == 0 and stats["hits"] == written
    assert stats["misses"] == len(table) - written
    assert not list(cache.glob("*/.tmp-*"))  # a killed writer's temporary files are cleared


def test_cache_with_augmentation_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="cannot be combined with random augmentation"):
        check_cache_allowed("crops", augment={"flip": True})
    check_cache_allowed("crops", augment=None)
    check_cache_allowed(None, augment={"flip": True})


def test_cache_arguments_are_checked_before_any_io(tmp_path):
    with pytest.raises(ValueError, match="Received: cache=3"):
        RoiDataset(tmp_path / "missing.csv", cache=3)
    with pytest.raises(ValueError, match="Received: cache_max_bytes=0"):
        RoiDataset(tmp_path / "missing.csv", cache=True, cache_max_bytes=0)


def test_folder_store_counts_existing_entries_toward_its_bound(scenes, tmp_path):
    cache = tmp_path / "crops"
    list(make(scenes, cache=cache).iter_batches())
    size = sum(p.stat().st_size for p in _entries(cache))
    assert FolderCropStore(cache).used == size


def test_a_dataset_refuses_a_crop_cache_with_augmentation(tmp_path):
    from conftest import scene_table

    from keras_roi_datagen import RoiDataset

    with pytest.raises(ValueError, match="cannot be combined with random augmentation"):
        RoiDataset(scene_table(tmp_path), image_dir=tmp_path, image_size=(8, 8), seed=1,
                   cache=True, augment={"horizontal_flip": True})
