"""Deprecated: the decode worker moved to `keras_roi_datagen.workers` (goes in a later release).

`python -m keras_roi_datagen.worker FD` still runs a worker (the same `main`
as `python -m keras_roi_datagen.workers FD`, which the executors start now),
and the protocol names this module had are re-exported from
`keras_roi_datagen.workers.protocol`. Importing it warns once per process.
"""

from __future__ import annotations

import warnings

from keras_roi_datagen.workers.__main__ import main
from keras_roi_datagen.workers.protocol import HEADER, read_exactly, serve

__all__ = ["HEADER", "main", "read_exactly", "serve"]

warnings.warn("`keras_roi_datagen.worker` is deprecated; run `python -m keras_roi_datagen.workers` "
              "and import from `keras_roi_datagen.workers.protocol`.",
              DeprecationWarning, stacklevel=2)

if __name__ == "__main__":
    main()
