"""Transfer learning of Keras applications under DVC, with a paper written from the run."""

from transfer.cifar10 import preprocess_data

__all__ = ["preprocess_data"]
