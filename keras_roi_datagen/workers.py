"""Executors that decode batches: in the caller, in threads, or in processes.

`RoiDataset` does its own parallelism instead of Keras's `OrderedEnqueuer`
(see `dataset.py` for why). It asks `make_executor` for one executor, starts
it lazily on its first pass and keeps it across passes (epochs, validation
passes, `fit`'s model-building peek) until `RoiDataset.close()`, a `with`
block, garbage collection or interpreter exit. It submits `BatchJob`s:

- `InlineExecutor` (`workers <= 1`, no multiprocessing): decodes in the
  calling thread, as Keras does for `workers=1`.
- `ThreadExecutor` (`workers >= 2`): `workers` daemon threads. Pillow and the
  region decoder release the GIL while decoding and resizing, so threads
  scale on CPU-bound JPEG work.
- `ProcessExecutor` (`use_multiprocessing=True`): `workers` fresh worker
  interpreters (`keras_roi_datagen.worker`), started with `subprocess`, never
  forked from the training process. Each has a shared-memory buffer (an
  anonymous memory file, inherited as a file descriptor and mapped by both
  sides; it has no name, so nothing is left behind even after a SIGKILL) that
  the worker writes a batch's pixels into; the pipe carries only the small pickled job and reply
  header. A worker that dies (even by SIGKILL) turns into a `WorkerError` at
  once, because its pipe closes, and is replaced; a worker that stops
  answering for `timeout` seconds is killed and reported. Workers exit when
  their pipe closes or their parent process disappears, so none outlive the
  executor or the training process.

Each pass submits through its own `PassExecutor`; when the pass ends early it
cancels the jobs *it* queued that have not started (jobs being decoded
finish into futures nobody reads). Futures belong to the pass that submitted
them, so no batch of a cut-short pass can reach the next one, and a pass
closed late (by the garbage collector) cannot cancel a newer pass's jobs.
"""

from __future__ import annotations

import atexit
import contextlib
import mmap
import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol

import numpy as np

from keras_roi_datagen.decode import BatchJob, BatchResult, decode_batch, new_pixels
from keras_roi_datagen.errors import Problem, WorkerError
from keras_roi_datagen.worker import HEADER, read_exactly

__all__ = ["BatchExecutor", "InlineExecutor", "PassExecutor", "ProcessExecutor", "ThreadExecutor",
           "make_executor"]

_LIVE: weakref.WeakSet[BatchExecutor] = weakref.WeakSet()


class BatchExecutor(Protocol):
    """Runs `BatchJob`s; `close()` releases its threads or processes."""

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Starts decoding `job`; the future holds its `BatchResult`."""

    def cancel_pending(self) -> None:
        """Cancels the jobs not started yet (a pass ended early)."""

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

    def cancel_pending(self) -> None:
        """Nothing is ever pending."""

    def close(self) -> None:
        """Nothing to release."""


_Item = tuple["Future[BatchResult]", BatchJob]


class _Pool:
    """`slots` daemon threads taking jobs from one queue; `run(slot, job)` does the work.

    Daemon threads, so a pool never delays interpreter exit (the atexit hook
    closes it first anyway).
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
        future: Future[BatchResult] = Future()
        if self.closed.is_set():
            future.set_exception(worker_error("worker_closed", "the dataset's workers were "
                                              "closed (`close()` was called)."))
            return future
        self._jobs.put((future, job))
        return future

    def cancel_pending(self) -> None:
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
        if self.closed.is_set():
            return
        self.closed.set()
        self.cancel_pending()
        for _ in self._threads:
            self._jobs.put(None)


class ThreadExecutor:
    """Decodes in `workers` threads that live until `close()`.

    Args:
        workers: Number of threads.
    """

    def __init__(self, workers: int) -> None:
        self._pool = _Pool(workers, lambda _slot, job: decode_batch(job), "roi-decode")
        _LIVE.add(self)

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Queues `job` for the next free thread."""
        return self._pool.submit(job)

    def cancel_pending(self) -> None:
        """Cancels the jobs no thread has started."""
        self._pool.cancel_pending()

    def close(self) -> None:
        """Cancels queued jobs; running ones finish in the background."""
        self._pool.close()


def _anonymous_file() -> int:
    """A file descriptor of shared memory that has no name in any folder."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("roi-datagen-pixels")
    shared = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="roi-datagen-", suffix=".pixels", dir=shared)
    os.unlink(path)
    return fd


