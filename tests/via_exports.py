"""Write VIA exports byte for byte as each VIA version writes them (test helpers).

Each writer mirrors the code that produces the file in VIA itself (ox-vgg/via):

* `write_via1_csv`, `write_via2_csv`: `pack_via_metadata('csv')` of VIA 1.0.x
  (`#filename,...` header) and VIA 2.x (`filename,...`): file name and numbers
  bare, JSON fields in `"..."` with quotes doubled, `,0,0,"{}","{}"` for an image
  without regions, LF between lines, none after the last, no BOM.
* `write_via1_json`: VIA 1.0.x JSON export (regions keyed `"0"`, `"1"`, ...,
  with `fileref` and `base64_img_data`).
* `write_via2_json`: VIA 2 "Export annotations (as json)" (regions a list).
* `write_via2_project`: VIA 2 "Save project" (`_via_settings`, ...).
* `write_via3_json`, `write_via3_csv`: VIA 3 `project_save` and
  `export_to_via3_csv`.
* `dirty`: what spreadsheets and editors do to such files afterwards (BOM,
  CRLF, trailing blank lines).
* `add_csv_columns`: what scripts do to a CSV export afterwards (a `split`
  column, label columns flattened out of `region_attributes`).

JSON is written as `JSON.stringify` does: compact, non-ASCII kept, integral
floats as integers, integer-like object keys first in ascending order.

Fixtures: `via_images` (a small set of images covering every shape, quotes in
labels, a checkbox attribute and an image without regions) and `via_files`
(every layout written from it into `tmp_path`). Use them from another test
module with `pytest_plugins = ["via_exports"]` or by importing them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CSV_HEADER = (
    "filename,file_size,file_attributes,region_count,region_id,"
    "region_shape_attributes,region_attributes"
)
VIA3_CSV_HEADER = (
    "metadata_id,file_list,flags,temporal_coordinates,spatial_coordinates,metadata"
)
VIA3_SHAPE_IDS = {
    "POINT": 1, "RECTANGLE": 2, "CIRCLE": 3, "ELLIPSE": 4, "LINE": 5, "POLYLINE": 6,
    "POLYGON": 7, "EXTREME_RECTANGLE": 8, "EXTREME_CIRCLE": 9,
}
VIA2_SETTINGS = {
    "ui": {
        "annotation_editor_height": 25, "annotation_editor_fontsize": 0.8,
        "leftsidebar_width": 18,
        "image_grid": {
            "img_height": 80, "rshape_fill": "none", "rshape_fill_opacity": 0.3,
            "rshape_stroke": "yellow", "rshape_stroke_width": 2, "show_region_shape": True,
            "show_image_policy": "all",
        },
        "image": {
            "region_label": "__via_region_id__", "region_color": "__via_default_region_color__",
            "region_label_font": "10px Sans", "on_image_annotation_editor_placement": "NEAR_REGION",
        },
    },
    "core": {"buffer_size": 18, "filepath": {}, "default_filepath": ""},
    "project": {"name": "via_project_1Jan2024_10h0m"},
}
_ARRAY_INDEX = re.compile(r"^(0|[1-9][0-9]*)$")


@dataclass
class Region:
    """A region as VIA 2 holds it: a shape dict (or VIA 3 `xy` list) and its attributes."""

    shape: dict[str, Any] | list[Any]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Image:
    """An image of a VIA project; `size` -1 is VIA's convention for URLs."""

    filename: str
    size: int = 1000
    regions: list[Region] = field(default_factory=list)
    file_attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def image_id(self) -> str:
        return f"{self.filename}{self.size}"


def _jsify(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # JSON.stringify(NaN) === "null"
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, Mapping):
        keys = list(value)
        # JavaScript objects enumerate integer-like keys first, ascending.
        first = sorted((k for k in keys if _ARRAY_INDEX.match(str(k))), key=int)
        ordered = first + [k for k in keys if k not in first]
        return {str(k): _jsify(value[k]) for k in ordered}
    if isinstance(value, (list, tuple)):
        return [_jsify(v) for v in value]
    return value


