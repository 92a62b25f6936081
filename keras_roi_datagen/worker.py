"""Entry point of a decode worker process (`python -m keras_roi_datagen.worker`).

A worker is a fresh interpreter, not a fork of the training process: it never
inherits JAX's, TensorFlow's or PyTorch's threads, locks or GPU context, needs
no `if __name__ == "__main__":` guard in the user's script, and imports only
NumPy, Pillow and `keras_roi_datagen.imaging`.

Protocol (binary, over the worker's stdin and stdout):

- request: 8-byte little-endian length, then a pickled `BatchJob`;
- reply: 8-byte length, then a pickled header
  `("ok", shape, dtype, failures, image_sizes)` or `("error", traceback_text)`;
  after an `"ok"` header, the raw pixel bytes follow (no pickling of pixels).

The worker exits when its stdin closes (the parent closed it or died) or when
its parent process disappears. It ignores SIGINT: the parent decides when it
stops, so a Ctrl-C does not print a traceback per worker.
"""

from __future__ import annotations

import contextlib
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


def _reply(out: BinaryIO, header: tuple[object, ...], payload: memoryview | None = None) -> None:
    blob = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(blob)))
    out.write(blob)
    if payload is not None:
        out.write(payload)
    out.flush()


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answers decode requests until `requests` ends.

    Args:
        requests: Binary stream of length-prefixed pickled `BatchJob`s.
        replies: Binary stream the replies are written to.
    """
    from keras_roi_datagen.imaging import decode_batch

    while True:
        size = read_exactly(requests, HEADER.size)
        if size is None:
            return
        blob = read_exactly(requests, HEADER.unpack(size)[0])
        if blob is None:
            return
        try:
            result = decode_batch(pickle.loads(blob))
        except BaseException:
            _reply(replies, ("error", traceback.format_exc()))
            continue
        pixels = result.pixels
        header = ("ok", pixels.shape, pixels.dtype.str, result.failures, result.image_sizes)
        _reply(replies, header, pixels.data.cast("B"))


def main() -> None:
    """Runs a worker on this process's stdin and stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Anything printed by libraries goes to stderr, never into the protocol.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    with replies, contextlib.suppress(BrokenPipeError):
        serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
