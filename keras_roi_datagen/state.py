"""The saved iteration state of a dataset: what `get_state` writes and `set_state` accepts.

A state is JSON-able: `{"version", "seed", "epoch", "rows", "config"}`. The
plan is a pure function of `(seed, epoch)`, and `rows` counts the epoch's
global rows consumed by all hosts together, so a state means the same on any
number of hosts. `config` records the table's fingerprint and every option
that changes batches, so a state that belongs to another dataset is refused
with what differs.

States of version 1 (`(epoch, next_batch)` on one layout of hosts) and
states saved before an option existed still load.

Example:
```python
state = ds.get_state()            # {"version": 2, "seed": 1, "epoch": 3, "rows": 96, ...}
RoiDataset(...).set_state(state)  # the next pass starts at epoch 3, row 96
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keras_roi_datagen.errors import StateMismatchError
from keras_roi_datagen.planning import Position

__all__ = ["STATE_VERSION", "batch_config", "make_state", "restore"]

STATE_VERSION = 2
# Options recorded only when not at their default, so states saved before they existed still load.
_OPTIONAL = {"augment": None, "aspect_ratio": "squash", "border": "constant"}


def batch_config(required: Mapping[str, Any], **optional: Any) -> dict[str, Any]:
    """Returns the `config` of a state: every batch-changing option.

    Args:
        required: The options every state records.
        **optional: `augment`, `aspect_ratio` and `border`, recorded only when
            not at their default.

    Returns:
        The config, JSON-able.
    """
    return {**required, **{key: value for key, value in optional.items() if value != _OPTIONAL[key]}}


def make_state(seed: int, position: Position, config: Mapping[str, Any]) -> dict[str, Any]:
    """Returns the state of a dataset at `position`.

    Args:
        seed: The dataset's seed.
        position: Where iteration stands.
        config: Its `batch_config`.

    Returns:
        `{"version", "seed", "epoch", "rows", "config"}`.
    """
    return {"version": STATE_VERSION, "seed": seed, "epoch": position.epoch, "rows": position.rows,
            "config": dict(config)}


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def restore(state: Mapping[str, Any], config: Mapping[str, Any], *, seed: int | None,
            rows: int) -> tuple[int, Position]:
    """Checks a saved state against a dataset and returns where it continues.

    Args:
        state: What `get_state()` returned (possibly in another process,
            with another number of hosts, or by an older release).
        config: The dataset's own `batch_config`.
        seed: The dataset's seed when it was given explicitly (a saved state
            must have the same), or `None` (it takes the saved one).
        rows: Rows of the dataset's epoch.

    Returns:
        `(seed, position)`: the seed to use, and the position the next pass
        starts at (the next epoch when the saved one was consumed).

    Raises:
        StateMismatchError: If the state was saved for another table or with
            options that change batches; the message names them.
    """
    saved = dict(state.get("config", {}))
    if state.get("version", 1) == 1:  # saved as (epoch, next_batch) on one layout of hosts
        hosts = int((saved.pop("shard", None) or [0, 1])[1])
        consumed = int(state["next_batch"]) * int(saved.get("batch_size", 0)) * hosts
        saved.setdefault("data_format", "channels_last")
    else:
        consumed = int(state["rows"])
    saved.setdefault("shuffle_window", 0)  # saved before windows existed: rows shuffled alone
    keys = [*config, *(k for k in _OPTIONAL if k in saved and k not in config)]
    differs = [key for key in keys if saved.get(key) != config.get(key)]
    if seed is not None and state.get("seed") != seed:
        differs.append("seed")
    if differs:
        details = "; ".join(
            f"{k}: saved {_brief(saved.get(k) if k != 'seed' else state.get('seed'))}, "
            f"this dataset {_brief(config.get(k) if k != 'seed' else seed)}"
            for k in differs)
        raise StateMismatchError(
            f"The saved iteration state does not fit this dataset ({details}). Build the "
            "dataset from the same table with the same batch-changing options.")
    epoch = int(state["epoch"])
    return int(state["seed"]), Position(epoch + 1, 0) if consumed >= rows else Position(epoch, consumed)
