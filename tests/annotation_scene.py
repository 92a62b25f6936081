"""One scene with known pixels, written in every annotation format by its documentation.

The image is 256 x 256 (a power of two, so the fractions YOLO and Label Studio
store are exact binary numbers and every format must give the very same
pixel boxes). It holds solid boxes on a grey background:

- `red`: an axis-aligned box.
- `green`: an axis-aligned box, written as a polygon wherever the format has
  polygons (COCO segmentation, YOLO segment line, Label Studio, CVAT, VIA).
- `blue`: a 40 x 20 rectangle turned 90 degrees clockwise about its top-left
  corner (130..150 x 150..190 on screen); Label Studio writes it rotated
  about its top-left corner, CVAT rotated about its centre, the others as
  their polygon or box.
- `yellow`: a triangle (a polygon), drawn as a triangle.

Each writer follows its format's own documentation (VOC devkit: 1-based
inclusive corners; YOLO: normalised centre and size; COCO: 0-based
`[x, y, w, h]`; Label Studio: percentages of `original_width`/`height`;
CVAT for images 1.1: `xtl/ytl/xbr/ybr`, `points="x,y;..."`).

`LAYOUTS` writes the same regions as the exports labelling tools make of a
dataset with splits: four images (`SPLIT_OF`: two train, one val, one test),
each the scene on its own grey, in Roboflow's YOLO and COCO exports,
Ultralytics' layout, COCO's own `annotations/instances_<split>.json`, a CVAT
project with subsets and a VIA file with a `split` attribute; and, without
splits, CVAT's COCO export and Label Studio's export in their folders.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
BACKGROUND = (128, 128, 128)
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (240, 220, 20)}
# Pixel truth: (left, top, right, bottom) of each region's bounding box.
TRUTH = {"red": (20.0, 30.0, 60.0, 70.0), "green": (100.0, 20.0, 160.0, 60.0),
         "blue": (130.0, 150.0, 150.0, 190.0), "yellow": (40.0, 120.0, 100.0, 200.0)}
TRIANGLE = [(40, 200), (70, 120), (100, 200)]
GREEN_POLYGON = [(100, 20), (160, 20), (160, 60), (100, 60)]
BLUE_UNROTATED = (150.0, 150.0, 40.0, 20.0)  # x, y, w, h before the 90-degree turn
BLUE_CORNERS = [(150, 150), (150, 190), (130, 190), (130, 150)]
CATEGORY_IDS = {"red": 1, "green": 5, "blue": 9, "yellow": 12}  # COCO ids have gaps


SPLIT_OF = {"scene_a.png": "train", "scene_b.png": "train", "scene_c.png": "val",
            "scene_d.png": "test"}
GREYS = {"scene_a.png": (128, 128, 128), "scene_b.png": (96, 96, 96), "scene_c.png": (160, 160, 160),
         "scene_d.png": (64, 64, 64)}
ROBOFLOW_FOLDERS = {"train": "train", "val": "valid", "test": "test"}
CVAT_SUBSETS = {"train": "Train", "val": "Validation", "test": "Test"}


def write_image(path: Path, background: tuple[int, int, int] = BACKGROUND) -> Path:
    """Draw the scene (PNG)."""
    image = Image.new("RGB", (SIZE, SIZE), background)
    draw = ImageDraw.Draw(image)
    for label in ("red", "green", "blue"):
        x0, y0, x1, y1 = TRUTH[label]
        image.paste(COLOURS[label], (int(x0), int(y0), int(x1), int(y1)))
    draw.polygon(TRIANGLE, fill=COLOURS["yellow"])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG")
    return path


def _flat(points: list[tuple[int, int]]) -> list[float]:
    return [float(v) for p in points for v in p]


def _coco_document(names: list[str]) -> dict:
    annotations = []
    shapes = {"red": None, "green": GREEN_POLYGON, "blue": BLUE_CORNERS, "yellow": TRIANGLE}
    images = []
    for n, name in enumerate(names):
        image_id = 7 + n
        images.append({"id": image_id, "file_name": name, "width": SIZE, "height": SIZE})
        for label, polygon in shapes.items():
            x0, y0, x1, y1 = TRUTH[label]
            annotations.append({"id": 100 + len(annotations), "image_id": image_id,
                                "category_id": CATEGORY_IDS[label],
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                "iscrowd": 0, "segmentation": [_flat(polygon)] if polygon else []})
    return {"info": {"description": "scene"}, "licenses": [], "images": images,
            "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": "colour"}
                           for n, i in CATEGORY_IDS.items()]}


def write_coco(folder: Path) -> Path:
    """COCO: `images/scene.png` and `instances.json` beside `images/`."""
    write_image(folder / "images" / "scene.png")
    path = folder / "instances.json"
    path.write_text(json.dumps(_coco_document(["scene.png"]), indent=1))
    return path


def write_voc(folder: Path) -> Path:
    """VOC: `JPEGImages/scene.png` and `Annotations/scene.xml` (1-based inclusive corners)."""
    write_image(folder / "JPEGImages" / "scene.png")
    objects = []
    for label, (x0, y0, x1, y1) in TRUTH.items():
        objects.append(
            f"<object><name>{label}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>0</difficult><bndbox><xmin>{int(x0) + 1}</xmin><ymin>{int(y0) + 1}</ymin>"
            f"<xmax>{int(x1)}</xmax><ymax>{int(y1)}</ymax></bndbox></object>")
    text = ("<annotation><folder>JPEGImages</folder><filename>scene.png</filename>"
            f"<size><width>{SIZE}</width><height>{SIZE}</height><depth>3</depth></size>"
            f"<segmented>0</segmented>{''.join(objects)}</annotation>")
    path = folder / "Annotations" / "scene.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return folder


def _yolo_lines() -> str:
    names = list(CATEGORY_IDS)
    lines = []
    x0, y0, x1, y1 = TRUTH["red"]
    lines.append(f"{names.index('red')} {(x0 + x1) / 2 / SIZE} {(y0 + y1) / 2 / SIZE} "
                 f"{(x1 - x0) / SIZE} {(y1 - y0) / SIZE}")
    for label, polygon in (("green", GREEN_POLYGON), ("blue", BLUE_CORNERS),
                           ("yellow", TRIANGLE)):
        coords = " ".join(f"{v / SIZE}" for v in _flat(polygon))
        lines.append(f"{names.index(label)} {coords}")
    return "\n".join(lines) + "\n"


def _yolo_pair(images: Path, labels: Path, name: str) -> None:
    write_image(images / name, GREYS.get(name, BACKGROUND))
    labels.mkdir(parents=True, exist_ok=True)
    (labels / name).with_suffix(".txt").write_text(_yolo_lines())


def write_yolo(folder: Path) -> Path:
    """YOLO: `images/train/scene.png`, `labels/train/scene.txt`, `data.yaml`."""
    names = list(CATEGORY_IDS)
    _yolo_pair(folder / "images" / "train", folder / "labels" / "train", "scene.png")
    (folder / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n"
                                      + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))
    return folder


def _pct(value: float) -> float:
    return value / SIZE * 100


def write_labelstudio(folder: Path) -> Path:
    """Label Studio JSON export; the image is uploaded (`/data/upload/1/<hash>-scene.png`)."""
    write_image(folder / "scene.png")
    common = {"to_name": "image", "original_width": SIZE, "original_height": SIZE,
              "image_rotation": 0}
    x0, y0, x1, y1 = TRUTH["red"]
    bx, by, bw, bh = BLUE_UNROTATED
    results = [
        {"id": "r1", "type": "rectanglelabels", "from_name": "label", **common,
         "value": {"x": _pct(x0), "y": _pct(y0), "width": _pct(x1 - x0), "height": _pct(y1 - y0),
                   "rotation": 0, "rectanglelabels": ["red"]}},
        {"id": "r2", "type": "polygonlabels", "from_name": "poly", **common,
         "value": {"points": [[_pct(x), _pct(y)] for x, y in GREEN_POLYGON],
                   "polygonlabels": ["green"]}},
        {"id": "r3", "type": "rectanglelabels", "from_name": "label", **common,
         "value": {"x": _pct(bx), "y": _pct(by), "width": _pct(bw), "height": _pct(bh),
                   "rotation": 90, "rectanglelabels": ["blue"]}},
        {"id": "r4", "type": "polygonlabels", "from_name": "poly", **common,
         "value": {"points": [[_pct(x), _pct(y)] for x, y in TRIANGLE],
                   "polygonlabels": ["yellow"]}},
        {"id": "c1", "type": "choices", "from_name": "quality", **common,
         "value": {"choices": ["good"]}},
    ]
    tasks = [{"id": 1, "data": {"image": "/data/upload/1/3f2a9c1b-scene.png"},
              "annotations": [{"id": 11, "completed_by": {"id": 1, "email": "a@example.org"},
                               "was_cancelled": False, "result": results}],
              "predictions": []}]
    path = folder / "export.json"
    path.write_text(json.dumps(tasks, indent=1))
    return path


def _cvat_shapes() -> str:
    x0, y0, x1, y1 = TRUTH["red"]
    # The blue rectangle turned about its centre (140, 170): unrotated 40 x 20 there.
    shapes = [
        f'<box label="red" source="manual" occluded="0" xtl="{x0}" ytl="{y0}" xbr="{x1}" '
        f'ybr="{y1}" z_order="0"><attribute name="shade">dark</attribute></box>',
        '<polygon label="green" source="manual" occluded="0" points="'
        + ";".join(f"{x:.2f},{y:.2f}" for x, y in GREEN_POLYGON) + '" z_order="0"></polygon>',
        '<box label="blue" source="manual" occluded="0" xtl="120.00" ytl="160.00" xbr="160.00" '
        'ybr="180.00" rotation="90.00" z_order="0"></box>',
        '<polygon label="yellow" source="manual" occluded="1" points="'
        + ";".join(f"{x:.2f},{y:.2f}" for x, y in TRIANGLE) + '" z_order="1"></polygon>',
    ]
    return "".join(shapes)


def write_cvat(folder: Path) -> Path:
    """CVAT for images 1.1: `annotations.xml` and `images/scene.png`."""
    write_image(folder / "images" / "scene.png")
    text = ('<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
            "<meta><task><id>1</id><name>scene</name><size>1</size><mode>annotation</mode>"
            "</task></meta>"
            f'<image id="0" name="scene.png" width="{SIZE}" height="{SIZE}">'
            + _cvat_shapes() + "</image></annotations>")
    path = folder / "annotations.xml"
    path.write_text(text)
    return path


def _via_lines(name: str, **region_attributes: str) -> list[str]:
    x0, y0, x1, y1 = TRUTH["red"]
    shapes = [("red", {"name": "rect", "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})]
    for label, polygon in (("green", GREEN_POLYGON), ("blue", BLUE_CORNERS),
                           ("yellow", TRIANGLE)):
        shapes.append((label, {"name": "polygon", "all_points_x": [p[0] for p in polygon],
                               "all_points_y": [p[1] for p in polygon]}))
    lines = []
    for k, (label, shape) in enumerate(shapes):
        cell = json.dumps(shape, separators=(",", ":")).replace('"', '""')
        attributes = json.dumps({"label": label, **region_attributes},
                                separators=(",", ":")).replace('"', '""')
        lines.append(f'{name},-1,"{{}}",{len(shapes)},{k},"{cell}","{attributes}"')
    return lines


_VIA_HEADER = ("filename,file_size,file_attributes,region_count,region_id,"
               "region_shape_attributes,region_attributes")


def write_via(folder: Path) -> Path:
    """VIA 2 CSV: rect, polygons (`all_points_x/y`)."""
    write_image(folder / "scene.png")
    path = folder / "via.csv"
    path.write_text("\n".join([_VIA_HEADER, *_via_lines("scene.png")]))
    return path


WRITERS = {"via": write_via, "coco": write_coco, "voc": write_voc, "yolo": write_yolo,
           "labelstudio": write_labelstudio, "cvat": write_cvat}


# Layouts with splits: four images, two train, one val, one test.


def write_yolo_roboflow(folder: Path) -> Path:
    """Roboflow's YOLOv8 export: `data.yaml` (`train: ../train/images`), `train/`, `valid/`, `test/`."""
    for name, split in SPLIT_OF.items():
        where = folder / ROBOFLOW_FOLDERS[split]
        _yolo_pair(where / "images", where / "labels", name)
    (folder / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 4\n"
        f"names: {list(CATEGORY_IDS)}\n\nroboflow:\n  workspace: scene\n  version: 1\n")
    return folder


