"""Keras model -> float and full-integer int8 TFLite files (shared by the training scripts)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np


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
