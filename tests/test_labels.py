"""Canonical labels and dataset mappings."""

import numpy as np
import pytest

from edge import labels


def test_canonical_order():
    assert labels.LABELS == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry")


def test_fer2013_round_trip():
    fer = np.arange(7)
    canon = labels.fer2013_to_canon(fer)
    assert [labels.LABELS[c] for c in canon] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert np.array_equal(labels.canon_to_fer2013(canon), fer)


def test_fer2013_rejects_out_of_range():
    with pytest.raises(ValueError, match="0-6"):
        labels.fer2013_to_canon(np.array([7]))


def test_ravdess_calm_is_neutral():
    assert labels.ravdess_to_canon("calm") == labels.INDEX["neutral"]
    assert labels.ravdess_to_canon("fearful") == labels.INDEX["fear"]
    assert labels.ravdess_to_canon("Surprised") == labels.INDEX["surprise"]
    with pytest.raises(ValueError, match="expected one of"):
        labels.ravdess_to_canon("bored")


def test_ferplus_soft_targets_and_majority():
    # columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF
    votes = np.array([
        [0, 8, 1, 0, 0, 0, 0, 0, 1, 0],   # happy; the lone surprise vote is noise
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
        [2, 0, 0, 0, 0, 0, 0, 6, 2, 0],   # contempt majority: unusable
        [0, 0, 0, 5, 0, 0, 5, 0, 0, 0],   # sad/fear tie
    ])
    soft, usable = labels.ferplus_soft_targets(votes)
    assert usable.tolist() == [True, False, False, True]
    assert soft[0, labels.INDEX["happy"]] == pytest.approx(1.0)
    assert soft[3, labels.INDEX["sad"]] == pytest.approx(0.5)
    assert soft[3, labels.INDEX["fear"]] == pytest.approx(0.5)
    majority, ok = labels.ferplus_majority(votes)
    assert ok.tolist() == [True, False, False, True]
    assert majority[0] == labels.INDEX["happy"]
