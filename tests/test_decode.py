"""The decode package: decoding into a caller's array, and the one rule for a row's window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import image_corpus as corpus
import numpy as np
import pytest

from keras_roi_datagen.augment import Augmentation, draw, row_window
from keras_roi_datagen.decode import (
    BatchJob,
    DecodeOptions,
    ImageProblem,
    decode_batch,
    native,
    row_window_of,
)

RECIPE = {"zoom": (0.8, 1.3), "shift": 0.15, "rotation": 15, "horizontal_flip": True,
          "brightness": 0.2, "erasing": 0.3}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("decode")
    photo = corpus.write_photo_jpeg(folder, size=(320, 240))  # region-decoded when built
    return photo.path, corpus.write_scene(folder).path


def _job(images: tuple[str, str], augment: Augmentation | None, **options: object) -> BatchJob:
    photo, scene = images
    paths = (photo, scene, str(Path(photo).with_name("missing.jpg")))
    boxes = np.array([[10, 20, 200, 180], [0, 0, 40, 30], [5, 5, 60, 60], [5000, 5000, 5100, 5100],
                      [30, 30, 90, 120], [1, 1, 9, 9]], dtype=np.float64)
    path_index = np.array([0, 1, 0, 0, 1, 2], dtype=np.int32)
    params = draw(augment, 3, 1, np.arange(len(boxes))) if augment else None
    return BatchJob(paths, path_index, boxes, False, DecodeOptions((24, 32), **options),
                    augment, params)


@pytest.mark.parametrize("native_decoder", [True, False])
@pytest.mark.parametrize("augment", [None, Augmentation(**RECIPE)])
def test_decoding_into_out_gives_the_bytes_of_a_normal_decode(images, augment, native_decoder,
                                                               monkeypatch):
    monkeypatch.setattr(native, "AVAILABLE", native.AVAILABLE and native_decoder)
    job = _job(images, augment, border="reflect")
    reference = decode_batch(job)
    out = np.full(job.pixel_shape, 0xAB, dtype=np.uint8)  # an earlier batch's leftovers
    result = decode_batch(job, out=out)
    assert result.pixels is out
    assert out.tobytes() == reference.pixels.tobytes()
    assert result.failures == reference.failures
    assert [f.kind for f in result.failures] == ["box_outside_image", "missing_file"]
    assert not out[[f.position for f in result.failures]].any()  # failed rows are zero
    assert result.image_sizes == reference.image_sizes


def test_out_must_fit_the_job(images):
    job = _job(images, None)
    for bad in (np.zeros(job.pixel_shape, np.float32), np.zeros((1, 24, 32, 3), np.uint8)):
        with pytest.raises(ValueError, match=r"`out` must be a writeable uint8 array of shape"):
            decode_batch(job, out=bad)
    frozen = np.zeros(job.pixel_shape, np.uint8)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable=False"):
        decode_batch(job, out=frozen)


def test_row_window_of_is_the_window_decoding_uses():
    options = DecodeOptions((16, 16), aspect_ratio="crop", border="clip")
    augment = Augmentation(**RECIPE)
    params = draw(augment, 1, 0, np.array([7]))[0]
    row = row_window_of(np.array([0.1, 0.2, 0.6, 0.9]), True, (200, 100), params, augment, options)
    assert row.box == (20.0, 20.0, 120.0, 90.0)
    assert row.window == row_window(row.box, params, augment, (200, 100), (16, 16), "crop", "clip")
    assert row.cut in (row.window, row.window.box)


def test_a_plain_row_cuts_its_clipped_box_exactly():
    row = row_window_of((-5.0, 10.0, 33.3, 250.0), False, (100, 200), None, None,
                        DecodeOptions((8, 8)))
    assert row.box == (0.0, 10.0, 33.3, 200.0)
    assert row.cut is row.box


def test_a_box_outside_the_image_is_an_image_problem():
    with pytest.raises(ImageProblem, match=r"lies wholly outside the 100x200 image") as info:
        row_window_of((150.0, 10.0, 170.0, 20.0), False, (100, 200), None, None, DecodeOptions((8, 8)))
    assert info.value.kind == "box_outside_image"
    assert str(info.value) == ("box (150.0, 10.0, 170.0, 20.0) (xyxy, pixels) lies wholly outside "
                               "the 100x200 image.")


@pytest.mark.parametrize("package", ["decode", "workers"])
def test_decode_and_workers_import_nothing_above_them(package):
    # Worker processes import these; decoding must stay pure NumPy/Pillow (parity on every backend).
    code = ("import sys, pkgutil, importlib; "
            f"p = importlib.import_module('keras_roi_datagen.{package}'); "
            "[importlib.import_module(m.name) for m in pkgutil.iter_modules(p.__path__, p.__name__ + '.')]; "
            "backends = ('keras', 'jax', 'tensorflow', 'torch'); "
            "above = tuple('keras_roi_datagen.' + n for n in ('dataset', 'adapter', 'batching', 'index')); "
            "shims = tuple('keras_roi_datagen.' + n for n in ('imaging', 'jpeg_region', 'worker')); "
            "bad = sorted(m for m in sys.modules if m.partition('.')[0] in backends "
            "or m.startswith(above) or m in shims); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
