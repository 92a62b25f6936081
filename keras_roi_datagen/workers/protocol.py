"""The decode worker's pipe protocol, both ends: messages and the shared pixel buffer.

A worker process (`python -m keras_roi_datagen.workers FD`) talks to its
parent over its stdin and stdout; pixels go through shared memory:

- the worker's one argument is a file descriptor it inherited: shared memory
  (an anonymous file, `SharedBuffer`) that both sides map, where the pixels
  go;
- request (parent -> worker): 8-byte little-endian length, then a pickled
  `(BatchJob, buffer_size)`: the job and the buffer's current size (the
  parent grows it for larger batches; the worker maps it again when it has);
- reply (worker -> parent): 8-byte length, then a pickled
  `("ok", failures, image_sizes, retries)` (`retries`: one URL per request
  the worker retried for this batch, so the parent counts them) or
  `("error", traceback_text)`.

The worker decodes a batch straight into the buffer (`decode_batch(job,
out=...)`), as `uint8` of shape `job.pixel_shape`, so the pixels are there
when the reply arrives and only small messages cross the pipe. The parent
copies them out into a fresh 64-byte-aligned array (the buffer is reused by
the next batch).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import struct
import tempfile
import traceback
from typing import IO, Any, BinaryIO

import numpy as np

from keras_roi_datagen.decode import BatchJob, BatchResult, decode_batch, new_pixels

__all__ = ["HEADER", "SharedBuffer", "WorkerRaised", "encode_request", "read_exactly", "read_reply",
           "serve"]

HEADER = struct.Struct("<Q")
"""The length prefix of every message."""


class WorkerRaised(Exception):
    """The worker raised while decoding a batch; `details` is its traceback text.

    Args:
        details: The worker's traceback.
    """

    def __init__(self, details: str) -> None:
        super().__init__("the decode worker raised")
        self.details = details


def read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """Reads `size` bytes.

    Args:
        stream: A binary stream.
        size: How many bytes.

    Returns:
        The bytes, or `None` if the stream ends first.
    """
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _framed(message: tuple[Any, ...]) -> bytes:
    blob = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(blob)) + blob


def _read_framed(stream: IO[bytes]) -> bytes | None:
    """The next message's pickle, or `None` at end of stream."""
    size = read_exactly(stream, HEADER.size)
    return read_exactly(stream, HEADER.unpack(size)[0]) if size else None


def _anonymous_file() -> int:
    """A file descriptor of shared memory that has no name in any folder."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("roi-datagen-pixels")
    shared = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix="roi-datagen-", suffix=".pixels", dir=shared)
    os.unlink(path)
    return fd


def _nbytes(job: BatchJob) -> int:
    return int(np.prod(job.pixel_shape))


class SharedBuffer:
    """The parent's end of the shared memory a worker writes pixels into.

    An anonymous file (no name, so nothing can be left behind, whoever dies
    first), inherited by the worker as the file descriptor `fd` and mapped
    by both. It grows when a batch needs more room: the parent resizes it and
    tells the worker the new size with the next job.
    """

    def __init__(self) -> None:
        self.fd = _anonymous_file()
        self.size = 0
        self.map: mmap.mmap | None = None

    def fit(self, size: int) -> mmap.mmap:
        """Returns a mapping of at least `size` bytes, growing the file if needed.

        Args:
            size: Bytes needed (at least 1).

        Returns:
            The mapping.
        """
        if self.map is None or self.size < size:
            self.close_map()
            os.ftruncate(self.fd, size)
            self.map, self.size = mmap.mmap(self.fd, size), size
        return self.map

    def close_map(self) -> None:
        """Unmaps the buffer (a view still held keeps it mapped until it goes)."""
        if self.map is not None:
            with contextlib.suppress(BufferError):
                self.map.close()
            self.map = None

    def close(self) -> None:
        """Unmaps the buffer and closes its file descriptor."""
        self.close_map()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def encode_request(job: BatchJob, buffer: SharedBuffer) -> bytes:
    """Makes the buffer large enough for a job's pixels and frames the request.

    Args:
        job: The `BatchJob`.
        buffer: The worker's `SharedBuffer`.

    Returns:
        The bytes to write to the worker's stdin.

    Raises:
        OSError: If the shared memory cannot grow.
    """
    buffer.fit(max(1, _nbytes(job)))  # a mapping cannot be empty
    return _framed((job, buffer.size))


def read_reply(stream: IO[bytes], job: BatchJob, buffer: SharedBuffer) -> BatchResult | None:
    """Reads a worker's reply to `job` and copies its pixels out of the buffer.

    Args:
        stream: The worker's stdout.
        job: The job the reply answers.
        buffer: The worker's `SharedBuffer`.

    Returns:
        The `BatchResult`, its pixels in a new 64-byte-aligned array; `None`
        if the stream ended (the worker died).

    Raises:
        WorkerRaised: If the worker raised while decoding.
    """
    blob = _read_framed(stream)
    if blob is None:
        return None
    reply = pickle.loads(blob)
    if reply[0] == "error":
        raise WorkerRaised(reply[1])
    _, failures, image_sizes, retries = reply
    assert buffer.map is not None  # `encode_request` mapped it
    pixels = new_pixels(job.pixel_shape)
    pixels[...] = np.frombuffer(buffer.map, dtype=np.uint8, count=pixels.size).reshape(pixels.shape)
    return BatchResult(pixels, failures, image_sizes, retries)


class _WorkerBuffer:
    """The worker's end of the shared memory, mapped again when the parent has grown it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self.map: mmap.mmap | None = None

    def pixels(self, size: int, job: BatchJob) -> np.ndarray:
        """A `uint8` view of the buffer (`size` bytes now) shaped as `job`'s pixels."""
        if self.map is None or size != self.size:
            # Not closed here: an old mapping is unmapped when its last view goes.
            self.map, self.size = mmap.mmap(self.fd, size), size
        return np.frombuffer(self.map, dtype=np.uint8, count=_nbytes(job)).reshape(job.pixel_shape)


def _answer(blob: bytes, buffer: _WorkerBuffer) -> tuple[Any, ...]:
    """Decodes one request into the buffer and returns the reply."""
    job, size = pickle.loads(blob)
    result = decode_batch(job, out=buffer.pixels(size, job))
    return ("ok", result.failures, result.image_sizes, result.retries)


def serve(requests: BinaryIO, replies: BinaryIO, buffer_fd: int) -> None:
    """The worker's end: answers decode requests until `requests` ends.

    Args:
        requests: Binary stream of requests (the worker's stdin).
        replies: Binary stream the replies are written to.
        buffer_fd: File descriptor of the shared memory the pixels go into.
    """
    buffer = _WorkerBuffer(buffer_fd)
    while (blob := _read_framed(requests)) is not None:
        try:
            reply = _answer(blob, buffer)
        except BaseException:
            reply = ("error", traceback.format_exc())
        replies.write(_framed(reply))
        replies.flush()
