"""Speech-emotion classification: the int8 TFLite voice model over VAD-gated sliding windows.

``VoiceClassifier.classify_clip`` is the one path from a 16 kHz clip to 7 canonical probabilities
(training evaluation, scripts/evaluate.py voice); the live voice stage (``edge.stages.VoiceStage``)
calls ``classify_window`` on its buffer of gated speech. ``python -m edge.inference.voice MODEL [WAV...]`` times it (run under ``taskset -c 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.inference.runtime import ModelError, TFLiteModel
from edge.inference.voice_features import (
    FEATURE_SHAPE,
    HOP_S,
    MIN_SPEECH_S,
    SAMPLE_RATE,
    VAD_AGGRESSIVENESS,
    WINDOW_S,
    clip_windows,
    window_features,
)
from edge.labels import NUM_LABELS

__all__ = ["HOP_S", "SAMPLE_RATE", "WINDOW_S", "VoiceClassifier", "VoiceDetail"]


@dataclass(frozen=True)
class VoiceDetail:
    """How a clip was classified: ``speech`` is False (and the probabilities zeros) when the VAD
    found less than ``min_speech_s`` (default ``MIN_SPEECH_S``, 0.3 s) of speech."""

    speech: bool
    speech_s: float
    n_windows: int
    window_probs: np.ndarray = field(repr=False)


class VoiceClassifier:
    """Emotion probabilities (canonical order) for 16 kHz mono audio."""

    window_s = WINDOW_S
    hop_s = HOP_S
    sample_rate = SAMPLE_RATE

    def __init__(self, path: str | Path, num_threads: int = 1, aggressiveness: int = VAD_AGGRESSIVENESS,
                 min_speech_s: float = MIN_SPEECH_S):
        self.model = TFLiteModel(path, num_threads=num_threads, name="voice_emotion")
        self.aggressiveness = aggressiveness
        self.min_speech_s = min_speech_s
        shape = self.model.input_shape
        if len(shape) != 4 or shape[1:] != FEATURE_SHAPE:
            raise ModelError(f"voice model {path} expects input {list(shape)}, not "
                             f"[1,{','.join(map(str, FEATURE_SHAPE))}]; use a model made by "
                             "scripts/train_voice.py")
        if self.model.outputs[0].shape[-1] != NUM_LABELS:
            raise ModelError(f"voice model {path} has {self.model.outputs[0].shape[-1]} outputs, "
                             f"not {NUM_LABELS}; use a model made by scripts/train_voice.py")

    def classify_window(self, x: np.ndarray) -> np.ndarray:
        """One window -> probabilities [7]. ``x`` is 1-D audio (``WINDOW_S`` long, shorter is
        padded) or features of ``FEATURE_SHAPE`` from ``window_features``."""
        x = np.asarray(x)
        feats = window_features(x) if x.ndim == 1 else x.reshape(FEATURE_SHAPE).astype(np.float32)
        return self.model.run(feats[None])[0][0]

    def classify_clip(self, audio_16k: np.ndarray) -> tuple[np.ndarray, VoiceDetail]:
        """Audio (float32 in [-1, 1] or int16, 16 kHz mono) -> (mean window probabilities [7],
        detail). VAD-gates, cuts ``WINDOW_S`` windows every ``HOP_S`` over the speech only and
        averages their probabilities; zeros with ``detail.speech == False`` when there is less
        than ``min_speech_s`` of speech."""
        feats, speech_s = clip_windows(audio_16k, self.aggressiveness, self.min_speech_s)
        if len(feats) == 0:
            return (np.zeros(NUM_LABELS, np.float32),
                    VoiceDetail(False, speech_s, 0, np.zeros((0, NUM_LABELS), np.float32)))
        probs = np.stack([self.model.run(f[None])[0][0] for f in feats])
        return probs.mean(axis=0), VoiceDetail(True, speech_s, len(feats), probs)


def _benchmark(argv: list[str] | None = None) -> int:
    import argparse
    import time

    p = argparse.ArgumentParser(description="time features + inference per second of audio")
    p.add_argument("model")
    p.add_argument("wavs", nargs="*", help="16 kHz mono files (default: 60 s of synthetic voiced audio)")
    args = p.parse_args(argv)
    clf = VoiceClassifier(args.model, num_threads=1)
    clips = []
    if args.wavs:
        import soundfile as sf

        clips = [sf.read(w, dtype="float32")[0] for w in args.wavs]
    else:
        rng = np.random.default_rng(0)
        t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
        for _ in range(15):   # buzzy harmonic "vowels" with a syllable-rate envelope
            f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
            phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
            x = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
            clips.append((0.1 * x + 0.003 * rng.standard_normal(len(t))).astype(np.float32))
    clf.classify_clip(clips[0])          # warm-up
    seconds = sum(len(c) for c in clips) / SAMPLE_RATE
    start = time.perf_counter()
    windows = sum(clf.classify_clip(c)[1].n_windows for c in clips)
    elapsed = time.perf_counter() - start
    print(f"{1000 * elapsed / seconds:.2f} ms per audio second ({len(clips)} clips, {seconds:.1f} s, "
          f"{windows} windows, {1000 * elapsed / max(windows, 1):.2f} ms per window, "
          f"backend {clf.model.backend})")
    return 0


if __name__ == "__main__":
    raise SystemExit(_benchmark())
