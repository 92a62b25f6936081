"""Benchmark: RoiDataset against tf.data, torch DataLoader, the classic generator and floors.

    python benchmarks/run.py [--report reports/bench.json] [--quick]
                             [--repeats 3] [--workers 2] [--seconds 3.0]

What it does, in one run:

1. Generates the workloads (deterministic photo-like JPEGs, cached in
   `.bench_cache/` at the repository root; see `workloads.py`).
2. Starts one measuring process per Keras backend (`server.py`), since Keras
   reads `KERAS_BACKEND` once. They only measure when asked, one at a time.
3. Warm-up: every (workload, contender) pair runs once untimed on a few
   batches; its first crops are compared with Pillow's reference crops (the
   MAE column). Calibration: a primed, untimed pass sized from the warm-up
   rate; its steady rate sizes the timed runs (a warm-up rate includes
   first-call costs such as tf.function tracing).
4. `--repeats` rounds; in each, every pair is measured once, in a shuffled
   order (interleaved, so drift of a noisy machine hits all contenders
   alike). Each measurement is one pass over the first `crops` crops of the
   workload, sized to last about `--seconds`.
5. Peak RSS of a RoiDataset built from a 10^4- and a 10^6-row VIA CSV,
   each in a fresh process (`memory.py`).
6. Prints the table and the targets, and writes the JSON report.

Rates are medians over repeats; ratios are medians of per-repeat ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import memory
import report
from contenders import BY_KEY, CONTENDERS, Contender
from cpuload import ForeignLoad
from workloads import CACHE, REPO, Workload, build_workloads, ensure_pool

HERE = Path(__file__).resolve().parent
BACKENDS = ("tensorflow", "jax", "torch")
BATCH = 32
REQUEST_TIMEOUT_S = 300.0
NOISE_CORES = 0.15  # foreign load (cores) above which a measurement is re-taken
MAX_RETRIES = 2
CALIBRATION = -2  # the `repeat` of calibration records (warm-up: -1); the report skips both


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Data-loading benchmark for keras-roi-datagen.")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--quick", action="store_true",
                        help="tiny workloads, one batch per measurement: a smoke run")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 3; 1 with --quick)")
    parser.add_argument("--workers", type=int, default=2, help="decode workers (default 2)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="target length of one measurement (default 3.0)")
    parser.add_argument("--retry-budget", type=float, default=75.0,
                        help="seconds the run may spend re-measuring under foreign CPU load")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-RSS test")
    parser.add_argument("--contenders", "--only", dest="contenders", metavar="KEY,...",
                        type=lambda text: text.split(","),
                        help="measure only these contenders, e.g. roi_jax,roi_jax_augmented")
    parser.add_argument("--workloads", metavar="W1,...", type=lambda text: text.split(","),
                        help="measure only these workloads (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.contenders or ()) - set(BY_KEY))
    if unknown:
        parser.error(f"unknown contenders {unknown}; known: {sorted(BY_KEY)}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    return args


# -- measuring processes ------------------------------------------------------------------


class Server:
    """A `server.py` process for one backend, spoken to in JSON lines.

    `name` is the backend, or `backend/role` for a second process of that
    backend (RoiDataset on TensorFlow is measured apart from the tf.data
    contenders, whose pipelines and thread pools stay alive in their process).
    """

    def __init__(self, name: str, quick: bool) -> None:
        self.backend = name.split("/")[0]
        backend = self.backend
        self.log = CACHE / "logs" / f"server-{name.replace('/', '-')}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # The library is imported as installed in this environment (editable or not).
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        command = [sys.executable, str(HERE / "server.py")] + (["--quick"] if quick else [])
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, text=True,
                                            env=env, cwd=REPO)
        self.info: dict[str, Any] = {}

    def receive(self, timeout: float) -> dict[str, Any]:
        """Reads one reply; an error dict if the process hangs or dies."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.process.kill()
            return {"error": f"{self.backend} process gave no answer in {timeout:.0f} s"}
        line = self.process.stdout.readline()
        if not line:
            return {"error": f"{self.backend} process exited ({self.process.poll()}); "
                             f"see {self.log}"}
        return json.loads(line)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Sends one request and waits for its answer."""
        assert self.process.stdin is not None
        if self.process.poll() is not None:
            return {"error": f"{self.backend} process is not running; see {self.log}"}
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return self.receive(REQUEST_TIMEOUT_S)

    def close(self) -> None:
        """Closes stdin (the process exits) and waits."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_servers(quick: bool, backends: Sequence[str] = BACKENDS) -> dict[str, Server]:
    """Starts one process per backend (in parallel) and waits until each is ready."""
    servers = {backend: Server(backend, quick) for backend in backends}
    for backend, server in list(servers.items()):
        server.info = server.receive(REQUEST_TIMEOUT_S)
        if "error" in server.info:
            print(f"  {backend}: unavailable ({server.info['error'].strip().splitlines()[-1]})")
            server.close()
    return servers


