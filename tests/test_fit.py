"""`model.fit` on the current backend (set KERAS_BACKEND): the path users take."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from keras_roi_datagen import RoiDataset


class RecordingDataset(RoiDataset):
    """Records the rows of every batch it hands to Keras, pass by pass."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passes: list[list[tuple[int, int, list[int]]]] = []

    def _pass_batches(self, *args):
        record: list[tuple[int, int, list[int]]] = []
        self.passes.append(record)
        for number, batch, rows in super()._pass_batches(*args):
            record.append((self.current_pass.start.epoch, number, rows.tolist()))
            yield number, batch, rows


class TrainedRows(keras.callbacks.Callback):
    """Marks where training starts: passes served before it were fit's model-building peek."""

    def __init__(self, ds):
        super().__init__()
        self.ds = ds

    def on_train_begin(self, logs=None):
        self.ds.passes.clear()


def model_for(ds: RoiDataset) -> keras.Model:
    inputs = keras.Input((*ds.image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = [keras.layers.Dense(v.num_classes, activation="softmax", name=c)(x)
               for c, v in ds.vocabularies.items()]
    model = keras.Model(inputs, outputs)
    model.compile("adam", ["categorical_crossentropy"] * len(outputs))
    return model


def dataset(table, folder, **kwargs):
    kwargs = {"image_size": (16, 16), "batch_size": 3, "seed": 5, **kwargs}
    return RecordingDataset(table, image_dir=folder, **kwargs)


@pytest.mark.parametrize(("workers", "processes"), [(0, False), (2, False), (2, True)])
def test_fit_trains_with_every_worker_mode(scenes, workers, processes):
    table, folder = scenes
    train = dataset(table, folder, workers=workers, use_multiprocessing=processes)
    val = dataset(table, folder, shuffle=False, vocabularies=train.vocabularies)
    history = model_for(train).fit(train, validation_data=val, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["val_loss"]).all()
    assert train.epoch == 2 and val.epoch == 2


def test_fit_sees_every_row_exactly_once_per_epoch(scenes):
    table, folder = scenes
    train = dataset(table, folder, workers=2, max_queue_size=3)
    model_for(train).fit(train, epochs=3, verbose=0)
    full = [p for p in train.passes if len(p) == len(train)]
    assert [p[0][0] for p in full] == [0, 1, 2]
    for record in full:
        rows = sorted(r for _, _, batch_rows in record for r in batch_rows)
        assert rows == list(range(len(train.index)))
    # The only other pass, if any, is fit's one-batch peek to build the model.
    assert [len(p) for p in train.passes if len(p) != len(train)] in ([], [1])


def test_two_fits_with_the_same_seed_see_the_same_batches_in_order(scenes):
    table, folder = scenes
    runs = []
    for _ in range(2):
        train = dataset(table, folder, seed=9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model_for(train).fit(train, epochs=2, shuffle=True, verbose=0)  # fit's default
        runs.append(train.passes)
    assert runs[0] == runs[1]
    other = dataset(table, folder, seed=10)
    model_for(other).fit(other, epochs=2, verbose=0)
    assert other.passes != runs[0]


def test_steps_per_epoch_continues_the_data_epoch(scenes):
    table, folder = scenes
    train = dataset(table, folder, batch_size=3)  # 4 batches per data epoch
    model_for(train).fit(train, epochs=4, steps_per_epoch=2, verbose=0,
                         callbacks=[TrainedRows(train)])
    served = [(e, n) for p in train.passes for e, n, _ in p]
    assert served == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert train.epoch == 2


@pytest.mark.parametrize("batch_size", [12, 6, 5])  # one, two and three batches per epoch
def test_small_epochs_train_exactly_the_planned_rows_each_epoch(scenes, batch_size):
    table, folder = scenes
    train = dataset(table, folder, batch_size=batch_size)
    model_for(train).fit(train, epochs=3, verbose=0, callbacks=[TrainedRows(train)])
    trained = [[r for _, _, rows in record for r in rows] for record in train.passes]
    assert trained == [train.plan(e).order.tolist() for e in range(3)]
    assert train.epoch == 3


def test_evaluate_and_predict_cover_every_row_in_order(scenes):
    table, folder = scenes
    ds = dataset(table, folder, shuffle=False, batch_size=5)
    model = model_for(ds)
    results = model.evaluate(ds, return_dict=True, verbose=0)
    assert np.isfinite(results["loss"])
    assert [r for p in ds.passes for _, _, rows in p for r in rows][-12:] == list(range(12))
    unlabeled = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=5,
                           shuffle=False, y_cols=())
    predictions = model.predict(unlabeled, verbose=0)
    assert [len(p) for p in predictions] == [12, 12]
    # Row by row, in table order: a wrong order or a wrong crop gives other outputs.
    one_by_one = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=1,
                            shuffle=False, y_cols=())
    expected = [model.predict_on_batch(one_by_one[i][0]) for i in range(12)]
    for head in range(2):
        want = np.concatenate([np.asarray(e[head]) for e in expected])
        np.testing.assert_allclose(np.asarray(predictions[head]), want, rtol=1e-4, atol=1e-5)
    assert len({tuple(np.round(np.asarray(predictions[0][i]), 5)) for i in range(12)}) > 1


def test_sample_weights_reach_the_loss(scenes):
    table, folder = scenes
    zero = {"name": dict.fromkeys(["red", "green", "blue", "white"], 0.0),
            "type": {"dark": 0.0, "light": 0.0}}
    ds = dataset(table, folder, class_weight=zero)
    model = model_for(ds)
    before = [w.copy() for w in model.get_weights()]
    model.compile("sgd", ["categorical_crossentropy"] * 2)
    model.fit(ds, epochs=1, verbose=0)
    # Every sample weighs 0: the loss is 0 and no weight moves.
    assert all(np.allclose(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="get_torch_dataloader is the torch backend's hook")
def test_torch_batches_are_the_decoded_arrays_not_copies(scenes, monkeypatch):
    import torch

    table, folder = scenes
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=5, seed=3)
    yielded = []
    original = RoiDataset.iter_batches

    def recording(self):
        for batch in original(self):
            yielded.append(batch)
            yield batch

    monkeypatch.setattr(RoiDataset, "iter_batches", recording)
    tensors = list(ds.get_torch_dataloader())
    assert len(tensors) == len(yielded) == len(ds)
    for (x, heads), (array, arrays) in zip(tensors, yielded):
        assert isinstance(x, torch.Tensor) and x.data_ptr() == array.ctypes.data
        assert [h.data_ptr() for h in heads] == [a.ctypes.data for a in arrays]
