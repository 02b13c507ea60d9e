"""Grad-CAM's feature map: fine enough to show where the model looks, at any input size."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from transfer.models.backbones import build_extractor
from transfer.models.class_maps import grad_cam, mapped_layer
from transfer.models.heads import build_head


class Head:
    """The smallest head: no hidden layer, no dropout."""

    dropout = 0.0
    hidden_units = 0


@pytest.mark.parametrize(("input_size", "side", "last_side"), [(128, 8, 4), (224, 7, 7)])
def test_maps_are_the_deepest_map_at_least_seven_wide(input_size, side, last_side):
    """32-px thumbnails grown to 128 px are mapped at an earlier block (8 x 8, where the last
    map is 4 x 4, one blob); at 224 px the last map (7 x 7) is; one map per image, peak 1."""
    base = build_extractor("EfficientNetLite0", "none", input_size, 32)
    model = keras.Model(base.input, build_head(base.output.shape[-1], 3, Head())(base.output))
    spatial = [layer for layer in model.layers if len(layer.output.shape) == 4]
    assert tuple(spatial[-1].output.shape[1:3]) == (last_side, last_side)
    layer = mapped_layer(model)
    assert tuple(layer.output.shape[1:3]) == (side, side)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    maps = grad_cam(model, layer, images, np.array([0, 1]))
    assert maps.shape == (2, side, side)
    assert all(np.isclose(m.max(), 1) or not m.any() for m in maps)
