"""`RoiDataModule`: one object from an annotation table to the datasets of every stage.

Modelled on Lightning's `LightningDataModule`: `prepare_data()` checks,
`setup(stage)` builds splits and vocabularies (idempotent), and one accessor
per split returns a `RoiDataset`. The table is read and checked once, by the
same road `RoiDataset(path)` takes (`index.resolve_table`, `index.build_index`:
VIA files streamed, columnar tables by columns, `index_cache=` honoured); the
splits share that read.

Splits keep an image's regions together (no photo in two splits), may be
stratified on a label column, and are deterministic from the seed. A table
that says which split each row belongs to (a `split` column, or an export's
own splits: YOLO `data.yaml`, COCO `instances_<split>.json` or split folders,
Roboflow's `train/`, `valid/`, `test/`, CVAT subsets) keeps them unless
`validation_split=` or `test_split=` asks for a split at random; `summary()`
says where the splits came from. Vocabularies come from the training split
only: a validation or test label never seen in training is an error (or an
out-of-vocabulary index, with `unseen_labels="oov"`). `state_dict()` holds
the split membership, vocabularies and settings as JSON, so a model is served
with exactly the encoding it was trained with.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keras_roi_datagen.augment import Augmentation, parse_augmentation
from keras_roi_datagen.dataset import RoiDataset
from keras_roi_datagen.decode import DecodeOptions
from keras_roi_datagen.errors import LabelError, Problem, raise_problems
from keras_roi_datagen.formats import FORMATS
from keras_roi_datagen.formats.regions import SPLIT_SPELLINGS, split_name
from keras_roi_datagen.index import IndexBuild, RoiIndex, build_index, resolve_table
from keras_roi_datagen.labels import LabelVocabulary
from keras_roi_datagen.options import SPLIT_BY, check_choice, check_on_error, check_unseen_labels
from keras_roi_datagen.splitting import SPLITS, split_groups
from keras_roi_datagen.validation import ValidationReport, scan_images

__all__ = ["RoiDataModule"]

_STAGES = ("fit", "validate", "test", "predict")
_DEFAULT_VALIDATION_SPLIT = 0.2
# The dataset arguments that say where things are in the table (`index.resolve_table`'s).
_SPEC_KEYS = ("x_col", "box_col", "box_cols", "box_format", "allow_outside_image_dir", "format")
_SKIP_HINT = "Pass on_error='skip' to leave such rows out."
_OWNED = ("shuffle", "seed", "vocabularies", "table", "y_cols", "batch_size", "image_size",
          "class_weight")
_STATE_VERSION = 1


class RoiDataModule:
    """Splits, vocabularies and datasets of every stage, from one table.

    Args:
        table: A DataFrame, or the path of an annotation file or folder (VIA,
            COCO, VOC, YOLO, Label Studio, CVAT, and their exports' folders
            as the tools write them; see `read_annotations`; `format=` among
            `dataset_kwargs` forces one) or CSV file.
        image_dir: Folder of the images (defaults as in `RoiDataset`).
        validation_split: Fraction of images (rows, with `split_by="row"`)
            drawn at random for validation. Defaults to `None`: the table's
            own splits when it has them (its `split_col`, which the readers of
            YOLO, COCO and CVAT exports fill from the export; used when they
            put rows in training and in another split), else 0.2. A number
            splits at random even a table that has its own splits (with a
            warning, since the export's validation and test images may then
            be trained on).
        test_split: Fraction drawn at random for testing. Defaults to
            `None`: the table's own splits, as `validation_split`; 0 when
            splitting at random.
        split_by: `"image"` (default: all regions of an image in one split)
            or `"row"`.
        stratify_by: Optional label column whose class proportions each
            split drawn at random should keep, as far as grouping allows (a
            table's own splits are kept as they are).
        split_col: Column with explicit `train`/`val`/`test` values (any
            spelling `formats.regions.split_name` reads: `valid`,
            `Validation`, `train2017`, ...); the table's own splits. Defaults
            to `"split"`, the column the format readers write.
        seed: Seed of the split and of the training shuffle. Defaults to 1337.
        batch_size: Regions per batch. Defaults to 32.
        image_size: `(height, width)` of the crops. Defaults to `(224, 224)`.
        y_cols: Label columns. Defaults to `None`: the format's label
            columns, as in `RoiDataset` (`("label",)` for a COCO, VOC, YOLO,
            Label Studio or CVAT table, `("name", "type")` for a VIA export
            or a plain table).
        vocabularies: Optional given vocabularies (else built on the
            training split, sorted).
        unseen_labels: `"raise"` (default) or `"oov"`: what a validation or
            test label absent from the training split becomes (an error, or
            an extra out-of-vocabulary class). `"error"` still means `"raise"`.
        class_weight: `None`, `"balanced"` (weights from `class_weights()`)
            or a dict as in `RoiDataset`; applied to the training dataset.
        augment: Region augmentation, as in `RoiDataset` (an `Augmentation`
            or a dict of its options). Defaults to `None`.
        augment_splits: The datasets that augment: any of `"train"`,
            `"val"`, `"test"`, `"predict"`. Defaults to `("train",)`:
            evaluation sees the crops as annotated.
        **dataset_kwargs: Passed to every `RoiDataset` (e.g. `workers`,
            `use_multiprocessing`, `on_error`, `label_mode`, `box_format`).
            `storage_options` also applies to a table given as a URL, and
            `index_cache` to the one read of the table.

    Example:
    ```python
    data = RoiDataModule("via_export.csv", validation_split=0.2, image_size=(96, 96))
    data.setup("fit")
    # A Roboflow or Ultralytics export: its own train / val / test splits.
    data = RoiDataModule("roboflow-export/data.yaml", image_size=(96, 96))
    model.fit(data.train_dataset(), validation_data=data.val_dataset(), epochs=10)
    data.save("data_state.json")
    ```
    """

    def __init__(
        self,
        table: pd.DataFrame | str | os.PathLike[str],
        *,
        image_dir: str | os.PathLike[str] | None = None,
        validation_split: float | None = None,
        test_split: float | None = None,
        split_by: str = "image",
        stratify_by: str | None = None,
        split_col: str = "split",
        seed: int = 1337,
        batch_size: int = 32,
        image_size: tuple[int, int] = (224, 224),
        y_cols: Sequence[str] | None = None,
        vocabularies: Mapping[str, LabelVocabulary | Sequence[Any]] | None = None,
        unseen_labels: str = "raise",
        class_weight: str | Mapping[str, Mapping[Any, float]] | None = None,
        augment: Augmentation | Mapping[str, Any] | None = None,
        augment_splits: Sequence[str] = ("train",),
        **dataset_kwargs: Any,
    ) -> None:
        owned = sorted(set(dataset_kwargs) & set(_OWNED))
        if owned:
            raise TypeError(f"RoiDataModule sets {owned} itself; pass them as its own arguments.")
        check_choice("split_by", split_by, SPLIT_BY)
        unseen_labels = check_unseen_labels(unseen_labels)
        check_on_error(dataset_kwargs.get("on_error", "raise"))
        split_groups(np.zeros(0), *_fractions(validation_split, test_split), seed=0)  # checks them
        self.augment = parse_augmentation(augment)
        if isinstance(augment_splits, str) or not set(augment_splits) <= {*SPLITS, "predict"}:
            raise ValueError("`augment_splits` must be a list of split names among "
                             f"{[*SPLITS, 'predict']}. Received: augment_splits={augment_splits!r}")
        self.augment_splits = tuple(augment_splits)
        self.table = table
        self.image_dir = os.fspath(image_dir) if image_dir is not None else None
        self.validation_split = None if validation_split is None else float(validation_split)
        self.test_split = None if test_split is None else float(test_split)
        self.split_origin: str | None = None  # where the splits came from, once assigned
        self.split_by, self.stratify_by, self.split_col = split_by, stratify_by, split_col
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        # What the table is, decided once (a path's head is read to name its format).
        self._source, self._spec = resolve_table(
            table, image_dir=image_dir, y_cols=y_cols, optional_cols=(split_col,),
            storage_options=dataset_kwargs.get("storage_options"),
            **{k: dataset_kwargs[k] for k in _SPEC_KEYS if k in dataset_kwargs})
        self.y_cols = self._spec.y_cols
        if stratify_by is not None and stratify_by not in self.y_cols:
            raise ValueError(f"`stratify_by` must be one of y_cols {list(self.y_cols)}. "
                             f"Received: stratify_by={stratify_by!r}")
        self.given_vocabularies = dict(vocabularies or {})
        self.unseen_labels, self.class_weight = unseen_labels, class_weight
        self.dataset_kwargs = dict(dataset_kwargs)
        self.vocabularies: dict[str, LabelVocabulary] = {}
        self.problems: list[Problem] = []
        self._table: IndexBuild | None = None
        self._full: IndexBuild | None = None
        self._split: np.ndarray | None = None
        self._loaded_splits: dict[str, list[Any]] | None = None
        self._loaded_train_state: dict[str, Any] | None = None
        self._datasets: dict[str, RoiDataset] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def _read(self) -> IndexBuild:
        """The table's one read: every row checked, nothing raised yet (`index.build_index`)."""
        if self._table is None:
            self._table = build_index(self._source, self._spec,
                                      storage_options=self.dataset_kwargs.get("storage_options"),
                                      cache=self.dataset_kwargs.get("index_cache"))
        return self._table

    def validate(self, *, decode: bool = False, progress: bool = True) -> ValidationReport:
        """Checks every row, image and box of the table; sets no state.

        Args:
            decode: Fully decode every image (finds truncated files).
            progress: Show a progress bar.

        Returns:
            The `ValidationReport`.
        """
        build = self._read()
        _, problems = self._scan(build, decode=decode, progress=progress)
        return ValidationReport(problems, n_rows=build.n_rows, n_images=len(build.index.paths),
                                decoded=decode)

    def _scan(self, build: IndexBuild, *, decode: bool = False,
              progress: bool = False) -> tuple[list[int], list[Problem]]:
        """Checks the images of `build`; returns the bad index rows and every problem.

        The problems include those found when the table was read and indexed
        (records its reader dropped as malformed come first).
        """
        options = DecodeOptions.from_arguments(
            self.image_size, color_mode=self.dataset_kwargs.get("color_mode", "rgb"),
            max_image_pixels=self.dataset_kwargs.get("max_image_pixels", -1),
            storage_options=self.dataset_kwargs.get("storage_options"))
        found = scan_images(build.index, options, decode=decode, progress=progress)
        bad = sorted({row for row, p in found if p.severity == "error"})
        return bad, [*build.problems, *(p for _, p in found)]

    def prepare_data(self) -> ValidationReport:
        """One-time checks of the table and image headers (Lightning's `prepare_data`).

        Returns:
            The `ValidationReport`.

        Raises:
            RoiDatagenError: Listing every bad row, when `on_error` is `"raise"`.
        """
        report = self.validate(progress=False)
        if self.dataset_kwargs.get("on_error", "raise") == "raise":
            raise_problems(report.errors, _SKIP_HINT)
        return report

    def setup(self, stage: str | None = None) -> None:
        """Builds what `stage` needs; calling it again changes nothing.

        Args:
            stage: `"fit"`, `"validate"`, `"test"`, `"predict"` or `None` (all).
        """
        if stage is not None and stage not in _STAGES:
            raise ValueError(f"`stage` must be one of {list(_STAGES)} or None. Received: stage={stage!r}")
        if stage == "predict":
            return
        if self._full is None:
            self._full = self._read_index()
        if self._split is None:
            self._split = self._assign_splits(self._full.index)
        if not self.vocabularies:
            self.vocabularies = self._train_vocabularies(self._full, self._split)

    def _read_index(self) -> IndexBuild:
        build = self._read()
        if self.dataset_kwargs.get("on_error", "raise") == "raise":
            raise_problems(build.errors, _SKIP_HINT)
            self.problems = build.problems
            return build
        # Skipping: malformed records (dropped by the reader), unreadable images
        # and boxes outside them all leave before the split, each recorded.
        bad, self.problems = self._scan(build)
        if bad:
            keep = np.ones(len(build.index), dtype=bool)
            keep[bad] = False
            build = build.restricted(keep)
        return build

    @property
    def skipped(self) -> list[Problem]:
        """Rows left out when the table was read (with `on_error="skip"`)."""
        return [p for p in self.problems if p.severity == "error"]

    # -- splits and vocabularies ---------------------------------------------------------------

    def _keys(self, index: RoiIndex) -> list[Any]:
        if self.split_by == "image":
            base = self._read().image_dir or os.getcwd()
            relative = [os.path.relpath(p, base) for p in index.paths.tolist()]
            return [relative[i] for i in index.path_ids.tolist()]
        labels = [index.row_label(i) for i in range(len(index))]
        counts = Counter(labels)
        repeated = [(label, n) for label, n in counts.items() if n > 1]
        if repeated:
            label, n = repeated[0]
            raise ValueError(
                f"split_by='row' keys the splits by row label, but the table's index repeats "
                f"labels ({len(repeated)} of them, e.g. {label!r} on {n} rows), so saved splits "
                "could not be restored to the same rows. Give the DataFrame a unique index "
                "(`df.reset_index(drop=True)`). Received: split_by='row'")
        return labels

    def _assign_splits(self, index: RoiIndex) -> np.ndarray:
        keys = self._keys(index)  # refuses keys that could not be restored
        if self._loaded_splits is not None:
            where = {key: SPLITS.index(name) for name, saved in self._loaded_splits.items()
                     for key in saved}
            unknown = [k for k in keys if k not in where]
            if unknown:
                raise ValueError(f"The loaded state does not cover {len(unknown)} row(s) of this "
                                 f"table, e.g. {unknown[:3]}; it was saved for another table.")
            self.split_origin = "restored from a saved state"
            return np.asarray([where[k] for k in keys], dtype=np.int8)
        own_column = self.split_col in index.codes
        asked = self.validation_split is not None or self.test_split is not None
        unused = ""
        if own_column and not asked:
            own = self._explicit_splits(index)
            if (own == 0).any() and len(np.unique(own)) > 1:
                self.split_origin = f"the table's own: {self._own_origin()}"
                return own
            held = [SPLITS[c] for c in np.unique(own).tolist()]
            unused = (f"; the table's own splits ({self._own_origin()}) hold only {held}, so "
                      "they were not used")
        elif own_column and self._own_would_be_used():
            warnings.warn(
                f"The table has its own splits ({self._own_origin()}); validation_split="
                f"{self.validation_split}, test_split={self.test_split} split it at random "
                "instead, so its validation and test images may be trained on. Pass neither to "
                "use its splits.", UserWarning, stacklevel=2)
            unused = f"; the table's own splits ({self._own_origin()}) not used, as asked"
        validation, test = _fractions(self.validation_split, self.test_split)
        self.split_origin = (f"drawn at random by {self.split_by} (validation_split={validation:g}, "
                             f"test_split={test:g}, seed={self.seed}){unused}")
        groups = index.path_ids if self.split_by == "image" else np.arange(len(index))
        labels = index.codes[self.stratify_by] if self.stratify_by else None
        return split_groups(groups, validation, test, seed=self.seed, labels=labels)

    def _own_would_be_used(self) -> bool:
        """Whether the split column names training and another split (its values, not its rows)."""
        assert self._full is not None
        named = {split_name(c) for c in self._full.vocabularies[self.split_col].classes}
        return "train" in named and len(named - {None}) > 1

    def _own_origin(self) -> str:
        """What gave the table its splits: the export's rule, or the split column."""
        found = FORMATS.get(self._source.kind)
        if found is not None and found.splits:
            return f"{found.splits}, column {self.split_col!r}"
        return f"column {self.split_col!r}"

    def _explicit_splits(self, index: RoiIndex) -> np.ndarray:
        assert self._full is not None
        column = np.asarray(index.codes[self.split_col])
        classes = self._full.vocabularies[self.split_col].classes
        values = [classes[c] if c >= 0 else None for c in column.tolist()]
        codes, problems = np.zeros(len(values), dtype=np.int8), []
        for i, value in enumerate(values):
            name = split_name(value)
            if name is None:
                problems.append(index.problem(i, "split_unknown", (
                    f"split value must be {SPLIT_SPELLINGS}."), column=self.split_col,
                    value=value))
            else:
                codes[i] = SPLITS.index(name)
        raise_problems(problems)
        if self.split_by == "image":
            raise_problems(self._images_in_two_splits(index, codes),
                           "With split_by='image' every region of an image must be in one split; "
                           "fix the split column, or pass split_by='row'.")
        return codes

    def _images_in_two_splits(self, index: RoiIndex, codes: np.ndarray) -> list[Problem]:
        problems = []
        for image in np.unique(index.path_ids):
            rows = np.flatnonzero(index.path_ids == image)
            found = sorted({SPLITS[c] for c in codes[rows].tolist()})
            if len(found) > 1:
                problems.append(index.problem(
                    int(rows[0]), "split_image_in_two_splits",
                    f"image {index.path_of(int(rows[0]))!r} has regions in the {' and '.join(found)} "
                    "splits, so the model would be evaluated on photos it trained on.",
                    column=self.split_col, value=", ".join(found)))
        return problems

    def _train_vocabularies(self, full: IndexBuild, split: np.ndarray) -> dict[str, LabelVocabulary]:
        vocabularies = {}
        train = split == 0
        if not train.any():
            raise ValueError(f"The training split is empty (splits {self.split_origin}); lower "
                             "validation_split/test_split.")
        for column in self.y_cols:
            given = self.given_vocabularies.get(column)
            if isinstance(given, LabelVocabulary):
                vocabularies[column] = given
                continue
            if given is not None:
                vocabularies[column] = LabelVocabulary(given, name=column)
                continue
            seen = full.vocabularies[column].decode(np.unique(full.index.codes[column][train]))
            vocabularies[column] = LabelVocabulary.from_values(
                seen, name=column, oov=self.unseen_labels == "oov")
        return vocabularies

    def _recoded(self, rows: np.ndarray, name: str) -> IndexBuild:
        assert self._full is not None
        full = self._full
        index = full.index.select(rows)
        codes, problems = {}, []
        for column in self.y_cols:
            old = full.vocabularies[column]
            vocab = self.vocabularies[column]
            table = np.asarray([vocab.lookup(c) if vocab.lookup(c) is not None else -1
                                for c in old.classes] or [-1], dtype=np.int32)
            recoded = table[index.codes[column]]
            for i in np.flatnonzero(recoded < 0).tolist():
                label = old.classes[index.codes[column][i]]
                problems.append(index.problem(i, "label_unseen", (
                    f"label {column!r}: {label!r} appears in the {name} split but never in "
                    "training. Pass unseen_labels='oov' to map such labels to an extra class, "
                    "or move these images to training."), column=column, value=label))
            codes[column] = recoded
        if problems:
            raise LabelError.from_problems(problems)
        return IndexBuild(index.with_codes(codes), self.vocabularies, [], [], len(rows))

    # -- datasets -------------------------------------------------------------------------------

    def _dataset(self, split: str) -> RoiDataset:
        if split not in self._datasets:
            self.setup("fit")
            assert self._split is not None
            rows = np.flatnonzero(self._split == SPLITS.index(split))
            if not len(rows):
                hint = ("" if (self.split_origin or "").startswith("drawn") else
                        " Pass validation_split= (and test_split=) to split at random.")
                raise ValueError(f"The {split} split is empty (splits {self.split_origin}).{hint}")
            train = split == "train"
            weights = self.class_weights() if self.class_weight == "balanced" else self.class_weight
            kwargs = dict(self.dataset_kwargs)
            if not train:
                kwargs["drop_remainder"] = False  # evaluation sees every row
            dataset = RoiDataset(
                self._recoded(rows, split), y_cols=self.y_cols, batch_size=self.batch_size,
                image_size=self.image_size, shuffle=train, seed=self.seed,
                class_weight=weights if train else None,  # type: ignore[arg-type]
                augment=self.augment if split in self.augment_splits else None,
                **kwargs,
            )
            if train and self._loaded_train_state is not None:
                dataset.set_state(self._loaded_train_state)
            self._datasets[split] = dataset
        return self._datasets[split]

    def train_dataset(self) -> RoiDataset:
        """The training split: shuffled every epoch from `seed`."""
        return self._dataset("train")

    def val_dataset(self) -> RoiDataset:
        """The validation split: table order, last batch kept."""
        return self._dataset("val")

    def test_dataset(self) -> RoiDataset:
        """The test split: table order, last batch kept."""
        return self._dataset("test")

    def predict_dataset(self) -> RoiDataset:
        """Every usable row of the table, in table order, yielding `x` only.

        Labels are not needed (nor read). Map `model.predict` output back to
        rows with `predictions_frame`.
        """
        if "predict" not in self._datasets:
            kwargs = {k: v for k, v in self.dataset_kwargs.items() if k != "drop_remainder"}
            self._datasets["predict"] = RoiDataset(
                self._source, image_dir=self._spec.image_dir, y_cols=(),
                batch_size=self.batch_size, image_size=self.image_size, shuffle=False,
                seed=self.seed, augment=self.augment if "predict" in self.augment_splits else None,
                **kwargs)
        return self._datasets["predict"]

    def predictions_frame(self, predictions: Any) -> pd.DataFrame:
        """Returns the predicted rows of the table with each head's class and score.

        Args:
            predictions: `model.predict(data.predict_dataset())`: one array of
                class scores per head (a list, tuple or dict by head name), or
                one array for a single head.

        Returns:
            A copy of the table's usable rows, in order, with columns
            `{head}_predicted` (the class) and `{head}_score` (its score).
            For a table file, the rows are those `formats.read_raw_table` reads,
            found by their row labels.
        """
        self.setup("fit")
        dataset = self.predict_dataset()
        rows, ordered = dataset.predictions_in_table_order(_per_head(predictions, self.y_cols), epoch=0)
        heads: dict[str, Any] = ordered
        frame = self._table_rows(dataset.index, rows)
        for column, scores in heads.items():
            scores = np.asarray(scores)
            best = scores.argmax(axis=-1)
            frame[f"{column}_predicted"] = np.asarray(self.vocabularies[column].decode(best),
                                                      dtype=object)
            frame[f"{column}_score"] = scores.max(axis=-1)
        return frame

    def _table_rows(self, index: RoiIndex, rows: np.ndarray) -> pd.DataFrame:
        """The table's own rows behind index rows: a DataFrame's by position, a file's by label."""
        source = self._source
        found: pd.DataFrame
        if source.frame is not None:
            found = source.frame.iloc[np.asarray(index.positions)[rows]].copy()
            return found
        from keras_roi_datagen.formats import read_raw_table

        assert source.local is not None
        table = read_raw_table(source.local, format=self._spec.format,
                               on_error=self.dataset_kwargs.get("on_error", "raise"))
        found = table.loc[[index.row_label(int(r)) for r in rows]].copy()
        return found

    # -- statistics ------------------------------------------------------------------------------

    def class_weights(self) -> dict[str, dict[Any, float]]:
        """Balanced class weights per head, from the training split.

        Returns:
            `{head: {class: n_rows / (n_classes * class_count)}}`, keyed by the
            classes as the table holds them (what `RoiDataset(class_weight=)`
            takes); classes absent from training weigh 1.
        """
        self.setup("fit")
        assert self._full is not None and self._split is not None
        train = self._recoded(np.flatnonzero(self._split == 0), "train").index
        weights = {}
        for column, vocab in self.vocabularies.items():
            counts = np.bincount(train.codes[column], minlength=vocab.num_classes)
            present = counts > 0
            scale = len(train) / (int(present.sum()) or 1)
            weights[column] = {label: float(scale / c) if c else 1.0
                               for label, c in zip(vocab.classes, counts)}
        return weights

    def summary(self, print_fn: Any = print) -> str:
        """Prints (and returns) rows and images per split and label counts per head."""
        self.setup("fit")
        assert self._full is not None and self._split is not None
        index = self._full.index
        lines = [f"splits: {self.split_origin}", f"{'split':<8}{'rows':>8}{'images':>8}"]
        for code, name in enumerate(SPLITS):
            mask = self._split == code
            lines.append(f"{name:<8}{int(mask.sum()):>8}{len(np.unique(index.path_ids[mask])):>8}")
        for column in self.y_cols:
            vocab = self._full.vocabularies[column]
            lines.append(f"\nlabel {column!r}: " + " / ".join(SPLITS))
            for code, label in enumerate(vocab.classes):
                counts = [int(((self._split == s) & (index.codes[column] == code)).sum())
                          for s in range(len(SPLITS))]
                lines.append(f"  {label!s:<20}" + "".join(f"{c:>8}" for c in counts))
        skipped = len(self.skipped)
        if skipped:
            lines.append(f"\n{skipped} row(s) skipped; see `data.skipped`.")
        text = "\n".join(lines)
        print_fn(text)
        return text

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Returns split membership, vocabularies and settings as JSON-able data."""
        self.setup("fit")
        assert self._full is not None and self._split is not None
        keys = self._keys(self._full.index)
        splits: dict[str, list[Any]] = {name: [] for name in SPLITS}
        seen: set[Any] = set()
        for key, code in zip(keys, self._split.tolist()):
            if (key, code) not in seen:
                seen.add((key, code))
                splits[SPLITS[code]].append(key)
        state = {
            "version": _STATE_VERSION, "seed": self.seed, "image_size": list(self.image_size),
            "batch_size": self.batch_size, "y_cols": list(self.y_cols), "split_by": self.split_by,
            "validation_split": self.validation_split, "test_split": self.test_split,
            "stratify_by": self.stratify_by, "splits": splits, "split_origin": self.split_origin,
            "vocabularies": {c: v.to_dict() for c, v in self.vocabularies.items()},
        }
        if "train" in self._datasets:
            state["train_state"] = self._datasets["train"].get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores what `state_dict()` returned; call before `setup`.

        Raises:
            ValueError: If the state is of another version or other label columns.
        """
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"Unsupported state version {state.get('version')!r}; "
                             f"expected {_STATE_VERSION}.")
        if list(state["y_cols"]) != list(self.y_cols):
            raise ValueError(f"The state was saved for y_cols={state['y_cols']}, this module has "
                             f"y_cols={list(self.y_cols)}.")
        self.seed, self.batch_size = int(state["seed"]), int(state["batch_size"])
        self.image_size = (int(state["image_size"][0]), int(state["image_size"][1]))
        self.split_by = state["split_by"]
        self._loaded_splits = {k: list(v) for k, v in state["splits"].items()}
        self.vocabularies = {c: LabelVocabulary.from_dict(v) for c, v in state["vocabularies"].items()}
        self._loaded_train_state = state.get("train_state")
        self._split, self._datasets = None, {}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes `state_dict()` to a JSON file."""
        Path(path).write_text(json.dumps(self.state_dict(), indent=1))

    def load(self, path: str | os.PathLike[str]) -> RoiDataModule:
        """Reads a file written by `save` into this module; returns the module."""
        self.load_state_dict(json.loads(Path(path).read_text()))
        return self

    def __repr__(self) -> str:
        table = "<DataFrame>" if isinstance(self.table, pd.DataFrame) else os.fspath(self.table)
        return (f"RoiDataModule(table={table!r}, validation_split={self.validation_split}, "
                f"test_split={self.test_split}, split_by={self.split_by!r}, "
                f"stratify_by={self.stratify_by!r}, seed={self.seed}, batch_size={self.batch_size}, "
                f"image_size={self.image_size}, y_cols={self.y_cols})")


def _fractions(validation_split: float | None, test_split: float | None) -> tuple[float, float]:
    """The fractions drawn at random: 0.2 for validation and 0 for testing unless given."""
    return (_DEFAULT_VALIDATION_SPLIT if validation_split is None else float(validation_split),
            0.0 if test_split is None else float(test_split))


def _per_head(predictions: Any, y_cols: Sequence[str]) -> dict[str, Any]:
    if isinstance(predictions, Mapping):
        return {c: predictions[c] for c in y_cols}
    if isinstance(predictions, (list, tuple)):
        if len(predictions) != len(y_cols):
            raise ValueError(f"Got {len(predictions)} prediction arrays for {len(y_cols)} heads.")
        return dict(zip(y_cols, predictions))
    if len(y_cols) != 1:
        raise ValueError(f"Got one prediction array for {len(y_cols)} heads {list(y_cols)}.")
    return {y_cols[0]: predictions}
