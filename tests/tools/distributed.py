"""Real multi-process training on localhost: exactly once across hosts, equal steps, elastic resume.

JAX: `--hosts` processes join one run with `jax.distributed.initialize` (a
localhost coordinator, gloo CPU collectives) and train a two-head model with
`keras.distribution.DataParallel` on a `RoiDataset` whose row count does not
divide into global batches (`shard="auto"` finds each host's place). Then a run
on 2 hosts is killed (SIGKILL) mid-epoch and resumed on 1 host and on 3 hosts.

PyTorch: ranks join one `torch.distributed` gloo group and train a Keras
model wrapped in `DistributedDataParallel` in a torch loop, as in Keras's
guide to distributed training with PyTorch. TensorFlow: two workers under
`MultiWorkerMirroredStrategy` must get the library's clear refusal (Keras 3
splits each host's batch between all replicas, and its `fit` there fails on
multi-output batches even with plain `tf.data`).

Each host records, per epoch, the steps it trained and the rows it trained with
weight > 0; the launcher asserts that every host ran the same number of steps,
that the hosts together trained every row exactly once per epoch, and that the
model weights are identical on every host afterwards.

    python tests/tools/distributed.py --report reports/distributed.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BATCH_SIZE = 4
SEED = 31


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def host_main(args: argparse.Namespace) -> None:
    """One host of a JAX (or TensorFlow multi-worker) run; writes its record as JSON."""
    import contextlib

    scope: Any = contextlib.nullcontext
    if args.host == "tensorflow":
        import tensorflow as tf

        scope = tf.distribute.MultiWorkerMirroredStrategy().scope
        import keras
    else:
        import jax

        jax.distributed.initialize(f"127.0.0.1:{args.port}", args.hosts, args.index)
        import keras

        # No `auto_shard_dataset=False` needed: Keras takes a RoiDataset as its own
        # data adapter before it checks that setting, and the dataset shards itself.
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    import numpy as np

    from keras_roi_datagen import RoiDataset, UnsupportedSetupError

    keras.utils.set_random_seed(SEED)

    trained: list[list[int]] = []

    class Recorded(RoiDataset):
        def _pass_batches(self, *args):
            for number, batch, rows in super()._pass_batches(*args):
                if recording:
                    epoch = self.current_pass.start.epoch
                    while len(trained) <= epoch:
                        trained.append([])
                    trained[epoch].extend(rows.tolist())
                yield number, batch, rows

    recording = False
    ds = Recorded(args.data, image_size=(24, 24), batch_size=BATCH_SIZE, seed=SEED)
    if args.state_in:
        ds.set_state(json.loads(Path(args.state_in).read_text()))
    steps: list[int] = []

    class Count(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            nonlocal recording
            recording = True
            trained.clear()

        def on_epoch_begin(self, epoch, logs=None):
            steps.append(0)

        def on_train_batch_end(self, batch, logs=None):
            steps[-1] += 1
            if args.stop_after and sum(steps) >= args.stop_after:
                _killed(args.out, ds, steps, trained)  # after DatasetCheckpoint saved this step

    with scope():
        inputs = keras.Input((24, 24, 3))
        x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = [keras.layers.Dense(v.num_classes, activation="softmax", name=c)(x)
                   for c, v in ds.vocabularies.items()]
        model = keras.Model(inputs, outputs)
        model.compile("adam", ["categorical_crossentropy"] * 2,
                      weighted_metrics=[["accuracy"], ["accuracy"]])
    callbacks: list[Any] = []
    if args.state_out:
        from keras_roi_datagen import DatasetCheckpoint

        callbacks.append(DatasetCheckpoint(ds, args.state_out, save_freq=1, delete_on_end=False))
    callbacks.append(Count())
    try:
        with scope():  # TensorFlow multi-worker: fit inside the strategy's scope
            model.fit(ds, epochs=args.epochs, verbose=0, callbacks=callbacks)
    except UnsupportedSetupError as refused:
        Path(args.out).write_text(json.dumps({"shard": list(ds.shard), "refused": str(refused)}))
        return
    weights = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights()))
    record = {"shard": list(ds.shard), "steps": steps, "rows": trained, "len": len(ds),
              "weights": weights.hexdigest(), "state": ds.get_state()}
    Path(args.out).write_text(json.dumps(record))


def torch_host_main(args: argparse.Namespace) -> None:
    """One rank of a PyTorch DDP run training a Keras model in a torch loop."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=args.index,
                            world_size=args.hosts)
    import keras
    import numpy as np

    from keras_roi_datagen import RoiDataset

    keras.utils.set_random_seed(SEED)
    ds = RoiDataset(args.data, image_size=(24, 24), batch_size=BATCH_SIZE, seed=SEED,
                    label_mode="int")  # shard="auto": rank and world size
    if args.state_in:
        ds.set_state(json.loads(Path(args.state_in).read_text()))
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = [keras.layers.Dense(v.num_classes, name=c)(x) for c, v in ds.vocabularies.items()]
    model = keras.Model(inputs, outputs)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    steps: list[int] = []
    trained: list[list[int]] = []
    total = 0
    for _ in range(args.epochs):
        epoch = ds.epoch
        steps.append(0)
        while len(trained) <= epoch:
            trained.append([])
        for _number, batch, rows in ds._pass_batches():
            images, labels = batch[0], batch[1]
            # One host has nothing to pad: (x, y) without weights.
            weights = batch[2] if len(batch) == 3 else [np.ones(len(images), "float32")] * len(labels)
            logits = ddp(torch.as_tensor(images))
            loss = sum(
                (torch.nn.functional.cross_entropy(out, torch.as_tensor(y).long(), reduction="none")
                 * torch.as_tensor(w)).sum() / len(w)
                for out, y, w in zip(logits, labels, weights))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps[-1] += 1
            trained[epoch].extend(rows.tolist())
            total += 1
            if args.stop_after and total >= args.stop_after:
                if args.state_out and args.index == 0:  # what a checkpoint would hold
                    Path(args.state_out).mkdir(parents=True, exist_ok=True)
                    Path(args.state_out, "dataset_state.json").write_text(json.dumps(ds.get_state()))
                _killed(args.out, ds, steps, trained)
        ds.on_epoch_end()
    weights = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights()))
    record = {"shard": list(ds.shard), "steps": steps, "rows": trained, "len": len(ds),
              "weights": weights.hexdigest(), "state": ds.get_state()}
    Path(args.out).write_text(json.dumps(record))
    dist.destroy_process_group()


