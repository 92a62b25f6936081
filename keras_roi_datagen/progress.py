r"""A one-line progress bar: the one the command line and `validate()` draw.

It imports nothing but the standard library, so the command line, the
validation scan and the index build show progress without Keras.

Example:
>>> import io
>>> out = io.StringIO()
>>> bar = ProgressBar(4, "checking images", stream=out)
>>> for done in range(1, 5):
...     bar.update(done)
>>> out.getvalue().endswith("checking images [##############################] 4/4\n")
True
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 30


class ProgressBar:
    """Redraws `label [####......] done/total` on one line, every percent and at the end.

    Args:
        total: The count that means done (0: not known yet; see `update_total`).
        label: What is being counted, e.g. `"checking images"`.
        stream: Where to draw. Defaults to standard output.
        only_on_terminal: Draw only when `stream` is a terminal (the command
            line keeps redirected output clean). Defaults to `False`.
        enabled: Draw at all. Defaults to `True`.
    """

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None,
                 only_on_terminal: bool = False, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.total, self.label = total, label
        self.enabled = enabled and (not only_on_terminal or self.stream.isatty())
        self.step = max(1, total // 100)

    def update_total(self, done: int, total: int) -> None:
        """Redraws the bar at `done` of `total` (for callers that learn the total late)."""
        self.total, self.step = total, 1
        self.update(done)

    def update(self, done: int) -> None:
        """Redraws the bar at `done` of `total` (every percent, and at the end)."""
        if self.enabled and self.total > 0 and (done % self.step == 0 or done >= self.total):
            filled = _WIDTH * done // self.total
            bar = "#" * filled + "." * (_WIDTH - filled)
            end = "\n" if done >= self.total else ""
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total}{end}")
            self.stream.flush()
