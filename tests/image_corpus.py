"""Image files as they exist in the wild, generated with known pixel truth.

Every writer takes a folder, writes one file into it and returns a `Sample`:
the path, the size of the image as displayed (after EXIF orientation) and a
list of named regions, each a box in displayed pixels with the colour the
image shows there as straight (not premultiplied) RGBA. What a crop should
hold for each `color_mode` follows from that colour by the documented rules
(`expected_color`): transparency is composited over black for `"rgb"` and
`"grayscale"` and kept for `"rgba"`.

The writers are plain functions with no pytest dependency, so they can also
make a folder of odd images by hand:

    python -c "import image_corpus as c; c.write_all('/tmp/corpus')"
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

RGBA = tuple[int, int, int, int]
Box = tuple[float, float, float, float]

RED: RGBA = (255, 0, 0, 255)
GREEN: RGBA = (0, 255, 0, 255)
BLUE: RGBA = (0, 0, 255, 255)
YELLOW: RGBA = (255, 255, 0, 255)
GREY: RGBA = (128, 128, 128, 255)
BLACK: RGBA = (0, 0, 0, 255)
WHITE: RGBA = (255, 255, 255, 255)

# The quadrant layout shared by most writers: 96 x 64 displayed pixels, split
# off-centre (and on JPEG block boundaries in every orientation) so that a
# mirrored or rotated image puts each colour somewhere else.
QUAD_SIZE = (96, 64)
QUAD_SPLIT = (40, 24)
QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")


@dataclass(frozen=True)
class Region:
    """A known area of a sample: its displayed `xyxy` box and RGBA colour."""

    name: str
    box: Box
    rgba: RGBA

    def inner(self, margin: float) -> Box:
        """Returns the box shrunk by `margin` pixels on every side."""
        x0, y0, x1, y1 = self.box
        return (x0 + margin, y0 + margin, x1 - margin, y1 - margin)


@dataclass(frozen=True)
class Sample:
    """A written image file and what it shows.

    Args:
        path: The file.
        size: Displayed `(width, height)`.
        regions: Areas of known colour, in displayed pixels.
        tolerance: Largest difference per channel to expect from the file
            format itself (0 for lossless files, a few levels for JPEG).
        truth: The displayed image as an `(height, width, 4)` RGBA array, when
            the whole image is known.
        notes: Free text about the file.
    """

    path: str
    size: tuple[int, int] = (0, 0)
    regions: tuple[Region, ...] = ()
    tolerance: int = 0
    truth: np.ndarray | None = field(default=None, repr=False, compare=False)
    notes: str = ""

    def region(self, name: str) -> Region:
        """Returns the region called `name`."""
        return next(r for r in self.regions if r.name == name)


def luma(rgb: Sequence[float]) -> float:
    """ITU-R 601-2 luma, the rule Pillow's RGB to L conversion uses."""
    r, g, b = rgb[:3]
    return r * 299 / 1000 + g * 587 / 1000 + b * 114 / 1000


def expected_color(rgba: Sequence[int], color_mode: str) -> tuple[float, ...]:
    """What a crop of a flat area of colour `rgba` holds, per `color_mode`.

    Args:
        rgba: Straight RGBA colour of the area.
        color_mode: `"rgb"`, `"grayscale"` or `"rgba"`.

    Returns:
        One value per output channel (floats: the exact value before rounding).
    """
    r, g, b, a = (float(v) for v in rgba)
    if color_mode == "rgba":
        return (r, g, b, a)
    over_black = (r * a / 255, g * a / 255, b * a / 255)
    if color_mode == "rgb":
        return over_black
    return (luma(over_black),)


# ----------------------------------------------------------------------------
# Drawing


def paint(size: tuple[int, int], background: RGBA, rects: Sequence[tuple[Box, RGBA]]) -> np.ndarray:
    """Returns an `(height, width, 4)` `uint8` RGBA array with filled rectangles.

    Args:
        size: `(width, height)`.
        background: Colour of everything outside the rectangles.
        rects: `(xyxy, rgba)` pairs with integer coordinates, painted in order.
    """
    width, height = size
    pixels = np.empty((height, width, 4), dtype=np.uint8)
    pixels[:] = background
    for (x0, y0, x1, y1), color in rects:
        pixels[int(y0) : int(y1), int(x0) : int(x1)] = color
    return pixels


def quadrant_boxes(size: tuple[int, int] = QUAD_SIZE, split: tuple[int, int] = QUAD_SPLIT) -> dict[str, Box]:
    """Returns the four displayed quadrant boxes of the shared layout."""
    (width, height), (sx, sy) = size, split
    return {
        "top_left": (0, 0, sx, sy),
        "top_right": (sx, 0, width, sy),
        "bottom_left": (0, sy, sx, height),
        "bottom_right": (sx, sy, width, height),
    }


