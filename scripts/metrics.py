"""Classification metrics shared by training, evaluation and the model card (numpy only)."""

from __future__ import annotations

import numpy as np

from edge.labels import LABELS


def classification_report(y_true: np.ndarray, y_pred: np.ndarray,
                          labels: tuple[str, ...] | list[str] = LABELS) -> dict:
    """Accuracy, balanced accuracy, per-class recall (by label name; the canonical emotion labels
    unless ``labels`` names other classes) and a confusion matrix (rows true, columns predicted).
    Classes absent from y_true are left out of the balanced accuracy."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n_labels = max(len(labels), int(y_true.max(initial=-1)) + 1, int(y_pred.max(initial=-1)) + 1)
    names = list(labels) + [str(i) for i in range(len(labels), n_labels)]
    conf = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(conf, (y_true, y_pred), 1)
    support = conf.sum(axis=1)
    present = support > 0
    recall = np.divide(np.diag(conf), np.maximum(support, 1))
    n = int(len(y_true))
    return {
        "n": n,
        "accuracy": float(np.diag(conf).sum() / max(n, 1)),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class_recall": {names[i]: (float(recall[i]) if present[i] else None) for i in range(n_labels)},
        "support": {names[i]: int(support[i]) for i in range(n_labels)},
        "confusion": conf.tolist(),
    }


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative (ties count
    half); nan when either side is empty."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
