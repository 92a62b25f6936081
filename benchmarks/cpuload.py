"""How much CPU *other* programs used while a measurement ran (Linux `/proc`).

The benchmark machine is shared: a test suite running next to it takes a core
and halves a two-worker loader's rate. `ForeignLoad` compares the machine's
busy CPU time (`/proc/stat`) with what the measuring process and all its
descendants used (`/proc/PID/stat`), plus this process; the rest, in cores, is
foreign load. Measurements taken under foreign load are retried (`run.py`).
Where `/proc` is missing the load reads as `None` and nothing is retried.
"""

from __future__ import annotations

import os
import time

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_ticks() -> int | None:
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of `/proc/PID/stat` after the command name (state is field 0)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _process_ticks(pid: int | None) -> int | None:
    """CPU ticks of `pid` and all its descendants; 0 for `None`.

    utime + stime + cutime + cstime of `pid` (children count there once reaped),
    plus utime + stime of every live descendant: persistent worker processes
    (RoiDataset's, torch's `persistent_workers`) are never reaped during a
    measurement, and counted as foreign load they made every such measurement
    look disturbed.
    """
    if pid is None:
        return 0
    own = _stat_fields(pid)
    if own is None:
        return None
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        fields = _stat_fields(entry) if entry.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
            ticks[int(entry)] = int(fields[11]) + int(fields[12])
    total, stack = sum(int(v) for v in own[11:15]), list(children.get(pid, []))
    while stack:
        child = stack.pop()
        total += ticks.get(child, 0)
        stack.extend(children.get(child, []))
    return total


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


class ForeignLoad:
    """Measures foreign CPU load (in cores) between `start()` and `stop()`.

    Args:
        pid: The measuring process (its threads and descendants are ours),
            or `None` when only this process is ours.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self._start: tuple[int | None, int | None, float, float] | None = None

    def start(self) -> None:
        """Notes the counters."""
        self._start = (_machine_busy_ticks(), _process_ticks(self.pid), _own_seconds(),
                       time.perf_counter())

    def stop(self) -> float | None:
        """Foreign load since `start()`, in cores (e.g. 0.9: another program took a core)."""
        if self._start is None:
            return None
        busy0, ours0, own0, wall0 = self._start
        busy1, ours1 = _machine_busy_ticks(), _process_ticks(self.pid)
        wall = time.perf_counter() - wall0
        if None in (busy0, busy1, ours0, ours1) or wall <= 0:
            return None
        busy = (busy1 - busy0) / _TICKS  # type: ignore[operator]
        ours = (ours1 - ours0) / _TICKS + _own_seconds() - own0  # type: ignore[operator]
        return max(0.0, busy - ours) / wall
