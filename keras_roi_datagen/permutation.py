"""A keyed bijective permutation of `[0, n)`, computed for any range of positions.

An epoch's shuffled order of 10^8 rows held as an array is 800 MB (and an
argsort of 64-bit keys twice that). `KeyedPermutation` instead computes where
any position goes, vectorised in NumPy: `perm.take(start, stop)` is the slice
`order[start:stop]` of the whole order, computed from the positions alone, in
memory proportional to `stop - start`.

How: a balanced Feistel network over `2k`-bit integers (`4**k >= n`), eight
rounds whose round keys come from SHA-256 of `(seed, epoch, purpose)`, is a
bijection of `[0, 4**k)`; cycle-walking (apply it again until the value falls
below `n`) makes it a bijection of `[0, n)`. Since `4**k < 4n`, a position
walks fewer than four times on average. The order is a pure function of
`(seed, epoch, purpose)`: the same on every machine, process and host count.

`TwoLevelPermutation` orders images, then the regions of each image, so the
regions of an image stay together (`group_by_image`): it needs the image table
(`index_cache.ImageTable`: regions per image and the region rows sorted by
image), and memory proportional to the number of images, never to the rows.

Example:
>>> perm = KeyedPermutation(10, seed=1, epoch=0)
>>> sorted(perm.take(0, 10).tolist()) == list(range(10))
True
>>> bool((perm.inverse(perm.take(3, 7)) == np.arange(3, 7)).all())
True
"""

from __future__ import annotations

import hashlib

import numpy as np

from keras_roi_datagen.mapped import gather

__all__ = ["KeyedPermutation", "TwoLevelPermutation", "round_keys"]

ROUNDS = 8
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def round_keys(seed: int, epoch: int, purpose: str) -> np.ndarray:
    """Returns the `ROUNDS` 64-bit round keys of `(seed, epoch, purpose)`.

    Args:
        seed: The dataset's seed (any integer).
        epoch: The epoch (any integer).
        purpose: What the order is for (`"rows"`, `"images"`, ...): different
            purposes give independent orders.

    Returns:
        A `uint64` array of `ROUNDS` keys.
    """
    digest = hashlib.sha256(f"keras-roi-datagen/feistel/{seed}/{epoch}/{purpose}".encode()).digest()
    more = hashlib.sha256(digest).digest()
    return np.frombuffer(digest + more, dtype="<u8")[:ROUNDS].astype(np.uint64)


def _mix(values: np.ndarray, key: np.ndarray | np.uint64) -> np.ndarray:
    # splitmix64's finaliser over (value + key): a keyed 64-bit mixing function.
    with np.errstate(over="ignore"):
        z = values * _GOLDEN + key
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        result: np.ndarray = z ^ (z >> np.uint64(31))
    return result


