"""A YOLO dataset's `data.yaml`, read by Ultralytics' rules: its root, splits, image lists and names.

The rules, as `ultralytics/data/utils.py` (`check_det_dataset`,
`img2label_paths`) and `ultralytics/data/base.py` (`get_img_files`) of
Ultralytics 8.4 apply them:

- `path` is the dataset root. Ultralytics takes a relative one from the
  working directory, then from its datasets folder; here it is tried beside
  the yaml, then from the working directory, and when neither exists the
  yaml's own folder is the root (with a warning), which is where a yaml
  copied with its dataset sits.
- `train`, `val` (or `validation`) and `test` are each a folder of images
  (searched recursively), a text file listing image paths (one a line; a
  leading `./` is the text file's folder) or a list of those, relative to
  the root. A string starting with `../` that does not exist is tried
  without it: Roboflow writes `train: ../train/images` in a `data.yaml` that
  sits beside `train/`.
- `names` is a list or an `{id: name}` mapping; with `nc` alone the classes
  are `class_0`, `class_1`, ...; `nc` and `names` must agree.
- An image's label file is its path with the last `/images/` replaced by
  `/labels/` and its suffix by `.txt` (`label_path`).

Without PyYAML the subset of YAML these files use is read (`load_yaml`):
`key: value` lines, inline `[a, b]` lists, block lists and `id: name`
blocks, comments.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from keras_roi_datagen.errors import AnnotationError, Problem

__all__ = ["IMAGE_SUFFIXES", "SPLIT_KEYS", "Entry", "Listed", "class_names", "has_splits", "image_files",
           "label_folder", "label_path", "load_yaml", "root_of", "split_entries"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".mpo")
SPLIT_KEYS = (("train", ("train",)), ("val", ("val", "validation")), ("test", ("test",)))
"""Each split and the `data.yaml` keys that give it, in Ultralytics' order."""


@dataclass(frozen=True)
class Entry:
    """One image source of a split: a folder, a text file of image paths, or an image.

    Args:
        split: `"train"`, `"val"`, `"test"`, or `None` (a dataset without splits).
        written: As the yaml writes it (or the folder, for a dataset without yaml).
        path: The resolved path, `None` when nothing exists there.
        tried: Every path looked at, for messages.
    """

    split: str | None
    written: str
    path: str | None
    tried: tuple[str, ...]


def _bad_yaml(path: str, message: str, column: str | None = None, value: Any = None
              ) -> AnnotationError:
    problem = Problem("bad_yaml", message, source=path, column=column, value=value)
    return AnnotationError(problem.describe(), [problem])


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", text):
        return float(text)
    return text


def _uncommented(line: str) -> str:
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _inline_list(text: str) -> list[Any]:
    inner = text.strip()[1:-1]
    return [_scalar(v) for v in re.findall(r"""'[^']*'|"[^"]*"|[^,]+""", inner) if v.strip()]


def _yaml_without_pyyaml(text: str) -> dict[str, Any]:
    """The subset of YAML a `data.yaml` uses, read without PyYAML."""
    data: dict[str, Any] = {}
    lines = [_uncommented(line) for line in text.splitlines()]
    i = 0
    while i < len(lines):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:(.*)$", lines[i])
        i += 1
        if not match:
            continue
        key, rest = match.group(1), match.group(2).strip()
        if rest.startswith("["):
            while not rest.rstrip().endswith("]") and i < len(lines):  # a list over several lines
                rest += " " + lines[i].strip()
                i += 1
            data[key] = _inline_list(rest)
            continue
        if rest:
            data[key] = _scalar(rest)
            continue
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i][:1] in (" ", "\t", "-")):
            if lines[i].strip():
                block.append(lines[i].strip())
            i += 1
        if block and all(item.startswith("-") for item in block):
            data[key] = [_scalar(item[1:]) for item in block]
        elif block:
            data[key] = {_scalar(k): _scalar(v) for k, _, v in (b.partition(":") for b in block)}
        else:
            data[key] = None
    return data


def load_yaml(path: str) -> dict[str, Any]:
    """Read a `data.yaml` into a mapping (PyYAML when installed, else the subset it uses).

    Args:
        path: The yaml file.

    Returns:
        Its top-level mapping.

    Raises:
        AnnotationError: Kind `"bad_yaml"`: not YAML, or not a mapping.

    Example:
    >>> load_yaml("data.yaml")["names"]  # doctest: +SKIP
    ['cat', 'dog']

    """
    with open(path, encoding="utf-8-sig") as handle:
        text = handle.read()
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        data: Any = _yaml_without_pyyaml(text)
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise _bad_yaml(path, f"the file is not valid YAML ({error}).") from None
    if not isinstance(data, dict):
        raise _bad_yaml(path, "a YOLO data.yaml is a mapping (path:, train:, val:, names:); this "
                        f"file holds a {type(data).__name__}.")
    return {str(k): v for k, v in data.items()}


def has_splits(config: dict[str, Any]) -> bool:
    """Whether a `data.yaml` names any split (`train`, `val`, `validation`, `test`)."""
    return any(config.get(key) for _, keys in SPLIT_KEYS for key in keys)


def root_of(yaml_path: str, config: dict[str, Any]) -> tuple[str, Problem | None]:
    """The dataset root a `data.yaml` names, and a warning when its `path` was not found.

    Args:
        yaml_path: The yaml file.
        config: Its mapping.

    Returns:
        `(root, warning or None)`.
    """
    here = os.path.dirname(os.path.abspath(yaml_path))
    given = config.get("path")
    if not isinstance(given, str) or not given.strip():
        return here, None
    tried = [given] if os.path.isabs(given) else [os.path.join(here, given), os.path.abspath(given)]
    for candidate in tried:
        if os.path.isdir(candidate):
            return os.path.normpath(candidate), None
    return here, Problem(
        "yaml_path_not_found", f"`path: {given}` does not exist (looked at {', '.join(tried)}); "
        "the yaml's own folder is taken as the dataset root.", source=yaml_path, column="path",
        value=given, severity="warning")


