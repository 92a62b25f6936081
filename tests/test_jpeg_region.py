"""The libjpeg-turbo region decoder gives the same crops as the Pillow path."""

from __future__ import annotations

import os

import image_corpus as corpus
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_roi_datagen import jpeg_region
from keras_roi_datagen.imaging import BatchJob, DecodeOptions, decode_batch

needs_extension = pytest.mark.skipif(not jpeg_region.AVAILABLE,
                                     reason="the optional _jpeg_region extension is not built")


def crops(path, boxes, native: bool, monkeypatch, **options):
    monkeypatch.setattr(jpeg_region, "AVAILABLE", native)
    job = BatchJob((path,), np.zeros(len(boxes), np.int32), np.asarray(boxes, float), False,
                   DecodeOptions(**{"image_size": (24, 24), **options}))
    result = decode_batch(job)
    assert not result.failures
    return result.pixels


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return corpus.write_photo_jpeg(tmp_path_factory.mktemp("region"), size=(1000, 750)).path


box_strategy = st.tuples(st.floats(0, 900), st.floats(0, 650), st.floats(8, 700), st.floats(8, 500))


@needs_extension
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(boxes=st.lists(box_strategy, min_size=1, max_size=5),
       interpolation=st.sampled_from(["bilinear", "nearest", "bicubic", "lanczos", "box"]),
       color_mode=st.sampled_from(["rgb", "grayscale"]))
def test_region_decode_is_byte_identical_to_the_pillow_path(photo, monkeypatch, boxes,
                                                             interpolation, color_mode):
    xyxy = [(x, y, min(x + w, 1000), min(y + h, 750)) for x, y, w, h in boxes]
    options = {"interpolation": interpolation, "color_mode": color_mode}
    fast = crops(photo, xyxy, True, monkeypatch, **options)
    reference = crops(photo, xyxy, False, monkeypatch, **options)
    np.testing.assert_array_equal(fast, reference)


@needs_extension
def test_truncated_and_cmyk_files_take_the_pillow_path(tmp_path, monkeypatch):
    cmyk = corpus.write_cmyk_jpeg(tmp_path)
    box = [sample_box(cmyk)]
    np.testing.assert_array_equal(crops(cmyk.path, box, True, monkeypatch),
                                  crops(cmyk.path, box, False, monkeypatch))
    truncated = corpus.write_truncated_jpeg(tmp_path)
    monkeypatch.setattr(jpeg_region, "AVAILABLE", True)
    job = BatchJob((truncated.path,), np.zeros(1, np.int32), np.array([[0.0, 0.0, 8.0, 8.0]]),
                   False, DecodeOptions((8, 8)))
    assert [f.kind for f in decode_batch(job).failures] == ["image_truncated"]


def sample_box(sample):
    return sample.regions[0].inner(2)



@pytest.mark.skipif(not os.path.exists("/usr/include/jpeglib.h"),
                    reason="no libjpeg headers here: only the Pillow path is expected")
def test_the_extension_is_built_where_libjpeg_headers_exist():
    # A build that failed silently (the extension is optional) would leave
    # every install on the slow path; where it can be built, it must be.
    assert jpeg_region.AVAILABLE