def _half_bits(n: np.ndarray) -> np.ndarray:
    """Per domain size, the half width `k` with `4**k >= n` (at least 1)."""
    n = np.maximum(np.asarray(n, dtype=np.uint64), np.uint64(2))
    bits = np.ceil(np.log2(n.astype(np.float64))).astype(np.uint64)
    # Floating-point log2 may be off by one near powers of two: correct it.
    bits = np.where(np.left_shift(np.uint64(1), bits) < n, bits + np.uint64(1), bits)
    bits = np.where((bits > 0) & (np.left_shift(np.uint64(1), bits - np.uint64(1)) >= n),
                    bits - np.uint64(1), bits)
    half: np.ndarray = np.maximum((bits + np.uint64(1)) // np.uint64(2), np.uint64(1))
    return half


def _feistel(x: np.ndarray, k: np.ndarray, keys: np.ndarray, extra: np.ndarray | np.uint64,
             inverse: bool = False) -> np.ndarray:
    mask = (np.uint64(1) << k) - np.uint64(1)
    left, right = x >> k, x & mask
    order = range(ROUNDS - 1, -1, -1) if inverse else range(ROUNDS)
    for r in order:
        with np.errstate(over="ignore"):
            round_key = keys[r] ^ extra
        if inverse:
            left, right = right ^ (_mix(left, round_key) & mask), left
        else:
            left, right = right, left ^ (_mix(right, round_key) & mask)
    result: np.ndarray = (left << k) | right
    return result


def _walk(x: np.ndarray, n: np.ndarray, k: np.ndarray, keys: np.ndarray,
          extra: np.ndarray | np.uint64, inverse: bool) -> np.ndarray:
    y = _feistel(x, k, keys, extra, inverse)
    out = y >= n
    while out.any():
        index = np.flatnonzero(out)
        sub_k = k[index] if k.ndim else k
        sub_extra = extra[index] if isinstance(extra, np.ndarray) and extra.ndim else extra
        sub_n = n[index] if n.ndim else n
        y[index] = _feistel(y[index], sub_k, keys, sub_extra, inverse)
        out[index] = y[index] >= sub_n
    return y


def _shuffle_within(within: np.ndarray, sizes: np.ndarray, groups: np.ndarray, salt: np.uint64,
                    keys: np.ndarray) -> np.ndarray:
    """Moves each offset `within[i]` of a group of `sizes[i]` to its keyed place in that group.

    Every group (an image, a window) gets its own bijection, keyed by its id.
    """
    shuffled = within.copy()
    many = sizes > 1
    if many.any():
        extra = _mix(groups[many].astype(np.uint64), salt)
        shuffled[many] = _walk(within[many], sizes[many], _half_bits(sizes[many]), keys, extra,
                               False)
    return shuffled


class KeyedPermutation:
    """A bijection of `[0, n)`: a pure function of `(n, seed, epoch, purpose)`.

    Args:
        n: The size of the domain (rows, images, ...).
        seed: The seed. Any integer.
        epoch: The epoch. Any integer. Defaults to 0.
        purpose: What the order is for; independent orders per purpose.
            Defaults to `"rows"`.

    Example:
    >>> perm = KeyedPermutation(1_000_000_000, seed=7, epoch=3)
    >>> rows = perm.take(5_000, 5_008)  # 8 positions of a 10^9 order
    >>> len(rows), bool((rows < 1_000_000_000).all())
    (8, True)
    """

    def __init__(self, n: int, seed: int, epoch: int = 0, purpose: str = "rows") -> None:
        if not isinstance(n, (int, np.integer)) or n < 0 or n >= 2**62:
            raise ValueError(f"`n` must be an integer in [0, 2**62). Received: n={n!r}")
        self.n, self.seed, self.epoch, self.purpose = int(n), int(seed), int(epoch), purpose
        self._keys = round_keys(self.seed, self.epoch, purpose)
        self._k = _half_bits(np.asarray(self.n))

    def __len__(self) -> int:
        return self.n

    def _check(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions)
        if positions.size and (positions.min() < 0 or positions.max() >= self.n):
            raise IndexError(f"positions must lie in [0, {self.n}).")
        return positions.astype(np.uint64)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Returns `order[positions]`: where each position goes.

        Args:
            positions: Integers in `[0, n)`, any shape.

        Returns:
            `int64` values in `[0, n)`, the same shape.

        Raises:
            IndexError: For a position outside `[0, n)`.
        """
        x = self._check(positions)
        if self.n <= 1:
            return x.astype(np.int64)
        return _walk(x.ravel(), np.asarray(self.n, dtype=np.uint64), self._k, self._keys, np.uint64(0),
                     False).reshape(x.shape).astype(np.int64)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Returns the positions whose image is `values` (`perm.inverse(perm(p)) == p`)."""
        y = self._check(values)
        if self.n <= 1:
            return y.astype(np.int64)
        return _walk(y.ravel(), np.asarray(self.n, dtype=np.uint64), self._k, self._keys, np.uint64(0),
                     True).reshape(y.shape).astype(np.int64)

    def take(self, start: int, stop: int) -> np.ndarray:
        """Returns `order[start:stop]`, computed without the rest of the order."""
        start, stop = max(0, int(start)), min(self.n, int(stop))
        return self(np.arange(start, max(start, stop), dtype=np.int64))

    def __repr__(self) -> str:
        return (f"KeyedPermutation(n={self.n}, seed={self.seed}, epoch={self.epoch}, "
                f"purpose={self.purpose!r})")


class TwoLevelPermutation:
    """Images in a keyed order, then each image's regions in a keyed order.

    The regions of an image are consecutive in the order (for
    `group_by_image`); images and regions are both shuffled, independently
    per epoch. Memory: a few arrays of one entry per image.

    Args:
        image_starts: `n_images + 1` offsets into `by_image`
            (`index_cache.ImageTable.starts`).
        by_image: Region rows sorted by image (`ImageTable.by_image`).
        seed: The seed.
        epoch: The epoch. Defaults to 0.
        purpose: Defaults to `"group_by_image"`.

    Example:
    >>> starts, by_image = np.array([0, 2, 5]), np.array([0, 3, 1, 2, 4])
    >>> perm = TwoLevelPermutation(starts, by_image, seed=1)
    >>> sorted(perm.take(0, 5).tolist())
    [0, 1, 2, 3, 4]
    """

    def __init__(self, image_starts: np.ndarray, by_image: np.ndarray, seed: int,
                 epoch: int = 0, purpose: str = "group_by_image") -> None:
        self.starts = np.asarray(image_starts, dtype=np.int64)
        self.by_image = by_image
        self.n = int(self.starts[-1]) if len(self.starts) else 0
        n_images = max(0, len(self.starts) - 1)
        self.images = KeyedPermutation(n_images, seed, epoch, f"{purpose}/images")
        self._keys = round_keys(int(seed), int(epoch), f"{purpose}/regions")
        counts = np.diff(self.starts)
        # Per slot (an image's place in the order): the image, and where its regions begin.
        self._slot_image = self.images.take(0, n_images)
        self._slot_offsets = np.zeros(n_images + 1, dtype=np.int64)
        np.cumsum(counts[self._slot_image], out=self._slot_offsets[1:])

    def __len__(self) -> int:
        return self.n

    def take(self, start: int, stop: int) -> np.ndarray:
        """Returns region rows `order[start:stop]`."""
        start, stop = max(0, int(start)), min(self.n, int(stop))
        positions = np.arange(start, max(start, stop), dtype=np.int64)
        return self(positions)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Returns the region rows at `positions` of the order (`int64`)."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= self.n):
            raise IndexError(f"positions must lie in [0, {self.n}).")
        slots = np.searchsorted(self._slot_offsets, positions, side="right") - 1
        images = self._slot_image[slots]
        within = (positions - self._slot_offsets[slots]).astype(np.uint64)
        counts = (self.starts[images + 1] - self.starts[images]).astype(np.uint64)
        shuffled = _shuffle_within(within, counts, images, np.uint64(0x5DEECE66D), self._keys)
        return np.asarray(gather(self.by_image, self.starts[images] + shuffled.astype(np.int64)),
                          dtype=np.int64)

    def __repr__(self) -> str:
        return f"TwoLevelPermutation({len(self.starts) - 1} images, {self.n} regions)"


class WindowedPermutation:
    """An order shuffled again inside each run of `window` consecutive positions.

    Over an image-grouped order (`TwoLevelPermutation`), this keeps every
    region within about `window` positions of its image's other regions (so a
    worker that decodes a window's rows together decodes each image about
    once) while a batch still mixes the regions of many images.

    Args:
        base: The order to shuffle within windows (anything with `len()` and
            `base(positions)`).
        window: Positions per window (at least 1). The last window holds the
            remaining `len(base) % window` positions.
        seed: The seed.
        epoch: The epoch. Defaults to 0.
        purpose: Defaults to `"window"`.

    Example:
    >>> starts, by_image = np.array([0, 3, 6]), np.arange(6)
    >>> perm = WindowedPermutation(TwoLevelPermutation(starts, by_image, seed=1), 4, seed=1)
    >>> sorted(perm.take(0, 6).tolist())
    [0, 1, 2, 3, 4, 5]
    """

    def __init__(self, base: TwoLevelPermutation, window: int, seed: int, epoch: int = 0,
                 purpose: str = "window") -> None:
        if window < 1:
            raise ValueError(f"`window` must be at least 1. Received: window={window!r}")
        self.base, self.window, self.n = base, int(window), len(base)
        self._keys = round_keys(int(seed), int(epoch), purpose)

    def __len__(self) -> int:
        return self.n

    def take(self, start: int, stop: int) -> np.ndarray:
        """Returns `order[start:stop]`."""
        start, stop = max(0, int(start)), min(self.n, int(stop))
        return self(np.arange(start, max(start, stop), dtype=np.int64))

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Returns the rows at `positions` of the order (`int64`)."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= self.n):
            raise IndexError(f"positions must lie in [0, {self.n}).")
        windows = positions // self.window
        firsts = windows * self.window
        sizes = np.minimum(self.window, self.n - firsts).astype(np.uint64)
        within = (positions - firsts).astype(np.uint64)
        shuffled = _shuffle_within(within, sizes, windows, np.uint64(0x2545F4914F6CDD1D),
                                   self._keys)
        return np.asarray(self.base(firsts + shuffled.astype(np.int64)), dtype=np.int64)

    def __repr__(self) -> str:
        return f"WindowedPermutation({self.base!r}, window={self.window})"
