"""Where a RoiDataset pass spends its time: cProfile of one configuration on one workload.

    KERAS_BACKEND=jax python benchmarks/profile_roi.py --workload W1 [--crops 512]
        [--group-by-image/--no-group-by-image] [--fast-decode/--no-fast-decode] [--augment]
        [--top 20]

Decoding runs in the calling thread (`workers=1`), so cProfile sees all of it
(it does not follow worker threads). Prints the top functions by own time and
a summary by stage (decode, resize, open/EXIF, array copies, the rest).
A second, unprofiled pass with `--workers` threads reports CPU time / wall
time, which tells how far threads overlap (2.0 would be two busy cores).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from typing import Any

from contenders import AUGMENT, BATCH_SIZE
from workloads import OUTPUT_SIZE, Workload, build_workloads

# Stage of a profile entry, by (substring of its file, substring of its function); first
# match wins. Built-in methods have no file ("~") and name their C type.
STAGES = (
    ("JPEG decode (libjpeg, in Pillow's decoder)", "", "method 'decode' of 'ImagingDecoder"),
    ("JPEG region decode (keras_roi_datagen._jpeg_region)", "", "decode_region"),
    ("JPEG decode (simplejpeg)", "", "simplejpeg"),
    ("image buffer allocation (Image.core.new)", "", "PIL._imaging.new"),
    ("JPEG draft (DCT scaling setup)", "", "method 'draft'"),
    ("resize (Pillow resample, crop+scale)", "", "method 'resize' of 'ImagingCore"),
    ("pixels to NumPy (np.asarray of an Image)", "", "method 'encode' of 'ImagingEncoder"),
    ("pixels to NumPy (np.asarray of an Image)", "", "method 'join' of 'bytes'"),
    ("pixels to NumPy (np.asarray of an Image)", "", "numpy.asarray"),
    ("pixels to NumPy (np.asarray of an Image)", "PIL/Image.py", "tobytes"),
    ("pixels to NumPy (np.asarray of an Image)", "PIL/Image.py", "__array_interface__"),
    ("open + header parse (Pillow)", "JpegImagePlugin", ""),
    ("open + header parse (Pillow)", "PIL/ImageFile.py", "_open"),
    ("open + header parse (Pillow)", "", "io.open"),
    ("EXIF read", "", "getexif"),
    ("EXIF read", "TiffImagePlugin", ""),
    ("RoiDataset Python (decode/)", "keras_roi_datagen/decode/", ""),
    ("RoiDataset Python (index, batching, labels, executors)", "keras_roi_datagen", ""),
    ("Pillow Python glue (Image.py, ImageFile.py)", "PIL/", ""),
)


def _stage(filename: str, function: str) -> str:
    for stage, file_part, name_part in STAGES:
        if file_part in filename and name_part in function:
            return stage
    return "other (NumPy, builtins, iteration)"


def build(workload: Workload, workers: int, args: argparse.Namespace) -> Any:
    """The dataset under test (same settings as the benchmark's RoiDataset rows)."""
    from keras_roi_datagen import RoiDataset

    return RoiDataset(workload.frame(), image_dir=workload.image_dir, y_cols=("name",),
                      image_size=OUTPUT_SIZE, batch_size=BATCH_SIZE, shuffle=True, seed=0,
                      dtype="uint8", workers=workers, group_by_image=args.group_by_image,
                      fast_decode=args.fast_decode, augment=AUGMENT if args.augment else None)


def one_pass(dataset: Any) -> int:
    """Consumes one pass through the fit path of the current backend; returns crops."""
    crops = 0
    for x, _ in dataset.get_numpy_iterator():
        crops += len(x)
    dataset.on_epoch_end()
    return crops


def stage_summary(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time per stage, largest first."""
    totals: dict[str, float] = {}
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        stage = _stage(filename, function)
        totals[stage] = totals.get(stage, 0.0) + row[2]
    return sorted(totals.items(), key=lambda item: -item[1])


def thread_overlap(workload: Workload, workers: int, args: argparse.Namespace) -> str:
    """CPU seconds per wall second of an unprofiled pass with `workers` threads."""
    dataset = build(workload, workers, args)
    one_pass(dataset)  # warm
    wall, cpu = time.perf_counter(), time.process_time()
    crops = one_pass(dataset)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (f"{workers} threads, unprofiled: {crops / wall:.0f} crops/s, "
            f"CPU/wall = {cpu / wall:.2f} (of {os.cpu_count()} cores)")


def main() -> None:
    """Profiles and prints."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", default="W1", choices=("W1", "W2", "W3"))
    parser.add_argument("--crops", type=int, default=512)
    parser.add_argument("--group-by-image", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--fast-decode", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--augment", action="store_true",
                        help="with the benchmark's augmentation (zoom, shift, flip, colour)")
    parser.add_argument("--workers", type=int, default=2, help="threads of the overlap pass")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    workload = build_workloads()[args.workload].head(args.crops)
    dataset = build(workload, 1, args)
    one_pass(dataset)  # warm: imports, first-call costs
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    crops = one_pass(dataset)
    profiler.disable()
    wall = time.perf_counter() - start
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    print(f"{args.workload}, {crops} crops, workers=1 (inline), augment={args.augment}, group_by_image="
          f"{args.group_by_image}, fast_decode={args.fast_decode}, backend="
          f"{os.environ.get('KERAS_BACKEND')}: {wall:.2f} s profiled ({crops / wall:.0f} crops/s, "
          f"{wall / crops * 1e3:.2f} ms/crop)")
    print("\nown time by stage:")
    total = sum(seconds for _, seconds in stage_summary(stats))
    for stage, seconds in stage_summary(stats):
        print(f"  {seconds:7.3f} s  {seconds / total:6.1%}  {seconds / crops * 1e3:6.2f} ms/crop"
              f"  {stage}")
    stats.sort_stats("tottime").print_stats(args.top)
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[:6000])
    print("\n" + thread_overlap(workload, args.workers, args))


if __name__ == "__main__":
    main()
