"""`KerasAdapter`: the Keras `DataAdapter` hooks of a dataset that serves its own passes.

`model.fit` uses a `DataAdapter` instance as it is (Keras >= 3.7); why
`RoiDataset` is one instead of going through Keras's `PyDatasetAdapter` is
told at the top of `dataset.py`. This mixin holds every hook: the NumPy, JAX,
PyTorch and TensorFlow views of a pass, the partial-batch and size hooks,
and the refusal of TensorFlow multi-worker training. It is the only module
of the package that imports `keras.src`.

What the class it is mixed into provides (the whole interface):

- `output_spec`: the `OutputSpec` of its batches;
- `iter_batches()`: one pass of NumPy batches;
- `_pass_batches(spec)`: one pass as `(number, batch, rows)`, its batches
  packed with `spec`;
- `shard`, `drop_remainder`, `batch_size`, `index` (its rows) and `len()`;
- `_progress`: the `Progress` that `num_batches` tells when Keras resets an
  iterator;

and its `on_epoch_end` raises `_take_pending_error()`.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sized
from typing import Any

import numpy as np
from keras.src.trainers.data_adapters.data_adapter import DataAdapter

from keras_roi_datagen.batching import Batch, OutputSpec
from keras_roi_datagen.errors import UnsupportedSetupError
from keras_roi_datagen.planning import Progress

__all__ = ["KerasAdapter"]


class KerasAdapter(DataAdapter):  # type: ignore[misc]
    """The Keras `DataAdapter` hooks over a dataset's own passes.

    Mixed into `RoiDataset`; see the module docstring for what it needs
    from the dataset.

    Example:
    ```python
    ds = RoiDataset("via_export.csv", seed=1)
    batches = ds.get_numpy_iterator()  # what `fit` pulls on the JAX backend
    ```
    """

    output_spec: OutputSpec
    shard: tuple[int, int]
    drop_remainder: bool
    index: Sized
    _progress: Progress
    # Transient, per process (dropped when pickled): the TensorFlow pipeline, its open pass,
    # and an error of that pass waiting for `on_epoch_end`.
    _tf_dataset: Any = None
    _tf_pass: Generator[Batch, None, None] | None = None
    _pending_error: Exception | None = None

    def iter_batches(self) -> Iterator[Batch]:
        """Yields one pass of NumPy batches (provided by the dataset)."""
        raise NotImplementedError

    def _pass_batches(self, spec: OutputSpec | None = None) -> Iterator[tuple[int, Batch, np.ndarray]]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_tf_dataset", "_tf_pass", "_pending_error"):
            state.pop(name, None)
        return state

    def _take_pending_error(self) -> Exception | None:
        error, self._pending_error = self._pending_error, None
        return error

    # -- NumPy, JAX, PyTorch -------------------------------------------------------------------

    def get_numpy_iterator(self) -> Iterator[Batch]:
        """Keras `DataAdapter` hook: NumPy batches of one pass."""
        return self.iter_batches()

    def get_jax_iterator(self) -> Iterator[Batch]:
        """Keras `DataAdapter` hook: JAX accepts the NumPy batches as they are."""
        return self.iter_batches()

    def get_torch_dataloader(self) -> Any:
        """Keras `DataAdapter` hook: the pass as a PyTorch `DataLoader` of tensors.

        Each array becomes a tensor over the same memory (`torch.from_numpy`);
        handed NumPy arrays, Keras's converter copies every batch first.
        """
        from keras.src.trainers.data_adapters import data_adapter_utils

        return data_adapter_utils.get_torch_dataloader(self._torch_batches())

    def _torch_batches(self) -> Generator[Any, None, None]:
        import torch

        def share(value: Any) -> Any:
            # A read-only array stays NumPy: torch warns on it, and Keras copies it.
            if isinstance(value, np.ndarray) and value.flags.writeable:
                return torch.from_numpy(value)
            return value

        batches = self.iter_batches()
        try:
            for batch in batches:
                yield self.output_spec.map(share, batch)
        finally:
            batches.close()  # type: ignore[attr-defined]

    # -- TensorFlow ----------------------------------------------------------------------------

    def get_tf_dataset(self) -> Any:
        """Keras `DataAdapter` hook: the pass as a `tf.data.Dataset` (no extra prefetch).

        The dataset is built once and reused: each iteration over it is one
        pass. Pixels cross into TensorFlow as `uint8` (a quarter of the bytes
        of `float32`) and are cast by TensorFlow, which gives the same values
        as NumPy's cast.
        """
        if self._tf_dataset is None:
            self._tf_dataset = self._make_tf_dataset()
        return self._tf_dataset

    def _make_tf_dataset(self) -> Any:
        import tensorflow as tf

        spec = self.output_spec.raw()
        specs = spec.flatten(spec.signature())
        # Not `Dataset.from_generator`: its op sets glibc's M_TRIM_THRESHOLD to 128 KB for the
        # whole process ("Memory patch applied"), which also fixes the mmap threshold there, so
        # every decoded strip and crop is a fresh mmap: measured 35-45% fewer crops per
        # CPU-second. A counter mapped through `numpy_function` pulls the same batches.
        flag = tf.TensorSpec((), tf.bool)
        # What ends a pass: `more=False` and a batch of no rows.
        empty = spec.flatten(spec.empty())

        def pull(element: Any) -> Any:
            outputs = tf.numpy_function(lambda e: self._tf_next(e, spec, empty), [element],
                                        [flag.dtype, *(t.dtype for t in specs)], stateful=True)
            for tensor, part in zip(outputs, [flag, *specs], strict=True):
                tensor.set_shape(part.shape)
            return outputs[0], spec.unflatten(outputs[1:])

        # Plain graph-building functions: AutoGraph has nothing to convert, and on lambdas it
        # warns ("could not transform") at every `fit`.
        plain = tf.autograph.experimental.do_not_convert
        dataset = (tf.data.Dataset.range(2**62).map(plain(pull))
                   .take_while(plain(lambda more, batch: more))
                   .map(plain(lambda more, batch: batch)))
        if self.output_spec.dtype != np.uint8:
            dtype = tf.as_dtype(self.output_spec.dtype)
            dataset = dataset.map(plain(lambda x, *rest: (tf.cast(x, dtype), *rest)))
        # The dataset decodes ahead on its own workers; tf.data's autotuner and
        # thread pool would only compete with them for cores (as Keras does for
        # its own enqueuer). Measured: +7% crops/s on 2 cores.
        options = tf.data.Options()
        options.autotune.enabled = False
        options.threading.private_threadpool_size = 1
        options.threading.max_intra_op_parallelism = 1
        # The dataset shards itself: each host's batches are its own part.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        dataset = dataset.with_options(options)
        self._refuse_multi_worker(tf)
        return dataset

    def _tf_next(self, element: np.ndarray, spec: OutputSpec, empty: list[np.ndarray]
                 ) -> list[np.ndarray]:
        """The next batch of the TensorFlow pass, flattened behind a `more` flag.

        Element 0 of a `tf.data` iterator starts a pass (closing the previous
        one, whose iterator is gone); the pass's end is `more=False` with the
        `empty` batch, which `take_while` drops.
        """
        if int(element) == 0 or self._tf_pass is None:
            self._close_tf_pass()
            self._tf_pass = self._tf_batches(spec)
        batch = next(self._tf_pass, None)
        if batch is None:
            self._tf_pass = None
            return [np.asarray(False), *empty]
        return [np.asarray(True), *(np.asarray(part) for part in spec.flatten(batch))]

    def _close_tf_pass(self) -> None:
        if self._tf_pass is not None:
            self._tf_pass.close()
            self._tf_pass = None

    def _tf_batches(self, spec: OutputSpec) -> Generator[Batch, None, None]:
        # TensorFlow turns an exception in a generator into an opaque op error.
        # Instead the pass ends, and `on_epoch_end` (which Keras calls in the
        # training thread when the data ends) raises the library's own error.
        try:
            for _, batch, _ in self._pass_batches(spec):
                yield batch
        except Exception as error:
            self._pending_error = error

    def _refuse_multi_worker(self, tf: Any) -> None:
        """Refuses TensorFlow multi-worker training, which cannot serve host parts.

        Keras applies `experimental_distribute_dataset` to the dataset, which
        reads each batch as a global one and splits it between all replicas,
        so every host would train on a fraction of its rows. Handing it
        per-host batches (`distribute_datasets_from_function`) gets no
        further: Keras 3.15.1's `fit` under `MultiWorkerMirroredStrategy`
        passes the whole first batch to `strategy.reduce`, which refuses a
        nested batch (also with a plain `tf.data` dataset of `(x, (y1, y2))`).
        """
        multi_worker = tf.distribute.has_strategy() and isinstance(
            tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy)
        if self.shard[1] > 1 and (multi_worker or "TF_CONFIG" in os.environ):
            raise UnsupportedSetupError(
                f"This dataset is host {self.shard[0]} of {self.shard[1]} under TensorFlow "
                "multi-worker training. Keras 3 feeds a multi-worker strategy through "
                "`experimental_distribute_dataset`, which splits every host's batch between all "
                "replicas (each host would train on part of its rows), and its `fit` under "
                "`MultiWorkerMirroredStrategy` fails on multi-output batches. Train on several "
                "hosts with the JAX backend and `keras.distribution.DataParallel`, or with "
                "PyTorch DDP (README: 'Training on several hosts').")

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def num_batches(self) -> int:
        """Keras `DataAdapter` hook: steps in a full epoch.

        Keras reads it when it drops an iterator (`EpochIterator.reset`, after
        the peek `fit` makes to build the model), right before calling
        `on_epoch_end`; that call then discards the pass instead of counting it.
        """
        self._progress.note_reset()
        return len(self)

    @property
    def has_partial_batch(self) -> bool:
        """Keras `DataAdapter` hook: whether this host's last batch is shorter."""
        return self.partial_batch_size is not None

    @property
    def partial_batch_size(self) -> int | None:
        """Keras `DataAdapter` hook: size of this host's shorter last batch, if any.

        Several hosts never have one: the last global batch is padded.
        """
        if self.drop_remainder or self.shard[1] > 1:
            return None
        return (len(self.index) % self.batch_size) or None
