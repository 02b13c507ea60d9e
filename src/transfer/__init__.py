"""Transfer learning of Keras applications under DVC, with a paper written from the run."""

from transfer.runtime.startup import hide_tensorflow_startup

hide_tensorflow_startup()
__all__ = ["preprocess_data"]


def __getattr__(name: str) -> object:
    """`preprocess_data` (the assignment's contract), imported when asked for (PEP 562)."""
    if name != "preprocess_data":
        raise AttributeError(f"module 'transfer' has no attribute {name!r}")
    from transfer.data.cifar10 import preprocess_data
    return preprocess_data
