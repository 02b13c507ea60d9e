"""Read a PyTorch checkpoint in the legacy (non-zip) format into NumPy arrays, without torch.

The legacy format is five pickles and raw bytes in one file: a magic number, the protocol
version, system info, the state dict (tensors refer to storages by persistent id), the list
of storage keys, then each storage's bytes after an 8-byte little-endian element count.
Only `OrderedDict`s of float/int tensors are rebuilt; any other class is refused.
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from transfer.runtime.errors import UserError

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class CheckpointError(UserError):
    """A file that is not a legacy PyTorch checkpoint of tensors."""


@dataclass
class _Tensor:
    """A tensor as the pickle describes it: a view into a storage that is read later."""

    key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: tuple[str, type], offset: int, shape: tuple, stride: tuple,
                    *_: object) -> _Tensor:
    """Stand-in for `torch._utils._rebuild_tensor_v2`: record the view, read nothing."""
    return _Tensor(storage[0], offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Unpickler that resolves only the names a state dict of tensors uses."""

    def __init__(self, file: BinaryIO, storages: dict[str, type]) -> None:
        """Collect each storage's key and dtype into `storages` as they are referenced."""
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> object:
        """Map torch's rebuild function and storage types; refuse everything else."""
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"),
                              ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid: tuple) -> tuple[str, type]:
        """A storage reference ('storage', dtype, key, location, size[, view]): key and dtype."""
        _, dtype, key, *_ = pid
        self.storages[key] = dtype
        return key, dtype


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy PyTorch checkpoint `path` by name, as NumPy arrays."""
    path = Path(path)
    storages: dict[str, type] = {}
    try:
        with path.open("rb") as f:
            if pickle.load(f) != MAGIC or pickle.load(f) != PROTOCOL:
                raise ValueError("no legacy PyTorch magic number")
            pickle.load(f)  # system info
            state = _Unpickler(f, storages).load()
            keys = pickle.load(f)
            data = {}
            for key in keys:
                count = int(np.frombuffer(f.read(8), "<i8")[0])
                dtype = np.dtype(storages[key])
                data[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
                if len(data[key]) != count:
                    raise ValueError(f"storage {key} is truncated")
        tensors = state.get("state_dict", state) if isinstance(state, dict) else {}
        arrays = {name: _materialise(t, data) for name, t in tensors.items()
                  if isinstance(t, _Tensor)}
        if not arrays:
            raise ValueError("no state dict of tensors")
        return arrays
    except (pickle.UnpicklingError, ValueError, KeyError, IndexError, EOFError, TypeError) as e:
        raise CheckpointError(f"{path}: not a legacy PyTorch checkpoint of tensors ({e})") from e


def _materialise(tensor: _Tensor, storages: dict[str, np.ndarray]) -> np.ndarray:
    """A writable copy of the tensor's view into its storage."""
    flat = storages[tensor.key]
    strides = tuple(s * flat.itemsize for s in tensor.stride)
    return np.lib.stride_tricks.as_strided(flat[tensor.offset:], tensor.shape, strides).copy()
