"""Train a two-head CNN on the demo dataset: shape kind (`name`) and colour (`type`).

Run with any backend:

    KERAS_BACKEND=jax python examples/train_two_heads.py --data demo_data

It writes the demo dataset (VIA 2 CSV + JPEG scenes) if the folder has none,
trains, and prints the validation accuracy of each head. With
`--min-accuracy 0.9` it exits with status 1 when a head falls short, which is
how `nox -s train` checks every backend.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import keras

from keras_roi_datagen import RoiDataModule
from keras_roi_datagen.demo import make_demo_dataset

LAST_MODEL: keras.Model | None = None  # the model `main` trained, for checks such as gpu_check


def build_model(image_size: tuple[int, int], heads: dict[str, int]) -> keras.Model:
    """A small CNN with one softmax head per label column."""
    inputs = keras.Input((*image_size, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for filters in (32, 64, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    # Flatten keeps where the edges are, which tells a square from a circle.
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = [keras.layers.Dense(n, activation="softmax", name=head)(x) for head, n in heads.items()]
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=["categorical_crossentropy"] * len(heads),
        metrics=[["accuracy"] for _ in heads],
    )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="demo_data", help="demo dataset folder (created if empty)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--use-multiprocessing", action="store_true")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--min-accuracy", type=float, default=None,
                        help="exit 1 unless every head reaches this validation accuracy")
    parser.add_argument("--report", default=None, help="write final metrics to this JSON file")
    args = parser.parse_args(argv)

    csv_path = Path(args.data) / "via_region_data.csv"
    if not csv_path.exists():
        print(f"Writing the demo dataset to {args.data}/ ...")
        make_demo_dataset(args.data, n_images=160, seed=0)
    keras.utils.set_random_seed(args.seed)
    image_size = (args.image_size, args.image_size)
    data = RoiDataModule(
        csv_path, y_cols=("name", "type"), image_size=image_size, batch_size=args.batch_size,
        validation_split=0.2, seed=args.seed, workers=args.workers,
        use_multiprocessing=args.use_multiprocessing,
    )
    data.setup("fit")
    data.summary()
    heads = {column: vocab.num_classes for column, vocab in data.vocabularies.items()}
    model = build_model(image_size, heads)
    global LAST_MODEL
    LAST_MODEL = model
    started = time.perf_counter()
    model.fit(data.train_dataset(), validation_data=data.val_dataset(), epochs=args.epochs,
              verbose=2)
    seconds = time.perf_counter() - started
    results = model.evaluate(data.val_dataset(), return_dict=True, verbose=0)
    accuracy = {head: float(results[f"{head}_accuracy"]) for head in heads}
    backend = keras.backend.backend()
    print(f"\nbackend={backend}  trained {args.epochs} epochs in {seconds:.1f} s")
    for head, value in accuracy.items():
        print(f"validation accuracy  {head:>6}: {value:.3f}")
    if args.report:
        Path(args.report).write_text(json.dumps({
            "backend": backend, "epochs": args.epochs, "seconds": round(seconds, 1),
            "val_accuracy": accuracy, "val_loss": float(results["loss"]),
            "workers": args.workers, "use_multiprocessing": args.use_multiprocessing,
            "pid": os.getpid(),
        }, indent=2))
    if args.min_accuracy is not None and min(accuracy.values()) < args.min_accuracy:
        print(f"FAILED: a head is below {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
