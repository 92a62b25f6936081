"""RoiDataModule: splits without leakage, vocabularies from training, state that round-trips."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import scene_table

from keras_roi_datagen import LabelError, RoiDatagenError, RoiDataModule


def digest(ds):
    h = hashlib.sha256()
    for x, ys in ds.iter_batches():
        h.update(x.tobytes())
        for y in ys:
            h.update(y.tobytes())
    return h.hexdigest()


def module(table, **kwargs):
    kwargs = {"image_size": (16, 16), "batch_size": 4, **kwargs}
    return RoiDataModule(table, **kwargs)


def test_splits_are_disjoint_by_image_and_close_to_their_fractions(demo_csv):
    data = module(demo_csv, validation_split=0.25, test_split=0.2, seed=3)
    data.setup("fit")
    splits = {name: set(data.state_dict()["splits"][name]) for name in ("train", "val", "test")}
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"]
                or splits["val"] & splits["test"])
    sizes = {n: len(data._dataset(n).index) for n in ("train", "val", "test")}
    total = sum(sizes.values())
    assert abs(sizes["val"] / total - 0.25) < 0.08 and abs(sizes["test"] / total - 0.2) < 0.08
    for name in ("val", "test"):
        images = {data._dataset(name).index.path_of(i) for i in range(sizes[name])}
        train_images = {data.train_dataset().index.path_of(i) for i in range(sizes["train"])}
        assert not images & train_images


def skewed_table(tmp_path):
    table = scene_table(tmp_path, n_images=3)
    rows = []
    rng = np.random.default_rng(0)
    for image in range(60):  # 60 images of one label each, 80% / 15% / 5%
        label = rng.choice(["common", "rare", "very_rare"], p=[0.8, 0.15, 0.05])
        for region in table.head(int(rng.integers(1, 4))).itertuples():
            rows.append({"filename": f"scene_{image % 3}.png", "image": image,
                         "region_shape_attributes": region.region_shape_attributes,
                         "name": label, "type": "t"})
    frame = pd.DataFrame(rows)
    # Distinct file names per image so grouping by image has 60 groups.
    for image in range(60):
        source = tmp_path / f"scene_{image % 3}.png"
        (tmp_path / f"img_{image}.png").write_bytes(source.read_bytes())
    frame["filename"] = [f"img_{i}.png" for i in frame.image]
    return frame


def test_stratified_split_keeps_class_proportions_within_a_bound(tmp_path):
    frame = skewed_table(tmp_path)
    data = module(frame, image_dir=tmp_path, validation_split=0.3, stratify_by="name", seed=1)
    data.setup("fit")
    share = {}
    for name in ("train", "val"):
        ds = data._dataset(name)
        counts = np.bincount(ds.index.codes["name"], minlength=3)
        share[name] = counts
    total = share["train"] + share["val"]
    val_fraction = share["val"] / total
    assert np.all(np.abs(val_fraction - 0.3) < 0.15), val_fraction


def test_split_is_deterministic_across_processes(demo_csv):
    data = module(demo_csv, seed=21)
    data.setup("fit")
    here = data.state_dict()["splits"]
    code = (f"from keras_roi_datagen import RoiDataModule; import json; "
            f"d = RoiDataModule({str(demo_csv)!r}, image_size=(16, 16), seed=21); d.setup('fit'); "
            f"print(json.dumps(d.state_dict()['splits']))")
    there = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
    assert here == there
    other = module(demo_csv, seed=22)
    other.setup("fit")
    assert other.state_dict()["splits"] != here


def explicit(tmp_path, val_label="red"):
    table = scene_table(tmp_path, n_images=3)
    table["split"] = ["train"] * 8 + ["validation"] * 4
    table.loc[8, "name"] = val_label
    return table


def test_vocabulary_comes_from_training_only_and_unseen_labels_are_reported(tmp_path):
    table = explicit(tmp_path, val_label="purple")
    data = module(table, image_dir=tmp_path)
    data.setup("fit")
    assert "purple" not in data.vocabularies["name"].classes
    with pytest.raises(LabelError, match=r"row 8.*'purple' appears in the val split but never in"):
        data.val_dataset()
    tolerant = module(table, image_dir=tmp_path, unseen_labels="oov")
    tolerant.setup("fit")
    codes = tolerant.val_dataset().index.codes["name"]
    assert codes[0] == len(tolerant.vocabularies["name"].classes)  # the extra index
    assert tolerant.vocabularies["name"].num_classes == 5


def test_explicit_split_column_is_used(tmp_path):
    data = module(explicit(tmp_path), image_dir=tmp_path)
    assert len(data.train_dataset().index) == 8 and len(data.val_dataset().index) == 4
    bad = explicit(tmp_path)
    bad.loc[3, "split"] = "holdout"
    with pytest.raises(RoiDatagenError, match=r"row 3, column 'split'.*'holdout'"):
        module(bad, image_dir=tmp_path).setup("fit")


def test_state_round_trip_gives_identical_batches(demo_csv, tmp_path):
    data = module(demo_csv, seed=5)
    data.setup("fit")
    train = data.train_dataset()
    first_epoch = digest(train)
    train.on_epoch_end()
    second_epoch = digest(train)
    data.save(tmp_path / "state.json")

    fresh = module(demo_csv, seed=999).load(tmp_path / "state.json")
    fresh.setup("fit")
    assert fresh.vocabularies == data.vocabularies
    assert fresh.seed == 5
    # The training position is part of the state: the next epoch continues.
    assert fresh.train_dataset().epoch == 2
    replay = module(demo_csv, seed=999).load(tmp_path / "state.json")
    state = json.loads((tmp_path / "state.json").read_text())
    state.pop("train_state")
    replay.load_state_dict(state)
    assert digest(replay.train_dataset()) == first_epoch
    replay.train_dataset().on_epoch_end()
    assert digest(replay.train_dataset()) == second_epoch
    assert digest(replay.val_dataset()) == digest(data.val_dataset())


def test_setup_is_idempotent_and_datasets_are_cached(demo_csv):
    data = module(demo_csv)
    data.setup("fit")
    splits = data.state_dict()["splits"]
    data.setup("fit")
    data.setup("validate")
    assert data.state_dict()["splits"] == splits
    assert data.train_dataset() is data.train_dataset()
    assert data.train_dataset().shuffle and not data.val_dataset().shuffle


def test_predictions_frame_maps_predictions_back_to_rows_in_order(scenes):
    table, folder = scenes
    data = module(table, image_dir=folder, validation_split=0.34)
    data.setup("fit")
    predict = data.predict_dataset()
    assert len(predict[0]) == 1  # x only
    n = len(predict.index)
    classes = data.vocabularies["name"].classes
    truth = [classes.index(v) for v in table["name"]]
    scores = np.eye(len(classes))[truth] * 0.9
    frame = data.predictions_frame([scores, np.full((n, 2), 0.5)])
    assert frame["name_predicted"].tolist() == table["name"].tolist()
    assert np.allclose(frame["name_score"], 0.9)
    assert frame.index.tolist() == table.index.tolist()


def test_class_weights_are_balanced_on_the_training_split(tmp_path):
    frame = skewed_table(tmp_path)
    data = module(frame, image_dir=tmp_path, class_weight="balanced")
    weights = data.class_weights()["name"]
    classes = data.vocabularies["name"].classes
    assert list(weights) == list(classes)  # keyed by label, as RoiDataset(class_weight=) takes
    counts = np.bincount(data.train_dataset().index.codes["name"], minlength=len(classes))
    assert weights[classes[int(np.argmin(counts))]] > weights[classes[int(np.argmax(counts))]]
    assert np.isclose(sum(weights[label] * c for label, c in zip(classes, counts)), counts.sum())
    _, _, sw = data.train_dataset()[0]
    assert len(sw) == 2


def test_summary_lists_splits_and_label_counts(demo_csv):
    data = module(demo_csv)
    text = data.summary(print_fn=lambda _: None)
    assert "train" in text and "val" in text and "label 'name'" in text and "circle" in text


def test_prepare_data_checks_without_setting_state(tmp_path):
    table = scene_table(tmp_path)
    table.loc[4, "filename"] = "missing.png"
    data = module(table, image_dir=tmp_path)
    with pytest.raises(RoiDatagenError, match=r"row 4.*missing.png"):
        data.prepare_data()
    assert data._full is None
    skipping = module(table, image_dir=tmp_path, on_error="skip")
    report = skipping.prepare_data()
    assert [p.kind for p in report.errors] == ["missing_file"]
    skipping.setup("fit")
    assert [p.row for p in skipping.skipped] == [4]


def test_fit_with_train_and_validation_datasets(demo_csv):
    data = module(demo_csv)
    data.setup("fit")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = [keras.layers.Dense(v.num_classes, activation="softmax", name=c)(x)
               for c, v in data.vocabularies.items()]
    model = keras.Model(inputs, outputs)
    model.compile("adam", ["categorical_crossentropy"] * 2)
    history = model.fit(data.train_dataset(), validation_data=data.val_dataset(), epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["val_loss"][0])


def test_module_owned_arguments_are_refused_in_dataset_kwargs(demo_csv):
    with pytest.raises(TypeError, match="shuffle"):
        RoiDataModule(demo_csv, shuffle=False)
    with pytest.raises(ValueError, match="validation_split"):
        RoiDataModule(demo_csv, validation_split=0.7, test_split=0.4)


def test_dirty_via_export_with_skip_lists_every_left_out_row(tmp_path):
    from keras_roi_datagen.demo import make_demo_dataset

    csv = make_demo_dataset(tmp_path, n_images=6, seed=2)
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace('"{""name"":""', '"{""name"";""', 1)  # malformed JSON
    lines[4] = lines[4].replace("images/scene_", "images/missing_", 1)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(RoiDatagenError, match="line 3"):
        module(csv).setup("fit")
    data = module(csv, on_error="skip")
    data.setup("fit")
    assert sorted((p.row, p.kind) for p in data.skipped) == [(3, "bad_json"), (5, "missing_file")]
    report = data.validate(progress=False)
    assert {p.row for p in report.errors} == {3, 5}
    assert data.train_dataset().preview(4).size[0] > 0


def test_an_image_in_two_explicit_splits_is_an_error_naming_it(tmp_path):
    table = explicit(tmp_path)
    image = table.loc[0, "filename"]
    table.loc[table.index[(table["filename"] == image)][-1], "split"] = "val"
    with pytest.raises(RoiDatagenError, match=rf"{image}.*train and val"):
        module(table, image_dir=tmp_path).setup("fit")
    # Row-level splits are the user's explicit choice.
    module(table, image_dir=tmp_path, split_by="row").setup("fit")


def test_row_splits_refuse_a_table_whose_index_repeats_labels(tmp_path):
    table = scene_table(tmp_path, n_images=6)
    table.index = [i % 12 for i in range(len(table))]  # e.g. two frames concatenated
    with pytest.raises(ValueError, match=r"repeats labels.*reset_index"):
        module(table, image_dir=tmp_path, split_by="row", validation_split=0.5, seed=1).setup("fit")
    fixed = table.reset_index(drop=True)
    data = module(fixed, image_dir=tmp_path, split_by="row", validation_split=0.5, seed=1)
    data.setup("fit")
    data.save(tmp_path / "state.json")
    again = module(fixed, image_dir=tmp_path, split_by="row", validation_split=0.5, seed=1)
    again.load(tmp_path / "state.json").setup("fit")
    assert len(again.train_dataset().index) == len(data.train_dataset().index)
    assert len(again.val_dataset().index) == len(data.val_dataset().index)
