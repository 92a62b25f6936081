"""Peak memory of reading a large COCO JSON: `json.load` versus `read_annotations` (streamed).

    python benchmarks/coco_stream.py [--annotations 1000000] [--report PATH]

Writes (once, cached in `.bench_cache/`) a COCO file of N annotations, each
with an 8-point polygon `segmentation`, a `bbox`, `area` and `iscrowd`, spread
over N/10 images and 80 categories (about 300 bytes per annotation: 10^6 is
~300 MB, the size of a large real export). Then runs, each in a fresh
interpreter that has already imported NumPy and pandas, (a) `json.load` of
the file and (b) `read_annotations(path)` (the streaming COCO reader), and
reports each child's peak RSS before and after
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / ".bench_cache"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_coco(path: Path, annotations: int) -> Path:
    """Writes the synthetic COCO file (streamed to disk; cached)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    images = max(1, annotations // 10)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write('{"info": {"description": "synthetic"}, "licenses": [], "images": [')
        handle.write(",".join(json.dumps({"id": i + 1, "file_name": f"{i:08d}.jpg",
                                          "width": 1920, "height": 1080})
                              for i in range(images)))
        handle.write('], "annotations": [')
        for a in range(annotations):
            x, y = (a * 37) % 1700, (a * 53) % 860
            w, h = 20 + (a * 7) % 200, 20 + (a * 11) % 200
            polygon = [x, y, x + w / 2, y - 0.0, x + w, y, x + w, y + h / 2, x + w, y + h,
                       x + w / 2, y + h, x, y + h, x, y + h / 2]
            item = {"id": a + 1, "image_id": a // 10 + 1, "category_id": a % 80 + 1,
                    "segmentation": [[round(v + 0.25, 2) for v in polygon]],
                    "area": float(w * h), "bbox": [x + 0.25, y + 0.25, float(w), float(h)],
                    "iscrowd": 0}
            handle.write(("," if a else "") + json.dumps(item))
        handle.write('], "categories": [')
        handle.write(",".join(json.dumps({"id": c + 1, "name": f"class_{c}",
                                          "supercategory": "thing"}) for c in range(80)))
        handle.write("]}")
    os.replace(temporary, path)
    return path


def child(path: str, mode: str) -> None:
    """Runs one measurement in this (fresh) process and prints one JSON line."""
    import numpy  # noqa: F401  (the baseline includes the libraries both need)
    import pandas  # noqa: F401

    from keras_roi_datagen import read_annotations

    baseline = peak_rss_mb()
    start = time.perf_counter()
    if mode == "json_load":
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        count = len(data["annotations"])
    else:
        count = len(read_annotations(path))
    print(json.dumps({"mode": mode, "annotations": count, "baseline_mb": round(baseline, 1),
                      "peak_mb": round(peak_rss_mb(), 1),
                      "seconds": round(time.perf_counter() - start, 2)}))


def main(argv: list[str] | None = None) -> int:
    """Writes the file, measures both readers side by side, prints (and saves) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    path = write_coco(CACHE / f"coco_{args.annotations}.json", args.annotations)
    results = {"annotations": args.annotations, "file_mb": round(path.stat().st_size / 2**20, 1)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for mode in ("json_load", "read_annotations"):
        out = subprocess.run([sys.executable, __file__, "--child", str(path), mode], env=env,
                             check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    extra = {m: results[m]["peak_mb"] - results[m]["baseline_mb"]  # type: ignore[index]
             for m in ("json_load", "read_annotations")}
    results["extra_peak_mb"] = extra
    results["ratio"] = round(extra["json_load"] / max(extra["read_annotations"], 1.0), 1)
    text = json.dumps(results, indent=1)
    print(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
