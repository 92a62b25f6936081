"""Sessions that prove keras-roi-datagen on every Keras backend.

`nox` alone runs the CPU matrix that CI runs (the README's test command):
`tests` on TensorFlow, JAX and PyTorch (each in its own venv, so a dependency
missing on one backend is caught), `parity` (same batches everywhere),
`distributed` (multi-process training on localhost), `train`
(the example learns on every backend), `lint`, `docs` (the site builds
with warnings as errors, and its examples run) and `package` (the sdist and
wheel, installed outside the checkout, work).

Other sessions: `demo` (the README's main job), `bench` (benchmarks),
`gpu` (parity and training on a GPU; skips cleanly without one).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests", "parity", "distributed", "train", "docs", "package"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

ROOT = Path(__file__).parent
REPORTS = ROOT / "reports"
BACKENDS = ("tensorflow", "jax", "torch")
# CPU builds. torch is pinned here only (never in the library): 2.13.0 is the
# CPU wheel this project's machines carry; a plain `torch` pulls a CUDA build.
# Editable installs build the optional region decoder in place, so the tests
# (run from the checkout) exercise it.
BACKEND_PINS = {
    "tensorflow": ["-e", ".[tensorflow-cpu,test]", "tensorflow-cpu==2.21.0"],
    "jax": ["-e", ".[jax,test]", "jax[cpu]"],
    "torch": ["-e", ".[torch,test]", "torch==2.13.0"],
}
ALL_BACKENDS = ["-e", ".[test]", "tensorflow-cpu==2.21.0", "jax[cpu]", "torch==2.13.0"]
# Every CPU install resolves to one recorded set of versions (see the file's header).
CONSTRAINTS = ["-c", str(ROOT / ".ci" / "constraints.txt")]
# Flaky links to the package index are retried rather than failing a session.
os.environ.setdefault("PIP_RETRIES", "10")
os.environ.setdefault("PIP_TIMEOUT", "60")


def _install(session: nox.Session, *requirements: str) -> None:
    """Installs `requirements` under the recorded constraints, torch's CPU wheel first.

    Resolved together with the test extras, `torch==2.13.0` can land on PyPI's CUDA build
    (several GB) instead of the local `2.13.0+cpu` wheel; installed alone first, it is the CPU
    wheel, and the second install finds it already satisfied.
    """
    torch = [r for r in requirements if r.startswith("torch==")]
    if torch:
        session.install(*torch, *CONSTRAINTS)
    session.install(*requirements, *CONSTRAINTS)


def _env(backend: str) -> dict[str, str]:
    return {
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONHASHSEED": "0",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Runs the test suite on one backend (CPU)."""
    _install(session, *BACKEND_PINS[backend])
    args = session.posargs or ["-q", "-p", "no:cacheprovider"]
    session.run("python", "-m", "pytest", *args, env=_env(backend))


