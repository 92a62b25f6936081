"""Turns raw measurements into medians, paired ratios, the printed table and target lines.

Ratios are paired: for each repeat, contender A's rate over contender B's
rate *in that repeat* (both measured minutes apart at most, interleaved), then
the median over repeats. This cancels most of the drift of a noisy machine.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contenders import CONTENDERS

ROI_BACKENDS = ("roi_tensorflow", "roi_jax", "roi_torch")
ROI_DEFAULTS = ("roi_tensorflow_defaults", "roi_jax_defaults")
EPOCH2 = {c.base: c.key for c in CONTENDERS if c.kind == "cached"}
MEMORY_TARGET_MB = 300.0


@dataclass(frozen=True)
class Target:
    """One line of the targets section: what was asked, what was measured."""

    name: str
    passed: bool | None  # None: could not be measured
    detail: str

    def line(self) -> str:
        """The printed line."""
        verdict = {True: "PASS", False: "FAIL", None: "N/A "}[self.passed]
        return f"[{verdict}] {self.name}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"target": self.name, "passed": self.passed, "detail": self.detail}


class Results:
    """Rates per (workload, contender, repeat), from the measurement records."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.rates: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        self.mbps: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        self.mae: dict[tuple[str, str], float] = {}
        self.teardown: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.errors: dict[tuple[str, str], str] = {}
        self.mixing: dict[tuple[str, str], dict[str, float]] = {}
        self.foreign: list[float] = []
        self.retried = sum(bool(record.get("discarded")) for record in records)
        for record in records:
            if record.get("discarded"):
                continue
            key = (record["workload"], record["contender"])
            if "error" in record:
                self.errors[key] = record["error"].strip().splitlines()[-1]
                continue
            if "mae" in record:
                self.mae[key] = record["mae"]
            if "mixing" in record.get("config", {}):
                self.mixing[key] = record["config"]["mixing"]
            if record["repeat"] < 0:
                continue
            self.rates[key][record["repeat"]] = record["crops"] / record["seconds"]
            if record.get("foreign_cores") is not None:
                self.foreign.append(record["foreign_cores"])
            self.mbps[key][record["repeat"]] = record["source_bytes"] / record["seconds"] / 1e6
            self.teardown[key].append(record.get("teardown_s", 0.0))

    def rate(self, workload: str, contender: str) -> float | None:
        """Median crops/s over repeats."""
        values = self.rates.get((workload, contender))
        return statistics.median(values.values()) if values else None

    def spread(self, workload: str, contender: str) -> float | None:
        """(max - min) / median of crops/s over repeats."""
        values = list(self.rates.get((workload, contender), {}).values())
        if len(values) < 2:
            return None
        return (max(values) - min(values)) / statistics.median(values)

    def ratio(self, workload: str, a: str, b: str) -> float | None:
        """Median over repeats of rate(a) / rate(b) within the same repeat."""
        ra, rb = self.rates.get((workload, a), {}), self.rates.get((workload, b), {})
        paired = [ra[r] / rb[r] for r in ra if r in rb and rb[r] > 0]
        return statistics.median(paired) if paired else None

    def summary(self, workloads: Sequence[str]) -> dict[str, Any]:
        """Medians, spreads and the main ratios per workload, for the JSON report."""
        out: dict[str, Any] = {}
        for workload in workloads:
            rows = {}
            for contender in CONTENDERS:
                key = (workload, contender.key)
                if key not in self.rates and key not in self.errors:
                    continue
                rows[contender.key] = {
                    "crops_per_s": self.rate(workload, contender.key),
                    "mb_per_s": statistics.median(self.mbps[key].values()) if self.mbps.get(key)
                    else None,
                    "spread": self.spread(workload, contender.key),
                    "per_repeat": self.rates.get(key, {}),
                    "teardown_s": statistics.median(self.teardown[key])
                    if self.teardown.get(key) else None,
                    "mae_vs_pillow": self.mae.get(key),
                    "vs_tf_aliased": self.ratio(workload, contender.key, "tf_aliased"),
                    "vs_tf_antialias": self.ratio(workload, contender.key, "tf_antialias"),
                    "vs_classic": self.ratio(workload, contender.key, "classic"),
                    "error": self.errors.get(key),
                }
            out[workload] = rows
        return out


# -- printing -----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1, width: int = 9) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:{width}.{digits if value < 1000 else 0}f}"


def _ratio(value: float | None, width: int = 8) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:{width - 1}.{2 if value < 100 else 0}f}x"


