"""The sound-event data: which shared folder feeds which class, the speaker split, and synthetic
room sound (silence, noise, hum, music-like tones, monitor beeps) for the ``background`` class, and
songs (``song``: a synthetic singer over a band, for ``train_sounds.py --songs``).

Mapping (``../shared/data``):

- ``speech``: RAVDESS actors 01-16 (all eight emotions, shouted angry and fearful sentences too);
  optionally espeak-ng sentences in English and French (more words than RAVDESS's two sentences).
- ``scream``: Deeply ``screaming``; EmoGator ``Fear`` and ``Distress`` (acted cries of alarm).
- ``cry``: Deeply ``crying``; EmoGator ``Sadness`` (sobs, whimpers).
- ``moan``: Deeply ``moaning``; EmoGator ``Pain`` (groans, "ow").
- ``other_vocal``: the other twelve Deeply classes (laughing, coughing, sneezing, sighing, yawning,
  panting, throat clearing, nose blowing, lip, tongue and teeth noises) and every other EmoGator
  category (amusement, relief, contentment, neutral, ...), except the negative-valence ones in
  ``EMOGATOR_LEFT_OUT``, which train neither side (a disappointed groan is no call for help, yet
  sounds like one).
- ``background``: synthetic, made here (``synth_background``).

Validation speakers never train: RAVDESS actors 17-20, and the Deeply speakers and EmoGator
contributors whose id hashes (CRC-32) into one fifth (``is_val_speaker``).
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16000
DEEPLY_KIND = {"screaming": "scream", "crying": "cry", "moaning": "moan"}   # others: other_vocal
EMOGATOR_KIND = {"Fear": "scream", "Distress": "scream", "Sadness": "cry", "Pain": "moan"}
# other negative-valence EmoGator categories overlap distress sounds (a "Disappointment" groan, a
# "Sympathy" whimper) without being a patient's call for help: they train neither side
EMOGATOR_LEFT_OUT = ("Anger", "Contempt", "Disappointment", "Disgust", "Embarrassment", "Guilt", "Shame",
                     "Surprise_Negative", "Sympathy")
# pleasant categories the EmoGator test uses as negatives: each gets its own sampling share
EMOGATOR_PLEASANT = ("Amusement", "Relief", "Contentment", "Neutral", "Ecstasy", "Desire")
VAL_ACTORS = (17, 20)       # RAVDESS actors 17..20 validate, as for the speech model


@dataclass(frozen=True)
class Clip:
    path: Path
    kind: str          # one of SOUND_CLASSES (never background: that is synthetic)
    source: str        # deeply/<class>, emogator/<Category>, ravdess/<emotion>
    speaker: str


def is_val_speaker(speaker: str) -> bool:
    """One fifth of the Deeply speakers and EmoGator contributors, fixed by a hash of the id."""
    return zlib.crc32(speaker.encode()) % 5 == 0


def index_clips(data_dir: Path) -> list[Clip]:
    """Every shared clip with its class, source and speaker; FileNotFoundError names a missing folder."""
    bursts = data_dir / "vocal_bursts"
    ravdess = data_dir / "ravdess"
    for folder in (bursts / "nonverbal", bursts / "emogator", ravdess):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} not found; pass --data pointing at the shared data folder")
    clips: list[Clip] = []
    for path in sorted((bursts / "nonverbal").glob("*/*.flac")):
        cls = path.parent.name
        clips.append(Clip(path, DEEPLY_KIND.get(cls, "other_vocal"), f"deeply/{cls}", "d:" + path.name.split("_")[0]))
    for path in sorted((bursts / "emogator").glob("*/*.opus")):
        cat = path.parent.name
        if cat in EMOGATOR_LEFT_OUT:
            continue
        clips.append(Clip(path, EMOGATOR_KIND.get(cat, "other_vocal"), f"emogator/{cat}",
                          "e:" + path.name.split("-")[0]))
    with open(ravdess / "index.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            clips.append(Clip(ravdess / row["file"], "speech", f"ravdess/{row['emotion']}", f"r:{int(row['actor']):02d}"))
    return clips


def is_val(clip: Clip) -> bool:
    if clip.speaker.startswith("r:"):
        return VAL_ACTORS[0] <= int(clip.speaker[2:]) <= VAL_ACTORS[1]
    return is_val_speaker(clip.speaker[2:])


def load_audio(path: Path) -> np.ndarray:
    """Any file soundfile reads (WAV, FLAC, Ogg/Opus), any rate and channels -> 16 kHz mono float32."""
    import soundfile as sf
    from scipy.signal import resample_poly

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = np.gcd(int(sr), SR)
        x = resample_poly(x, SR // g, int(sr) // g).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


# ---------------------------------------------------------------------------------- background

def _colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / SR), 20.0)
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def unit_rms(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to an RMS of 1 (silence stays silent)."""
    return x / (np.sqrt(np.mean(np.square(x))) + 1e-9)


