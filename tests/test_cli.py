"""The `keras-roi-datagen` command line and contact sheets, on a small demo dataset.

Commands run in-process through `cli.main(argv)` (fast); one test starts the
real interpreter to check `python -m keras_roi_datagen` and that no command
imports Keras.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_roi_datagen import preview
from keras_roi_datagen.boxes import clip_box, shape_to_xyxy
from keras_roi_datagen.cli import main
from keras_roi_datagen.demo import make_demo_dataset
from keras_roi_datagen.formats import read_table, read_via
from keras_roi_datagen.imaging import DecodeOptions, crop_region, load_image

ERROR = "keras-roi-datagen: error:"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six demo images (the last without regions), 24 regions on lines 2 to 25."""
    return make_demo_dataset(tmp_path_factory.mktemp("cli_demo"), n_images=6, seed=1)


@pytest.fixture
def broken(demo: Path, tmp_path: Path) -> Path:
    """The demo table with line 3 pointing to a missing image and line 7's box cut short."""
    shutil.copytree(demo.parent, tmp_path / "broken")
    path = tmp_path / "broken" / demo.name
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    rows[2][0] = "images/not_there.jpg"  # rows[k] is line k + 1
    rows[6][5] = '{"name":"rect","x":1'
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(ERROR)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


# -- demo, help, usage ------------------------------------------------------------------------


def test_demo_writes_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", tmp_path / "d", "--images", 3, "--seed", 2)
    assert code == 0
    table = tmp_path / "d" / "via_region_data.csv"
    assert str(table) in out
    assert len(list((tmp_path / "d" / "images").glob("*.jpg"))) == 3
    assert read_table(table).attrs["format"] == "via2-csv"


@pytest.mark.parametrize("command", ["demo", "inspect", "validate", "preview"])
def test_every_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"example:\n  keras-roi-datagen {command} " in out


@pytest.mark.parametrize("argv", [
    [],
    ["inspect"],
    ["validate", "no_such_table.csv"],
    ["validate", "{demo}", "--image-dir", "no_such_folder"],
    ["validate", "{demo}", "--sample", "3"],
    ["preview", "{demo}"],  # no -o
    ["preview", "{demo}", "-o", "x.png", "--image-size", "0x5"],
    ["preview", "{demo}", "-o", "x.png", "--rows", "2", "--sample", "3"],
    ["preview", "{demo}", "-o", "x.png", "--rows", "2,999"],
    ["frobnicate"],
])
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *(a.format(demo=demo) for a in argv))
    assert code == 2
    assert_one_line_error(err)
    assert not (tmp_path / "x.png").exists()


def test_data_errors_are_one_line_and_debug_adds_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "export.json"
    table.write_text('{"a": 1}')
    code, _, err = run(capsys, "inspect", table)
    assert code == 1
    assert_one_line_error(err, "not a VIA file")
    code, _, err = run(capsys, "inspect", table, "--debug")
    assert code == 1
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith(ERROR)


# -- inspect ----------------------------------------------------------------------------------


