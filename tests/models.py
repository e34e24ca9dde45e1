"""Tiny Keras 3 models built in code for tests, one per kind the pipeline must handle."""

from __future__ import annotations

import keras


def mlp(n_features: int = 30, units: int = 1) -> keras.Model:
    """Sequential Dense classifier; sigmoid for one unit, softmax otherwise."""
    activation = "sigmoid" if units == 1 else "softmax"
    return keras.Sequential(
        [
            keras.Input(shape=(n_features,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(units, activation=activation, name="head"),
        ],
        name="mlp",
    )


def conv2d(shape: tuple[int, int, int] = (28, 28, 1), units: int = 2) -> keras.Model:
    """Sequential Conv2D softmax classifier."""
    return keras.Sequential(
        [
            keras.Input(shape=shape),
            keras.layers.Rescaling(1.0 / 255),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv_a"),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv_b"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(units, activation="softmax", name="head"),
        ],
        name="conv2d",
    )


def conv1d(length: int = 30, units: int = 1) -> keras.Model:
    """Conv1D over a feature vector treated as a sequence."""
    inputs = keras.Input(shape=(length, 1))
    x = keras.layers.Conv1D(8, 3, activation="relu", name="conv1d_a")(inputs)
    x = keras.layers.Conv1D(8, 3, activation="relu", name="conv1d_b")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(units, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name="conv1d")


def residual(shape: tuple[int, int, int] = (28, 28, 1)) -> keras.Model:
    """Functional model with Rescaling, BatchNorm, depthwise and separable convolutions,
    a residual Add, a Concatenate, and a single sigmoid unit."""
    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    branch = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    branch = keras.layers.BatchNormalization(name="dw_bn")(branch)
    branch = keras.layers.ReLU()(branch)
    branch = keras.layers.Conv2D(8, 1, name="pw")(branch)
    x = keras.layers.Add(name="residual_add")([x, branch])
    sep = keras.layers.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep")(x)
    x = keras.layers.Concatenate(name="concat")([x, sep])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name="residual")


def depthwise_separable(shape: tuple[int, int, int] = (12, 12, 3)) -> keras.Model:
    """Sequential DepthwiseConv2D, SeparableConv2D (two kernels) and Conv2DTranspose."""
    return keras.Sequential(
        [
            keras.Input(shape=shape),
            keras.layers.DepthwiseConv2D(3, activation="relu", name="dw"),
            keras.layers.SeparableConv2D(8, 3, activation="relu", name="sep"),
            keras.layers.Conv2DTranspose(4, 3, strides=2, name="up"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid", name="head"),
        ],
        name="depthwise_separable",
    )


def conv3d(shape: tuple[int, int, int, int] = (6, 6, 6, 1)) -> keras.Model:
    """Conv3D with a LayerNormalization (never pruned) and a softmax head."""
    return keras.Sequential(
        [
            keras.Input(shape=shape),
            keras.layers.Conv3D(4, 3, activation="relu", name="conv3d"),
            keras.layers.LayerNormalization(name="norm"),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="conv3d",
    )


BUILDERS = {"mlp": mlp, "conv2d": conv2d, "conv1d": conv1d, "residual": residual}


# --------------------------------------------------------------------------- structured pruning


def structured_sequential(shape: tuple[int, int, int] = (12, 12, 3)) -> keras.Model:
    """Sequential Conv -> BatchNorm -> activation chains into Flatten -> Dense chains."""
    return keras.Sequential(
        [
            keras.Input(shape=shape),
            keras.layers.Conv2D(8, 3, name="conv_a"),
            keras.layers.BatchNormalization(name="bn_a"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(12, 3, padding="same", use_bias=False, name="conv_b"),
            keras.layers.BatchNormalization(name="bn_b"),
            keras.layers.Activation("relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(16, activation="relu", name="dense"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name="structured_sequential",
    )


def structured_functional(shape: tuple[int, int, int] = (16, 16, 3)) -> keras.Model:
    """Functional: BatchNorm, depthwise, a residual Add, a Concatenate read by a Conv,
    separable conv (depth_multiplier 2), and Flatten into Dense."""
    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    branch = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    branch = keras.layers.BatchNormalization(name="dw_bn")(branch)
    branch = keras.layers.ReLU()(branch)
    branch = keras.layers.Conv2D(8, 1, name="project")(branch)
    branch = keras.layers.BatchNormalization(name="project_bn")(branch)
    x = keras.layers.Add(name="add")([x, branch])
    left = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="left")(x)
    right = keras.layers.SeparableConv2D(10, 3, padding="same", depth_multiplier=2, name="right")(x)
    x = keras.layers.Concatenate(name="concat")([left, right])
    x = keras.layers.Conv2D(12, 1, name="mix")(x)
    x = keras.layers.BatchNormalization(name="mix_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(4)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name="structured_functional")


def structured_conv1d(length: int = 32) -> keras.Model:
    """Conv1D, BatchNorm, Conv1DTranspose and global pooling into a softmax head."""
    inputs = keras.Input(shape=(length, 2))
    x = keras.layers.Conv1D(8, 3, name="conv1d_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ELU()(x)
    x = keras.layers.Conv1DTranspose(6, 3, strides=2, name="up")(x)
    x = keras.layers.Conv1D(12, 3, strides=2, activation="relu", name="conv1d_b")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    x = keras.layers.Dense(8, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="structured_conv1d")


def structured_unhandled(shape: tuple[int, int, int] = (8, 8, 3)) -> keras.Model:
    """Layers structured pruning leaves whole: depth_multiplier 2, Reshape; the Conv1D
    after the Reshape is still prunable."""
    inputs = keras.Input(shape=shape)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw2")(x)
    x = keras.layers.Conv2D(8, 1, name="c2")(x)
    x = keras.layers.Reshape((-1, 8), name="reshape")(x)
    x = keras.layers.Conv1D(10, 3, activation="relu", name="seq")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name="structured_unhandled")


def structured_squeeze_excite(shape: tuple[int, int, int] = (10, 10, 3)) -> keras.Model:
    """A squeeze-excite block: Multiply of a feature map by a broadcast (1, 1, C) scale."""
    inputs = keras.Input(shape=shape)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="features")(inputs)
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(6, 1, activation="relu", name="squeeze")(s)
    s = keras.layers.Conv2D(12, 1, activation="sigmoid", name="excite")(s)
    x = keras.layers.Multiply(name="scale")([x, s])
    x = keras.layers.Conv2D(8, 3, activation="relu", name="after")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name="structured_squeeze_excite")


# --------------------------------------------------------------------------- nested models


def _block(name: str, shape: tuple[int, ...], channels: int = 8) -> keras.Model:
    """A functional sub-model: stem Conv-BN-ReLU and a residual branch (depthwise, 1x1)."""
    inputs = keras.Input(shape=shape)
    x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    branch = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    branch = keras.layers.BatchNormalization(name="dw_bn")(branch)
    branch = keras.layers.ReLU()(branch)
    branch = keras.layers.Conv2D(channels, 1, name="project")(branch)
    branch = keras.layers.BatchNormalization(name="project_bn")(branch)
    x = keras.layers.Add(name="add")([x, branch])
    return keras.Model(inputs, x, name=name)


def _head(x: keras.KerasTensor) -> keras.KerasTensor:
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(8, activation="relu", name="dense")(x)
    return keras.layers.Dense(1, activation="sigmoid", name="head")(x)


def nested_functional(shape: tuple[int, int, int] = (12, 12, 1)) -> keras.Model:
    """Rescaling outside, a functional backbone (with a residual branch) nested as one
    layer, a Dense head: the transfer-learning shape."""
    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    return keras.Model(inputs, _head(_block("backbone", shape)(x)), name="nested_functional")


def nested_sequential(shape: tuple[int, int, int] = (12, 12, 1)) -> keras.Model:
    """A Sequential feature extractor (no Input of its own) nested in a functional model."""
    features = keras.Sequential(
        [
            keras.layers.Conv2D(8, 3, name="conv_a"),
            keras.layers.BatchNormalization(name="bn_a"),
            keras.layers.ReLU(),
            keras.layers.Conv2D(12, 3, padding="same", name="conv_b"),
        ],
        name="features",
    )
    inputs = keras.Input(shape=shape)
    return keras.Model(inputs, _head(features(inputs)), name="nested_sequential")


def nested_two_levels(shape: tuple[int, int, int] = (12, 12, 1)) -> keras.Model:
    """A functional model nested in a functional model nested in the classifier, the
    middle one with a Conv after its inner model and called with training=False."""
    inner_in = keras.Input(shape=shape)
    x = _block("inner", shape)(inner_in)
    x = keras.layers.Conv2D(10, 1, activation="relu", name="after")(x)
    middle = keras.Model(inner_in, x, name="middle")
    inputs = keras.Input(shape=shape)
    return keras.Model(inputs, _head(middle(inputs, training=False)), name="nested_two_levels")


def nested_mobilenet_v2(size: int = 32) -> keras.Model:
    """The issue's classifier, small: 28x28x1 -> Rescaling -> Resizing(size, size) ->
    MobileNetV2-0.35 (weights=None) nested as one layer -> pooling -> sigmoid unit."""
    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 1), alpha=0.35, include_top=False, weights=None
    )
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(keras.layers.Resizing(size, size)(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs, name="nested_mobilenet_v2")


@keras.saving.register_keras_serializable(package="tests")
class Subclassed(keras.Model):
    """A subclassed sub-model: no layer graph to flatten."""

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(6, 3, padding="same", name="conv")

    def call(self, x):  # type: ignore[no-untyped-def]
        return keras.ops.relu(self.conv(x))


def nested_subclassed(shape: tuple[int, int, int] = (12, 12, 1)) -> keras.Model:
    """A subclassed model nested beside a flattenable functional one."""
    inputs = keras.Input(shape=shape)
    x = _block("backbone", shape)(inputs)
    x = Subclassed(name="custom")(x)
    return keras.Model(inputs, _head(x), name="nested_subclassed")


def nested_shared(shape: tuple[int, int, int] = (12, 12, 1)) -> keras.Model:
    """One sub-model called twice (on the image and on its negative), summed."""
    inputs = keras.Input(shape=shape)
    tower = _block("tower", shape)
    negative = keras.layers.Rescaling(-1.0, name="negate")(inputs)
    x = keras.layers.Add(name="both")([tower(inputs), tower(negative)])
    return keras.Model(inputs, _head(x), name="nested_shared")


def nested_in_sequential(n_features: int = 6) -> keras.Model:
    """A Sequential model (with an Input) whose middle layer is a Sequential model."""
    inner = keras.Sequential(
        [keras.layers.Dense(8, activation="relu", name="d1"), keras.layers.Dense(4, name="d2")],
        name="inner",
    )
    return keras.Sequential(
        [
            keras.Input((n_features,)),
            inner,
            keras.layers.Dense(1, activation="sigmoid", name="head"),
        ],
        name="nested_in_sequential",
    )
