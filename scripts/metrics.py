"""Classification metrics shared by training, evaluation and the model card (numpy only)."""

from __future__ import annotations

import numpy as np

from edge.labels import LABELS, NUM_LABELS


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, balanced accuracy, per-class recall (by canonical label) and a 7x7 confusion
    matrix (rows true, columns predicted, canonical order). Classes absent from y_true are left out
    of the balanced accuracy."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    conf = np.zeros((NUM_LABELS, NUM_LABELS), dtype=np.int64)
    np.add.at(conf, (y_true, y_pred), 1)
    support = conf.sum(axis=1)
    present = support > 0
    recall = np.divide(np.diag(conf), np.maximum(support, 1))
    n = int(len(y_true))
    return {
        "n": n,
        "accuracy": float(np.diag(conf).sum() / max(n, 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class_recall": {LABELS[i]: (float(recall[i]) if present[i] else None) for i in range(NUM_LABELS)},
        "support": {LABELS[i]: int(support[i]) for i in range(NUM_LABELS)},
        "confusion": conf.tolist(),
    }
