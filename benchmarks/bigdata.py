"""Big tables and object storage: build time, peak memory, first batch, S3 against local disk.

Run by `nox -s bench_bigdata` (not in the default sessions), or directly:

    python benchmarks/bigdata.py --rows 100000000 --images 1000000 --report bigdata.json

What is measured (each build in a fresh process, so its peak RSS is its own):

1. `parquet`: a synthetic Parquet table of `--rows` regions over `--images`
   images is written once (cached under `--work`); the index is built
   straight into an index cache (`build_index(cache=...)`): build time and
   peak RSS (`ru_maxrss`).
2. `first_batch`: a fresh process maps the cached index and decodes batch 0
   (`RoiDataset` with today's epoch plan), and, separately, batch 0 of an
   order from `permutation.KeyedPermutation` (the O(1)-memory plan, not yet
   used by the dataset): seconds from process start of the work to pixels.
3. `training_rss`: total, anonymous and file-backed RSS (`VmRSS`,
   `RssAnon`, `RssFile`) after each stage of training from the cached index
   of the big table (mapped, dataset built, planned, 10 and 30 batches,
   `get_state()`), against a 10^4-row table (same images, same batches).
   Judged on total RSS: the mapped index's resident pages count (PASS/FAIL
   line, goal: within 300 MB).
4. `tables`: `--table-rows` rows as Parquet and as CSV (numeric box
   columns): build time and peak RSS without a cache, and the CSV's build
   into a fresh index cache.
   `coco`: the same count of annotations as a COCO JSON (polygon
   segmentations, ~270 bytes each, written streamed): built by columns
   without a cache and into a fresh index cache (`--coco-through-frame` adds
   the row path through the region frame, for comparison: 5.9 GB at 10^7).
5. `inspect`: `inspect` of the big table in a fresh process, the first
   time (no cache: counted by columns), into an index cache, and from it:
   seconds and peak RSS, whether all three print the same, and a PASS/FAIL
   line against 60 s.
6. `s3`: an epoch of 512 regions over 64 JPEGs read through moto's S3 server
   on 127.0.0.1, against the same files on local disk (4 threads, figures
   only).

Images: the synthetic tables name `--images` distinct files; only those a
measured batch needs are created (hard links to one JPEG), just before use.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

LABELS = ["cat", "dog", "bird", "fish"]


def table_spec() -> Any:
    """The one `TableSpec` every measurement uses (so all share one cache entry)."""
    from keras_roi_datagen.index import TableSpec

    return TableSpec(check_files=False, y_cols=("name", "type"), box_cols=("x", "y", "w", "h"))


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB.

    `VmHWM`, not `ru_maxrss`: a child's `ru_maxrss` starts from its parent's at
    the fork and survives `exec`, so it would report the benchmark driver's size.
    """
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> dict[str, float]:
    """Current resident memory (total, anonymous, file-backed), in MB."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                found[key] = int(value.split()[0]) / 1024.0
    return found


def write_parquet(path: Path, rows: int, images: int, chunk: int = 1 << 20) -> Path:
    """Writes `rows` synthetic regions over `images` images (regions grouped by image)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    names = pa.array([f"images/{i:07d}.jpg" for i in range(images)])
    labels, kinds = pa.array(LABELS), pa.array(["a", "b"])
    schema = pa.schema([("filename", pa.dictionary(pa.int32(), pa.string())),
                        ("x", pa.float32()), ("y", pa.float32()), ("w", pa.float32()),
                        ("h", pa.float32()), ("name", pa.dictionary(pa.int8(), pa.string())),
                        ("type", pa.dictionary(pa.int8(), pa.string()))])
    partial = path.with_suffix(".part")
    with pq.ParquetWriter(partial, schema) as writer:
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            ids = (np.arange(start, start + m, dtype=np.int64) * images // rows).astype(np.int32)
            xy = rng.uniform(0, 300, (2, m)).astype(np.float32)
            wh = rng.uniform(16, 150, (2, m)).astype(np.float32)
            writer.write_batch(pa.record_batch([
                pa.DictionaryArray.from_arrays(pa.array(ids), names), xy[0], xy[1], wh[0], wh[1],
                pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 4, m, dtype=np.int8)),
                                               labels),
                pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 2, m, dtype=np.int8)),
                                               kinds)], schema=schema))
    partial.rename(path)
    return path


