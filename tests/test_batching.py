"""The batch side: one batch structure (`OutputSpec`), one road from rows to pixels."""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_roi_datagen import RoiDataset, decode_workers
from keras_roi_datagen.batching import OutputSpec, decode_rows
from keras_roi_datagen.cache import CachingExecutor
from keras_roi_datagen.planning import Position

HEADS = [(), ("name",), ("name", "type")]
WEIGHTS = ["none", "class_weight", "padded"]  # padded: two hosts, the last global batch padded


def make(table, folder, **kwargs):
    return RoiDataset(table, image_dir=folder, **{"image_size": (8, 10), "batch_size": 5,
                                                  "seed": 3, **kwargs})


def combination(table, folder, heads, output_format, weights, data_format, dtype, label_mode):
    kwargs = {"y_cols": heads, "output_format": output_format, "data_format": data_format,
              "dtype": dtype, "label_mode": label_mode}
    if weights == "class_weight":
        kwargs["class_weight"] = {heads[0]: {"red": 2.0}}
    if weights == "padded":
        kwargs["shard"] = (1, 2)
    return make(table, folder, **kwargs)


COMBINATIONS = [c for c in itertools.product(HEADS, ["tuple", "dict"], WEIGHTS,
                                             ["channels_last", "channels_first"],
                                             ["uint8", "float32"], ["categorical", "int"])
                if c[0] or c[2] != "class_weight"]


@pytest.mark.parametrize(("heads", "output_format", "weights", "data_format", "dtype", "label_mode"),
                         COMBINATIONS)
def test_the_signature_is_the_structure_of_a_real_batch(scenes, heads, output_format, weights,
                                                         data_format, dtype, label_mode):
    tf = pytest.importorskip("tensorflow")
    ds = combination(*scenes, heads, output_format, weights, data_format, dtype, label_mode)
    batch = ds[0]
    signature = ds.output_spec.signature()
    tf.nest.assert_same_structure(signature, batch)
    for spec, part in zip(tf.nest.flatten(signature), tf.nest.flatten(batch), strict=True):
        assert spec.dtype == tf.as_dtype(part.dtype)
        assert spec.shape.as_list() == [None, *part.shape[1:]]
    assert len(batch) == (1 if not heads else 3 if weights != "none" else 2)
    # The empty batch that ends a TensorFlow pass has the same structure, with no rows.
    empty = ds.output_spec.empty()
    tf.nest.assert_same_structure(empty, batch)
    assert all(len(part) == 0 for part in tf.nest.flatten(empty))


@pytest.mark.parametrize(("heads", "output_format", "weights"),
                         [((), "tuple", "none"), (("name",), "dict", "padded"),
                          (("name", "type"), "tuple", "class_weight")])
def test_the_tf_pipeline_serves_the_signature_and_the_numpy_batches(scenes, heads, output_format,
                                                                    weights):
    tf = pytest.importorskip("tensorflow")
    ds = combination(*scenes, heads, output_format, weights, "channels_first", "float32", "int")
    reference = combination(*scenes, heads, output_format, weights, "channels_first", "float32",
                            "int")
    tf_dataset = ds.get_tf_dataset()
    assert tf_dataset.element_spec == ds.output_spec.signature()
    served = list(tf_dataset)
    expected = list(reference.get_numpy_iterator())
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(want), strict=True):
            np.testing.assert_array_equal(a.numpy(), b)


def test_flatten_and_unflatten_keep_the_structure(scenes):
    ds = make(*scenes, output_format="dict", class_weight={"type": {"light": 3.0}})
    batch = ds[1]
    spec = ds.output_spec
    leaves = spec.flatten(batch)
    assert len(leaves) == 1 + 2 * len(ds.vocabularies)
    again = spec.unflatten(leaves)
    assert list(again[1]) == list(batch[1]) and list(again[2]) == list(batch[2])
    doubled = spec.map(lambda part: np.concatenate([part, part]), batch)
    assert doubled[0].shape[0] == 2 * batch[0].shape[0]
    assert doubled[2]["type"].tolist() == 2 * batch[2]["type"].tolist()


def test_a_spec_refuses_class_weights_for_unknown_heads_and_classes(scenes):
    ds = make(*scenes)
    with pytest.raises(ValueError, match="not one of y_cols"):
        OutputSpec.build(ds.vocabularies, label_mode="int", output_format="tuple",
                         dtype=np.dtype("uint8"), data_format="channels_last", image_size=(2, 2),
                         channels=3, class_weight={"colour": {}})


def test_decode_rows_returns_failed_rows_instead_of_raising(scenes):
    table, folder = scenes
    ds = make(table, folder, shuffle=False)
    good = decode_rows(ds.index, ds.options, np.array([0, 1]))
    Path(ds.index.path_of(0)).unlink()  # the first image (rows 0-3) disappears
    decoded = decode_rows(ds.index, ds.options, np.array([4, 0, 1]), where="a sheet")
    assert set(decoded.problems) == {1, 2} and decoded.kept().tolist() == [True, False, False]
    assert all("(a sheet)" in p.message for p in decoded.problems.values())
    assert not decoded.pixels[1:].any()
    assert decoded.pixels.shape[1:] == good.pixels.shape[1:]


def test_indexing_reuses_one_caching_executor(scenes, monkeypatch):
    made = []

    class Counting(CachingExecutor):
        def __init__(self, *args, **kwargs):
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(decode_workers, "CachingExecutor", Counting)
    ds = make(*scenes, cache=True)
    first = ds[0][0]
    ds[1], ds[0]
    assert len(made) == 1
    np.testing.assert_array_equal(ds[0][0], first)
    assert ds.cache.stats["hits"] >= 2 * len(first)  # the second and third ds[0] came from the cache


def test_the_dataset_pickles_with_its_position_and_without_its_executors(scenes):
    ds = make(*scenes, workers=2, cache=True)
    batches = ds.iter_batches()
    next(batches)  # a pass cut short after one batch: the position is mid-epoch
    batches.close()
    ds.on_epoch_end()  # kept, as after `steps_per_epoch`
    ds[0]  # the inline executor exists too
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.position == ds.position and copy.position.rows == 5
    assert copy.current_pass.start == ds.current_pass.start
    assert copy.worker_pids == [] and copy._decode_workers._inline is None
    rest = [rows.tolist() for _, _, rows in ds._pass_batches()]
    assert [rows.tolist() for _, _, rows in copy._pass_batches()] == rest
    copy.on_epoch_end(), ds.on_epoch_end()
    assert copy.position == ds.position == Position(1, 0)
    assert copy.current_pass is None and ds.current_pass is None


def test_the_plan_and_the_batch_side_load_without_keras_or_the_index():
    script = (
        "import sys\n"
        "import keras_roi_datagen.planning\n"
        "assert not [m for m in sys.modules if m.startswith(('keras_roi_datagen.index', 'pandas'))]\n"
        "import keras_roi_datagen.batching, keras_roi_datagen.state\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'jax', 'torch')])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_class_weights_survive_validate_leaving_rows_out(scenes):
    table, folder = scenes
    ds = make(table, folder, shuffle=False, on_error="skip", class_weight={"type": {"light": 3.0}})
    Path(ds.index.path_of(0)).unlink()  # found by validate(): its 4 rows are left out
    ds.validate(progress=False)
    assert len(ds.index) == 8 and len(ds.skipped) == 4
    _, (_, y_type), (_, w_type) = ds[0]
    light = ds.vocabularies["type"].index("light")
    assert w_type.tolist() == [3.0 if code == light else 1.0 for code in y_type.argmax(axis=1)]
