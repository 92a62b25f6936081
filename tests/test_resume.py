"""Exact resume: stop mid-epoch, restart the process, continue with the batches that were next."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import scene_table

from keras_roi_datagen import RoiDataset, StateMismatchError
from keras_roi_datagen.callbacks import DatasetCheckpoint

HERE = Path(__file__).parent
MODES = {"workers=0": (0, False), "threads": (2, False), "processes": (2, True)}

# Runs in a fresh interpreter: builds the dataset, optionally restores a state,
# serves batches up to a stop point (epoch, batch), prints one digest per batch.
STREAM = """
import hashlib, json, sys
sys.path.insert(0, {tests!r})
from conftest import scene_table
from keras_roi_datagen import RoiDataset
folder, workers, processes, stop, state_in, state_out = sys.argv[1:7]
ds = RoiDataset(scene_table(__import__("pathlib").Path(folder), n_images=4), image_dir=folder,
                image_size=(16, 16), batch_size=3, seed=77, workers=int(workers),
                use_multiprocessing=processes == "1")
if state_in != "-":
    ds.set_state(json.loads(open(state_in).read()))
stop_epoch, stop_batch = map(int, stop.split(","))
while (ds.epoch, ds.get_state()["rows"]) < (stop_epoch, 3 * stop_batch):
    for number, batch, rows in ds._pass_batches():
        h = hashlib.sha256(batch[0].tobytes() + batch[1][0].tobytes() + batch[1][1].tobytes())
        print(ds.epoch, number, h.hexdigest(), flush=True)
        if (ds.epoch, number + 1) == (stop_epoch, stop_batch):
            break
    else:
        ds.on_epoch_end()
        continue
    break
if state_out != "-":
    open(state_out, "w").write(json.dumps(ds.get_state()))
"""


def stream(tmp_path, mode, stop, state_in="-", state_out="-"):
    script = tmp_path / "stream.py"
    script.write_text(STREAM.format(tests=str(HERE)))
    workers, processes = MODES[mode]
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(workers), str(int(processes)), stop,
         str(state_in), str(state_out)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return [tuple(line.split()) for line in out.stdout.splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_two_processes_with_a_saved_state_equal_one_uninterrupted_run(tmp_path, mode):
    scene_table(tmp_path, n_images=4)  # 16 rows, 6 batches of 3
    whole = stream(tmp_path, mode, "3,0")
    state = tmp_path / "state.json"
    first = stream(tmp_path, mode, "2,3", state_out=state)  # 2.5 epochs
    assert json.loads(state.read_text())["rows"] == 9  # 3 batches of 3
    second = stream(tmp_path, mode, "3,0", state_in=state)
    assert first + second == whole
    assert len(whole) == 18


def make(folder, **kwargs):
    kwargs = {"image_size": (16, 16), "batch_size": 3, "seed": 1, **kwargs}
    return RoiDataset(scene_table(folder), image_dir=folder, **kwargs)


def test_state_is_json_and_names_the_position(tmp_path):
    ds = make(tmp_path)
    batches = ds.iter_batches()
    next(batches), next(batches)
    state = json.loads(json.dumps(ds.get_state()))
    assert (state["epoch"], state["rows"], state["seed"]) == (0, 6, 1)
    list(batches)
    assert (ds.get_state()["epoch"], ds.get_state()["rows"]) == (1, 0)


def test_restoring_into_another_table_or_options_names_what_differs(tmp_path):
    state = make(tmp_path).get_state()
    with pytest.raises(StateMismatchError, match=r"batch_size: saved 3, this dataset 4"):
        make(tmp_path, batch_size=4).set_state(state)
    with pytest.raises(StateMismatchError, match=r"seed: saved 1, this dataset 2"):
        make(tmp_path, seed=2).set_state(state)
    other = scene_table(tmp_path / "other", n_images=2)
    with pytest.raises(StateMismatchError, match=r"rows: saved 12, this dataset 8.*table"):
        RoiDataset(other, image_dir=tmp_path / "other", image_size=(16, 16), batch_size=3,
                   seed=1).set_state(state)


def test_a_dataset_with_a_random_seed_adopts_the_saved_seed(tmp_path):
    state = make(tmp_path, seed=5).get_state()
    ds = make(tmp_path, seed=None)
    ds.set_state(state)
    assert ds.seed == 5


# Trains with the checkpoint callbacks; logs the rows of every batch handed to
# fit; kills itself (SIGKILL) after training batch `kill_at` of epoch `kill_epoch`.
FIT = """
import json, os, signal, sys, keras
sys.path.insert(0, {tests!r})
from conftest import scene_table
from keras_roi_datagen import RoiDataset
from keras_roi_datagen.callbacks import DatasetCheckpoint
folder, log, kill_epoch, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

