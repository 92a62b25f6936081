"""Keras callbacks: `DatasetCheckpoint`, exact resume of a `RoiDataset`.

Keras's `BackupAndRestore` brings back the model and the epoch number after a
kill, but a data loader would start that epoch over: early batches twice,
later ones never. A `RoiDataset`'s order is a pure function of
`(seed, epoch)`, so its position is two integers. `DatasetCheckpoint` saves
them (with a fingerprint of the table and options) and restores them when
`fit` starts again, so the interrupted epoch goes on with exactly the batches
that were next.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras

from keras_roi_datagen.dataset import RoiDataset
from keras_roi_datagen.planning import PassInfo
from keras_roi_datagen.sharding import is_primary_host

__all__ = ["DatasetCheckpoint"]

_STATE_FILE = "dataset_state.json"
_RAN_OUT = "Your input ran out of data"


class DatasetCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
    """Saves a `RoiDataset`'s position during `fit` and restores it on restart.

    Put it in `callbacks` after `keras.callbacks.BackupAndRestore(backup_dir,
    save_freq=...)` with the same `directory` and `save_freq`: the model, the
    epoch and the data position are then saved together and restored
    together. It also works alone (the data position only).

    The position saved is the batches the model has *trained on* (counted from
    `fit`'s own step numbers and mapped onto the dataset's position), not those
    decoded ahead or peeked at to build the model, so a kill between two saves
    loses no row and repeats no row beyond that interval.

    With several hosts, every host computes the same state and host 0 writes
    it (put `directory` on storage all hosts share). The state counts global
    rows, so a run may resume on another number of hosts.

    On resume, the interrupted epoch serves only its remaining batches, so
    Keras sees that epoch end early; the "ran out of data" warning Keras
    prints then is expected and silenced for that epoch.

    With `steps_per_epoch` shorter than `len(dataset)`, a Keras epoch is a part
    of a pass over the data: the next Keras epoch (and a resumed run)
    continues where the last one stopped, and the data epoch (the shuffle)
    advances when every batch of it has been served.

    Args:
        dataset: The training `RoiDataset`.
        directory: Folder of the state file (`dataset_state.json`).
        save_freq: `"epoch"` (default) or a number of training steps.
        delete_on_end: Remove the state file when `fit` completes, as
            `BackupAndRestore` removes its backup. Defaults to `True`.

    Example:
    ```python
    callbacks = [
        keras.callbacks.BackupAndRestore("backup", save_freq=100),
        DatasetCheckpoint(train, "backup", save_freq=100),
    ]
    model.fit(train, epochs=10, callbacks=callbacks)  # rerun the same line after a kill
    ```
    """

    def __init__(self, dataset: RoiDataset, directory: str | os.PathLike[str],
                 save_freq: str | int = "epoch", delete_on_end: bool = True) -> None:
        super().__init__()
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(
                f"`save_freq` must be 'epoch' or a positive integer. Received: save_freq={save_freq!r}")
        self.dataset = dataset
        self.path = Path(directory) / _STATE_FILE
        self.save_freq = save_freq
        self.delete_on_end = delete_on_end
        # The pass being trained and the steps trained in it: the dataset maps
        # them onto its position (`position_after`); nothing else is counted here.
        self._pass: PassInfo | None = None
        self._trained = 0
        self._last_step = -1
        self._since_save = 0
        self._quiet: warnings.catch_warnings[None] | None = None

    def _state(self) -> dict[str, Any]:
        state = self.dataset.get_state()
        if self._pass is not None:
            position = self.dataset.position_after(self._pass.start, self._trained)
            state.update(epoch=position.epoch, rows=position.rows)
        return state

    def _save(self) -> None:
        if not is_primary_host(self.dataset.shard):
            return  # every host computes the same state; host 0 writes it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(self._state(), out)
        os.replace(temporary, self.path)  # atomic: a kill never leaves half a file

    # -- Keras hooks ----------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Restores the saved position, if a state file exists."""
        self._pass, self._trained = None, 0
        if self.path.exists():
            saved = json.loads(self.path.read_text())
            self.dataset.set_state(saved)
            if self.dataset.position.rows > 0:
                self._quiet = warnings.catch_warnings()
                self._quiet.__enter__()
                warnings.filterwarnings("ignore", message=_RAN_OUT)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Keras numbers steps from 0 again in every epoch."""
        self._last_step = -1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Counts trained steps of the current pass; saves every `save_freq` of them."""
        current = self.dataset.current_pass
        if current is not None and (self._pass is None or current.number != self._pass.number):
            self._pass, self._trained = current, 0
        done = batch - self._last_step
        self._last_step = batch
        self._trained += done
        self._since_save += done
        if isinstance(self.save_freq, int) and self._since_save >= self.save_freq:
            self._since_save = 0
            self._save()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Saves when `save_freq="epoch"`."""
        if self._quiet is not None:
            self._quiet.__exit__(None, None, None)
            self._quiet = None
        if self.save_freq == "epoch":
            self._save()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Removes the state file when training completed."""
        if self.delete_on_end and self.path.exists() and not self.model.stop_training:
            self.path.unlink()
