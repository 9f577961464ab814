"""RetinaNet configurations by name and the function that builds a compiled model from one.

Backbones are built with the plain KerasCV constructors: every ``*Backbone()`` preset constructor
downloads its config from Kaggle, which fails offline. Pretrained weights are an option of the
"full" configuration (``pretrained=True``), never a requirement.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import keras
import keras_cv

log = logging.getLogger(__name__)

BOX_FORMAT = "xyxy"
# RetinaNet's heads assume 9 anchors per location: 3 scales x 3 aspect ratios.
ANCHOR_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
ANCHOR_ASPECT_RATIOS = (0.5, 1.0, 2.0)
ANCHOR_STRIDES = (8, 16, 32, 64, 128)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides the model, its optimiser and its input pipeline.

    ``epochs`` is the default for ``train``; a caller may override it.
    """

    name: str
    image_size: int
    stackwise_filters: tuple[int, ...]
    stackwise_blocks: tuple[int, ...]
    stackwise_strides: tuple[int, ...] = (1, 2, 2, 2)
    block_type: Literal["basic_block", "block"] = "basic_block"
    # Keras' BatchNormalization default (0.99) needs ~500 steps before its moving statistics fit
    # the data; short CPU runs predict with stale ones unless they follow the batches faster.
    batchnorm_momentum: float = 0.99
    # Channels of the feature pyramid and of the class/box heads (KerasCV fixes both at 256).
    pyramid_filters: int = 256
    head_filters: int = 256
    head_conv_layers: int = 3
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    global_clipnorm: float = 10.0
    batch_size: int = 8
    epochs: int = 10
    max_boxes: int = 32
    # Anchor side (pixels) per pyramid level P3-P7. The smallest should be about the smallest
    # object: a 16 px object never reaches IoU 0.5 with a 32 px anchor, so it is never learnt.
    anchor_sizes: tuple[float, ...] = (32.0, 64.0, 128.0, 256.0, 512.0)
    jitter_scale: tuple[float, float] = (0.8, 1.25)
    # Prediction decoder (MultiClassNonMaxSuppression).
    iou_threshold: float = 0.5
    confidence_threshold: float = 0.05
    max_detections: int = 100
    # Only "full": a KerasCV preset whose ImageNet weights seed the backbone when reachable.
    preset: str | None = None

    def __post_init__(self) -> None:
        if not (len(self.stackwise_filters) == len(self.stackwise_blocks) == len(self.stackwise_strides) == 4):
            # RetinaNet reads P3-P5, which a ResNetV2 backbone only has with four stacks (P2-P5).
            raise ValueError(f"config {self.name!r}: the backbone needs exactly 4 stacks")
        if min(self.stackwise_blocks) < 2:
            # KerasCV's stack always has a first and a last block; with 1 their layer names collide.
            raise ValueError(f"config {self.name!r}: every stack needs at least 2 blocks, got {self.stackwise_blocks}")
        if self.block_type == "basic_block" and self.stackwise_filters[0] != 64:
            # The first basic-block stack adds its input (the 64-channel stem) without a projection.
            raise ValueError(f"config {self.name!r}: a basic-block backbone's first stack needs 64 filters")
        if len(self.anchor_sizes) != len(ANCHOR_STRIDES):
            raise ValueError(f"config {self.name!r}: one anchor size per level P3-P7, got {self.anchor_sizes}")
        if self.image_size % 128:
            # P7 has stride 128: smaller or uneven inputs leave the top pyramid levels empty.
            raise ValueError(f"config {self.name!r}: image_size must be a multiple of 128, got {self.image_size}")

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIGS: dict[str, ModelConfig] = {
    config.name: config
    for config in (
        # Tiny: learns the synthetic shapes on two CPU cores in a couple of minutes (tests).
        ModelConfig(
            name="test",
            image_size=128,
            # Bottleneck blocks: 16-128 inner channels (64-512 out) cost a fifth of basic blocks.
            stackwise_filters=(16, 32, 64, 128),
            stackwise_blocks=(2, 2, 2, 2),
            block_type="block",
            batchnorm_momentum=0.9,
            # Objects of 16-45 px at 128 px: KerasCV's 32 px smallest anchor would miss half.
            anchor_sizes=(16.0, 32.0, 64.0, 128.0, 256.0),
            pyramid_filters=64,
            head_filters=64,
            head_conv_layers=2,
            optimizer="adam",
            learning_rate=1e-3,
            batch_size=8,
            epochs=20,
        ),
        # What `make run` trains on the bundled sample data: a few minutes on a laptop CPU.
        ModelConfig(
            name="default",
            image_size=256,
            stackwise_filters=(32, 64, 128, 256),
            stackwise_blocks=(2, 2, 2, 2),
            block_type="block",
            batchnorm_momentum=0.9,
            pyramid_filters=128,
            head_filters=128,
            head_conv_layers=2,
            optimizer="adam",
            learning_rate=1e-3,
            batch_size=8,
            epochs=20,
        ),
        # ResNet50-v2 at 512 px, the keras-cv Pascal VOC recipe: for GPU training.
        ModelConfig(
            name="full",
            image_size=512,
            stackwise_filters=(64, 128, 256, 512),
            stackwise_blocks=(3, 4, 6, 3),
            block_type="block",
            head_conv_layers=3,
            optimizer="sgd",
            learning_rate=0.005,
            batch_size=16,
            epochs=50,
            preset="resnet50_v2_imagenet",
        ),
    )
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """Return the configuration registered as ``name``, with ``overrides`` applied.

    Raises:
        KeyError: no configuration has that name (the message lists the known ones).
    """
    try:
        config = CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model configuration {name!r}: choose one of {', '.join(CONFIGS)}") from None
    return config.replace(**overrides) if overrides else config


def build_backbone(config: ModelConfig, *, pretrained: bool = False) -> keras.Model:
    """A ResNetV2 backbone from the plain constructor, or the preset's weights when asked and reachable."""
    if pretrained and config.preset:
        try:
            return keras_cv.models.ResNetV2Backbone.from_preset(
                config.preset, input_shape=(config.image_size, config.image_size, 3)
            )
        except Exception as error:  # the preset lives on Kaggle: offline machines cannot reach it
            log.warning("preset %s unavailable (%s); using random initialisation", config.preset, error)
    return keras_cv.models.ResNetV2Backbone(
        stackwise_filters=list(config.stackwise_filters),
        stackwise_blocks=list(config.stackwise_blocks),
        stackwise_strides=list(config.stackwise_strides),
        include_rescaling=True,
        block_type=config.block_type,
        input_shape=(config.image_size, config.image_size, 3),
    )


def build_optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=config.momentum, global_clipnorm=config.global_clipnorm
        )
    return keras.optimizers.Adam(learning_rate=config.learning_rate, global_clipnorm=config.global_clipnorm)


