"""The public surface: what public methods return can be imported, one error base, one vocabulary."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

import keras_roi_datagen
from keras_roi_datagen import RoiDataModule, RoiDataset, errors, formats
from keras_roi_datagen.formats import registry

PUBLIC = [getattr(keras_roi_datagen, name) for name in keras_roi_datagen.__all__
          if name != "__version__"]
CLASSES = [c for c in PUBLIC if inspect.isclass(c) and not issubclass(c, BaseException)]


def _annotation_classes(annotation: object) -> set[type]:
    found: set[type] = set()
    if inspect.isclass(annotation):
        found.add(annotation)
    for argument in typing.get_args(annotation):
        found |= _annotation_classes(argument)
    origin = typing.get_origin(annotation)
    if inspect.isclass(origin):
        found.add(origin)
    return found


def _returns(cls: type) -> dict[str, set[type]]:
    names = {name: getattr(keras_roi_datagen, name) for name in keras_roi_datagen.__all__
             if name != "__version__"}
    found = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        if not callable(function):
            continue
        module = inspect.getmodule(function)
        if module is None or not module.__name__.startswith("keras_roi_datagen"):
            continue  # inherited from Keras or the standard library
        hints = typing.get_type_hints(function, globalns=vars(module), localns=names)
        if "return" in hints:
            found[f"{cls.__name__}.{name}"] = _annotation_classes(hints["return"])
    return found


# Modules whose `__all__` is documented as public API besides the top level.
DOCUMENTED = ("keras_roi_datagen.augment", "keras_roi_datagen.decode", "keras_roi_datagen.formats",
              "keras_roi_datagen.index", "keras_roi_datagen.planning", "keras_roi_datagen.storage")


def _exported() -> set[int]:
    import importlib

    found = {id(getattr(keras_roi_datagen, name)) for name in keras_roi_datagen.__all__
             if name != "__version__"}
    for name in DOCUMENTED:
        module = importlib.import_module(name)
        found |= {id(getattr(module, member)) for member in module.__all__}
    return found


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_what_public_methods_return_is_exported(cls: type) -> None:
    exported = _exported()
    missing = {f"{where} -> {found.__module__}.{found.__qualname__}"
               for where, classes in _returns(cls).items() for found in classes
               if found.__module__.startswith("keras_roi_datagen") and id(found) not in exported}
    assert not missing, f"export these from keras_roi_datagen or {DOCUMENTED}: {sorted(missing)}"


def test_every_error_is_a_roidatagen_error() -> None:
    raised = [c for c in vars(errors).values()
              if inspect.isclass(c) and issubclass(c, Exception) and c.__module__ == errors.__name__]
    assert len(raised) >= 8
    assert all(issubclass(c, errors.RoiDatagenError) for c in raised), raised


def test_on_error_is_one_vocabulary(tmp_path: Path) -> None:
    from keras_roi_datagen.options import ON_ERROR

    assert ON_ERROR == ("raise", "skip")
    table = tmp_path / "export.json"
    table.write_text('{"images": [], "annotations": [], "categories": []}')
    for on_error in ON_ERROR:  # every reader takes the same words
        formats.read_annotations(table, on_error=on_error)
        formats.read_raw_table(table, on_error=on_error)
    with pytest.raises(ValueError, match=r"`on_error` must be one of \['raise', 'skip'\]"):
        formats.read_annotations(table, on_error="collecting")


def test_unseen_labels_says_raise_like_the_rest(demo_csv: Path) -> None:
    assert RoiDataModule(demo_csv, image_size=(8, 8)).unseen_labels == "raise"
    with pytest.warns(DeprecationWarning, match="unseen_labels='raise'"):
        old = RoiDataModule(demo_csv, image_size=(8, 8), unseen_labels="error")
    assert old.unseen_labels == "raise"


def test_read_raw_table_and_read_annotations_are_two_frames_with_two_names(demo_csv: Path) -> None:
    raw = formats.read_raw_table(demo_csv)
    regions = formats.read_annotations(demo_csv)
    assert "region_shape_attributes" in raw.columns and "x" not in raw.columns
    assert {"x", "y", "w", "h", "label", "shape"} <= set(regions.columns)
    with pytest.warns(DeprecationWarning, match="read_raw_table"):
        old = formats.read_table(demo_csv)
    assert old.equals(raw)


def test_a_table_is_detected_once(demo_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    heads: list[str] = []
    read_head = registry._head
    monkeypatch.setattr(registry, "_head", lambda path: heads.append(path) or read_head(path))
    RoiDataset(demo_csv, image_size=(8, 8))
    assert len(heads) == 1, heads
    heads.clear()
    RoiDataModule(demo_csv, image_size=(8, 8)).setup("fit")
    assert len(heads) == 1, heads


def test_explain_fails_as_a_batch_of_the_row_fails(tmp_path: Path) -> None:
    import pandas as pd
    from conftest import write_scene

    from keras_roi_datagen import BoxError, ImageReadError

    write_scene(tmp_path / "a.png")  # 160x90
    frame = pd.DataFrame({"filename": ["a.png", "a.png"], "x": [10, 500], "y": [10, 500],
                          "w": [20, 20], "h": [20, 20], "name": ["n", "n"]})
    ds = RoiDataset(frame, image_dir=tmp_path, y_cols="name", image_size=(8, 8), shuffle=False,
                    batch_size=1)
    assert ds.explain(0).box == (10.0, 10.0, 30.0, 30.0)
    with pytest.raises(BoxError) as from_batch:
        ds[1]
    with pytest.raises(BoxError) as from_explain:
        ds.explain(1)
    assert from_explain.value.problems[0].kind == from_batch.value.problems[0].kind
    assert "lies wholly outside the 160x90 image" in str(from_explain.value)
    assert from_explain.value.problems[0].row == 1
    (tmp_path / "a.png").rename(tmp_path / "moved.png")
    with pytest.raises(ImageReadError, match=r"row 0.*image file not found"):
        ds.explain(0)
