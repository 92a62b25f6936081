"""Peak memory of a RoiDataset built from a large VIA CSV export.

`run.py` writes (once, cached) VIA 2 CSV exports of N rows over N/10 distinct
image paths (10^6 rows over 10^5 paths; hard links, in folders of 1000, to a
handful of real photos, so every path exists and is checked), then runs this
file as a fresh process per N:

    python benchmarks/memory.py --csv PATH [--trace]

The child imports Keras, NumPy and pandas, notes its peak RSS (the
baseline), builds `RoiDataset(PATH, ...)`, reads one batch and notes its peak
RSS again (`resource.getrusage(RUSAGE_SELF).ru_maxrss`). It prints one JSON
line. `--trace` also runs `tracemalloc` (slower) and reports the biggest
allocation sites at the end of the build.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LINKED_IMAGES = 8  # real photos behind the links
ROWS_PER_PATH = 10
HEADER = ("filename,file_size,file_attributes,region_count,region_id,"
          "region_shape_attributes,region_attributes\n")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_via_csv(path: Path, rows: int, images: list[Path]) -> Path:
    """Writes a VIA 2 CSV export of `rows` regions over `rows / 10` image paths (once; cached)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(max(1, rows // ROWS_PER_PATH)):
        image = images[i % min(LINKED_IMAGES, len(images))]
        name = f"images_{rows}/d{i // 1000:03d}/photo_{i:06d}.jpg"
        target = path.parent / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(image, target)
        names.append((name, image.stat().st_size))
    per_image = -(-rows // len(names))
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(HEADER)
        for row in range(rows):
            name, size = names[row // per_image]
            region = row % per_image
            count = min(per_image, rows - (row // per_image) * per_image)
            x, y = (row * 37) % 1700, (row * 53) % 860
            w, h = 64 + (row * 7) % 200, 64 + (row * 11) % 200
            label = ("cat", "dog", "bird")[row % 3]
            handle.write(
                f'{name},{size},"{{}}",{count},{region},'
                f'"{{""name"":""rect"",""x"":{x},""y"":{y},""width"":{w},""height"":{h}}}",'
                f'"{{""name"":""{label}""}}"\n')
    os.replace(temporary, path)
    return path


class StackSampler:
    """Samples RSS and the main thread's stack every `interval` s.

    Reports the peak RSS seen during each step of `build_index` and the stack
    when RSS peaked. Costs a little CPU in a background thread; no tracing of
    allocations. (It says nothing reliable about *time*: the sampling thread
    mostly gets the GIL when the main thread does I/O. Use cProfile for that.)
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.stage_peaks: dict[str, float] = {}
        self.peak = (0.0, "")
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _stack(self) -> list[str]:
        frame = sys._current_frames().get(self._main)
        names = []
        while frame is not None:
            code = frame.f_code
            names.append(f"{Path(code.co_filename).name}:{code.co_name}")
            frame = frame.f_back
        return names[::-1]

    def _run(self) -> None:
        page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        while not self._stop.wait(self.interval):
            stack = self._stack()
            ours = [n for n in stack if not n.startswith(("<", "threading"))]
            library = [n for n in ours if n.split(":")[0] in _LIBRARY_FILES]
            with open("/proc/self/statm") as handle:
                rss = int(handle.read().split()[1]) * page_mb
            if rss > self.peak[0]:
                self.peak = (rss, " > ".join(library[-4:] or ours[-3:]))
            stage = _stage_of(stack)
            self.stage_peaks[stage] = max(rss, self.stage_peaks.get(stage, 0.0))

    def report(self) -> dict[str, Any]:
        """Peak RSS per step of the build, and the stack at the overall peak."""
        return {"peak_rss_mb_by_stage": {k: round(v, 1) for k, v in self.stage_peaks.items()},
                "peak_rss_mb": round(self.peak[0], 1), "stack_at_peak": self.peak[1]}


def _stage_of(stack: list[str]) -> str:
    """The step of `build_index` a stack is in (the frame that `build_index` called)."""
    for outer, inner in itertools.pairwise(stack):
        if outer == "build.py:build_index":
            return inner
    return "build.py:build_index" if "build.py:build_index" in stack else stack[-1]


def _library_files() -> set[str]:
    import keras_roi_datagen

    root = Path(keras_roi_datagen.__file__).parent
    return {p.name for p in root.rglob("*.py")}


_LIBRARY_FILES: set[str] = set()


def _top_allocations(snapshot: Any, limit: int = 8) -> list[dict[str, Any]]:
    stats = snapshot.statistics("lineno")[:limit]
    return [{"site": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
             "mb": round(s.size / 2**20, 1), "blocks": s.count} for s in stats]


def measure_child(csv: str, trace: bool) -> dict[str, Any]:
    """Builds the dataset in this process and reports memory and time (child side)."""
    import keras  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    from keras_roi_datagen import RoiDataset

    baseline = peak_rss_mb()
    _LIBRARY_FILES.update(_library_files())
    sampler = StackSampler()
    if trace:
        import tracemalloc

        tracemalloc.start()
    start = time.perf_counter()
    with sampler:
        dataset = RoiDataset(csv, y_cols=("name",), image_size=(224, 224), batch_size=32,
                             shuffle=True, seed=0, dtype="uint8")
    built = time.perf_counter()
    result: dict[str, Any] = {"build_profile": sampler.report()}
    if trace:
        result["top_allocations"] = _top_allocations(tracemalloc.take_snapshot())
        result["traced_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    batch = dataset[0]
    done = time.perf_counter()
    result.update(
        rows=len(dataset.index), baseline_mb=round(baseline, 1), peak_mb=round(peak_rss_mb(), 1),
        build_s=round(built - start, 2), first_batch_s=round(done - built, 3),
        batch_shape=list(batch[0].shape), backend=os.environ.get("KERAS_BACKEND"))
    result["dataset_mb"] = round(result["peak_mb"] - baseline, 1)
    return result


def measure(csv: Path, backend: str = "jax", trace: bool = False,
            timeout: float = 600.0) -> dict[str, Any]:
    """Runs `measure_child` in a fresh process; returns its JSON (or an error)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(HERE / "memory.py"), "--csv", str(csv)]
    if trace:
        command.append("--trace")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "csv": str(csv)}
    wall = round(time.perf_counter() - start, 1)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": done.stderr[-2000:] or f"exit status {done.returncode}", "wall_s": wall}
    return {**json.loads(lines[-1]), "wall_s": wall, "csv_mb": round(csv.stat().st_size / 1e6, 1)}


def main() -> None:
    """Child entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure_child(args.csv, args.trace)), flush=True)


if __name__ == "__main__":
    main()