def _quadrant_sample(path: Path, colors: Sequence[RGBA], tolerance: int, notes: str = "") -> Sample:
    boxes = quadrant_boxes()
    regions = tuple(Region(name, boxes[name], tuple(c)) for name, c in zip(QUADRANTS, colors, strict=True))
    truth = paint(QUAD_SIZE, BLACK, [(r.box, r.rgba) for r in regions])
    return Sample(str(path), QUAD_SIZE, regions, tolerance, truth, notes)


def stored_from_displayed(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """Returns the pixels to store so that EXIF `orientation` displays `displayed`.

    Derived from the EXIF 2.3 definitions (where the stored 0th row and 0th
    column appear on screen), not from Pillow, so that Pillow's own
    `exif_transpose` is checked rather than assumed.
    """
    d = displayed
    if orientation == 2:  # 0th row top, 0th column right: mirrored
        return d[:, ::-1]
    if orientation == 3:  # 0th row bottom, 0th column right: rotated 180
        return d[::-1, ::-1]
    if orientation == 4:  # 0th row bottom, 0th column left: flipped
        return d[::-1, :]
    if orientation == 5:  # 0th row left, 0th column top: transposed
        return d.transpose(1, 0, 2)
    if orientation == 6:  # 0th row right, 0th column top: shown turned 90 clockwise
        return np.rot90(d, 1)
    if orientation == 7:  # 0th row right, 0th column bottom: transversed
        return d[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:  # 0th row left, 0th column bottom: shown turned 90 counter-clockwise
        return np.rot90(d, -1)
    return d  # 1, and the out-of-range values readers must treat as 1


def _rgb(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")


def _jpeg_kwargs(quality: int = 95) -> dict[str, object]:
    # 4:4:4 keeps colour edges on 8x8 block boundaries exact enough to check.
    return {"format": "JPEG", "quality": quality, "subsampling": 0}


# ----------------------------------------------------------------------------
# Valid images with pixel truth


SCENE_SIZE = (160, 120)
SCENE_RECTS: tuple[tuple[str, Box, RGBA], ...] = (
    ("red", (8, 8, 64, 48), RED),
    ("green", (80, 16, 152, 72), GREEN),
    ("blue", (24, 72, 112, 112), BLUE),
    ("yellow", (128, 88, 152, 112), YELLOW),
)


def write_scene(folder: str | Path, name: str = "scene.png", image_format: str | None = None) -> Sample:
    """A grey scene with four solid rectangles (on 8-pixel boundaries).

    Args:
        folder: Where to write.
        name: File name; its extension picks the format unless `image_format`
            is given (`"PNG"`, `"JPEG"`, `"WEBP"` lossless, `"TIFF"`, `"BMP"`,
            `"GIF"`).
        image_format: Pillow format name, overriding the extension.
    """
    path = Path(folder) / name
    regions = tuple(Region(n, box, color) for n, box, color in SCENE_RECTS)
    regions += (Region("background", (0, 48, 24, 72), GREY),)
    truth = paint(SCENE_SIZE, GREY, [(box, color) for _, box, color in SCENE_RECTS])
    fmt = (image_format or Image.registered_extensions()[path.suffix.lower()]).upper()
    image = _rgb(truth)
    tolerance = 0
    if fmt == "JPEG":
        image.save(path, **_jpeg_kwargs())
        tolerance = 4
    elif fmt == "WEBP":
        image.save(path, format="WEBP", lossless=True)
    elif fmt == "GIF":
        image.quantize(colors=8).save(path, format="GIF")
    else:
        image.save(path, format=fmt)
    return Sample(str(path), SCENE_SIZE, regions, tolerance, truth, f"{fmt} scene")


def write_oriented(folder: str | Path, orientation: int, image_format: str = "JPEG") -> Sample:
    """An image with EXIF orientation `orientation` whose DISPLAYED image is the quadrant layout.

    The stored pixels are the inverse transform of the displayed ones, so a
    reader that ignores the tag sees the quadrants in the wrong places (and,
    for 5 to 8, a 64 x 96 image).

    Args:
        folder: Where to write.
        orientation: The EXIF tag 0x0112 value (1 to 8; others are written as
            is and must be read as 1).
        image_format: `"JPEG"` (with 4:4:4 chroma) or `"PNG"` (eXIf chunk).
    """
    colors = (RED, GREEN, BLUE, YELLOW)
    extension = "jpg" if image_format == "JPEG" else image_format.lower()
    path = Path(folder) / f"orientation_{orientation}.{extension}"
    sample = _quadrant_sample(path, colors, 6 if image_format == "JPEG" else 0, f"EXIF {orientation}")
    stored = _rgb(stored_from_displayed(sample.truth, orientation))
    exif = Image.Exif()
    exif[0x0112] = orientation
    if image_format == "JPEG":
        stored.save(path, exif=exif, **_jpeg_kwargs())
    else:
        stored.save(path, format=image_format, exif=exif)
    return sample


def write_cmyk_jpeg(folder: str | Path, name: str = "cmyk.jpg") -> Sample:
    """A CMYK JPEG, written as Photoshop does (Adobe APP14 marker, inverted ink values).

    The quadrants are pure inks: magenta+yellow (red), cyan+yellow (green),
    yellow, and black ink only. Pillow can write only this Adobe form; it also
    reads every CMYK JPEG with Adobe polarity, marker or not.
    """
    path = Path(folder) / name
    inks = ((0, 255, 255, 0), (255, 0, 255, 0), (0, 0, 255, 0), (0, 0, 0, 255))
    sample = _quadrant_sample(path, (RED, GREEN, YELLOW, BLACK), 8, "CMYK JPEG, Adobe polarity")
    stored = np.zeros((QUAD_SIZE[1], QUAD_SIZE[0], 4), dtype=np.uint8)
    for region, ink in zip(sample.regions, inks, strict=True):
        x0, y0, x1, y1 = (int(v) for v in region.box)
        stored[y0:y1, x0:x1] = ink
    image = Image.fromarray(stored, "CMYK")
    image.save(path, format="JPEG", quality=95)
    return sample


def write_gray16_png(folder: str | Path, name: str = "gray16.png") -> Sample:
    """A 16-bit grayscale PNG (Pillow mode `I;16`) using the whole 16-bit range.

    Quadrant values 1000, 25700, 50000 and 65535 show as 8-bit 4, 100, 195 and
    255 (value / 257); a reader that clips instead of scaling shows 255 for all.
    """
    path = Path(folder) / name
    values = (1000, 25700, 50000, 65535)
    colors = tuple((round(v / 257),) * 3 + (255,) for v in values)
    sample = _quadrant_sample(path, colors, 1, "16-bit gray, I;16")
    stored = np.zeros((QUAD_SIZE[1], QUAD_SIZE[0]), dtype=np.uint16)
    for region, value in zip(sample.regions, values, strict=True):
        x0, y0, x1, y1 = (int(v) for v in region.box)
        stored[y0:y1, x0:x1] = value
    Image.fromarray(stored).save(path, format="PNG")
    return sample


def png_bytes(
    width: int,
    height: int,
    bit_depth: int,
    color_type: int,
    raw: bytes,
    extra_chunks: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """Builds a PNG file: signature, IHDR, extra chunks, one IDAT of `raw`, IEND.

    Args:
        width: Claimed width.
        height: Claimed height.
        bit_depth: 1, 2, 4, 8 or 16.
        color_type: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
        raw: Filtered scanlines (each starting with its filter byte); may be
            shorter than the header claims.
        extra_chunks: `(type, data)` pairs written before IDAT.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = b"".join(chunk(kind, data) for kind, data in extra_chunks)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + body
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write_rgb16_png(folder: str | Path, name: str = "rgb16.png") -> Sample:
    """A 16-bit-per-channel RGB PNG, built byte by byte (Pillow cannot write one).

    Pillow reads it as 8-bit `RGB` (keeping the high byte of each sample).
    """
    path = Path(folder) / name
    colors16 = ((65535, 0, 0), (0, 32896, 0), (0, 0, 65535), (51400, 51400, 25700))
    colors = tuple((*(round(v / 257) for v in c), 255) for c in colors16)
    sample = _quadrant_sample(path, colors, 1, "16-bit RGB PNG")
    stored = np.zeros((QUAD_SIZE[1], QUAD_SIZE[0], 3), dtype=">u2")
    for region, color in zip(sample.regions, colors16, strict=True):
        x0, y0, x1, y1 = (int(v) for v in region.box)
        stored[y0:y1, x0:x1] = color
    raw = b"".join(b"\x00" + row.tobytes() for row in stored)
    path.write_bytes(png_bytes(QUAD_SIZE[0], QUAD_SIZE[1], 16, 2, raw))
    return sample


def write_palette_png(folder: str | Path, name: str = "palette.png") -> Sample:
    """A palette PNG with a tRNS chunk; the transparent index is MAGENTA, not black.

    Index 0 (magenta) is fully transparent, index 2 (orange) half transparent;
    indexes 1 and 3 are opaque red and green. A reader that drops transparency
    shows magenta where black (rgb) or alpha 0 (rgba) is expected.
    """
    path = Path(folder) / name
    colors = ((255, 0, 255, 0), (255, 0, 0, 255), (200, 100, 50, 128), (0, 255, 0, 255))
    sample = _quadrant_sample(path, colors, 1, "P + tRNS")
    indexes = np.zeros((QUAD_SIZE[1], QUAD_SIZE[0]), dtype=np.uint8)
    for index, region in enumerate(sample.regions):
        x0, y0, x1, y1 = (int(v) for v in region.box)
        indexes[y0:y1, x0:x1] = index
    image = Image.fromarray(indexes, "P")
    image.putpalette([channel for c in colors for channel in c[:3]])
    image.save(path, format="PNG", transparency=bytes(c[3] for c in colors))
    return sample


def write_colorkey_png(folder: str | Path, name: str = "colorkey.png") -> Sample:
    """An RGB PNG whose tRNS chunk makes one colour (pure green) transparent."""
    path = Path(folder) / name
    colors = (RED, (0, 255, 0, 0), BLUE, WHITE)
    sample = _quadrant_sample(path, colors, 1, "RGB + tRNS colour key")
    rgb = sample.truth.copy()
    rgb[..., 3] = 255
    _rgb(rgb).save(path, format="PNG", transparency=(0, 255, 0))
    return sample


def write_rgba_png(folder: str | Path, name: str = "rgba.png") -> Sample:
    """An RGBA PNG: opaque, quarter-opaque, fully transparent white, and opaque areas."""
    path = Path(folder) / name
    colors = (RED, (0, 0, 255, 64), (255, 255, 255, 0), (10, 200, 30, 255))
    sample = _quadrant_sample(path, colors, 1, "RGBA")
    Image.fromarray(sample.truth, "RGBA").save(path, format="PNG")
    return sample


def write_la_png(folder: str | Path, name: str = "la.png") -> Sample:
    """A grayscale+alpha PNG (mode `LA`)."""
    path = Path(folder) / name
    pairs = ((200, 255), (100, 128), (255, 0), (0, 255))
    sample = _quadrant_sample(path, tuple((v, v, v, a) for v, a in pairs), 1, "LA")
    la = np.ascontiguousarray(sample.truth[..., [0, 3]])
    Image.fromarray(la, "LA").save(path, format="PNG")
    return sample


def write_gray_jpeg(folder: str | Path, name: str = "gray.jpg") -> Sample:
    """A grayscale (one-component) JPEG."""
    path = Path(folder) / name
    values = (30, 90, 160, 230)
    sample = _quadrant_sample(path, tuple((v, v, v, 255) for v in values), 3, "L JPEG")
    Image.fromarray(np.ascontiguousarray(sample.truth[..., 0]), "L").save(path, format="JPEG", quality=95)
    return sample


def write_bilevel_png(folder: str | Path, name: str = "bilevel.png") -> Sample:
    """A 1-bit PNG (mode `1`): black and white quadrants."""
    path = Path(folder) / name
    sample = _quadrant_sample(path, (WHITE, BLACK, BLACK, WHITE), 0, "1-bit")
    bits = sample.truth[..., 0] > 127
    Image.fromarray(bits).convert("1").save(path, format="PNG")
    return sample


def write_png_named_jpg(folder: str | Path, name: str = "really_a_png.jpg") -> Sample:
    """The pixel-truth scene saved as PNG under a `.jpg` name."""
    return write_scene(folder, name, image_format="PNG")


def photo_like(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Returns an `(height, width, 3)` `uint8` image with a photo's 1/f spectrum.

    Natural images have amplitude falling as 1/frequency; this has that, per
    channel and partly correlated between channels, plus a little sensor noise.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(width, height))
    shared = rng.standard_normal((height, fx.shape[1])) + 1j * rng.standard_normal((height, fx.shape[1]))
    channels = []
    for _ in range(3):
        own = rng.standard_normal(shared.shape) + 1j * rng.standard_normal(shared.shape)
        field_ = np.fft.irfft2(amplitude * (0.7 * shared + 0.3 * own), s=(height, width))
        field_ = (field_ - field_.mean()) / field_.std()
        channels.append(field_)
    image = 128 + 45 * np.stack(channels, axis=-1) + rng.normal(0, 2.0, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_photo_jpeg(
    folder: str | Path,
    name: str = "photo.jpg",
    size: tuple[int, int] = (1000, 750),
    seed: int = 0,
    quality: int = 90,
    orientation: int = 1,
    image_format: str = "JPEG",
) -> Sample:
    """A textured, photo-like JPEG (4:2:0 chroma, as cameras write).

    Args:
        folder: Where to write.
        name: File name.
        size: DISPLAYED `(width, height)`. The default 1000 x 750 is not a
            multiple of 8 in height, as many real images are not (Pascal
            VOC's 500 x 375, for one).
        seed: Picks the texture.
        quality: JPEG quality.
        orientation: EXIF orientation; the stored pixels are transformed so
            that the displayed image is the same for every value.
        image_format: `"JPEG"`, or `"MPO"` for a camera-style file holding a
            second, smaller picture (Pillow reports its format as MPO).
    """
    path = Path(folder) / name
    truth = photo_like(size, seed)
    stored = Image.fromarray(np.ascontiguousarray(stored_from_displayed(truth, orientation)), "RGB")
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    if image_format == "MPO":
        preview = stored.resize((max(1, stored.width // 8), max(1, stored.height // 8)))
        stored.save(path, format="MPO", quality=quality, exif=exif, save_all=True, append_images=[preview])
    else:
        stored.save(path, format="JPEG", quality=quality, exif=exif)
    alpha = np.full((*truth.shape[:2], 1), 255, np.uint8)
    notes = f"photo-like {image_format}, EXIF orientation {orientation}"
    return Sample(str(path), size, (), 0, np.concatenate([truth, alpha], axis=-1), notes)


# ----------------------------------------------------------------------------
# Broken files


def write_empty_file(folder: str | Path, name: str = "empty.jpg") -> Sample:
    """A zero-byte file with an image name (an interrupted copy)."""
    path = Path(folder) / name
    path.write_bytes(b"")
    return Sample(str(path), notes="0 bytes")


def write_truncated_jpeg(folder: str | Path, name: str = "truncated.jpg", fraction: float = 0.5) -> Sample:
    """A valid photo-like JPEG cut after `fraction` of its bytes (an interrupted download)."""
    buffer = io.BytesIO()
    Image.fromarray(photo_like((256, 192), seed=1), "RGB").save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    path = Path(folder) / name
    path.write_bytes(data[: int(len(data) * fraction)])
    return Sample(str(path), (256, 192), notes=f"cut at {fraction:.0%} of {len(data)} bytes")


def write_text_as_jpg(folder: str | Path, name: str = "not_an_image.jpg") -> Sample:
    """An HTML error page saved under a `.jpg` name (a failed download)."""
    path = Path(folder) / name
    path.write_text("<html><body><h1>404 Not Found</h1></body></html>\n", encoding="utf-8")
    return Sample(str(path), notes="HTML text")


def write_bomb_png(
    folder: str | Path, name: str = "bomb.png", size: tuple[int, int] = (30000, 30000)
) -> Sample:
    """A PNG whose header claims `size` pixels but that is tiny on disk.

    The signature and IHDR are valid; IDAT holds one compressed scanline only.
    Decoding it would allocate `width * height` bytes before noticing.
    """
    width, height = size
    path = Path(folder) / name
    path.write_bytes(png_bytes(width, height, 8, 0, b"\x00" + bytes(width)))
    return Sample(str(path), size, notes=f"IHDR claims {width}x{height}")


# ----------------------------------------------------------------------------

WRITERS: dict[str, Callable[[str | Path], Sample]] = {
    "scene_png": write_scene,
    "cmyk_jpeg": write_cmyk_jpeg,
    "gray16_png": write_gray16_png,
    "rgb16_png": write_rgb16_png,
    "palette_png": write_palette_png,
    "colorkey_png": write_colorkey_png,
    "rgba_png": write_rgba_png,
    "la_png": write_la_png,
    "gray_jpeg": write_gray_jpeg,
    "bilevel_png": write_bilevel_png,
    "png_named_jpg": write_png_named_jpg,
    "photo_jpeg": write_photo_jpeg,
    "empty_file": write_empty_file,
    "truncated_jpeg": write_truncated_jpeg,
    "text_as_jpg": write_text_as_jpg,
    "bomb_png": write_bomb_png,
}


def write_all(folder: str | Path) -> dict[str, Sample]:
    """Writes every sample (and one image per EXIF orientation 1..8) into `folder`."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    samples = {name: writer(folder) for name, writer in WRITERS.items()}
    for orientation in range(1, 9):
        samples[f"orientation_{orientation}"] = write_oriented(folder, orientation)
    return samples