# -- scheduling ---------------------------------------------------------------------------


def warmup_crops(contender: Contender) -> int:
    """Crops of the untimed warm-up pass."""
    return 8 * BATCH if contender.kind == "floor" else 2 * BATCH


def timed_crops(rate: float, seconds: float, quick: bool) -> int:
    """Crops for a pass of about `seconds` at `rate`, in whole batches (at least two)."""
    if quick:
        return BATCH
    return max(2 * BATCH, math.ceil(rate * seconds / BATCH) * BATCH)


def measure(server: Server, contender: Contender, workload: Workload, crops: int,
            workers: int, repeat: int, sample: bool = False) -> dict[str, Any]:
    """One measurement, as a record for the report (with the foreign CPU load during it).

    Timed measurements (`repeat >= 0`) ask the server to prime a new runner
    with an untimed epoch, so every timed pass is a steady-state epoch.
    """
    meter = ForeignLoad(server.process.pid)
    if repeat >= 0 and not sample:  # a sample pass must be the plan's epoch 0
        primed = server.request({"contender": contender.key, "workload": workload.name,
                                 "crops": crops, "workers": workers, "prime": True, "dry": True})
        if "error" in primed:
            return {"workload": workload.name, "contender": contender.key, "repeat": repeat,
                    "requested_crops": crops, **primed}
    meter.start()
    reply = server.request({"contender": contender.key, "workload": workload.name,
                            "crops": crops, "workers": workers, "sample": sample})
    return {"workload": workload.name, "contender": contender.key, "repeat": repeat,
            "requested_crops": crops, "foreign_cores": meter.stop(), **reply}


