"""TensorFlow's start-up lines hidden, so each stage prints its own lines only: C++ notices
(oneDNN, CUDA stubs, CPU features) and a cuInit error where CUDA has no GPU. The package sets
TF_CPP_MIN_LOG_LEVEL=3 unless set and runs the first `import tensorflow` with file descriptor
2 sent to a temporary file, written back only if the import fails. TRANSFER_TF_LOGS=1: all."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from types import ModuleType

STARTED = time.perf_counter()  # the package's first import: a stage's wall time counts from here

SHOW = "TRANSFER_TF_LOGS"  # environment variable: 1 shows TensorFlow's start-up lines


@contextlib.contextmanager
def native_stderr_held() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file; write it back to stderr on an exception."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    """The `tensorflow` package's own loader, run with native stderr held."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        """Wrap `loader`."""
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """As the wrapped loader does."""
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        """Import TensorFlow, and look up its devices (the cuInit line), quietly."""
        with native_stderr_held():
            self.loader.exec_module(module)
            module.config.list_physical_devices()


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do and gives it a `_QuietLoader`, once."""

    def find_spec(self, name: str, path: object, target: ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        """The spec of `tensorflow` with its loader wrapped; None for every other module."""
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def hide_tensorflow_startup() -> None:
    """Hide TensorFlow's start-up lines from here on, unless TRANSFER_TF_LOGS=1."""
    if os.environ.get(SHOW) == "1" or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
