"""Parity: the same batches on every backend, worker mode and data path.

For a fixed demo dataset and seed, every configuration (dataset options x
backend x worker mode x path) digests 3 epochs of batches: sha256 of the bytes of `x` and of every
label head, per batch. The paths are `ds[i]` and Keras's own `fit` data path
(the backend's EpochIterator over the dataset as adapter, including the
one-batch peek `fit` makes to build the model, with `shuffle=True` as `fit`
passes by default). A real `model.fit` records which rows each epoch served.

The dataset options are the defaults ("plain") and a region augmentation
recipe ("augmented": box jitter, rotation with a reflected border, flips,
colour, erasing). Within each, all digests must be equal, and every row must
be served exactly once per epoch. On a mismatch the first differing batch, key and max abs difference are
printed. Exit status 1 on any failure.

    python tests/tools/parity.py --report reports/parity.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
MODES = {"workers=0": (0, False, "channels_last"), "threads=2": (2, False, "channels_last"),
         "processes=2": (2, True, "channels_last"),
         # The same pixels transposed: digested after transposing back.
         "processes=2 channels_first": (2, True, "channels_first")}
EPOCHS = 3
SEED = 2024
OPTIONS = {
    "plain": {},
    "augmented": {"augment": {"zoom": [0.8, 1.25], "shift": 0.1, "aspect": [0.8, 1.25],
                              "context": 0.1, "rotation": 10, "horizontal_flip": True,
                              "vertical_flip": True, "brightness": 0.2, "contrast": 0.2,
                              "saturation": [0.4, 0.6], "hue": 0.1, "erasing": 0.25},
                  "border": "reflect"},
}


def _flatten(batch, data_format="channels_last"):
    x, ys = batch[0], batch[1]
    if data_format == "channels_first":
        x = np.asarray(x).transpose(0, 2, 3, 1)
    heads = ys if isinstance(ys, (tuple, list)) else (ys,)
    return {"x": np.asarray(x), **{f"y{k}": np.asarray(y) for k, y in enumerate(heads)}}


def _to_numpy(value):
    if isinstance(value, (tuple, list)):
        return type(value)(_to_numpy(v) for v in value)
    if hasattr(value, "cpu"):
        value = value.cpu()
    return np.asarray(value)


def _fit_path(ds, backend: str):
    """Yields epochs of batches exactly as `fit` pulls them on this backend."""
    if backend == "jax":
        from keras.src.backend.jax.trainer import JAXEpochIterator as Iterator
        extra = {}
    elif backend == "torch":
        from keras.src.backend.torch.trainer import TorchEpochIterator as Iterator
        extra = {}
    else:
        import tensorflow as tf
        from keras.src.backend.tensorflow.trainer import TFEpochIterator as Iterator
        extra = {"distribute_strategy": tf.distribute.get_strategy()}
    epochs = Iterator(x=ds, shuffle=True, steps_per_execution=1, **extra)

    def pull(data):
        return data[0] if isinstance(data, list) else next(data)

    for _, _, data in epochs:  # the peek fit makes to build an unbuilt model
        pull(data)
        break
    epochs.reset()
    for _ in range(EPOCHS):
        yield [_to_numpy(pull(data)) for _, _, data in epochs]


def _getitem_path(ds):
    for _ in range(EPOCHS):
        yield [ds[i] for i in range(len(ds))]
        ds.on_epoch_end()


def _fit_rows(csv: str, workers: int, processes: bool) -> list[list[int]]:
    import keras

    from keras_roi_datagen import RoiDataset

    class Recording(RoiDataset):
        passes: list

        def _pass_batches(self, *args):
            record = []
            self.passes.append((self.epoch, record))
            for number, batch, rows in super()._pass_batches(*args):
                record.extend(rows.tolist())
                yield number, batch, rows

    ds = Recording(csv, image_size=(32, 32), batch_size=8, seed=SEED, workers=workers,
                   use_multiprocessing=processes)
    ds.passes = []
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, [keras.layers.Dense(v.num_classes, name=c)(x)
                                 for c, v in ds.vocabularies.items()])
    model.compile("sgd", ["mse", "mse"])

    class TrainBegins(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            ds.passes.clear()  # what was served before: fit's peek to build the model

    model.fit(ds, epochs=EPOCHS, verbose=0, callbacks=[TrainBegins()])
    by_epoch: dict[int, list[int]] = {}
    for epoch, rows in ds.passes:
        by_epoch.setdefault(epoch, []).extend(rows)
    return [by_epoch.get(e, []) for e in range(EPOCHS)]


def run_backend(backend: str, csv: str, out: Path) -> dict:
    """Digests every mode and path on the current backend (run in a subprocess)."""
    from keras_roi_datagen import RoiDataset

    results = {}
    for config, options in OPTIONS.items():
        for mode, (workers, processes, data_format) in MODES.items():
            for path in ("getitem", "fit"):
                ds = RoiDataset(csv, image_size=(32, 32), batch_size=8, seed=SEED,
                                workers=workers, use_multiprocessing=processes,
                                data_format=data_format, **options)
                epochs = _getitem_path(ds) if path == "getitem" else _fit_path(ds, backend)
                name = f"{config} {backend} {mode} {path}"
                results[name] = _digests(epochs, out / _file(name), data_format)
            if config == "plain" and data_format == "channels_last":
                results[f"plain {backend} {mode} fit"]["rows"] = _fit_rows(csv, workers, processes)
    return results


def _file(name: str) -> str:
    return name.replace(" ", "_").replace("=", "") + ".npz"


def _digests(epochs, npz: Path, data_format: str = "channels_last") -> dict:
    """sha256 of every batch of every epoch; the arrays are saved to `npz` for diagnosis."""
    digests, arrays = [], {}
    for epoch, batches in enumerate(epochs):
        row = []
        for number, batch in enumerate(batches):
            parts = _flatten(batch, data_format)
            h = hashlib.sha256()
            for key, value in parts.items():
                h.update(key.encode() + np.ascontiguousarray(value).tobytes())
                arrays[f"e{epoch}_b{number}_{key}"] = value
            row.append(h.hexdigest())
        digests.append(row)
    np.savez(npz, **arrays)
    return {"digests": digests}


def _compare(results: dict, out: Path) -> list[str]:
    """Each configuration against the first of the same dataset options."""
    failures = []
    references: dict[str, str] = {}
    for name in results:
        reference = references.setdefault(name.split()[0], name)
        if name == reference:
            continue
        if results[name]["digests"] == results[reference]["digests"]:
            continue
        mine, theirs = results[name]["digests"], results[reference]["digests"]
        for epoch, (a, b) in enumerate(zip(mine, theirs)):
            differing = [i for i, (p, q) in enumerate(zip(a, b)) if p != q]
            if differing or len(a) != len(b):
                number = differing[0] if differing else min(len(a), len(b))
                detail = _difference(out, reference, name, epoch, number)
                failures.append(f"{name} differs from {reference}: epoch {epoch}, batch {number}"
                                f" ({len(a)} vs {len(b)} batches): {detail}")
                break
    return failures


def _difference(out: Path, first: str, second: str, epoch: int, number: int) -> str:
    def load(name):
        return np.load(out / _file(name))
    a, b = load(first), load(second)
    prefix = f"e{epoch}_b{number}_"
    keys = sorted(k for k in a.files if k.startswith(prefix))
    for key in keys:
        if key not in b.files:
            return f"key {key[len(prefix):]} missing"
        if a[key].shape != b[key].shape:
            return f"key {key[len(prefix):]} shape {a[key].shape} vs {b[key].shape}"
        if not np.array_equal(a[key], b[key]):
            diff = np.abs(a[key].astype(np.float64) - b[key].astype(np.float64)).max()
            return f"key {key[len(prefix):]} max abs difference {diff}"
    return "batch missing"


def _exactly_once(results: dict, n_rows: int) -> list[str]:
    failures = []
    for name, result in results.items():
        for epoch, rows in enumerate(result.get("rows", [])):
            if sorted(rows) != list(range(n_rows)):
                failures.append(f"{name}: epoch {epoch} served {len(rows)} rows "
                                f"({len(set(rows))} distinct) of {n_rows}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default="reports/parity.json")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--backend-run", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend_run:
        results = run_backend(args.backend_run, args.data, Path(args.out))
        Path(args.out, f"{args.backend_run}.json").write_text(json.dumps(results))
        return 0

    from keras_roi_datagen.demo import make_demo_dataset

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="parity-"))
    csv = make_demo_dataset(work / "data", n_images=24, seed=11)
    results: dict = {}
    for backend in args.backends.split(","):
        env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run([sys.executable, __file__, "--backend-run", backend, "--data",
                               str(csv), "--out", str(work)], env=env, timeout=900)
        if done.returncode:
            print(f"FAILED: the {backend} run exited with {done.returncode}")
            return 1
        results.update(json.loads((work / f"{backend}.json").read_text()))

    from keras_roi_datagen import RoiDataset

    n_rows = len(RoiDataset(csv, image_size=(32, 32)).index)
    failures = _compare(results, work) + _exactly_once(results, n_rows)
    firsts = {}
    for name, result in results.items():
        firsts.setdefault(name.split()[0], result["digests"])
    epochs = {config: [hashlib.sha256("".join(e).encode()).hexdigest() for e in digests]
              for config, digests in firsts.items()}
    print(f"{len(results)} configurations (options x backend x worker mode x path), {n_rows} rows, "
          f"{EPOCHS} epochs, seed {SEED}:")
    for name, result in results.items():
        same = result["digests"] == firsts[name.split()[0]]
        rows = "exactly once" if "rows" in result and not _exactly_once({name: result}, n_rows) \
            else ("-" if "rows" not in result else "ROWS WRONG")
        print(f"  {name:<42} {'same' if same else 'DIFFERENT':<10} fit rows: {rows}")
    for config, values in epochs.items():
        for epoch, value in enumerate(values):
            print(f"{config} epoch {epoch} digest: {value}")
    if len(set(map(tuple, epochs.values()))) < len(epochs):
        failures.append("the augmented batches equal the plain ones: augmentation did nothing")
    for failure in failures:
        print("FAILED:", failure)
    report = {"ok": not failures, "configurations": len(results), "rows": n_rows,
              "epoch_digests": epochs, "failures": failures, "seconds":
              round(time.perf_counter() - started, 1), "results": results}
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=1))
    print(f"{'PASS' if not failures else 'FAIL'}: report in {args.report} "
          f"({report['seconds']} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
