"""Philox4x32-10 and the uniform draws keyed on `(seed, epoch, row, operation)`.

Philox (Salmon et al., 2011) is the counter-based generator of Random123,
cuRAND and TensorFlow's stateless ops, written here in NumPy integer
arithmetic: only `uint64` multiplies, shifts and xors, so the stream does not
change with the NumPy version. A counter is `(row low word, row high word,
epoch, operation)` under the key `seed`, so a row's numbers depend on nothing
else: not its batch, worker, backend, host count or a resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["philox4x32", "uniforms"]

_MASK = np.uint64(0xFFFFFFFF)
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_SHIFT = np.uint64(32)


def philox4x32(counter: np.ndarray, key: Sequence[int]) -> np.ndarray:
    """Philox4x32-10: four 32-bit words for each 4-word counter, under a 2-word key.

    Args:
        counter: `(n, 4)` integers below 2**32.
        key: Two integers below 2**32.

    Returns:
        `(n, 4)` `uint64` array of 32-bit outputs.

    Example:
    >>> [hex(v) for v in philox4x32(np.zeros((1, 4), np.uint64), (0, 0))[0]]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c = np.asarray(counter, dtype=np.uint64) & _MASK
    c0, c1, c2, c3 = (c[:, i].copy() for i in range(4))
    k0, k1 = np.uint64(key[0]) & _MASK, np.uint64(key[1]) & _MASK
    for round_no in range(10):
        if round_no:
            k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
        p0, p1 = _M0 * c0, _M1 * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT) ^ c1 ^ k0, p1 & _MASK, (p0 >> _SHIFT) ^ c3 ^ k1,
                          p0 & _MASK)
    return np.stack([c0, c1, c2, c3], axis=1)


def uniforms(seed: int, epoch: int, rows: np.ndarray, operations: Sequence[int]
             ) -> dict[int, np.ndarray]:
    """Four uniform floats in (0, 1) per row and operation, keyed on `(seed, epoch, row, operation)`.

    Args:
        seed: The dataset's seed (64 bits: the Philox key).
        epoch: The epoch (the counter's third word).
        rows: Index rows (64 bits: the counter's first two words).
        operations: Operation numbers (the counter's fourth word).

    Returns:
        Per operation, a `(len(rows), 4)` `float64` array.

    Example:
    >>> u = uniforms(seed=1, epoch=0, rows=np.array([3, 4]), operations=[1, 2])
    >>> u[1].shape, bool(((0 < u[2]) & (u[2] < 1)).all())
    ((2, 4), True)
    """
    rows = np.asarray(rows, dtype=np.uint64)
    n = len(rows)
    counter = np.empty((n * len(operations), 4), dtype=np.uint64)
    counter[:, 0] = np.tile(rows & _MASK, len(operations))
    counter[:, 1] = np.tile(rows >> _SHIFT, len(operations))
    counter[:, 2] = np.uint64(epoch) & _MASK
    counter[:, 3] = np.repeat(np.asarray(operations, dtype=np.uint64), n)
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    words = philox4x32(counter, (seed & 0xFFFFFFFF, seed >> 32))
    values = (words.astype(np.float64) + 0.5) / 2.0**32
    return {op: values[k * n:(k + 1) * n] for k, op in enumerate(operations)}