def write_yolo_ultralytics(folder: Path) -> Path:
    """Ultralytics' layout: `scene.yaml` naming `path: scene`, `images/train2017`, `labels/...`."""
    root = folder / "scene"
    for name, split in SPLIT_OF.items():
        _yolo_pair(root / "images" / f"{split}2017", root / "labels" / f"{split}2017", name)
    path = folder / "scene.yaml"
    path.write_text("path: scene  # dataset root dir\ntrain: images/train2017\n"
                    "val: images/val2017\ntest: images/test2017\n\nnames:\n"
                    + "".join(f"  {i}: {n}\n" for i, n in enumerate(CATEGORY_IDS)))
    return path


def write_coco_roboflow(folder: Path) -> Path:
    """Roboflow's COCO export: `train/_annotations.coco.json` and its images, `valid/`, `test/`."""
    for split, sub in ROBOFLOW_FOLDERS.items():
        names = [n for n, s in SPLIT_OF.items() if s == split]
        for name in names:
            write_image(folder / sub / name, GREYS[name])
        (folder / sub / "_annotations.coco.json").write_text(json.dumps(_coco_document(names)))
    return folder


def write_coco_splits(folder: Path) -> Path:
    """COCO's own layout: `annotations/instances_<split>2017.json` beside `<split>2017/`."""
    (folder / "annotations").mkdir(parents=True)
    for split in ("train", "val", "test"):
        names = [n for n, s in SPLIT_OF.items() if s == split]
        for name in names:
            write_image(folder / f"{split}2017" / name, GREYS[name])
        (folder / "annotations" / f"instances_{split}2017.json").write_text(
            json.dumps(_coco_document(names)))
    return folder


