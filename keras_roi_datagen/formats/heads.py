"""A file's head, decoded: what format sniffs read (of a file, or of each file in a folder)."""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["HEAD_BYTES", "MAX_SNIFFED", "file_head", "files_like"]

HEAD_BYTES = 65536
MAX_SNIFFED = 32
"""A folder with more candidate files than this is not an export's folder (one file per image,
as VOC and LabelMe write, is read by its own format): their heads are not read."""


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

    None when the folder holds more than `MAX_SNIFFED` files with those suffixes.

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
    candidates = [os.path.join(folder, name) for name in sorted(os.listdir(folder))
                  if name.lower().endswith(suffixes)]
    if len(candidates) > MAX_SNIFFED:
        return []
    return [path for path in candidates if os.path.isfile(path) and sniff(file_head(path))]
