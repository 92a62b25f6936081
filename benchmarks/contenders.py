"""The contenders: every way this benchmark turns a workload into 224x224 uint8 batches.

Each contender is built by a factory `(workload, crops, workers) -> Runner`
(setup that a training script does once, e.g. building a `tf.data` graph, a
`RoiDataset` or a `DataLoader`, happens there, outside the timed window) and
timed by iterating `Runner.run()` once: one epoch. A runner is kept for the
repeats of its pair (`server.py`), as a training script keeps its pipeline
across epochs: what a library restarts every epoch (a tf.data iterator) is
paid in every pass, what it keeps (persistent torch workers, RoiDataset's
workers and crop cache) is not. Contenders of kind `"cached"` are measured
in their second epoch (a first, untimed pass fills the cache); the table
shows them in the "epoch 2" column of their `base` contender. All contenders cut the same boxes from the
same files, in table order, and deliver `uint8` crops of 224x224x3 in
batches of 32; floors deliver nothing but a crop count.

Heavy imports (TensorFlow, torch, Keras) happen inside the factories, so this
module can be imported anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mixing import batch_mixing
from PIL import Image
from workloads import OUTPUT_SIZE, Workload

BATCH_SIZE = 32
SAMPLE_CROPS = 8
_BILINEAR = Image.Resampling.BILINEAR


@dataclass
class Runner:
    """One prepared contender.

    Args:
        run: Starts a pass and yields its batches (arrays, tensors, or crop
            counts for floors).
        first_ids: Workload crop numbers of the first batch's crops, for the
            quality check (`None` for floors).
        crops: Crops one pass delivers.
        source_bytes: Bytes of source JPEG behind those crops (each crop
            counts its image's file size).
        config: What was run, for the report.
    """

    run: Callable[[], Iterable[Any]]
    first_ids: np.ndarray | None
    crops: int
    source_bytes: int
    config: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None


@dataclass(frozen=True)
class Contender:
    """A row of the results table.

    Args:
        key: Identifier used in the JSON report.
        label: Row label in the printed table.
        server: Which benchmark process runs it: its `KERAS_BACKEND`, or
            `backend/role` for a second process of that backend.
        kind: `"baseline"`, `"roi"`, `"floor"` or `"cached"` (measured in
            epoch 2, shown in the "epoch 2" column of `base`).
        options: RoiDataset options (for `kind="roi"` and RoiDataset caches).
        base: For `kind="cached"`: the contender whose row shows it.
    """

    key: str
    label: str
    server: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    base: str | None = None


# The configuration the targets are judged on: decode each image once per
# batch, DCT-domain downscaling allowed, decode threads.
BEST = {"group_by_image": True, "fast_decode": True, "use_multiprocessing": False}
# A typical training recipe: box jitter, a flip and colour, all in the loader.
AUGMENT = {"zoom": (0.9, 1.2), "shift": 0.1, "horizontal_flip": True, "brightness": 0.2,
           "contrast": 0.2}

# The library's defaults: no speed flag (only the workers every contender gets).
DEFAULTS: dict[str, Any] = {}

CONTENDERS = (
    Contender("classic", "(a) classic generator (Pillow open/crop/resize)",
              "jax", "baseline"),
    Contender("tf_aliased", "(b) tf.data tuned, DCT ratio, antialias=False",
              "tensorflow", "baseline"),
    Contender("tf_antialias", "(b) tf.data tuned, DCT ratio, antialias=True",
              "tensorflow", "baseline"),
    Contender("tf_cache", "(b) tf.data tuned + .cache(), epoch 2", "tensorflow", "cached",
              base="tf_aliased"),
    Contender("torch_pillow", "(c) torch DataLoader, persistent workers",
              "torch", "baseline"),
    Contender("roi_tensorflow", "(d) RoiDataset best, tf: get_tf_dataset()",
              "tensorflow/roi", "roi", BEST),
    Contender("roi_jax", "(d) RoiDataset best, jax: get_jax_iterator()", "jax", "roi", BEST),
    Contender("roi_torch", "(d) RoiDataset best, torch: get_torch_dataloader()",
              "torch", "roi", BEST),
    Contender("roi_jax_defaults", "(d) RoiDataset defaults, jax", "jax", "roi", DEFAULTS),
    Contender("roi_tensorflow_defaults", "(d) RoiDataset defaults, tf", "tensorflow/roi", "roi",
              DEFAULTS),
    Contender("roi_jax_pillow", "(d)   jax, defaults, no C extension (Pillow)",
              "jax", "roi", DEFAULTS),
    Contender("roi_jax_rows", "(d)   jax, defaults but shuffle_window=None (rows shuffled alone)",
              "jax", "roi", {"shuffle_window": None}),
    Contender("roi_jax_cache", "(d) RoiDataset defaults + cache=True, epoch 2", "jax", "cached",
              {"cache": True}, base="roi_jax_defaults"),
    Contender("roi_jax_nofast", "(d)   jax, best but fast_decode=False", "jax", "roi",
              {**BEST, "fast_decode": False}),
    Contender("roi_jax_processes", "(d)   jax, best but use_multiprocessing=True",
              "jax", "roi", {**BEST, "use_multiprocessing": True}),
    Contender("roi_jax_1worker", "(d)   jax, best but workers=1", "jax", "roi",
              {**BEST, "workers": 1}),
    Contender("roi_jax_augmented", "(d)   jax, best + augment (zoom, shift, flip, colour)",
              "jax", "roi", {**BEST, "augment": AUGMENT}),
    Contender("floor_read", "(e) floor: read bytes, once per image", "jax", "floor"),
    Contender("floor_decode_pillow", "(e) floor: full decode per image, Pillow",
              "jax", "floor"),
    Contender("floor_decode_simplejpeg", "(e) floor: full decode per image, simplejpeg",
              "jax", "floor"),
)
BY_KEY = {c.key: c for c in CONTENDERS}


# -- helpers ------------------------------------------------------------------------------


def consume(batch: Any) -> int:
    """Counts a batch's crops and reads one byte of it, so lazy pipelines really run."""
    if isinstance(batch, int):
        return batch
    array = np.asarray(batch)
    int(array[-1, -1, -1, -1])
    return int(array.shape[0])


def reference_crop(workload: Workload, crop: int) -> np.ndarray:
    """The crop as Pillow's antialiased bilinear filter makes it from the full image."""
    with Image.open(workload.path(crop)) as image:
        resized = image.convert("RGB").resize(OUTPUT_SIZE[::-1], _BILINEAR,
                                              box=workload.xyxy(crop))
    return np.asarray(resized)


def _batched(items: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _runner(workload: Workload, run: Callable[[], Iterable[Any]], ids: np.ndarray | None,
            **config: Any) -> Runner:
    return Runner(run, ids, len(workload), int(workload.file_bytes.sum()), config)


def _first_ids(workload: Workload) -> np.ndarray:
    return np.arange(min(SAMPLE_CROPS, len(workload)))


def pillow_crop(workload: Workload, crop: int) -> np.ndarray:
    """The article's way: open, crop, resize (one full decode per crop)."""
    image = Image.open(workload.path(crop))
    return np.asarray(image.crop(workload.xyxy(crop)).resize(OUTPUT_SIZE[::-1], _BILINEAR))


# -- (a) the classic generator -----------------------------------------------------------------


def classic(workload: Workload, workers: int) -> Runner:
    """A plain Python generator, as in the article: one row at a time, in the caller."""
    del workers  # sequential by design

    def run() -> Iterator[np.ndarray]:
        return _batched((pillow_crop(workload, i) for i in range(len(workload))), BATCH_SIZE)

    return _runner(workload, run, _first_ids(workload), threads=1)


# -- (b) tf.data ------------------------------------------------------------------------------


def dct_ratios(workload: Workload) -> np.ndarray:
    """Per crop, the JPEG DCT ratio (1, 2, 4, 8) that keeps the region >= the output size.

    The same rule as RoiDataset's `fast_decode`: reduce by a power of two
    while the region stays at least as large as the output on both sides.
    """
    sides = np.minimum(workload.boxes[:, 2] / OUTPUT_SIZE[1], workload.boxes[:, 3] / OUTPUT_SIZE[0])
    ratios = np.ones(len(workload), dtype=np.int32)
    for ratio in (2, 4, 8):
        ratios[sides >= ratio] = ratio
    return ratios


def tf_data(workload: Workload, workers: int, antialias: bool, cache: bool = False) -> Runner:
    """A tuned tf.data pipeline: read, decode (DCT-reduced where allowed), crop, resize, batch.

    Where a region is at least twice the output, the JPEG is decoded at
    1/2, 1/4 or 1/8 (`tf.image.decode_jpeg(ratio=)`; `decode_and_crop_jpeg`
    has no ratio) and the window is cut from the reduced image: its
    coordinates divided by the ratio (start rounded down, end up, within the
    reduced image, whose size libjpeg rounds up). Other regions use
    `decode_and_crop_jpeg`. Parallel map with AUTOTUNE on a private pool of
    `workers` threads (one op thread each), so it uses the same number of
    cores as the other contenders. `cache=True` adds `.cache()` after the
    map (crops kept in memory from the first epoch).
    """
    import tensorflow as tf

    paths = [workload.path(i) for i in range(len(workload))]
    windows = workload.boxes[:, [1, 0, 3, 2]].astype(np.int32)  # y, x, height, width
    branch = np.log2(dct_ratios(workload)).astype(np.int32)  # 0..3

    def reduced(data: Any, window: Any, ratio: int) -> Any:
        image = tf.image.decode_jpeg(data, channels=3, ratio=ratio)
        shape = tf.shape(image)
        y0, x0 = window[0] // ratio, window[1] // ratio
        y1 = tf.minimum(-(-(window[0] + window[2]) // ratio), shape[0])
        x1 = tf.minimum(-(-(window[1] + window[3]) // ratio), shape[1])
        return image[y0:y1, x0:x1]

    def load(path: Any, window: Any, which: Any) -> Any:
        data = tf.io.read_file(path)
        crop = tf.switch_case(which, [
            lambda: tf.io.decode_and_crop_jpeg(data, window, channels=3),
            lambda: reduced(data, window, 2),
            lambda: reduced(data, window, 4),
            lambda: reduced(data, window, 8),
        ])
        resized = tf.image.resize(crop, OUTPUT_SIZE, method="bilinear", antialias=antialias)
        return tf.saturate_cast(tf.round(resized), tf.uint8)

    options = tf.data.Options()
    options.threading.private_threadpool_size = max(1, workers)
    options.threading.max_intra_op_parallelism = 1
    dataset = (tf.data.Dataset.from_tensor_slices((paths, windows, branch))
               .map(load, num_parallel_calls=tf.data.AUTOTUNE))
    if cache:
        dataset = dataset.cache()
    dataset = dataset.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE).with_options(options)
    return _runner(workload, lambda: dataset, _first_ids(workload), threads=max(1, workers),
                   antialias=antialias, dct_ratio=True, cache=cache)


# -- (c) torch DataLoader ---------------------------------------------------------------------


def torch_pillow(workload: Workload, workers: int) -> Runner:
    """torch DataLoader over a map-style dataset that crops with Pillow, `workers` processes."""
    import torch

    class PillowCrops(torch.utils.data.Dataset):  # type: ignore[misc]
        def __len__(self) -> int:
            return len(workload)

        def __getitem__(self, crop: int) -> Any:
            return torch.from_numpy(np.array(pillow_crop(workload, crop)))

    # Built once and iterated every epoch; its worker processes stay between epochs.
    loader = torch.utils.data.DataLoader(PillowCrops(), batch_size=BATCH_SIZE, shuffle=False,
                                         num_workers=workers, persistent_workers=workers > 0)
    runner = _runner(workload, lambda: loader, _first_ids(workload), num_workers=workers,
                     persistent_workers=workers > 0)
    def close() -> None:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()

    runner.close = close
    return runner


# -- (d) RoiDataset through the adapter fit uses ----------------------------------------------


def roi_dataset(workload: Workload, workers: int, options: dict[str, Any]) -> Runner:
    """RoiDataset consumed through the `DataAdapter` hook of this process's Keras backend."""
    from keras_roi_datagen import RoiDataset

    backend = os.environ.get("KERAS_BACKEND", "jax")
    settings = {"workers": workers, **options}
    dataset = RoiDataset(workload.frame(), image_dir=workload.image_dir, y_cols=("name",),
                  image_size=OUTPUT_SIZE, batch_size=BATCH_SIZE, shuffle=True, seed=0,
                  dtype="uint8", **settings)
    hook = {"tensorflow": dataset.get_tf_dataset, "jax": dataset.get_jax_iterator,
            "torch": dataset.get_torch_dataloader}.get(backend, dataset.get_numpy_iterator)

    def run() -> Iterator[Any]:
        for batch in hook():
            yield batch[0]
        dataset.on_epoch_end()  # as fit does; the next pass gets the next epoch's order

    ids = np.asarray(dataset.plan()[0][:SAMPLE_CROPS])
    mixing = batch_mixing(dataset.plan(), dataset.index.path_ids, dataset.index.codes["name"])
    runner = _runner(workload, run, ids, backend=backend, hook=hook.__name__, shuffle=True,
                     seed=0, mixing=mixing, **settings)
    runner.close = dataset.close
    return runner


def without_native_decoder(runner: Runner) -> Runner:
    """The runner's passes with the C region decoder off: what an install without libjpeg gets.

    Thread workers read `decode.native.AVAILABLE` per image, so turning it off
    around each pass (and back on after) leaves the process's other contenders
    on the native path.
    """
    from keras_roi_datagen.decode import native

    run = runner.run

    def pillow_run() -> Iterator[Any]:
        available, native.AVAILABLE = native.AVAILABLE, False
        try:
            yield from run()
        finally:
            native.AVAILABLE = available

    runner.run = pillow_run
    runner.config["native_decoder"] = False
    return runner


# -- (e) floors -------------------------------------------------------------------------------


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _decode_pillow(path: str) -> None:
    with Image.open(path) as image:
        image.load()


def _decode_simplejpeg(path: str) -> None:
    import simplejpeg

    simplejpeg.decode_jpeg(_read(path), colorspace="RGB")


def _per_image(workload: Workload, workers: int, work: Callable[[str], Any]) -> Runner:
    """Does `work` once per image on `workers` threads; yields each image's crop count."""
    images = workload.images()

    def run() -> Iterator[int]:
        if workers <= 1:
            for path, crops in images:
                work(path)
                yield crops
            return
        with ThreadPoolExecutor(workers) as pool:
            for (_, crops), _ in zip(images, pool.map(work, [p for p, _ in images])):
                yield crops

    return _runner(workload, run, None, threads=max(1, workers))


def floor(workload: Workload, workers: int, key: str) -> Runner:
    """A floor: the cost of reading or fully decoding each image once, nothing else."""
    work = {"floor_read": _read, "floor_decode_pillow": _decode_pillow,
            "floor_decode_simplejpeg": _decode_simplejpeg}[key]
    if key == "floor_decode_simplejpeg":
        import simplejpeg  # noqa: F401  (fail early when it is missing)
    return _per_image(workload, workers, work)


def cycled(workload: Workload, crops: int) -> Workload:
    """The workload repeated until it has at least `crops` crops (floors only: they are fast)."""
    if crops <= len(workload):
        return workload.head(crops)
    times = -(-crops // len(workload))
    return Workload(workload.name, workload.title, workload.image_dir,
                    workload.filenames * times, np.tile(workload.boxes, (times, 1)),
                    np.tile(workload.file_bytes, times), workload.regions_per_image)


def make_runner(key: str, workload: Workload, crops: int, workers: int) -> Runner:
    """Prepares contender `key` for the first `crops` crops of `workload`."""
    contender = BY_KEY[key]
    if contender.kind == "floor":
        return floor(cycled(workload, crops), workers, key)
    head = workload.head(crops)
    if key == "classic":
        return classic(head, workers)
    if key in ("tf_aliased", "tf_antialias", "tf_cache"):
        runner = tf_data(head, workers, antialias=key == "tf_antialias", cache=key == "tf_cache")
    elif key == "torch_pillow":
        runner = torch_pillow(head, workers)
    else:
        options = dict(contender.options)
        runner = roi_dataset(head, options.pop("workers", workers), options)
        if key == "roi_jax_pillow":
            runner = without_native_decoder(runner)
    if contender.kind == "cached":
        for batch in runner.run():  # epoch 1, untimed: fills the cache
            consume(batch)
    return runner