HEADER = (f"{'contender':<50}{'crops/s':>9}{'epoch 2':>9}{'MB/s':>8}{'/tf.al':>8}{'/tf.aa':>8}"
          f"{'/classic':>9}{'MAE':>6}{'spread':>7}")


def workload_table(results: Results, workload: str, title: str) -> list[str]:
    """The table block of one workload."""
    lines = [f"{workload}: {title}", HEADER, "-" * len(HEADER)]
    for contender in CONTENDERS:
        key = (workload, contender.key)
        if contender.kind == "cached":  # shown in its base's "epoch 2" column
            if key in results.errors:
                lines.append(f"{contender.label:<50}  unavailable: {results.errors[key][:60]}")
            continue
        if key in results.errors:
            lines.append(f"{contender.label:<50}  unavailable: {results.errors[key][:60]}")
            continue
        if key not in results.rates:
            continue
        mbps = statistics.median(results.mbps[key].values())
        spread = results.spread(workload, contender.key)
        mae = results.mae.get(key)
        cached = EPOCH2.get(contender.key)
        lines.append(
            f"{contender.label:<50}{_num(results.rate(workload, contender.key))}"
            f"{_num(results.rate(workload, cached) if cached else None)}"
            f"{_num(mbps, 1, 8)}"
            f"{_ratio(results.ratio(workload, contender.key, 'tf_aliased'))}"
            f"{_ratio(results.ratio(workload, contender.key, 'tf_antialias'))}"
            f"{_ratio(results.ratio(workload, contender.key, 'classic'), 9)}"
            f"{_num(mae, 2, 6)}"
            f"{(f'{spread * 100:5.0f}%' if spread is not None else '-'):>7}")
    return lines


def mixing_lines(results: Results, workload: str) -> list[str]:
    """Batch mixing of each RoiDataset plan measured on `workload`, beside its speed."""
    lines = []
    for contender in CONTENDERS:
        found = results.mixing.get((workload, contender.key))
        if found is None or contender.kind == "cached":
            continue
        lines.append(f"  {contender.label.strip():<56} {found['images_per_batch']:5.1f} images/batch, "
                     f"label entropy {found['label_entropy_bits']:.2f} bits/batch")
    return [f"{workload} batch mixing (RoiDataset plans):", *lines] if lines else []


# -- targets ------------------------------------------------------------------------------


def _per_backend(results: Results, workload: str, baseline: str, goal: float,
                 keys: Sequence[str] = ROI_BACKENDS) -> tuple[bool | None, str]:
    parts, verdicts = [], []
    for key in keys:
        value = results.ratio(workload, key, baseline)
        backend = key.removeprefix("roi_")
        parts.append(f"{backend} {value:.2f}x" if value is not None else f"{backend} n/a")
        if value is not None:
            verdicts.append(value >= goal)
    passed = all(verdicts) if verdicts else None
    return passed, ", ".join(parts)


def _floor_note(results: Results, workload: str, key: str = "roi_jax") -> str:
    best = results.rate(workload, key)
    pillow = results.rate(workload, "floor_decode_pillow")
    simple = results.rate(workload, "floor_decode_simplejpeg")
    notes = []
    if best and pillow:
        notes.append(f"floor: Pillow full decode {pillow:.0f} crops/s ({key} at "
                     f"{best / pillow:.0%} of it)")
    if best and simple:
        notes.append(f"simplejpeg floor {simple:.0f}")
    return "; ".join(notes)


def _ratio_target(results: Results, name: str, workloads: Sequence[str], a: str, b: str,
                  goal: float) -> Target:
    parts, verdicts = [], []
    for workload in workloads:
        value = results.ratio(workload, a, b)
        if value is not None:
            parts.append(f"{workload} {value:.2f}x")
            verdicts.append(value >= goal)
    return Target(name, all(verdicts) if verdicts else None, ", ".join(parts) or "not measured")


def _with_floor(target: Target, results: Results, workload: str, key: str) -> Target:
    if target.passed is False:
        note = _floor_note(results, workload, key)
        return Target(target.name, False, target.detail + (f" | {note}" if note else ""))
    return target


