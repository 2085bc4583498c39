"""Facts about the run recorded with every artifact: device, backend, versions, commit."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

import keras

ROOT = Path(__file__).resolve().parent.parent


def describe_device() -> str:
    """The accelerator Keras computes on, or the CPU's model name."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.device_kind} (jax)"
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"{details.get('device_name', 'GPU')} (tensorflow)"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (torch)"
    return f"CPU: {_cpu_name()}"


def accelerator_names() -> list[str]:
    """The names of the GPUs the Keras backend computes on; empty without one."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [device.device_kind for device in jax.devices() if device.platform == "gpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [
            tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def device_line(doing: str, gpus: list[str] | None = None) -> str:
    """What a command says first: the Keras backend and the devices, as in "Keras backend jax;
    no GPU: training on 2 CPU cores". `doing` is the verb ("training", "evaluating", ...);
    `gpus` the `accelerator_names()`, when known."""
    gpus = accelerator_names() if gpus is None else gpus
    if gpus:
        counts = {name: gpus.count(name) for name in gpus}
        names = ", ".join(
            f"{count} x {name}" if count > 1 else name for name, count in counts.items()
        )
        device = f"{doing} on GPU: {names}"
    else:
        device = f"no GPU: {doing} on {cpu_cores()} CPU cores"
    return f"Keras backend {keras.backend.backend()}; {device}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "zoo", "pipelines"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def run_facts() -> dict:
    import tensorflow as tf

    return {
        "backend": keras.backend.backend(),
        "device": describe_device(),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
