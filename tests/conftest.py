"""Shared fixtures: small scenes with known pixels, the demo dataset, tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# No timed tests: hypothesis's per-example deadline is a timing check that a
# loaded 2-core CI machine fails at random (speed is benchmarks/' business).
settings.register_profile("roi", deadline=None)
settings.load_profile("roi")

# Colours of the rectangles drawn by `write_scene`, keyed by label.
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "white": (250, 250, 250)}
# (label, x, y, width, height) of each rectangle in a scene.
RECTS = [("red", 10, 10, 40, 30), ("green", 60, 20, 30, 50), ("blue", 20, 50, 25, 25),
         ("white", 100, 5, 50, 60)]
SCENE_SIZE = (160, 90)  # (width, height), as Pillow counts


def write_scene(path: Path, fmt: str = "PNG") -> Path:
    """Writes a grey image with the solid rectangles of `RECTS`."""
    image = Image.new("RGB", SCENE_SIZE, (128, 128, 128))
    for label, x, y, w, h in RECTS:
        image.paste(COLOURS[label], (x, y, x + w, y + h))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def scene_table(folder: Path, n_images: int = 3) -> pd.DataFrame:
    """Writes `n_images` scenes and returns a table of their rectangles (inset by 3 px)."""
    rows = []
    for i in range(n_images):
        name = f"scene_{i}.png"
        write_scene(folder / name)
        for label, x, y, w, h in RECTS:
            shape = {"name": "rect", "x": x + 3, "y": y + 3, "width": w - 6, "height": h - 6}
            rows.append({"filename": name, "region_shape_attributes": json.dumps(shape),
                         "name": label, "type": "dark" if label != "white" else "light"})
    return pd.DataFrame(rows)


@pytest.fixture
def scenes(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """A table of 12 rectangles over 3 PNG scenes, and their folder."""
    return scene_table(tmp_path), tmp_path


@pytest.fixture(scope="session")
def demo_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset (small): its VIA CSV path."""
    from keras_roi_datagen.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=16, seed=3)


def backend() -> str:
    """The Keras backend the tests run on."""
    import keras

    return str(keras.backend.backend())


def numpy_batch(batch: object) -> object:
    """Converts a batch of backend tensors to NumPy, keeping its structure."""
    if isinstance(batch, dict):
        return {k: numpy_batch(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(numpy_batch(v) for v in batch)
    if hasattr(batch, "cpu"):
        batch = batch.cpu()  # torch
    return np.asarray(batch)
