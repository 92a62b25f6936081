"""Validation: scan every row and image before training, and report what is wrong.

`scan_images` opens every image of an index once (its header, or a full decode
with `decode=True`), on a few threads, with a progress bar, and checks each
row's box against the image's displayed size. A JPEG behind a URL is checked
from its first bytes (`HEAD_BYTES`, a range read): its size and EXIF
orientation come before its pixels, so nothing more is downloaded unless
`decode=True`. Other formats behind URLs are read whole (a PNG's EXIF may
follow its pixel data). `ValidationReport` gathers
those problems with the ones found when the table was read: each with its
row, file, column, value, kind and message.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen import storage
from keras_roi_datagen.boxes import to_pixel_xyxy
from keras_roi_datagen.decode import (
    DecodeOptions,
    ImageProblem,
    clip_to_image,
    load_image,
    read_image_header,
    read_image_size,
)
from keras_roi_datagen.errors import Problem, StorageError
from keras_roi_datagen.index import RoiIndex
from keras_roi_datagen.progress import ProgressBar

__all__ = ["ValidationReport", "scan_images"]

_COLUMNS = ["severity", "kind", "row", "source", "path", "column", "value", "message"]


@dataclass
class ValidationReport:
    """Everything found wrong (or worth a look) in a table and its images.

    Args:
        problems: Errors (rows that cannot be used) and warnings (rows kept).
        n_rows: Rows read from the table.
        n_images: Distinct images checked.
        decoded: Whether images were fully decoded (else headers only).
        skipped: Whether the dataset now leaves the error rows out.
        retries: Requests for URLs that failed transiently and were retried
            while checking (see `keras_roi_datagen.storage`).

    Example:
    ```python
    report = ds.validate()
    if not report.ok:
        print(report.summary())
        report.to_frame().to_csv("problems.csv")
    ```
    """

    problems: list[Problem] = field(default_factory=list)
    n_rows: int = 0
    n_images: int = 0
    decoded: bool = False
    skipped: bool = False
    retries: int = 0

    @property
    def errors(self) -> list[Problem]:
        """Problems that make a row unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Things noticed but kept (stripped whitespace, duplicates, clipped boxes)."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """Whether no row has an error (warnings allowed)."""
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        """Returns one line per problem, with the columns of `Problem`."""
        records = [p.to_dict() for p in self.problems]
        return pd.DataFrame.from_records(records, columns=[*_COLUMNS, "details"])[_COLUMNS]

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as JSON-friendly data."""
        return {
            "ok": self.ok, "rows": self.n_rows, "images": self.n_images, "decoded": self.decoded,
            "errors": len(self.errors), "warnings": len(self.warnings), "retries": self.retries,
            "by_kind": dict(Counter(p.kind for p in self.problems)),
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self) -> str:
        """Returns `to_dict()` as JSON text."""
        return json.dumps(self.to_dict(), indent=1, default=str)

    def summary(self, limit: int = 20) -> str:
        """Returns a readable summary: counts per kind, then the first problems."""
        how = "decoded" if self.decoded else "headers read"
        lines = [f"{_count(self.n_rows, 'row')}, {_count(self.n_images, 'image')} ({how}): "
                 f"{_count(len(self.errors), 'error')}, {_count(len(self.warnings), 'warning')}."]
        if self.retries:
            lines.append(f"  {_count(self.retries, 'request')} to URLs retried after transient "
                         "failures.")
        for kind, count in Counter((p.severity, p.kind) for p in self.problems).most_common():
            lines.append(f"  {count:>6}  {kind[0]:<7}  {kind[1]}")
        for problem in self.problems[:limit]:
            lines.append(f"- [{problem.severity}] {problem.describe()}")
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more.")
        if self.errors and self.skipped:
            lines.append("Rows with errors are left out of the dataset (`ds.skipped`).")
        return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _progress(total: int, enabled: bool | Callable[[int, int], None]) -> Callable[[int], None]:
    """Counts checked images: into the caller's function, onto a `ProgressBar`, or nowhere."""
    done = [0]
    if callable(enabled):
        def report(count: int) -> None:
            done[0] += count
            enabled(done[0], total)

        return report
    if not enabled or total == 0:
        return lambda _: None
    bar = ProgressBar(total, "checking images")

    def advance(count: int) -> None:
        done[0] += count
        bar.update(done[0])

    return advance


