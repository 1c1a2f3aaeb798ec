"""Build the team's evaluation inputs for scripts/evaluate.py from the shared data (outside the repo).

    python scripts/make_eval_sets.py --data ../shared/data --out DIR

Writes into DIR (which must not be a tracked part of the repository):
- ``fer_publictest_ferplus.npz``: PublicTest rows with exact pixels whose top FER+ vote is an
  emotion; label = FER+ majority, converted to FER-2013 order.
- ``fer_publictest_original.npz``: every PublicTest row with its original FER-2013 label.
- ``ravdess_17_20/``: ``index.csv`` (the shared index's rows for actors 17-20) and symlinks
  ``Actor_NN`` to the shared folders, so ``file`` paths resolve without copying any audio.
- ``ravdess_17_20_babble/``: the same clips with the model card's noise (``train_voice.noisy_copy``:
  babble of three other held-out actors at 10 dB SNR plus pink noise at 20 dB), written as 16 kHz
  WAV files beside an ``index.csv``: the "in babble" figure of ``evaluate.py voice``.
- ``sounds_deeply_speech/`` and ``sounds_emogator/`` for ``evaluate.py sounds``: ``index.csv``
  (file, kind, source) over the validation speakers of ``scripts/sound_data.py`` (never trained
  on), with a symlink ``data`` to the shared folder. The first: every Deeply clip plus RAVDESS
  actors 17-20; the second: EmoGator pain and distress bursts against amused, relieved, contented,
  neutral, ecstatic and desirous ones.
- ``sounds_recorded/``: the clips of ``sounds_deeply_speech`` as a phone or a television would
  carry them (``recorded``: room reverberation, a bed of music-like sound or other held-out speakers'
  talk at 5-15 dB SNR around and under the clip, another microphone's response, a random level,
  Ogg/Opus at about 32 kbit/s; seeded per clip): a stand-in for sound cut from real videos, which the
  shared data lacks. Each step is also a training augmentation except the codec; the set is harder
  because all of them come at once.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from edge.labels import canon_to_fer2013, ferplus_majority  # noqa: E402

PUBLIC_TEST = 1
RAVDESS_ACTORS = (17, 18, 19, 20)
FER_FILE = Path("fer2013") / "fer2013_trainval.npz"
RAVDESS_DIR = Path("ravdess")


class SetError(ValueError):
    """Bad input; the message names the fix."""


def _check_out(out: Path) -> None:
    """Refuse an output folder inside the repository unless git ignores it (data never enters git)."""
    out = out.resolve()
    if out != REPO_ROOT and REPO_ROOT not in out.parents:
        return
    rel = out.relative_to(REPO_ROOT)
    ignored = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q", f"{rel}/x"],
                             capture_output=True).returncode == 0
    if not ignored:
        raise SetError(f"--out {out} is inside the repository and not git-ignored; use a folder "
                       "outside it (e.g. ../eval) or an ignored one such as artifacts/eval")


def fer_sets(npz: Path, out: Path) -> dict[str, int]:
    if not npz.is_file():
        raise SetError(f"{npz} not found; pass --data pointing at the shared data folder")
    with np.load(npz, allow_pickle=False) as d:
        images, labels, usage = d["images"], d["labels"], d["usage"]
        votes, exact = d["ferplus_votes"], d["pixels_exact"]
    test = usage == PUBLIC_TEST
    majority, is_emotion = ferplus_majority(votes)
    keep = test & exact & is_emotion
    np.savez_compressed(out / "fer_publictest_ferplus.npz", images=images[keep],
                        labels=canon_to_fer2013(majority[keep]).astype(np.int8))
    np.savez_compressed(out / "fer_publictest_original.npz", images=images[test],
                        labels=labels[test].astype(np.int8))
    return {"fer_publictest_ferplus": int(keep.sum()), "fer_publictest_original": int(test.sum())}


def _ravdess_rows(src: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows of actors 17-20 in the shared index's order)."""
    index = src / "index.csv"
    if not index.is_file():
        raise SetError(f"{index} not found; pass --data pointing at the shared data folder")
    with open(index, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if int(r["actor"]) in RAVDESS_ACTORS]
    return fields, rows


