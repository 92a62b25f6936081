"""The `keras-roi-datagen` command: look at your data before you train.

Commands (each has `--help` with an example):

- `demo DIR`: write the demo dataset (JPEG scenes and their VIA CSV export).
- `inspect TABLE`: what the table holds: rows, images, regions per image, box
  sizes, label counts, shape kinds, images without regions.
- `validate TABLE`: every problem of the table and its images, listed; exit
  status 0 when clean, 1 when problems are found, 2 on usage errors.
- `preview TABLE -o sheet.png`: a contact sheet of the crops as the model will
  see them, or (`--boxes`) of the source images with their boxes drawn.

`--version` prints `keras_roi_datagen.info()`: the versions, the Keras
backend, the decode path (the C region decoder or Pillow only, and why) and
the optional extras installed.

None of them imports Keras: the table is resolved and its index built with
`index.resolve_table` and `index.build_index`, and images are checked with
`validation.scan_images`, as `RoiDataset` does, so the command starts in well
under a second. Errors are one line on stderr
(`keras-roi-datagen: error: ...`); `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
import traceback
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NoReturn

from keras_roi_datagen.boxes import BoxFormat
from keras_roi_datagen.formats.registry import FORMATS
from keras_roi_datagen.options import BORDERS, COLOR_MODES, INTERPOLATIONS

if TYPE_CHECKING:
    import numpy as np

    from keras_roi_datagen.decode import DecodeOptions
    from keras_roi_datagen.errors import Problem
    from keras_roi_datagen.formats.registry import Source
    from keras_roi_datagen.index import IndexBuild, RoiIndex, TableSpec
    from keras_roi_datagen.labels import LabelVocabulary
    from keras_roi_datagen.progress import ProgressBar
    from keras_roi_datagen.summary import TableSummary
    from keras_roi_datagen.validation import ValidationReport

__all__ = ["UsageError", "build_parser", "main"]

PROG = "keras-roi-datagen"
_FORMATS = ("auto", *FORMATS)
_BOX_FORMATS = tuple(f.value for f in BoxFormat)
_PERCENTILES = {"min": 0, "p5": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95, "max": 100}
_MAX_CLASSES_SHOWN = 15


class UsageError(Exception):
    """The command line is wrong (bad option, table not found): exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line, raised as `UsageError`."""

    def error(self, message: str) -> NoReturn:
        """Raises `UsageError` instead of printing the usage and exiting."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Version(argparse.Action):
    """`--version`: prints `keras_roi_datagen.info()` (computed only when asked) and exits."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from keras_roi_datagen.about import info

        print(info())
        parser.exit()


# -- argument types ---------------------------------------------------------------------------


def _columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _four_columns(text: str) -> tuple[str, str, str, str]:
    columns = _columns(text)
    if len(columns) != 4:
        raise argparse.ArgumentTypeError(f"expected four column names, got {len(columns)}: {text!r}")
    return (columns[0], columns[1], columns[2], columns[3])


def _image_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("*", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 96x96, got {text!r}")
    return (sizes[0], sizes[1])


def _augment(text: str) -> Any:
    """`--augment`: JSON text, or the path of a JSON file, of `Augmentation` options."""
    import json

    from keras_roi_datagen.augment import parse_augmentation

    source = text
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as handle:
            source = handle.read()
    try:
        return parse_augmentation(json.loads(source))
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise argparse.ArgumentTypeError(
            f"expected augmentation options as JSON or a JSON file, such as "
            f"'{{\"zoom\": [0.9, 1.2], \"horizontal_flip\": true}}': {exc}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _row_labels(text: str) -> list[Hashable]:
    """Parses `--rows`: labels separated by commas; `a-b` is a range of line numbers."""
    labels: list[Hashable] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        if dash and first.isdigit() and last.isdigit():
            labels.extend(range(int(first), int(last) + 1))
        else:
            labels.append(int(part) if part.lstrip("-").isdigit() else part)
    if not labels:
        raise argparse.ArgumentTypeError(f"expected row labels such as 2,5,9 or 2-9, got {text!r}")
    return labels


# -- the parser -------------------------------------------------------------------------------


def _text(paragraph: str) -> str:
    return textwrap.fill(paragraph, 79)


def _epilog(*examples: str) -> str:
    return "example:\n" + "\n".join(f"  {PROG} {e}" for e in examples)


def _common_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of errors")
    return parent


def _table_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("table", metavar="TABLE",
                        help="annotations: a VIA export (CSV or JSON, VIA 1 to 3), COCO JSON, Label "
                             "Studio JSON, CVAT XML, Pascal VOC XML (file or folder), a YOLO dataset "
                             "(folder, data.yaml or one split's folder), a COCO, CVAT or Label "
                             "Studio export's folder, or a CSV table, one row per region")
    parent.add_argument("--format", default="auto", choices=_FORMATS,
                        help="annotation format of TABLE (default: auto, detected)")
    parent.add_argument("--image-dir", metavar="DIR",
                        help="folder the file names are relative to (default: the table's folder)")
    parent.add_argument("--y-cols", type=_columns, metavar="A,B",
                        help="label columns (default, as RoiDataset's: label for COCO, VOC, YOLO, "
                             "Label Studio and CVAT; otherwise name,type)")
    parent.add_argument("--x-col", default="filename", metavar="COL",
                        help="column of image file names in a plain CSV (default: filename)")
    parent.add_argument("--box-col", default="region_shape_attributes", metavar="COL",
                        help="column holding each box as a VIA shape or four numbers, in a plain "
                             "CSV (default: region_shape_attributes)")
    parent.add_argument("--box-cols", type=_four_columns, metavar="A,B,C,D",
                        help="four numeric box columns instead of --box-col")
    parent.add_argument("--box-format", choices=_BOX_FORMATS, default="xywh",
                        help="how four box numbers are read (default: xywh)")
    parent.add_argument("--allow-outside-image-dir", action="store_true",
                        help="accept file names that lead outside the image folder")
    parent.add_argument("--index-cache", metavar="DIR",
                        help="keep the compiled index in DIR and reuse it while the table is "
                             "unchanged (big tables)")
    return parent


def _add_demo(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "demo", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="write the demo dataset", description=_text("Writes JPEG scenes of coloured shapes and "
        "their VIA 2 CSV export (via_region_data.csv), labels `name` and `type`."),
        epilog=_epilog("demo data/ --images 40 --seed 1"))
    parser.add_argument("directory", metavar="DIR", help="where to write (created if missing)")
    parser.add_argument("--images", type=_positive, default=160, metavar="N",
                        help="number of images (default: 160, about 700 regions)")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything drawn (default: 0)")
    parser.set_defaults(handler=_cmd_demo)


def _add_inspect(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "inspect", parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="summarise a table: rows, images, box sizes, labels",
        description=_text("Reads the table (images are not opened) and reports rows, images, regions "
        "per image, box size percentiles, label counts per column, shape kinds and images "
        "without regions."),
        epilog=_epilog("inspect data/via_region_data.csv",
                       "inspect boxes.csv --y-cols species --box-cols x,y,w,h --json"))
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.set_defaults(handler=_cmd_inspect)


def _add_validate(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "validate", parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="list every problem of a table and its images",
        description=_text("Reads the table and every image header (with --decode, decodes every "
        "image), checks every box against its image and lists every problem found. Exit "
        "status: 0 when no row has an error, 1 when problems are found, 2 on usage errors."),
        epilog=_epilog("validate data/via_region_data.csv --decode",
                       "validate export.json --image-dir photos/ --json > problems.json"))
    parser.add_argument("--decode", action="store_true",
                        help="decode every image fully (finds truncated files; slower)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON only (the progress bar goes to stderr)")
    parser.add_argument("--limit", type=_count, default=50, metavar="N",
                        help="problems listed in the text report (default: 50; 0: all)")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (it is shown only when stderr is a terminal)")
    parser.set_defaults(handler=_cmd_validate)


def _add_preview(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "preview", parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="draw a contact sheet of the crops (or of the images with boxes)",
        description=_text("Writes a PNG contact sheet of the regions cropped and resized exactly as "
        "the model will see them, each captioned with its row and labels. Rows that cannot be "
        "decoded get a red tile naming the problem. With --boxes: the source images, scaled "
        "down, with every box drawn and labelled."),
        epilog=_epilog("preview data/via_region_data.csv --sample 24 -o sheet.png",
                       "preview data/via_region_data.csv --rows 2,5,9-12 --image-size 64x64 -o rows.png",
                       "preview data/via_region_data.csv --boxes --sample 4 -o boxes.png",
                       "preview data/via_region_data.csv --augment '{\"zoom\": [0.9, 1.2], "
                       "\"rotation\": 10}' --epoch 2 -o augmented.png"))
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--rows", type=_row_labels, metavar="R,R,...",
                       help="rows to draw, named as in the table (CSV line numbers; 9-12 is a range)")
    which.add_argument("--sample", type=_positive, metavar="N",
                       help="draw N rows sampled with --seed (default: 16; with --boxes, 6 images)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    parser.add_argument("--boxes", action="store_true",
                        help="draw the source images with their boxes instead of the crops")
    parser.add_argument("-o", "--output", required=True, metavar="PNG", help="the PNG file to write")
    parser.add_argument("--image-size", type=_image_size, default=(96, 96), metavar="HxW",
                        help="size of the crops, height x width (default: 96x96)")
    parser.add_argument("--interpolation", choices=INTERPOLATIONS, default="bilinear",
                        help="resampling filter (default: bilinear)")
    parser.add_argument("--color-mode", choices=tuple(COLOR_MODES), default="rgb",
                        help="colour mode of the crops (default: rgb)")
    parser.add_argument("--columns", type=_positive, metavar="N",
                        help="tiles per row of the sheet (default: a square-ish grid)")
    parser.add_argument("--max-width", type=_positive, default=480, metavar="PX",
                        help="widest an image is drawn with --boxes (default: 480)")
    parser.add_argument("--no-row-labels", dest="show_rows", action="store_false",
                        help="leave the row label out of the captions")
    parser.add_argument("--augment", type=_augment, metavar="JSON",
                        help="augment the crops: RoiDataset's augment= options as JSON text or a "
                        "JSON file; drawn from --seed and --epoch (the same seed gives the same sheet)")
    parser.add_argument("--epoch", type=int, default=0, metavar="N",
                        help="the epoch whose augmentation to show (default: 0)")
    parser.add_argument("--border", choices=BORDERS, default="constant",
                        help="what windows show beyond the image edge (default: constant)")
    parser.set_defaults(handler=_cmd_preview)


def build_parser() -> argparse.ArgumentParser:
    """Builds the `keras-roi-datagen` argument parser.

    Returns:
        The parser; parsed arguments carry a `handler(args) -> int`.
    """
    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_text("Look at a region-of-interest table (a VGG Image Annotator export or any "
        "CSV) before training on it."),
        epilog=_epilog("demo data/", "inspect data/via_region_data.csv",
                       "validate data/via_region_data.csv",
                       "preview data/via_region_data.csv -o sheet.png"))
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of errors")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print the version, the decode path (C region decoder or Pillow) "
                             "and what else is installed, then exit")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     parser_class=_Parser)
    commands.required = True
    common = _common_parent()
    table = [common, _table_parent()]
    _add_demo(commands, common)
    _add_inspect(commands, table)
    _add_validate(commands, table)
    _add_preview(commands, table)
    return parser


# -- reading the table ------------------------------------------------------------------------


@dataclass
class _ViaSurvey:
    """What one pass over a VIA file's records tells, before the index is built."""

    attribute_keys: list[str]
    shapes: Counter[str]


