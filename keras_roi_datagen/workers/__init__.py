"""Executors that decode batches: in the caller, in threads, or in processes.

`RoiDataset` does its own parallelism instead of Keras's `OrderedEnqueuer`
(see `dataset.py` for why). It asks `make_executor` for one executor, starts
it lazily on its first pass and keeps it across passes (epochs, validation
passes, `fit`'s model-building peek) until `RoiDataset.close()`, a `with`
block, garbage collection or interpreter exit. It submits `BatchJob`s to an
`InlineExecutor` (`workers <= 1`), a `ThreadExecutor` (`workers >= 2`) or a
`ProcessExecutor` (`use_multiprocessing=True`), each pass through its own
`PassExecutor`.

Modules: `executors` (the executors and the choice among them), `pool` (the
thread pool they share, their errors and exit hook), `processes` (worker
processes and their handles), `protocol` (both ends of the worker pipe and
its shared-memory buffer), `__main__` (the worker's entry point,
`python -m keras_roi_datagen.workers`).
"""

from keras_roi_datagen.workers.executors import (
    BatchExecutor,
    InlineExecutor,
    PassExecutor,
    ThreadExecutor,
    make_executor,
)
from keras_roi_datagen.workers.pool import worker_error
from keras_roi_datagen.workers.processes import ProcessExecutor

__all__ = ["BatchExecutor", "InlineExecutor", "PassExecutor", "ProcessExecutor", "ThreadExecutor",
           "make_executor", "worker_error"]