def write_csv(parquet: Path, path: Path) -> Path:
    """Writes the Parquet table as CSV (numeric box columns), a record batch at a time."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.exists():
        return path
    partial = path.with_suffix(".part")
    with pq.ParquetFile(parquet) as reader:
        table_schema = reader.schema_arrow
        plain = [f.with_type(f.type.value_type) if hasattr(f.type, "value_type") else f
                 for f in table_schema]
        import pyarrow as pa

        with pcsv.CSVWriter(partial, pa.schema(plain)) as writer:
            for batch in reader.iter_batches(1 << 20):
                writer.write_batch(pa.record_batch(
                    [c.cast(f.type) for c, f in zip(batch.columns, plain)], schema=pa.schema(plain)))
    partial.rename(path)
    return path


def write_coco_json(path: Path, rows: int, images: int, chunk: int = 1 << 16) -> Path:
    """Writes a COCO JSON of `rows` annotations over `images` images, streamed to disk.

    Each annotation has an 8-point polygon `segmentation`, a `bbox`, `area`
    and `iscrowd` (about 270 bytes: 10^7 annotations is ~2.7 GB). Nothing but
    one chunk of text is held in memory; the file is written once and kept.
    """
    import numpy as np

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    rng = np.random.default_rng(0)
    with open(partial, "w", encoding="utf-8") as out:
        out.write('{"info": {"description": "synthetic"}, "licenses": [], "images": [')
        for start in range(0, images, chunk):
            out.write(("," if start else "") + ",".join(
                f'{{"id": {i + 1}, "file_name": "images/{i:07d}.jpg", "width": 400, '
                f'"height": 300}}' for i in range(start, min(images, start + chunk))))
        out.write('], "annotations": [')
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            ids = np.arange(start, start + m, dtype=np.int64)
            image_ids = (ids * images // rows + 1).tolist()
            xy = np.round(rng.uniform(0, 250, (2, m)), 2)
            wh = np.round(rng.uniform(16, 150, (2, m)), 2)
            cats = (rng.integers(0, len(LABELS), m) + 1).tolist()
            parts = []
            for k, (x, y, w, h) in enumerate(zip(*xy.tolist(), *wh.tolist())):
                x1, y1 = round(x + w, 2), round(y + h, 2)
                xm, ym = round(x + w / 2, 2), round(y + h / 2, 2)
                parts.append(
                    f'{{"id": {start + k + 1}, "image_id": {image_ids[k]}, "category_id": '
                    f'{cats[k]}, "segmentation": [[{x}, {y}, {xm}, {y}, {x1}, {y}, {x1}, {ym}, '
                    f'{x1}, {y1}, {xm}, {y1}, {x}, {y1}, {x}, {ym}]], "area": {round(w * h, 2)}, '
                    f'"bbox": [{x}, {y}, {w}, {h}], "iscrowd": 0}}')
            out.write(("," if start else "") + ",".join(parts))
        out.write('], "categories": [')
        out.write(",".join(f'{{"id": {c + 1}, "name": "{name}", "supercategory": "animal"}}'
                           for c, name in enumerate(LABELS)))
        out.write("]}")
    partial.rename(path)
    return path


def source_jpeg(work: Path) -> Path:
    """One 400x300 JPEG every synthetic image links to."""
    from conftest import write_scene

    path = work / "source.jpg"
    if not path.exists():
        from PIL import Image

        write_scene(work / "scene.png")
        Image.open(work / "scene.png").resize((400, 300)).save(path, quality=90)
    return path


def link_images(index: Any, rows: Any, source: Path) -> None:
    """Creates (hard links to `source`) the image files the given index rows need.

    The rows' image ids are read by position (`mapped.gather`), as the
    dataset reads them, so linking adds nothing to the RSS measured after it.
    """
    from keras_roi_datagen.mapped import gather

    for pid in sorted(set(gather(index.path_ids, rows).tolist())):
        path = Path(index.paths[pid])
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, path)


# -- children (one fresh process each) ---------------------------------------------------------


def child_build(table: str, cache: str | None) -> dict[str, Any]:
    from keras_roi_datagen.index import build_index

    base = peak_rss_mb()
    start = time.perf_counter()
    build = build_index(table, table_spec(), cache=cache)
    return {"rows": len(build.index), "images": len(build.index.paths),
            "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": base, "problems": len(build.problems)}


def child_build_coco(table: str, cache: str | None, through_frame: str = "") -> dict[str, Any]:
    """Builds a COCO file's index (label column `label`) by columns, or through the frame."""
    from keras_roi_datagen.index import TableSpec, build_index

    spec = TableSpec(check_files=False, y_cols=("label",))
    base = peak_rss_mb()
    start = time.perf_counter()
    if through_frame:  # the row path this replaces: region frame, then row by row
        from keras_roi_datagen.formats import read_table

        build = build_index(read_table(table, on_error="collect"), spec)
    else:
        build = build_index(table, spec, cache=cache or None)
    return {"rows": len(build.index), "images": len(build.index.paths),
            "seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": base, "problems": len(build.problems)}