@dataclass
class _Table:
    """A table read for a command."""

    path: str
    format: str
    spec: TableSpec
    build: IndexBuild
    survey: _ViaSurvey | None


@dataclass
class _Summary:
    """A table counted for `inspect`."""

    path: str
    format: str
    spec: TableSpec
    summary: TableSummary
    survey: _ViaSurvey | None


@dataclass
class _Preview:
    """What `preview.contact_sheet` needs, without a `RoiDataset` (and so without Keras)."""

    index: RoiIndex
    options: DecodeOptions
    vocabularies: dict[str, LabelVocabulary]
    skipped: list[Problem]
    augment: Any = None
    seed: int = 0
    epoch: int = 0


def _table_path(args: argparse.Namespace) -> str:
    from keras_roi_datagen.storage import is_url

    path = str(os.fspath(args.table))
    if not is_url(path) and not os.path.exists(path):
        raise UsageError(f"annotation table not found: {path!r}")
    if args.image_dir is not None and not is_url(args.image_dir) and not os.path.isdir(args.image_dir):
        raise UsageError(f"--image-dir is not a folder: {args.image_dir!r}")
    return path


def _survey_via(path: str) -> _ViaSurvey:
    from keras_roi_datagen.formats import iter_via_records

    keys: dict[str, None] = {}
    shapes: Counter[str] = Counter()
    for record in iter_via_records(path, on_error="skip"):
        if record.problem is not None or not record.shape:
            continue
        keys.update(dict.fromkeys(k for k in record.attributes if k))
        shapes[str(record.shape.get("name", "?"))] += 1
    return _ViaSurvey(list(keys), shapes)


