"""Voice front end shared by training and the service: webrtcvad speech gating and log-mel windows.

Audio is 16 kHz mono float32 in [-1, 1]. ``speech_mask``/``speech_only`` gate silence with
webrtcvad over a whole clip and ``SpeechGate`` on a stream (the live voice stage), both with the
``VAD_*`` constants defined here; ``speech_windows`` cuts fixed windows over the gated speech;
``window_features`` turns one window into the model input (log mel filterbank, gain-normalised).
Training, evaluation and the live voice stage all call these same functions.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse
from python_speech_features import get_filterbanks, sigproc

from edge.audio_format import SAMPLE_RATE

WINDOW_S = 2.5                      # one classifier input covers 2.5 s of speech (a whole short sentence)
HOP_S = 0.5                         # sliding windows over a clip advance by 0.5 s
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE)
HOP_SAMPLES = int(HOP_S * SAMPLE_RATE)
MIN_SPEECH_S = 0.3                  # less gated speech than this counts as "no speech"

FRAME_LEN_S = 0.025
FRAME_STEP_S = 0.010
N_MELS = 40
NFFT = 512
N_FRAMES = 1 + int(round((WINDOW_S - FRAME_LEN_S) / FRAME_STEP_S))   # 249 frames per window
FEATURE_SHAPE = (N_FRAMES, N_MELS, 1)

VAD_FRAME_MS = 30
VAD_FRAME_SAMPLES = SAMPLE_RATE * VAD_FRAME_MS // 1000
VAD_AGGRESSIVENESS = 2
VAD_HANGOVER_FRAMES = 3             # keep 90 ms of context either side of detected speech


def _as_float_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio [n], got shape {audio.shape}; average the channels first")
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    return audio.astype(np.float32, copy=False)


def speech_mask(audio: np.ndarray, aggressiveness: int = VAD_AGGRESSIVENESS,
                hangover: int = VAD_HANGOVER_FRAMES) -> np.ndarray:
    """webrtcvad decision per 30 ms frame (bool [n_frames]), dilated by ``hangover`` frames.

    A trailing partial frame is dropped. ``aggressiveness`` is webrtcvad's mode 0 (lenient) to 3.
    """
    import webrtcvad

    if not 0 <= aggressiveness <= 3:
        raise ValueError(f"VAD aggressiveness must be 0-3, not {aggressiveness}")
    x = _as_float_audio(audio)
    n = len(x) // VAD_FRAME_SAMPLES
    if n == 0:
        return np.zeros(0, dtype=bool)
    pcm = (np.clip(x[: n * VAD_FRAME_SAMPLES], -1.0, 1.0) * 32767.0).astype("<i2")
    vad = webrtcvad.Vad(aggressiveness)
    step = VAD_FRAME_SAMPLES * 2
    raw = pcm.tobytes()
    mask = np.fromiter((vad.is_speech(raw[i * step:(i + 1) * step], SAMPLE_RATE) for i in range(n)),
                       dtype=bool, count=n)
    if hangover > 0 and mask.any():
        mask = np.convolve(mask.astype(np.int8), np.ones(2 * hangover + 1, dtype=np.int8), "same") > 0
    return mask


class SpeechGate:
    """The streaming counterpart of ``speech_mask``: webrtcvad on one 30 ms int16 frame at a time.

    ``frame`` returns whether webrtcvad heard speech and the frames to keep now: a speech frame,
    preceded at the onset of speech by up to ``hangover`` frames of context heard before it, and
    ``hangover`` frames of context after the last speech frame. ``silent_frames`` counts the
    frames since the last speech. The live voice stage gates its audio through this.
    """

    def __init__(self, aggressiveness: int = VAD_AGGRESSIVENESS, vad: Any = None,
                 hangover: int = VAD_HANGOVER_FRAMES):
        if vad is None:
            import webrtcvad

            vad = webrtcvad.Vad(aggressiveness)
        self.vad = vad
        self.hangover = hangover
        self.silent_frames = 0
        self._preroll: deque[np.ndarray] = deque(maxlen=hangover)
        self._left = 0               # context frames still to keep after the last speech

    def reset(self) -> None:
        """Forget the stream so far (a new, unrelated stream)."""
        self._preroll.clear()
        self._left = self.silent_frames = 0

    def frame(self, frame: np.ndarray) -> tuple[bool, list[np.ndarray]]:
        """One ``VAD_FRAME_SAMPLES`` int16 frame -> (webrtcvad heard speech, the frames to keep now)."""
        if self.vad.is_speech(frame.tobytes(), SAMPLE_RATE):
            kept = []
            if self._left == 0 and self._preroll:      # speech starts: keep the context before it
                kept.extend(self._preroll)
                self._preroll.clear()
            kept.append(frame)
            self._left = self.hangover
            self.silent_frames = 0
            return True, kept
        self.silent_frames += 1
        if self._left > 0:
            self._left -= 1
            return False, [frame]
        self._preroll.append(frame)
        return False, []


def speech_only(audio: np.ndarray, aggressiveness: int = VAD_AGGRESSIVENESS) -> np.ndarray:
    """The speech frames of ``audio`` (float32), concatenated; empty when there is no speech."""
    x = _as_float_audio(audio)
    mask = speech_mask(x, aggressiveness)
    if not mask.any():
        return np.zeros(0, dtype=np.float32)
    frames = x[: len(mask) * VAD_FRAME_SAMPLES].reshape(len(mask), VAD_FRAME_SAMPLES)
    return np.ascontiguousarray(frames[mask].reshape(-1))


def speech_windows(speech: np.ndarray, window: int = WINDOW_SAMPLES, hop: int = HOP_SAMPLES,
                   min_speech_s: float = MIN_SPEECH_S) -> list[np.ndarray]:
    """Sliding windows over already-gated speech. A short tail gets its own window aligned to the
    end; speech shorter than one window gives one window (zero-padded by ``window_features``);
    less than ``min_speech_s`` gives none."""
    n = len(speech)
    if n < int(min_speech_s * SAMPLE_RATE):
        return []
    if n <= window:
        return [speech]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] + window < n - hop // 2:
        starts.append(n - window)
    return [speech[s:s + window] for s in starts]


@lru_cache(maxsize=64)
def _mel_matrix(warp: float = 1.0) -> scipy.sparse.csr_matrix:
    """The mel filterbank [N_MELS, NFFT//2+1] as a sparse matrix: a single-threaded product that
    neither waits for nor spins up BLAS threads (which cost 10x under CPU contention).

    ``warp`` != 1 (training only: vocal tract length perturbation) stretches the frequency axis:
    the band that listens at f Hz listens at f / warp instead, so a voice sounds as from a speaker
    whose formants and pitch are ``warp`` times higher."""
    fb = get_filterbanks(N_MELS, NFFT, SAMPLE_RATE, lowfreq=60, highfreq=7600)
    if warp != 1.0:
        bins = np.arange(fb.shape[1], dtype=np.float64)
        fb = np.stack([np.interp(bins * warp, bins, row, right=0.0) for row in fb])
    return scipy.sparse.csr_matrix(fb.astype(np.float32))


def log_fbank(audio: np.ndarray, warp: float = 1.0) -> np.ndarray:
    """python_speech_features' ``logfbank`` (pre-emphasis 0.97, 25 ms rectangular frames every
    10 ms, 512-point power spectrum, 40 mel bands 60-7600 Hz) with the filterbank cached, strided
    framing and float32 maths: about 10x faster than calling ``logfbank``. [frames, N_MELS].
    ``warp``: see ``_mel_matrix`` (rounded to 0.01; training augmentation only)."""
    x = sigproc.preemphasis(_as_float_audio(audio), 0.97).astype(np.float32, copy=False)
    flen, fstep = int(FRAME_LEN_S * SAMPLE_RATE), int(FRAME_STEP_S * SAMPLE_RATE)
    n = 1 + int(np.ceil(max(len(x) - flen, 0) / fstep))
    x = np.pad(x, (0, (n - 1) * fstep + flen - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, flen)[::fstep]
    pspec = np.square(np.abs(scipy.fft.rfft(frames, NFFT, axis=-1))) * (1.0 / NFFT)
    # a small floor keeps log() finite on digital silence and zero padding
    return np.log(np.asarray((_mel_matrix(round(warp, 2)) @ pspec.T).T) + 1e-7)


def window_features(audio: np.ndarray, warp: float = 1.0) -> np.ndarray:
    """One window of 16 kHz audio (``WINDOW_SAMPLES`` long; shorter is centred and zero-padded,
    longer is cut to its first window) -> float32 ``FEATURE_SHAPE`` model input.

    40-band log mel filterbank (25 ms / 10 ms), minus the mean over the speech frames: this
    removes the recording gain (microphone distance, actor level) and keeps the spectral shape
    and the loudness contour. The same function serves training and the service (``warp`` is a
    training augmentation, see ``_mel_matrix``).
    """
    x = _as_float_audio(audio)
    if len(x) > WINDOW_SAMPLES:
        x = x[:WINDOW_SAMPLES]
    elif len(x) < WINDOW_SAMPLES:
        pad = WINDOW_SAMPLES - len(x)
        x = np.pad(x, (pad // 2, pad - pad // 2))
    feats = log_fbank(x, warp)[:N_FRAMES]
    energy = feats.mean(axis=1)
    loud = energy > energy.max() - 8.0        # frames within ~35 dB of the loudest
    feats = (feats - feats[loud].mean()) * 0.25
    return np.clip(feats, -8.0, 8.0).astype(np.float32)[:, :, None]


def clip_windows(audio: np.ndarray, aggressiveness: int = VAD_AGGRESSIVENESS,
                 min_speech_s: float = MIN_SPEECH_S) -> tuple[np.ndarray, float]:
    """A whole clip -> (features [n_windows, *FEATURE_SHAPE], seconds of gated speech).

    VAD-gates the clip, cuts sliding windows over the speech and featurises each one; zero windows
    when there is no speech. ``VoiceClassifier.classify_clip`` and training evaluation use this.
    """
    speech = speech_only(audio, aggressiveness)
    wins = speech_windows(speech, min_speech_s=min_speech_s)
    feats = np.stack([window_features(w) for w in wins]) if wins else np.zeros((0, *FEATURE_SHAPE), np.float32)
    return feats, len(speech) / SAMPLE_RATE
