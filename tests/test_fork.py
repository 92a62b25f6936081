"""A RoiDataset inside other people's loaders: torch DataLoader workers, Keras's own enqueuer.

Those loaders fork (or spawn) while the user's other threads may be decoding.
Nothing the library holds (a lock, a pool, a changed global of Pillow) may
break them, and Pillow's own decompression-bomb limit is never touched.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from conftest import scene_table
from PIL import Image

from keras_roi_datagen import RoiDataset


def make(folder, **kwargs):
    table = scene_table(folder, n_images=6)
    return RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=4, seed=3,
                      shuffle=False, **kwargs)


class Decoding:
    """Decodes batches on a background thread until stopped."""

    def __init__(self, ds):
        self.ds, self.stop, self.count = ds, threading.Event(), 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.ds[self.count % len(self.ds)]
            self.count += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def test_decoding_never_changes_pillows_global_limit(tmp_path):
    ds = make(tmp_path)
    seen = set()
    with Decoding(ds) as decoding:
        while decoding.count < 20:
            seen.add(Image.MAX_IMAGE_PIXELS)
    assert seen == {Image.MAX_IMAGE_PIXELS} and None not in seen


def test_the_datasets_own_limit_applies_whatever_pillows_is(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would refuse the 160x90 scenes
    x, _ = make(tmp_path, max_image_pixels=None)[0]
    assert x.shape == (4, 16, 16, 3)
    with pytest.raises(Exception, match="max_image_pixels=1000"):
        make(tmp_path, max_image_pixels=1000)[0]


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_torch_dataloader_workers_serve_every_batch_while_another_thread_decodes(
        tmp_path, context):
    torch = pytest.importorskip("torch", reason="torch is not installed in this environment")
    ds = make(tmp_path)
    expected = [ds[i] for i in range(len(ds))]
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, timeout=120,
                                         multiprocessing_context=context)
    with Decoding(ds):
        got = list(loader)
    assert len(got) == len(expected)
    for (x, ys), (x2, ys2) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(x.numpy(), x2)
        for head, head2 in zip(ys, ys2, strict=True):
            np.testing.assert_array_equal(head.numpy(), head2)


@pytest.mark.slow
def test_keras_own_enqueuer_with_processes_serves_every_batch_while_another_thread_decodes(tmp_path):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    ds = make(tmp_path, workers=2, use_multiprocessing=True)
    expected = [ds[i] for i in range(len(ds))]
    adapter = PyDatasetAdapter(ds, shuffle=False)
    result: list = []
    with Decoding(ds):
        worker = threading.Thread(target=lambda: result.extend(adapter.get_numpy_iterator()),
                                  daemon=True)
        worker.start()
        worker.join(180)
    assert not worker.is_alive(), "Keras's enqueuer hung"
    adapter.on_epoch_end()
    assert len(result) == len(expected)
    for (x, _), (x2, _) in zip(result, expected, strict=True):
        np.testing.assert_array_equal(x, x2)
