"""VIA 3 files (CSV export and JSON project): shapes, attributes, records.

VIA 3 stores a region as a metadata with spatial coordinates `[shape_id, ...]`
and attribute values keyed by attribute id (option ids for radio, select and
checkbox attributes); see `keras_roi_datagen.formats.via` for the layouts.
This module turns them into the VIA-2-style `ViaRecord`s every reader yields:
`via3_shape_to_via2` converts the shapes, attribute ids become names and option
ids become labels (a checkbox value becomes `{label: True, ...}`, like VIA 2),
and a file's own attributes (metadata with no coordinates) become the
`file_attributes` of each of its regions. Temporal-only metadata (video
segments) is skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from keras_roi_datagen.errors import Problem
from keras_roi_datagen.formats.csv import LineReader, iter_records, open_text
from keras_roi_datagen.formats.via_records import (
    CsvLayout,
    ExtraColumns,
    PathLike,
    ViaRecord,
    fail,
    raise_missing,
    read_layout,
    to_int,
)

__all__ = ["iter_via3_csv", "iter_via3_json", "via3_shape_to_via2"]


# Spatial coordinates -> VIA 2 shape dicts.

_VIA3_COUNTS = {1: (2,), 2: (4,), 3: (3,), 4: (4, 5), 5: (4,), 8: (8,), 9: (6,)}


def via3_shape_to_via2(xy: Sequence[Any]) -> dict[str, Any]:
    """Convert VIA 3 spatial coordinates (`[shape_id, ...]`) to a VIA-2-style shape.

    LINE becomes a two-point polyline (VIA 2 has no line), EXTREME_RECTANGLE the
    rect through its four extreme points, EXTREME_CIRCLE the circle through its
    three points; an unknown id gives `{"name": "via3_shape_<id>",
    "coordinates": [...]}`.

    Args:
        xy: The `xy` list of a VIA 3 metadata, e.g. `[2, 10, 20, 50, 80]`.

    Returns:
        The shape dict.

    Raises:
        ValueError: The list is empty, its id is not a number, or it has the
            wrong number of coordinates for its shape.

    Example:
    >>> via3_shape_to_via2([2, 10, 20, 50, 80])
    {'name': 'rect', 'x': 10, 'y': 20, 'width': 50, 'height': 80}

    """
    if not xy:
        raise ValueError("the coordinate list is empty")
    shape_id = to_int(xy[0])
    if shape_id is None:
        raise ValueError(f"the shape id {xy[0]!r} is not an integer")
    c = list(xy[1:])
    builder = _VIA3_BUILDERS.get(shape_id)
    if builder is None:
        return {"name": f"via3_shape_{shape_id}", "coordinates": c}
    counts = _VIA3_COUNTS.get(shape_id)
    if counts is not None and len(c) not in counts:
        wanted = " or ".join(map(str, counts))
        raise ValueError(f"shape id {shape_id} needs {wanted} numbers after the id, "
                         f"found {len(c)}")
    if shape_id in (6, 7) and (len(c) % 2 or not c):
        raise ValueError(f"shape id {shape_id} needs x,y pairs after the id, "
                         f"found {len(c)} numbers")
    return builder(c)


def _points(c: list[Any]) -> tuple[list[Any], list[Any]]:
    return c[0::2], c[1::2]


def _extreme_rect(c: list[Any]) -> dict[str, Any]:
    xs, ys = [float(v) for v in c[0::2]], [float(v) for v in c[1::2]]
    return {"name": "rect", "x": min(xs), "y": min(ys),
            "width": max(xs) - min(xs), "height": max(ys) - min(ys)}


def _extreme_circle(c: list[Any]) -> dict[str, Any]:
    ax, ay, bx, by, cx, cy = (float(v) for v in c)
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    if abs(d) < 1e-12:
        raise ValueError("the three points of an extreme circle are on one line")
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    return {"name": "circle", "cx": ux, "cy": uy, "r": math.hypot(ax - ux, ay - uy)}


_VIA3_BUILDERS: dict[int, Callable[[list[Any]], dict[str, Any]]] = {
    1: lambda c: {"name": "point", "cx": c[0], "cy": c[1]},
    2: lambda c: {"name": "rect", "x": c[0], "y": c[1], "width": c[2], "height": c[3]},
    3: lambda c: {"name": "circle", "cx": c[0], "cy": c[1], "r": c[2]},
    4: lambda c: {"name": "ellipse", "cx": c[0], "cy": c[1], "rx": c[2], "ry": c[3],
                  "theta": c[4] if len(c) > 4 else 0},
    5: lambda c: {"name": "polyline", "all_points_x": _points(c)[0], "all_points_y": _points(c)[1]},
    6: lambda c: {"name": "polyline", "all_points_x": _points(c)[0], "all_points_y": _points(c)[1]},
    7: lambda c: {"name": "polygon", "all_points_x": _points(c)[0], "all_points_y": _points(c)[1]},
    8: _extreme_rect,
    9: _extreme_circle,
}


class _Via3Attributes:
    """Map VIA 3 attribute ids and option ids to names and labels.

    Args:
        definitions: `{aid: {"aname", "type", "options", ...}}` (project file,
            CSV `# ATTRIBUTE =` line) or `{aid: name}` (CSV `# ATTRIBUTES =`).

    Example:
    >>> defs = {"1": {"aname": "kind", "type": 3, "options": {"0": "cat"}}}
    >>> _Via3Attributes(defs).named({"1": "0"})
    {'kind': 'cat'}

    """

    def __init__(self, definitions: Mapping[str, Any] | None) -> None:
        self._defs: dict[str, dict[str, Any]] = {}
        for aid, definition in (definitions or {}).items():
            if isinstance(definition, str):
                definition = {"aname": definition}
            if isinstance(definition, dict):
                self._defs[str(aid)] = definition

    def named(self, av: Mapping[str, Any]) -> dict[str, Any]:
        """Rename attribute ids to names and option ids to option labels.

        Args:
            av: A metadata's `{aid: value}`.

        Returns:
            `{name: value}`; unknown ids and values are kept as they are.

        """
        out: dict[str, Any] = {}
        for aid, value in av.items():
            definition = self._defs.get(str(aid), {})
            aname = definition.get("aname")
            name = aname if isinstance(aname, str) else str(aid)
            if name in out:
                name = f"{name} ({aid})"
            out[name] = self._value(definition, value)
        return out

    @staticmethod
    def _value(definition: Mapping[str, Any], value: Any) -> Any:
        options = definition.get("options")
        kind = to_int(definition.get("type"))
        if not isinstance(options, dict) or kind not in (2, 3, 4, 5):
            return value
        if kind == 2 and isinstance(value, str):
            return {str(options.get(oid, oid)): True for oid in value.split(",") if oid != ""}
        if isinstance(value, (str, int)) and str(value) in options:
            return options[str(value)]
        return value


# CSV files.


class _CellError(Exception):
    def __init__(self, column: str, value: str, reason: str, kind: str = "bad_json") -> None:
        super().__init__(reason)
        self.column, self.value, self.reason, self.kind = column, value, reason, kind


def _json_cell(fields: list[str], index: Mapping[str, int], column: str, kind: type) -> Any:
    i = index.get(column)
    text = fields[i] if i is not None and i < len(fields) else ""
    if not text.strip():
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _CellError(column, text, f"{error.msg} at character {error.pos}") from None
    if not isinstance(value, kind):
        wanted = "array" if kind is list else "object"
        raise _CellError(column, text, f"found a JSON {type(value).__name__}, expected an {wanted}")
    return value


def _via3_row(fields: list[str], index: Mapping[str, int]) -> tuple[str, list[Any], list[Any], Any]:
    files = _json_cell(fields, index, "file_list", list)
    if len(files) != 1 or not str(files[0]).strip():
        raise _CellError("file_list", json.dumps(files), "expected exactly one file (views of "
                         "several files are not supported)", "bad_record")
    z = _json_cell(fields, index, "temporal_coordinates", list)
    xy = _json_cell(fields, index, "spatial_coordinates", list)
    av = _json_cell(fields, index, "metadata", dict)
    return str(files[0]), z, xy, av


def _via3_definitions(comments: Mapping[str, str]) -> dict[str, Any]:
    for key in ("ATTRIBUTE", "ATTRIBUTES"):
        try:
            value = json.loads(comments.get(key, ""))
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def _via3_summary(
    path: PathLike, encoding: str, index: Mapping[str, int], names: _Via3Attributes
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    counts: dict[str, int] = {}
    file_attributes: dict[str, dict[str, Any]] = {}
    with open_text(path, encoding) as handle:
        reader = LineReader(handle, path, encoding)
        layout = read_layout(reader)
        for _start, _end, fields in iter_records(reader, layout.delimiter):
            try:
                filename, z, xy, av = _via3_row(fields, index)
            except _CellError:
                continue
            counts[filename] = counts.get(filename, 0) + (1 if xy else 0)
            if not xy and not z:
                file_attributes.setdefault(filename, {}).update(names.named(av))
    return counts, file_attributes


def iter_via3_csv(
    path: PathLike, layout: CsvLayout, reader: LineReader, on_error: str, encoding: str
) -> Iterator[ViaRecord]:
    """Stream the records of a VIA 3 CSV export.

    The file is read twice: a first pass (`_via3_summary`) gathers each file's
    own attributes and region count.

    Args:
        path: The file.
        layout: Its layout, from `read_layout` (`kind == "via3-csv"`).
        reader: The file's lines, at the first record.
        on_error: `"raise"` or `"skip"`, as in `iter_via_records`.
        encoding: The encoding used when the file has no byte-order mark.

    Yields:
        One record per region row, and one (the file's first row) per file
        without regions; columns beyond VIA 3's six go to `ViaRecord.extra`.

    Raises:
        AnnotationError: The header lacks `file_list` or `spatial_coordinates`,
            or a row is malformed (when raising).

    """
    index = {name: i for i, name in reversed(list(enumerate(layout.columns)))}
    for column in ("file_list", "spatial_coordinates"):
        if column not in index:
            raise_missing(path, layout, column)
    names = _Via3Attributes(_via3_definitions(layout.comments))
    counts, file_attributes = _via3_summary(path, encoding, index, names)
    extras = ExtraColumns(layout)
    next_id: dict[str, int] = {}
    for start, _end, fields in iter_records(reader, layout.delimiter):
        extra = extras.read(fields)
        try:
            filename, _z, xy, av = _via3_row(fields, index)
        except _CellError as error:
            problem = Problem(error.kind, f"{error.column} is not valid ({error.reason}).",
                              source=str(path), row=start, column=error.column,
                              value=error.value)
            yield fail(on_error, problem, extra=extra)
            continue
        if not xy:
            if counts.get(filename, 0) == 0 and filename not in next_id:
                next_id[filename] = 0
                yield ViaRecord(start, filename, {}, {}, file_attributes.get(filename, {}),
                                region_count=0, extra=extra)
            continue
        try:
            shape = via3_shape_to_via2(xy)
        except ValueError as error:
            problem = Problem("bad_shape", f"spatial_coordinates are not a VIA 3 shape ({error});"
                              " expected e.g. [2,x,y,width,height].", source=str(path), row=start,
                              column="spatial_coordinates", value=xy, path=filename)
            yield fail(on_error, problem, filename, extra)
            continue
        k = next_id.get(filename, 0)
        next_id[filename] = k + 1
        yield ViaRecord(start, filename, shape, names.named(av), file_attributes.get(filename, {}),
                        region_id=k, region_count=counts.get(filename), extra=extra)


# JSON project files.


def _via3_filename(file: Mapping[str, Any]) -> str:
    fname, src = file.get("fname"), file.get("src")
    if to_int(file.get("loc")) in (2, 3) and isinstance(src, str) and src:
        return src  # as VIA 3's CSV export does: URLs and file URIs are written as their source
    return str(fname) if fname else str(src or "")


def _via3_view(
    source: str, label: str, view: Any, files: Mapping[str, Any],
    metadata: list[tuple[str, Any]], names: _Via3Attributes, on_error: str,
) -> Iterator[ViaRecord]:
    fids = view.get("fid_list") if isinstance(view, dict) else None
    file = files.get(str(fids[0])) if isinstance(fids, list) and len(fids) == 1 else None
    if not isinstance(file, dict):
        yield fail(on_error, Problem("bad_record", "the view does not name exactly one file of "
                                     "the project's 'file' list.", source=source, row=label,
                                     column="fid_list", value=fids))
        return
    filename = _via3_filename(file)
    file_attributes: dict[str, Any] = {}
    spatial = []
    for mid, meta in metadata:
        if not meta.get("xy") and not meta.get("z") and isinstance(meta.get("av"), dict):
            file_attributes.update(names.named(meta["av"]))
        elif meta.get("xy"):
            spatial.append((mid, meta))
    if not spatial:
        yield ViaRecord(label, filename, {}, {}, file_attributes, region_count=0)
    for k, (mid, meta) in enumerate(spatial):
        row = f"{label}#{k}"
        try:
            shape = via3_shape_to_via2(meta["xy"] if isinstance(meta["xy"], list) else [])
        except ValueError as error:
            problem = Problem("bad_shape", f"metadata {mid!r} has xy that is not a VIA 3 "
                              f"shape ({error}); expected e.g. [2,x,y,width,height].",
                              source=source, row=row, column="xy", value=meta["xy"],
                              path=filename)
            yield fail(on_error, problem, filename)
            continue
        av = meta.get("av") if isinstance(meta.get("av"), dict) else {}
        yield ViaRecord(row, filename, shape, names.named(av), file_attributes, region_id=k,
                        region_count=len(spatial))


def iter_via3_json(source: str, data: Mapping[str, Any], on_error: str) -> Iterator[ViaRecord]:
    """Stream the records of a parsed VIA 3 project file.

    Views are visited in the project's `vid_list` order, then any other view,
    then metadata naming an unknown view. A view is labelled by its file's
    name (`"view <vid>"` when it names no single file; `"<name> (view <vid>)"`
    when two views show the same file); regions are `"<label>#<k>"`.

    Args:
        source: The file, for row labels and error messages.
        data: The parsed JSON (`{"project", "attribute", "file", "metadata",
            "view", ...}`).
        on_error: `"raise"` or `"skip"`, as in `iter_via_records`.

    Yields:
        One record per region, and one per view without regions.

    Raises:
        AnnotationError: A malformed view, metadata or shape (when raising).

    """
    def table(key: str) -> dict[str, Any]:
        value = data.get(key)
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}

    files, views, names = table("file"), table("view"), _Via3Attributes(table("attribute"))
    by_view: dict[str, list[tuple[str, Any]]] = {}
    for mid, meta in table("metadata").items():
        if isinstance(meta, dict):
            by_view.setdefault(str(meta.get("vid")), []).append((mid, meta))
        else:
            yield fail(on_error, Problem("bad_record", "the metadata is not an object.",
                                         source=source, row=f"metadata {mid}", value=meta))
    project = data.get("project")
    vid_list = project.get("vid_list") if isinstance(project, dict) else None
    listed = [str(v) for v in vid_list] if isinstance(vid_list, list) else []
    order = listed + list(views) + list(by_view)
    used: set[str] = set()
    for vid in dict.fromkeys(order):
        view = views.get(vid)
        fids = view.get("fid_list") if isinstance(view, dict) else None
        file = files.get(str(fids[0])) if isinstance(fids, list) and len(fids) == 1 else None
        label = _via3_filename(file) if isinstance(file, dict) else f"view {vid}"
        label = label if label not in used else f"{label} (view {vid})"
        used.add(label)
        yield from _via3_view(source, label, view, files, by_view.get(vid, []), names, on_error)

