"""The op table is the one source of every augmentation option's rule, streams, columns and display.

Each op's entry is checked against what is derived from it (`draw`, `PARAMETERS`,
`changes_pixels`, `to_dict`, `Explanation`), and the stream numbers and the
column layout are pinned: changing either changes augmented batches.
"""

from __future__ import annotations

import ast
import collections
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from keras_roi_datagen import augment
from keras_roi_datagen.augment import PARAMETERS, Augmentation, Explanation, Window, draw, parameters_of
from keras_roi_datagen.augment import draws as draws_module
from keras_roi_datagen.augment.draws import COLUMN
from keras_roi_datagen.augment.ops import OPS, PIPELINE

# The fourth Philox counter word of each op: fixed forever.
STREAMS = {"zoom": (1,), "shift": (2,), "aspect": (3,), "context": (), "horizontal_flip": (5,),
           "vertical_flip": (5,), "rotation": (4,), "brightness": (6,), "contrast": (7,),
           "saturation": (8,), "hue": (9,), "erasing": (10, 11)}
# The columns of `draw`'s result as they were before the table.
COLUMNS = ("zoom", "shift_x", "shift_y", "aspect", "angle", "horizontal_flip", "vertical_flip",
           "brightness", "contrast", "saturation", "hue", "erase", "erase_x0", "erase_y0",
           "erase_x1", "erase_y1", "erase_r", "erase_g", "erase_b")
# A value that turns each option on.
ON = {"zoom": (0.5, 2.0), "shift": 0.2, "aspect": 0.3, "context": 0.5, "horizontal_flip": True,
      "vertical_flip": True, "rotation": 30, "brightness": 0.3, "contrast": 0.4,
      "saturation": (0.2, 0.8), "hue": 0.3, "erasing": 1.0}
ROWS = np.arange(64)


def op_of(option: str):
    return next(op for op in OPS if op.option == option)


def test_every_option_is_one_op_in_field_order_with_its_args_entry():
    assert [op.option for op in OPS] == [f.name for f in fields(Augmentation)]
    args = Augmentation.__doc__.split("Args:")[1]
    assert all(f"\n        {op.option}: " in args for op in OPS)
    assert set(ON) == {op.option for op in OPS}


def test_stream_numbers_are_pinned_and_only_the_flips_share_one():
    assert {op.option: op.streams for op in OPS} == STREAMS
    owners = collections.Counter(stream for op in OPS for stream in op.streams)
    assert {stream for stream, n in owners.items() if n > 1} == {5}  # words 0 and 1 of stream 5


def test_parameters_are_the_tables_columns_box_space_first():
    assert PARAMETERS == COLUMNS
    derived = tuple(name for space in ("box", "pixel") for op in OPS
                    if op.space == space for name in op.columns)
    assert derived == PARAMETERS
    assert [op.space for op in PIPELINE] == sorted(op.space for op in OPS)
    assert [COLUMN[name] for name in COLUMNS] == list(range(len(COLUMNS)))


def test_options_off_draw_the_identity_of_every_column():
    off = draw(Augmentation(), seed=3, epoch=1, rows=ROWS)
    identity = {name: value for op in OPS for name, value in op.columns.items()}
    assert {name: set(off[:, COLUMN[name]]) for name in PARAMETERS} == {
        name: {identity[name]} for name in PARAMETERS}


@pytest.mark.parametrize("option", list(ON))
def test_each_op_draws_its_own_streams_into_its_own_columns(option, monkeypatch):
    op = op_of(option)
    alone = Augmentation(**{option: ON[option]})
    asked, uniforms = [], draws_module.uniforms

    def recorded(seed, epoch, rows, operations):
        asked.append(list(operations))
        return uniforms(seed, epoch, rows, operations)

    monkeypatch.setattr(draws_module, "uniforms", recorded)
    drawn = draw(alone, seed=3, epoch=1, rows=ROWS)
    monkeypatch.undo()
    assert asked == [list(op.streams)]
    off = draw(Augmentation(), seed=3, epoch=1, rows=ROWS)
    changed = {name for name in PARAMETERS if (drawn[:, COLUMN[name]] != off[:, COLUMN[name]]).any()}
    assert changed == set(op.columns)
    assert alone.changes_pixels == (op.space == "pixel")
    assert set(alone.to_dict()) == {option}


def test_an_ops_columns_do_not_depend_on_the_other_ops():
    every = draw(Augmentation(**ON), seed=5, epoch=2, rows=ROWS)
    for op in OPS:
        alone = draw(Augmentation(**{op.option: ON[op.option]}), seed=5, epoch=2, rows=ROWS)
        columns = [COLUMN[name] for name in op.columns]
        np.testing.assert_array_equal(every[:, columns], alone[:, columns], err_msg=op.option)


def test_explanation_shows_the_changed_columns_of_each_op():
    drawn = draw(Augmentation(**ON), seed=5, epoch=2, rows=ROWS)
    flipped = drawn[:, COLUMN["horizontal_flip"]] * drawn[:, COLUMN["vertical_flip"]]
    params = parameters_of(drawn[int(flipped.argmax())])  # a row with every column changed
    window = Window.from_box((0, 0, 10, 10))
    text = repr(Explanation(row=1, label="a", epoch=2, path="a.jpg", image_size=(10, 10),
                            box=(0, 0, 10, 10), window=window, parameters=params,
                            border="constant"))
    shown = ast.literal_eval(text.split("parameters=")[1][:-1])
    assert list(shown) == [name for name in COLUMNS if not name.startswith("erase")] + [
        "erase", "erase_xyxy"]
    assert shown["erase_xyxy"] == tuple(round(params[k], 3)
                                        for k in ("erase_x0", "erase_y0", "erase_x1", "erase_y1"))
    assert shown["zoom"] == round(params["zoom"], 4)


def test_the_augment_package_imports_only_numpy_pillow_and_options():
    allowed = {"numpy", "PIL", "keras_roi_datagen.options", "keras_roi_datagen.augment"}
    folder = Path(augment.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names or any(
                    name == a or name.startswith(a + ".") for a in allowed), (path, name)
