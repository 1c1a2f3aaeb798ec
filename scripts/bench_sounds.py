"""Scenario benchmark of the voice path: 60-second streams of one kind of sound through the real service.

Each stream is built from validation speakers only (``scripts/sound_data.py``: speakers the sound
model never trained on; RAVDESS actors 17-20), clips of one kind one after another with 0.2-1 s of
quiet room sound between them, over a faint room-noise floor. It is played as a file microphone,
as fast as possible on the service's media clock, into ``edge.service.Service`` with the voice
stage only (default config: sound-event model, speech-emotion model, fusion, alarm logic, event
store, GPIO on gpiozero's mock pins). Per stream it prints the alarms raised, their condition and
priority, and the seconds from the stream's start to the first; the last line is one JSON object.
One shuffle of the clips is one draw: ``--shuffles N`` plays N differently shuffled streams of each
kind, to see how often a kind raises an alarm rather than whether one draw did. ``--per-speaker``
plays each speech stream once per validation actor instead (one voice, as a bedside box hears one
patient; the speech-emotion model's errors depend on the speaker), and only the speech streams.
``--background music|band|talk`` plays every stream over a continuous background, as with a
television or visitors in the room: music-like sound (``synth_background``, the generator the sound
model's training backgrounds use), ``band`` music (``band_music``: instruments and singing that no
training script hears), or three other people's calm talk (held-out RAVDESS neutral and calm
sentences), ``--snr`` dB below the stream's active level, then through another microphone's
response (``train_sounds.random_eq``); all seeded per stream.

    python scripts/bench_sounds.py [--data ../shared/data] [--seconds 60] [--only NAME ...] [--config FILE] [--shuffles N]
                                   [--per-speaker] [--background music|band|talk [--snr DB]]
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import config as config_mod  # noqa: E402
from scripts.scenario import arg_parser, check_shuffles, run_stream, stream_rng, summary  # noqa: E402
from scripts.sound_data import SR, index_clips, is_val, load_audio, synth_background  # noqa: E402

# name, clip sources (sound_data Clip.source), whether a nurse should be called
STREAMS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("screaming", ("deeply/screaming",), True),
    ("crying", ("deeply/crying",), True),
    ("moaning", ("deeply/moaning",), True),
    ("pain bursts", ("emogator/Pain",), True),
    ("distress bursts", ("emogator/Distress",), True),
    ("fearful speech", ("ravdess/fearful",), True),
    ("sad speech", ("ravdess/sad",), True),
    ("angry speech", ("ravdess/angry",), True),
    ("laughing", ("deeply/laughing",), False),
    ("coughing", ("deeply/coughing",), False),
    ("sneezing", ("deeply/sneezing",), False),
    ("sighing", ("deeply/sighing",), False),
    ("yawning", ("deeply/yawning",), False),
    ("throat clearing", ("deeply/throat-clearing",), False),
    ("lip smacking", ("deeply/lip-smacking",), False),
    ("nose blowing", ("deeply/nose-blowing",), False),
    ("amused bursts", ("emogator/Amusement",), False),
    ("relieved bursts", ("emogator/Relief",), False),
    ("contented bursts", ("emogator/Contentment",), False),
    ("calm speech", ("ravdess/calm",), False),
    ("happy speech", ("ravdess/happy",), False),
    ("room sound", (), False),
)


BACKGROUNDS = ("music", "band", "talk")    # --background: see the module's docstring


def build_stream(paths: list[Path], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Clips in a shuffled cycle with quiet gaps until ``seconds``; room sound alone when no clips."""
    n = int(seconds * SR)
    floor = rng.standard_normal(n).astype(np.float32) * 10 ** (-62 / 20)     # the microphone's own hiss
    if not paths:
        parts, total = [], 0
        for kind in ("music", "beeps", "fan", "clicks", "hum", "silence"):
            x = synth_background(n // 6, rng, kind)
            parts.append(x)
            total += len(x)
        return (np.concatenate(parts + [np.zeros(n - total, np.float32)]) + floor).astype(np.float32)
    out, pos, order = np.zeros(n, np.float32), int(0.5 * SR), []
    while pos < n:
        if not order:
            order = list(rng.permutation(len(paths)))
        x = load_audio(paths[order.pop()])
        x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-12, -3) / 20)
        m = min(len(x), n - pos)
        out[pos:pos + m] += x[:m]
        pos += m + int(rng.uniform(0.2, 1.0) * SR)
    return (out + floor).astype(np.float32)


