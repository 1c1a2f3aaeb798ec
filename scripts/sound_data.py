"""The sound-event data: which shared folder feeds which class, the speaker split, and synthetic
room sound (silence, noise, hum, music-like tones, monitor beeps) for the ``background`` class.

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
    x = x / (np.sqrt(np.mean(np.square(x))) + 1e-9)
    return (x * 10 ** (rng.uniform(-60, -15) / 20)).astype(np.float32)
