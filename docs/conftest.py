"""Runs the Python examples of every documentation page (`nox -s docs`).

Each page's ```python blocks run in order in one namespace, in a fresh empty
folder (the examples write their own data with `make_demo_dataset`), so a page
reads as a session a user could type. A block preceded by `<!-- skip: next -->`
needs what this machine has not (a cloud bucket, several processes) and is only
shown.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser


def _enter_folder(namespace: dict[str, Any]) -> None:
    namespace["_page_folder"] = tempfile.mkdtemp(prefix="docs-page-")
    namespace["_previous_folder"] = os.getcwd()
    os.chdir(namespace["_page_folder"])


def _leave_folder(namespace: dict[str, Any]) -> None:
    os.chdir(namespace["_previous_folder"])
    shutil.rmtree(namespace["_page_folder"], ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["*.md"],
    setup=_enter_folder,
    teardown=_leave_folder,
).pytest()
