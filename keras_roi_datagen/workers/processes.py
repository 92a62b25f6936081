"""Decoding in persistent worker processes, started fresh (never forked).

`ProcessExecutor` (`use_multiprocessing=True`) runs `workers` fresh worker
interpreters (`python -m keras_roi_datagen.workers`), started with
`subprocess`, never forked from the training process: they inherit none of
JAX's, TensorFlow's or PyTorch's threads, locks or GPU context, and need no
`if __name__ == "__main__":` guard in the user's script. Each talks to its
parent through `workers.protocol` (pipes for small messages, a shared-memory
buffer for the pixels).

A worker that dies (even by SIGKILL) turns into a `WorkerError` at once,
because its pipe closes, and is replaced; a worker that stops answering for
`timeout` seconds is killed and reported. Workers exit when their pipe closes
or their parent process disappears, so none outlive the executor or the
training process.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from concurrent.futures import Future

from keras_roi_datagen.decode import BatchJob, BatchResult
from keras_roi_datagen.errors import WorkerError
from keras_roi_datagen.workers import protocol
from keras_roi_datagen.workers.pool import JobPool, close_at_exit, worker_error

__all__ = ["ProcessExecutor", "WorkerProcess"]


class WorkerProcess:
    """One worker interpreter, its pipes and its shared buffer; used by one thread at a time."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The child must import this package exactly as the parent does,
        # including from a source checkout that is not installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.buffer = protocol.SharedBuffer()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_roi_datagen.workers", str(self.buffer.fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, pass_fds=(self.buffer.fd,),
        )

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def describe_exit(self) -> str:
        """How the worker ended, for messages ("was killed by signal SIGKILL", ...).

        Returns:
            The phrase, or `"stopped answering"` while it still runs.
        """
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
        """Has the worker decode `job` and waits for its result.

        Args:
            job: The `BatchJob`.
            timeout: Seconds to wait for the reply; `None` waits forever.

        Returns:
            The `BatchResult`.

        Raises:
            WorkerError: If the worker died, timed out (it is killed) or
                raised while decoding.
        """
        assert self.process.stdin is not None and self.process.stdout is not None
        request = protocol.encode_request(job, self.buffer)
        try:
            self.process.stdin.write(request)
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
        try:
            result = protocol.read_reply(self.process.stdout, job, self.buffer)
        except protocol.WorkerRaised as raised:
            raise worker_error(
                "worker_exception",
                f"decode worker process {self.pid} raised while decoding images "
                f"{list(job.paths)[:3]}.", raised.details) from None
        return self._died(job) if result is None else result

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
        """Kills the worker and reaps it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self, wait: float) -> None:
        """Closes the worker's stdin (it exits), waits up to `wait` seconds, then kills it.

        Args:
            wait: Seconds to let it finish its current batch.
        """
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
            hung; `None` waits forever. Defaults to `None`.
    """

    def __init__(self, workers: int, timeout: float | None = None) -> None:
        self.timeout = timeout
        self._workers = [WorkerProcess() for _ in range(workers)]
        self._lock = threading.Lock()
        self._pool = JobPool(workers, self._run, "roi-dispatch")
        close_at_exit(self)

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
                    self._workers[slot] = WorkerProcess()
            raise
        except Exception as exc:
            raise worker_error(
                "worker_exception", f"talking to decode worker {worker.pid} failed: {exc}",
                traceback.format_exc()) from exc

    def submit(self, job: BatchJob) -> Future[BatchResult]:
        """Queues `job` for the next idle worker.

        Args:
            job: The `BatchJob`.

        Returns:
            The future of its `BatchResult`.
        """
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
