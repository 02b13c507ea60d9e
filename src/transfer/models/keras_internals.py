"""The one place this package reaches into Keras's private modules.

EfficientNet-Lite is EfficientNet with other block arguments, and `keras.applications` exports
neither the builder that takes them nor the default ones (`keras.src.applications.efficientnet`,
Keras 3). `tests/unit/test_keras_internals.py` fails when a Keras release changes either.
"""

from __future__ import annotations

from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS, EfficientNet

__all__ = ["DEFAULT_BLOCKS_ARGS", "EfficientNet"]
