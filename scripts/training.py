"""What both training scripts share: the learning-rate schedule, resumable run folders, the
running weight average, and the Keras -> float / full-integer int8 TFLite export."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models_tflite"


def run_parser(doc: str, *, data_holds: str, out: str, epochs: int, batch: int, lr: float,
               width: int) -> argparse.ArgumentParser:
    """The options every training script takes; each script adds its own to the parser."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help=f"folder holding {data_holds} (default ../shared/data)")
    p.add_argument("--out", default=out, help="output folder (checkpoints, models, metrics)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--width", type=int, default=width, help="channels of the first convolution")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="use only N training items (smoke tests)")
    p.add_argument("--steps", type=int, default=0, help="steps per epoch (0 = all the training data)")
    p.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0 = all cores)")
    p.add_argument("--no-bf16", dest="bf16", action="store_false",
                   help="train in float32 (default: mixed bfloat16, about 2x faster on AVX512-BF16 CPUs)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--install", action="store_true", help="copy the int8 model to models_tflite/")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def ensemble_parser(doc: str, *, members: str, members_help: str, data_holds: str, out: str,
                    limit_help: str) -> argparse.ArgumentParser:
    """The options of the scripts that average trained models into one file (``ensemble_*.py``)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(members, nargs="+", type=Path, help=members_help)
    p.add_argument("--data", default=str(DEFAULT_DATA), help=f"folder holding {data_holds} (default ../shared/data)")
    p.add_argument("--out", type=Path, default=Path(out), help="output folder")
    p.add_argument("--seed", type=int, default=1, help="seed of the calibration windows")
    p.add_argument("--limit", type=int, default=0, help=limit_help)
    p.add_argument("--install", action="store_true", help="copy the int8 model and metrics to models_tflite/")
    return p


def start_tensorflow(args: argparse.Namespace):
    """Import TensorFlow quietly and apply --threads, --seed and the bf16 policy; returns ``tf``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if args.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:   # TensorFlow already initialised in this process (e.g. under pytest)
            print("note: TensorFlow already initialised; --threads ignored", flush=True)
    tf.keras.utils.set_random_seed(args.seed)
    if args.bf16:
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    return tf


def lr_at(epoch: int, epochs: int, base: float, warmup: int = 2) -> float:
    """Linear warm-up for ``warmup`` epochs, then cosine decay to ~0 at ``epochs``."""
    if epoch < warmup:
        return base * (epoch + 1) / warmup
    t = (epoch - warmup) / max(1, epochs - warmup)
    return 0.5 * base * (1 + math.cos(math.pi * t)) + 1e-5


class WeightAverage:
    """Stochastic weight averaging: the running mean of the weights at the end of each epoch from
    ``start`` on (batch-norm statistics included), kept in a file so --resume continues it. A
    resumed run with a different start (a longer schedule) begins a new average."""

    def __init__(self, path: Path, start: int):
        self.path, self.start = path, start
        self.count, self._sum = 0, None
        if path.is_file():
            with np.load(path) as z:
                if int(z["start"]) == start:
                    self.count = int(z["count"])
                    self._sum = [z[f"w{i}"] for i in range(len(z.files) - 2)]

    def add(self, epoch: int, weights: list[np.ndarray]) -> bool:
        """Add the weights after ``epoch`` (0-based) if it is past ``start``; True when the
        average changed. Saved at once, so the file is always in step with the checkpoint."""
        if epoch < self.start + self.count:       # before the start, or already in (--resume)
            return False
        w = [np.asarray(a, np.float64) for a in weights]
        self._sum = w if self._sum is None else [s + a for s, a in zip(self._sum, w, strict=True)]
        self.count += 1
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, count=self.count, start=self.start, **{f"w{i}": a for i, a in enumerate(self._sum)})
        tmp.replace(self.path)
        return True

    def weights(self) -> list[np.ndarray]:
        return [(s / self.count).astype(np.float32) for s in self._sum]

    @staticmethod
    def stored(path: Path) -> list[np.ndarray]:
        """The average kept in ``path`` whatever its start (a finished run's exported weights)."""
        with np.load(path) as z:
            count = int(z["count"])
            return [(z[f"w{i}"] / count).astype(np.float32)
                    for i in range(sum(1 for f in z.files if f.startswith("w")))]


