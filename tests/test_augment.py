"""Region augmentation: reproducible per row, right in pixels, off means unchanged.

Scenes are synthetic with known pixels (solid, asymmetric quadrants), so flips,
rotations and context are checked against what a user would see in the crop.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import PIL
import pytest
from conftest import scene_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from keras_roi_datagen import RoiDataset, jpeg_region
from keras_roi_datagen.augment import (
    PARAMETERS,
    Augmentation,
    Window,
    apply_pixel_ops,
    draw,
    parse_augmentation,
    philox4x32,
    row_window,
)
from keras_roi_datagen.boxes import clip_box
from keras_roi_datagen.datamodule import RoiDataModule
from keras_roi_datagen.imaging import (
    BatchJob,
    DecodeOptions,
    crop_region,
    decode_batch,
    load_image,
)

RECIPE = {"zoom": (0.8, 1.3), "shift": 0.15, "aspect": (0.8, 1.25), "rotation": 15,
          "horizontal_flip": True, "brightness": 0.2, "contrast": 0.3, "saturation": (0.3, 0.7),
          "hue": 0.1, "erasing": 0.3}
# Quadrant colours of the asymmetric scene: top-left, top-right, bottom-left, bottom-right.
QUADRANTS = {"tl": (230, 20, 20), "tr": (20, 210, 30), "bl": (30, 40, 220), "br": (245, 245, 245)}
GREY = (128, 128, 128)
# sha256 of today's unaugmented crops of `scene_table(n_images=2)` in table order
# (uint8), computed with main's code before augmentation existed (Pillow 13.0).
GOLDEN = {("bilinear", (16, 24)): "b930be97cd9286d8327ef52d5b86e9a1a57c79791b4c86de865422924022bf80",
          ("bicubic", (9, 7)): "2e4eb005804e09b28b73f6f1b0fd66aa4256830c22e14d814a6d890833ffbec5"}
GOLDEN_PILLOW = "13."


def digest(batches) -> str:
    h = hashlib.sha256()
    for batch in batches:
        for part in (batch[0], *(batch[1] if isinstance(batch[1], tuple) else (batch[1],))):
            h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def epoch_batches(ds: RoiDataset) -> list:
    batches = [ds[i] for i in range(len(ds))]
    ds.on_epoch_end()
    return batches


def quadrant_scene(folder: Path, fmt: str = "PNG") -> pd.DataFrame:
    """A grey 200x160 image with a 64x64 square of four coloured quadrants at (60, 40)."""
    image = Image.new("RGB", (200, 160), GREY)
    for name, (x, y) in {"tl": (60, 40), "tr": (92, 40), "bl": (60, 72), "br": (92, 72)}.items():
        image.paste(QUADRANTS[name], (x, y, x + 32, y + 32))
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / f"quadrants.{fmt.lower()}", fmt)
    shape = json.dumps({"name": "rect", "x": 60, "y": 40, "width": 64, "height": 64})
    return pd.DataFrame({"filename": [f"quadrants.{fmt.lower()}"] * 4,
                         "region_shape_attributes": [shape] * 4, "name": ["a", "b", "a", "b"]})


def colour_at(crop: np.ndarray, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in crop[y, x, :3])


def near(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"zoom": (1.2, 0.9)}, "Received: zoom="),
    ({"zoom": -0.1}, "Received: zoom="),
    ({"shift": -1}, "Received: shift=-1"),
    ({"aspect": (0, 2)}, "Received: aspect="),
    ({"context": float("nan")}, "Received: context=nan"),
    ({"horizontal_flip": "yes"}, "Received: horizontal_flip='yes'"),
    ({"rotation": (10, "a")}, "Received: rotation="),
    ({"brightness": 1.5}, "Received: brightness=1.5"),
    ({"contrast": (-0.1, 0.2)}, "Received: contrast="),
    ({"saturation": 2}, "Received: saturation=2"),
    ({"hue": (0.5, 0.2)}, "Received: hue="),
    ({"erasing": 1.5}, "Received: erasing=1.5"),
])
def test_bad_options_are_refused_with_the_rule_and_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        Augmentation(**options)


def test_unknown_option_names_and_bad_arguments_are_refused_before_reading(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(ValueError, match=r"\['zom'\] are not among them"):
        RoiDataset(missing, augment={"zom": (0.9, 1.1)})
    with pytest.raises(ValueError, match="Received: augment=5"):
        RoiDataset(missing, augment=5)
    with pytest.raises(ValueError, match="Received: border='wrap'"):
        RoiDataset(missing, border="wrap")
    with pytest.raises(ValueError, match="Only one of `crop_to_aspect_ratio`"):
        RoiDataset(missing, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)


def test_keras_factor_meanings():
    a = Augmentation(brightness=0.2, contrast=0.3, saturation=0.6, hue=0.4, rotation=10, zoom=0.1)
    assert a.brightness == (-0.2, 0.2)  # RandomBrightness: (-f, f) of the value range
    assert a.contrast == (0.3, 0.3)  # RandomContrast: factor in [1 - 0.3, 1 + 0.3]
    assert a.saturation == (0.0, 0.6) and a.hue == (0.0, 0.4)  # RandomSaturation / RandomHue
    assert a.rotation == (-10.0, 10.0) and a.zoom == (0.9, 1.1)
    params = draw(a, seed=1, epoch=0, rows=np.arange(2000))
    columns = {name: params[:, k] for k, name in enumerate(PARAMETERS)}
    assert -51.0 <= columns["brightness"].min() < -40 and 40 < columns["brightness"].max() <= 51.0
    assert 0.7 <= columns["contrast"].min() < 0.75 and 1.25 < columns["contrast"].max() <= 1.3
    assert 0.0 <= columns["saturation"].min() < 0.05 and 1.3 < columns["saturation"].max() <= 1.5
    assert np.abs(columns["hue"]).max() <= 0.2 and (columns["hue"] < 0).any()
    assert parse_augmentation({}) is None and parse_augmentation(None) is None


def test_philox_matches_the_random123_known_answers():
    zero = philox4x32(np.zeros((1, 4), np.uint64), (0, 0))[0]
    assert [int(v) for v in zero] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    ones = philox4x32(np.full((1, 4), 0xFFFFFFFF, np.uint64), (0xFFFFFFFF, 0xFFFFFFFF))[0]
    assert [int(v) for v in ones] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    pi = np.array([[0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344]], np.uint64)
    assert [int(v) for v in philox4x32(pi, (0xA4093822, 0x299F31D0))[0]] == [
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_a_rows_draw_depends_on_seed_epoch_and_row_only():
    a = Augmentation(**RECIPE)
    alone = draw(a, seed=7, epoch=3, rows=np.array([41]))
    in_batch = draw(a, seed=7, epoch=3, rows=np.array([5, 41, 2, 99]))
    np.testing.assert_array_equal(alone[0], in_batch[1])
    assert not np.array_equal(alone, draw(a, seed=7, epoch=4, rows=np.array([41])))
    assert not np.array_equal(alone, draw(a, seed=8, epoch=3, rows=np.array([41])))
    # Seeds s and s+1 are not the same streams shifted by a row (Grain's seed + index).
    assert not np.array_equal(draw(a, seed=8, epoch=3, rows=np.array([40])), alone)


# -- reproducibility --------------------------------------------------------------------------


def test_same_seed_same_augmented_batches_other_epochs_and_seeds_differ(demo_csv):
    def make(seed):
        return RoiDataset(demo_csv, image_size=(24, 24), batch_size=8, seed=seed, augment=RECIPE)

    first, second = make(5), make(5)
    epoch0 = epoch_batches(first)
    assert digest(epoch0) == digest(epoch_batches(second))
    assert digest(epoch_batches(first)) != digest(epoch0)  # epoch 1
    assert digest(epoch_batches(make(6))) != digest(epoch0)
    plain = RoiDataset(demo_csv, image_size=(24, 24), batch_size=8, seed=5)
    assert digest(epoch_batches(plain)) != digest(epoch0)


def test_a_rows_crop_does_not_depend_on_its_batch_or_shuffle(demo_csv):
    shuffled = RoiDataset(demo_csv, image_size=(20, 20), batch_size=8, seed=9, augment=RECIPE)
    ordered = RoiDataset(demo_csv, image_size=(20, 20), batch_size=3, seed=9, augment=RECIPE,
                         shuffle=False)
    crops = {}
    for number in range(len(ordered)):
        for row, x in zip(ordered.plan()[number], ordered[number][0]):
            crops[int(row)] = x
    for number in range(len(shuffled)):
        for row, x in zip(shuffled.plan()[number], shuffled[number][0]):
            np.testing.assert_array_equal(x, crops[int(row)])


def test_resume_mid_epoch_gives_the_same_augmented_batches(demo_csv):
    ds = RoiDataset(demo_csv, image_size=(16, 16), batch_size=8, seed=4, augment=RECIPE)
    ds.set_epoch(2)
    expected = [ds[i] for i in range(len(ds))]
    other = RoiDataset(demo_csv, image_size=(16, 16), batch_size=8, seed=4, augment=RECIPE)
    other.set_state({**other.get_state(), "epoch": 2, "rows": 8})  # one batch of 8 done
    resumed = list(other.iter_batches())
    assert digest(resumed) == digest(expected[1:])


def test_state_records_the_augmentation(demo_csv):
    ds = RoiDataset(demo_csv, image_size=(16, 16), seed=4, augment=RECIPE)
    plain = RoiDataset(demo_csv, image_size=(16, 16), seed=4)
    assert "augment" not in plain.get_state()["config"]
    with pytest.raises(Exception, match="augment"):
        plain.set_state(ds.get_state())
    again = pickle.loads(pickle.dumps(ds))
    assert digest([again[0]]) == digest([ds[0]])


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "processes"), [(2, False), (2, True)])
def test_worker_modes_give_identical_augmented_batches(demo_csv, workers, processes):
    options = {"image_size": (24, 24), "batch_size": 8, "seed": 12, "augment": RECIPE,
               "border": "reflect"}
    reference = RoiDataset(demo_csv, **options)
    expected = digest(epoch_batches(reference))
    ds = RoiDataset(demo_csv, workers=workers, use_multiprocessing=processes, max_queue_size=2,
                    **options)
    assert digest(list(ds.iter_batches())) == expected


# -- augmentation off -------------------------------------------------------------------------


@pytest.mark.parametrize(("interpolation", "size"), list(GOLDEN))
def test_augmentation_off_gives_todays_crops(tmp_path, interpolation, size):
    table = scene_table(tmp_path, n_images=2)
    ds = RoiDataset(table, image_dir=tmp_path, image_size=size, interpolation=interpolation,
                    batch_size=len(table), shuffle=False, dtype="uint8", augment=None)
    x = ds[0][0]
    # Today's algorithm, row by row: clip the box, crop and resize it (reference path).
    options = DecodeOptions(size, interpolation=interpolation, fast=False)
    for row in range(len(ds.index)):
        image, _, _ = load_image(ds.index.path_of(row), options)
        box = clip_box(ds.index.boxes[row], *image.size)
        np.testing.assert_array_equal(x[row], crop_region(image, box, options))
    if not PIL.__version__.startswith(GOLDEN_PILLOW):
        pytest.skip(f"golden digests were computed with Pillow {GOLDEN_PILLOW}x")
    assert hashlib.sha256(x.tobytes()).hexdigest() == GOLDEN[(interpolation, size)]


def test_augmentation_off_batches_equal_unaugmented_over_epochs(demo_csv):
    plain = RoiDataset(demo_csv, image_size=(24, 24), batch_size=8, seed=2)
    empty = RoiDataset(demo_csv, image_size=(24, 24), batch_size=8, seed=2, augment={},
                       border="constant")
    for _ in range(2):
        assert digest(epoch_batches(plain)) == digest(epoch_batches(empty))


# -- pixels -----------------------------------------------------------------------------------


def quadrant_crops(tmp_path: Path, size: tuple[int, int] = (64, 64), **augment) -> tuple:
    table = quadrant_scene(tmp_path)
    ds = RoiDataset(table, image_dir=tmp_path, image_size=size, batch_size=4, shuffle=False,
                    seed=21, augment=augment, fast_decode=False, dtype="uint8", y_cols=("name",))
    return ds, ds[0][0]


def test_horizontal_and_vertical_flips_against_pixel_truth(tmp_path):
    ds, x = quadrant_crops(tmp_path, horizontal_flip=True, vertical_flip=True)
    seen = set()
    for row, crop in enumerate(x):
        p = ds.explain(row).parameters
        h, v = bool(p["horizontal_flip"]), bool(p["vertical_flip"])
        seen.add((h, v))
        left, right = ("tr", "tl") if h else ("tl", "tr")
        expected_top_left = {False: left, True: "bl" if not h else "br"}[v]
        expected_top_right = {False: right, True: "br" if not h else "bl"}[v]
        assert near(colour_at(crop, 8, 8), QUADRANTS[expected_top_left])
        assert near(colour_at(crop, 8, 56), QUADRANTS[expected_top_right])
    assert len(seen) > 1  # the draw varies between rows


@pytest.mark.parametrize("angle", [90.0, -90.0, 180.0])
def test_rotation_turns_the_content_counter_clockwise(tmp_path, angle):
    _, straight = quadrant_crops(tmp_path / "a")
    _, turned = quadrant_crops(tmp_path / "b", rotation=(angle, angle))
    expected = np.rot90(straight[0], k=int(angle // 90))
    difference = np.abs(turned[0].astype(int) - expected.astype(int))
    assert difference.max() <= 2
    assert near(colour_at(turned[0], 8, 8), colour_at(expected, 8, 8), 1)


def test_small_rotation_matches_pillows_quad_transform_of_the_window(tmp_path):
    ds, x = quadrant_crops(tmp_path, rotation=(5.0, 25.0))
    image = Image.open(tmp_path / "quadrants.png").convert("RGB")
    for row in range(len(x)):
        corners = ds.explain(row).corners  # crop's top-left, top-right, bottom-right, bottom-left
        quad = [*corners[0], *corners[3], *corners[2], *corners[1]]
        truth = np.asarray(image.transform((64, 64), Image.Transform.QUAD, quad,
                                           Image.Resampling.BILINEAR))
        difference = np.abs(x[row].astype(int) - truth.astype(int))
        assert difference.mean() < 1.5 and np.percentile(difference, 99) < 40


def test_context_includes_the_background_around_a_solid_box(tmp_path):
    image = Image.new("RGB", (200, 200), GREY)
    image.paste((200, 30, 40), (50, 50, 100, 100))
    image.save(tmp_path / "square.png")
    shape = json.dumps({"name": "rect", "x": 50, "y": 50, "width": 50, "height": 50})
    table = pd.DataFrame({"filename": ["square.png"], "region_shape_attributes": [shape],
                          "name": ["a"]})
    common = {"image_dir": tmp_path, "image_size": (40, 40), "y_cols": ("name",), "dtype": "uint8"}
    tight = RoiDataset(table, **common)[0][0][0]
    wide_ds = RoiDataset(table, augment={"context": 0.5}, **common)
    wide = wide_ds[0][0][0]
    assert near(colour_at(tight, 2, 2), (200, 30, 40)) and near(colour_at(tight, 37, 37), (200, 30, 40))
    # The window doubles each side: grey in the outer quarter, the box in the middle half.
    for y, x in ((2, 2), (2, 37), (37, 2), (37, 37), (20, 3), (3, 20)):
        assert near(colour_at(wide, y, x), GREY), (y, x)
    assert near(colour_at(wide, 20, 20), (200, 30, 40)) and near(colour_at(wide, 12, 12), (200, 30, 40))
    assert wide_ds.explain(0).window.box == pytest.approx((25.0, 25.0, 125.0, 125.0))


@pytest.mark.parametrize(("border", "corner"), [("constant", (0, 0, 0)), ("reflect", None),
                                                 ("clip", None)])
def test_border_policies_at_the_image_edge(tmp_path, border, corner):
    image = Image.new("RGB", (100, 80), GREY)
    image.paste((20, 200, 30), (0, 0, 30, 30))  # green square in the top-left corner
    image.save(tmp_path / "edge.png")
    shape = json.dumps({"name": "rect", "x": 0, "y": 0, "width": 30, "height": 30})
    table = pd.DataFrame({"filename": ["edge.png"], "region_shape_attributes": [shape],
                          "name": ["a"]})
    ds = RoiDataset(table, image_dir=tmp_path, image_size=(30, 30), y_cols=("name",),
                    dtype="uint8", augment={"context": 0.5}, border=border, fast_decode=False)
    crop = ds[0][0][0]
    if border == "constant":  # the window starts 15 px outside: zeros there
        assert colour_at(crop, 2, 2) == corner
        assert near(colour_at(crop, 12, 12), (20, 200, 30))
    elif border == "reflect":  # mirrored: the green square continues past the edge
        assert near(colour_at(crop, 2, 2), (20, 200, 30)) and near(colour_at(crop, 12, 12), (20, 200, 30))
        assert near(colour_at(crop, 27, 27), GREY)
    else:  # clipped to the image: the window is (0, 0, 45, 45)
        assert ds.explain(0).window.box == pytest.approx((0.0, 0.0, 45.0, 45.0))
        assert near(colour_at(crop, 2, 2), (20, 200, 30)) and near(colour_at(crop, 27, 27), GREY)


def test_explain_reproduces_the_crop_through_the_reference_pillow_path(demo_csv):
    ds = RoiDataset(demo_csv, image_size=(24, 24), batch_size=8, seed=3, fast_decode=False,
                    augment={"zoom": (0.7, 1.1), "shift": 0.1, "aspect": (0.8, 1.25)},
                    border="clip")
    ds.set_epoch(1)
    options = DecodeOptions((24, 24), fast=False)
    for number in (0, 1):
        x = ds[number][0]
        for row, crop in zip(ds.plan()[number], x):
            explained = ds.explain(int(row))
            assert explained.epoch == 1
            image, _, _ = load_image(explained.path, options)
            assert image.size == explained.image_size
            np.testing.assert_array_equal(crop, crop_region(image, explained.window.box, options))
            # And against plain Pillow: the whole image resized from the window box.
            plain = np.asarray(image.resize((24, 24), Image.Resampling.BILINEAR,
                                            box=explained.window.box))
            assert np.abs(crop.astype(int) - plain.astype(int)).max() <= 2
    assert "window=Window(xyxy=(" in repr(ds.explain(0)) and "zoom" in repr(ds.explain(0))


def test_explain_refuses_rows_outside_the_index(demo_csv):
    ds = RoiDataset(demo_csv, image_size=(8, 8), augment={"zoom": 0.1})
    with pytest.raises(IndexError, match=f"Received: row={len(ds.index)}"):
        ds.explain(len(ds.index))


def test_colour_ops_follow_kerass_formulas():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    params = draw(Augmentation(), 0, 0, np.array([0]))[0]
    brightness, contrast = params.copy(), params.copy()
    brightness[PARAMETERS.index("brightness")] = 0.1 * 255
    contrast[PARAMETERS.index("contrast")] = 0.5
    values = crop.astype(np.float64)
    np.testing.assert_array_equal(apply_pixel_ops(crop, brightness),
                                  np.rint(np.clip(values + 25.5, 0, 255)).astype(np.uint8))
    mean = values.mean(axis=(0, 1), keepdims=True)
    np.testing.assert_array_equal(apply_pixel_ops(crop, contrast),
                                  np.rint(np.clip((values - mean) * 0.5 + mean, 0, 255)))
    grey = params.copy()
    grey[PARAMETERS.index("saturation")] = 0.0
    out = apply_pixel_ops(crop, grey).astype(int)
    assert (out.max(axis=-1) - out.min(axis=-1)).max() <= 1  # no saturation left
    turned = params.copy()
    turned[PARAMETERS.index("hue")] = 1 / 3  # a third of a turn: red -> green
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 200
    assert colour_at(apply_pixel_ops(red, turned), 0, 0) == (0, 200, 0)
    np.testing.assert_array_equal(apply_pixel_ops(crop, params), crop)  # identity


def test_erasing_fills_one_rectangle(demo_csv):
    ds = RoiDataset(demo_csv, image_size=(32, 32), batch_size=16, seed=3, shuffle=False,
                    augment={"erasing": 1.0}, dtype="uint8")
    plain = RoiDataset(demo_csv, image_size=(32, 32), batch_size=16, seed=3, shuffle=False,
                       dtype="uint8")
    x, y = ds[0][0], plain[0][0]
    for row in range(len(x)):
        p = ds.explain(row).parameters
        x0, x1 = round(p["erase_x0"] * 32), round(p["erase_x1"] * 32)
        y0, y1 = round(p["erase_y0"] * 32), round(p["erase_y1"] * 32)
        fill = [p["erase_r"], p["erase_g"], p["erase_b"]]
        assert (x[row, y0:y1, x0:x1] == np.asarray(fill, np.uint8)).all()
        outside = np.ones((32, 32), bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(x[row][outside], y[row][outside])
        assert 0.01 <= (x1 - x0) * (y1 - y0) / 1024 <= 0.4


# -- aspect ratio -----------------------------------------------------------------------------


def test_crop_and_pad_to_aspect_ratio(tmp_path):
    image = Image.new("RGB", (200, 100), GREY)
    image.paste((200, 30, 40), (20, 20, 60, 80))  # red left part of the box
    image.paste((30, 40, 220), (140, 20, 180, 80))  # blue right part
    image.paste((20, 200, 30), (60, 20, 140, 80))  # green middle
    image.save(tmp_path / "wide.png")
    shape = json.dumps({"name": "rect", "x": 20, "y": 20, "width": 160, "height": 60})
    table = pd.DataFrame({"filename": ["wide.png"], "region_shape_attributes": [shape],
                          "name": ["a"]})
    common = {"image_dir": tmp_path, "image_size": (30, 30), "y_cols": ("name",), "dtype": "uint8"}
    squash = RoiDataset(table, **common)[0][0][0]
    assert near(colour_at(squash, 15, 1), (200, 30, 40))
    cropped = RoiDataset(table, crop_to_aspect_ratio=True, **common)[0][0][0]
    assert near(colour_at(cropped, 15, 1), (20, 200, 30))  # a centred 60x60 window: all green
    assert near(colour_at(cropped, 15, 28), (20, 200, 30))
    padded = RoiDataset(table, pad_to_aspect_ratio=True, **common)[0][0][0]
    assert (padded[:7] == 0).all() and (padded[-7:] == 0).all()  # 160x60 -> 30x11, centred
    assert near(colour_at(padded, 15, 1), (200, 30, 40)) and near(colour_at(padded, 15, 28),
                                                                  (30, 40, 220))


# -- geometry under any box -------------------------------------------------------------------


@pytest.fixture(scope="module")
def noise_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60x40 PNG of random pixels."""
    path = tmp_path_factory.mktemp("edges") / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x0=st.floats(-20, 55), y0=st.floats(-20, 35), w=st.floats(0.05, 60), h=st.floats(0.05, 60),
    zoom=st.tuples(st.floats(0.2, 3), st.floats(0, 2)), shift=st.floats(0, 2),
    rotation=st.floats(-180, 180), context=st.floats(0, 2), seed=st.integers(0, 2**40),
    border=st.sampled_from(["constant", "reflect", "clip"]),
    aspect=st.sampled_from(["squash", "crop", "pad"]), size=st.sampled_from([(7, 5), (16, 16)]),
)
def test_windows_stay_finite_and_crops_keep_their_shape_near_image_edges(
        noise_image, x0, y0, w, h, zoom, shift, rotation, context, seed, border, aspect, size):
    path = noise_image
    augmentation = Augmentation(zoom=(zoom[0], zoom[0] + zoom[1]), shift=shift,
                                rotation=(rotation, rotation), context=context)
    box = np.array([[x0, y0, x0 + w, y0 + h]])
    params = draw(augmentation, seed, 0, np.array([0]))
    options = DecodeOptions(size, border=border, aspect_ratio=aspect, fast=False)
    clipped = clip_box(box[0], 60, 40)
    job = BatchJob((str(path),), np.zeros(1, np.int32), box, False, options, augmentation, params)
    result = decode_batch(job)
    assert result.pixels.shape == (1, *size, 3)
    if clipped is None:
        assert [f.kind for f in result.failures] == ["box_outside_image"]
        return
    assert not result.failures
    window = row_window(clipped, params[0], augmentation, (60, 40), size, aspect, border)
    assert all(np.isfinite([window.cx, window.cy, window.width, window.height, window.angle]))
    assert window.width > 0 and window.height > 0
    assert np.isfinite(window.corners()).all()


