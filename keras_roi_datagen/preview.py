"""Contact sheets: look at the regions as the model will see them, before training.

`contact_sheet` draws a grid of tiles, one per table row: the crop decoded
exactly as batches are (`batching.decode_rows` with the dataset's
`DecodeOptions`: same size, interpolation and colour mode), captioned with the
row's label in the table and its labels. A row that cannot be decoded (its
image is missing, say) gets a red tile naming the problem kind instead of
stopping the sheet. A source with an `augment` attribute (a dataset built with
`augment=`, or the command line's `--augment`) has its crops augmented as in
its `epoch`, drawn from its `seed`. With `boxes=True` the sheet shows the source images
instead, scaled down, with every box drawn and labelled.

This module imports NumPy and Pillow only, never Keras: the command line's
`preview` builds the index itself and passes it here without starting a backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_roi_datagen.batching import decode_rows
from keras_roi_datagen.boxes import clip_box, to_pixel_xyxy
from keras_roi_datagen.decode import DecodeOptions, ImageProblem, load_image
from keras_roi_datagen.errors import Problem
from keras_roi_datagen.index import RoiIndex
from keras_roi_datagen.labels import LabelVocabulary

__all__ = [
    "CAPTION_GAP",
    "LINE_HEIGHT",
    "PAD",
    "PreviewSource",
    "Sheet",
    "SheetLayout",
    "Tile",
    "contact_sheet",
    "render_sheet",
]

PAD = 6
"""Pixels between tiles and around the sheet."""
LINE_HEIGHT = 12
"""Pixels per caption line (Pillow's default font, size 10)."""
CAPTION_GAP = 2
"""Pixels between a tile's picture and its caption."""
MIN_TILE_SIDE = 64
"""Crops whose longer side is shorter are enlarged by a whole factor (nearest neighbour)."""

_BACKGROUND = (32, 32, 32)
_TEXT = (235, 235, 235)
_ERROR_FILL = (178, 34, 34)
_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


class PreviewSource(Protocol):
    """What a contact sheet needs from a dataset; `RoiDataset` has all of it.

    Attributes:
        index: The usable rows.
        options: How regions are decoded (size, interpolation, colour mode).
        vocabularies: One vocabulary per label column, in caption order.
        skipped: Rows left out, with their problem; a requested row found
            here gets an error tile.
    """

    @property
    def index(self) -> RoiIndex: ...  # noqa: D102

    @property
    def options(self) -> DecodeOptions: ...  # noqa: D102

    @property
    def vocabularies(self) -> Mapping[str, LabelVocabulary]: ...  # noqa: D102

    @property
    def skipped(self) -> Sequence[Problem]: ...  # noqa: D102


@dataclass(frozen=True)
class Tile:
    """One tile of a sheet: a row of the table, or one image with `boxes=True`.

    Args:
        row: The row's label in the table (CSV line number, DataFrame index
            label); for an image tile, the first requested row of the image.
        position: The row's position in the index, or `None` when the row was
            left out when the table was read.
        problem: Why the tile shows an error instead of pixels, if it does.
        caption: The caption lines drawn under the tile.
    """

    row: Any
    position: int | None
    problem: Problem | None = None
    caption: tuple[str, ...] = ()


@dataclass(frozen=True)
class SheetLayout:
    """Where each tile goes on a sheet: a grid of equal cells.

    Args:
        cell_width: Width of a tile's picture, in sheet pixels.
        picture_height: Height of a tile's picture, in sheet pixels.
        caption_lines: Caption lines under each picture.
        count: Number of tiles.
        columns: Tiles per grid row.
    """

    cell_width: int
    picture_height: int
    caption_lines: int
    count: int
    columns: int

    @property
    def cell_height(self) -> int:
        """Height of a cell: the picture and its caption."""
        caption = CAPTION_GAP + self.caption_lines * LINE_HEIGHT if self.caption_lines else 0
        return self.picture_height + caption

    @property
    def grid_rows(self) -> int:
        """Number of grid rows."""
        return max(1, -(-self.count // self.columns))

    @property
    def size(self) -> tuple[int, int]:
        """`(width, height)` of the whole sheet."""
        return (self.columns * self.cell_width + (self.columns + 1) * PAD,
                self.grid_rows * self.cell_height + (self.grid_rows + 1) * PAD)

    def origin(self, k: int) -> tuple[int, int]:
        """Returns the top-left `(x, y)` of tile `k`'s picture."""
        row, column = divmod(k, self.columns)
        return (PAD + column * (self.cell_width + PAD), PAD + row * (self.cell_height + PAD))


@dataclass
class Sheet:
    """A rendered sheet with what is on it.

    Args:
        image: The sheet (RGB).
        layout: Where each tile is.
        tiles: The tiles, in grid order (left to right, top to bottom).
        zoom: Whole factor the crops were enlarged by (1: pixels as decoded).
    """

    image: Image.Image
    layout: SheetLayout
    tiles: list[Tile] = field(default_factory=list)
    zoom: int = 1

    @property
    def errors(self) -> list[Tile]:
        """The tiles that show a problem instead of pixels."""
        return [t for t in self.tiles if t.problem is not None]


def contact_sheet(
    source: PreviewSource,
    n: int = 16,
    *,
    rows: Sequence[Hashable] | None = None,
    seed: int = 0,
    columns: int | None = None,
    boxes: bool = False,
    show_rows: bool = True,
    max_width: int = 480,
    zoom: int | None = None,
) -> Image.Image:
    """Draws the regions of a dataset as the model will see them, captioned.

    Args:
        source: A `RoiDataset` (or anything with its `index`, `options`,
            `vocabularies` and `skipped`).
        n: How many rows to draw, sampled without replacement with `seed`
            (all of them when there are fewer); with `boxes=True`, how many
            images. Ignored when `rows` is given. Defaults to 16.
        rows: Row labels to draw, as the table names them (CSV line
            numbers, DataFrame index labels), in this order. A row that was
            left out when the table was read gets an error tile.
        seed: Seed of the sample. Defaults to 0.
        columns: Tiles per grid row. Defaults to a square-ish grid.
        boxes: Draw the source images (scaled down to `max_width`) with
            every box outlined and labelled, instead of the crops.
        show_rows: Put each row's label in its caption. Defaults to `True`.
        max_width: Widest an image may be drawn with `boxes=True`.
        zoom: Whole factor to enlarge crops by (nearest neighbour, so each
            decoded pixel stays one flat square). Defaults to the smallest
            factor that makes a crop at least 64 pixels wide or high.

    Returns:
        The sheet, an RGB `PIL.Image.Image` (save it, or show it in a notebook).

    Raises:
        KeyError: If a label in `rows` is not a row of the table.
        ValueError: If the dataset has no usable rows and no `rows` are given,
            or `n`, `columns` or `zoom` is not positive.

    Example:
    ```python
    ds = RoiDataset("via_region_data.csv", image_size=(96, 96))
    contact_sheet(ds, 16, seed=1).save("sheet.png")
    contact_sheet(ds, rows=[2, 3, 7], boxes=True)  # the images, boxes drawn
    ```
    """
    return render_sheet(source, n, rows=rows, seed=seed, columns=columns, boxes=boxes,
                        show_rows=show_rows, max_width=max_width, zoom=zoom).image


def render_sheet(
    source: PreviewSource,
    n: int = 16,
    *,
    rows: Sequence[Hashable] | None = None,
    seed: int = 0,
    columns: int | None = None,
    boxes: bool = False,
    show_rows: bool = True,
    max_width: int = 480,
    zoom: int | None = None,
) -> Sheet:
    """Like `contact_sheet`, but returns the `Sheet`: the image with its layout and tiles.

    Args:
        source: See `contact_sheet`.
        n: See `contact_sheet`.
        rows: See `contact_sheet`.
        seed: See `contact_sheet`.
        columns: See `contact_sheet`.
        boxes: See `contact_sheet`.
        show_rows: See `contact_sheet`.
        max_width: See `contact_sheet`.
        zoom: See `contact_sheet`.

    Returns:
        The `Sheet`.

    Raises:
        KeyError: See `contact_sheet`.
        ValueError: See `contact_sheet`.
    """
    for name, value in (("n", n), ("columns", columns), ("zoom", zoom), ("max_width", max_width)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    picks = _pick_rows(source, rows) if rows is not None else None
    if boxes:
        return _box_sheet(source, picks, n, seed, columns, show_rows, max_width)
    if picks is None:
        picks = _sample(source.index, n, seed)
    return _crop_sheet(source, picks, columns, show_rows, zoom)


# -- choosing rows ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _pick_rows(source: PreviewSource, rows: Sequence[Hashable]) -> list[Tile]:
    index = source.index
    positions = {_plain(label): k for k, label in enumerate(index.rows.tolist())}
    left_out = {_plain(p.row): p for p in source.skipped if p.row is not None}
    picks = []
    for label in rows:
        label = _plain(label)
        if label in positions:
            picks.append(Tile(label, positions[label]))
        elif label in left_out:
            picks.append(Tile(label, None, left_out[label]))
        else:
            where = f" of {index.source}" if index.source else ""
            raise KeyError(f"row {label!r} is not a region row{where} (rows are named as in the "
                           "table: CSV line numbers or DataFrame index labels).")
    return picks


def _sample(index: RoiIndex, n: int, seed: int) -> list[Tile]:
    if len(index) == 0:
        raise ValueError("the dataset has no usable rows to draw.")
    chosen = np.random.default_rng(seed).choice(len(index), size=min(n, len(index)), replace=False)
    return [Tile(index.row_label(k), k) for k in sorted(chosen.tolist())]


def _default_columns(count: int) -> int:
    return max(1, min(count, math.ceil(math.sqrt(count))))


# -- text -------------------------------------------------------------------------------------


def _font() -> Font:
    return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> str:
    """Trims `text` with '..' until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".." if text else ""


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int, lines: int) -> list[str]:
    """Breaks `text` at spaces and underscores into at most `lines` lines of `width`."""
    words = text.replace("_", "_ ").split()
    out: list[str] = []
    for word in words:
        joined = (out[-1] + ("" if out[-1].endswith("_") else " ") + word) if out else word
        if out and draw.textlength(joined, font=font) <= width:
            out[-1] = joined
        else:
            out.append(word)
    if len(out) > lines:
        out = [*out[: lines - 1], " ".join(out[lines - 1:])]
    return [_fit(draw, line, font, width) for line in out]


def _row_text(index: RoiIndex, row: Any) -> str:
    is_csv = index.source is not None and str(index.source).lower().endswith(".csv")
    return f"line {row}" if is_csv else f"row {row}"


def _labels(source: PreviewSource, position: int) -> list[tuple[str, str]]:
    index = source.index
    return [(column, str(vocab.decode([int(index.codes[column][position])])[0]))
            for column, vocab in source.vocabularies.items()]


def _caption(source: PreviewSource, tile: Tile, show_rows: bool) -> tuple[str, ...]:
    lines = [_row_text(source.index, tile.row)] if show_rows else []
    if tile.problem is not None or tile.position is None:
        problem = tile.problem
        lines.append(f"error: {problem.kind}" if problem else "error")
        if problem is not None and problem.path:
            lines.append(os.path.basename(problem.path))
        return tuple(lines)
    return (*lines, *(f"{column}: {value}" for column, value in _labels(source, tile.position)))


def _draw_caption(draw: ImageDraw.ImageDraw, font: Font, lines: Sequence[str], x: int, y: int,
                  width: int) -> None:
    for k, line in enumerate(lines):
        if ": " in line and draw.textlength(line, font=font) > width:
            line = line.split(": ", 1)[1]  # the value alone, when "column: value" is too wide
        draw.text((x, y + k * LINE_HEIGHT), _fit(draw, line, font, width), font=font, fill=_TEXT)


def _error_picture(size: tuple[int, int], kind: str, font: Font) -> Image.Image:
    picture = Image.new("RGB", size, _ERROR_FILL)
    draw = ImageDraw.Draw(picture)
    lines = ["error", *_wrap(draw, kind, font, size[0] - 4, max(1, size[1] // LINE_HEIGHT - 1))]
    top = max(0, (size[1] - len(lines) * LINE_HEIGHT) // 2)
    for k, line in enumerate(lines):
        draw.text((2, top + k * LINE_HEIGHT), line, font=font, fill=(255, 255, 255))
    return picture


# -- crops ------------------------------------------------------------------------------------


def _auto_zoom(options: DecodeOptions) -> int:
    return max(1, math.ceil(MIN_TILE_SIDE / max(options.image_size)))


def _to_rgb(pixels: np.ndarray) -> Image.Image:
    """Turns one decoded crop into an RGB picture (grey is repeated, alpha is dropped)."""
    if pixels.shape[-1] == 1:
        return Image.fromarray(np.ascontiguousarray(pixels[..., 0]), "L").convert("RGB")
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")


def _decode_tiles(source: PreviewSource, picks: list[Tile]) -> tuple[np.ndarray, list[Tile]]:
    """Decodes the picked rows in one job, as batches are (`batching.decode_rows`).

    A row that fails becomes its tile's problem instead of stopping the sheet.
    """
    decodable = [k for k, tile in enumerate(picks) if tile.position is not None]
    positions = np.asarray([picks[k].position for k in decodable], dtype=np.int64)
    if not len(positions):
        return np.zeros((0, 1, 1, 3), np.uint8), picks
    decoded = decode_rows(  # a dataset's augmentation, as in its current epoch
        source.index, source.options, positions, augment=getattr(source, "augment", None),
        seed=getattr(source, "seed", 0), epoch=getattr(source, "epoch", 0))
    picks = list(picks)
    for position, problem in decoded.problems.items():
        k = decodable[position]
        picks[k] = Tile(picks[k].row, picks[k].position, problem)
    pixels = np.zeros((len(picks), *decoded.pixels.shape[1:]), np.uint8)
    pixels[decodable] = decoded.pixels
    return pixels, picks


def _crop_sheet(source: PreviewSource, picks: list[Tile], columns: int | None, show_rows: bool,
                zoom: int | None) -> Sheet:
    pixels, picks = _decode_tiles(source, picks)
    picks = [Tile(t.row, t.position, t.problem, _caption(source, t, show_rows)) for t in picks]
    zoom = zoom or _auto_zoom(source.options)
    height, width = source.options.image_size
    size = (width * zoom, height * zoom)
    layout = SheetLayout(size[0], size[1], max((len(t.caption) for t in picks), default=0),
                         len(picks), columns or _default_columns(len(picks)))
    sheet = Image.new("RGB", layout.size, _BACKGROUND)
    draw, font = ImageDraw.Draw(sheet), _font()
    for k, tile in enumerate(picks):
        x, y = layout.origin(k)
        if tile.problem is not None:
            picture = _error_picture(size, tile.problem.kind, font)
        else:
            picture = _to_rgb(pixels[k])
            if zoom > 1:
                picture = picture.resize(size, Image.Resampling.NEAREST)
        sheet.paste(picture, (x, y))
        _draw_caption(draw, font, tile.caption, x, y + size[1] + CAPTION_GAP, size[0])
    return Sheet(sheet, layout, picks, zoom)


# -- source images with boxes -----------------------------------------------------------------


def _images_of(source: PreviewSource, picks: list[Tile] | None, n: int, seed: int,
               ) -> list[tuple[int | None, Tile]]:
    """Chooses images: those of the picked rows (in order), else `n` sampled ones."""
    index = source.index
    if picks is None:
        if len(index) == 0:
            raise ValueError("the dataset has no usable rows to draw.")
        ids = np.unique(index.path_ids)
        chosen = sorted(np.random.default_rng(seed).choice(
            ids, size=min(n, len(ids)), replace=False).tolist())
        first = {pid: int(np.flatnonzero(index.path_ids == pid)[0]) for pid in chosen}
        return [(pid, Tile(index.row_label(first[pid]), first[pid])) for pid in chosen]
    seen: set[int] = set()
    images: list[tuple[int | None, Tile]] = []
    for tile in picks:
        if tile.position is None:
            images.append((None, tile))
            continue
        pid = int(index.path_ids[tile.position])
        if pid not in seen:
            seen.add(pid)
            images.append((pid, tile))
    return images


def _load_scaled(path: str, options: DecodeOptions, max_width: int) -> tuple[Image.Image, float]:
    rgb = DecodeOptions(options.image_size, color_mode="rgb",
                        max_image_pixels=options.max_image_pixels, fast=False)
    image, _, _ = load_image(path, rgb)
    scale = min(1.0, max_width / image.width, max_width / image.height)
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
        return image, scale
    return image.copy(), 1.0


def _draw_boxes(picture: Image.Image, source: PreviewSource, pid: int, full: tuple[int, int],
                scale: float, font: Font) -> int:
    """Outlines and labels every box of image `pid`; returns how many were drawn."""
    index = source.index
    draw = ImageDraw.Draw(picture)
    first = next(iter(source.vocabularies), None)
    members = np.flatnonzero(index.path_ids == pid).tolist()
    for position in members:
        box = clip_box(to_pixel_xyxy(index.boxes[position], index.relative, *full), *full)
        if box is None:
            continue
        x0, y0, x1, y1 = (v * scale for v in box)
        code = int(index.codes[first][position]) if first else position
        colour = _PALETTE[code % len(_PALETTE)]
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        text = "/".join(value for _, value in _labels(source, position)) or _row_text(
            index, index.row_label(position))
        text = _fit(draw, text, font, max(24, picture.width - int(x0) - 2))
        top = y0 - LINE_HEIGHT if y0 >= LINE_HEIGHT else y0
        draw.rectangle((x0, top, x0 + draw.textlength(text, font=font) + 3, top + LINE_HEIGHT - 1),
                       fill=colour)
        draw.text((x0 + 2, top - 1), text, font=font, fill=(255, 255, 255))
    return len(members)


def _box_picture(source: PreviewSource, pid: int | None, tile: Tile, max_width: int, font: Font,
                 ) -> tuple[Image.Image | None, Tile]:
    index = source.index
    if pid is None:
        return None, tile
    path = str(index.paths[pid])
    try:
        picture, scale = _load_scaled(path, source.options, max_width)
    except ImageProblem as problem:
        assert tile.position is not None
        return None, Tile(tile.row, tile.position, index.problem(tile.position, problem.kind,
                                                                 str(problem)))
    full = (round(picture.width / scale), round(picture.height / scale))
    count = _draw_boxes(picture, source, pid, full, scale, font)
    caption = f"{os.path.basename(path)} ({count} region{'s' if count != 1 else ''})"
    return picture, Tile(tile.row, tile.position, None, (caption,))


def _box_sheet(source: PreviewSource, picks: list[Tile] | None, n: int, seed: int,
               columns: int | None, show_rows: bool, max_width: int) -> Sheet:
    font = _font()
    drawn = [_box_picture(source, pid, tile, max_width, font)
             for pid, tile in _images_of(source, picks, n, seed)]
    width = max([p.width for p, _ in drawn if p is not None] or [max_width // 2])
    height = max([p.height for p, _ in drawn if p is not None] or [max_width // 3])
    tiles = [tile if picture is not None else Tile(tile.row, tile.position, tile.problem,
                                                   _caption(source, tile, show_rows))
             for picture, tile in drawn]
    layout = SheetLayout(width, height, max((len(t.caption) for t in tiles), default=0),
                         len(tiles), columns or _default_columns(len(tiles)))
    sheet = Image.new("RGB", layout.size, _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for k, ((picture, _), tile) in enumerate(zip(drawn, tiles)):
        x, y = layout.origin(k)
        if picture is None:
            kind = tile.problem.kind if tile.problem else "error"
            picture = _error_picture((width, min(height, 4 * LINE_HEIGHT + 8)), kind, font)
        sheet.paste(picture, (x, y))
        _draw_caption(draw, font, tile.caption, x, y + height + CAPTION_GAP, width)
    return Sheet(sheet, layout, tiles)
