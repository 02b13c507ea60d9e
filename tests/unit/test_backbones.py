"""Backbones: names, preprocessing parity with keras.applications, train/serve consistency."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import hand_built_features

from transfer.models.backbones import build_extractor, preprocessing_affine
from transfer.models.heads import build_head
from transfer.models.precision import in_precision
from transfer.models.unfreezing import unfreeze_top
from transfer.params.catalogue import FAMILIES, LITE, backbone_names, check_backbone, family
from transfer.params.training import TrainParams
from transfer.runtime.errors import UserError
from transfer.training.activation_cache import layers_above_stride, split_below

# One backbone per preprocessing mode whose random-weight outputs are not vanishingly small.
ONE_PER_MODE = ["ResNet50V2", "DenseNet121", "VGG16", "ConvNeXtTiny"]


def test_backbone_names_cover_the_issue_list():
    """The families the project promises are all accepted."""
    names = backbone_names()
    for name in ("EfficientNetB0", "EfficientNetB7", "EfficientNetV2S", "ResNet50", "ResNet152V2",
                 "MobileNetV2", "MobileNetV3Small", "InceptionV3", "Xception", "DenseNet121",
                 "ConvNeXtTiny", "VGG16", "VGG19"):
        assert name in names


def test_unknown_backbone_lists_the_valid_names():
    """A typo is rejected with a suggestion and the full list of valid names."""
    with pytest.raises(UserError) as err:
        check_backbone("EfficientNetB9")
    message = str(err.value)
    assert "model.backbone='EfficientNetB9'" in message
    assert "did you mean" in message and "ResNet50V2" in message and "\n" not in message


def test_catalogue_is_what_keras_applications_offers():
    """The backbone catalogue (read without Keras) names exactly the installed Keras's
    applications of the known families, each in the family of the module defining it, and
    the Lite variants that `transfer.models.efficientnet_lite` builds."""
    offered = {name: getattr(keras.applications, name).__module__.rsplit(".", 1)[-1]
               for name in dir(keras.applications) if name[0].isupper()}
    known = {name: fam for name, fam in offered.items() if fam in FAMILIES}
    assert {name: family(name) for name in backbone_names() if family(name) != LITE} == known
    assert [name for name in backbone_names() if family(name) == LITE] == [
        "EfficientNetLite0", "EfficientNetLite1", "EfficientNetLite2"]


@pytest.mark.parametrize("module", [m for m in sorted(FAMILIES)
                                    if hasattr(keras.applications, m)])
def test_affine_matches_preprocess_input(module):
    """`rgb @ kernel + bias` equals each family's own preprocess_input on random pixels."""
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    affine = preprocessing_affine(FAMILIES[module][0])
    actual = pixels if affine is None else pixels @ affine[0] + affine[1]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("backbone", ONE_PER_MODE)
def test_extractor_equals_hand_built_pipeline(backbone):
    """extractor(x) == base(preprocess_input(resize(x))), built by hand with the same weights."""
    keras.utils.set_random_seed(1)
    extractor = build_extractor(backbone, "none", input_size=40, image_size=24)
    images = np.random.default_rng(2).uniform(0, 255, (3, 24, 24, 3)).astype(np.float32)
    expected = hand_built_features(extractor, backbone, 40, images)
    actual = extractor.predict(images, verbose=0)
    assert expected.std() > 1e-4, "degenerate reference: the comparison would prove nothing"
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_cut_layer_pools_that_layer():
    """model.cut_layer takes the named layer's output, globally average-pooled."""
    extractor = build_extractor("MobileNetV2", "none", 32, 32, cut_layer="block_6_expand_relu")
    assert extractor.output.shape == (None, 192)
    with pytest.raises(UserError, match="cut_layer=.block_6_expand_rel.*block_6_expand_relu"):
        build_extractor("MobileNetV2", "none", 32, 32, cut_layer="block_6_expand_rel")


def test_input_too_small_is_a_user_error():
    """InceptionV3 needs 75 px; a smaller input_size is a one-line UserError."""
    with pytest.raises(UserError, match="model.input_size=32 does not fit InceptionV3"):
        build_extractor("InceptionV3", "none", 32, 32)


def test_split_below_reproduces_the_extractor():
    """bottom then top equals the whole extractor, and the cut lies below every unfrozen layer."""
    keras.utils.set_random_seed(3)
    extractor = build_extractor("EfficientNetB0", "none", 32, 32)
    top_layers = unfreeze_top(extractor, 20)
    bottom, top = split_below(extractor, top_layers[0])
    assert not set(map(id, bottom.layers)) & set(map(id, top_layers))
    assert {id(layer) for layer in top_layers} <= set(map(id, top.layers))
    images = np.random.default_rng(4).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    whole = extractor.predict(images, verbose=0)
    np.testing.assert_array_equal(top.predict(bottom.predict(images, verbose=0), verbose=0), whole)


@pytest.mark.parametrize("size", [128, 100])
def test_layers_above_stride_cut_at_the_smallest_activation(size):
    """EfficientNetLite0's smallest single-tensor activations: at stride 8 the output of block
    3 (40 channels), at stride 16 that of block 4 (80 channels, not block 5's 112), at any input
    size; the bottom split there ends in that tensor. No layer sits at stride 64."""
    extractor = build_extractor("EfficientNetLite0", "none", size, 32)
    side = {8: -(-size // 8), 16: -(-size // 16)}
    for stride, block, channels in ((8, "block3b_add", 40), (16, "block4c_add", 80)):
        top_layers = unfreeze_top(extractor, layers_above_stride(extractor, stride))
        bottom, _ = split_below(extractor, top_layers[0])
        assert bottom.layers[-1].name == block
        assert bottom.output.shape[1:] == (side[stride], side[stride], channels)
    assert layers_above_stride(extractor, 64) is None


def test_unfreeze_top_keeps_batchnorm_frozen():
    """Exactly the top non-BatchNorm layers become trainable; too many layers is an error."""
    extractor = build_extractor("MobileNetV2", "none", 32, 32)
    top = unfreeze_top(extractor, 12)
    trainable = [layer for layer in extractor.layers if layer.trainable and layer.weights]
    expected = [layer for layer in top if layer.weights
                and not isinstance(layer, keras.layers.BatchNormalization)]
    assert trainable == expected and expected
    assert not extractor.get_layer("preprocess").trainable
    with pytest.raises(UserError, match="finetune.layers=1000"):
        unfreeze_top(extractor, 1000)


def test_in_precision_keeps_weights_and_a_float32_classifier():
    """A bfloat16 copy computes nearly the same probabilities from the same weights, its
    classifier in float32; back to float32 it is exact; an unchanged policy is no copy."""
    keras.utils.set_random_seed(5)
    extractor = build_extractor("MobileNetV2", "none", 32, 32)
    model = keras.Model(extractor.input, build_head(1280, 4, TrainParams())(extractor.output))
    assert in_precision(model, "float32") is model
    fast = in_precision(model, "mixed_bfloat16")
    policies = {layer.dtype_policy.name for layer in fast.layers[:-1] if layer.weights}
    assert policies == {"mixed_bfloat16"}
    head = fast.layers[-1]
    assert head.get_layer("predictions").dtype_policy.name == "float32"
    images = np.random.default_rng(6).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    expected = model.predict(images, verbose=0)
    approx = fast.predict(images, verbose=0)
    assert approx.dtype == np.float32
    np.testing.assert_allclose(approx, expected, atol=0.05)
    back = in_precision(fast, "float32")
    for a, b in zip(model.weights, back.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(back.predict(images, verbose=0), expected)
