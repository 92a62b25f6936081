"""How mixed the batches of a plan are: distinct images and label entropy per batch.

Grouping rows by image makes decoding cheaper and batches less mixed; this
measures the second half of that trade, beside the speed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def label_entropy(labels: np.ndarray) -> float:
    """Shannon entropy (bits) of the labels in one batch."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def batch_mixing(batches: Iterable[np.ndarray], images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean distinct images and mean label entropy over the batches of a plan.

    Args:
        batches: Row indices of each batch.
        images: Image id of each row.
        labels: Label (class index) of each row.

    Returns:
        `{"images_per_batch", "label_entropy_bits"}`.
    """
    distinct, entropy = [], []
    for rows in batches:
        rows = np.asarray(rows)
        distinct.append(len(np.unique(images[rows])))
        entropy.append(label_entropy(labels[rows]))
    return {"images_per_batch": float(np.mean(distinct)), "label_entropy_bits": float(np.mean(entropy))}