class Logged(RoiDataset):
    def _pass_batches(self, *args):
        for number, batch, rows in super()._pass_batches(*args):
            with open(log, "a") as out:
                out.write(json.dumps([self.current_pass.start.epoch, number, rows.tolist()]) + "\\n")
            yield number, batch, rows

ds = Logged(scene_table(__import__("pathlib").Path(folder), n_images=4), image_dir=folder,
            image_size=(16, 16), batch_size=2, seed=3, workers=2, use_multiprocessing=True)

with open(log, "a") as out:
    out.write(json.dumps(["start"]) + "\\n")

class Kill(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        with open(log, "a") as out:  # batches served before this were fit's model-building peek
            out.write(json.dumps(["train"]) + "\\n")
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        with open(log, "a") as out:
            out.write(json.dumps(["step"]) + "\\n")
        if self.epoch == kill_epoch and batch == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

inputs = keras.Input((16, 16, 3))
x = keras.layers.Flatten()(inputs)
model = keras.Model(inputs, [keras.layers.Dense(4)(x), keras.layers.Dense(2)(x)])
model.compile("sgd", ["mse", "mse"])
model(keras.ops.zeros((1, 16, 16, 3)))  # BackupAndRestore needs a built model
backup = os.path.join(folder, "backup")
model.fit(ds, epochs=3, verbose=0, callbacks=[
    keras.callbacks.BackupAndRestore(backup, save_freq=1),
    DatasetCheckpoint(ds, backup, save_freq=1), Kill()])
print("FINISHED", ds.epoch)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("kill_epoch", "kill_at"), [(0, 0), (0, 5), (1, 4), (2, 6)])
def test_fit_killed_mid_epoch_and_resumed_sees_every_row_once(tmp_path, kill_epoch, kill_at):
    scene_table(tmp_path, n_images=4)  # 16 rows: 8 batches of 2
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(FIT.format(tests=str(HERE))))
    log = tmp_path / "rows.log"
    killed = subprocess.run([sys.executable, str(script), str(tmp_path), str(log), str(kill_epoch),
                             str(kill_at)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path), str(log), "-1", "-1"],
                             capture_output=True, text=True, timeout=300)
    assert "FINISHED 3" in resumed.stdout, resumed.stderr[-3000:]
    assert "ran out of data" not in resumed.stderr
    # Per process: batches served after on_train_begin (before it: fit's peek
    # to build the model), of which the first as many as trained steps were
    # trained (a backend may have pulled one more before the kill).
    by_epoch: dict[int, list[int]] = {}
    segments: list[tuple[list, int]] = []
    for entry in map(json.loads, log.read_text().splitlines()):
        if entry[0] == "start":
            segments.append(([], 0))
        elif entry[0] == "train":
            segments[-1] = ([], 0)
        elif entry[0] == "step":
            segments[-1] = (segments[-1][0], segments[-1][1] + 1)
        else:
            segments[-1][0].append(entry)
    for served, steps in segments:
        for epoch, _, rows in served[:steps]:
            by_epoch.setdefault(epoch, []).extend(rows)
    # The killed epoch was cut after kill_at + 1 trained batches; its rows still come exactly once.
    for epoch in (0, 1, 2):
        assert sorted(by_epoch[epoch]) == list(range(16)), (epoch, by_epoch[epoch])
    assert not (tmp_path / "backup").exists()  # both callbacks clean up after a finished fit


def test_checkpoint_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="save_freq"):
        DatasetCheckpoint(make(tmp_path), tmp_path, save_freq=0)


def test_state_survives_the_checkpoint_file_format(tmp_path):
    ds = make(tmp_path)
    callback = DatasetCheckpoint(ds, tmp_path / "ckpt", save_freq=1)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    next(ds.iter_batches())  # the step Keras trains
    callback.on_train_batch_end(0)
    saved = json.loads((tmp_path / "ckpt" / "dataset_state.json").read_text())
    assert (saved["epoch"], saved["rows"]) == (0, 3)
    fresh = make(tmp_path)
    fresh.set_state(saved)
    digest = hashlib.sha256(next(fresh.iter_batches())[0].tobytes()).hexdigest()
    ds.set_state(saved)
    assert digest == hashlib.sha256(next(ds.iter_batches())[0].tobytes()).hexdigest()
    assert os.listdir(tmp_path / "ckpt") == ["dataset_state.json"]