def _write_index(dest: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with open(dest / "index.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def ravdess_set(src: Path, out: Path) -> int:
    fields, rows = _ravdess_rows(src)
    dest = out / "ravdess_17_20"
    dest.mkdir(parents=True, exist_ok=True)
    for actor in RAVDESS_ACTORS:
        link, target = dest / f"Actor_{actor:02d}", (src / f"Actor_{actor:02d}").resolve()
        if link.is_symlink() or link.exists():
            if link.resolve() == target:
                continue
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    _write_index(dest, fields, rows)
    return len(rows)


def ravdess_babble_set(src: Path, out: Path) -> int:
    """Actors 17-20 in babble and pink noise, in the shared index's order (the noise is seeded per
    clip in that order, so these are the clips behind the model card's noisy figure)."""
    import soundfile as sf

    from scripts.train_voice import SAMPLE_RATE, noisy_copy

    fields, rows = _ravdess_rows(src)
    audio = []
    for r in rows:
        x, sr = sf.read(src / r["file"], dtype="float32", always_2d=True)
        if sr != SAMPLE_RATE:
            raise SetError(f"{src / r['file']} is {sr} Hz, expected {SAMPLE_RATE}; use the shared RAVDESS folder")
        audio.append(x.mean(axis=1))
    dest = out / "ravdess_17_20_babble"
    for r, y in zip(rows, noisy_copy(audio, [int(r["actor"]) for r in rows]), strict=True):
        path = dest / r["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y, SAMPLE_RATE, subtype="PCM_16")
    _write_index(dest, fields, rows)
    return len(rows)


def sound_sets(data: Path, out: Path) -> dict[str, int]:
    from scripts.sound_data import EMOGATOR_PLEASANT, index_clips, is_val

    try:
        clips = [c for c in index_clips(data) if is_val(c)]
    except FileNotFoundError as exc:
        raise SetError(str(exc)) from None
    emogator = {f"emogator/{c}" for c in ("Pain", "Distress", *EMOGATOR_PLEASANT)}
    sets = {"sounds_deeply_speech": [c for c in clips if c.source.startswith(("deeply/", "ravdess/"))],
            "sounds_emogator": [c for c in clips if c.source in emogator]}
    counts = {}
    for name, members in sets.items():
        dest = out / name
        dest.mkdir(parents=True, exist_ok=True)
        link = dest / "data"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(data.resolve(), target_is_directory=True)
        with open(dest / "index.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "kind", "source"])
            for c in members:
                writer.writerow([f"data/{c.path.resolve().relative_to(data.resolve())}", c.kind, c.source])
        counts[name] = len(members)
    return counts


RECORDED_SEED = 20261201
RECORDED_SNR_DB = (5.0, 15.0)
RECORDED_CONTEXT_S = 0.5


def recorded(x: np.ndarray, talk: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, str, float]:
    """One clip (16 kHz float) as a recording would carry it: reverberation, ``RECORDED_CONTEXT_S``
    of background either side, the background under it at ``RECORDED_SNR_DB``, a random microphone
    response, a peak level of -20 to -3 dBFS. Returns the audio, the background (``music`` or
    ``talk``) and its SNR in dB."""
    from scripts.sound_data import SR
    from scripts.train_sounds import music_or_talk, random_eq
    from scripts.train_voice import add_at_snr, reverb

    pad = int(RECORDED_CONTEXT_S * SR)
    y = np.pad(reverb(x, rng), (pad, pad))
    kind = "music" if rng.random() < 0.5 or not talk else "talk"
    bed = music_or_talk(kind, len(y), talk, rng)
    snr = float(rng.uniform(*RECORDED_SNR_DB))
    y = random_eq(add_at_snr(y, bed, snr), rng)
    return (y / (np.abs(y).max() + 1e-9) * 10 ** (rng.uniform(-20, -3) / 20)).astype(np.float32), kind, snr


def recorded_set(data: Path, out: Path) -> int:
    """``sounds_recorded/``: every clip of ``sounds_deeply_speech`` through ``recorded``, written as
    Ogg/Opus (``compression_level`` 0.9: about 32 kbit/s) beside an ``index.csv`` (file, kind, source,
    background, snr_db)."""
    import soundfile as sf

    from scripts.sound_data import SR, index_clips, is_val, load_audio

    try:
        clips = [c for c in index_clips(data) if is_val(c) and c.source.startswith(("deeply/", "ravdess/"))]
    except FileNotFoundError as exc:
        raise SetError(str(exc)) from None
    dest = out / "sounds_recorded"
    dest.mkdir(parents=True, exist_ok=True)
    speech = [(c.speaker, load_audio(c.path)) for c in clips if c.source.startswith("ravdess/")]
    rows = []
    for i, c in enumerate(clips):
        rng = np.random.default_rng([RECORDED_SEED, i])
        talk = [audio for speaker, audio in (speech[j] for j in rng.choice(len(speech), size=min(6, len(speech)),
                                                                            replace=False))
                if speaker != c.speaker]
        rel = Path(c.source) / f"{i:04d}_{c.path.stem}.opus"
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        audio, bed, snr = recorded(load_audio(c.path), talk, rng)
        sf.write(dest / rel, audio, SR, format="OGG", subtype="OPUS", compression_level=0.9)
        rows.append({"file": str(rel), "kind": c.kind, "source": c.source, "background": bed,
                     "snr_db": f"{snr:.1f}"})
    _write_index(dest, ["file", "kind", "source", "background", "snr_db"], rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (../shared/data)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    args = ap.parse_args(argv)
    try:
        if not args.data.is_dir():
            raise SetError(f"data folder {args.data} not found; pass the shared data folder, e.g. ../shared/data")
        _check_out(args.out)
        args.out.mkdir(parents=True, exist_ok=True)
        counts = fer_sets(args.data / FER_FILE, args.out)
        counts["ravdess_17_20"] = ravdess_set(args.data / RAVDESS_DIR, args.out)
        counts["ravdess_17_20_babble"] = ravdess_babble_set(args.data / RAVDESS_DIR, args.out)
        counts.update(sound_sets(args.data, args.out))
        counts["sounds_recorded"] = recorded_set(args.data, args.out)
    except SetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    targets = {"fer_publictest_ferplus": "fer_publictest_ferplus.npz",
               "fer_publictest_original": "fer_publictest_original.npz", "ravdess_17_20": "ravdess_17_20/",
               "ravdess_17_20_babble": "ravdess_17_20_babble/",
               "sounds_deeply_speech": "sounds_deeply_speech/", "sounds_emogator": "sounds_emogator/",
               "sounds_recorded": "sounds_recorded/"}
    for name, n in counts.items():
        print(f"{name}: {n} items -> {args.out / targets[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
