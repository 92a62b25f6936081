"""Pixel space: flips, brightness, contrast, saturation, hue and erasing of a resized crop.

In NumPy and Pillow on `uint8` crops, after resizing; no backend op ever
touches the pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from keras_roi_datagen.augment.draws import COLUMN

__all__ = ["apply_pixel_ops"]

def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] to HSV in [0, 1] (hue in turns), in the dtype of `rgb`."""
    value = rgb.max(axis=-1)
    spread = value - rgb.min(axis=-1)
    saturation = spread / np.where(value > 0, value, 1)
    safe = np.where(spread > 0, spread, 1)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(value == r, (g - b) / safe,
                   np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = np.where(hue < 0, hue + 6, hue) / 6  # in [0, 1): no slow floating modulo
    return np.stack([np.where(spread > 0, hue, 0), saturation, value], axis=-1)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """HSV (hue in turns, in [0, 1)) to RGB in [0, 1]."""
    # Each channel is v - v*s*clip(min(k, 4 - k), 0, 1) with k = (n + 6h) mod 6,
    # n = 5, 3, 1 for red, green, blue: no per-sector branches.
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    chroma = v * s
    channels = []
    for n in (5, 3, 1):
        k = h * 6 + n
        k = np.where(k >= 6, k - 6, k)
        channels.append(v - chroma * np.clip(np.minimum(k, 4 - k), 0, 1))
    return np.stack(channels, axis=-1)


def _tone_tables(image: Image.Image, p: np.ndarray, channels: int) -> list[int]:
    """Brightness then contrast, as Keras's layers compute them, as per-band tables.

    Both are functions of a pixel's value (and, for contrast, of the channel's
    mean), so a 256-entry table per band gives the same result as the float
    computation; Pillow's `histogram` and `point` do the pixel work in C.
    """
    values = np.clip(_LEVELS + p[COLUMN["brightness"]], 0.0, 255.0)
    tables = np.empty((len(image.getbands()), 256))
    tables[:channels] = values
    factor = p[COLUMN["contrast"]]
    if factor != 1:
        counts = np.asarray(image.histogram(), dtype=np.float64).reshape(-1, 256)[:channels]
        means = counts @ values / (image.width * image.height)
        tables[:channels] = np.clip((values - means[:, None]) * factor + means[:, None], 0.0, 255.0)
    tables[channels:] = _LEVELS  # alpha is kept
    return np.rint(tables).astype(np.uint8).ravel().tolist()


_LEVELS = np.arange(256, dtype=np.float64)


def _point(image: Image.Image, tables: list[int]) -> Image.Image:
    """`image.point(tables)` for tables of integers already in 0..255.

    `Image.point` rounds every entry in Python first (768 calls for RGB, a
    fifth of this module's per-crop cost); the core lookup takes the tables
    as they are. Falls back to `Image.point` where the core is not there.
    """
    core = getattr(image, "im", None)
    if core is None or not hasattr(core, "point"):
        return image.point(tables)
    return image._new(core.point(tables, None))


def _saturate(pixels: np.ndarray, factor: float) -> np.ndarray:
    """HSV saturation times `factor` (clipped to 1), hue and value kept, without HSV.

    In HSV each channel is `v - s * v * w` for a weight `w` fixed by the hue,
    so scaling `s` scales every channel's distance below the maximum `v`.
    """
    rgb = pixels[..., :3].astype(np.float64)
    value = rgb.max(axis=-1, keepdims=True)
    spread = value - rgb.min(axis=-1, keepdims=True)
    scale = np.minimum(factor, value / np.where(spread > 0, spread, 1.0))
    out = pixels.copy()
    out[..., :3] = np.clip(np.rint(value - scale * (value - rgb)), 0, 255).astype(np.uint8)
    return out


def apply_pixel_ops(pixels: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Flips, colour changes and erasing of one resized `uint8` crop.

    Flips, brightness, contrast, saturation and hue commute (each colour
    change is a function of a pixel and of whole-crop statistics), so they
    run in the order that is cheapest; erasing comes last.

    Args:
        pixels: `(height, width, channels)` `uint8` crop.
        params: The row's parameters (a row of `draw`'s result).

    Returns:
        The changed crop (`pixels` itself when nothing applies).

    Example:
    >>> from keras_roi_datagen.augment import PARAMETERS, Augmentation, draw
    >>> params = draw(Augmentation(vertical_flip=True), seed=0, epoch=0, rows=np.arange(8))
    >>> crop = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    >>> flipped = params[:, PARAMETERS.index("vertical_flip")].argmax()
    >>> apply_pixel_ops(crop, params[flipped])[..., 0].tolist()
    [[3, 4, 5], [0, 1, 2]]
    """
    p = params
    channels = 3 if pixels.shape[-1] >= 3 else pixels.shape[-1]
    tone = p[COLUMN["brightness"]] != 0 or p[COLUMN["contrast"]] != 1
    flips = [flip for flip, key in ((Image.Transpose.FLIP_LEFT_RIGHT, "horizontal_flip"),
                                    (Image.Transpose.FLIP_TOP_BOTTOM, "vertical_flip"))
             if p[COLUMN[key]]]
    if tone or flips:  # in Pillow: one copy in, C loops, one copy out
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        if tone:
            image = _point(image, _tone_tables(image, p, channels))
        for flip in flips:
            image = image.transpose(flip)
        pixels = np.asarray(image).reshape(pixels.shape)
    if channels == 3 and p[COLUMN["hue"]] == 0 and p[COLUMN["saturation"]] != 1:
        pixels = _saturate(pixels, p[COLUMN["saturation"]])
    elif channels == 3 and (p[COLUMN["saturation"]] != 1 or p[COLUMN["hue"]] != 0):
        hsv = _rgb_to_hsv(pixels[..., :3].astype(np.float32) / np.float32(255))
        hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(p[COLUMN["saturation"]]), 0, 1)
        hue = hsv[..., 0] + np.float32(p[COLUMN["hue"]] % 1.0)
        hsv[..., 0] = np.where(hue >= 1, hue - 1, hue)
        pixels = pixels.copy()
        pixels[..., :3] = np.clip(np.rint(_hsv_to_rgb(hsv) * 255), 0, 255).astype(np.uint8)
    if p[COLUMN["erase"]]:
        height, width = pixels.shape[:2]
        x0, x1 = (round(p[COLUMN[k]] * width) for k in ("erase_x0", "erase_x1"))
        y0, y1 = (round(p[COLUMN[k]] * height) for k in ("erase_y0", "erase_y1"))
        pixels = pixels.copy()
        fill = [p[COLUMN[k]] for k in ("erase_r", "erase_g", "erase_b")]
        pixels[y0:y1, x0:x1, :channels] = np.asarray(fill[:channels], np.uint8)
    return pixels

