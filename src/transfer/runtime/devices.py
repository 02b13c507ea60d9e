"""The device a stage runs on, in words: the GPUs TensorFlow sees, or the CPU."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path


def device_description() -> str:
    """The GPUs TensorFlow sees, or else the CPU model and the cores this process may use."""
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    if gpus:
        return ", ".join(f"{gpus.count(name)} x {name}" for name in sorted(set(gpus)))
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in
              (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
              if line.startswith("model name")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = f"{models[0] if models else platform.machine()} CPU, {cores} cores, no GPU"
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        cpu += (" (an NVIDIA GPU is here but TensorFlow has no CUDA libraries: install the "
                "gpu extra, `make venv EXTRAS=dev,gpu`, see docs/speed.md)")
    return cpu
