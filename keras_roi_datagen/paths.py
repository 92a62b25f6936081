"""Where an annotation's file name points, and whether it may be read.

File names in annotation exports are written by other programs and other
people: relative to some folder, absolute, with Windows separators, or URLs.
`resolve_image_path` turns one into a file path under `image_dir`, and refuses
names that would escape it (`../../etc/passwd`, an absolute path elsewhere)
unless the user allows that. The check is lexical: a symbolic link inside
`image_dir` that points elsewhere is followed, as users link image folders.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = ["PathProblem", "check_image_file", "resolve_image_path"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class PathProblem:
    """Why a file name cannot be used: a problem `kind` and a message."""

    kind: str
    message: str


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def resolve_image_path(
    name: object, image_dir: str | None, allow_outside_image_dir: bool = False
) -> str | PathProblem:
    """Resolves a file name from a table to an absolute, normalised path.

    Args:
        name: The file name as found in the table.
        image_dir: The folder relative names are resolved against; `None`
            resolves them against the working directory and checks nothing.
        allow_outside_image_dir: Whether names may point outside `image_dir`.

    Returns:
        The absolute path, or a `PathProblem` (kinds `"filename_missing"`,
        `"remote_file"`, `"path_outside_image_dir"`).

    Example:
    >>> resolve_image_path("../../etc/passwd", "/data/images").kind
    'path_outside_image_dir'
    """
    if not isinstance(name, str) or not name.strip():
        return PathProblem("filename_missing", "the file name is missing or not text.")
    name = name.strip()
    if _URL.match(name):
        return PathProblem(
            "remote_file",
            "remote image URLs are not downloaded; download the images and pass `image_dir`.",
        )
    base = os.path.abspath(image_dir) if image_dir is not None else os.getcwd()
    path = os.path.normpath(os.path.join(base, os.path.expanduser(name)))
    # realpath: a symlink inside image_dir may still lead out of it.
    if image_dir is not None and not allow_outside_image_dir and not _inside(
            os.path.realpath(path), os.path.realpath(base)):
        return PathProblem(
            "path_outside_image_dir",
            f"the file name points outside image_dir ({base}); "
            "pass allow_outside_image_dir=True if that is intended.",
        )
    if "\\" in name and not os.path.exists(path):
        # Exports made on Windows write backslashes; try them as separators.
        alternative = resolve_image_path(name.replace("\\", "/"), image_dir, allow_outside_image_dir)
        if isinstance(alternative, str) and os.path.exists(alternative):
            return alternative
    return path


def check_image_file(path: str) -> PathProblem | None:
    """Checks that an image file exists, is a regular file and is not empty.

    Args:
        path: An absolute path from `resolve_image_path`.

    Returns:
        `None` when the file looks readable, else a `PathProblem` (kinds
        `"missing_file"`, `"image_unreadable"`, `"image_empty_file"`).
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return PathProblem("missing_file", f"image file not found: {path}.")
    except OSError as exc:
        return PathProblem("image_unreadable", f"cannot access {path}: {exc.strerror}.")
    if not os.path.isfile(path):
        return PathProblem("image_unreadable", f"not a regular file: {path}.")
    if stat.st_size == 0:
        return PathProblem("image_empty_file", f"image file is empty (0 bytes): {path}.")
    return None