class _SharedBuffer:
    """Shared memory that a worker writes pixels into and the parent reads.

    An anonymous file (no name, so nothing can be left behind, whoever dies
    first), inherited by the worker as a file descriptor and mapped by both.
    It grows when a batch needs more room: the parent resizes it and tells
    the worker the new size with the next job.
    """

    def __init__(self) -> None:
        self.fd = _anonymous_file()
        self.size = 0
        self.map: mmap.mmap | None = None

    def fit(self, size: int) -> mmap.mmap:
        """Returns a mapping of at least `size` bytes."""
        if self.map is None or self.size < size:
            self.close_map()
            os.ftruncate(self.fd, size)
            self.map, self.size = mmap.mmap(self.fd, size), size
        return self.map

    def close_map(self) -> None:
        if self.map is not None:
            with contextlib.suppress(BufferError):  # a reader still holds a view; it goes with it
                self.map.close()
            self.map = None

    def close(self) -> None:
        self.close_map()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _WorkerProcess:
    """One worker interpreter, its pipes and its shared buffer; used by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The child must import this package exactly as the parent does,
        # including from a source checkout that is not installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.buffer = _SharedBuffer()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_roi_datagen.worker", str(self.buffer.fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, pass_fds=(self.buffer.fd,),
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
        height, width = job.options.image_size
        shared = self.buffer.fit(max(1, len(job.path_index) * height * width * job.options.channels))
        blob = pickle.dumps((job, self.buffer.size), protocol=pickle.HIGHEST_PROTOCOL)
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
        _, shape, dtype, failures, image_sizes, retries = reply
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        pixels = new_pixels(tuple(shape)) if dtype == np.uint8 else np.empty(shape, dtype)
        pixels[...] = np.frombuffer(shared, dtype=dtype, count=count).reshape(shape)
        return BatchResult(pixels, failures, image_sizes, retries)

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
        self.buffer.close()


class ProcessExecutor:
    """Decodes in `workers` worker processes that live until `close()`.

    Args:
        workers: Number of worker processes.
        timeout: Seconds to wait for one batch before the worker is declared
            hung; `None` waits forever.
    """

    def __init__(self, workers: int, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._workers = [_WorkerProcess() for _ in range(workers)]
        self._lock = threading.Lock()
        self._pool = _Pool(workers, self._run, "roi-dispatch")
        _LIVE.add(self)

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (empty once closed)."""
        if self._pool.closed.is_set():
            return []
        with self._lock:
            return [worker.pid for worker in self._workers]

    def _run(self, slot: int, job: BatchJob) -> BatchResult:
        worker = self._workers[slot]
        try:
            return worker.call(job, self.timeout)
        except WorkerError:
            if not self._pool.closed.is_set() and worker.process.poll() is not None:
                # Keep the pool usable for whoever handles the error.
                worker.close(wait=0.0)
                with self._lock:
                    self._workers[slot] = _WorkerProcess()
            raise
        except Exception as exc:
            raise worker_error(
                "worker_exception", f"talking to decode worker {worker.pid} failed: {exc}",
                traceback.format_exc()) from exc

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Queues `job` for the next idle worker."""
        return self._pool.submit(job)

    def cancel_pending(self) -> None:
        """Cancels the jobs no worker has started."""
        self._pool.cancel_pending()

    def close(self) -> None:
        """Closes the workers' pipes; they exit after their current batch."""
        if self._pool.closed.is_set():
            return
        self._pool.close()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.close(wait=2.0)


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
        """Submits `job` to the shared executor and remembers it until done."""
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


@atexit.register
def _close_all() -> None:
    for executor in list(_LIVE):
        executor.close()