def _killed(out: str, ds: Any, steps: list[int], trained: list[list[int]]) -> None:
    """Writes what this host trained so far, then dies by SIGKILL mid-epoch."""
    Path(out).write_text(json.dumps({"shard": list(ds.shard), "steps": steps, "rows": trained,
                                     "killed": True}))
    os.kill(os.getpid(), signal.SIGKILL)


def run_hosts(data: Path, hosts: int, work: Path, name: str, epochs: int, stop_after: int = 0,
              state_in: Path | None = None, state_out: Path | None = None,
              backend: str = "jax") -> list[dict]:
    """Starts `hosts` processes of one run and returns their records."""
    port = _free_port()
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = []
    ports = [_free_port() for _ in range(hosts)]
    for index in range(hosts):
        if backend == "tensorflow":
            env["TF_CONFIG"] = json.dumps({
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                "task": {"type": "worker", "index": index}})
        command = [sys.executable, __file__, "--host", backend, "--data", str(data), "--hosts", str(hosts),
                   "--index", str(index), "--port", str(port), "--epochs", str(epochs),
                   "--stop-after", str(stop_after), "--out", str(work / f"{name}-{index}.json")]
        if state_in:
            command += ["--state-in", str(state_in)]
        if state_out:
            command += ["--state-out", str(state_out)]
        procs.append(subprocess.Popen(command, env=dict(env)))
    for proc in procs:
        code = proc.wait(timeout=600)
        if code and not (stop_after and code == -signal.SIGKILL):
            raise SystemExit(f"FAILED: {name}: a host exited with {code}")
    return [json.loads((work / f"{name}-{i}.json").read_text()) for i in range(hosts)]


