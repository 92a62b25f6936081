"""keras-roi-datagen: Keras 3 batches of labelled image regions.

Crop the regions of an annotation table (a VGG Image Annotator export or any
DataFrame) out of their images, encode every label column, and feed a
several-headed model on TensorFlow, JAX or PyTorch.

Names are imported on first use, so `keras_roi_datagen.decode` and the
decode workers load without Keras.

Example:
```python
from keras_roi_datagen import RoiDataset
ds = RoiDataset("via_export.csv", y_cols=("name", "type"), image_size=(96, 96))
model.fit(ds, epochs=5)
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "RoiDataset": "keras_roi_datagen.dataset",
    "RoiDataModule": "keras_roi_datagen.datamodule",
    "Augmentation": "keras_roi_datagen.augment",
    "LabelVocabulary": "keras_roi_datagen.labels",
    "BoxFormat": "keras_roi_datagen.boxes",
    "ValidationReport": "keras_roi_datagen.validation",
    "DatasetCheckpoint": "keras_roi_datagen.callbacks",
    "read_via_csv": "keras_roi_datagen.formats.via",
    "read_via_json": "keras_roi_datagen.formats.via",
    "read_table": "keras_roi_datagen.formats",
    "read_raw_table": "keras_roi_datagen.formats",
    "read_annotations": "keras_roi_datagen.formats",
    "write_annotations": "keras_roi_datagen.formats.writers",
    "plan_epoch": "keras_roi_datagen.planning",
    "make_demo_dataset": "keras_roi_datagen.demo",
    "Problem": "keras_roi_datagen.errors",
    "RoiDatagenError": "keras_roi_datagen.errors",
    "AnnotationError": "keras_roi_datagen.errors",
    "BoxError": "keras_roi_datagen.errors",
    "LabelError": "keras_roi_datagen.errors",
    "ImageReadError": "keras_roi_datagen.errors",
    "StorageError": "keras_roi_datagen.errors",
    "WorkerError": "keras_roi_datagen.errors",
    "StateMismatchError": "keras_roi_datagen.errors",
    "UnsupportedSetupError": "keras_roi_datagen.errors",
    "discover_shard": "keras_roi_datagen.sharding",
    "Explanation": "keras_roi_datagen.augment",
    "Window": "keras_roi_datagen.augment",
    "EpochPlan": "keras_roi_datagen.planning",
    "PlannedBatch": "keras_roi_datagen.planning",
    "PassInfo": "keras_roi_datagen.planning",
    "Position": "keras_roi_datagen.planning",
    "StorageStats": "keras_roi_datagen.storage",
    "IndexBuild": "keras_roi_datagen.index",
    "RoiIndex": "keras_roi_datagen.index",
    "TableSpec": "keras_roi_datagen.index",
    "build_index": "keras_roi_datagen.index",
    "Source": "keras_roi_datagen.formats",
    "PathTable": "keras_roi_datagen.paths",
    "info": "keras_roi_datagen.about",
    "PackageInfo": "keras_roi_datagen.about",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from keras_roi_datagen.about import PackageInfo as PackageInfo
    from keras_roi_datagen.about import info as info
    from keras_roi_datagen.augment import Augmentation as Augmentation
    from keras_roi_datagen.augment import Explanation as Explanation
    from keras_roi_datagen.augment import Window as Window
    from keras_roi_datagen.boxes import BoxFormat as BoxFormat
    from keras_roi_datagen.callbacks import DatasetCheckpoint as DatasetCheckpoint
    from keras_roi_datagen.datamodule import RoiDataModule as RoiDataModule
    from keras_roi_datagen.dataset import RoiDataset as RoiDataset
    from keras_roi_datagen.demo import make_demo_dataset as make_demo_dataset
    from keras_roi_datagen.errors import AnnotationError as AnnotationError
    from keras_roi_datagen.errors import BoxError as BoxError
    from keras_roi_datagen.errors import ImageReadError as ImageReadError
    from keras_roi_datagen.errors import LabelError as LabelError
    from keras_roi_datagen.errors import Problem as Problem
    from keras_roi_datagen.errors import RoiDatagenError as RoiDatagenError
    from keras_roi_datagen.errors import StateMismatchError as StateMismatchError
    from keras_roi_datagen.errors import StorageError as StorageError
    from keras_roi_datagen.errors import UnsupportedSetupError as UnsupportedSetupError
    from keras_roi_datagen.errors import WorkerError as WorkerError
    from keras_roi_datagen.formats import Source as Source
    from keras_roi_datagen.formats import read_annotations as read_annotations
    from keras_roi_datagen.formats import read_raw_table as read_raw_table
    from keras_roi_datagen.formats import read_table as read_table
    from keras_roi_datagen.formats.via import read_via_csv as read_via_csv
    from keras_roi_datagen.formats.via import read_via_json as read_via_json
    from keras_roi_datagen.formats.writers import write_annotations as write_annotations
    from keras_roi_datagen.index import IndexBuild as IndexBuild
    from keras_roi_datagen.index import RoiIndex as RoiIndex
    from keras_roi_datagen.index import TableSpec as TableSpec
    from keras_roi_datagen.index import build_index as build_index
    from keras_roi_datagen.labels import LabelVocabulary as LabelVocabulary
    from keras_roi_datagen.paths import PathTable as PathTable
    from keras_roi_datagen.planning import EpochPlan as EpochPlan
    from keras_roi_datagen.planning import PassInfo as PassInfo
    from keras_roi_datagen.planning import PlannedBatch as PlannedBatch
    from keras_roi_datagen.planning import Position as Position
    from keras_roi_datagen.planning import plan_epoch as plan_epoch
    from keras_roi_datagen.sharding import discover_shard as discover_shard
    from keras_roi_datagen.storage import StorageStats as StorageStats
    from keras_roi_datagen.validation import ValidationReport as ValidationReport


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_roi_datagen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
