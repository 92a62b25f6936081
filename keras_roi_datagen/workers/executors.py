"""The executors a dataset decodes through, and the choice among them.

- `InlineExecutor` (`workers <= 1`, no multiprocessing): decodes in the
  calling thread, as Keras does for `workers=1`.
- `ThreadExecutor` (`workers >= 2`): `workers` daemon threads. Pillow and the
  region decoder release the GIL while decoding and resizing, so threads
  scale on CPU-bound JPEG work.
- `ProcessExecutor` (`use_multiprocessing=True`, in `workers.processes`).

Each pass submits through its own `PassExecutor`; when the pass ends early it
cancels the jobs *it* queued that have not started (jobs being decoded
finish into futures nobody reads). Futures belong to the pass that submitted
them, so no batch of a cut-short pass can reach the next one, and a pass
closed late (by the garbage collector) cannot cancel a newer pass's jobs.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Protocol

from keras_roi_datagen.decode import BatchJob, BatchResult, decode_batch
from keras_roi_datagen.workers.pool import JobPool, close_at_exit
from keras_roi_datagen.workers.processes import ProcessExecutor

__all__ = ["BatchExecutor", "InlineExecutor", "PassExecutor", "ThreadExecutor", "make_executor"]


class BatchExecutor(Protocol):
    """Runs `BatchJob`s; `close()` releases its threads or processes."""

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Starts decoding `job`.

        Args:
            job: The `BatchJob`.

        Returns:
            The future of its `BatchResult` (or of the error that stopped it).
        """

    def cancel_pending(self) -> None:
        """Cancels the jobs not started yet (a pass ended early)."""

    def close(self) -> None:
        """Stops the workers; pending jobs are abandoned."""


class InlineExecutor:
    """Decodes in the calling thread when the result is asked for."""

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Decodes `job` now and returns a completed future.

        Args:
            job: The `BatchJob`.

        Returns:
            A done future holding its `BatchResult`.
        """
        future: Future[BatchResult] = Future()
        future.set_result(decode_batch(job))
        return future

    def cancel_pending(self) -> None:
        """Nothing is ever pending."""

    def close(self) -> None:
        """Nothing to release."""


class ThreadExecutor:
    """Decodes in `workers` threads that live until `close()`.

    Args:
        workers: Number of threads.
    """

    def __init__(self, workers: int) -> None:
        self._pool = JobPool(workers, lambda _slot, job: decode_batch(job), "roi-decode")
        close_at_exit(self)

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Queues `job` for the next free thread.

        Args:
            job: The `BatchJob`.

        Returns:
            The future of its `BatchResult`.
        """
        return self._pool.submit(job)

    def cancel_pending(self) -> None:
        """Cancels the jobs no thread has started."""
        self._pool.cancel_pending()

    def close(self) -> None:
        """Cancels queued jobs; running ones finish in the background."""
        self._pool.close()


class PassExecutor:
    """One pass's view of a shared executor: it can cancel what this pass queued.

    Args:
        executor: The dataset's executor.
    """

    def __init__(self, executor: BatchExecutor) -> None:
        self.executor = executor
        self._waiting: set[Future[BatchResult]] = set()
        self._lock = threading.Lock()

    def _forget(self, future: Future[BatchResult]) -> None:
        with self._lock:
            self._waiting.discard(future)

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Submits `job` to the shared executor and remembers it until done.

        Args:
            job: The `BatchJob`.

        Returns:
            The future of its `BatchResult`.
        """
        future = self.executor.submit(job)
        with self._lock:
            self._waiting.add(future)
        future.add_done_callback(self._forget)
        return future

    def cancel_pending(self) -> None:
        """Cancels this pass's jobs that no worker has started."""
        with self._lock:
            waiting = list(self._waiting)
        for future in waiting:
            future.cancel()

    def close(self) -> None:
        """Ends the pass (the shared executor stays)."""
        self.cancel_pending()


def make_executor(workers: int, use_multiprocessing: bool, timeout: float | None) -> BatchExecutor:
    """Returns the executor for Keras-style `workers` / `use_multiprocessing`.

    Args:
        workers: Number of workers; `0` or `1` without multiprocessing decodes
            in the calling thread.
        use_multiprocessing: Whether to decode in worker processes.
        timeout: Per-batch timeout for worker processes.

    Returns:
        A `BatchExecutor`.
    """
    if use_multiprocessing and workers >= 1:
        return ProcessExecutor(workers, timeout)
    if workers >= 2:
        return ThreadExecutor(workers)
    return InlineExecutor()
