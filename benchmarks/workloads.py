"""Deterministic benchmark workloads: photo-like JPEGs and the regions cut from them.

A pool of distinct 1920x1080 JPEG "photos" (q90) is generated once and cached
under `.bench_cache/` at the repository root. Texture is built from smooth
gradients, several octaves of coloured noise, blended shapes with hard edges
and fine grain, so the files are as large as real photos (about 0.5 MB) and
cost as much to decode.

Each workload is a list of crops (file, box) over *aliases* of the pool: hard
links with distinct names. A loader that decodes an image once for several of
its regions (`group_by_image`) therefore gets that benefit only where an
image really holds several regions (W1), never because two rows of W2 or W3
happen to point at the same pool file.

- W1: 8 regions per image, each side 64-600 px (log-uniform), aspect 1:2-2:1.
- W2: one 300x300 region per image.
- W3: one 1200x800 region per image.
"""

from __future__ import annotations

import io
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".bench_cache"
RECIPE = "v1"  # bump when the generator changes, so stale caches are not reused
IMAGE_W, IMAGE_H = 1920, 1080
QUALITY = 90
OUTPUT_SIZE = (224, 224)
POOL_SIZE = 48
QUICK_POOL_SIZE = 6


@dataclass(frozen=True)
class WorkloadSpec:
    """How a workload is drawn.

    Args:
        name: Short name (`"W1"`).
        title: One-line description for the report.
        images: Number of (aliased) images in the full run.
        quick_images: Number of images in a `--quick` run.
        regions_per_image: Regions cut from each image.
        sizes: `(width, height)` of every region, or `None` for mixed sizes.
        seed: Seed of the region positions and sizes.
    """

    name: str
    title: str
    images: int
    quick_images: int
    regions_per_image: int
    sizes: tuple[int, int] | None
    seed: int


SPECS = (
    WorkloadSpec("W1", "1920x1080 JPEG q90, 8 regions/image, sides 64-600 px",
                 images=512, quick_images=8, regions_per_image=8, sizes=None, seed=1),
    WorkloadSpec("W2", "1920x1080 JPEG q90, 1 region/image, 300x300",
                 images=2048, quick_images=64, regions_per_image=1, sizes=(300, 300), seed=2),
    WorkloadSpec("W3", "1920x1080 JPEG q90, 1 region/image, 1200x800",
                 images=2048, quick_images=64, regions_per_image=1, sizes=(1200, 800), seed=3),
)


@dataclass(frozen=True)
class Workload:
    """The crops of one workload, in table order (the regions of an image are adjacent).

    Args:
        name: `"W1"`, `"W2"` or `"W3"`.
        title: Description for the report.
        image_dir: Folder the file names are relative to.
        filenames: Per crop, its image's file name.
        boxes: `(n, 4)` integer boxes `x, y, width, height` in pixels.
        file_bytes: Per crop, the size of its image file in bytes.
        regions_per_image: Regions per image.
    """

    name: str
    title: str
    image_dir: str
    filenames: tuple[str, ...]
    boxes: np.ndarray
    file_bytes: np.ndarray
    regions_per_image: int

    def __len__(self) -> int:
        return len(self.filenames)

    def head(self, crops: int) -> Workload:
        """Returns the first `crops` crops (whole images only)."""
        keep = min(len(self), max(self.regions_per_image, crops))
        keep -= keep % self.regions_per_image
        return Workload(self.name, self.title, self.image_dir, self.filenames[:keep],
                        self.boxes[:keep], self.file_bytes[:keep], self.regions_per_image)

    def path(self, crop: int) -> str:
        """Absolute path of crop `crop`'s image."""
        return os.path.join(self.image_dir, self.filenames[crop])

    def xyxy(self, crop: int) -> tuple[int, int, int, int]:
        """Box of crop `crop` as `(left, top, right, bottom)`."""
        x, y, w, h = (int(v) for v in self.boxes[crop])
        return (x, y, x + w, y + h)

    def images(self) -> list[tuple[str, int]]:
        """The distinct images in order, each with its number of crops."""
        step = self.regions_per_image
        return [(self.path(i), step) for i in range(0, len(self), step)]

    def frame(self) -> pd.DataFrame:
        """The workload as an annotation table (VIA-style rect shapes, one label column)."""
        shapes = [{"name": "rect", "x": int(x), "y": int(y), "width": int(w), "height": int(h)}
                  for x, y, w, h in self.boxes.tolist()]
        # Ten classes, one per image (regions of a photo often share a class): how
        # mixed a batch's labels are then shows what grouping by image costs.
        labels = [f"class{(i // self.regions_per_image) % 10}" for i in range(len(self))]
        return pd.DataFrame({"filename": list(self.filenames),
                             "region_shape_attributes": shapes, "name": labels})


# -- image generation ---------------------------------------------------------------------


def _octave(rng: np.random.Generator, cells: tuple[int, int], amplitude: float) -> np.ndarray:
    """Coloured value noise: a coarse random grid upsampled bicubically to full size."""
    coarse = rng.standard_normal((cells[0], cells[1], 3)).astype(np.float32)
    planes = [np.asarray(Image.fromarray(coarse[..., c], mode="F").resize(
        (IMAGE_W, IMAGE_H), Image.Resampling.BICUBIC)) for c in range(3)]
    return np.stack(planes, axis=-1) * amplitude


