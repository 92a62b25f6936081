"""The TensorFlow hook: same batches as the other hooks, without TF's process-wide malloc patch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from test_workers import run_script

from keras_roi_datagen import RoiDataset

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="TensorFlow is not installed")


def test_the_tf_pipeline_leaves_glibc_malloc_settings_alone(tmp_path):
    # tf.data's GeneratorDataset sets M_TRIM_THRESHOLD=128 KB for the whole process, which
    # made every decoded strip and crop a fresh mmap (35-45% fewer crops per CPU-second).
    result = run_script(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import scene_table
        from keras_roi_datagen import RoiDataset
        ds = RoiDataset(scene_table(__import__("pathlib").Path(".")), image_size=(16, 16),
                        batch_size=5, seed=1)
        print("BATCHES", sum(1 for _ in ds.get_tf_dataset()), flush=True)
        """, tmp_path, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="0")
    assert "BATCHES 3" in result.stdout, result.stderr[-3000:]
    assert "Memory patch applied" not in result.stderr
    # Every TensorFlow user would see this on every `fit`; the pipeline's functions are plain.
    assert "AutoGraph could not transform" not in result.stderr


def test_tf_passes_serve_the_numpy_batches_and_a_cut_pass_resumes_where_it_stopped(scenes):
    frame, folder = scenes
    kwargs = dict(image_dir=folder, image_size=(8, 8), batch_size=3, seed=4, dtype="uint8")
    reference = RoiDataset(frame, **kwargs)
    expected = list(reference.get_numpy_iterator())
    ds = RoiDataset(frame, **kwargs)
    first = [b for _, b in zip(range(2), ds.get_tf_dataset(), strict=False)]
    ds.on_epoch_end()  # as Keras does after `steps_per_epoch` steps: the pass is kept
    rest = list(ds.get_tf_dataset())
    served = first + rest
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert np.array_equal(got[0].numpy(), want[0])
        for head, wanted in zip(got[1], want[1], strict=True):
            assert np.array_equal(head.numpy(), wanted)
