"""Music that no training script ever hears, for the off-corpus checks only.

The sound model's training backgrounds (``sound_data.synth_background``, ``train_sounds.room_bed``)
make their "music" from additive harmonic tones. A model trained over them can learn that one
generator rather than music, so a bench over the same generator flatters it. ``band`` is made
another way: plucked strings (Karplus-Strong), a bass line, a frequency-modulated lead with
vibrato, drums (a pitched-down sine kick, noise snare and hi-hat) and, half the time, a sung
vowel line (a glottal pulse train through vowel formants: what a television's singer puts in the
room, and the closest thing to a cry). Never import this module from a training script.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from scripts.sound_data import SR, unit_rms

VOWELS = ((700, 1220, 2600), (300, 2300, 3000), (400, 800, 2600), (500, 1800, 2500), (350, 700, 2450))


def _pluck(freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """One plucked string (Karplus-Strong: a noise burst in a damped delay line)."""
    period = max(2, int(SR / freq))
    out = np.zeros(n, np.float32)
    buf = rng.uniform(-1, 1, period).astype(np.float32)
    damp = float(rng.uniform(0.990, 0.998))
    for i in range(0, n, period):
        m = min(period, n - i)
        out[i:i + m] = buf[:m]
        buf = damp * 0.5 * (buf + np.roll(buf, -1))
    return out


def _fm_lead(freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    vib = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 6.5) * t)
    phase = 2 * np.pi * np.cumsum(freq * vib) / SR
    x = np.sin(phase + rng.uniform(0.5, 2.5) * np.sin(phase * rng.choice([1.0, 2.0, 3.0])))
    env = np.minimum(1, t / 0.03) * np.exp(-t / rng.uniform(0.3, 1.5))
    return (x * env).astype(np.float32)


def _sung(freq: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """A sung vowel: a glottal pulse train with vibrato through three formant resonators."""
    t = np.arange(n) / SR
    f0 = freq * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4.5, 6) * t))
    phase = np.cumsum(f0) / SR
    pulses = np.diff(np.floor(phase), prepend=0.0).astype(np.float64)
    x = lfilter([1.0], [1.0, -0.9], pulses)       # glottal roll-off
    out = np.zeros(n)
    for k, f in enumerate(VOWELS[int(rng.integers(len(VOWELS)))]):
        r = np.exp(-np.pi * (60 + 40 * k) / SR)
        out += lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x) / (k + 1)
    env = np.minimum(1, t / 0.08) * np.minimum(1, (t[-1] - t + 1e-3) / 0.08)
    return (out * env).astype(np.float32)


def _drums(n: int, beat: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n, np.float32)
    k = int(0.15 * SR)
    tk = np.arange(k) / SR
    kick = (np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-tk / 0.03)) / SR) * np.exp(-tk / 0.08)).astype(np.float32)
    snare = (rng.standard_normal(k) * np.exp(-tk / 0.05)).astype(np.float32) * 0.5
    hat_n = int(0.04 * SR)
    hat = np.diff(rng.standard_normal(hat_n + 1)).astype(np.float32) * np.exp(-np.arange(hat_n) / (0.01 * SR)) * 0.2
    for i, start in enumerate(range(0, n, beat // 2)):
        for part, on in ((kick, i % 4 == 0), (snare, i % 4 == 2), (hat, True)):
            if on:
                m = min(len(part), n - start)
                out[start:start + m] += part[:m]
    return out


def band(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of music from this module's instruments, unit RMS."""
    beat = int(SR * 60 / rng.uniform(70, 140))
    key = rng.uniform(98, 196)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    out = np.zeros(n, np.float32)
    sing = rng.random() < 0.5
    for start in range(0, n, beat):
        m = min(n - start, beat * int(rng.integers(1, 3)))
        note = key * 2 ** ((scale[int(rng.integers(len(scale)))] + 12) / 12)
        out[start:start + m] += _pluck(note, m, rng)
        if start % (2 * beat) == 0:
            out[start:start + m] += 0.8 * _pluck(key / 2 * 2 ** (scale[int(rng.integers(3))] / 12), m, rng)
        if rng.random() < 0.5:
            out[start:start + m] += 0.5 * _fm_lead(note * 2, m, rng)
        if sing and rng.random() < 0.7:
            out[start:start + m] += 3.0 * _sung(note, m, rng)
    out += 0.5 * _drums(n, beat, rng)
    return unit_rms(out).astype(np.float32)
