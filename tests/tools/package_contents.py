"""What the sdist and the wheel hold: every module, the C source, the typing files, the entry points.

An editable install reads the checkout, so a file the package data forgot
(the C source, `py.typed`, `_jpeg_region.pyi`, a subpackage, the worker
entry point `workers/__main__.py`) would pass every test and still be missing
for users. This lists the files of both archives (`--list`) and fails, naming
each, when one that must ship is absent or one that must not is present.

    python tests/tools/package_contents.py dist/ [--expect-extension] [--list]
"""

from __future__ import annotations

import argparse
import configparser
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "keras_roi_datagen"
# Besides every module of the checkout's package: what users need and no test would miss.
DATA = (f"{PACKAGE}/py.typed", f"{PACKAGE}/_jpeg_region.pyi", f"{PACKAGE}/_jpeg_region.c",
        f"{PACKAGE}/workers/__main__.py", f"{PACKAGE}/__main__.py")
SDIST_ONLY = ("setup.py", "pyproject.toml", "README.md")
CONSOLE_SCRIPT = ("keras-roi-datagen", "keras_roi_datagen.cli:main")


def modules() -> list[str]:
    """The package's Python modules in the checkout, as archive paths."""
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE).rglob("*.py"))


def check_wheel(wheel: Path, expect_extension: bool) -> tuple[list[str], list[str]]:
    """The wheel's files and the problems found in it."""
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(info).decode())
    problems = [f"missing {name}" for name in (*modules(), *DATA) if name not in names]
    extensions = [n for n in names if n.startswith(f"{PACKAGE}/_jpeg_region.") and n.endswith(".so")]
    if expect_extension and len(extensions) != 1:
        problems.append(f"expected one compiled {PACKAGE}/_jpeg_region extension, found {extensions}")
    scripts = dict(entry_points["console_scripts"]) if "console_scripts" in entry_points else {}
    if scripts.get(CONSOLE_SCRIPT[0]) != CONSOLE_SCRIPT[1]:
        problems.append(f"console script {CONSOLE_SCRIPT[0]} = {CONSOLE_SCRIPT[1]} missing: {scripts}")
    stray = [n for n in names if not n.startswith((f"{PACKAGE}/", wheel.name.split("-")[0]))]
    problems += [f"not part of the package: {n}" for n in stray]
    problems += [f"compiled cache shipped: {n}" for n in names if "__pycache__" in n]
    return names, problems


def check_sdist(sdist: Path) -> tuple[list[str], list[str]]:
    """The sdist's files (without its top folder) and the problems found in it."""
    with tarfile.open(sdist) as archive:
        names = sorted(n.split("/", 1)[1] for n in archive.getnames() if "/" in n)
    problems = [f"missing {name}" for name in (*modules(), *DATA, *SDIST_ONLY) if name not in names]
    problems += [f"built file shipped: {n}" for n in names
                 if n.endswith((".so", ".pyd", ".pyc", ".o"))]
    return names, problems


def main(argv: list[str] | None = None) -> int:
    """Checks the one wheel and the one sdist in a folder; exit status 1 on any problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dist", type=Path, help="folder holding one .whl and one .tar.gz")
    parser.add_argument("--expect-extension", action="store_true",
                        help="the wheel must hold the compiled region decoder")
    parser.add_argument("--list", action="store_true", help="print every file of both archives")
    args = parser.parse_args(argv)
    (wheel,), (sdist,) = sorted(args.dist.glob("*.whl")), sorted(args.dist.glob("*.tar.gz"))
    found = {wheel: check_wheel(wheel, args.expect_extension), sdist: check_sdist(sdist)}
    failed = False
    for archive, (names, problems) in found.items():
        print(f"{archive.name}: {len(names)} files")
        if args.list:
            print("".join(f"  {name}\n" for name in names), end="")
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        failed |= bool(problems)
    print("contents: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