def js_json(value: Any) -> str:
    """`JSON.stringify(value)`."""
    return json.dumps(_jsify(value), ensure_ascii=False, separators=(",", ":"))


def csv_quote(text: str) -> str:
    """VIA's `'"' + escape_for_csv(s) + '"'`."""
    return '"' + text.replace('"', '""') + '"'


def _js_number(value: Any) -> str:
    return js_json(value) if isinstance(value, (int, float)) else str(value)


def via_csv_text(images: Sequence[Image], *, version: int = 2, trailing_comma: bool = False) -> str:
    """The text of `pack_via_metadata('csv')` joined as the browser saves it.

    Args:
        images: The project's images.
        version: 1 writes the `#filename,...` header of VIA 1.0.x, 2 the bare one.
        trailing_comma: End each record with a comma, as VIA 1.0.0 to 1.0.2 did
            (CHANGELOG 1.0.3, issue 103; exact form not verified).
    """
    lines = [("#" if version == 1 else "") + CSV_HEADER]
    for image in images:
        prefix = f"{image.filename},{_js_number(image.size)},"
        prefix += csv_quote(js_json(image.file_attributes))
        if not image.regions:
            lines.append(prefix + ',0,0,"{}","{}"')
        for i, region in enumerate(image.regions):
            lines.append(",".join([
                prefix, str(len(image.regions)), str(i),
                csv_quote(js_json(region.shape)), csv_quote(js_json(region.attributes)),
            ]))
    if trailing_comma:
        lines = [lines[0]] + [line + "," for line in lines[1:]]
    return "\n".join(lines)


def write_via1_csv(path: Path, images: Sequence[Image], *, trailing_comma: bool = False) -> Path:
    """A VIA 1.0.x CSV export (`via_region_data.csv`)."""
    path.write_bytes(via_csv_text(images, version=1, trailing_comma=trailing_comma).encode())
    return path


def write_via2_csv(path: Path, images: Sequence[Image]) -> Path:
    """A VIA 2.x CSV export (`<project>_csv.csv`)."""
    path.write_bytes(via_csv_text(images, version=2).encode())
    return path


def via1_json_data(images: Sequence[Image]) -> dict[str, Any]:
    return {
        image.image_id: {
            "fileref": "", "size": image.size, "filename": image.filename,
            "base64_img_data": "", "file_attributes": image.file_attributes,
            "regions": {
                str(i): {"shape_attributes": r.shape, "region_attributes": r.attributes}
                for i, r in enumerate(image.regions)
            },
        }
        for image in images
    }


def via2_json_data(images: Sequence[Image]) -> dict[str, Any]:
    return {
        image.image_id: {
            "filename": image.filename, "size": image.size,
            "regions": [
                {"shape_attributes": r.shape, "region_attributes": r.attributes}
                for r in image.regions
            ],
            "file_attributes": image.file_attributes,
        }
        for image in images
    }


def write_via1_json(path: Path, images: Sequence[Image]) -> Path:
    """A VIA 1.0.x JSON export (`via_region_data.json`)."""
    path.write_bytes(js_json(via1_json_data(images)).encode())
    return path


def write_via2_json(path: Path, images: Sequence[Image]) -> Path:
    """VIA 2 "Export annotations (as json)": `JSON.stringify(_via_img_metadata)`."""
    path.write_bytes(js_json(via2_json_data(images)).encode())
    return path


def write_via2_project(
    path: Path, images: Sequence[Image], *, region_attributes: Mapping[str, Any] | None = None,
    data_format_version: str | None = "2.0.10",
) -> Path:
    """A VIA 2 project file; `data_format_version=None` writes a pre-2.0.10 project."""
    project: dict[str, Any] = {
        "_via_settings": VIA2_SETTINGS,
        "_via_img_metadata": via2_json_data(images),
        "_via_attributes": {"region": dict(region_attributes or {}), "file": {}},
    }
    if data_format_version is not None:
        project["_via_data_format_version"] = data_format_version
        project["_via_image_id_list"] = [image.image_id for image in images]
    path.write_bytes(js_json(project).encode())
    return path


