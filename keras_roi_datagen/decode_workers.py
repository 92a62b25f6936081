"""The decode executors a dataset owns, from its first pass to `close()`.

`RoiDataset` decodes a pass on `workers` threads or worker processes (see
`workers/`). They are started on the first pass and kept for the next
ones (epochs, validation passes, `fit`'s model-building peek) until
`close()`, garbage collection or interpreter exit. `ds[i]` decodes in the
calling thread instead, through an executor made once as well. Both go
through the crop cache when there is one. Neither is pickled: workers
belong to the process that started them, and a copy starts its own.

Example:
```python
owned = DecodeWorkers(workers=2, use_multiprocessing=True, timeout=600.0)
executor = owned.for_passes()  # started now, kept
owned.close()
```
"""

from __future__ import annotations

import weakref
from typing import Any

from keras_roi_datagen.cache import CachingExecutor, CropStore
from keras_roi_datagen.workers import BatchExecutor, InlineExecutor, make_executor

__all__ = ["DecodeWorkers"]


class DecodeWorkers:
    """Starts a dataset's executors when first asked for, and keeps them until `close()`.

    Args:
        workers: Threads or processes (`0`/`1`: the calling thread).
        use_multiprocessing: Decode in worker processes.
        timeout: Seconds one batch may take before its worker is declared
            hung (`None`: forever).
        cache: The crop cache both executors read and fill. Defaults to
            `None`.
    """

    def __init__(self, workers: int, use_multiprocessing: bool, timeout: float | None,
                 cache: CropStore | None = None) -> None:
        self.workers, self.use_multiprocessing, self.timeout = workers, use_multiprocessing, timeout
        self.cache = cache
        self._passes: BatchExecutor | None = None
        self._inline: BatchExecutor | None = None
        self._finalizer: weakref.finalize | None = None

    def _cached(self, executor: BatchExecutor) -> BatchExecutor:
        return executor if self.cache is None else CachingExecutor(executor, self.cache)

    def for_passes(self) -> BatchExecutor:
        """Returns the executor of passes, started on the first call and kept until `close()`."""
        if self._passes is None:
            executor = self._cached(make_executor(self.workers, self.use_multiprocessing,
                                                  self.timeout))
            self._passes = executor
            self._finalizer = weakref.finalize(self, executor.close)
        return self._passes

    def inline(self) -> BatchExecutor:
        """Returns the executor of `ds[i]`: the calling thread, made on the first call and reused."""
        if self._inline is None:
            self._inline = self._cached(InlineExecutor())
        return self._inline

    @property
    def pids(self) -> list[int]:
        """Process ids of the worker processes (empty when none are running)."""
        return list(getattr(self._passes, "pids", []))

    def close(self) -> None:
        """Stops the workers; a later pass starts new ones."""
        executor, self._passes = self._passes, None
        if executor is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            executor.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_passes": None, "_inline": None, "_finalizer": None}
