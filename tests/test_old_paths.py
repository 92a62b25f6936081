"""The old module paths (before the decode/, workers/ and index/ packages) still work, and warn."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHECK = """
import sys, warnings
from PIL import Image

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from keras_roi_datagen import imaging, jpeg_region, worker
    from keras_roi_datagen import coco_columns, csv_columns, index_cache, index_columns
    from keras_roi_datagen.formats import read_table
    read_table  # a function: it warns when called
import keras_roi_datagen.index as index
import keras_roi_datagen.formats as formats
import keras_roi_datagen.decode as decode
import keras_roi_datagen.workers as workers
from keras_roi_datagen.decode import native
from keras_roi_datagen.workers import protocol
from keras_roi_datagen.workers.__main__ import main

messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
for old, new in (("imaging", "keras_roi_datagen.decode"),
                 ("jpeg_region", "keras_roi_datagen.decode.native"),
                 ("worker", "keras_roi_datagen.workers"),
                 ("index_cache", "keras_roi_datagen.index.cache"),
                 ("index_columns", "keras_roi_datagen.index.columns"),
                 ("csv_columns", "keras_roi_datagen.formats.csv_columns"),
                 ("coco_columns", "keras_roi_datagen.formats.coco_columns")):
    assert any(f"keras_roi_datagen.{old}` is deprecated" in m and new in m for m in messages), messages

# Every public name of imaging.py is still there, the same object as in decode/.
for name in ("BatchJob", "BatchResult", "DecodeOptions", "ImageProblem", "RowFailure", "Cut",
             "PIXEL_ALIGNMENT", "crop_region", "decode_batch", "load_image", "new_pixels",
             "read_image_header", "read_image_size", "sample_window"):
    assert getattr(imaging, name) is getattr(decode, name), name
for name in ("filter_window", "read_box", "sample_region"):
    assert getattr(imaging, name) is getattr(decode.crop, name), name
assert list(imaging.INTERPOLATIONS) == ["nearest", "bilinear", "bicubic", "hamming", "box", "lanczos"]
assert imaging.INTERPOLATIONS["lanczos"] is Image.Resampling.LANCZOS
assert imaging.COLOR_MODES == {"rgb": 3, "grayscale": 1, "rgba": 4}
assert imaging.ASPECT_RATIOS == ("squash", "crop", "pad")

# jpeg_region is the new module itself, so patching the old name patches the decoder.
assert jpeg_region is native and sys.modules["keras_roi_datagen.jpeg_region"] is native
assert callable(jpeg_region.crop_rows) and isinstance(jpeg_region.AVAILABLE, bool)

assert (worker.main, worker.serve, worker.HEADER, worker.read_exactly) == (
    main, protocol.serve, protocol.HEADER, protocol.read_exactly)
for name in ("BatchExecutor", "InlineExecutor", "PassExecutor", "ProcessExecutor", "ThreadExecutor",
             "make_executor", "worker_error"):
    assert hasattr(workers, name), name
# The index modules' old names are the new modules themselves.
assert index_cache is index.cache and index_columns is index.columns
assert csv_columns is formats.csv_columns and coco_columns is formats.coco_columns
assert callable(index_columns.build_columnar_index) and callable(index_cache.load)
print("OK")
"""


def test_old_module_paths_still_work_and_warn():
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(CHECK)], capture_output=True,
                          text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert done.stdout.strip() == "OK", done.stderr[-3000:]
