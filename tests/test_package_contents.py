"""tests/tools/package_contents.py names every file a wheel or an sdist must ship and lacks."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path

TOOL = Path(__file__).resolve().parent / "tools" / "package_contents.py"
spec = importlib.util.spec_from_file_location("package_contents", TOOL)
assert spec is not None and spec.loader is not None
contents = importlib.util.module_from_spec(spec)
spec.loader.exec_module(contents)

ENTRY_POINTS = "[console_scripts]\nkeras-roi-datagen = keras_roi_datagen.cli:main\n"


def _wheel(path: Path, leave_out: set[str], extension: bool = True) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in {*contents.modules(), *contents.DATA} - leave_out:
            archive.writestr(name, "")
        if extension:
            archive.writestr("keras_roi_datagen/_jpeg_region.cpython-311-x86_64-linux-gnu.so", "")
        archive.writestr("keras_roi_datagen-0.1.0.dist-info/entry_points.txt", ENTRY_POINTS)
    return path


def test_a_complete_wheel_passes(tmp_path: Path) -> None:
    names, problems = contents.check_wheel(_wheel(tmp_path / "k-0.1.0-py3-none-any.whl", set()), True)
    assert problems == []
    assert "keras_roi_datagen/workers/__main__.py" in names


def test_missing_files_are_named(tmp_path: Path) -> None:
    gone = {"keras_roi_datagen/py.typed", "keras_roi_datagen/workers/__main__.py",
            "keras_roi_datagen/index/build.py"}
    wheel = _wheel(tmp_path / "k-0.1.0-py3-none-any.whl", gone, extension=False)
    _, problems = contents.check_wheel(wheel, expect_extension=True)
    assert {f"missing {name}" for name in gone} <= set(problems)
    assert any("compiled keras_roi_datagen/_jpeg_region extension" in p for p in problems)


def test_an_sdist_must_not_ship_built_files(tmp_path: Path) -> None:
    sdist = tmp_path / "k-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name in (*contents.modules(), *contents.DATA, *contents.SDIST_ONLY,
                     "keras_roi_datagen/_jpeg_region.so"):
            info = tarfile.TarInfo(f"k-0.1.0/{name}")
            archive.addfile(info, io.BytesIO(b""))
    _, problems = contents.check_sdist(sdist)
    assert problems == ["built file shipped: keras_roi_datagen/_jpeg_region.so"]
