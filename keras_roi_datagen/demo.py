"""A small synthetic VIA-style dataset that a small CNN can learn.

`make_demo_dataset` draws JPEG scenes of coloured shapes on textured
backgrounds and writes their annotations as VGG Image Annotator 2 exports
them (`via_region_data.csv`): one row per region, the shape as a VIA user
would draw it (`rect` around squares, `circle` or `ellipse` around circles,
`polygon` along triangles and crosses), and two labels: `name` (the shape
kind) and `type` (the colour family). Like real
exports, one image has no region (its row has `region_count` 0). Everything
is a pure function of the seed.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["COLOR_FAMILIES", "SHAPES", "make_demo_dataset"]

SHAPES = ("circle", "square", "triangle", "cross")
COLOR_FAMILIES: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 210),
    "yellow": (225, 205, 40),
}
_VIA_HEADER = [
    "filename", "file_size", "file_attributes", "region_count", "region_id",
    "region_shape_attributes", "region_attributes",
]


def _background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    base = rng.integers(90, 170, size=3)
    noise = rng.normal(0, 18, size=(height // 8 + 1, width // 8 + 1, 3))
    field = np.clip(base + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(field, "RGB").resize(size, Image.Resampling.BICUBIC)
    return image.filter(ImageFilter.GaussianBlur(2))


def _colour(rng: np.random.Generator, family: str) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLOR_FAMILIES[family])
    return (r, g, b)


def _draw(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float,
          colour: tuple[int, int, int], rng: np.random.Generator) -> dict[str, object]:
    """Draws one shape and returns its VIA 2 region shape."""
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        if rng.random() < 0.3:  # some annotators outline a circle with the ellipse tool
            return {"name": "ellipse", "cx": round(cx), "cy": round(cy), "rx": round(r, 1),
                    "ry": round(r, 1), "theta": 0}
        return {"name": "circle", "cx": round(cx), "cy": round(cy), "r": round(r, 1)}
    if kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
        return {"name": "rect", "x": round(cx - r), "y": round(cy - r),
                "width": round(2 * r), "height": round(2 * r)}
    if kind == "cross":
        arm = r * 0.38
        draw.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=colour)
        draw.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=colour)
        xs = [cx - arm, cx + arm, cx + arm, cx + r, cx + r, cx + arm, cx + arm, cx - arm, cx - arm,
              cx - r, cx - r, cx - arm]
        ys = [cy - r, cy - r, cy - arm, cy - arm, cy + arm, cy + arm, cy + r, cy + r, cy + arm,
              cy + arm, cy - arm, cy - arm]
        return {"name": "polygon", "all_points_x": [round(x) for x in xs],
                "all_points_y": [round(y) for y in ys]}
    turn = rng.uniform(0, 2 * math.pi)
    points = [(cx + r * math.cos(turn + k * 2 * math.pi / 3),
               cy + r * math.sin(turn + k * 2 * math.pi / 3)) for k in range(3)]
    draw.polygon(points, fill=colour)
    return {"name": "polygon", "all_points_x": [round(p[0]) for p in points],
            "all_points_y": [round(p[1]) for p in points]}


def _place(rng: np.random.Generator, size: tuple[int, int], taken: list[tuple[float, float, float]],
           ) -> tuple[float, float, float] | None:
    width, height = size
    for _ in range(50):
        r = float(rng.uniform(18, 34))
        cx, cy = float(rng.uniform(r + 2, width - r - 2)), float(rng.uniform(r + 2, height - r - 2))
        if all(math.hypot(cx - x, cy - y) > r + s + 6 for x, y, s in taken):
            return cx, cy, r
    return None


def make_demo_dataset(
    directory: str | os.PathLike[str],
    n_images: int = 160,
    seed: int = 0,
    image_size: tuple[int, int] = (320, 240),
    shapes_per_image: tuple[int, int] = (3, 6),
) -> Path:
    """Writes the demo images and their VIA 2 CSV export.

    Args:
        directory: Where to write (created if missing).
        n_images: Number of JPEG scenes. Defaults to 160 (about 700 regions).
        seed: Seed of everything drawn. Defaults to 0.
        image_size: `(width, height)` of the scenes, as Pillow counts.
        shapes_per_image: Inclusive range of shapes per scene.

    Returns:
        The path of `via_region_data.csv`.

    Example:
    >>> import tempfile
    >>> csv_path = make_demo_dataset(tempfile.mkdtemp(), n_images=4, seed=1)
    >>> csv_path.name
    'via_region_data.csv'
    """
    if n_images < 1:
        raise ValueError(f"`n_images` must be at least 1. Received: n_images={n_images}")
    root = Path(directory)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[list[object]] = []
    families = list(COLOR_FAMILIES)
    for number in range(n_images):
        image = _background(rng, image_size)
        draw = ImageDraw.Draw(image)
        taken: list[tuple[float, float, float]] = []
        regions = []
        count = 0 if number == n_images - 1 and n_images > 1 else int(
            rng.integers(shapes_per_image[0], shapes_per_image[1] + 1))
        for _ in range(count):
            spot = _place(rng, image_size, taken)
            if spot is None:
                break
            taken.append(spot)
            kind, family = SHAPES[int(rng.integers(len(SHAPES)))], families[int(rng.integers(4))]
            shape = _draw(draw, kind, *spot, _colour(rng, family), rng)
            regions.append((shape, {"name": kind, "type": family}))
        name = f"images/scene_{number:04d}.jpg"
        image.save(root / name, quality=90)
        size = (root / name).stat().st_size
        if not regions:
            rows.append([name, size, "{}", 0, 0, "{}", "{}"])
        for region_id, (shape, labels) in enumerate(regions):
            rows.append([name, size, "{}", len(regions), region_id,
                         json.dumps(shape, separators=(",", ":")),
                         json.dumps(labels, separators=(",", ":"))])
    csv_path = root / "via_region_data.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(_VIA_HEADER)
        writer.writerows(rows)
    return csv_path