def via2_shape_to_via3(shape: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
    """VIA 3 `xy` for a VIA 2 shape dict (a list is taken as `xy` already)."""
    if not isinstance(shape, Mapping):
        return list(shape)
    name = shape["name"]
    if name == "point":
        return [1, shape["cx"], shape["cy"]]
    if name == "rect":
        return [2, shape["x"], shape["y"], shape["width"], shape["height"]]
    if name == "circle":
        return [3, shape["cx"], shape["cy"], shape["r"]]
    if name == "ellipse":
        return [4, shape["cx"], shape["cy"], shape["rx"], shape["ry"]]
    if name in ("polyline", "polygon"):
        xy = [v for pair in zip(shape["all_points_x"], shape["all_points_y"], strict=True)
              for v in pair]
        return [6 if name == "polyline" else 7, *xy]
    raise ValueError(f"VIA 3 has no shape {name!r}")


def _via3_text_attributes(images: Sequence[Image]) -> dict[str, dict[str, Any]]:
    names: dict[tuple[str, str], str] = {}
    for image in images:
        for key in image.file_attributes:
            names.setdefault(("FILE1_Z0_XY0", key), str(len(names) + 1))
        for region in image.regions:
            for key in region.attributes:
                names.setdefault(("FILE1_Z0_XY1", key), str(len(names) + 1))
    return {
        aid: {"aname": key, "anchor_id": anchor, "type": 1, "desc": "", "options": {},
              "default_option_id": ""}
        for (anchor, key), aid in names.items()
    }


def via3_store(
    images: Sequence[Image], *, attribute_defs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The `store` VIA 3 keeps for an image project.

    Without `attribute_defs`, every attribute name becomes a TEXT attribute and
    values are written as they are; with them, the images' attribute dicts are
    taken as raw `{aid: value}`.
    """
    defs = dict(attribute_defs) if attribute_defs is not None else _via3_text_attributes(images)
    by_name = {} if attribute_defs is not None else {
        (d["anchor_id"], d["aname"]): aid for aid, d in defs.items()}

    def av(values: Mapping[str, Any], anchor: str) -> dict[str, Any]:
        if attribute_defs is not None:
            return dict(values)
        return {by_name[(anchor, k)]: v for k, v in values.items()}

    files, views, metadata = {}, {}, {}
    for n, image in enumerate(images, start=1):
        fid = vid = str(n)
        url = image.filename.startswith(("http://", "https://"))
        files[fid] = {"fid": fid, "fname": image.filename.rsplit("/", 1)[-1], "type": 2,
                      "loc": 2 if url else 1, "src": image.filename if url else ""}
        views[vid] = {"fid_list": [fid]}
        if image.file_attributes:
            metadata[f"{vid}_f{n:07d}"] = {"vid": vid, "flg": 0, "z": [], "xy": [],
                                           "av": av(image.file_attributes, "FILE1_Z0_XY0")}
        for k, region in enumerate(image.regions):
            metadata[f"{vid}_r{k:07d}"] = {"vid": vid, "flg": 0, "z": [],
                                           "xy": via2_shape_to_via3(region.shape),
                                           "av": av(region.attributes, "FILE1_Z0_XY1")}
    return {
        "project": {
            "pid": "__VIA_PROJECT_ID__", "rev": "__VIA_PROJECT_REV_ID__",
            "rev_timestamp": "__VIA_PROJECT_REV_TIMESTAMP__", "pname": "Unnamed VIA Project",
            "creator": "VGG Image Annotator (http://www.robots.ox.ac.uk/~vgg/software/via)",
            "created": 1574343199772, "vid_list": list(views),
        },
        "config": {
            "file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}},
            "ui": {"file_content_align": "center", "file_metadata_editor_visible": True,
                   "spatial_metadata_editor_visible": True,
                   "spatial_region_label_attribute_id": ""},
        },
        "attribute": defs, "file": files, "metadata": metadata, "view": views,
    }


def write_via3_json(
    path: Path, images: Sequence[Image], *, attribute_defs: Mapping[str, Any] | None = None
) -> Path:
    """A VIA 3 project file (`project_save`: `JSON.stringify(this.store)`)."""
    path.write_bytes(js_json(via3_store(images, attribute_defs=attribute_defs)).encode())
    return path


def write_via3_csv(
    path: Path, images: Sequence[Image], *, attribute_defs: Mapping[str, Any] | None = None,
    old_attributes_line: bool = False,
) -> Path:
    """A VIA 3 CSV export (`export_to_via3_csv`).

    `old_attributes_line` writes `# ATTRIBUTES = {aid: name}` as older VIA 3
    builds did (`_via_data.project_export_csv`) instead of `# ATTRIBUTE = {...}`.
    """
    store = via3_store(images, attribute_defs=attribute_defs)
    lines = [
        "# Exported using VGG Image Annotator (http://www.robots.ox.ac.uk/~vgg/software/via)",
        "# Notes:",
        "# - spatial_coordinates of [2,10,20,50,80] denotes a rectangle (shape_id=2) of size "
        "50x80 placed at (10,20)",
        "# - temporal coordinate of [1.349,2.741] denotes a temporal segment from time 1.346 "
        "sec. to 2.741 sec.",
        "# - temporal coordinate of [4.633] denotes a still video frame at 4.633 sec.",
        '# - metadata of {""1"":""3""} indicates attribute with id "1" set to an attribute '
        'option with id "3"',
        "# SHAPE_ID = " + js_json(VIA3_SHAPE_IDS),
        "# FLAG_ID = " + js_json({"RESERVED_FOR_FUTURE": 1}),
    ]
    if old_attributes_line:
        lines.append("# ATTRIBUTES = " + js_json(
            {aid: d["aname"] for aid, d in store["attribute"].items()}))
    else:
        lines.append("# ATTRIBUTE = " + js_json(store["attribute"]))
    lines.append("# CSV_HEADER = " + VIA3_CSV_HEADER)
    for mid, meta in store["metadata"].items():
        file = store["file"][store["view"][meta["vid"]]["fid_list"][0]]
        name = file["src"] if file["loc"] == 2 else file["fname"]
        lines.append(",".join([
            f'"{mid}"', csv_quote(js_json([name])), str(meta["flg"]),
            csv_quote(js_json(meta["z"])), csv_quote(js_json(meta["xy"])),
            csv_quote(js_json(meta["av"])),
        ]))
    path.write_bytes("\n".join(lines).encode())
    return path


def add_csv_columns(
    path: Path, columns: Mapping[str, Sequence[str]], *, first: bool = False
) -> Path:
    """Add top-level columns to a VIA CSV export, as a script would.

    The header gets the names (a VIA 3 file: its `# CSV_HEADER =` line) and
    every record one value per column, quoted only when needed.

    Args:
        path: A file written by `write_via1_csv`, `write_via2_csv` or
            `write_via3_csv` (one record per line), rewritten in place.
        columns: `{name: values}`, one value per record.
        first: Put the columns before VIA's own instead of after them (VIA 2
            and VIA 3 files; a VIA 1 header must keep its leading `#`).
    """
    def join(own: str, added: Sequence[str]) -> str:
        cells = [csv_quote(v) if re.search(r'[,"\r\n]', v) else v for v in added]
        return ",".join([*cells, own] if first else [own, *cells])

    lines = path.read_bytes().decode().split("\n")
    header = next(i for i, line in enumerate(lines) if not line.startswith("#")
                  or "region_shape_attributes" in line or line.startswith("# CSV_HEADER"))
    if lines[header].startswith("# CSV_HEADER = "):
        lines[header] = "# CSV_HEADER = " + join(lines[header][15:], list(columns))
    else:
        lines[header] = join(lines[header], list(columns))
    values = [list(row) for row in zip(*columns.values(), strict=True)]
    records = range(header + 1, len(lines))
    assert len(values) == len(records), "one value per record"
    for i, row in zip(records, values, strict=True):
        lines[i] = join(lines[i], row)
    path.write_bytes("\n".join(lines).encode())
    return path


def dirty(
    path: Path, *, bom: bool = False, crlf: bool = False, blank_lines: int = 0,
    encoding: str = "utf-8",
) -> Path:
    """Rewrite a file as editors and spreadsheets leave it.

    Args:
        path: The file, rewritten in place.
        bom: Start with a byte-order mark.
        crlf: End lines with CRLF (also inside quoted fields, as editors do).
        blank_lines: Newlines appended at the end.
        encoding: Re-encode (e.g. `"utf-16"`, which writes its own BOM).
    """
    text = path.read_bytes().decode("utf-8")
    newline = "\r\n" if crlf else "\n"
    text = text.replace("\r\n", "\n").replace("\n", newline) + newline * blank_lines
    data = text.encode(encoding)
    if bom and encoding.replace("-", "").lower() == "utf8":
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return path


def sample_images() -> list[Image]:
    """Images covering every VIA 2 shape, awkward labels and an image without regions."""
    return [
        Image("swan.jpg", 62201, [
            Region({"name": "rect", "x": 79, "y": 310, "width": 66, "height": 62},
                   {"name": 'a \'rect\' in "blue", background', "kind": "bird"}),
            Region({"name": "ellipse", "cx": 300, "cy": 223, "rx": 93, "ry": 56, "theta": 0.5},
                   {"name": "ellipse on \"yellow\"; background", "kind": "water"}),
            Region({"name": "point", "cx": 505, "cy": 113}, {"name": "a point, in £$ :"}),
        ], {"caption": "a swan in geneve lake\""}),
        Image("empty.jpg", 27894),
        Image("shapes.png", 129855, [
            Region({"name": "circle", "cx": 148, "cy": 268, "r": 43},
                   {"kind": "cat", "flags": {"red": True, "big": True}}),
            Region({"name": "polygon", "all_points_x": [121, 105, 188, 121],
                    "all_points_y": [172, 212, 292, 172]}, {"kind": "dog"}),
            Region({"name": "polyline", "all_points_x": [1.5, 20.25, 30],
                    "all_points_y": [2, 4, 8]}, {}),
        ]),
    ]


@pytest.fixture
def via_images() -> list[Image]:
    """`sample_images()`."""
    return sample_images()


@pytest.fixture
def via_files(tmp_path: Path, via_images: list[Image]) -> dict[str, Path]:
    """Every VIA layout written from `via_images`, keyed by format name."""
    no_theta = [
        Image(i.filename, i.size, [
            Region({k: v for k, v in dict(r.shape).items() if k != "theta"}, r.attributes)
            for r in i.regions
        ], i.file_attributes)
        for i in via_images
    ]
    flat = [  # VIA 3 text attributes cannot hold checkbox dicts
        Image(i.filename, i.size, [
            Region(r.shape, {k: v for k, v in r.attributes.items() if not isinstance(v, dict)})
            for r in i.regions
        ], i.file_attributes)
        for i in no_theta
    ]
    return {
        "via1-csv": write_via1_csv(tmp_path / "via_region_data.csv", no_theta),
        "via2-csv": write_via2_csv(tmp_path / "via_export_csv.csv", via_images),
        "via1-json": write_via1_json(tmp_path / "via_region_data.json", no_theta),
        "via2-json": write_via2_json(tmp_path / "via_export_json.json", via_images),
        "via2-json-project": write_via2_project(tmp_path / "via_project.json", via_images),
        "via3-json": write_via3_json(tmp_path / "via3_project.json", flat),
        "via3-csv": write_via3_csv(tmp_path / "via3_export.csv", flat),
    }
