"""What both training scripts share: the learning-rate schedule, resumable run folders, and the
Keras -> float / full-integer int8 TFLite export."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def lr_at(epoch: int, epochs: int, base: float, warmup: int = 2) -> float:
    """Linear warm-up for ``warmup`` epochs, then cosine decay to ~0 at ``epochs``."""
    if epoch < warmup:
        return base * (epoch + 1) / warmup
    t = (epoch - warmup) / max(1, epochs - warmup)
    return 0.5 * base * (1 + math.cos(math.pi * t)) + 1e-5


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