def build_prediction_decoder(config: ModelConfig) -> keras_cv.layers.MultiClassNonMaxSuppression:
    return keras_cv.layers.MultiClassNonMaxSuppression(
        bounding_box_format=BOX_FORMAT,
        from_logits=True,
        iou_threshold=config.iou_threshold,
        confidence_threshold=config.confidence_threshold,
        max_detections=config.max_detections,
        max_detections_per_class=config.max_detections,
    )


@keras.saving.register_keras_serializable(package="detector")
class FeaturePyramid(keras.layers.Layer):  # type: ignore[misc]
    """KerasCV's RetinaNet feature pyramid (P3-P7 from C3-C5) with ``filters`` channels, not 256.

    Narrow pyramids make the small configurations several times faster on a CPU.
    """

    def __init__(self, filters: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.lateral = [keras.layers.Conv2D(filters, 1, padding="same", name=f"lateral_c{i}") for i in (3, 4, 5)]
        self.output_convs = [keras.layers.Conv2D(filters, 3, padding="same", name=f"output_p{i}") for i in (3, 4, 5)]
        self.conv_p6 = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name="output_p6")
        self.conv_p7 = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name="output_p7")
        self.upsample = keras.layers.UpSampling2D(2)

    def build(self, input_shape: dict[str, tuple[int | None, ...]]) -> None:
        for conv, level in zip(self.lateral, ("P3", "P4", "P5"), strict=True):
            conv.build((None, None, None, input_shape[level][-1]))
        for conv in self.output_convs:
            conv.build((None, None, None, self.filters))
        self.conv_p6.build((None, None, None, input_shape["P5"][-1]))
        self.conv_p7.build((None, None, None, self.filters))
        self.built = True

    def call(self, inputs: dict[str, Any]) -> tuple[Any, ...]:
        c3, c4, c5 = inputs["P3"], inputs["P4"], inputs["P5"]
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + self.upsample(p5)
        p3 = self.lateral[0](c3) + self.upsample(p4)
        p6 = self.conv_p6(c5)
        p7 = self.conv_p7(keras.ops.relu(p6))
        return self.output_convs[0](p3), self.output_convs[1](p4), self.output_convs[2](p5), p6, p7

    def compute_output_shape(self, input_shape: dict[str, tuple[int | None, ...]]) -> tuple[tuple[Any, ...], ...]:
        def level(shape: tuple[int | None, ...], halvings: int) -> tuple[Any, ...]:
            batch, height, width = shape[0], shape[1], shape[2]
            for _ in range(halvings):
                height = None if height is None else (height + 1) // 2
                width = None if width is None else (width + 1) // 2
            return (batch, height, width, self.filters)

        return (
            level(input_shape["P3"], 0),
            level(input_shape["P4"], 0),
            level(input_shape["P5"], 0),
            level(input_shape["P5"], 1),
            level(input_shape["P5"], 2),
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="detector")
class PredictionHead(keras.layers.Layer):  # type: ignore[misc]
    """KerasCV's RetinaNet class/box head, shared by all pyramid levels, with ``filters`` channels."""

    def __init__(
        self,
        output_filters: int,
        bias_initializer: Any,
        filters: int = 256,
        num_conv_layers: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_filters = output_filters
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.filters = filters
        self.num_conv_layers = num_conv_layers
        self.conv_layers = [
            keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="orthogonal", activation="relu")
            for _ in range(num_conv_layers)
        ]
        self.prediction_layer = keras.layers.Conv2D(
            output_filters, 3, padding="same", kernel_initializer="orthogonal", bias_initializer=self.bias_initializer
        )

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = input_shape[-1]
        for layer in self.conv_layers:
            layer.build((None, None, None, channels))
            channels = self.filters
        self.prediction_layer.build((None, None, None, channels))
        self.built = True

    def call(self, x: Any) -> Any:
        for layer in self.conv_layers:
            x = layer(x)
        return self.prediction_layer(x)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.output_filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "output_filters": self.output_filters,
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "filters": self.filters,
            "num_conv_layers": self.num_conv_layers,
        }