def _with_cli_hint(exc: Exception) -> Exception:
    """Says which options name the columns when the table lacks one."""
    from keras_roi_datagen.errors import RoiDatagenError

    if not isinstance(exc, RoiDatagenError) or not exc.problems:
        return exc
    first = exc.problems[0]
    if first.kind != "missing_column":
        return exc
    message = first.message.replace(" For four numeric box columns pass `box_cols=(...)`.", "")
    hinted = replace(first, message=message + " Name the columns with --x-col, --box-col or "
                     "--box-cols, and --y-cols.")
    return type(exc)(hinted.describe(), [hinted, *exc.problems[1:]])


@contextlib.contextmanager
def _cli_hints() -> Iterator[None]:
    """Re-raises a missing-column error with the options that name the columns."""
    try:
        yield
    except Exception as exc:
        hinted = _with_cli_hint(exc)
        if hinted is exc:
            raise
        raise hinted from exc


def _shown_format(source: Source) -> str:
    """The format `inspect` names: VIA's layout (e.g. `via2-csv`), `parquet` or `arrow`, or the kind."""
    from keras_roi_datagen.formats import detect_via_format

    assert source.local is not None
    if source.kind == "via":
        return detect_via_format(source.local) or "via"
    if source.kind == "columnar":
        return "parquet" if source.local.lower().endswith((".parquet", ".pq")) else "arrow"
    return source.kind


