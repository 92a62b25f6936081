"""Entry point of a decode worker process: `python -m keras_roi_datagen.workers FD`.

A worker is a fresh interpreter, not a fork of the training process (see
`workers.processes`). It serves `workers.protocol` requests on its stdin and
stdout, with `FD` the inherited shared-memory buffer, for as long as its
dataset's executor lives (many passes).

The worker exits when its stdin closes (the parent closed it or died) or when
its parent process disappears. It ignores SIGINT: the parent decides when it
stops, so a Ctrl-C does not print a traceback per worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

from keras_roi_datagen.workers.protocol import serve


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def main() -> None:
    """Runs a worker on this process's stdin and stdout (`sys.argv[1]`: the buffer's fd)."""
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