def write_cvat_project(folder: Path) -> Path:
    """A CVAT for images project export: images with `subset=`, in `images/<subset>/`."""
    images = []
    for k, (name, split) in enumerate(SPLIT_OF.items()):
        subset = CVAT_SUBSETS[split]
        write_image(folder / "images" / subset / name, GREYS[name])
        images.append(f'<image id="{k}" name="{name}" subset="{subset}" width="{SIZE}" '
                      f'height="{SIZE}">{_cvat_shapes()}</image>')
    (folder / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version><meta>'
        "<project><id>1</id><name>scene</name><subsets>Train\nValidation\nTest</subsets>"
        "</project></meta>" + "".join(images) + "</annotations>")
    return folder


def write_via_split(folder: Path) -> Path:
    """VIA 2 CSV with a `split` region attribute: the splits a user wrote by hand."""
    lines = [_VIA_HEADER]
    for name, split in SPLIT_OF.items():
        write_image(folder / name, GREYS[name])
        lines += _via_lines(name, split=split)
    path = folder / "via.csv"
    path.write_text("\n".join(lines))
    return path


def write_coco_cvat(folder: Path) -> Path:
    """CVAT's "COCO 1.0" export: `annotations/instances_default.json` and `images/`."""
    write_image(folder / "images" / "scene.png")
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / "instances_default.json").write_text(
        json.dumps(_coco_document(["scene.png"])))
    return folder


def write_labelstudio_folder(folder: Path) -> Path:
    """Label Studio's export in a folder, with its media copied as Label Studio keeps it."""
    write_labelstudio(folder)
    (folder / "scene.png").rename(folder / "3f2a9c1b-scene.png")  # the upload's stored name
    (folder / "export.json").rename(folder / "project-1-at-2024-01-01-00-00-3f2a9c1b.json")
    return folder


SPLIT_LAYOUTS = {"yolo_roboflow": write_yolo_roboflow, "yolo_ultralytics": write_yolo_ultralytics,
                 "coco_roboflow": write_coco_roboflow, "coco_splits": write_coco_splits,
                 "cvat_project": write_cvat_project, "via_split": write_via_split}
LAYOUTS = {**SPLIT_LAYOUTS, "coco_cvat": write_coco_cvat,
           "labelstudio_folder": write_labelstudio_folder}
LAYOUT_FORMATS = {"yolo_roboflow": "yolo", "yolo_ultralytics": "yolo", "coco_roboflow": "coco",
                  "coco_splits": "coco", "cvat_project": "cvat", "via_split": "via",
                  "coco_cvat": "coco", "labelstudio_folder": "labelstudio"}
