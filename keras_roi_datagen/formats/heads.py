"""A file's head, decoded: what format sniffs read (of a file, or of each file in a folder)."""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["HEAD_BYTES", "file_head", "files_like"]

HEAD_BYTES = 65536


def file_head(path: str | os.PathLike[str]) -> str:
    """The first 64 KiB of a file, decoded (UTF-8 with or without BOM, UTF-16, else Latin-1).

    Args:
        path: The file.

    Returns:
        The decoded head.

    Example:
    >>> file_head("instances_val.json")[:1]  # doctest: +SKIP
    '{'

    """
    with open(path, "rb") as handle:
        raw = handle.read(HEAD_BYTES)
    for codec in ("utf-8-sig", "utf-16", "latin-1"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return ""


def files_like(folder: str, suffixes: tuple[str, ...], sniff: Callable[[str], bool]) -> list[str]:
    """The files directly in `folder` with one of `suffixes` whose head `sniff` accepts, sorted.

    Args:
        folder: The folder (not searched below).
        suffixes: Lower-case suffixes, e.g. `(".json",)`.
        sniff: Tells from a file's head whether it is wanted.

    Returns:
        Their paths.

    Example:
    >>> files_like("annotations", (".json",), lambda head: '"images"' in head)  # doctest: +SKIP
    ['annotations/instances_val2017.json']

    """
    if not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.lower().endswith(suffixes) and os.path.isfile(path) and sniff(file_head(path)):
            found.append(path)
    return found