def install(out: Path, stem: str) -> Path:
    """Copy ``<stem>_int8.tflite`` and ``metrics.json`` from the run folder ``out`` into
    ``models_tflite/`` (as ``<stem>_int8.tflite`` and ``<stem>_metrics.json``)."""
    dest = MODELS_DIR / f"{stem}_int8.tflite"
    MODELS_DIR.mkdir(exist_ok=True)
    shutil.copyfile(out / f"{stem}_int8.tflite", dest)
    shutil.copyfile(out / "metrics.json", MODELS_DIR / f"{stem}_metrics.json")
    print(f"installed {dest}", flush=True)
    return dest


def recompute_batchnorm(tf, model, batches: Iterable[np.ndarray]) -> None:
    """Set each BatchNormalization layer's moving mean and variance to the average of its batch
    statistics over ``batches`` (model inputs). Weights averaged over epochs need this: the
    averaged moving statistics do not describe the activations of the averaged weights."""
    norms = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    try:
        for k, batch in enumerate(batches):
            for layer in norms:
                layer.momentum = k / (k + 1)          # a running mean over the batches seen so far
            model(batch, training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


@dataclass(frozen=True)
class RunFolder:
    """A training run's files: the full checkpoint (model + optimizer), the JSON state (epoch,
    history, best score) and the best weights."""

    out: Path

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.keras"

    @property
    def state_path(self) -> Path:
        return self.out / "train_state.json"

    @property
    def best_weights(self) -> Path:
        return self.out / "best.weights.h5"

    def open(self, tf, resume: bool, build: Callable[[], object], loss, lr: float) -> tuple[object, dict]:
        """(model, state): resumed from the checkpoint with --resume when there is one, else a new
        model compiled with AdamW."""
        if resume and self.checkpoint.is_file() and self.state_path.is_file():
            model = tf.keras.models.load_model(self.checkpoint)
            state = json.loads(self.state_path.read_text())
            print(f"resumed at epoch {state['epoch']}", flush=True)
            return model, state
        model = build()
        model.compile(optimizer=tf.keras.optimizers.AdamW(learning_rate=lr, weight_decay=1e-4),
                      loss=loss, metrics=["accuracy"])
        return model, {"epoch": 0, "best_score": -1.0, "history": []}

    def save(self, model, state: dict) -> None:
        """End of an epoch: the checkpoint, then the state that points at it."""
        model.save(self.checkpoint)
        self.state_path.write_text(json.dumps(state, indent=1))


def export_float_and_int8(tf, model, out_dir: Path, stem: str,
                          representative: Sequence[np.ndarray]) -> tuple[Path, Path]:
    """Write ``<stem>_float.tflite`` and ``<stem>_int8.tflite`` (int8 weights, activations, input
    and output; calibrated on ``representative``: model-ready float32 inputs, batch of 1 each)."""
    saved = out_dir / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    model.export(str(saved), format="tf_saved_model", verbose=False)

    float_path = out_dir / f"{stem}_float.tflite"
    float_path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.asarray(x, dtype=np.float32)] for x in representative)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    int8_path = out_dir / f"{stem}_int8.tflite"
    int8_path.write_bytes(conv.convert())
    return float_path, int8_path


def average_models(tf, members: Sequence, input_shape: tuple[int, ...], name: str):
    """One Keras model: the same input to every member, their outputs (probabilities) averaged; a
    seed ensemble exported as a single TFLite file."""
    layers = tf.keras.layers
    inp = layers.Input(input_shape, name="logmel")
    outs = [tf.keras.Model(m.input, m.output, name=f"member_{i}")(inp) for i, m in enumerate(members)]
    probs = layers.Average(name="probs")(outs) if len(outs) > 1 else outs[0]
    return tf.keras.Model(inp, probs, name=name)
