"""Entry point of a decode worker process (`python -m keras_roi_datagen.worker`).

A worker is a fresh interpreter, not a fork of the training process: it never
inherits JAX's, TensorFlow's or PyTorch's threads, locks or GPU context, needs
no `if __name__ == "__main__":` guard in the user's script, and imports only
NumPy, Pillow and `keras_roi_datagen.decode`.

Protocol (binary, over the worker's stdin and stdout):

- the worker's one argument is a file descriptor it inherited: shared memory
  (an anonymous file) that both sides map, where the pixels go;
- request: 8-byte little-endian length, then a pickled
  `(BatchJob, buffer_size)`: the job and the buffer's current size (the
  parent grows it for larger batches);
- reply: 8-byte length, then a pickled header
  `("ok", shape, dtype, failures, image_sizes, retries)` (`retries`: one URL
  per request the worker retried for this batch, so the parent counts them)
  or `("error", traceback_text)`.
  The pixels are in the shared buffer when the header arrives: only small
  messages cross the pipe.

A worker lives as long as its dataset's executor (many passes), and keeps
the buffer mapped, mapping it again when the parent has grown it.

The worker exits when its stdin closes (the parent closed it or died) or when
its parent process disappears. It ignores SIGINT: the parent decides when it
stops, so a Ctrl-C does not print a traceback per worker.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback
from typing import IO, BinaryIO

HEADER = struct.Struct("<Q")


def read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """Reads `size` bytes, or returns `None` at end of stream."""
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _reply(out: BinaryIO, header: tuple[object, ...]) -> None:
    blob = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(blob)) + blob)
    out.flush()


class _Buffer:
    """The shared memory the parent reads pixels from, mapped again when it grows."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self.map: mmap.mmap | None = None

    def get(self, size: int) -> mmap.mmap:
        if size != self.size or self.map is None:
            if self.map is not None:
                self.map.close()
            self.map, self.size = mmap.mmap(self.fd, size), size
        return self.map


def serve(requests: BinaryIO, replies: BinaryIO, buffer_fd: int) -> None:
    """Answers decode requests until `requests` ends.

    Args:
        requests: Binary stream of length-prefixed pickled `(BatchJob, size)`.
        replies: Binary stream the replies are written to.
        buffer_fd: File descriptor of the shared memory the pixels go into.
    """
    import numpy as np

    from keras_roi_datagen.decode import decode_batch

    buffer = _Buffer(buffer_fd)
    while True:
        size = read_exactly(requests, HEADER.size)
        if size is None:
            return
        blob = read_exactly(requests, HEADER.unpack(size)[0])
        if blob is None:
            return
        try:
            job, capacity = pickle.loads(blob)
            shared = buffer.get(capacity)
            result = decode_batch(job)
            pixels = result.pixels
            target = np.frombuffer(shared, dtype=pixels.dtype, count=pixels.size)
            target[:] = pixels.reshape(-1)
            del target
        except BaseException:
            _reply(replies, ("error", traceback.format_exc()))
            continue
        _reply(replies, ("ok", pixels.shape, pixels.dtype.str, result.failures, result.image_sizes,
                         result.retries))


def main() -> None:
    """Runs a worker on this process's stdin and stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Anything printed by libraries goes to stderr, never into the protocol.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    with replies, contextlib.suppress(BrokenPipeError):
        serve(sys.stdin.buffer, replies, int(sys.argv[1]))


if __name__ == "__main__":
    main()
