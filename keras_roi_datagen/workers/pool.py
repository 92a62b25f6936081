"""What the thread and process executors share: their thread pool, errors and exit hook.

Nothing here is created at import time except an empty weak set: no lock,
thread or process exists until an executor is built, so a fork of the user's
process inherits none.
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

from keras_roi_datagen.decode import BatchJob, BatchResult
from keras_roi_datagen.errors import Problem, WorkerError

__all__ = ["JobPool", "close_at_exit", "worker_error"]


class _Closable(Protocol):
    def close(self) -> None: ...


_LIVE: weakref.WeakSet[_Closable] = weakref.WeakSet()


def close_at_exit(executor: _Closable) -> None:
    """Closes `executor` at interpreter exit if it is still alive then.

    Args:
        executor: Anything with a `close()` method (held weakly).
    """
    _LIVE.add(executor)


@atexit.register
def _close_all() -> None:
    for executor in list(_LIVE):
        executor.close()


def worker_error(kind: str, message: str, details: str | None = None) -> WorkerError:
    """Builds a `WorkerError` carrying one problem.

    Args:
        kind: The problem kind (`"worker_died"`, `"worker_timeout"`, ...).
        message: What happened.
        details: The original traceback text, if any. Defaults to `None`.

    Returns:
        The `WorkerError`.
    """
    return WorkerError.from_problems([Problem(kind, message, details=details)])


_Item = tuple["Future[BatchResult]", BatchJob]


class JobPool:
    """`slots` daemon threads taking jobs from one queue; `run(slot, job)` does the work.

    Daemon threads, so a pool never delays interpreter exit (the atexit hook
    closes it first anyway).

    Args:
        slots: Number of threads.
        run: `(slot, job) -> BatchResult`, called in thread `slot`.
        name: Prefix of the threads' names.
    """

    def __init__(self, slots: int, run: Callable[[int, BatchJob], BatchResult], name: str) -> None:
        self._jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._run = run
        self.closed = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(slot,), daemon=True,
                                          name=f"{name}-{slot}") for slot in range(slots)]
        for thread in self._threads:
            thread.start()

    def _serve(self, slot: int) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = self._run(slot, job)
            except BaseException as exc:  # delivered to whoever waits on the batch
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, job, item

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Queues `job`; a closed pool's future holds a `WorkerError`.

        Args:
            job: The `BatchJob`.

        Returns:
            The future of its `BatchResult`.
        """
        future: Future[BatchResult] = Future()
        if self.closed.is_set():
            future.set_exception(worker_error("worker_closed", "the dataset's workers were "
                                              "closed (`close()` was called)."))
            return future
        self._jobs.put((future, job))
        return future

    def cancel_pending(self) -> None:
        """Cancels the jobs no thread has started."""
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return
            if item is None:  # closing: leave the stop marker for a thread
                self._jobs.put(None)
                return
            item[0].cancel()

    def close(self) -> None:
        """Cancels queued jobs and stops the threads after their current job."""
        if self.closed.is_set():
            return
        self.closed.set()
        self.cancel_pending()
        for _ in self._threads:
            self._jobs.put(None)
