"""The model registry (edge.models) against the config, the inference code and the shipped files."""

from __future__ import annotations

import pytest
from script_loader import load_script

from edge import config as config_mod
from edge.config import Config
from edge.inference import detector, face, sound_events, voice_features
from edge.inference.runtime import TFLiteModel
from edge.models import (
    FACE_DETECTOR_FULL,
    FACE_DETECTOR_SHORT,
    FACE_EXPRESSION,
    MODELS,
    SOUND_EVENTS,
    VOICE_EMOTION,
    ModelSpec,
    box_models,
    face_detector,
)


def test_config_defaults_are_the_shipped_files() -> None:
    cfg = Config()
    assert box_models(cfg) == (FACE_DETECTOR_SHORT, FACE_EXPRESSION, SOUND_EVENTS, VOICE_EMOTION)
    for spec in box_models(cfg):
        assert spec.configured_file(cfg) == spec.file
        assert spec.path(cfg) == cfg.model_path(spec.file) and spec.enabled(cfg)


def test_full_range_detector_and_loader_keywords() -> None:
    cfg = config_mod.replace(Config(), face={"detector": FACE_DETECTOR_FULL.file, "min_detection_score": 0.4},
                             voice={"vad_aggressiveness": 3, "enabled": False},
                             service={"inference_threads": 2})
    assert face_detector(cfg) is FACE_DETECTOR_FULL
    assert FACE_DETECTOR_FULL.kwargs(cfg) == {"num_threads": 2, "min_score": 0.4}
    assert VOICE_EMOTION.kwargs(cfg) == {"num_threads": 2, "aggressiveness": 3} and not VOICE_EMOTION.enabled(cfg)
    assert [s.check_name for s in box_models(cfg)] == ["face_detector", "face_expression", "sound_events", "voice"]


def test_input_shapes_match_the_inference_code() -> None:
    assert FACE_EXPRESSION.input_shape == (1, face.FACE_INPUT_SIZE, face.FACE_INPUT_SIZE, 1)
    assert VOICE_EMOTION.input_shape == (1, *voice_features.FEATURE_SHAPE)
    assert SOUND_EVENTS.input_shape == (1, *sound_events.SOUND_FEATURE_SHAPE)
    sizes = {size for size, _ in detector._ANCHOR_CONFIGS}
    assert {FACE_DETECTOR_SHORT.input_shape[1], FACE_DETECTOR_FULL.input_shape[1]} == sizes


def test_loaders_exist_and_detector_files_are_the_fetched_ones() -> None:
    for spec in MODELS:
        assert spec.load_class().__name__ == spec.class_name
    fetch = load_script("fetch_face_detector")
    assert set(fetch.MODELS) == {FACE_DETECTOR_SHORT.file, FACE_DETECTOR_FULL.file}


@pytest.mark.parametrize("spec", MODELS, ids=lambda s: s.file)
def test_shipped_file_has_the_registered_input(spec: ModelSpec) -> None:
    path = Config().model_path(spec.file)
    if not path.is_file():
        pytest.skip(f"{spec.file} absent")
    assert tuple(TFLiteModel(path).input_shape) == spec.input_shape
    cfg = config_mod.replace(Config(), **{spec.section: {spec.field: spec.file}})
    assert spec.load(cfg).model.name == spec.role    # the loader names its model by the role
