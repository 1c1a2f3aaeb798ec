"""TFLite interpreter loading and quantized I/O: the one place the service touches the runtime.

Prefers ``ai_edge_litert`` (the maintained successor of tflite-runtime), then ``tflite_runtime``,
then ``tensorflow.lite``. Input/output quantization (scale, zero point) is always read from the
model file, never hard-coded. The runtime's "Created TensorFlow Lite XNNPACK delegate" banner (C++,
straight to file descriptor 2) is held back while a model loads; anything else it prints passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_BACKENDS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


class ModelError(RuntimeError):
    """A model file is missing, corrupt or has an unexpected shape; the message names the fix."""


def interpreter_class() -> tuple[type, str]:
    """Return (Interpreter class, backend name) of the first runtime that imports."""
    errors = []
    for module_name, backend in _BACKENDS:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure means "try the next one"
            errors.append(f"{backend}: {exc}")
            continue
        return module.Interpreter, backend
    raise ModelError(
        "no TFLite runtime found; install one with `pip install ai-edge-litert` "
        f"({'; '.join(errors)})"
    )


_BANNER = b"XNNPACK delegate"
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_banner() -> Iterator[None]:
    """Run the body with fd 2 captured; write back every line but the runtime's XNNPACK banner."""
    with _stderr_lock, tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):   # no real fd 2 (embedded, some test runners)
            yield
            return
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = b"".join(line for line in tmp.read().splitlines(keepends=True) if _BANNER not in line)
            if rest:
                os.write(2, rest)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


class TFLiteModel:
    """A loaded TFLite model with float-in/float-out helpers that honour the model's quantization.

    ``run`` is thread-safe (one interpreter, one lock); make one model per worker for parallelism.
    """

    def __init__(self, path: str | Path, num_threads: int = 1, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.stem
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found; check [service] models_dir, fetch the "
                             "face detector with `python scripts/fetch_face_detector.py` (deploy/install.sh "
                             "runs it), or restore the emotion models from the release's models_tflite/")
        interpreter_cls, self.backend = interpreter_class()
        try:
            with _quiet_banner():
                self._interp = interpreter_cls(model_path=str(self.path), num_threads=num_threads)
                self._interp.allocate_tensors()
        except Exception as exc:  # noqa: BLE001 - the runtime raises several types for bad files
            raise ModelError(f"model file {self.path} could not be loaded ({exc}); "
                             "it is corrupt or not a TFLite model: restore it from the release "
                             "or retrain it with the scripts/ training script") from exc
        self.sha256 = sha256_file(self.path)
        self.inputs = [self._spec(d) for d in self._interp.get_input_details()]
        self.outputs = [self._spec(d) for d in self._interp.get_output_details()]
        self._lock = threading.Lock()

    @staticmethod
    def _spec(detail: dict[str, Any]) -> TensorSpec:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return TensorSpec(
            index=int(detail["index"]),
            shape=tuple(int(s) for s in detail["shape"]),
            dtype=np.dtype(detail["dtype"]),
            scale=float(scale),
            zero_point=int(zero_point),
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs[0].shape

    def resize_batch(self, batch: int) -> None:
        """Resize the first input's batch dimension (no-op when it already matches)."""
        shape = list(self.inputs[0].shape)
        if shape[0] == batch:
            return
        shape[0] = batch
        with self._lock:
            self._interp.resize_tensor_input(self.inputs[0].index, shape)
            self._interp.allocate_tensors()
            self.inputs = [self._spec(d) for d in self._interp.get_input_details()]
            self.outputs = [self._spec(d) for d in self._interp.get_output_details()]

    @staticmethod
    def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
        if not spec.quantized:
            return x.astype(spec.dtype, copy=False)
        info = np.iinfo(spec.dtype)
        q = np.round(x / spec.scale + spec.zero_point)
        return np.clip(q, info.min, info.max).astype(spec.dtype)

    @staticmethod
    def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
        if not spec.quantized:
            return q.astype(np.float32, copy=False)
        return (q.astype(np.float32) - spec.zero_point) * spec.scale

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run on float inputs (quantized as the model requires); return float outputs."""
        with self._lock:
            for spec, x in zip(self.inputs, inputs, strict=True):
                self._interp.set_tensor(spec.index, self.quantize(np.asarray(x), spec))
            self._interp.invoke()
            return [self.dequantize(self._interp.get_tensor(s.index), s) for s in self.outputs]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.path.name,
            "sha256": self.sha256,
            "bytes": self.path.stat().st_size,
            "backend": self.backend,
            "input": {"shape": list(self.inputs[0].shape), "dtype": self.inputs[0].dtype.name},
        }
