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

This module is the public entry point; the work is done in:

* `via_common`: `ViaRecord`, `STANDARD_COLUMNS`, lenient cell parsing.
* `via_csv`: CSV layout sniffing (every version), extra columns, VIA 1/2 rows.
* `via_json`: VIA 1/2 JSON exports and VIA 2 projects, JSON layout detection.
* `via3`: VIA 3 CSV exports and projects, shape and attribute conversion.
* `via_frame`: the one-row-per-region DataFrame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd

from keras_roi_datagen.formats.csv import LineReader, open_text
from keras_roi_datagen.formats.via3 import iter_via3_csv, via3_shape_to_via2
from keras_roi_datagen.formats.via_common import (
    STANDARD_COLUMNS,
    OnError,
    PathLike,
    ViaRecord,
    check_on_error,
    parse_object,
)
from keras_roi_datagen.formats.via_csv import (
    CsvLayout,
    ExtraColumns,
    iter_via12_csv,
    raise_not_via_csv,
    read_layout,
    sniff_csv,
)
from keras_roi_datagen.formats.via_frame import attribute_columns, records_to_frame
from keras_roi_datagen.formats.via_json import iter_loaded_json, json_format, load_json

__all__ = [
    "STANDARD_COLUMNS",
    "CsvLayout",
    "ExtraColumns",
    "OnError",
    "PathLike",
    "ViaRecord",
    "attribute_columns",
    "detect_via_format",
    "iter_via_records",
    "parse_object",
    "read_via",
    "read_via_csv",
    "read_via_json",
    "sniff_csv",
    "via3_shape_to_via2",
]


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
            record; `"collect"` yields it as a record whose `problem` is set
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
    >>> for record in iter_via_records("via.csv", on_error="collect"):  # doctest: +SKIP
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
            record; `"collect"` drops them and lists them in `attrs["problems"]`.
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
    records = _iter_csv(path, "collect", encoding)
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
    records = iter_loaded_json(path, data, fmt, "collect")
    return records_to_frame(records, source=str(path), fmt=fmt, index_name="region",
                            on_error=on_error)
