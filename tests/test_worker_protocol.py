"""The worker pipe, end to end: a worker started by hand answers as `decode_batch` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import image_corpus as corpus
import numpy as np
import pytest

from keras_roi_datagen.decode import BatchJob, DecodeOptions, decode_batch
from keras_roi_datagen.workers import protocol

ROOT = Path(__file__).resolve().parents[1]


def _job(path: str, rows: int, **options: object) -> BatchJob:
    boxes = np.tile(np.array([[4.0, 6.0, 90.0, 70.0]]), (rows, 1)) + np.arange(rows)[:, None]
    return BatchJob((path, path + ".missing"), np.array([0] * (rows - 1) + [1], dtype=np.int32),
                    boxes, False, DecodeOptions((20, 24), **options))


@pytest.mark.parametrize("module", ["keras_roi_datagen.workers", "keras_roi_datagen.worker"])
def test_a_worker_decodes_into_shared_memory_as_decode_batch_does(tmp_path, module):
    # `keras_roi_datagen.worker` is the entry point the README documents; it must keep working.
    photo = corpus.write_photo_jpeg(tmp_path, size=(160, 120)).path
    buffer = protocol.SharedBuffer()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    worker = subprocess.Popen([sys.executable, "-m", module, str(buffer.fd)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=env, pass_fds=(buffer.fd,))
    assert worker.stdin is not None and worker.stdout is not None
    try:
        # Growing, then shrinking batches: the worker maps the grown buffer again.
        for job in (_job(photo, 2), _job(photo, 9, color_mode="rgba"), _job(photo, 3)):
            worker.stdin.write(protocol.encode_request(job, buffer))
            worker.stdin.flush()
            result = protocol.read_reply(worker.stdout, job, buffer)
            expected = decode_batch(job)
            assert result is not None
            assert result.pixels.tobytes() == expected.pixels.tobytes()
            assert result.pixels.ctypes.data % 64 == 0
            assert result.failures == expected.failures and result.failures[-1].kind == "missing_file"
            assert result.image_sizes == expected.image_sizes
        bad = _job(photo, 2, interpolation="no-such-filter")
        worker.stdin.write(protocol.encode_request(bad, buffer))
        worker.stdin.flush()
        with pytest.raises(protocol.WorkerRaised) as info:
            protocol.read_reply(worker.stdout, bad, buffer)
        assert "KeyError: 'no-such-filter'" in info.value.details
        worker.stdin.close()  # the worker exits when its stdin ends
        assert worker.wait(timeout=30) == 0
        assert protocol.read_reply(worker.stdout, bad, buffer) is None
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        worker.stdout.close()
        buffer.close()