def test_inspect_json_matches_the_table(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", demo, "--json")
    assert code == 0
    facts = json.loads(out)
    df = read_table(demo)
    per_image = df.groupby("filename").size()
    boxes = np.array([shape_to_xyxy(s) for s in df["region_shape_attributes"]])
    assert (facts["rows"], facts["usable_rows"], facts["images"]) == (24, 24, 5)
    assert facts["regions_per_image"] == {"min": per_image.min(), "median": per_image.median(),
                                          "max": per_image.max()}
    assert facts["box_width"]["p50"] == pytest.approx(np.median(boxes[:, 2] - boxes[:, 0]))
    assert facts["box_height"]["max"] == pytest.approx((boxes[:, 3] - boxes[:, 1]).max())
    assert facts["box_unit"] == "pixels"
    for column in ("name", "type"):
        assert facts["labels"][column] == df[column].value_counts().to_dict()
    assert facts["shape_kinds"] == dict(Counter(s["name"] for s in df["region_shape_attributes"]))
    assert facts["rows_without_regions"] == [
        {"row": 26, "filename": "images/scene_0005.jpg"}] == df.attrs["rows_without_regions"]
    assert facts["errors"] == {} and facts["images_missing"] == 0


def test_inspect_text_report(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", demo)
    assert (code, err) == (0, "")
    for needle in ("24 rows, 24 usable, in 5 images", "min 3, median 5, max 6",
                   "box size (pixels)", "label 'name' (4 classes)", "label 'type' (4 classes)",
                   "polygon 8", "line 26 images/scene_0005.jpg"):
        assert needle in out


def test_inspect_counts_rows_left_out(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", broken, "--json")
    facts = json.loads(out)
    assert code == 0
    assert facts["errors"] == {"bad_json": 1}
    assert (facts["images_missing"], facts["rows_with_missing_image"]) == (1, 1)


def test_inspect_plain_csv_needs_column_names(tmp_path: Path, demo: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "plain.csv"
    table.write_text(f"file,x0,y0,x1,y1,label\n{demo.parent}/images/scene_0000.jpg,10,10,60,50,cat\n")
    code, _, err = run(capsys, "inspect", table)
    assert code == 1
    assert_one_line_error(err, "no column(s)", "--y-cols")
    code, out, _ = run(capsys, "inspect", table, "--x-col", "file", "--box-cols", "x0,y0,x1,y1",
                       "--box-format", "xyxy", "--y-cols", "label", "--json",
                       "--allow-outside-image-dir")
    facts = json.loads(out)
    assert code == 0
    assert facts["labels"] == {"label": {"cat": 1}}
    assert facts["box_width"]["min"] == 50 and facts["box_height"]["min"] == 40


# -- validate ---------------------------------------------------------------------------------


def test_validate_clean_data_exits_0(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", demo, "--decode")
    assert code == 0
    assert out.startswith("24 rows, 5 images (decoded): 0 errors, 0 warnings.")
    assert out.rstrip().endswith("OK.")


def test_validate_lists_every_problem_and_exits_1(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "validate", broken)
    assert code == 1
    assert "2 errors" in out
    listed = [line for line in out.splitlines() if line.startswith("- [error]")]
    assert len(listed) == 2
    assert "line 3" in listed[0] and "not_there.jpg" in listed[0]
    assert "line 7" in listed[1] and "region_shape_attributes" in listed[1]


def test_validate_json_parses(broken: Path, demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", broken, "--json")
    report = json.loads(out)  # stdout is the JSON document only
    assert code == 1
    assert report["ok"] is False and report["rows"] == 24
    assert {(p["row"], p["kind"]) for p in report["problems"]} == {
        (3, "missing_file"), (7, "bad_json")}
    code, out, _ = run(capsys, "validate", demo, "--json")
    assert (code, json.loads(out)["ok"], json.loads(out)["problems"]) == (0, True, [])


def test_validate_finds_image_problems(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = broken.parent / "images" / "scene_0001.jpg"
    image.write_bytes(image.read_bytes()[:300])  # cut inside the JPEG data
    code, out, _ = run(capsys, "validate", broken, "--json", "--decode")
    kinds = {(p["row"], p["kind"]) for p in json.loads(out)["problems"]}
    assert code == 1
    assert {(8, "image_truncated"), (9, "image_truncated"), (10, "image_truncated")} <= kinds


def test_validate_table_level_problem_exits_1_and_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "plain.csv"
    table.write_text("file,label\na.jpg,cat\n")
    code, out, _ = run(capsys, "validate", table)
    assert code == 1
    assert "missing_column" in out and "--y-cols" in out
    code, out, _ = run(capsys, "validate", table, "--json")
    assert code == 1
    assert json.loads(out)["problems"][0]["kind"] == "missing_column"


# -- preview ----------------------------------------------------------------------------------


def expected_crop(table: Path, line: int, size: tuple[int, int]) -> np.ndarray:
    """The crop of one table line, made directly with `imaging` (reference decode)."""
    df = read_via(table, on_error="collect")
    options = DecodeOptions(size, fast=False)
    image, _, _ = load_image(str(table.parent / df.loc[line, "filename"]), options)
    box = clip_box(shape_to_xyxy(df.loc[line, "region_shape_attributes"]), *image.size)
    assert box is not None
    return crop_region(image, box, options)


def tile_pixels(sheet: Image.Image, layout: preview.SheetLayout, k: int, size: tuple[int, int],
                ) -> np.ndarray:
    x, y = layout.origin(k)
    return np.asarray(sheet)[y:y + size[0], x:x + size[1]]


def test_preview_tiles_are_the_crops(demo: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out_png = tmp_path / "sheet.png"
    code, out, _ = run(capsys, "preview", demo, "--rows", "2,9,16", "--columns", "2",
                       "--image-size", "96x80", "-o", out_png)
    assert code == 0 and "3 regions" in out
    sheet = Image.open(out_png)
    assert sheet.format == "PNG" and sheet.mode == "RGB"
    caption = preview.CAPTION_GAP + 3 * preview.LINE_HEIGHT  # row, name, type
    assert sheet.size == (2 * 80 + 3 * preview.PAD, 2 * (96 + caption) + 3 * preview.PAD)
    layout = preview.SheetLayout(80, 96, 3, 3, 2)
    for k, line in enumerate((2, 9, 16)):
        np.testing.assert_array_equal(tile_pixels(sheet, layout, k, (96, 80)),
                                      expected_crop(demo, line, (96, 80)))
    assert not np.array_equal(tile_pixels(sheet, layout, 0, (96, 80)),
                              expected_crop(demo, 9, (96, 80)))


def test_preview_sample_and_grid(demo: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out_png = tmp_path / "sample.png"
    code, out, _ = run(capsys, "preview", demo, "--sample", 5, "--seed", 3, "--image-size", "32",
                       "--no-row-labels", "-o", out_png)
    assert code == 0 and "5 regions" in out
    zoom = 2  # 32-pixel crops are drawn at 64 pixels
    caption = preview.CAPTION_GAP + 2 * preview.LINE_HEIGHT
    assert Image.open(out_png).size == (3 * 64 + 4 * preview.PAD, 2 * (64 + caption) + 3 * preview.PAD)
    sheet = np.asarray(Image.open(out_png))
    first = sheet[preview.PAD:preview.PAD + 64:zoom, preview.PAD:preview.PAD + 64:zoom]
    rows = sorted(np.random.default_rng(3).choice(24, size=5, replace=False).tolist())
    np.testing.assert_array_equal(first, expected_crop(demo, rows[0] + 2, (32, 32)))


def test_preview_failing_rows_get_error_tiles(broken: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out_png = tmp_path / "errors.png"
    code, _, err = run(capsys, "preview", broken, "--rows", "2,3,7", "-o", out_png)
    assert code == 0
    assert "missing_file" in err and "bad_json" in err
    sheet = Image.open(out_png)
    layout = preview.SheetLayout(96, 96, 3, 3, 2)
    assert sheet.size == layout.size
    np.testing.assert_array_equal(tile_pixels(sheet, layout, 0, (96, 96)),
                                  expected_crop(broken, 2, (96, 96)))
    for k in (1, 2):
        corner = tile_pixels(sheet, layout, k, (96, 96))[-8:, -8:]
        assert (corner == (178, 34, 34)).all()


def test_preview_boxes(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_png = tmp_path / "boxes.png"
    code, out, _ = run(capsys, "preview", demo, "--boxes", "--rows", "2,9", "-o", out_png)
    assert code == 0 and "2 images" in out
    sheet = Image.open(out_png)
    layout = preview.SheetLayout(320, 240, 1, 2, 2)  # two 320x240 scenes, captioned
    assert sheet.size == layout.size
    x, y = layout.origin(0)
    raw = np.asarray(Image.open(demo.parent / "images" / "scene_0000.jpg").convert("RGB"))
    drawn = np.asarray(sheet)[y:y + 240, x:x + 320]
    changed = np.any(drawn != raw, axis=-1)
    assert 0.01 < changed.mean() < 0.3  # box outlines and labels, not a different picture
    code, _, _ = run(capsys, "preview", demo, "--boxes", "--max-width", 160, "-o", out_png)
    assert code == 0 and Image.open(out_png).size[0] == 3 * 160 + 4 * preview.PAD


def test_contact_sheet_of_a_dataset_equals_the_cli_sheet(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from keras_roi_datagen import RoiDataset

    ds = RoiDataset(demo, image_size=(64, 48), seed=0)
    image = preview.contact_sheet(ds, rows=[2, 5, 11, 20])
    out_png = tmp_path / "cli.png"
    code, _, _ = run(capsys, "preview", demo, "--rows", "2,5,11,20", "--image-size", "64x48",
                     "-o", out_png)
    assert code == 0
    np.testing.assert_array_equal(np.asarray(image), np.asarray(Image.open(out_png)))
    assert preview.contact_sheet(ds, 3, seed=1).size == preview.SheetLayout(48, 64, 3, 3, 2).size


# -- the real command -------------------------------------------------------------------------


def test_python_m_and_no_keras_import(demo: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "keras_roi_datagen", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: keras-roi-datagen")
    assert "example:" in done.stdout
    script = (
        "import sys; from keras_roi_datagen.cli import main; "
        f"codes = [main(['inspect', {str(demo)!r}]), main(['validate', {str(demo)!r}]), "
        f"main(['preview', {str(demo)!r}, '-o', {str(tmp_path / 'p.png')!r}])]; "
        "print(codes, sorted(m for m in ('keras', 'jax', 'tensorflow', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 0] []", done.stderr