def _read_spec(args: argparse.Namespace, *, check_files: bool, shapes: bool,
               ) -> tuple[str, Source, str, TableSpec, _ViaSurvey | None]:
    """The table's path, `Source`, shown format, `TableSpec` and VIA survey, from the arguments.

    The options resolve as `RoiDataset`'s do (`index.resolve_table`): the same
    default label columns.
    """
    from keras_roi_datagen.formats.regions import SPLIT_COLUMN
    from keras_roi_datagen.index import resolve_table

    path = _table_path(args)
    source, spec = resolve_table(
        path, image_dir=args.image_dir, x_col=args.x_col, box_col=args.box_col,
        box_cols=args.box_cols, box_format=args.box_format, y_cols=args.y_cols,
        allow_outside_image_dir=args.allow_outside_image_dir, check_files=check_files,
        format=args.format, optional_cols=(SPLIT_COLUMN,))
    assert source.local is not None
    survey = _survey_via(source.local) if source.kind == "via" and shapes else None
    return path, source, _shown_format(source), spec, survey


def _load(args: argparse.Namespace, *, check_files: bool, shapes: bool = False,
          progress: bool = False) -> _Table:
    from keras_roi_datagen.index import build_index

    path, source, shown, spec, survey = _read_spec(args, check_files=check_files, shapes=shapes)
    bar = _bar(0, progress, "reading rows")
    with _cli_hints():
        build = build_index(source, spec, progress=bar.update_total if progress else None,
                            cache=getattr(args, "index_cache", None))
    return _Table(path, shown, spec, build, survey)


