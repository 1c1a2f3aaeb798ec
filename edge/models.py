"""The models the box runs: one registry of role, file, input shape and loader.

A ``ModelSpec`` says what a model does (``role``), which config field names its file (and the
shipped file, that field's default), the input shape the service feeds it, the class that loads it
(imported only when loaded, so that a missing library is one model's problem) and the config
fields that become that class's keywords. The config defaults, the stage loaders
(``edge.stages``), ``medtrack check`` (``edge.selfcheck``) and ``scripts/evaluate.py`` read it; a
new model goes here, then into its stage.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.config import Config


@dataclass(frozen=True)
class ModelSpec:
    """One model file the box can run."""

    role: str                           # what it does: its name in logs, /api/status and `medtrack check`
    section: str                        # config section holding its file name; its `enabled` gates it
    field: str                          # the field of that section naming the file
    file: str                           # the shipped file (the field's default), in [service] models_dir
    input_shape: tuple[int, ...]        # what the service feeds it (batch of one)
    loader: str                         # "module:Class", called as Class(path, num_threads=..., **options)
    options: tuple[tuple[str, str], ...] = ()   # (keyword, "section.field") from the config
    check: str = ""                     # its name in `medtrack check` (model:NAME) when not the role

    @property
    def module(self) -> str:
        return self.loader.partition(":")[0]

    @property
    def class_name(self) -> str:
        return self.loader.partition(":")[2]

    @property
    def check_name(self) -> str:
        return self.check or self.role

    def configured_file(self, cfg: Config) -> str:
        return str(getattr(getattr(cfg, self.section), self.field))

    def path(self, cfg: Config) -> Path:
        """The file ``cfg`` names for this model, resolved against [service] models_dir."""
        return cfg.model_path(self.configured_file(cfg))

    def enabled(self, cfg: Config) -> bool:
        return bool(getattr(cfg, self.section).enabled)

    def kwargs(self, cfg: Config) -> dict[str, Any]:
        """The loader's keywords from ``cfg``: inference threads and ``options``."""
        out: dict[str, Any] = {"num_threads": cfg.service.inference_threads}
        for keyword, dotted in self.options:
            section, field = dotted.split(".")
            out[keyword] = getattr(getattr(cfg, section), field)
        return out

    def load_class(self) -> type:
        """The loader class (imports its module: ImportError when a library is missing)."""
        return getattr(importlib.import_module(self.module), self.class_name)

    def load(self, cfg: Config) -> Any:
        """The loaded model as ``cfg`` configures it (ModelError when the file is missing or wrong)."""
        return self.load_class()(self.path(cfg), **self.kwargs(cfg))


def _detector(file: str, size: int) -> ModelSpec:
    return ModelSpec("face_detector", "face", "detector", file, (1, size, size, 3),
                     "edge.inference.detector:FaceDetector", options=(("min_score", "face.min_detection_score"),))


FACE_DETECTOR_SHORT = _detector("face_detection_short_range.tflite", 128)   # BlazeFace: faces up to ~2 m
FACE_DETECTOR_FULL = _detector("face_detection_full_range.tflite", 192)     # the waiting-room model
FACE_EXPRESSION = ModelSpec(role="face_expression", section="face", field="model",
                            file="face_expression_int8.tflite", input_shape=(1, 48, 48, 1),
                            loader="edge.inference.face:FaceClassifier")
SOUND_EVENTS = ModelSpec(role="sound_events", section="voice", field="sound_model",
                         file="sound_events_int8.tflite", input_shape=(1, 99, 40, 1),
                         loader="edge.inference.sound_events:SoundClassifier")
VOICE_EMOTION = ModelSpec(role="voice_emotion", section="voice", field="model",
                          file="voice_emotion_int8.tflite", input_shape=(1, 249, 40, 1),
                          loader="edge.inference.voice:VoiceClassifier",
                          options=(("aggressiveness", "voice.vad_aggressiveness"),), check="voice")

MODELS: tuple[ModelSpec, ...] = (FACE_DETECTOR_SHORT, FACE_DETECTOR_FULL, FACE_EXPRESSION, SOUND_EVENTS,
                                 VOICE_EMOTION)


def face_detector(cfg: Config) -> ModelSpec:
    """The detector ``cfg`` names: full range when its file is the full-range one, else short range."""
    name = Path(FACE_DETECTOR_SHORT.configured_file(cfg)).name
    return FACE_DETECTOR_FULL if name == FACE_DETECTOR_FULL.file else FACE_DETECTOR_SHORT


def box_models(cfg: Config) -> tuple[ModelSpec, ...]:
    """What the box runs with ``cfg``, in stage order: detector, expression, sound events, voice."""
    return face_detector(cfg), FACE_EXPRESSION, SOUND_EVENTS, VOICE_EMOTION