def build_model(
    config: ModelConfig, num_classes: int, *, seed: int | None = None, pretrained: bool = False
) -> keras_cv.models.RetinaNet:
    """Build and compile a RetinaNet for ``num_classes`` classes (0-based, no background class).

    ``seed`` (when given) seeds Python, NumPy and TensorFlow first, so the initial weights are
    reproducible. The model takes float images of ``config.image_size`` square in 0-255 and
    boxes in ``xyxy`` pixels; ``predict`` returns decoded, suppressed detections.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    backbone = build_backbone(config, pretrained=pretrained)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = config.batchnorm_momentum
    anchor_generator = keras_cv.layers.AnchorGenerator(
        bounding_box_format=BOX_FORMAT,
        sizes=list(config.anchor_sizes),
        scales=list(ANCHOR_SCALES),
        aspect_ratios=list(ANCHOR_ASPECT_RATIOS),
        strides=list(ANCHOR_STRIDES),
        clip_boxes=True,
    )
    anchors_per_location = len(ANCHOR_SCALES) * len(ANCHOR_ASPECT_RATIOS)
    # Focal-loss prior: start every anchor at p(object) = 0.01 so background does not swamp training.
    prior = keras.initializers.Constant(-math.log((1 - 0.01) / 0.01))
    model = keras_cv.models.RetinaNet(
        backbone=backbone,
        num_classes=num_classes,
        bounding_box_format=BOX_FORMAT,
        anchor_generator=anchor_generator,
        prediction_decoder=build_prediction_decoder(config),
        feature_pyramid=FeaturePyramid(filters=config.pyramid_filters),
        classification_head=PredictionHead(
            output_filters=anchors_per_location * num_classes,
            bias_initializer=prior,
            filters=config.head_filters,
            num_conv_layers=config.head_conv_layers,
        ),
        box_head=PredictionHead(
            output_filters=anchors_per_location * 4,
            bias_initializer=keras.initializers.Zeros(),
            filters=config.head_filters,
            num_conv_layers=config.head_conv_layers,
        ),
    )
    model.compile(
        box_loss="smoothl1",
        classification_loss="focal",
        optimizer=build_optimizer(config),
        jit_compile=False,
    )
    return model
