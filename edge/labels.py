"""Canonical emotion labels and every dataset mapping onto them (the one place they live)."""

from __future__ import annotations

import numpy as np

# Canonical order used everywhere in the service, the models and the API.
LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry")
NUM_LABELS = len(LABELS)
INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

# FER-2013 integer labels: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
FER2013_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_TO_CANON = np.array([INDEX[n] for n in FER2013_NAMES], dtype=np.int64)

# FER+ vote columns: the first seven are emotions; contempt/unknown/NF have no canonical label.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
    "contempt", "unknown", "NF",
)
_FERPLUS_EMOTION_TO_CANON = {
    "neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
    "anger": "angry", "disgust": "disgust", "fear": "fear",
}
# FERPLUS_TO_CANON[j] = canonical index of FER+ column j, or -1 for non-emotion columns.
FERPLUS_TO_CANON = np.array(
    [INDEX[_FERPLUS_EMOTION_TO_CANON[c]] if c in _FERPLUS_EMOTION_TO_CANON else -1
     for c in FERPLUS_COLUMNS],
    dtype=np.int64,
)

# RAVDESS emotion names (index.csv `emotion` column and filename code 1-8). calm -> neutral.
RAVDESS_TO_CANON: dict[str, str] = {
    "neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad",
    "angry": "angry", "fearful": "fear", "disgust": "disgust", "surprised": "surprise",
}
RAVDESS_CODE_TO_NAME: dict[int, str] = {
    1: "neutral", 2: "calm", 3: "happy", 4: "sad", 5: "angry", 6: "fearful", 7: "disgust",
    8: "surprised",
}


def fer2013_to_canon(labels: np.ndarray) -> np.ndarray:
    """Map FER-2013 integer labels (0 angry .. 6 neutral) to canonical indices."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 6):
        raise ValueError("FER-2013 labels must be integers 0-6 (0 angry ... 6 neutral)")
    return FER2013_TO_CANON[labels]


def canon_to_fer2013(canon: np.ndarray) -> np.ndarray:
    """Inverse of fer2013_to_canon."""
    inverse = np.argsort(FER2013_TO_CANON)
    return inverse[np.asarray(canon, dtype=np.int64)]


def ravdess_to_canon(name: str) -> int:
    """Map a RAVDESS emotion name (e.g. 'calm', 'fearful') to a canonical index."""
    try:
        return INDEX[RAVDESS_TO_CANON[name.strip().lower()]]
    except KeyError:
        allowed = ", ".join(RAVDESS_TO_CANON)
        raise ValueError(f"unknown RAVDESS emotion {name!r}; expected one of: {allowed}") from None


def ferplus_soft_targets(votes: np.ndarray, drop_single_votes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """FER+ votes [N,10] -> (soft targets [N,7] in canonical order, usable mask [N]).

    Rows whose top vote is contempt, unknown or not-a-face are unusable (they have no canonical
    emotion); so are rows with no emotion votes. With ``drop_single_votes`` a lone vote for an
    emotion is treated as annotator noise (as in the FER+ paper) when another emotion has more.
    """
    votes = np.asarray(votes, dtype=np.float32)
    top = votes.argmax(axis=1)
    usable = FERPLUS_TO_CANON[top] >= 0
    emo = np.zeros((votes.shape[0], NUM_LABELS), dtype=np.float32)
    for j, c in enumerate(FERPLUS_TO_CANON):
        if c >= 0:
            emo[:, c] += votes[:, j]
    if drop_single_votes:
        keep = ~((emo <= 1.0) & (emo.max(axis=1, keepdims=True) > 1.0))
        emo = emo * keep
    total = emo.sum(axis=1, keepdims=True)
    usable &= total[:, 0] > 0
    soft = np.divide(emo, np.maximum(total, 1e-6))
    return soft, usable


def ferplus_majority(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ majority label in canonical order and the mask of rows whose top vote is an emotion."""
    votes = np.asarray(votes)
    top = votes.argmax(axis=1)
    canon = FERPLUS_TO_CANON[top]
    return np.where(canon >= 0, canon, 0), canon >= 0
