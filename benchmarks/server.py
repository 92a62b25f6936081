"""A benchmark process for one Keras backend: runs measurements on request.

`run.py` starts one per backend (Keras reads `KERAS_BACKEND` once, at import)
and sends JSON requests, one per line, on stdin; each answer is one JSON
line on the original stdout. Anything libraries print goes to stderr (a
log file). Only one process measures at a time, so contenders never compete
for the two cores, and imports are paid once per process, not per
measurement.

Request: `{"contender": key, "workload": "W1", "crops": n, "workers": n,
"sample": bool}`. Answer: `{"crops", "seconds", "source_bytes", "config"}`
plus `"mae"` (mean absolute difference of the first crops from Pillow's
reference) when `sample` is set, or `{"error": text}`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
import traceback
from typing import Any, TextIO

import numpy as np
from contenders import SAMPLE_CROPS, Runner, consume, make_runner, reference_crop
from workloads import Workload, build_workloads


def measure(runner: Runner, sample: bool) -> tuple[dict[str, Any], np.ndarray | None]:
    """Times one pass of `runner`; keeps the first crops when `sample` is set.

    The clock runs from the start of the pass (iterator and workers starting)
    to the delivery of the last batch. What happens after it, the iterator's
    teardown, is timed apart (`teardown_s`): a long epoch pays it once, but in
    a pass of a second it would dominate (deleting a tf.data iterator waits up
    to a second or more for its autotuning thread; worker processes are joined).
    """
    first = None
    crops = 0
    start = time.perf_counter()
    last = start
    batches, batch = iter(runner.run()), None
    for batch in batches:
        crops += consume(batch)
        last = time.perf_counter()
        if sample and first is None and not isinstance(batch, int):
            first = np.array(np.asarray(batch)[:SAMPLE_CROPS])
    del batches, batch
    gc.collect()
    teardown = time.perf_counter() - last
    return {"crops": crops, "seconds": last - start, "teardown_s": teardown}, first


def quality(workload: Workload, ids: np.ndarray, crops: np.ndarray) -> float:
    """Mean absolute difference (0..255) of `crops` from the reference crops `ids`."""
    reference = np.stack([reference_crop(workload, int(i)) for i in ids[: len(crops)]])
    return float(np.abs(crops[: len(reference)].astype(np.int16) - reference).mean())


_RUNNERS: dict[tuple[str, str], tuple[tuple[int, int], Runner]] = {}


def _runner_for(request: dict[str, Any], workload: Workload) -> Runner:
    """The pair's runner, kept across requests of the same size (as across epochs)."""
    pair = (request["contender"], request["workload"])
    size = (int(request["crops"]), int(request["workers"]))
    kept = _RUNNERS.get(pair)
    if kept is not None and kept[0] == size:
        return kept[1]
    if kept is not None and kept[1].close is not None:
        kept[1].close()
    runner = make_runner(request["contender"], workload, *size)
    _RUNNERS[pair] = (size, runner)
    if request.get("prime"):  # an untimed first epoch: start-up, as a long run pays it once
        for batch in runner.run():
            consume(batch)
    return runner


def handle(request: dict[str, Any], workloads: dict[str, Workload]) -> dict[str, Any]:
    """Answers one measurement request."""
    workload = workloads[request["workload"]]
    runner = _runner_for(request, workload)
    if request.get("dry"):
        return {"ready": True}
    gc.collect()
    result, first = measure(runner, bool(request.get("sample")))
    if result["crops"] != runner.crops:
        raise RuntimeError(f"delivered {result['crops']} crops, expected {runner.crops}")
    result.update(source_bytes=runner.source_bytes, config=runner.config)
    if first is not None and runner.first_ids is not None:
        result["mae"] = quality(workload, runner.first_ids, first)
    return result


def versions() -> dict[str, str]:
    """Versions of the libraries this process has loaded."""
    found = {}
    for name in ("numpy", "PIL", "keras", "tensorflow", "jax", "torch", "simplejpeg"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = str(getattr(module, "__version__", "?"))
    return found


def preload() -> None:
    """Imports what this backend's contenders need, before anything is timed."""
    import keras  # noqa: F401  (loads the backend named by KERAS_BACKEND)

    import keras_roi_datagen.dataset  # noqa: F401

    backend = os.environ.get("KERAS_BACKEND")
    if backend == "tensorflow":
        import tensorflow  # noqa: F401
    elif backend == "torch":
        import torch  # noqa: F401
    with contextlib.suppress(ImportError):
        import simplejpeg  # noqa: F401


def serve(requests: TextIO, replies: TextIO, quick: bool) -> None:
    """Answers requests until stdin closes."""
    def send(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    try:
        preload()
        workloads = build_workloads(quick)
    except Exception:
        send({"error": traceback.format_exc()})
        return
    send({"ready": True, "pid": os.getpid(), "versions": versions()})
    for line in requests:
        try:
            send(handle(json.loads(line), workloads))
        except Exception:
            send({"error": traceback.format_exc()})


def main() -> None:
    """Runs the server on this process's stdin and stdout."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library output must not corrupt replies
    with replies:
        serve(sys.stdin, replies, quick="--quick" in sys.argv)


if __name__ == "__main__":
    main()