def _load_summary(args: argparse.Namespace) -> _Summary:
    """The table's `TableSummary`: counted by columns for a columnar file read without a cache.

    Anything else (a cache asked for, another format, a URL) builds the index
    and counts it; both give the same summary.
    """
    from keras_roi_datagen.summary import summarize

    path, source, shown, spec, survey = _read_spec(args, check_files=False, shapes=True)
    if getattr(args, "index_cache", None) is None and source.kind == "columnar" and not (
            source.is_url):
        from keras_roi_datagen.index.columns import columnar_box_cols
        from keras_roi_datagen.summary import summarize_columnar

        assert source.local is not None
        spec = replace(spec, image_dir=spec.image_dir or os.path.dirname(os.path.abspath(path)))
        box_cols = columnar_box_cols(source.local, spec)
        if box_cols is not None:
            bar = _bar(0, True, "reading rows")
            with _cli_hints():
                summary = summarize_columnar(source.local, spec, box_cols, path,
                                             progress=bar.update_total)
            return _Summary(path, shown, spec, summary, survey)
    table = _load(args, check_files=False, shapes=True, progress=True)
    return _Summary(table.path, table.format, table.spec, summarize(table.build), table.survey)


# -- demo -------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from keras_roi_datagen.demo import make_demo_dataset

    path = make_demo_dataset(args.directory, n_images=args.images, seed=args.seed)
    print(f"Wrote {args.images} images and their VIA export {path}")
    print(f"Next: {PROG} inspect {path}")
    return 0


# -- inspect ----------------------------------------------------------------------------------


def _percentiles(values: np.ndarray) -> dict[str, float]:
    """The box size percentiles; `values` ends up sorted (it is not used again)."""
    from keras_roi_datagen.summary import percentiles

    if not len(values):
        return {}
    found = percentiles(values, list(_PERCENTILES.values()), overwrite_input=True)
    return {name: float(v) for name, v in zip(_PERCENTILES, found.tolist())}


def _label_counts(summary: TableSummary, columns: Sequence[str]) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for column in columns:
        vocab = summary.vocabularies[column]
        found = summary.label_counts[column].tolist()
        pairs = sorted(zip(vocab.decode(range(vocab.num_classes)), found), key=lambda p: -p[1])
        counts[column] = {str(label): int(n) for label, n in pairs}
    return counts


def _split_counts(summary: TableSummary, spec: TableSpec) -> dict[str, int]:
    """Rows per split, when the table says which split each row is in (its `split` column)."""
    from keras_roi_datagen.formats.regions import SPLIT_COLUMN, SPLITS, split_name

    if SPLIT_COLUMN not in summary.vocabularies or SPLIT_COLUMN in spec.y_cols:
        return {}
    counts: Counter[str] = Counter()
    vocab = summary.vocabularies[SPLIT_COLUMN]
    for value, n in zip(vocab.classes, summary.label_counts[SPLIT_COLUMN].tolist()):
        counts[split_name(value) or str(value)] += int(n)
    return dict(sorted(counts.items(), key=lambda p: SPLITS.index(p[0]) if p[0] in SPLITS else 3))


