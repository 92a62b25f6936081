r"""Readers for VGG Image Annotator (VIA) exports, as each VIA version writes them.

What each version writes (learned from VIA's source, ox-vgg/via, and from exports
committed in public repositories):

VIA 1.x (1.0.0 to 1.0.6; ox-vgg/via `via-1.x.y/`, fixtures
`via-1.x.y/tests/data/unit_test_annotation1.csv` and `unit_test_annotation2.json`):
  * CSV: header `#filename,file_size,file_attributes,region_count,region_id,`
    `region_shape_attributes,region_attributes`, then one line per region. The
    file name and the three numbers are written bare (a file name holding a comma
    breaks the line); the three JSON fields are wrapped in `"..."` with every `"`
    doubled, so a JSON-escaped quote in a label becomes `\""`. An image without
    regions gives one line `name,size,"{}",0,0,"{}","{}"`. Lines are joined with
    LF, no newline after the last one, no BOM. 1.0.0 to 1.0.2 ended every line
    with an extra comma (CHANGELOG 1.0.3, issue 103).
  * JSON (`via_region_data.json`): `{image_id: {"fileref": "", "size": N,
    "filename": ..., "base64_img_data": "", "file_attributes": {...},
    "regions": {"0": {"shape_attributes": {...}, "region_attributes": {...}},
    "1": ...}}}`; `image_id` is file name + size; regions are an object keyed
    `"0"`, `"1"`, ... Compact `JSON.stringify` output.
  * Shapes: rect (x, y, width, height), circle (cx, cy, r), ellipse (cx, cy,
    rx, ry; no rotation), polygon (all_points_x, all_points_y), point (cx, cy);
    polyline from 1.0.6. VIA's `CodeDoc.md` shows shape numbers held as strings
    (`'x': '115'`); pre-1.0 builds (`attr_map_to_str` in via.js 0.1b and
    1.0.0-beta) wrote cells as `"name=rect;x=10;..."` with arrays `[1:2:3]`
    (and `\;` separators in one build); 1.0.0 switched to RFC 4180 + JSON.

VIA 2.x (`via-2.x.y/src/via.js`: `pack_via_metadata`, `project_save_confirmed`,
`parse_csv_header_line`):
  * CSV: as VIA 1 but the header has no `#` (`parse_csv_header_line` accepts
    both, labelling the `#` form "VIA versions 1.0.x").
  * "Export annotations (as json)": `JSON.stringify(_via_img_metadata)`:
    `{image_id: {"filename", "size", "regions": [{"shape_attributes",
    "region_attributes"}, ...], "file_attributes"}}`; regions are a list.
  * Project file: `{"_via_settings", "_via_img_metadata", "_via_attributes":
    {"region": {...}, "file": {...}}, "_via_data_format_version": "2.0.10",
    "_via_image_id_list"}`; projects older than 2.0.10 lack the last two keys
    (VIA's own project-merge script adds them).
  * ellipse gains `theta` (rotation, radians) in later 2.0.x; older VIA 2 files
    have none (comment in `export_project_to_coco_format`). Checkbox attribute
    values are objects such as `{"red": true}`; radio and dropdown values are
    option-id strings. Files added by URL have size -1.

VIA 3.x (`via-3.x.y/src/js/`: `_via_import_export.js` `export_to_via3_csv`,
`_via_data.js` `project_save`, `_via_metadata.js`, `_via_file.js`,
`_via_attribute.js`, `_via_file_annotator.js`):
  * JSON project: `JSON.stringify(store)`: `{"project": {..., "vid_list"},
    "config", "attribute": {aid: {"aname", "anchor_id", "type", "desc",
    "options": {oid: label}, "default_option_id"}}, "file": {fid: {"fid",
    "fname", "type", "loc", "src"}}, "metadata": {mid: {"vid", "flg", "z": [...],
    "xy": [shape_id, ...], "av": {aid: value}}}, "view": {vid: {"fid_list"}}}`.
  * Shape ids: POINT 1 `[1,x,y]`, RECTANGLE 2 `[2,x,y,w,h]`, CIRCLE 3
    `[3,cx,cy,r]`, ELLIPSE 4 `[4,cx,cy,rx,ry]`, LINE 5 `[5,x1,y1,x2,y2]`,
    POLYLINE 6 and POLYGON 7 `[id,x0,y0,x1,y1,...]`, EXTREME_RECTANGLE 8 (four
    extreme points), EXTREME_CIRCLE 9 (three points on the circle).
  * Attribute types TEXT 1, CHECKBOX 2 (value `"oid,oid"`), RADIO 3, SELECT 4,
    IMAGE 5; file loc LOCAL 1, URIHTTP 2, URIFILE 3, INLINE 4. A file's own
    attributes are metadata with `z == []` and `xy == []`.
  * CSV: comment lines `# Exported using VGG Image Annotator (...)`, notes,
    `# SHAPE_ID = {...}`, `# FLAG_ID = {...}`, `# ATTRIBUTE = {definitions}`
    (older builds: `# ATTRIBUTES = {aid: name}`), `# CSV_HEADER =
    metadata_id,file_list,flags,temporal_coordinates,spatial_coordinates,metadata`,
    then rows such as `"1_ab","[""a.jpg""]",0,"[]","[2,10,20,50,80]",
    "{""1"":""3""}"` (each JSON field quoted, quotes doubled), LF, no final LF.

Seen in the wild: `file_attributes` written as a bare `{}` (suenws/AlphaCarData
`via_region_data.csv`); images without regions as `0,0,"{}","{}"`, negative
coordinates and numeric attribute keys (Ishaq-p/faceRecog `via_region_data.csv`);
VIA 1.0.6 JSON still produced in 2023 (NicholasDaviesNZ/beet_analysis); scripts
writing `file_size` as `-1` or a blank; VIA 3 CSVs re-saved by a spreadsheet with
`,,,` padding the comment lines, or with tab-separated, unquoted rows (both
quoted in scripts that parse such files). BOM, CRLF, `;` separators, UTF-16 and
Python-dict cells (a DataFrame saved with `to_csv`) are handled defensively.

How this package reads them: every version becomes a stream of `ViaRecord`s
with a VIA-2-style shape dict; VIA 3 attribute ids become attribute names and
option ids become option labels (a checkbox value becomes `{label: True, ...}`,
like VIA 2). VIA 3 temporal-only metadata (video segments) is skipped. Columns
of a CSV file that VIA does not define (a `split` column, labels flattened out
of `region_attributes`, a DataFrame index) are kept in `ViaRecord.extra` and as
DataFrame columns.

Every version ends in the same `ViaRecord` stream (`iter_via_records`) and the
same one-row-per-region table (`read_via`); `read_via_regions` turns that
table into the common region frame of `keras_roi_datagen.formats.regions`, and
`sniff_via` recognises a VIA file from its head, for the registry. This module
reads VIA 1 and 2 files (CSV and JSON); what every version shares (the record,
cell parsing, the CSV layout, the table) is in `via_records`, and the VIA 3
layout (shape ids, attribute ids) in `via3`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from keras_roi_datagen.boxes import ShapeError, shape_to_xyxy
from keras_roi_datagen.errors import AnnotationError, Problem
from keras_roi_datagen.formats import regions
from keras_roi_datagen.formats.csv import (
    LineReader,
    bad_encoding_error,
    iter_records,
    open_text,
    text_encoding,
)
from keras_roi_datagen.formats.via3 import iter_via3_csv, iter_via3_json, via3_shape_to_via2
from keras_roi_datagen.formats.via_records import (
    EXPECTED,
    STANDARD_COLUMNS,
    CsvLayout,
    ExtraColumns,
    OnError,
    PathLike,
    ViaRecord,
    attribute_columns,
    check_on_error,
    fail,
    parse_object,
    raise_missing,
    raise_not_via_csv,
    read_layout,
    records_to_frame,
    sniff_csv,
    to_int,
)

__all__ = [
    "STANDARD_COLUMNS",
    "CsvLayout",
    "ExtraColumns",
    "OnError",
    "ViaRecord",
    "attribute_columns",
    "detect_via_format",
    "iter_via_records",
    "read_via",
    "read_via_csv",
    "read_via_json",
    "read_via_regions",
    "sniff_csv",
    "sniff_via",
    "via3_shape_to_via2",
]

_EXCEL_CELL_LIMIT = 32767  # Excel cuts longer cells when it re-saves a CSV


def _is_json(path: PathLike) -> bool:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in (".json", ".csv"):
        return suffix == ".json"
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] in (b"{", b"[")


def detect_via_format(path: PathLike, *, encoding: str = "utf-8") -> str | None:
    """Name the VIA layout of a file (CSV files: from their head only).

    Args:
        path: A CSV or JSON file.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        `"via1-csv"`, `"via2-csv"`, `"via3-csv"`, `"via1-json"`, `"via2-json"`,
        `"via2-json-project"` or `"via3-json"`; `None` for a CSV file that is not
        a VIA export.

    Raises:
        AnnotationError: A JSON file that is not valid JSON or not a VIA file.

    Example:
    >>> detect_via_format("via_region_data.csv")  # doctest: +SKIP
    'via1-csv'

    """
    if _is_json(path):
        return json_format(load_json(path, encoding), path)
    return sniff_csv(path, encoding).kind


def iter_via_records(
    path: PathLike, *, on_error: OnError = "raise", encoding: str = "utf-8"
) -> Iterator[ViaRecord]:
    """Stream the records of any VIA file (CSV or JSON, VIA 1, 2 or 3).

    CSV files are streamed with flat memory (a VIA 3 CSV is read twice: first to
    gather each file's own attributes and region count). JSON files are parsed
    whole.

    Args:
        path: The VIA file. `.json` is read as JSON, `.csv` as CSV; any other
            name is sniffed from its first character.
        on_error: `"raise"` raises `AnnotationError` at the first malformed
            record; `"skip"` yields it as a record whose `problem` is set
            (kinds `"bad_json"`, `"bad_record"`, `"bad_shape"`) so the caller can
            skip and report it. Problems with the whole file always raise.
        encoding: The encoding used when the file has no byte-order mark.

    Yields:
        One `ViaRecord` per region, and one with `shape == {}` per image
        without regions. Records read from CSV carry the row's non-VIA columns
        in `extra` (see `ExtraColumns` for their names).

    Raises:
        AnnotationError: A malformed record (when raising), or a file that is
            not VIA, not decodable, or missing required columns.
        ValueError: An unknown `on_error`.

    Example:
    >>> for record in iter_via_records("via.csv", on_error="skip"):  # doctest: +SKIP
    ...     if record.problem is None and record.has_region:
    ...         print(record.row, record.shape["name"], record.extra.get("split"))

    """
    check_on_error(on_error)
    return _iter_any(path, on_error, encoding)


def _iter_any(path: PathLike, on_error: str, encoding: str) -> Iterator[ViaRecord]:
    if _is_json(path):
        data = load_json(path, encoding)
        yield from iter_loaded_json(path, data, json_format(data, path), on_error)
    else:
        yield from _iter_csv(path, on_error, encoding)


def _iter_csv(path: PathLike, on_error: str, encoding: str) -> Iterator[ViaRecord]:
    with open_text(path, encoding) as handle:
        reader = LineReader(handle, path, encoding)
        layout = read_layout(reader)
        if layout.kind is None:
            raise_not_via_csv(path, layout)
        if layout.kind == "via3-csv":
            yield from iter_via3_csv(path, layout, reader, on_error, encoding)
        else:
            yield from iter_via12_csv(path, layout, reader, on_error)


def read_via(
    path: PathLike, *, on_error: OnError = "raise", encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read any VIA file into a table with one row per region.

    Columns: `filename`, `file_size`, `file_attributes` (dict), `region_count`,
    `region_id`, `region_shape_attributes` (dict, VIA-2 style),
    `region_attributes` (dict); then, for CSV files, the file's extra top-level
    columns (those VIA does not define, e.g. a `split` column; cells kept as
    the file's text, `None` where a short row lacks the cell; see
    `ExtraColumns` for their names); then one column per region-attribute key
    found in any row (`None` where a row lacks it). An attribute key equal to a
    standard column, to an extra column or to another attribute column is
    prefixed with `region_` until unique: with a top-level `name` column, the
    attribute `name` becomes `region_name` (see `attribute_columns`).

    Args:
        path: A VIA CSV (1.x, 2.x, 3.x) or JSON (1.x/2.x export, 2.x project,
            3.x project) file.
        on_error: `"raise"` (default) raises one error listing every malformed
            record; `"skip"` drops them and lists them in `attrs["problems"]`.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The table. Its index is the row label: the physical line number for CSV
        (index name `"line"`), `"<filename>#<k>"` for JSON (index name
        `"region"`). Images without regions are dropped and listed in
        `attrs["rows_without_regions"]` as `{"row", "filename"}` dicts;
        `attrs["source"]` is `str(path)`, `attrs["format"]` the layout (e.g.
        `"via2-csv"`), `attrs["attribute_columns"]` maps attribute keys to
        columns, `attrs["extra_columns"]` lists the extra columns (`[]` for
        JSON) and `attrs["problems"]` lists skipped records.

    Raises:
        AnnotationError: Malformed records (when raising), or a file that is not
            a VIA export.
        ValueError: An unknown `on_error`.

    Example:
    >>> df = read_via("via_region_data.csv")  # doctest: +SKIP
    >>> df.loc[2, "region_shape_attributes"]["name"]  # doctest: +SKIP
    'rect'

    """
    if _is_json(path):
        return read_via_json(path, on_error=on_error, encoding=encoding)
    return read_via_csv(path, on_error=on_error, encoding=encoding)


def read_via_csv(
    path: PathLike, *, on_error: OnError = "raise", encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a VIA CSV export (1.x `#filename,...`, 2.x `filename,...`, or 3.x).

    Args:
        path: The CSV file.
        on_error: See `read_via`.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The table described in `read_via`, indexed by physical line number,
        with the file's extra columns after the standard ones.

    Raises:
        AnnotationError: Malformed records (when raising), or a header without
            `region_shape_attributes` (not a VIA file).
        ValueError: An unknown `on_error`.

    Example:
    >>> read_via_csv("via_export_csv.csv").attrs["format"]  # doctest: +SKIP
    'via2-csv'

    """
    check_on_error(on_error)
    layout = sniff_csv(path, encoding)
    if layout.kind is None:
        raise_not_via_csv(path, layout)
    records = _iter_csv(path, "skip", encoding)
    return records_to_frame(records, source=str(path), fmt=str(layout.kind), index_name="line",
                            on_error=on_error, extra_columns=ExtraColumns(layout).names)


def read_via_json(
    path: PathLike, *, on_error: OnError = "raise", encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a VIA JSON file (1.x/2.x annotation export, 2.x project, 3.x project).

    Args:
        path: The JSON file.
        on_error: See `read_via`.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The table described in `read_via`, indexed by `"<filename>#<k>"`.

    Raises:
        AnnotationError: Malformed records (when raising), invalid JSON, or JSON
            that is not a VIA file.
        ValueError: An unknown `on_error`.

    Example:
    >>> read_via_json("via_project.json").index[0]  # doctest: +SKIP
    'img1.jpg#0'

    """
    check_on_error(on_error)
    data = load_json(path, encoding)
    fmt = json_format(data, path)
    records = iter_loaded_json(path, data, fmt, "skip")
    return records_to_frame(records, source=str(path), fmt=fmt, index_name="region",
                            on_error=on_error)


# VIA 1 and 2 CSV records.


def _looks_like_object(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("{") and stripped.endswith("}")


def _repair(fields: list[str], index: Mapping[str, int], width: int, delimiter: str) -> list[str]:
    while len(fields) > width and not fields[-1].strip():
        fields = fields[:-1]  # VIA 1.0.0-1.0.2 trailing comma, spreadsheet padding
    extra, shape_at = len(fields) - width, index["region_shape_attributes"]
    if (extra > 0 and index.get("filename") == 0 and not _looks_like_object(fields[shape_at])
            and _looks_like_object(fields[shape_at + extra])):
        # VIA writes the file name unquoted: a comma in it splits it into several fields.
        fields = [delimiter.join(fields[: extra + 1]), *fields[extra + 1:]]
    return fields


def _via12_record(
    source: str, layout: CsvLayout, index: Mapping[str, int], extras: ExtraColumns,
    record: tuple[int, int, list[str]], on_error: str,
) -> ViaRecord:
    start, end, fields = record
    if len(fields) != len(layout.columns):
        fields = _repair(fields, index, len(layout.columns), layout.delimiter)
    count = len(fields)
    extra = extras.read(fields)

    def cell(name: str) -> str | None:
        i = index.get(name, count)
        return fields[i] if i < count else None

    span = f" (the record spans lines {start}-{end})" if end > start else ""
    if len(fields) <= max(index["filename"], index["region_shape_attributes"]):
        return fail(on_error, Problem(
            "bad_record", f"the record has {len(fields)} fields; expected {len(layout.columns)} "
            f"({', '.join(layout.columns)}){span}.", source=source, row=start,
            value=layout.delimiter.join(fields)), extra=extra)
    filename = cell("filename") or ""
    if not filename.strip():
        return fail(on_error, Problem("bad_record", f"the file name is empty; expected the "
                                      f"image's file name{span}.", source=source, row=start,
                                      column="filename", value=filename), extra=extra)
    parsed = {}
    for column in ("file_attributes", "region_shape_attributes", "region_attributes"):
        text = cell(column)
        try:
            parsed[column] = parse_object(text, numbers=column == "region_shape_attributes")
        except ValueError as error:
            if text is not None and len(text) == _EXCEL_CELL_LIMIT:
                span += "; the cell has exactly 32767 characters: a spreadsheet truncated it"
            return fail(on_error, Problem(
                "bad_json", f"{column} is not a JSON object ({error}); expected "
                f"{EXPECTED[column]}{span}.", source=source, row=start, column=column,
                value=text, path=filename), filename, extra)
    return ViaRecord(
        start, filename, parsed["region_shape_attributes"], parsed["region_attributes"],
        parsed["file_attributes"], region_id=to_int(cell("region_id")),
        region_count=to_int(cell("region_count")), file_size=to_int(cell("file_size")),
        extra=extra,
    )


def iter_via12_csv(
    path: PathLike, layout: CsvLayout, reader: LineReader, on_error: str
) -> Iterator[ViaRecord]:
    """Stream the records of a VIA 1 or 2 CSV file.

    Args:
        path: The file, for error messages.
        layout: Its layout, from `read_layout`.
        reader: The file's lines, at the first record.
        on_error: `"raise"` or `"skip"`, as in `iter_via_records`.

    Yields:
        One record per line (or per record spanning several lines).

    Raises:
        AnnotationError: The header lacks `filename` or
            `region_shape_attributes`, or a record is malformed (when raising).

    """
    index: dict[str, int] = {}
    for i, name in enumerate(layout.columns):
        index.setdefault(name, i)
    for column in ("filename", "region_shape_attributes"):
        if column not in index:
            raise_missing(path, layout, column)
    extras = ExtraColumns(layout)
    for record in iter_records(reader, layout.delimiter):
        yield _via12_record(str(path), layout, index, extras, record, on_error)


# VIA 1 and 2 JSON files (annotation exports and VIA 2 projects), and JSON dispatch.


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
        on_error: `"raise"` or `"skip"`, as in `iter_via_records`.

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


# The registry's view: sniffing and the common region frame.


def sniff_via(head: str) -> bool:
    """Tell whether the head of a file looks like a VIA export (any version, CSV or JSON).

    Args:
        head: The first characters of the file, decoded.

    Returns:
        True when the head holds a VIA column (`region_shape_attributes`,
        VIA 3's `spatial_coordinates`), a VIA 2 project key (`_via_...`), a VIA
        1/2 image entry (`"regions"` with `"filename"`) or a VIA 3 project
        (`"metadata"` with `"project"`).

    Example:
    >>> sniff_via("filename,file_size,file_attributes,region_count,region_id,"
    ...           "region_shape_attributes,region_attributes")
    True

    """
    text = head.lstrip("\ufeff \t\r\n")
    return ("region_shape_attributes" in text or "spatial_coordinates" in text
            or "_via_" in text or ('"regions"' in text and '"filename"' in text)
            or ('"metadata"' in text and '"project"' in text))


def read_via_regions(
    path: str | os.PathLike[str], *, on_error: str = "raise",
    point_box_size: regions.PointBoxSize = None, encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read any VIA file into the common region frame (through `read_via`).

    Region-attribute keys stay columns, as in `read_via`; `label` is the
    `label` attribute, else the only attribute when there is one. VIA `point`
    regions become boxes with `point_box_size`, else are left out (reported).

    Args:
        path: A VIA CSV or JSON file (VIA 1, 2 or 3).
        on_error: `"raise"` (default) or `"skip"`.
        point_box_size: Size of the box made around points.
        encoding: The encoding used when the file has no byte-order mark.

    Returns:
        The frame, indexed as `read_via` indexes it (CSV line or `"<file>#<k>"`).

    Raises:
        AnnotationError: As `read_via`, and for shapes that give no box (when raising).

    Example:
    >>> read_via_regions("via_region_data.csv")[["x", "y", "w", "h"]]  # doctest: +SKIP

    """
    source = os.fspath(path)
    regions.check_on_error(on_error)
    table = read_via(source, on_error="skip", encoding=encoding)
    builder = regions.RegionFrameBuilder(source, "via", on_error, point_box_size)
    builder.problems.extend(table.attrs.get("problems", []))
    builder.rows_without_regions.extend(table.attrs.get("rows_without_regions", []))
    columns: dict[str, str] = table.attrs.get("attribute_columns", {})
    keep = [c for c in table.columns if c not in ("region_shape_attributes", "region_attributes",
                                                   "file_attributes", "filename")]
    label_col = "label" if "label" in columns.values() else (
        next(iter(columns.values())) if len(columns) == 1 else None)
    records = table[keep].to_dict("records")
    for row, filename, shape, values in zip(table.index.tolist(), table["filename"].tolist(),
                                            table["region_shape_attributes"].tolist(), records):
        label = values.pop(label_col) if label_col in values else None
        attributes: dict[str, Any] = {
            ("attribute_" + str(k) if k in ("x", "y", "w", "h", "shape") else str(k)): v
            for k, v in values.items()}
        name = str(shape.get("name", "rect")).lower()
        if name == "point":
            builder.add_point(row, filename, [(float(shape["cx"]), float(shape["cy"]))], label,
                              "point", **attributes)
            continue
        try:
            box = shape_to_xyxy(shape)
        except ShapeError as error:
            builder.error(error.kind, str(error), row, filename, "region_shape_attributes", shape)
            continue
        builder.add(row, filename, box, label, name, **attributes)
    return builder.frame(os.path.dirname(os.path.abspath(source)))