def _shapes(rng: np.random.Generator, canvas: np.ndarray, count: int) -> np.ndarray:
    """Blends `count` flat-coloured ellipses and rectangles over the texture."""
    for _ in range(count):
        x0, y0 = int(rng.uniform(-100, IMAGE_W)), int(rng.uniform(-100, IMAGE_H))
        width, height = int(rng.uniform(30, 600)), int(rng.uniform(30, 450))
        mask = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(mask)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(
            (0, 0, width - 1, height - 1), fill=255)
        alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0 * rng.uniform(0.4, 0.8)
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x0 + width, IMAGE_W), min(y0 + height, IMAGE_H)
        if right <= left or bottom <= top:
            continue
        alpha = alpha[top - y0:bottom - y0, left - x0:right - x0]
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        patch = canvas[top:bottom, left:right]
        canvas[top:bottom, left:right] = patch * (1.0 - alpha) + colour * alpha
    return canvas


def photo_bytes(seed: int) -> bytes:
    """Generates pool photo `seed` as JPEG bytes (deterministic for a given seed)."""
    rng = np.random.default_rng([seed, 90])
    ys, xs = np.mgrid[0:IMAGE_H, 0:IMAGE_W].astype(np.float32)
    gx, gy = rng.uniform(-0.05, 0.05, (2, 3)).astype(np.float32)
    canvas = rng.uniform(40, 200, 3).astype(np.float32) + xs[..., None] * gx + ys[..., None] * gy
    for cells, amplitude in (((4, 7), 40), ((12, 20), 18), ((40, 70), 8),
                             ((135, 240), 7), ((360, 640), 6)):
        canvas = canvas + _octave(rng, cells, amplitude)
    canvas = _shapes(rng, canvas, count=24)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    grain = rng.normal(0.0, 6.0, (IMAGE_H, IMAGE_W, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(np.asarray(image, np.float32) + grain, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def _write_photo(job: tuple[int, str]) -> str:
    seed, path = job
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "wb") as handle:
        handle.write(photo_bytes(seed))
    os.replace(temporary, path)
    return path


def ensure_pool(count: int, workers: int = 2) -> list[Path]:
    """Generates the first `count` pool photos that are not cached yet; returns all paths."""
    folder = CACHE / f"pool-{RECIPE}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo_{i:03d}.jpg" for i in range(count)]
    missing = [(i, str(p)) for i, p in enumerate(paths) if not p.exists()]
    if missing:
        print(f"generating {len(missing)} photos in {folder} (once; cached)...", flush=True)
        with ProcessPoolExecutor(max(1, min(workers, len(missing)))) as pool:
            list(pool.map(_write_photo, missing))
    return paths


# -- workloads ----------------------------------------------------------------------------


def _link(source: Path, target: Path) -> None:
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _mixed_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    sides = np.exp(rng.uniform(np.log(64), np.log(600), n))
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    widths = np.clip(np.rint(sides * np.sqrt(aspect)), 64, 600)
    heights = np.clip(np.rint(sides / np.sqrt(aspect)), 64, 600)
    return np.stack([widths, heights], axis=1).astype(np.int64)


def _boxes(spec: WorkloadSpec, crops: int) -> np.ndarray:
    rng = np.random.default_rng(spec.seed)
    if spec.sizes is None:
        sizes = _mixed_boxes(rng, crops)
    else:
        sizes = np.tile(np.asarray(spec.sizes, dtype=np.int64), (crops, 1))
    xs = np.floor(rng.uniform(0, 1, crops) * (IMAGE_W - sizes[:, 0] + 1)).astype(np.int64)
    ys = np.floor(rng.uniform(0, 1, crops) * (IMAGE_H - sizes[:, 1] + 1)).astype(np.int64)
    return np.column_stack([xs, ys, sizes])


def build_workload(spec: WorkloadSpec, pool: list[Path], quick: bool) -> Workload:
    """Creates (or reuses) the aliases of one workload and draws its regions."""
    images = spec.quick_images if quick else spec.images
    folder = CACHE / f"{spec.name.lower()}-{RECIPE}"
    folder.mkdir(parents=True, exist_ok=True)
    names, sizes = [], []
    for i in range(images):
        source = pool[i % len(pool)]
        name = f"img_{i:05d}.jpg"
        _link(source, folder / name)
        names += [name] * spec.regions_per_image
        sizes += [source.stat().st_size] * spec.regions_per_image
    return Workload(spec.name, spec.title, str(folder), tuple(names),
                    _boxes(spec, len(names)), np.asarray(sizes, dtype=np.int64),
                    spec.regions_per_image)


def build_workloads(quick: bool = False) -> dict[str, Workload]:
    """All workloads, generating the photo pool on first use."""
    pool = ensure_pool(QUICK_POOL_SIZE if quick else POOL_SIZE)
    return {spec.name: build_workload(spec, pool, quick) for spec in SPECS}