def test_window_geometry():
    window = Window.from_box((10, 20, 30, 60), angle=90)
    assert window.box == (10, 20, 30, 60)
    corners = window.corners()
    np.testing.assert_allclose(corners[0], (40, 30), atol=1e-9)  # top-left of the crop
    assert window.bounds() == pytest.approx((0, 30, 40, 50))


# -- data module and previews -----------------------------------------------------------------


def test_datamodule_augments_the_training_split_only(demo_csv):
    data = RoiDataModule(demo_csv, image_size=(16, 16), batch_size=8, augment=RECIPE)
    assert data.train_dataset().augment == Augmentation(**RECIPE)
    assert data.val_dataset().augment is None
    assert data.predict_dataset().augment is None
    both = RoiDataModule(demo_csv, image_size=(16, 16), augment=RECIPE,
                         augment_splits=("train", "val"))
    assert both.val_dataset().augment is not None
    with pytest.raises(ValueError, match="Received: augment_splits='train'"):
        RoiDataModule(demo_csv, augment=RECIPE, augment_splits="train")


def test_previews_show_augmented_crops_and_repeat_with_the_seed(demo_csv, tmp_path):
    from keras_roi_datagen.cli import main

    ds = RoiDataset(demo_csv, image_size=(24, 24), seed=8, augment=RECIPE)
    plain = RoiDataset(demo_csv, image_size=(24, 24), seed=8)
    sheet = np.asarray(ds.preview(6, seed=1))
    assert np.array_equal(sheet, np.asarray(ds.preview(6, seed=1)))
    assert not np.array_equal(sheet, np.asarray(plain.preview(6, seed=1)))
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(RECIPE))
    outputs = []
    for k, augment in enumerate((json.dumps(RECIPE), str(recipe))):
        out = tmp_path / f"sheet{k}.png"
        assert main(["preview", str(demo_csv), "--augment", augment, "--seed", "4",
                     "--sample", "6", "-o", str(out)]) == 0
        outputs.append(np.asarray(Image.open(out)))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert main(["preview", str(demo_csv), "--augment", '{"zoom": [2, 1]}', "-o",
                 str(tmp_path / "bad.png")]) == 2


@pytest.mark.skipif(not jpeg_region.AVAILABLE, reason="the region-decode extension is not built")
@pytest.mark.parametrize("border", ["constant", "reflect", "clip"])
def test_region_decode_gives_the_same_augmented_crops_as_the_pillow_path(
        demo_csv, monkeypatch, border):
    options = {"image_size": (20, 20), "batch_size": 16, "seed": 31, "border": border,
               "augment": {**RECIPE, "context": 0.4, "rotation": 40}}
    native = digest(epoch_batches(RoiDataset(demo_csv, **options)))
    monkeypatch.setattr(jpeg_region, "AVAILABLE", False)
    assert digest(epoch_batches(RoiDataset(demo_csv, **options))) == native
