"""VIA 1 and 2 JSON files (annotation exports and VIA 2 projects), and JSON dispatch.

`json_format` names the layout of a parsed JSON file (VIA 1 export with regions
keyed `"0"`, `"1"`, ...; VIA 2 export with regions as a list; VIA 2 project
with `_via_img_metadata`; VIA 3 project, read by
`keras_roi_datagen.formats.via3`), and `iter_loaded_json` streams its records.
Records are labelled `"<filename>#<k>"` (the image key when two images share a
file name; just `"<filename>"` for an image without regions).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats.csv import bad_encoding_error, text_encoding
from keras_roi_datagen.formats.via3 import iter_via3_json
from keras_roi_datagen.formats.via_common import (
    EXPECTED,
    PathLike,
    ViaRecord,
    fail,
    parse_object,
    to_int,
)

__all__ = ["iter_loaded_json", "json_format", "load_json"]


def load_json(path: PathLike, encoding: str = "utf-8") -> Any:
    """Parse a JSON file, turning syntax and encoding errors into `AnnotationError`.

    Args:
        path: The file.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The parsed value.

    Raises:
        AnnotationError: Kind `"bad_json"` or `"bad_encoding"`.

    """
    try:
        with open(path, encoding=text_encoding(path, encoding)) as handle:
            return json.load(handle)
    except UnicodeDecodeError as error:
        raise bad_encoding_error(path, encoding, error) from None
    except json.JSONDecodeError as error:
        problem = Problem("bad_json", f"the file is not valid JSON ({error.msg} at line "
                          f"{error.lineno}, column {error.colno}); expected a VIA project or a "
                          "VIA annotation export.", source=str(path))
        raise AnnotationError(problem.describe(), [problem]) from None


def _looks_like_image(entry: Any) -> bool:
    return isinstance(entry, dict) and ("filename" in entry or "regions" in entry)


def json_format(data: Any, path: PathLike) -> str:
    """Name the VIA layout of parsed JSON.

    Args:
        data: The parsed file.
        path: The file, for error messages.

    Returns:
        `"via1-json"`, `"via2-json"`, `"via2-json-project"` or `"via3-json"`.

    Raises:
        AnnotationError: Kind `"unknown_format"` when it is not a VIA file.

    """
    if isinstance(data, dict) and "_via_img_metadata" in data:
        return "via2-json-project"
    if isinstance(data, dict) and "metadata" in data and "project" in data:
        return "via3-json"
    entries = list(data.values()) if isinstance(data, dict) else data
    if isinstance(entries, list) and (not entries or any(map(_looks_like_image, entries))):
        via1 = any(isinstance(e, dict) and (isinstance(e.get("regions"), dict)
                                            or "base64_img_data" in e) for e in entries)
        return "via1-json" if via1 else "via2-json"
    keys = list(data)[:8] if isinstance(data, dict) else type(data).__name__
    problem = Problem("unknown_format", "this JSON file is not a VIA file; expected a VIA 2 "
                      "project ('_via_img_metadata'), a VIA 3 project ('project', 'metadata', "
                      "'file', 'view') or an annotation export {image_id: {'filename', 'size', "
                      "'regions', 'file_attributes'}}.", source=str(path), value=keys)
    raise AnnotationError(problem.describe(), [problem])


def _region_record(
    source: str, label: str, filename: str, region: Any, ids: tuple[int | None, int],
    image: tuple[int | None, dict[str, Any]], on_error: str,
) -> ViaRecord:
    if not isinstance(region, dict):
        return fail(on_error, Problem("bad_record", "the region is not an object; expected "
                                      "{'shape_attributes': {...}, 'region_attributes': {...}}.",
                                      source=source, row=label, value=region, path=filename),
                    filename)
    parsed = {}
    for column in ("shape_attributes", "region_attributes"):
        try:
            parsed[column] = parse_object(region.get(column))
        except ValueError as error:
            expected = EXPECTED["region_" + column.removeprefix("region_")]
            return fail(on_error, Problem("bad_json", f"{column} is not a JSON object ({error}); "
                                          f"expected {expected}.", source=source, row=label,
                                          column=column, value=region.get(column), path=filename),
                        filename)
    return ViaRecord(label, filename, parsed["shape_attributes"], parsed["region_attributes"],
                     image[1], region_id=ids[0], region_count=ids[1], file_size=image[0])


def _image_records(
    source: str, key: str, entry: Any, base: str | None, on_error: str
) -> Iterator[ViaRecord]:
    filename = entry.get("filename") if isinstance(entry, dict) else None
    if not isinstance(filename, str) or not filename.strip() or base is None:
        yield fail(on_error, Problem("bad_record", "the image entry has no file name; expected "
                                     "{'filename', 'size', 'regions', 'file_attributes'}.",
                                     source=source, row=key, column="filename", value=entry))
        return
    assert isinstance(entry, dict)
    try:
        file_attributes = parse_object(entry.get("file_attributes"))
    except ValueError as error:
        problem = Problem("bad_json", f"file_attributes is not a JSON object ({error}).",
                          source=source, row=base, column="file_attributes",
                          value=entry.get("file_attributes"), path=filename)
        yield fail(on_error, problem, filename)
        return
    regions = entry.get("regions")
    if isinstance(regions, dict):  # VIA 1: {"0": {...}, "1": {...}}
        items: list[tuple[int | None, Any]] = [(to_int(k), v) for k, v in regions.items()]
    elif isinstance(regions, list):
        items = list(enumerate(regions))
    elif regions is None:
        items = []
    else:
        yield fail(on_error, Problem("bad_record", "regions is neither a list nor an object.",
                                     source=source, row=base, column="regions", value=regions,
                                     path=filename), filename)
        return
    image = (to_int(entry.get("size")), file_attributes)
    if not items:
        yield ViaRecord(base, filename, {}, {}, file_attributes, region_count=0, file_size=image[0])
    for k, (region_id, region) in enumerate(items):
        ids = (k if region_id is None else region_id, len(items))
        yield _region_record(source, f"{base}#{k}", filename, region, ids, image, on_error)


def _iter_images(source: str, entries: Any, on_error: str) -> Iterator[ViaRecord]:
    pairs = list(entries.items()) if isinstance(entries, dict) else list(enumerate(entries))
    names = [e.get("filename") if isinstance(e, dict) else None for _, e in pairs]
    seen = Counter(name for name in names if isinstance(name, str))
    for (key, entry), name in zip(pairs, names, strict=True):
        base = None if not isinstance(name, str) else name if seen[name] == 1 else str(key)
        yield from _image_records(source, str(key), entry, base, on_error)



def iter_loaded_json(
    path: PathLike, data: Any, fmt: str, on_error: str = "raise"
) -> Iterator[ViaRecord]:
    """Stream the records of an already parsed VIA JSON file.

    Args:
        path: The file, for row labels and error messages.
        data: The parsed JSON.
        fmt: Its layout, from `json_format`.
        on_error: `"raise"` or `"collect"`, as in `iter_via_records`.

    Yields:
        The records.

    """
    source = str(path)
    if fmt == "via3-json":
        yield from iter_via3_json(source, data, on_error)
    elif fmt == "via2-json-project":
        entries = data["_via_img_metadata"]
        yield from _iter_images(source, entries if isinstance(entries, (dict, list)) else {},
                                on_error)
    else:
        yield from _iter_images(source, data, on_error)
