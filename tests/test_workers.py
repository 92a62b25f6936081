"""Worker threads and processes: same batches, loud failures, no hangs, no orphans.

Scenarios that could hang run in a subprocess under a watchdog timeout.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import scene_table

from keras_roi_datagen import RoiDataset, WorkerError
from keras_roi_datagen.imaging import DecodeOptions

WATCHDOG = 120  # seconds; a hang fails the test instead of stalling CI

pytestmark = pytest.mark.slow


def digest(batches):
    h = hashlib.sha256()
    for batch in batches:
        for part in (batch[0], *batch[1]):
            h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead; it only waits to be reaped
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def run_script(code: str, tmp_path: Path, timeout: float = WATCHDOG, **env: str):
    script = tmp_path / "scenario.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env={**os.environ, **env})


@pytest.mark.parametrize(("workers", "processes"), [(2, False), (2, True), (1, True)])
def test_every_worker_mode_yields_the_same_batches(scenes, workers, processes):
    table, folder = scenes
    reference = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=5, seed=3)
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=5, seed=3,
                    workers=workers, use_multiprocessing=processes, max_queue_size=2)
    for _ in range(2):
        assert digest(ds.iter_batches()) == digest(reference.iter_batches())
        ds.on_epoch_end()
        reference.on_epoch_end()


def test_worker_processes_stop_when_the_pass_ends(scenes):
    table, folder = scenes
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=4,
                    workers=2, use_multiprocessing=True)
    batches = ds.iter_batches()
    next(batches)
    pids = ds.worker_pids
    assert len(pids) == 2 and all(alive(p) for p in pids)
    list(batches)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    assert ds.worker_pids == []


@pytest.mark.parametrize("processes", [False, True])
def test_an_exception_in_a_worker_surfaces_with_its_traceback(scenes, processes):
    table, folder = scenes
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=4, workers=2,
                    use_multiprocessing=processes)
    # An option no public argument allows: the decoder fails in the worker.
    ds._assembler.options = DecodeOptions((16, 16), interpolation="no-such-filter")
    with pytest.raises(WorkerError) as info:
        list(ds.iter_batches())
    message = str(info.value)
    assert "Original traceback" in message and "KeyError: 'no-such-filter'" in message


def test_sigkilled_worker_is_an_error_not_a_hang(scenes):
    table, folder = scenes
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=1, workers=2,
                    use_multiprocessing=True, max_queue_size=1)
    batches = ds.iter_batches()
    next(batches)
    for pid in ds.worker_pids:
        os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"was killed by signal SIGKILL"):
        list(batches)
    assert time.monotonic() - started < 30


def test_sigkilled_worker_during_fit_fails_fit_within_the_watchdog(tmp_path):
    scene_table(tmp_path)  # images only
    result = run_script(f"""
        import os, signal, threading, keras, numpy as np
        import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import scene_table
        from keras_roi_datagen import RoiDataset, WorkerError
        table = scene_table(__import__("pathlib").Path("."))
        ds = RoiDataset(table, image_size=(16, 16), batch_size=1, workers=2,
                        use_multiprocessing=True, max_queue_size=1)
        class Killer(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == 2:
                    for pid in ds.worker_pids:
                        os.kill(pid, signal.SIGKILL)
        inputs = keras.Input((16, 16, 3))
        flat = keras.layers.Flatten()(inputs)
        model = keras.Model(inputs, [keras.layers.Dense(4)(flat), keras.layers.Dense(2)(flat)])
        model.compile("sgd", ["mse", "mse"])
        try:
            model.fit(ds, epochs=3, callbacks=[Killer()], verbose=0)
        except WorkerError as error:
            print("WORKER_ERROR", str(error).splitlines()[0])
        """, tmp_path)
    assert "WORKER_ERROR" in result.stdout, result.stderr[-3000:]
    assert "SIGKILL" in result.stdout


def test_workers_exit_when_the_training_process_is_killed(tmp_path):
    scene_table(tmp_path)
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import scene_table
        from keras_roi_datagen import RoiDataset
        ds = RoiDataset(scene_table(__import__("pathlib").Path(".")), image_size=(16, 16),
                        batch_size=1, workers=2, use_multiprocessing=True)
        batches = ds.iter_batches(); next(batches)
        print(*ds.worker_pids, flush=True)
        time.sleep(600)
        """)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in process.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in pids), "orphaned decode workers"
    finally:
        process.kill()


def test_keyboard_interrupt_during_fit_leaves_no_workers(tmp_path):
    scene_table(tmp_path)
    result = run_script(f"""
        import os, signal, keras, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import scene_table
        from keras_roi_datagen import RoiDataset
        ds = RoiDataset(scene_table(__import__("pathlib").Path(".")), image_size=(16, 16),
                        batch_size=1, workers=2, use_multiprocessing=True)
        seen = []
        class Interrupt(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.extend(ds.worker_pids)
                if batch == 3:
                    raise KeyboardInterrupt
        inputs = keras.Input((16, 16, 3))
        flat = keras.layers.Flatten()(inputs)
        model = keras.Model(inputs, [keras.layers.Dense(4)(flat), keras.layers.Dense(2)(flat)])
        model.compile("sgd", ["mse", "mse"])
        try:
            model.fit(ds, epochs=2, callbacks=[Interrupt()], verbose=0)
        except KeyboardInterrupt:
            print("INTERRUPTED", *sorted(set(seen)), flush=True)
        """, tmp_path)
    assert "INTERRUPTED" in result.stdout, result.stderr[-3000:]
    pids = [int(p) for p in result.stdout.split("INTERRUPTED")[1].split()]
    assert pids
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


def test_process_workers_do_not_fork_the_training_process(tmp_path):
    """JAX warns when a multithreaded process forks; our workers are never forked."""
    pytest.importorskip("jax", reason="the fork warning is JAX's; this venv has no JAX")
    scene_table(tmp_path)
    result = run_script(f"""
        import sys, keras, warnings
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        warnings.simplefilter("error", RuntimeWarning)
        from conftest import scene_table
        from keras_roi_datagen import RoiDataset
        ds = RoiDataset(scene_table(__import__("pathlib").Path(".")), image_size=(16, 16),
                        batch_size=4, workers=2, use_multiprocessing=True)
        inputs = keras.Input((16, 16, 3))
        flat = keras.layers.Flatten()(inputs)
        model = keras.Model(inputs, [keras.layers.Dense(4)(flat), keras.layers.Dense(2)(flat)])
        model.compile("sgd", ["mse", "mse"])
        model.fit(ds, epochs=2, verbose=0)
        print("DONE")
        """, tmp_path, KERAS_BACKEND="jax")
    assert "DONE" in result.stdout, result.stderr[-3000:]
    assert "os.fork()" not in result.stderr