def talk_pool(clips: list) -> list[np.ndarray]:
    """The calm talk the ``talk`` background is made of: these clips' neutral and calm sentences."""
    return [load_audio(c.path) for c in clips if c.source in ("ravdess/neutral", "ravdess/calm")]


def under_background(x: np.ndarray, kind: str, snr_db: float, talk: list[np.ndarray],
                     rng: np.random.Generator) -> np.ndarray:
    """``x`` with a continuous ``kind`` background (one of ``BACKGROUNDS``: ``band_music.band``,
    or ``train_sounds.music_or_talk``) ``snr_db`` below its active level, through a random
    microphone response."""
    from scripts.band_music import band
    from scripts.train_sounds import music_or_talk, random_eq
    from scripts.train_voice import add_at_snr

    bed = band(len(x), rng) if kind == "band" else music_or_talk(kind, len(x), talk, rng)
    return random_eq(add_at_snr(x, bed, snr_db), rng)


def main(argv: list[str] | None = None) -> int:
    p = arg_parser(__doc__, seed=3, only_help="stream names to run (default: all)",
                   config_help="TOML config (its [alarm], [vocal_distress], [voice] and [fusion] apply)")
    p.add_argument("--per-speaker", action="store_true",
                   help="the speech streams only, each played once per validation actor")
    p.add_argument("--background", choices=BACKGROUNDS,
                   help="a continuous background under every stream (a television, people talking)")
    p.add_argument("--snr", type=float, default=10.0, help="with --background: its level, dB below the stream's")
    args = p.parse_args(argv)
    check_shuffles(p, args)
    logging.basicConfig(level=logging.ERROR)
    base = config_mod.load(args.config)
    try:
        clips = [c for c in index_clips(args.data) if is_val(c)]
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    talk = talk_pool(clips) if args.background == "talk" else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, sources, should_alarm) in enumerate(STREAMS):
            if args.only and name not in args.only:
                continue
            if args.per_speaker and not name.endswith(" speech"):
                continue
            kind = [c for c in clips if c.source in sources]
            if sources and not kind:
                print(f"{name}: no validation clips, skipped")
                continue
            speakers = sorted({c.speaker for c in kind}) if args.per_speaker else [None]
            for speaker in speakers:
                paths = [c.path for c in kind if speaker is None or c.speaker == speaker]
                part = None if speaker is None else int(speaker.split(":")[1])
                extra = {} if speaker is None else {"speaker": speaker}
                if args.background:
                    extra.update(background=args.background, snr_db=args.snr)
                for shuffle in range(args.shuffles):
                    rng = stream_rng(args.seed, index, shuffle, part)
                    x = build_stream(paths, args.seconds, rng)
                    if args.background:
                        x = under_background(x, args.background, args.snr, talk, rng)
                    wav = Path(tmp) / f"{len(rows)}.wav"
                    sf.write(str(wav), x, SR)
                    label = (f"{name:18s}" + (f" {speaker}" if speaker else "")
                             + (f" #{shuffle + 1}" if args.shuffles > 1 else ""))
                    rows.append(run_stream(base, Path(tmp), name, label, should_alarm, audio=wav,
                                           clips=len(paths), shuffle=shuffle + 1,
                                           trace=args.trace is not None, **extra))
    print(summary(rows, args.seconds, args.seed, args.trace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