def _generic_shapes(table: _Summary) -> dict[str, int]:
    from keras_roi_datagen.formats import read_raw_table
    from keras_roi_datagen.formats.via_records import parse_box_cell

    spec = table.spec
    from keras_roi_datagen.formats.columnar import is_columnar
    from keras_roi_datagen.storage import is_url

    if spec.box_cols or is_columnar(table.path):
        return {f"four columns ({spec.box_format.value})": table.summary.n_rows}
    if is_url(table.path):
        return {}
    frame = read_raw_table(table.path, format=spec.format, on_error="skip")
    if spec.box_col not in frame.columns and "shape" in frame.columns:  # a region frame
        return dict(Counter(str(v) for v in frame["shape"].tolist()).most_common())
    shapes: Counter[str] = Counter()
    for value in frame[spec.box_col].tolist():
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                value = parse_box_cell(value)
            except ValueError:
                value = None
        if isinstance(value, dict):
            shapes[str(value.get("name", "?"))] += 1
        elif value is not None:
            shapes[f"four numbers ({spec.box_format.value})"] += 1
    return dict(shapes.most_common())


def _missing_images(summary: TableSummary) -> tuple[int, int]:
    import numpy as np

    from keras_roi_datagen.storage import is_url

    per_image = summary.regions_per_image
    paths = summary.paths.tolist()
    missing = [int(i) for i in np.flatnonzero(per_image).tolist()
               if not is_url(paths[i]) and not os.path.isfile(paths[i])]
    return len(missing), int(per_image[missing].sum())


def _inspect_facts(table: _Summary) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    build = table.summary
    per_image = build.regions_per_image[build.regions_per_image > 0]
    with ThreadPoolExecutor(2) as pool:  # sorts and stats let go of the GIL: 10^8 boxes, 10^6 files
        widths, heights = (pool.submit(_percentiles, build.widths),
                           pool.submit(_percentiles, build.heights))
        missing_images, missing_rows = _missing_images(build)
    shapes = dict(table.survey.shapes.most_common()) if table.survey else _generic_shapes(table)
    return {
        "table": table.path, "format": table.format, "rows": build.n_rows,
        "usable_rows": build.usable_rows, "images": len(per_image),
        "y_cols": list(table.spec.y_cols),
        **({"region_attributes": table.survey.attribute_keys} if table.survey else {}),
        "images_missing": missing_images, "rows_with_missing_image": missing_rows,
        "regions_per_image": {"min": int(per_image.min()), "median": float(np.median(per_image)),
                              "max": int(per_image.max())} if len(per_image) else {},
        "box_unit": "fraction of the image" if build.relative else "pixels",
        "box_width": widths.result(),
        "box_height": heights.result(),
        "labels": _label_counts(build, table.spec.y_cols),
        "splits": _split_counts(build, table.spec),
        "shape_kinds": shapes,
        "rows_without_regions": [dict(r) for r in build.rows_without_regions],
        "errors": dict(Counter(p.kind for p in build.errors).most_common()),
        "warnings": dict(Counter(p.kind for p in build.problems if p.severity == "warning")),
    }


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _number(value: float, relative: bool) -> str:
    return f"{value:.3f}" if relative else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in counts.items())


def _render_boxes(facts: dict[str, Any]) -> list[str]:
    relative = facts["box_unit"] != "pixels"
    if not facts["box_width"]:
        return []
    head = f"box size ({facts['box_unit']})"
    width = max(22, len(head) + 1)
    lines = [f"{head:<{width}}" + "".join(f"{name:>8}" for name in _PERCENTILES)]
    for what in ("width", "height"):
        values = facts[f"box_{what}"]
        lines.append(f"{'  ' + what:<{width}}"
                     + "".join(f"{_number(values[n], relative):>8}" for n in _PERCENTILES))
    return lines


def _render_labels(facts: dict[str, Any]) -> list[str]:
    lines = []
    for column, counts in facts["labels"].items():
        lines.append(f"label {column!r} ({_plural(len(counts), 'class', 'classes')})")
        shown = list(counts.items())[:_MAX_CLASSES_SHOWN]
        width = max(len(label) for label, _ in shown) if shown else 0
        lines.extend(f"  {label:<{width}}  {count:>7}" for label, count in shown)
        if len(counts) > len(shown):
            lines.append(f"  ... and {len(counts) - len(shown)} more classes (--json lists all)")
    return lines