def _check_run(name: str, records: list[dict], n_rows: int, epochs: range,
               before: dict[int, list[int]] | None = None) -> list[str]:
    failures = []
    steps = [r["steps"] for r in records]
    if len({json.dumps(s) for s in steps}) != 1:
        failures.append(f"{name}: hosts ran different step counts {steps}")
    if len({r["weights"] for r in records}) != 1:
        failures.append(f"{name}: model weights differ between hosts")
    for epoch in epochs:
        rows = [row for r in records for row in (r["rows"][epoch] if epoch < len(r["rows"]) else [])]
        rows += (before or {}).get(epoch, [])
        if sorted(rows) != list(range(n_rows)):
            failures.append(f"{name}: epoch {epoch} trained {len(rows)} rows ({len(set(rows))} "
                            f"distinct) of {n_rows}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default="reports/distributed.json")
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="jax,torch,tensorflow")
    parser.add_argument("--data")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stop-after", type=int, default=0)
    parser.add_argument("--state-in")
    parser.add_argument("--state-out")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.host:
        (torch_host_main if args.host == "torch" else host_main)(args)
        return 0

    from keras_roi_datagen import RoiDataset
    from keras_roi_datagen.demo import make_demo_dataset

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="distributed-"))
    data = make_demo_dataset(work / "data", n_images=6, seed=5)
    n_rows = len(RoiDataset(data, image_size=(8, 8), seed=0, shard=(0, 1)).index)
    lines, failures = [], []

    def report(name: str, records: list[dict]) -> None:
        for r in records:
            lines.append(f"{name}: host {r['shard'][0]}/{r['shard'][1]} steps per epoch "
                         f"{r['steps']}, rows trained per epoch {[len(e) for e in r['rows']]}")

    if n_rows % (BATCH_SIZE * 2) == 0:
        failures.append(f"{n_rows} rows divide into global batches: padding is not exercised")
    for backend in args.backends.split(","):
        if backend == "tensorflow":
            # Keras 3 cannot train host parts under MultiWorkerMirroredStrategy: a clear error.
            refused = run_hosts(data, 2, work, "tensorflow-2-workers", epochs=1, backend=backend)
            for r in refused:
                lines.append(f"tensorflow 2 workers: host {r['shard'][0]}/{r['shard'][1]} refused: "
                             f"{r.get('refused', 'NOT REFUSED')[:90]}...")
            if not all("multi-worker" in r.get("refused", "") for r in refused):
                failures.append("tensorflow: multi-worker training was not refused with a clear error")
            continue
        whole = run_hosts(data, 2, work, f"{backend}-2-hosts", epochs=2, backend=backend)
        report(f"{backend} 2 hosts", whole)
        failures += _check_run(f"{backend} 2 hosts", whole, n_rows, range(2))
        for resume_hosts in (1, 3):
            name = f"{backend} 2 hosts killed, resumed on {resume_hosts}"
            state = work / f"state-{backend}-{resume_hosts}"
            first = run_hosts(data, 2, work, f"{backend}-stop-{resume_hosts}", epochs=1,
                              stop_after=1, state_out=state, backend=backend)
            report(f"{name} (first part)", first)
            before: dict[int, list[int]] = {}
            for r in first:
                # Only the steps trained count: the dataset may have served one more.
                for epoch, rows in enumerate(r["rows"]):
                    before.setdefault(epoch, []).extend(rows[: sum(r["steps"]) * BATCH_SIZE])
            if sorted(before.get(0, [])) == list(range(n_rows)):
                failures.append(f"{name}: the first part trained the whole epoch; nothing to resume")
            second = run_hosts(data, resume_hosts, work, f"{backend}-resume-{resume_hosts}",
                               epochs=1, state_in=state / "dataset_state.json", backend=backend)
            report(f"{name} (rest)", second)
            failures += _check_run(name, second, n_rows, range(1), before)

    print(f"{n_rows} rows, batch_size {BATCH_SIZE} per host, seed {SEED}:")
    for line in lines:
        print("  " + line)
    for failure in failures:
        print("FAILED:", failure)
    seconds = round(time.perf_counter() - started, 1)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps({"ok": not failures, "rows": n_rows, "lines": lines,
                                             "failures": failures, "seconds": seconds}, indent=1))
    print(f"{'PASS' if not failures else 'FAIL'} ({seconds} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