def coco_tables(work: Path, rows: int, through_frame: bool) -> dict[str, Any]:
    """COCO JSON of `rows` annotations over `rows // 100` images: build time and peak RSS.

    Built by columns (`coco_columns`) without a cache and into a fresh index
    cache, each in a fresh process; with `through_frame`, also the row path
    (`read_annotations`, then the frame row by row) for comparison.
    """
    import shutil

    path = work / f"regions_{rows}_{rows // 100}.coco.json"
    start = time.perf_counter()
    write_coco_json(path, rows, rows // 100)
    report: dict[str, Any] = {"rows": rows, "file_bytes": path.stat().st_size,
                              "write_seconds": time.perf_counter() - start}
    cache = str(work / "index-cache-coco")
    shutil.rmtree(cache, ignore_errors=True)  # a build, not a cache hit
    report["coco"] = run_child("build_coco", str(path), "")
    report["coco_into_cache"] = run_child("build_coco", str(path), cache)
    if through_frame:
        report["coco_through_frame"] = run_child("build_coco", str(path), "", "frame")
    return report


def _dataset(build: Any) -> Any:
    from keras_roi_datagen import RoiDataset

    return RoiDataset(build, y_cols=("name", "type"), image_size=(64, 64), batch_size=32,
                      seed=1, shuffle=True)


def child_first_batch(table: str, cache: str, work: str) -> dict[str, Any]:
    import numpy as np

    from keras_roi_datagen.decode import DecodeOptions, decode_batch
    from keras_roi_datagen.index import build_index
    from keras_roi_datagen.permutation import KeyedPermutation

    spec = table_spec()
    source = source_jpeg(Path(work))
    # Links first (outside the timing): the images batch 0 needs, for both orders.
    build = build_index(table, spec, cache=cache)
    n = len(build.index)
    feistel_rows = KeyedPermutation(n, seed=1, epoch=0).take(0, 32)
    link_images(build.index, feistel_rows, source)
    out: dict[str, Any] = {"rows": n}
    start = time.perf_counter()
    build = build_index(table, spec, cache=cache)
    rows = KeyedPermutation(len(build.index), seed=1, epoch=0).take(0, 32)
    result = decode_batch(build.index.job(rows, DecodeOptions((64, 64))))
    out["feistel_seconds"] = time.perf_counter() - start
    out["feistel_failures"] = len(result.failures)
    out["feistel_rss_mb"] = rss_mb()
    start = time.perf_counter()
    ds = _dataset(build_index(table, spec, cache=cache))
    plan_rows = ds.plan(0)[0]
    out["dataset_setup_seconds"] = time.perf_counter() - start  # Keras import, map, plan
    link_images(ds.index, np.asarray(plan_rows), source)
    start = time.perf_counter()
    ds[0]
    out["dataset_batch0_decode_seconds"] = time.perf_counter() - start
    out["dataset_first_batch_seconds"] = (out["dataset_setup_seconds"]
                                          + out["dataset_batch0_decode_seconds"])
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def child_training(table: str, cache: str, work: str, batches: int) -> dict[str, Any]:
    """RSS (total, anonymous, file-backed) after each stage of training from the cached index.

    Stages: the index mapped, the dataset built, the plan, a third of the
    batches, all `batches`, and `get_state()` (what `DatasetCheckpoint` asks
    for; it fingerprints the whole index).
    """
    import numpy as np

    from keras_roi_datagen import RoiDataset  # imported first: its RSS is in every stage
    from keras_roi_datagen.index import build_index

    del RoiDataset
    stages: dict[str, dict[str, float]] = {"imported": rss_mb()}
    build = build_index(table, table_spec(), cache=cache)
    stages["index_mapped"] = rss_mb()
    ds = _dataset(build)
    stages["dataset_built"] = rss_mb()
    plan = ds.plan(0)
    stages["planned"] = rss_mb()
    link_images(ds.index, np.concatenate([plan[i] for i in range(batches)]),
                source_jpeg(Path(work)))
    third = max(1, batches // 3)
    for i in range(batches):
        ds[i]
        if i + 1 == third:
            stages[f"after_{third}_batches"] = rss_mb()
    stages[f"after_{batches}_batches"] = rss_mb()
    ds.get_state()
    stages["get_state"] = rss_mb()
    return {"rows": len(ds.index), "batches": batches, "rss_mb": stages["get_state"],
            "stages": stages, "peak_rss_mb": peak_rss_mb()}


def training_verdict(big: dict[str, Any], small: dict[str, Any], budget_mb: float = 300.0) -> str:
    """The PASS/FAIL line of the training-RSS goal: total RSS within `budget_mb` of the small table.

    Judged on total RSS (`VmRSS`: anonymous and file-backed, so the mapped
    index's pages count), at the largest of the stages measured after the
    index was mapped.
    """
    if "error" in big or "error" in small:
        return "training RSS: FAIL (a run failed)"

    def worst(run: dict[str, Any]) -> float:
        return max(v["VmRSS"] for k, v in run["stages"].items() if k != "imported")

    extra = worst(big) - worst(small)
    verdict = "PASS" if extra <= budget_mb else "FAIL"
    return (f"training RSS: {verdict}: total RSS {worst(big):.0f} MB at {big['rows']} rows vs "
            f"{worst(small):.0f} MB at {small['rows']} rows: {extra:+.0f} MB (goal <= {budget_mb:.0f})")


def child_inspect(table: str, cache: str) -> dict[str, Any]:
    """Runs `inspect` on the table (with `--index-cache` when `cache` is not empty): seconds, peak RSS."""
    import contextlib
    import hashlib
    import io

    from keras_roi_datagen.cli import main

    argv = ["inspect", table, "--box-cols", "x,y,w,h", "--y-cols", "name,type"]
    if cache:
        argv += ["--index-cache", cache]
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "exit_code": code, "peak_rss_mb": peak_rss_mb(),
            "output_sha256": hashlib.sha256(out.getvalue().encode()).hexdigest(),
            "output": out.getvalue()}


def inspect_timings(table: Path, work: Path, goal_s: float = 60.0) -> dict[str, Any]:
    """`inspect` the first time (no cache: counted by columns), into a cache, and from the cache."""
    import shutil

    cache = str(work / "index-cache-inspect")
    shutil.rmtree(cache, ignore_errors=True)
    runs = {"first": run_child("inspect", str(table), ""),
            "into_cache": run_child("inspect", str(table), cache),
            "cached": run_child("inspect", str(table), cache)}
    found: dict[str, Any] = {name: {k: v for k, v in run.items() if k != "output"}
                             for name, run in runs.items()}
    outputs = {run.get("output_sha256") for run in runs.values()}
    found["same_output"] = len(outputs) == 1 and None not in outputs
    found["output"] = runs["first"].get("output", "")
    lines = []
    for name in ("first", "cached"):
        seconds = runs[name].get("seconds")
        verdict = "PASS" if seconds is not None and seconds < goal_s else "FAIL"
        lines.append(f"inspect {name}: {verdict}: "
                     + (f"{seconds:.1f} s" if seconds is not None else "failed")
                     + f" (goal < {goal_s:.0f} s)")
    lines.append("inspect output identical in all three runs: "
                 + ("PASS" if found["same_output"] else "FAIL"))
    found["verdict"] = lines
    return found


def run_child(*args: str, timeout: float = 3600) -> dict[str, Any]:
    """Runs this file as a fresh process and returns its JSON line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": os.environ.get(
        "KERAS_BACKEND", "jax"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_child", *args],
                         capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- S3 against local disk ----------------------------------------------------------------------


def s3_against_local(work: Path, epochs: int = 2) -> dict[str, Any]:
    """Times epochs over 64 JPEGs from moto's S3 server and from local disk (4 threads)."""
    import pandas as pd
    import s3fs
    from moto.server import ThreadedMotoServer
    from PIL import Image

    from keras_roi_datagen import RoiDataset

    folder = work / "s3-images"
    rows = []
    rng_boxes = [(10 + 7 * k, 12 + 5 * k, 120, 90) for k in range(8)]
    for i in range(64):
        path = folder / f"img_{i:03d}.jpg"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            Image.open(source_jpeg(work)).resize((640, 480)).save(path, quality=90)
        for k, (x, y, w, h) in enumerate(rng_boxes):
            rows.append({"filename": path.name, "x": x, "y": y, "w": w, "h": h,
                         "name": LABELS[k % 4], "type": "a"})
    table = pd.DataFrame(rows)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        options = {"key": "k", "secret": "s", "client_kwargs": {
            "endpoint_url": f"http://127.0.0.1:{port}", "region_name": "eu-west-1"}}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("bench")
        for path in folder.iterdir():
            fs.pipe_file(f"bench/images/{path.name}", path.read_bytes())
        timings = {}
        for name, image_dir, storage in (("local", str(folder), None),
                                         ("s3", "s3://bench/images", options)):
            ds = RoiDataset(table, image_dir=image_dir, storage_options=storage,
                            box_cols=("x", "y", "w", "h"), y_cols=("name",), image_size=(64, 64),
                            batch_size=32, seed=0, workers=4, group_by_image=True)
            start = time.perf_counter()
            for _ in range(epochs):
                for _ in ds.iter_batches():
                    pass
                ds.on_epoch_end()
            timings[name] = (time.perf_counter() - start) / epochs
        return {"regions": len(table), "images": 64, "threads": 4,
                "local_epoch_seconds": timings["local"], "s3_epoch_seconds": timings["s3"],
                "s3_over_local": timings["s3"] / timings["local"]}
    finally:
        server.stop()


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmarks and prints (and optionally writes) the figures."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        task, *args = argv[1:]
        if task == "build":
            result = child_build(args[0], args[1] if len(args) > 1 else None)
        elif task == "build_coco":
            result = child_build_coco(*args)
        elif task == "first_batch":
            result = child_first_batch(*args)
        elif task == "inspect":
            result = child_inspect(*args)
        else:
            result = child_training(args[0], args[1], args[2], int(args[3]))
        print(json.dumps(result, default=str))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10**8)
    parser.add_argument("--images", type=int, default=10**6)
    parser.add_argument("--table-rows", type=int, default=10**7)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "roi-bigdata")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["parquet", "first_batch", "training_rss", "inspect", "tables",
                                 "coco", "s3"])
    parser.add_argument("--coco-through-frame", action="store_true",
                        help="also build the COCO file through the region frame (the row path)")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"rows": args.rows, "images": args.images}
    big = work / f"regions_{args.rows}_{args.images}.parquet"
    cache = str(work / "index-cache")
    if "parquet" not in args.skip:
        start = time.perf_counter()
        write_parquet(big, args.rows, args.images)
        report["parquet_write_seconds"] = time.perf_counter() - start
        report["parquet_bytes"] = big.stat().st_size
        import shutil

        shutil.rmtree(cache, ignore_errors=True)  # a build, not a cache hit
        report["parquet"] = run_child("build", str(big), cache)
        print("parquet build (into the index cache):", report["parquet"], flush=True)
    if "first_batch" not in args.skip:
        report["first_batch"] = run_child("first_batch", str(big), cache, str(work))
        print("first batch from the cached index:", report["first_batch"], flush=True)
    if "training_rss" not in args.skip:
        small = work / "regions_10000_100.parquet"
        write_parquet(small, 10_000, 100)
        report["training_rss"] = {
            "big": run_child("training", str(big), cache, str(work), "30"),
            "small_10k": run_child("training", str(small), cache, str(work), "30")}
        print("RSS while training:", report["training_rss"], flush=True)
        report["training_rss"]["verdict"] = training_verdict(report["training_rss"]["big"],
                                                             report["training_rss"]["small_10k"])
        print(report["training_rss"]["verdict"], flush=True)
    if "inspect" not in args.skip:
        report["inspect"] = inspect_timings(big, work)
        print("inspect:", {k: v for k, v in report["inspect"].items() if k != "output"}, flush=True)
        print(report["inspect"]["output"], flush=True)
        print("\n".join(report["inspect"]["verdict"]), flush=True)
    if "tables" not in args.skip:
        table = work / f"regions_{args.table_rows}_{args.table_rows // 100}.parquet"
        write_parquet(table, args.table_rows, args.table_rows // 100)
        csv = write_csv(table, table.with_suffix(".csv"))
        import shutil

        csv_cache = str(work / "index-cache-csv")
        shutil.rmtree(csv_cache, ignore_errors=True)  # a build, not a cache hit
        report["tables"] = {"rows": args.table_rows,
                            "parquet": run_child("build", str(table)),
                            "csv": run_child("build", str(csv)),
                            "csv_into_cache": run_child("build", str(csv), csv_cache)}
        print("tables (no cache):", report["tables"], flush=True)
    if "coco" not in args.skip:
        report["tables_coco"] = coco_tables(work, args.table_rows, args.coco_through_frame)
        print("tables (COCO JSON):", report["tables_coco"], flush=True)
    if "s3" not in args.skip:
        report["s3"] = s3_against_local(work)
        print("S3 (moto, local) against local disk:", report["s3"], flush=True)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