def _render_inspect(facts: dict[str, Any]) -> str:
    per = facts["regions_per_image"]
    without = facts["rows_without_regions"]
    listed = "; ".join(f"line {r['row']} {r['filename']}" for r in without[:5])
    lines = [
        f"{'table':<22}{facts['table']} ({facts['format']})",
        f"{'regions':<22}{_plural(facts['rows'], 'row')}, {facts['usable_rows']} usable, "
        f"in {_plural(facts['images'], 'image')}",
        f"{'image files':<22}{facts['images'] - facts['images_missing']} found, "
        f"{facts['images_missing']} missing"
        + (f" ({_plural(facts['rows_with_missing_image'], 'row')})" if facts["images_missing"] else ""),
        f"{'regions per image':<22}" + (f"min {per['min']}, median {per['median']:g}, "
                                         f"max {per['max']}" if per else "-"),
        f"{'shape kinds':<22}{_kinds(facts['shape_kinds']) or '-'}",
        *([f"{'splits':<22}{_kinds(facts['splits'])} rows (the table's own)"]
          if facts["splits"] else []),
        f"{'label columns':<22}{', '.join(facts['y_cols']) or '-'} (choose with --y-cols)",
        *([f"{'region attributes':<22}{', '.join(facts['region_attributes']) or '-'}"]
          if "region_attributes" in facts else []),
        f"{'images w/o regions':<22}{len(without)}" + (f" ({listed}"
                                                        f"{', ...' if len(without) > 5 else ''})"
                                                        if without else ""),
        "", *_render_boxes(facts), "", *_render_labels(facts), "",
    ]
    if facts["errors"]:
        lines.append(f"{'rows left out':<22}{sum(facts['errors'].values())} "
                     f"({_kinds(facts['errors'])}); `{PROG} validate` lists them")
    if facts["warnings"]:
        lines.append(f"{'warnings':<22}{_kinds(facts['warnings'])}")
    if not facts["errors"]:
        lines.append(f"No problems reading the table; `{PROG} validate` also checks the images.")
    return "\n".join(lines)


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    facts = _inspect_facts(_load_summary(args))
    print(json.dumps(facts, indent=1, default=str) if args.json else _render_inspect(facts))
    return 0


# -- validate ---------------------------------------------------------------------------------


def _bar(total: int, enabled: bool, label: str = "checking images") -> ProgressBar:
    """The command line's progress bar: on stderr, drawn only when stderr is a terminal."""
    from keras_roi_datagen.progress import ProgressBar

    return ProgressBar(total, label, stream=sys.stderr, only_on_terminal=True, enabled=enabled)


def _scan(index: RoiIndex, options: DecodeOptions, decode: bool, progress: bool,
          ) -> list[tuple[int, Problem]]:
    """Runs `scan_images` with this module's progress bar on stderr (no Keras import)."""
    import numpy as np

    from keras_roi_datagen.validation import scan_images

    images = int(np.count_nonzero(np.bincount(index.path_ids))) if len(index) else 0
    bar = _bar(images, progress)
    return scan_images(index, options, decode=decode, progress=lambda done, _: bar.update(done),
                       threads=min(8, os.cpu_count() or 4))


def _print_report(report: ValidationReport, args: argparse.Namespace,
                  without: Sequence[dict[str, Any]]) -> int:
    failed = not report.ok or (args.strict and bool(report.warnings))
    if args.json:
        print(report.to_json())
        return 1 if failed else 0
    limit = args.limit or max(1, len(report.problems))
    print(report.summary(limit))
    if without:
        print(f"{len(without)} image(s) listed without regions (not errors): "
              + ", ".join(str(r["filename"]) for r in without[:5]) + (", ..." if len(without) > 5 else ""))
    print(("Problems found." if failed else "OK.") + (" (warnings count with --strict)"
                                                      if report.warnings and not args.strict else ""))
    return 1 if failed else 0


