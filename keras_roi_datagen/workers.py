"""Executors that decode batches: in the caller, in threads, or in processes.

`RoiDataset` does its own parallelism instead of Keras's `OrderedEnqueuer`
(see `dataset.py` for why). It asks `make_executor` for one executor per pass
over the data and submits `BatchJob`s to it:

- `InlineExecutor` (`workers <= 1`, no multiprocessing): decodes in the
  calling thread, as Keras does for `workers=1`.
- `ThreadExecutor` (`workers >= 2`): a thread pool. Pillow releases the GIL
  while decoding and resizing, so threads scale on CPU-bound JPEG work.
- `ProcessExecutor` (`use_multiprocessing=True`): `workers` fresh worker
  interpreters (`keras_roi_datagen.worker`), started with `subprocess`, never
  forked from the training process. A worker that dies (even by SIGKILL) turns
  into a `WorkerError` at once, because its pipe closes; a worker that stops
  answering for `timeout` seconds is killed and reported. Workers exit when
  their pipe closes, so none outlive the executor or the training process.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import threading
import traceback
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import numpy as np

from keras_roi_datagen.errors import Problem, WorkerError
from keras_roi_datagen.imaging import BatchJob, BatchResult, decode_batch
from keras_roi_datagen.worker import HEADER, read_exactly

__all__ = ["BatchExecutor", "InlineExecutor", "ProcessExecutor", "ThreadExecutor", "make_executor"]

_LIVE: weakref.WeakSet[BatchExecutor] = weakref.WeakSet()


class BatchExecutor(Protocol):
    """Runs `BatchJob`s; `close()` releases its threads or processes."""

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Starts decoding `job`; the future holds its `BatchResult`."""

    def close(self) -> None:
        """Stops the workers; pending jobs are abandoned."""


def worker_error(kind: str, message: str, details: str | None = None) -> WorkerError:
    """Builds a `WorkerError` carrying one problem."""
    return WorkerError.from_problems([Problem(kind, message, details=details)])


class InlineExecutor:
    """Decodes in the calling thread when the result is asked for."""

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Decodes `job` now and returns a completed future."""
        future: Future[BatchResult] = Future()
        future.set_result(decode_batch(job))
        return future

    def close(self) -> None:
        """Nothing to release."""


class ThreadExecutor:
    """Decodes in a pool of `workers` threads.

    Args:
        workers: Number of threads.
    """

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="roi-decode")
        _LIVE.add(self)

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Queues `job` on the pool."""
        return self._pool.submit(decode_batch, job)

    def close(self) -> None:
        """Cancels queued jobs and lets running ones finish in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class _WorkerProcess:
    """One worker interpreter and its pipes; used by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The child must import this package exactly as the parent does,
        # including from a source checkout that is not installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_roi_datagen.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def describe_exit(self) -> str:
        code = self.process.poll()
        if code is None:
            return "stopped answering"
        if code < 0:
            try:
                return f"was killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with status {code}"

    def call(self, job: BatchJob, timeout: float | None) -> BatchResult:
        assert self.process.stdin is not None and self.process.stdout is not None
        blob = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.process.stdin.write(HEADER.pack(len(blob)) + blob)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died(job)
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.kill()
            raise worker_error(
                "worker_timeout",
                f"decode worker process {self.pid} gave no answer within {timeout} s "
                f"(batch of {len(job.path_index)} rows from {len(job.paths)} images, first "
                f"{job.paths[0] if job.paths else '-'}); it was stopped. Raise `worker_timeout` "
                "if such batches are legitimately slow.",
            )
        size = read_exactly(self.process.stdout, HEADER.size)
        header = read_exactly(self.process.stdout, HEADER.unpack(size)[0]) if size else None
        if header is None:
            return self._died(job)
        reply = pickle.loads(header)
        if reply[0] == "error":
            raise worker_error(
                "worker_exception",
                f"decode worker process {self.pid} raised while decoding images "
                f"{list(job.paths)[:3]}.", reply[1])
        _, shape, dtype, failures, image_sizes = reply
        pixels = np.empty(shape, dtype=np.dtype(dtype))
        view = pixels.data.cast("B")
        received = 0
        while received < len(view):
            count = self.process.stdout.readinto(view[received:])  # type: ignore[attr-defined]
            if not count:
                return self._died(job)
            received += count
        return BatchResult(pixels, failures, image_sizes)

    def _died(self, job: BatchJob) -> BatchResult:
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        raise worker_error(
            "worker_died",
            f"decode worker process {self.pid} {self.describe_exit()} while decoding "
            f"{len(job.path_index)} regions from {list(job.paths)[:3]}. If the system ran out "
            "of memory, lower `workers`, `batch_size` or `max_queue_size`.",
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self, wait: float) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


class ProcessExecutor:
    """Decodes in `workers` worker processes.

    Args:
        workers: Number of worker processes.
        timeout: Seconds to wait for one batch before the worker is declared
            hung; `None` waits forever.
    """

    def __init__(self, workers: int, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._workers = [_WorkerProcess() for _ in range(workers)]
        self._idle: queue.Queue[_WorkerProcess] = queue.Queue()
        for worker in self._workers:
            self._idle.put(worker)
        self._dispatch = ThreadPoolExecutor(workers, thread_name_prefix="roi-dispatch")
        self._closed = threading.Event()
        _LIVE.add(self)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [worker.pid for worker in self._workers]

    def _run(self, job: BatchJob) -> BatchResult:
        worker = self._idle.get()
        try:
            return worker.call(job, self.timeout)
        except WorkerError:
            if not self._closed.is_set() and worker.process.poll() is not None:
                # Keep the pool usable for whoever handles the error.
                replacement = _WorkerProcess()
                self._workers[self._workers.index(worker)] = replacement
                worker = replacement
            raise
        except Exception as exc:
            raise worker_error(
                "worker_exception", f"talking to decode worker {worker.pid} failed: {exc}",
                traceback.format_exc()) from exc
        finally:
            self._idle.put(worker)

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Queues `job` for the next idle worker."""
        return self._dispatch.submit(self._run, job)

    def close(self) -> None:
        """Closes the workers' pipes; they exit after their current batch."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._dispatch.shutdown(wait=False, cancel_futures=True)
        for worker in self._workers:
            worker.close(wait=2.0)


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


@atexit.register
def _close_all() -> None:
    for executor in list(_LIVE):
        executor.close()
