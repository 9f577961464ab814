"""detector.model: named configurations and the compiled RetinaNet they build."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import keras_cv
import numpy as np
import pytest

from detector.model import (
    ANCHOR_STRIDES,
    CONFIGS,
    FeaturePyramid,
    ModelConfig,
    PredictionHead,
    build_backbone,
    build_model,
    get_config,
)

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def test_config() -> ModelConfig:
    return get_config("test")


@pytest.fixture(scope="module")
def model(test_config: ModelConfig) -> keras_cv.models.RetinaNet:
    return build_model(test_config, NUM_CLASSES, seed=0)


def anchors_for(image_size: int) -> int:
    return 9 * sum((image_size // stride) ** 2 for stride in ANCHOR_STRIDES)


def test_configurations_are_registered_by_name() -> None:
    assert {"test", "default", "full"} <= set(CONFIGS)
    for name, config in CONFIGS.items():
        assert config.name == name
    assert get_config("full").preset  # pretrained weights are an option of the GPU configuration only
    assert get_config("test").preset is None


def test_unknown_configuration_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown model configuration 'tiny'.*test, default, full"):
        get_config("tiny")


def test_overrides_give_a_new_config() -> None:
    config = get_config("test", epochs=3, learning_rate=0.01)
    assert (config.epochs, config.learning_rate) == (3, 0.01)
    assert get_config("test").epochs != 3 or CONFIGS["test"].epochs == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stackwise_filters": (16, 32, 64)}, "exactly 4 stacks"),
        ({"image_size": 200}, "multiple of 128"),
        ({"stackwise_blocks": (1, 1, 1, 1)}, "at least 2 blocks"),
        ({"block_type": "basic_block"}, "first stack needs 64 filters"),
        ({"anchor_sizes": (16.0, 32.0)}, "one anchor size per level"),
    ],
)
def test_invalid_configurations_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_config("test", **changes)


def test_build_model_rejects_zero_classes(test_config: ModelConfig) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_model(test_config, 0)


def test_model_is_compiled_with_the_configured_decoder(
    model: keras_cv.models.RetinaNet, test_config: ModelConfig
) -> None:
    assert model.compiled
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    decoder = model.prediction_decoder
    assert isinstance(decoder, keras_cv.layers.MultiClassNonMaxSuppression)
    assert decoder.confidence_threshold == test_config.confidence_threshold
    assert decoder.iou_threshold == test_config.iou_threshold
    assert decoder.max_detections == test_config.max_detections


def test_raw_outputs_have_one_row_per_anchor(model: keras_cv.models.RetinaNet, test_config: ModelConfig) -> None:
    images = np.zeros((2, test_config.image_size, test_config.image_size, 3), dtype=np.float32)
    raw = model(images, training=False)
    anchors = anchors_for(test_config.image_size)
    assert tuple(raw["box"].shape) == (2, anchors, 4)
    assert tuple(raw["classification"].shape) == (2, anchors, NUM_CLASSES)


def test_predict_returns_decoded_detections(model: keras_cv.models.RetinaNet, test_config: ModelConfig) -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, test_config.image_size, test_config.image_size, 3)).astype(np.float32)
    output = model.predict(images, verbose=0)
    limit = test_config.max_detections
    assert set(output) == {"boxes", "confidence", "classes", "num_detections"}
    assert output["boxes"].shape == (2, limit, 4)
    assert output["confidence"].shape == (2, limit)
    assert output["classes"].shape == (2, limit)
    assert output["num_detections"].shape == (2,)
    for i in range(2):
        count = int(output["num_detections"][i])
        kept = output["classes"][i][:count]
        assert ((kept >= 0) & (kept < NUM_CLASSES)).all()
        assert (output["confidence"][i][:count] >= test_config.confidence_threshold).all()


def test_same_seed_same_initial_weights(test_config: ModelConfig) -> None:
    first = build_model(test_config, NUM_CLASSES, seed=3).get_weights()
    second = build_model(test_config, NUM_CLASSES, seed=3).get_weights()
    other = build_model(test_config, NUM_CLASSES, seed=4).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_checkpointed_weights_load_into_a_fresh_model(
    model: keras_cv.models.RetinaNet, test_config: ModelConfig, tmp_path: Path
) -> None:
    path = tmp_path / "weights.weights.h5"
    model.save_weights(path)
    fresh = build_model(test_config, NUM_CLASSES, seed=99)
    fresh.load_weights(path)
    images = np.full((1, test_config.image_size, test_config.image_size, 3), 127.0, dtype=np.float32)
    np.testing.assert_allclose(
        fresh(images, training=False)["classification"], model(images, training=False)["classification"], atol=1e-5
    )


def test_narrow_layers_round_trip_through_their_config() -> None:
    pyramid = FeaturePyramid.from_config(FeaturePyramid(filters=32, name="fpn").get_config())
    assert pyramid.filters == 32
    head = PredictionHead(output_filters=27, bias_initializer=keras.initializers.Constant(-4.6), filters=16)
    clone = PredictionHead.from_config(head.get_config())
    assert (clone.output_filters, clone.filters, clone.num_conv_layers) == (27, 16, 3)
    assert clone.bias_initializer.value == pytest.approx(-4.6)


def test_pretrained_weights_fall_back_to_random_when_the_preset_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("kaggle.com unreachable")

    monkeypatch.setattr(keras_cv.models.ResNetV2Backbone, "from_preset", offline)
    config = get_config("test", preset="resnet50_v2_imagenet")
    with caplog.at_level(logging.WARNING):
        backbone = build_backbone(config, pretrained=True)
    assert backbone.stackwise_filters == list(config.stackwise_filters)
    assert "resnet50_v2_imagenet unavailable" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "full"])
def test_larger_configurations_build_and_predict(name: str) -> None:
    config = get_config(name)
    model = build_model(config, NUM_CLASSES, seed=0)
    images = np.zeros((1, config.image_size, config.image_size, 3), dtype=np.float32)
    output = model.predict(images, verbose=0)
    assert output["boxes"].shape == (1, config.max_detections, 4)
    assert model(images, training=False)["classification"].shape == (1, anchors_for(config.image_size), NUM_CLASSES)


def test_feature_pyramid_levels_halve_from_p3_to_p7() -> None:
    pyramid = FeaturePyramid(filters=8)
    inputs = {
        "P3": np.zeros((1, 16, 16, 4), np.float32),
        "P4": np.zeros((1, 8, 8, 6), np.float32),
        "P5": np.zeros((1, 4, 4, 10), np.float32),
    }
    shapes = [tuple(level.shape) for level in pyramid(inputs)]
    assert shapes == [(1, 16, 16, 8), (1, 8, 8, 8), (1, 4, 4, 8), (1, 2, 2, 8), (1, 1, 1, 8)]
    assert [tuple(s) for s in pyramid.compute_output_shape({k: v.shape for k, v in inputs.items()})] == shapes
