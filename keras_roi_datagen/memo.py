"""`ImageMemo`: recently decoded images, kept for the next batches that need them.

An executor owns one (shared by its threads; one per worker process) when
the plan keeps an image's regions within a few consecutive batches (see
`windows.py`). It is cleared at the start of every pass, so it only ever
shares decodes between nearby batches of one epoch (it is not a cache of
images across epochs; `cache.py` keeps crops across epochs). The batches
that share an image then decode it once: the first decodes the whole image
at the DCT scale its rows need and keeps it, the next crop from the kept
pixels. Crops are the same bytes either way
(the region decoder is exact, see `jpeg_region.py`).

Imports only the standard library, so worker processes stay light.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["DEFAULT_MEMO_BYTES", "ImageMemo"]

DEFAULT_MEMO_BYTES = 384 * 1024**2


class ImageMemo:
    """A thread-safe LRU of decoded images, bounded in bytes.

    A key being decoded by one thread is waited for by the others instead of
    being decoded twice.

    Args:
        max_bytes: The most bytes kept. Defaults to `DEFAULT_MEMO_BYTES`.
    """

    def __init__(self, max_bytes: int = DEFAULT_MEMO_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.used = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forgets every kept image (a new pass: its order shares nothing with the last)."""
        with self._lock:
            self._items.clear()
            self.used = 0

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """Returns the value of `key`, calling `make()` (once) when it is not kept.

        Args:
            key: What identifies the image (path, file signature, scale, mode).
            make: Decodes it; returns an array (`nbytes` counts), or `None`
                (not kept).

        Returns:
            The kept or new value.
        """
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return self._items[key]
                waiting = self._pending.get(key)
                if waiting is None:
                    self._pending[key] = threading.Event()
                    self.misses += 1
                    break
            waiting.wait()
            with self._lock:
                if key not in self._items:  # its maker failed, or it is too large to keep
                    self.misses += 1
                    return make()
        value = None
        try:
            value = make()
        finally:
            with self._lock:
                event = self._pending.pop(key)
                size = int(getattr(value, "nbytes", 0))
                if value is not None and size <= self.max_bytes:
                    self._items[key] = value
                    self.used += size
                    while self.used > self.max_bytes:
                        _, old = self._items.popitem(last=False)
                        self.used -= int(getattr(old, "nbytes", 0))
            event.set()
        return value