def targets(results: Results, workers: int, memory: dict[str, Any] | None) -> list[Target]:
    """Evaluates the issue's targets; a failed speed target names the decode floor."""
    found = []
    passed, detail = _per_backend(results, "W1", "tf_aliased", 1.5, ROI_DEFAULTS)
    found.append(_with_floor(Target("W1 RoiDataset defaults >= 1.5x tuned tf.data", passed, detail),
                             results, "W1", "roi_jax_defaults"))
    for workload in ("W2", "W3"):
        passed, detail = _per_backend(results, workload, "tf_antialias", 1.0, ROI_DEFAULTS)
        found.append(_with_floor(Target(
            f"{workload} RoiDataset defaults >= 1.0x tf.data at equal quality (antialias=True)",
            passed, detail), results, workload, "roi_jax_defaults"))
    passed, detail = _per_backend(results, "W1", "tf_aliased", 2.0)
    found.append(_with_floor(Target("W1 RoiDataset best >= 2x tuned tf.data", passed, detail),
                             results, "W1", "roi_jax"))
    passed, detail = _per_backend(results, "W1", "classic", 5.0)
    found.append(Target("W1 RoiDataset best >= 5x the classic generator", passed, detail))
    found.append(_ratio_target(results, "TF backend >= 0.9x the JAX backend (best)",
                               ("W1", "W2", "W3"), "roi_tensorflow", "roi_jax", 0.9))
    found.append(_ratio_target(results, "W1 processes >= threads (best, jax)", ("W1",),
                               "roi_jax_processes", "roi_jax", 1.0))
    found.append(_ratio_target(results, "W1 epoch 2 from cache=True >= 4x epoch 1 (defaults, jax)",
                               ("W1",), "roi_jax_cache", "roi_jax_defaults", 4.0))
    found.append(_scaling_target(results, workers))
    found.append(_augment_target(results))
    found.append(_memory_target(memory))
    return found


def _augment_target(results: Results) -> Target:
    value = results.ratio("W1", "roi_jax_augmented", "roi_jax")
    detail = "not measured" if value is None else f"jax {value:.2f}x"
    if value is not None and value < 0.8:
        detail += (" | floor: each crop's colour ops and flip are five Pillow calls (copy in, "
                   "histogram, table lookup, transpose, copy out) of fixed cost per crop, "
                   "and windows past the image's edge take the affine sampler; "
                   "`python benchmarks/profile_roi.py --augment` shows the split")
    return Target("W1 augmented (zoom, shift, flip, brightness, contrast) >= 0.8x unaugmented",
                  None if value is None else value >= 0.8, detail)


def _scaling_target(results: Results, workers: int) -> Target:
    name = f"{workers} workers >= 1.8x 1 worker (RoiDataset jax, best config)"
    if workers != 2:
        name = f"{workers} workers vs 1 worker (target is 2 workers >= 1.8x; run --workers 2)"
    parts, verdicts = [], []
    for workload in ("W1", "W2", "W3"):
        value = results.ratio(workload, "roi_jax", "roi_jax_1worker")
        if value is not None:
            parts.append(f"{workload} {value:.2f}x")
            verdicts.append(value >= 1.8)
    passed = (all(verdicts) if verdicts else None) if workers == 2 else None
    return Target(name, passed, ", ".join(parts) or "not measured")


def _memory_target(memory: dict[str, Any] | None) -> Target:
    name = "peak RSS, 10^6-row table within 300 MB of a 10^4-row table"
    if not memory or "small" not in memory or "large" not in memory:
        return Target(name, None, "not measured")
    small, large = memory["small"], memory["large"]
    if "error" in small or "error" in large:
        return Target(name, None, f"failed: {small.get('error') or large.get('error')}")
    difference = large["peak_mb"] - small["peak_mb"]
    detail = (f"{large['rows']:,} rows: peak {large['peak_mb']:.0f} MB ({large['dataset_mb']:.0f}"
              f" above imports, built in {large['build_s']:.1f} s); {small['rows']:,} rows: peak "
              f"{small['peak_mb']:.0f} MB ({small['dataset_mb']:.0f} above imports); difference "
              f"{difference:.0f} MB ({difference - MEMORY_TARGET_MB:+.0f} MB vs the 300 MB budget)")
    if large["rows"] < 10**6:
        return Target(name + " [quick: smaller tables]", None, detail)
    return Target(name, difference <= MEMORY_TARGET_MB, detail)


def noise_line(results: Results, threshold: float) -> str:
    """How much other programs ran during the timed measurements that were kept."""
    if not results.foreign:
        return "foreign CPU load: not measured (no /proc)"
    noisy = sum(load > threshold for load in results.foreign)
    return (f"foreign CPU load (other programs) during kept measurements: median "
            f"{statistics.median(results.foreign):.2f} cores, max {max(results.foreign):.2f}; "
            f"{noisy} of {len(results.foreign)} above {threshold} cores after {results.retried} "
            "re-measurements")
