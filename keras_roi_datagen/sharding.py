"""Where this process stands among the hosts of a data-parallel run.

`shard="auto"` (the `RoiDataset` default) asks `discover_shard`, which looks,
in this order, at JAX multi-process (`jax.process_index()` /
`jax.process_count()` after `jax.distributed.initialize`), an initialised
`torch.distributed` process group (rank / world size), and TensorFlow's
multi-worker setting (`TF_CONFIG`'s worker index and count). Only frameworks
the program has already imported are asked: discovery never imports one.
A single process is `(0, 1)`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["discover_shard", "is_primary_host"]


def _jax_shard() -> tuple[int, int] | None:
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    try:
        count = int(jax.process_count())
        return (int(jax.process_index()), count) if count > 1 else None
    except Exception:  # a JAX without a backend yet: not a multi-process run
        return None


def _torch_shard() -> tuple[int, int] | None:
    distributed: Any = sys.modules.get("torch.distributed")
    if distributed is None:
        return None
    try:
        if distributed.is_available() and distributed.is_initialized():
            count = int(distributed.get_world_size())
            return (int(distributed.get_rank()), count) if count > 1 else None
    except Exception:
        return None
    return None


def _tensorflow_shard() -> tuple[int, int] | None:
    if "tensorflow" not in sys.modules:
        return None
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster = config.get("cluster", {})
        task = config.get("task", {})
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        if workers <= 1 or task.get("type") not in ("worker", "chief"):
            return None
        index = int(task.get("index", 0))
        if task.get("type") == "worker" and cluster.get("chief"):
            index += len(cluster["chief"])
        return (index, workers)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"TF_CONFIG is not valid JSON with cluster and task: {raw[:200]!r}") from None


def discover_shard() -> tuple[int, int]:
    """Returns `(index, count)` of this process among the hosts of the run.

    Returns:
        JAX's process index and count when JAX runs multi-process; else the
        rank and world size of an initialised `torch.distributed` group; else
        the worker's index and count from `TF_CONFIG` when TensorFlow is
        imported; else `(0, 1)`.

    Example:
    >>> discover_shard()
    (0, 1)
    """
    for probe in (_jax_shard, _torch_shard, _tensorflow_shard):
        found = probe()
        if found is not None:
            return found
    return (0, 1)


def is_primary_host(shard: tuple[int, int] | None = None) -> bool:
    """Whether this process is host 0 (the one that writes shared files).

    Args:
        shard: `(index, count)`; defaults to `discover_shard()`.

    Returns:
        True on host 0.
    """
    return (shard or discover_shard())[0] == 0
