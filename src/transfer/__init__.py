"""Transfer learning of Keras applications under DVC, with a paper written from the run."""

from transfer.startup import hide_tensorflow_startup

hide_tensorflow_startup()

from transfer.cifar10 import preprocess_data  # noqa: E402 (after the hook, which it may trigger)

__all__ = ["preprocess_data"]