def _tone(freq: float, n: int, harmonics: int = 6, decay: float = 0.6) -> np.ndarray:
    t = np.arange(n) / SR
    return sum((decay ** k) * np.sin(2 * np.pi * freq * (k + 1) * t) for k in range(harmonics)
               if freq * (k + 1) < SR / 2).astype(np.float32)


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Notes on an equal-tempered scale with attack/decay envelopes, a chord under a melody."""
    out = np.zeros(n, np.float32)
    base = rng.uniform(110, 330)
    step = int(SR * rng.uniform(0.12, 0.5))
    for start in range(0, n, step):
        note = base * 2 ** (int(rng.integers(0, 24)) / 12)
        m = min(n - start, step * int(rng.integers(1, 3)))
        env = np.exp(-np.arange(m) / (SR * rng.uniform(0.05, 0.6)))
        env[: min(m, 80)] *= np.linspace(0, 1, min(m, 80))
        out[start:start + m] += _tone(note, m, int(rng.integers(1, 8)), rng.uniform(0.3, 0.8)) * env
    chord = sum(_tone(base * 2 ** (s / 12) / 2, n, 4) for s in (0, 4, 7))
    return out + 0.3 * chord * rng.uniform(0, 1)


def _beeps(n: int, rng: np.random.Generator) -> np.ndarray:
    """Monitor and pump alarms: short tone bursts repeating at a steady rate."""
    out = np.zeros(n, np.float32)
    freq, on = rng.uniform(400, 3000), int(SR * rng.uniform(0.05, 0.3))
    period = on + int(SR * rng.uniform(0.1, 1.0))
    tone = _tone(freq, on, int(rng.integers(1, 4)))
    for start in range(int(rng.integers(0, period)), n - on, period):
        out[start:start + on] += tone
    return out


def _hum(n: int, rng: np.random.Generator) -> np.ndarray:
    mains = 50.0 if rng.random() < 0.5 else 60.0
    return _tone(mains, n, 12, 0.8) + 0.3 * _colored_noise(n, rng, 1.0)


def _clicks(n: int, rng: np.random.Generator) -> np.ndarray:
    """Door clicks, footsteps, objects set down: decaying bursts of filtered noise."""
    out = 0.02 * _colored_noise(n, rng, 1.0)
    for _ in range(int(rng.integers(1, 6))):
        m = int(SR * rng.uniform(0.01, 0.15))
        s = int(rng.integers(0, max(1, n - m)))
        out[s:s + m] += _colored_noise(m, rng, rng.uniform(0, 2)) * np.exp(-np.arange(m) / (m / 4))
    return out


# a singer's vowels (F1, F2, F3 Hz), French and English (the checks' band music has its own)
SUNG_VOWELS = ((800, 1300, 2500), (270, 2250, 2900), (250, 1750, 2150), (360, 1650, 2300), (450, 900, 2400),
               (550, 1750, 2500), (300, 750, 2350), (650, 1100, 2600))


def _saw_voice(f0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A band-limited sawtooth following the pitch track ``f0`` (Hz per sample), with jitter."""
    f0 = f0 * (1 + 0.004 * rng.standard_normal(len(f0)).cumsum() / np.sqrt(np.arange(1, len(f0) + 1)))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    top = int(min(30, SR / 2 / max(float(f0.max()), 1.0)))
    return sum(np.sin(k * phase) / k for k in range(1, max(2, top))).astype(np.float32)


