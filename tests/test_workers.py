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
                          timeout=timeout, cwd=tmp_path, env={**source_env(), **env})


def source_env() -> dict[str, str]:
    """The environment, with this checkout importable (the package may not be installed)."""
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


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


@pytest.mark.parametrize(("workers", "processes", "cache"),
                         [(1, False, False), (2, False, False), (2, True, False), (2, False, True)])
def test_uint8_batches_start_on_64_byte_boundaries(scenes, workers, processes, cache):
    # TensorFlow takes a 64-byte-aligned array into a tensor as it is; NumPy's own arrays
    # start 16 bytes into their allocation, which cost the TF backend a copy of every batch.
    table, folder = scenes
    with RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=5, seed=3,
                    dtype="uint8", workers=workers, use_multiprocessing=processes,
                    cache=cache) as ds:
        for _ in range(2):  # with a cache, the second pass reads it
            offsets = [batch[0].ctypes.data % 64 for batch in ds.iter_batches()]
            assert offsets and set(offsets) == {0}
            ds.on_epoch_end()


def wait_gone(pids, seconds=15.0):
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def test_worker_processes_live_across_passes_until_close(scenes):
    table, folder = scenes
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=4,
                    workers=2, use_multiprocessing=True)
    assert ds.worker_pids == []  # started lazily, by the first pass
    batches = ds.iter_batches()
    next(batches)
    pids = ds.worker_pids
    assert len(pids) == 2 and all(alive(p) for p in pids)
    list(batches)
    ds.on_epoch_end()
    list(ds.iter_batches())  # the next epoch reuses them
    assert ds.worker_pids == pids and all(alive(p) for p in pids)
    # Pixels crossed in shared memory whose files are unlinked once mapped: nothing to leak.
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("roi-datagen-")] \
        if os.path.isdir("/dev/shm") else True
    ds.close()
    assert ds.worker_pids == []
    assert wait_gone(pids)


def test_with_block_and_garbage_collection_stop_the_workers(scenes):
    import gc

    table, folder = scenes
    with RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=4,
                    workers=2, use_multiprocessing=True) as ds:
        list(ds.iter_batches())
        pids = ds.worker_pids
    assert wait_gone(pids)
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=4,
                    workers=2, use_multiprocessing=True)
    list(ds.iter_batches())
    pids = ds.worker_pids
    del ds
    gc.collect()
    assert wait_gone(pids)


@pytest.mark.parametrize(("workers", "processes"), [(2, False), (2, True)])
def test_a_pass_cut_short_leaks_no_batch_into_the_next(scenes, workers, processes):
    table, folder = scenes
    reference = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=2, seed=5)
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=2, seed=5,
                    workers=workers, use_multiprocessing=processes, max_queue_size=4)
    peek = ds.iter_batches()
    next(peek)  # as fit does to build the model: the rest is decoding ahead
    peek.close()
    assert ds.num_batches == len(ds)  # Keras's EpochIterator.reset() reads it, then ...
    ds.on_epoch_end()  # ... drops the peek: the epoch starts again where it stood
    for _ in range(2):
        assert digest(ds.iter_batches()) == digest(reference.iter_batches())
        ds.on_epoch_end()
        reference.on_epoch_end()
    ds.close()


@pytest.mark.parametrize(("processes", "cache"), [(False, None), (True, None), (False, True)])
def test_a_cut_short_pass_closed_late_does_not_cancel_the_next_pass(scenes, processes, cache):
    table, folder = scenes
    reference = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=1, seed=2)
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=1, seed=2,
                    workers=2, use_multiprocessing=processes, max_queue_size=6, cache=cache)
    peek = ds.iter_batches()
    next(peek)  # left open, as a framework may keep it until the garbage collector runs
    assert ds.num_batches == len(ds)  # Keras's reset(): the peek is dropped
    ds.on_epoch_end()
    expected = list(reference.iter_batches())
    current = ds.iter_batches()
    got = [next(current) for _ in range(3)]
    peek.close()  # the late close of the old pass must only cancel its own jobs
    got += list(current)
    assert digest(got) == digest(expected)
    ds.close()


def test_workers_survive_validation_passes_and_epochs_of_fit(tmp_path):
    scene_table(tmp_path)
    result = run_script(f"""
        import keras, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import scene_table
        from keras_roi_datagen import RoiDataset
        table = scene_table(__import__("pathlib").Path("."))
        ds = RoiDataset(table, image_size=(16, 16), batch_size=4, workers=2,
                        use_multiprocessing=True)
        val = RoiDataset(table, image_size=(16, 16), batch_size=4, workers=2,
                         use_multiprocessing=True, shuffle=False)
        seen, seen_val = set(), set()
        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.add(tuple(ds.worker_pids))
            def on_test_batch_end(self, batch, logs=None):
                seen_val.add(tuple(val.worker_pids))
        inputs = keras.Input((16, 16, 3))
        flat = keras.layers.Flatten()(inputs)
        model = keras.Model(inputs, [keras.layers.Dense(4)(flat), keras.layers.Dense(2)(flat)])
        model.compile("sgd", ["mse", "mse"])
        model.fit(ds, epochs=3, validation_data=val, callbacks=[Record()], verbose=0)
        print("TRAIN", len(seen), *sorted(seen)[0])
        print("VAL", len(seen_val), *sorted(seen_val)[0])
        print("AFTER", *ds.worker_pids, flush=True)
        """, tmp_path)
    assert "AFTER" in result.stdout, result.stderr[-3000:]
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert lines["TRAIN"][0] == "1" and lines["VAL"][0] == "1"  # one set of pids each
    assert lines["AFTER"] == lines["TRAIN"][1:]  # the same processes, still there after fit
    # The script ended without close(): interpreter exit stopped every worker.
    assert wait_gone([int(p) for p in lines["TRAIN"][1:] + lines["VAL"][1:]])


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
    # One batch per decode job (no shuffle window), so jobs are left to run after batch 1.
    ds = RoiDataset(table, image_dir=folder, image_size=(16, 16), batch_size=1, workers=2,
                    use_multiprocessing=True, max_queue_size=1, shuffle_window=None)
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
        """)], cwd=tmp_path, stdout=subprocess.PIPE, text=True, env=source_env())
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
