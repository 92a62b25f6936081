"""`keras_roi_datagen.info()` and `keras-roi-datagen --version`: what is installed, which decode path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import keras_roi_datagen
from keras_roi_datagen.cli import main
from keras_roi_datagen.decode import native

REPO = Path(__file__).resolve().parent.parent


def _python(code: str, cwd: Path = REPO, **env: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    environment.pop(native.SWITCH, None)
    environment.update(env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=120, check=True)
    return done.stdout


def test_info_names_the_versions_and_the_decode_path() -> None:
    about = keras_roi_datagen.info()
    assert about.version == keras_roi_datagen.__version__
    assert about.decode_path == ("native" if native.AVAILABLE else "pillow")
    assert about.native_reason == native.unavailable_reason()
    assert set(about.extras) == {"tensorflow", "jax", "torch", "fsspec", "s3fs", "gcsfs",
                                 "pyarrow", "pyyaml"}
    text = str(about)
    assert text.splitlines()[0] == f"keras-roi-datagen {keras_roi_datagen.__version__}"
    assert f"decode path: {about.decode_path}" in text
    assert json.loads(json.dumps(about.to_dict()))["decode_path"] == about.decode_path


def test_version_option_prints_info_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"keras-roi-datagen {keras_roi_datagen.__version__}\n")
    assert "decode path: " in out and "extras: " in out


@pytest.mark.skipif(not native.AVAILABLE, reason="the region-decode extension is not built")
def test_the_environment_switch_turns_the_native_decoder_off_and_says_so() -> None:
    code = ("import keras_roi_datagen, sys\n"
            "about = keras_roi_datagen.info()\n"
            "print(about.decode_path); print(about.native_reason)\n"
            "print('keras' in sys.modules)\n")
    on = _python(code).splitlines()
    off = _python(code, KERAS_ROI_DATAGEN_NATIVE_DECODER="0").splitlines()
    assert on == ["native", "", "False"]  # and info() imported no Keras
    assert off[0] == "pillow"
    assert off[1] == "turned off by the environment variable KERAS_ROI_DATAGEN_NATIVE_DECODER=0"


def test_a_missing_extension_is_reported_as_not_installed(tmp_path: Path) -> None:
    # The package as an install without the compiled extension lays it out.
    shutil.copytree(REPO / "keras_roi_datagen", tmp_path / "keras_roi_datagen",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    # An editable install's finder would find the checkout's extension by its name.
    code = ("import sys\n"
            "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f)]\n"
            "from keras_roi_datagen.decode import native\n"
            "print(native.AVAILABLE); print(native.unavailable_reason())\n")
    available, reason = _python(code, tmp_path, PYTHONPATH=str(tmp_path)).splitlines()
    assert available == "False"
    assert reason.startswith("the C extension keras_roi_datagen._jpeg_region is not installed")


def test_backend_comes_from_keras_backend_before_keras_is_imported() -> None:
    code = ("import keras_roi_datagen\n"
            "about = keras_roi_datagen.info()\n"
            "print(about.backend, about.backend_source)\n")
    assert _python(code, KERAS_BACKEND="jax").split() == ["jax", "KERAS_BACKEND"]


def test_turning_available_off_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "AVAILABLE", False)
    monkeypatch.setattr(native, "_SWITCHED_OFF", False)
    monkeypatch.setattr(native, "_native", object())
    assert keras_roi_datagen.info().decode_path == "pillow"
    assert native.unavailable_reason() == ("turned off: keras_roi_datagen.decode.native.AVAILABLE "
                                           "is False")
