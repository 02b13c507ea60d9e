"""The device a stage runs on, in words: the GPUs TensorFlow sees, or the CPU with its vector
extensions and the memory allocator of this process, so that times can be compared across
machines."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from transfer.runtime.stage import allocator

CPUINFO = Path("/proc/cpuinfo")


def vector_extensions(text: str) -> str:
    """The widest x86 vector extension the CPU has (AVX-512, AVX2, AVX), from the text of
    /proc/cpuinfo; '' where it does not say (another OS, another architecture)."""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in flags:
            return name
    return "no AVX" if flags else ""


def device_description() -> str:
    """The GPUs TensorFlow sees, or else the CPU model and the cores this process may use; with
    the CPU's vector extensions and the allocator."""
    import tensorflow as tf

    cpuinfo = CPUINFO.read_text() if CPUINFO.exists() else ""
    host = ", ".join(filter(None, (vector_extensions(cpuinfo), allocator())))
    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    if gpus:
        return ", ".join(f"{gpus.count(name)} x {name}" for name in sorted(set(gpus))) + \
            f" (host CPU: {host})"
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = f"{models[0] if models else platform.machine()} CPU ({host}), {cores} cores, no GPU"
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        cpu += (" (an NVIDIA GPU is here but TensorFlow has no CUDA libraries: install the "
                "gpu extra, `make venv EXTRAS=dev,gpu`, see docs/speed.md)")
    return cpu