def split_entries(yaml_path: str, config: dict[str, Any], root: str) -> list[Entry]:
    """Each split's image sources, resolved against the root (with the `../` fallback).

    Args:
        yaml_path: The yaml file, for messages.
        config: Its mapping.
        root: The dataset root (`root_of`).

    Returns:
        The entries, train first, then val, then test.

    Raises:
        AnnotationError: Kind `"bad_yaml"`: a split that is neither a path nor a list of paths.
    """
    entries = []
    for split, keys in SPLIT_KEYS:
        key = next((k for k in keys if config.get(k)), None)
        if key is None:
            continue
        value = config[key]
        if not isinstance(value, (str, list)):
            raise _bad_yaml(yaml_path, f"`{key}:` must be a path or a list of paths.", key, value)
        for item in value if isinstance(value, list) else [value]:
            written = str(item)
            candidate = os.path.normpath(os.path.join(root, written))
            tried = [candidate]
            if not os.path.exists(candidate) and written.startswith("../"):
                candidate = os.path.normpath(os.path.join(root, written[3:]))
                tried.append(candidate)
            found = candidate if os.path.exists(candidate) else None
            entries.append(Entry(split, written, found, tuple(tried)))
    return entries


def class_names(yaml_path: str, config: dict[str, Any]) -> dict[int, str] | None:
    """The classes a `data.yaml` names (`names`, or `nc` alone), `None` when it names none.

    Raises:
        AnnotationError: Kind `"bad_yaml"`: `names` neither a list nor a
            mapping of ids 0..n-1, `nc` not an integer, or the two disagreeing.
    """
    names, count = config.get("names"), config.get("nc")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, (int, float, str)) or (
                not str(count).strip().lstrip("-").replace(".", "", 1).isdigit()
                or float(count) != int(float(count))):
            raise _bad_yaml(yaml_path, "`nc:` must be an integer.", "nc", count)
        count = int(float(count))
    if names is None:
        return None if count is None else {i: f"class_{i}" for i in range(count)}
    if isinstance(names, list):
        found = dict(enumerate(str(n) for n in names))
    elif isinstance(names, dict):
        try:
            found = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise _bad_yaml(yaml_path, "`names:` ids must be integers.", "names", names) from None
        if found and sorted(found) != list(range(len(found))):
            raise _bad_yaml(yaml_path, f"`names:` ids must be 0..{len(found) - 1}.", "names",
                            sorted(found))
    else:
        raise _bad_yaml(yaml_path, "`names:` must be a list or a mapping {id: name}.", "names",
                        names)
    if count is not None and count != len(found):
        raise _bad_yaml(yaml_path, f"`names:` lists {len(found)} classes but `nc: {count}`; they "
                        "must agree.", "nc", count)
    return found


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class Listed:
    """A line of a text file of image paths whose image is not there.

    Args:
        line: The line number (1-based).
        written: The line as written.
        tried: Every path looked at.
    """

    line: int
    written: str
    tried: tuple[str, ...]


def image_files(entry_path: str, root: str) -> tuple[list[str], list[Listed]]:
    """The images of one entry: a folder (recursively), a text file of paths, or an image.

    A relative path in a text file is taken from the text file's folder (as
    Ultralytics does for `./`), else from the root, else without a leading
    `data/` (Darknet's lists name `data/obj_train_data/a.jpg` from Darknet's
    own folder; datumaro writes them so).

    Args:
        entry_path: The resolved entry.
        root: The dataset root.

    Returns:
        Absolute image paths, sorted, and the listed images not found.
    """
    if os.path.isdir(entry_path):
        found = []
        for folder, _dirs, files in os.walk(entry_path):
            found += [os.path.join(folder, n) for n in files if _is_image(n)]
        return sorted(os.path.normpath(p) for p in found), []
    if _is_image(entry_path):
        return [os.path.normpath(entry_path)], []
    listed, missing = [], []
    here = os.path.dirname(os.path.abspath(entry_path))
    with open(entry_path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            name = line.strip()
            if not name or not _is_image(name):
                continue
            if os.path.isabs(name):
                tried = [name]
            else:
                tail = name[2:] if name.startswith("./") else name
                tried = [os.path.join(here, tail), os.path.join(root, tail)]
                if tail.startswith("data/"):
                    tried += [os.path.join(here, tail[5:]), os.path.join(root, tail[5:])]
            tried = list(dict.fromkeys(os.path.normpath(p) for p in tried))
            found_at = next((p for p in tried if os.path.isfile(p)), None)
            if found_at is None:
                missing.append(Listed(number, name, tuple(tried)))
            else:
                listed.append(found_at)
    return sorted(listed), missing


def label_path(image: str) -> str:
    """An image's label file: the last `/images/` becomes `/labels/`, the suffix `.txt`.

    Example:
    >>> label_path("/d/train/images/a.jpg")
    '/d/train/labels/a.txt'

    """
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return os.path.splitext(sb.join(image.rsplit(sa, 1)))[0] + ".txt"


def label_folder(folder: str) -> str:
    """Where a folder of images keeps its labels, by `label_path`'s rule.

    Example:
    >>> label_folder("/d/images/train")
    '/d/labels/train'

    """
    return label_path(os.path.join(folder, "x"))[:-len(os.sep + "x.txt")]