# The first bytes of a URL that `validate()` reads when it needs only the header
# (a JPEG's size and EXIF lie before its scan data); then 16 times more, then the file.
HEAD_BYTES = 1 << 16
_HEADER_ONLY_FORMATS = ("JPEG", "MPO")


def _check_image(path: str, options: DecodeOptions, decode: bool) -> tuple[int, int] | ImageProblem:
    if not decode and storage.is_url(path):
        found = _check_url_header(path, options)
        if found is not None:
            return found
    try:
        with storage.prefetch([path], options.storage_options):  # a URL is read once, here
            size = read_image_size(path, options.max_image_pixels)
            if decode:
                load_image(path, DecodeOptions(
                    options.image_size, color_mode=options.color_mode,
                    max_image_pixels=options.max_image_pixels, fast=False))
        return size
    except ImageProblem as problem:
        return problem


def _check_url_header(path: str, options: DecodeOptions) -> tuple[int, int] | ImageProblem | None:
    """The displayed size of a remote image read from its first bytes; `None`: read it all.

    Only for JPEG files, whose size and EXIF orientation come before any
    pixel data; other formats (a PNG's EXIF may follow its pixels) are read
    whole. A header longer than the bytes read is read again with more.
    """
    for head in (HEAD_BYTES, HEAD_BYTES * 16):
        try:
            data: bytes | StorageError = storage.read_bytes(path, options.storage_options,
                                                            head=head)
        except StorageError as exc:
            data = exc  # reported as a whole-file read would report it
        whole = not isinstance(data, bytes) or len(data) != head
        with storage.serving({path: data}, options.storage_options):
            try:
                size, image_format = read_image_header(path, options.max_image_pixels)
            except ImageProblem as problem:
                if whole or problem.kind == "image_too_large":
                    return problem
                continue  # the header goes on past the bytes read
        if whole or image_format in _HEADER_ONLY_FORMATS:
            return size
        return None
    return None


def _row_problems(index: RoiIndex, rows: Sequence[int], found: tuple[int, int] | ImageProblem,
                  where: str) -> Iterable[tuple[int, Problem]]:
    if isinstance(found, ImageProblem):
        for row in rows:
            yield row, index.problem(row, found.kind, f"{found} ({where})", details=found.details)
        return
    width, height = found
    for row in rows:
        box = to_pixel_xyxy(index.boxes[row], index.relative, width, height)
        shown = tuple(round(v, 2) for v in box)
        try:
            inside = clip_to_image(box, found)
        except ImageProblem as outside:
            yield row, index.problem(row, outside.kind, str(outside), value=shown)
            continue
        if inside != box:
            yield row, index.problem(row, "box_clipped", (
                f"box {shown} (xyxy, pixels) reaches outside the {width}x{height} image; "
                "the part inside is used."), value=shown, severity="warning")


def scan_images(index: RoiIndex, options: DecodeOptions, *, decode: bool = False,
                progress: bool | Callable[[int, int], None] = True,
                threads: int = 4) -> list[tuple[int, Problem]]:
    """Opens every image of `index` once and checks the rows that use it.

    Args:
        index: The `RoiIndex`.
        options: Decode options (the pixel limit and colour mode apply).
        decode: Fully decode each image (finds truncated files); otherwise
            only headers and EXIF are read.
        progress: Show a progress bar on standard output (`progress.ProgressBar`),
            or call this `(images_done, images_total)` function as images are checked.
        threads: Threads reading images.

    Returns:
        `(index_row, problem)` pairs, one per affected row, in row order.
    """
    by_image = np.argsort(index.path_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(index.path_ids[by_image])) + 1
    groups = np.split(by_image, bounds) if len(by_image) else []
    where = "found by decoding" if decode else "found reading the image header"
    advance = _progress(len(groups), progress)
    found_all: list[tuple[int, Problem]] = []

    def check(rows: np.ndarray) -> list[tuple[int, Problem]]:
        found = _check_image(index.path_of(int(rows[0])), options, decode)
        return list(_row_problems(index, rows.tolist(), found, where))

    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="roi-validate") as pool:
        for found in pool.map(check, groups):
            found_all.extend(found)
            advance(1)
    found_all.sort(key=lambda pair: pair[0])
    return found_all