def _decode_options(args: argparse.Namespace) -> DecodeOptions:
    from keras_roi_datagen.decode import DecodeOptions

    return DecodeOptions.from_arguments(
        getattr(args, "image_size", (96, 96)),
        interpolation=getattr(args, "interpolation", "bilinear"),
        color_mode=getattr(args, "color_mode", "rgb"), border=getattr(args, "border", "constant"))


def _cmd_validate(args: argparse.Namespace) -> int:
    import numpy as np

    from keras_roi_datagen.errors import Problem, RoiDatagenError
    from keras_roi_datagen.validation import ValidationReport

    try:
        table = _load(args, check_files=True)
    except RoiDatagenError as exc:  # the whole table is unusable: report it, exit 1
        problems = exc.problems or [Problem("table_unreadable", str(exc), source=args.table)]
        return _print_report(ValidationReport(list(problems)), args, [])
    build = table.build
    found = _scan(build.index, _decode_options(args), args.decode, args.progress)
    report = ValidationReport(
        [*build.problems, *(problem for _, problem in found)], n_rows=build.n_rows,
        n_images=len(np.unique(build.index.path_ids)), decoded=args.decode)
    return _print_report(report, args, build.rows_without_regions)


# -- preview ----------------------------------------------------------------------------------


def _cmd_preview(args: argparse.Namespace) -> int:
    from keras_roi_datagen.preview import render_sheet

    table = _load(args, check_files=False)
    source = _Preview(table.build.index, _decode_options(args), table.build.vocabularies,
                      table.build.errors, args.augment, args.seed, args.epoch)
    n = args.sample or (6 if args.boxes else 16)
    try:
        sheet = render_sheet(source, n, rows=args.rows, seed=args.seed, columns=args.columns,
                             boxes=args.boxes, show_rows=args.show_rows, max_width=args.max_width)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from exc
    sheet.image.save(args.output, format="PNG")
    width, height = sheet.image.size
    what = "images" if args.boxes else "regions"
    print(f"Wrote {args.output}: {len(sheet.tiles)} {what}, {width}x{height} pixels.")
    for tile in sheet.errors:
        assert tile.problem is not None
        print(f"  error tile ({tile.problem.kind}): {tile.problem.describe()}", file=sys.stderr)
    return 0


# -- main -------------------------------------------------------------------------------------


def _error_line(exc: BaseException) -> str:
    problems = getattr(exc, "problems", None)
    if problems:
        more = f" (and {len(problems) - 1} more; `{PROG} validate` lists them)" if len(problems) > 1 else ""
        return str(problems[0].describe()) + more
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename!r}"
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _fail(exc: BaseException, debug: bool, code: int, hint: str = "") -> int:
    if debug:
        traceback.print_exception(exc)
    print(f"{PROG}: error: {_error_line(exc)}{hint}", file=sys.stderr)
    return code


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from keras_roi_datagen.errors import RoiDatagenError

    try:
        return int(handler(args))
    except (UsageError, KeyboardInterrupt):
        raise
    except (RoiDatagenError, OSError, ValueError) as exc:
        return _fail(exc, args.debug, 1)
    except Exception as exc:
        return _fail(exc, args.debug, 1, f" ({type(exc).__name__}; --debug shows the traceback)")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `keras-roi-datagen` command line.

    Args:
        argv: The arguments, without the program name. Defaults to `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success (`validate`: no problems), 1 when the
        data has problems, 2 on usage errors.

    Example:
    ```python
    from keras_roi_datagen.cli import main
    status = main(["validate", "via_region_data.csv", "--json"])
    ```
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    try:
        args = build_parser().parse_args(arguments)
        return _run(args.handler, args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    except UsageError as exc:
        return _fail(exc, debug, 2)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