def _formants(x: np.ndarray, vowel: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    out = np.zeros(len(x), np.float32)
    for k, f in enumerate(vowel):
        f = f * rng.uniform(0.9, 1.1)
        bw = rng.uniform(70, 160) * (1 + k)
        sos = butter(2, [max(50.0, f - bw / 2), min(SR / 2 - 100, f + bw / 2)], btype="bandpass", fs=SR, output="sos")
        out += sosfilt(sos, x).astype(np.float32) * (0.6 ** k)
    return out


def song(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of a song from a radio or television, unit RMS, for the ``background`` class
    (``train_sounds.py --songs``): a singer (a sawtooth voice through vowel formants, gliding from
    note to note with vibrato, consonant hiss between some notes) over piano-like chords, a bass and
    a shaker, or the band alone (30 %). A song is not a cry, however long its vowels."""
    t = np.arange(n) / SR
    beat = int(SR * 60 / rng.uniform(60, 150))
    key = rng.uniform(110, 220)
    scale = np.array(([0, 2, 4, 5, 7, 9, 11], [0, 2, 3, 5, 7, 8, 10], [0, 2, 4, 7, 9])[int(rng.integers(3))])
    acc = np.zeros(n, np.float32)
    for start in range(0, n, 2 * beat):                       # chords: inharmonic decaying partials
        m = min(n - start, 2 * beat)
        tm = np.arange(m) / SR
        root = key / 2 * 2 ** (scale[int(rng.integers(len(scale)))] / 12)
        for step in (0, 4, 7):
            f = root * 2 ** (step / 12)
            for h in range(1, 6):
                fh = f * h * np.sqrt(1 + 0.0004 * h * h)
                if fh < SR / 2:
                    acc[start:start + m] += np.sin(2 * np.pi * fh * tm) * np.exp(-tm * (1.5 + h)) / h
        acc[start:start + m] += 0.8 * np.abs((tm * root / 2) % 1 - 0.5) * np.exp(-tm * 2)      # bass
    shaker = _colored_noise(n, rng, 0.0) * (np.exp(-((t * SR) % (beat / 2)) / (0.02 * SR)))
    acc = unit_rms(acc) + 0.15 * shaker
    if rng.random() < 0.3:
        return unit_rms(acc).astype(np.float32)
    f0 = np.zeros(n)
    vocal = np.zeros(n, np.float32)
    pos, prev = 0, key * 2
    while pos < n:
        m = min(n - pos, int(beat * rng.choice([0.5, 1, 1, 2, 3])))
        note = key * 2 ** ((12 + scale[int(rng.integers(len(scale)))]) / 12)
        glide = np.minimum(1, np.arange(m) / (SR * rng.uniform(0.02, 0.08)))
        f0[pos:pos + m] = (prev + (note - prev) * glide) * (1 + rng.uniform(0.005, 0.03)
                                                           * np.sin(2 * np.pi * rng.uniform(4.5, 7) * np.arange(m) / SR))
        prev = note
        pos += m
    voice = _saw_voice(f0, rng)
    pos = 0
    while pos < n:                                            # one vowel a syllable, hiss between some
        m = min(n - pos, int(beat * rng.choice([0.5, 1, 2])))
        env = np.minimum(1, np.arange(m) / (0.03 * SR)) * np.minimum(1, (m - np.arange(m)) / (0.05 * SR))
        vocal[pos:pos + m] = _formants(voice[pos:pos + m], SUNG_VOWELS[int(rng.integers(len(SUNG_VOWELS)))], rng) * env
        if rng.random() < 0.4:
            k = min(m, int(rng.uniform(0.03, 0.08) * SR))
            vocal[pos:pos + k] += 0.3 * np.diff(rng.standard_normal(k + 1)).astype(np.float32)
        pos += m
    x = unit_rms(vocal) * rng.uniform(1.0, 2.5) + unit_rms(acc)
    return unit_rms(x).astype(np.float32)


BACKGROUND_KINDS = ("silence", "white", "pink", "brown", "hum", "music", "beeps", "clicks", "fan")


def synth_background(n: int, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """``n`` samples of room sound without a human voice, at a random level (-70 to -12 dBFS)."""
    kind = kind or str(rng.choice(BACKGROUND_KINDS))
    if kind == "silence":
        x = _colored_noise(n, rng, rng.uniform(0, 1.5)) * 10 ** (rng.uniform(-90, -60) / 20)
        return x.astype(np.float32)
    if kind in ("white", "pink", "brown"):
        x = _colored_noise(n, rng, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    elif kind == "hum":
        x = _hum(n, rng)
    elif kind == "music":
        x = _music(n, rng)
    elif kind == "beeps":
        x = _beeps(n, rng) + 0.05 * _colored_noise(n, rng, 1.0)
    elif kind == "clicks":
        x = _clicks(n, rng)
    else:   # fan / air conditioning: band-limited noise with a slow wobble and a blade tone
        x = _colored_noise(n, rng, 1.5) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * np.arange(n) / SR))
        x = x + 0.2 * _tone(rng.uniform(80, 300), n, 3)
    x = unit_rms(x)
    return (x * 10 ** (rng.uniform(-60, -15) / 20)).astype(np.float32)
