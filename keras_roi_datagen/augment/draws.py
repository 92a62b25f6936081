"""Drawing every row's parameters for one epoch: `draw`, `PARAMETERS`, `parameters_of`.

The columns are the op table's (`ops.OPS`): each op's columns, box space ops
first (`ops.PIPELINE`). `draw` asks Philox only for the streams of the ops
that are on, and fills the columns of the others with their identity values.
"""

from __future__ import annotations

import numpy as np

from keras_roi_datagen.augment.ops import OPS, PIPELINE, Augmentation
from keras_roi_datagen.augment.philox import uniforms

__all__ = ["COLUMN", "PARAMETERS", "draw", "parameters_of"]

PARAMETERS = tuple(name for op in PIPELINE for name in op.columns)
"""Columns of the per-row parameter array `draw` returns (identity values when an op is off)."""

COLUMN = {name: k for k, name in enumerate(PARAMETERS)}
"""Each parameter's column in `draw`'s result, by name."""

_IDENTITY = np.array([identity for op in PIPELINE for identity in op.columns.values()],
                     dtype=np.float64)


def draw(augmentation: Augmentation, seed: int, epoch: int, rows: np.ndarray) -> np.ndarray:
    """Draws every row's parameters for one epoch.

    Args:
        augmentation: The options.
        seed: The dataset's seed.
        epoch: The epoch.
        rows: Index rows (the plan's row ids, not positions in a batch).

    Returns:
        `(len(rows), len(PARAMETERS))` `float64` array; see `PARAMETERS`.

    Example:
    >>> a = draw(Augmentation(zoom=(0.5, 2.0)), seed=1, epoch=0, rows=np.array([3, 4]))
    >>> b = draw(Augmentation(zoom=(0.5, 2.0)), seed=1, epoch=0, rows=np.array([4]))
    >>> bool(a[1, 0] == b[0, 0])
    True
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.repeat(_IDENTITY[None], len(rows), axis=0)
    if len(rows) == 0:
        return out
    on = [op for op in OPS if getattr(augmentation, op.option)]
    drawn = uniforms(seed, epoch, rows, sorted({s for op in on for s in op.streams}))
    for op in on:
        columns = op.draw(getattr(augmentation, op.option), tuple(drawn[s] for s in op.streams))
        for name, values in columns.items():
            out[:, COLUMN[name]] = values
    return out


def parameters_of(params: np.ndarray) -> dict[str, float]:
    """Names one row's parameter vector (a row of `draw`'s result).

    Args:
        params: One row of `draw`'s result.

    Returns:
        Each parameter by name, in the order of `PARAMETERS`.

    Example:
    >>> parameters_of(draw(Augmentation(), seed=0, epoch=0, rows=np.arange(1))[0])["contrast"]
    1.0
    """
    return {name: float(params[k]) for k, name in enumerate(PARAMETERS)}
