"""The C region decoder against Pillow alone: crops per CPU-second, RoiDataset defaults.

    python benchmarks/native_vs_pillow.py [--crops 640] [--repeats 5] [--workloads W1,W2,W3]

`run.py`'s "no C extension" row compares wall-clock rates with 2 workers,
which another program's load on a shared machine distorts. This counts the
CPU time of the whole process (`time.process_time`) per pass instead, with
decoding in the calling thread (`workers=0`), so the figure is what a crop
costs, whatever else runs. Each repeat measures both paths back to back on the
same kept dataset (the native decoder turned off and on by
`decode.native.AVAILABLE`, as `contenders.without_native_decoder` does); the
ratio is the median of per-repeat ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
from workloads import OUTPUT_SIZE, build_workloads


def cpu_rate(dataset: object, native_on: bool) -> float:
    """Crops per CPU-second of one pass, native decoder on or off."""
    from keras_roi_datagen.decode import native

    available = native.AVAILABLE
    native.AVAILABLE = native_on and available
    try:
        start = time.process_time()
        crops = sum(int(np.asarray(x).shape[0]) for x, _ in dataset.iter_batches())  # type: ignore[attr-defined]
        spent = time.process_time() - start
    finally:
        native.AVAILABLE = available
    dataset.on_epoch_end()  # type: ignore[attr-defined]
    return crops / spent


def main(argv: list[str] | None = None) -> int:
    """Measures every workload and prints one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=640, help="crops per pass (default 640)")
    parser.add_argument("--repeats", type=int, default=5, help="passes per path (default 5)")
    parser.add_argument("--workloads", type=lambda text: text.split(","), default=["W1", "W2", "W3"])
    args = parser.parse_args(argv)
    from keras_roi_datagen import RoiDataset
    from keras_roi_datagen.decode import native

    if not native.AVAILABLE:
        print(f"the C region decoder is not available: {native.unavailable_reason()}")
        return 1
    workloads = build_workloads()
    print(f"{'workload':<60} {'native':>8} {'Pillow':>8} {'ratio':>6}  (crops per CPU-second)")
    for name in args.workloads:
        workload = workloads[name].head(args.crops)
        dataset = RoiDataset(workload.frame(), image_dir=workload.image_dir, y_cols=("name",),
                             image_size=OUTPUT_SIZE, batch_size=32, shuffle=True, seed=0,
                             dtype="uint8", workers=0)
        cpu_rate(dataset, True)  # warm-up: page cache, first-call costs
        rates: dict[bool, list[float]] = {True: [], False: []}
        for repeat in range(args.repeats):
            for native_on in ((True, False) if repeat % 2 == 0 else (False, True)):
                rates[native_on].append(cpu_rate(dataset, native_on))
        ratio = statistics.median(a / b for a, b in zip(rates[True], rates[False]))
        print(f"{name + ': ' + workload.title:<60} {statistics.median(rates[True]):8.1f} "
              f"{statistics.median(rates[False]):8.1f} {ratio:5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