@nox.session
def parity(session: nox.Session) -> None:
    """Same bytes on 3 backends x 3 worker modes x (ds[i], the fit path), 3 epochs."""
    _install(session, *ALL_BACKENDS)
    REPORTS.mkdir(exist_ok=True)
    session.run("python", "tests/tools/parity.py", "--report", str(REPORTS / "parity.json"),
                env={"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})


@nox.session
def distributed(session: nox.Session) -> None:
    """Multi-process training on localhost: JAX DataParallel and torch DDP train every row once;
    TensorFlow multi-worker is refused with a clear error (Keras 3 cannot train it)."""
    _install(session, *ALL_BACKENDS)
    REPORTS.mkdir(exist_ok=True)
    session.run("python", "tests/tools/distributed.py", "--report", str(REPORTS / "distributed.json"),
                env={"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})


@nox.session
@nox.parametrize("backend", BACKENDS)
def train(session: nox.Session, backend: str) -> None:
    """Trains the example's two-head model and asserts both heads learn."""
    _install(session, *BACKEND_PINS[backend])
    REPORTS.mkdir(exist_ok=True)
    session.run(
        "python", "examples/train_two_heads.py", "--data", str(ROOT / ".nox" / "demo_data"),
        "--epochs", "10", "--min-accuracy", "0.9",
        "--report", str(REPORTS / f"train-{backend}.json"), env=_env(backend),
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy, configured in pyproject.toml."""
    _install(session, "-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: writes the demo dataset and trains the two-head model on it."""
    backend = os.environ.get("KERAS_BACKEND", "jax")
    _install(session, *BACKEND_PINS[backend])
    session.run("python", "examples/train_two_heads.py", "--data", "demo_data",
                *session.posargs, env=_env(backend))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against tf.data, torch DataLoader and the classic generator."""
    _install(session, *ALL_BACKENDS, "simplejpeg")
    REPORTS.mkdir(exist_ok=True)
    session.run("python", "benchmarks/run.py", "--report", str(REPORTS / "bench.json"),
                *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    session.run("python", "benchmarks/coco_stream.py", "--report", str(REPORTS / "coco_stream.json"))


@nox.session
def bench_bigdata(session: nox.Session) -> None:
    """Big tables and object storage (`benchmarks/bigdata.py`; 10^8 rows by default: slow)."""
    _install(session, "-e", ".[jax,test]")
    session.run("python", "benchmarks/bigdata.py", "--report", str(REPORTS / "bigdata.json"),
                *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "jax"})


@nox.session(venv_backend="none")
@nox.parametrize("backend", BACKENDS)
def gpu(session: nox.Session, backend: str) -> None:
    """Parity and training on a GPU, from the system Python.

    Offline machines: put wheels in a folder and set `ROI_WHEELS=/that/folder`;
    they are installed with `--no-index --find-links` into `.nox/gpu-site`.
    Skips with a message when no GPU is visible to the backend.
    """
    env = {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    wheels = os.environ.get("ROI_WHEELS")
    if wheels:
        site = ROOT / ".nox" / "gpu-site"
        shutil.rmtree(site, ignore_errors=True)
        session.run("python3", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
                    "--target", str(site), ".", external=True)
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    REPORTS.mkdir(exist_ok=True)
    session.run("python3", "tests/tools/gpu_check.py", "--report",
                str(REPORTS / f"gpu-{backend}.json"), env=env, external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """Builds the documentation site (MkDocs) with warnings as errors and runs its examples.

    Fails on a broken link or reference, a docstring griffe cannot parse, a public name missing
    from the API reference, an example of a page that fails (`docs/conftest.py`) or a doctest
    of the package's docstrings that fails.
    """
    _install(session, "-e", ".[jax,parquet,docs]", "jax[cpu]")
    site = ROOT / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site),
                env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("python", "docs/tools/check_reference.py", str(site / "objects.inv"),
                env=_env("jax"))
    # Old module names that replace themselves in sys.modules cannot be collected twice.
    shims = [f"--ignore={p.relative_to(ROOT)}" for p in sorted((ROOT / "keras_roi_datagen").glob("*.py"))
             if "sys.modules[__name__] =" in p.read_text(encoding="utf-8")]
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "docs",
                "--doctest-modules", "keras_roi_datagen", *shims, env=_env("jax"))

@nox.session
def package(session: nox.Session) -> None:
    """Builds the sdist and the wheel, checks them, and smoke-tests them installed outside the checkout.

    The wheel is installed into this session's venv (no editable install, nothing of the
    checkout on the path) and tested from an empty folder. Then the sdist is installed again
    where libjpeg's headers cannot be found (a `jpeglib.h` that fails to compile comes first on
    the include path), and the package must work on the Pillow path and say so.
    """
    _install(session, "build", "twine", "jax[cpu]")
    work = Path(session.create_tmp()).resolve()
    dist = work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))  # the sdist, then the wheel from it
    archives = sorted(str(p) for p in dist.iterdir())
    session.run("twine", "check", "--strict", *archives)
    # Where the headers exist the wheel must carry the decoder (as tests/test_jpeg_region.py asks).
    native = Path("/usr/include/jpeglib.h").exists()
    session.run("python", "tests/tools/package_contents.py", str(dist), "--list",
                *(["--expect-extension"] if native else []))
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    _install(session, str(wheel))  # its dependencies, under the constraints
    session.install("--force-reinstall", "--no-deps", str(wheel))

    smoke = work / "smoke"
    shutil.rmtree(smoke, ignore_errors=True)
    smoke.mkdir()
    for script in ("tools/package_smoke.py", "annotation_scene.py"):
        shutil.copy(ROOT / "tests" / script, smoke)
    env = {"PYTHONPATH": None, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "",
           "KERAS_ROI_DATAGEN_NATIVE_DECODER": None}
    with session.chdir(smoke):
        session.run("python", "package_smoke.py", "--checkout", str(ROOT),
                    "--expect", "native" if native else "pillow", env=env)

    # No libjpeg headers: the optional extension fails to compile and is left out.
    headers = work / "no-libjpeg"
    headers.mkdir(exist_ok=True)
    (headers / "jpeglib.h").write_text("#error \"jpeglib.h: No such file (simulated)\"\n")
    site = work / "pillow-site"
    shutil.rmtree(site, ignore_errors=True)
    session.run("python", "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--target",
                str(site), str(sdist), env={"CFLAGS": f"-I{headers}"})
    with session.chdir(smoke):
        session.run("python", "package_smoke.py", "--checkout", str(ROOT), "--expect", "pillow",
                    env={**env, "PYTHONPATH": str(site)})