class RetryBudget:
    """Seconds the whole run may spend re-measuring under foreign load."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self.retries = 0

    def wait_for_quiet(self, limit: float = 3.0, window: float = 0.25) -> None:
        """Waits (up to `limit` s, charged to the budget) until other programs idle."""
        start = time.perf_counter()
        while time.perf_counter() - start < min(limit, self.left):
            meter = ForeignLoad()
            meter.start()
            time.sleep(window)
            load = meter.stop()
            if load is None or load <= NOISE_CORES:
                break
        self.left -= time.perf_counter() - start


def _noisy(record: dict[str, Any]) -> bool:
    load = record.get("foreign_cores")
    return "error" not in record and load is not None and load > NOISE_CORES


def measure_clean(server: Server, contender: Contender, workload: Workload, crops: int,
                  args: argparse.Namespace, repeat: int, budget: RetryBudget,
                  records: list[dict[str, Any]]) -> dict[str, Any]:
    """Measures; re-measures (at most `MAX_RETRIES` times) while other programs took CPU.

    Keeps the attempt with the least foreign load; the others stay in the report
    marked `discarded`.
    """
    attempts = [measure(server, contender, workload, crops, args.workers, repeat)]
    while (_noisy(attempts[-1]) and len(attempts) <= MAX_RETRIES and budget.left > 0
           and not args.quick):
        budget.left -= attempts[-1]["seconds"]
        budget.retries += 1
        budget.wait_for_quiet()
        attempts.append(measure(server, contender, workload, crops, args.workers, repeat))
    best = min(attempts, key=lambda r: r.get("foreign_cores") or 0.0)
    for attempt in attempts:
        if attempt is not best:
            records.append({**attempt, "discarded": True})
    records.append({**best, "attempts": len(attempts)})
    return best


def warm_up(args: argparse.Namespace, pairs: list[tuple[Workload, Contender]],
            servers: dict[str, Server], live: set[str], records: list[dict[str, Any]]
            ) -> dict[tuple[str, str], list[float]]:
    """Runs every pair once untimed (first-call costs, quality sample); returns first rates."""
    rates: dict[tuple[str, str], list[float]] = {}
    start = time.perf_counter()
    for workload, contender in pairs:
        if contender.server not in live:
            records.append({"workload": workload.name, "contender": contender.key, "repeat": -1,
                            "error": f"{contender.server} backend unavailable"})
            continue
        if args.quick:  # a smoke run: the timed pass doubles as warm-up and sample
            rates[(workload.name, contender.key)] = [0.0]
            continue
        record = measure(servers[contender.server], contender, workload,
                         warmup_crops(contender), args.workers, -1, sample=True)
        records.append(record)
        if "error" not in record:
            rates[(workload.name, contender.key)] = [record["crops"] / record["seconds"]]
    if not args.quick:
        print(f"  warm-up: {len(pairs)} pairs in {time.perf_counter() - start:.0f} s", flush=True)
        calibrate(args, pairs, servers, rates, records)
    return rates


def calibrate(args: argparse.Namespace, pairs: list[tuple[Workload, Contender]],
              servers: dict[str, Server], rates: dict[tuple[str, str], list[float]],
              records: list[dict[str, Any]]) -> None:
    """Replaces each pair's warm-up rate by the rate of a primed, untimed pass.

    The warm-up pass pays first-call costs (tf.function tracing, worker start-up), so
    its rate understates the steady one, most of all for slow starters: timed passes
    sized from it lasted under a second on the TensorFlow backend, mostly pipeline
    fill and drain, against 1.5 s for the others. The calibration pass is sized from
    the warm-up rate and primed like a timed pass; the timed passes, from its rate.
    """
    start = time.perf_counter()
    for workload, contender in pairs:
        key = (workload.name, contender.key)
        if key not in rates:
            continue
        record = measure(servers[contender.server], contender, workload,
                         timed_crops(rates[key][0], args.seconds, args.quick), args.workers, 0)
        records.append({**record, "repeat": CALIBRATION})
        if "error" not in record:
            rates[key][0] = record["crops"] / record["seconds"]
    print(f"  calibration: {len(rates)} pairs in {time.perf_counter() - start:.0f} s", flush=True)


def run_contenders(args: argparse.Namespace, workloads: dict[str, Workload],
                   servers: dict[str, Server]) -> list[dict[str, Any]]:
    """Warm-up, then `args.repeats` interleaved rounds; returns every record."""
    keys = set(args.contenders) if args.contenders else None
    names = set(args.workloads) if args.workloads else None
    pairs = [(w, c) for w in workloads.values() for c in CONTENDERS
             if (keys is None or c.key in keys) and (names is None or w.name in names)]
    records: list[dict[str, Any]] = []
    live = {b for b, s in servers.items() if "error" not in s.info}
    rates = warm_up(args, pairs, servers, live, records)
    measured = [(w, c) for w, c in pairs if (w.name, c.key) in rates]
    budget = RetryBudget(args.retry_budget)
    for repeat in range(args.repeats):
        start = time.perf_counter()
        order = measured[:]
        random.Random(repeat).shuffle(order)
        for workload, contender in order:
            history = rates[(workload.name, contender.key)]
            # Sized once, from the calibration: every repeat times the same kept runner.
            crops = timed_crops(history[0], args.seconds, args.quick)
            if args.quick and repeat == 0:
                record = measure(servers[contender.server], contender, workload, crops,
                                 args.workers, repeat, sample=True)
                records.append(record)
            else:
                record = measure_clean(servers[contender.server], contender, workload, crops,
                                       args, repeat, budget, records)
            if "error" not in record:
                history.append(record["crops"] / record["seconds"])
        print(f"  repeat {repeat + 1}/{args.repeats}: {len(order)} measurements in "
              f"{time.perf_counter() - start:.0f} s ({budget.retries} retries so far, "
              f"{max(budget.left, 0):.0f} s of retry budget left)", flush=True)
    return records


# -- memory -------------------------------------------------------------------------------


def run_memory(quick: bool) -> dict[str, Any]:
    """Peak RSS for a small and a large VIA CSV, each in a fresh process."""
    sizes = {"small": 10**3, "large": 10**4} if quick else {"small": 10**4, "large": 10**6}
    pool = ensure_pool(memory.LINKED_IMAGES)
    found: dict[str, Any] = {}
    for name, rows in sizes.items():
        csv_name = f"via_{rows}_paths_{rows // memory.ROWS_PER_PATH}.csv"
        csv = memory.write_via_csv(CACHE / "memory" / csv_name, rows, pool)
        found[name] = memory.measure(csv)
    return found


# -- report -------------------------------------------------------------------------------


def environment(servers: dict[str, Server], args: argparse.Namespace) -> dict[str, Any]:
    """Machine, interpreter and library versions."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {b: s.info.get("versions", s.info.get("error", "")[-200:])
                     for b, s in servers.items()},
        "workers": args.workers, "repeats": args.repeats, "seconds": args.seconds,
        "quick": args.quick,
    }


def describe_workloads(workloads: dict[str, Workload]) -> dict[str, Any]:
    """Workload facts for the report."""
    return {w.name: {"title": w.title, "crops": len(w), "regions_per_image": w.regions_per_image,
                     "images": len(w) // w.regions_per_image,
                     "mean_file_kb": round(float(w.file_bytes.mean()) / 1024, 1),
                     "folder": w.image_dir} for w in workloads.values()}


