"""Sound events: what the microphone hears, one 1 s window every 0.5 s, shared by training and the service.

Classes (``SOUND_CLASSES``): ``speech``, ``scream``, ``cry``, ``moan``, ``other_vocal`` (laughter,
coughs, sighs, mouth noises ...) and ``background`` (silence, room noise, music, beeps).
``sound_features`` turns one window into the model input: the same 40-band log mel filterbank as the
speech model (``voice_features.log_fbank``), minus the window's mean level (so the microphone's gain
does not matter). ``SoundClassifier`` runs the int8 model; windows too quiet to hold a vocal sound
are called ``background`` without running it. ``clip_sound_events`` is the one path from a whole clip
to per-window probabilities (evaluation and training reports call it; the live stage in
``edge.stages.VoiceStage`` calls ``SoundClassifier.classify_window`` on the same windows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.inference.runtime import ModelError, TFLiteModel
from edge.inference.voice_features import (
    FRAME_LEN_S,
    FRAME_STEP_S,
    N_MELS,
    SAMPLE_RATE,
    VAD_FRAME_SAMPLES,
    _as_float_audio,
    log_fbank,
)

SOUND_CLASSES: tuple[str, ...] = ("speech", "scream", "cry", "moan", "other_vocal", "background")
DISTRESS_SOUNDS: tuple[str, ...] = ("scream", "cry", "moan")
SPEECH = SOUND_CLASSES.index("speech")
BACKGROUND = SOUND_CLASSES.index("background")
DISTRESS_IDX = tuple(SOUND_CLASSES.index(k) for k in DISTRESS_SOUNDS)
NUM_SOUNDS = len(SOUND_CLASSES)

SOUND_WINDOW_S = 1.0
SOUND_HOP_S = 0.5
SOUND_WINDOW_SAMPLES = int(SOUND_WINDOW_S * SAMPLE_RATE)
SOUND_HOP_SAMPLES = int(SOUND_HOP_S * SAMPLE_RATE)
SOUND_FRAMES = 1 + int(round((SOUND_WINDOW_S - FRAME_LEN_S) / FRAME_STEP_S))     # 99
SOUND_FEATURE_SHAPE = (SOUND_FRAMES, N_MELS, 1)
QUIET_DBFS = -55.0        # a window whose loudest 30 ms is below this is background, unclassified


def peak_dbfs(audio: np.ndarray) -> float:
    """Level of the loudest 30 ms frame, dB re. full scale (-120 for digital silence)."""
    x = _as_float_audio(audio)
    n = max(1, len(x) // VAD_FRAME_SAMPLES)
    frames = x[: n * VAD_FRAME_SAMPLES].reshape(n, -1) if len(x) >= VAD_FRAME_SAMPLES else x[None]
    rms = float(np.sqrt(np.max(np.mean(np.square(frames), axis=1)) + 1e-12))
    return max(-120.0, 20.0 * np.log10(rms + 1e-12))


def sound_features(audio: np.ndarray) -> np.ndarray:
    """One window of 16 kHz audio (``SOUND_WINDOW_SAMPLES``; shorter is centred and zero-padded,
    longer is cut to its last window) -> float32 ``SOUND_FEATURE_SHAPE`` model input."""
    x = _as_float_audio(audio)
    if len(x) > SOUND_WINDOW_SAMPLES:
        x = x[-SOUND_WINDOW_SAMPLES:]
    elif len(x) < SOUND_WINDOW_SAMPLES:
        pad = SOUND_WINDOW_SAMPLES - len(x)
        x = np.pad(x, (pad // 2, pad - pad // 2))
    feats = log_fbank(x)[:SOUND_FRAMES]
    energy = feats.mean(axis=1)
    loud = energy > energy.max() - 8.0
    feats = (feats - feats[loud].mean()) * 0.25
    return np.clip(feats, -8.0, 8.0).astype(np.float32)[:, :, None]


def sound_windows(audio: np.ndarray) -> list[np.ndarray]:
    """The live stage's windows over a clip: ``SOUND_WINDOW_S`` every ``SOUND_HOP_S``, the first
    ending one hop into the clip (the stream starts silent), a clip shorter than a window gives one."""
    x = _as_float_audio(audio)
    ends = list(range(SOUND_HOP_SAMPLES, len(x) + 1, SOUND_HOP_SAMPLES)) or [len(x)]
    return [x[max(0, e - SOUND_WINDOW_SAMPLES):e] for e in ends]


def distress_of(probs: np.ndarray) -> float:
    """Vocal-distress probability of one window: P(scream) + P(cry) + P(moan)."""
    return float(np.sum(np.asarray(probs)[list(DISTRESS_IDX)]))


class SoundClassifier:
    """Sound-event probabilities (``SOUND_CLASSES`` order) for 1 s windows of 16 kHz audio."""

    window_s = SOUND_WINDOW_S
    hop_s = SOUND_HOP_S

    def __init__(self, path: str | Path, num_threads: int = 1, quiet_dbfs: float = QUIET_DBFS):
        self.model = TFLiteModel(path, num_threads=num_threads, name="sound_events")
        self.quiet_dbfs = quiet_dbfs
        shape = self.model.input_shape
        if len(shape) != 4 or tuple(shape[1:]) != SOUND_FEATURE_SHAPE:
            raise ModelError(f"sound model {path} expects input {list(shape)}, not "
                             f"[1,{','.join(map(str, SOUND_FEATURE_SHAPE))}]; use a model made by "
                             "scripts/train_sounds.py")
        if self.model.outputs[0].shape[-1] != NUM_SOUNDS:
            raise ModelError(f"sound model {path} has {self.model.outputs[0].shape[-1]} outputs, not "
                             f"{NUM_SOUNDS} ({', '.join(SOUND_CLASSES)}); use a model made by "
                             "scripts/train_sounds.py")
        self._quiet = np.zeros(NUM_SOUNDS, np.float32)
        self._quiet[BACKGROUND] = 1.0

    def classify_window(self, audio: np.ndarray) -> np.ndarray:
        """One window (1-D audio) -> probabilities [NUM_SOUNDS]; a quiet window is background."""
        x = _as_float_audio(audio)
        if peak_dbfs(x) < self.quiet_dbfs:
            return self._quiet.copy()
        probs = np.asarray(self.model.run(sound_features(x)[None])[0][0], dtype=np.float32)
        return probs / max(float(probs.sum()), 1e-9)


def clip_sound_events(classifier: SoundClassifier, audio: np.ndarray) -> np.ndarray:
    """Per-window probabilities [n_windows, NUM_SOUNDS] over a whole clip, the live stage's windows."""
    return np.stack([classifier.classify_window(w) for w in sound_windows(audio)])
