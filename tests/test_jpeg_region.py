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


def _mixed_table(tmp_path, names=("big", "small")):
    """One 1000x750 JPEG with a region reducible 8x (for 24x24 crops) and one that is not."""
    import pandas as pd

    if not (tmp_path / "photo.jpg").exists():  # rewritten, it would be a changed image
        corpus.write_photo_jpeg(tmp_path, "photo.jpg")
    regions = {"big": (100.0, 100.0, 800.0, 700.0), "small": (400.0, 300.0, 440.0, 340.0)}
    return pd.DataFrame({"filename": ["photo.jpg"] * len(names),
                         "x0": [regions[n][0] for n in names], "y0": [regions[n][1] for n in names],
                         "x1": [regions[n][2] for n in names], "y1": [regions[n][3] for n in names]})


def _dataset(table, folder, **kwargs):
    from keras_roi_datagen import RoiDataset

    settings = {"image_size": (24, 24), "batch_size": 2, "shuffle": False, "y_cols": (),
                "box_cols": ("x0", "y0", "x1", "y1"), "box_format": "xyxy", "dtype": "uint8",
                **kwargs}
    return RoiDataset(table, image_dir=folder, **settings)


@needs_extension
def test_an_image_is_decoded_once_when_its_regions_need_different_scales(tmp_path, monkeypatch):
    calls = []
    native = jpeg_region._native

    class Counting:
        @staticmethod
        def decode_region(*args):
            calls.append(args[5])  # the DCT scale
            return native.decode_region(*args)

    monkeypatch.setattr(jpeg_region, "_native", Counting)
    x = _dataset(_mixed_table(tmp_path), tmp_path)[0][0]
    assert calls == [1]  # the small region needs full size; the big one shares that decode
    assert x.shape == (2, 24, 24, 3)


@needs_extension
def test_a_crop_depends_on_its_image_regions_not_on_its_batch(tmp_path):
    table = _mixed_table(tmp_path)
    together = _dataset(table, tmp_path)[0][0]
    alone = np.concatenate([_dataset(table, tmp_path, batch_size=1)[i][0] for i in range(2)])
    full_size = _dataset(table, tmp_path, fast_decode=False)[0][0]
    np.testing.assert_array_equal(together, alone)
    # The big region is cut from the full-size decode its image's small region needs.
    np.testing.assert_array_equal(together, full_size)
    # Without the small region, the big one is decoded at 1/8: close, not the same bytes.
    big_only = _dataset(_mixed_table(tmp_path, ("big",)), tmp_path, batch_size=1)[0][0]
    assert not np.array_equal(big_only[0], together[0])
    assert np.abs(big_only[0].astype(int) - together[0]).mean() < 8


@needs_extension
def test_the_crop_cache_tells_apart_scales_set_by_other_regions_of_the_image(tmp_path):
    cache = tmp_path / "cache"
    big_only = _dataset(_mixed_table(tmp_path, ("big",)), tmp_path, batch_size=1, cache=str(cache))
    list(big_only.get_numpy_iterator())  # stores the big region's 1/8-scale crop
    assert big_only.cache.stats["writes"] == 1
    both = _mixed_table(tmp_path)
    reader = _dataset(both, tmp_path, cache=str(cache))
    [(cached, *_)] = list(reader.get_numpy_iterator())
    np.testing.assert_array_equal(cached, _dataset(both, tmp_path)[0][0])
    assert reader.cache.stats["hits"] == 0