def memory_lines(memory_result: dict[str, Any]) -> list[str]:
    """The memory test, one line per table size, plus where the large build peaked."""
    lines = []
    for result in memory_result.values():
        if "error" in result:
            lines.append(f"memory: failed: {result['error'].strip().splitlines()[-1]}")
            continue
        lines.append(
            f"memory, {result['rows']:,}-row VIA CSV ({result['csv_mb']} MB): peak RSS "
            f"{result['peak_mb']:.0f} MB = {result['baseline_mb']:.0f} after importing keras+numpy"
            f"+pandas + {result['dataset_mb']:.0f} for the dataset; build {result['build_s']} s, "
            f"first batch {result['first_batch_s']} s")
    large = max(memory_result.values(), key=lambda r: r.get("rows", 0))
    stages = large.get("build_profile", {}).get("peak_rss_mb_by_stage", {})
    if stages:
        lines.append(f"  peak RSS by build step ({large['rows']:,} rows): " + ", ".join(
            f"{name.split(':')[-1]} {mb:.0f}" for name, mb in stages.items()) + " MB")
    return lines


def render(results: report.Results, workloads: dict[str, Workload], env: dict[str, Any],
           found: list[report.Target], memory_result: dict[str, Any] | None) -> str:
    """The printed report."""
    versions = next((v for v in env["versions"].values() if isinstance(v, dict)), {})
    lines = [
        "",
        f"keras-roi-datagen benchmark: {env['cpu_count']} CPUs ({env['cpu']}), "
        f"workers={env['workers']}, median of {env['repeats']} repeats, "
        f"~{env['seconds']:g} s per measurement, 224x224 uint8 crops, batches of {BATCH}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "",
    ]
    for workload in workloads.values():
        lines += [*report.workload_table(results, workload.name, workload.title),
                  *report.mixing_lines(results, workload.name), ""]
    lines += [
        "crops/s: median over repeats of crops / (time from the start of a pass to its last "
        "batch; teardown is timed apart, in the JSON).",
        "MB/s: source JPEG bytes behind the delivered crops (each crop counts its file).",
        "/tf.al, /tf.aa, /classic: median of per-repeat ratios to tf.data (antialias=False), "
        "tf.data (antialias=True), the classic generator.",
        "MAE: mean |difference| (0-255) of the first 8 crops from Pillow's antialiased bilinear "
        "crop of the full image. spread: (max-min)/median over repeats.",
        "RoiDataset rows: shuffle=True, seed=0, dtype=uint8, batch_size=32, "
        f"workers={env['workers']} unless noted; 'best' = "
        + ", ".join(f"{k}={v}" for k, v in BY_KEY["roi_jax"].options.items()) + ".",
        report.noise_line(results, NOISE_CORES),
        "",
        "Targets (RoiDataset 'best', per backend; same run, same worker count):",
        *(f"  {target.line()}" for target in found),
    ]
    if memory_result:
        lines += ["", *memory_lines(memory_result)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs the whole benchmark."""
    args = parse_args(argv)
    started = time.perf_counter()
    print(f"keras-roi-datagen benchmark ({'quick' if args.quick else 'full'} run; cache "
          f"{CACHE})", flush=True)
    workloads = build_workloads(args.quick)
    if args.workloads:
        workloads = {name: w for name, w in workloads.items() if name in args.workloads}
    servers = start_servers(args.quick, sorted({c.server for c in CONTENDERS
                                                if args.contenders is None or c.key in args.contenders}))
    print(f"  backends ready in {time.perf_counter() - started:.0f} s", flush=True)
    try:
        records = run_contenders(args, workloads, servers)
    finally:
        for server in servers.values():
            server.close()
    memory_result = None
    if not args.skip_memory:
        start = time.perf_counter()
        memory_result = run_memory(args.quick)
        print(f"  memory test in {time.perf_counter() - start:.0f} s", flush=True)
    results = report.Results(records)
    found = report.targets(results, args.workers, memory_result)
    env = environment(servers, args)
    print(render(results, workloads, env, found, memory_result))
    wall = time.perf_counter() - started
    print(f"\ntotal wall time: {wall:.0f} s")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({
            "environment": env, "workloads": describe_workloads(workloads),
            "summary": results.summary(list(workloads)),
            "targets": [t.as_json() for t in found], "memory": memory_result,
            "measurements": records, "wall_s": round(wall, 1),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
        }, indent=1, default=str))
        print(f"report written to {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
