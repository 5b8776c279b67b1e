"""Devices, numeric precision and out-of-memory errors, shared by training, decoding and probing.

- ``precision``: ``fp32`` (plain), ``bf16`` or ``fp16`` (``torch.autocast`` on the CPU or the GPU: matrix
  products and convolutions run in the low precision, weights and optimiser state stay fp32). fp16 also
  needs a gradient scaler in training (the trainer keeps one and checkpoints it); bf16 has fp32's range
  and needs none.
- ``pick_device``: ``--device cpu|cuda``; by default cuda when the config asks for GPUs (``ngpu > 0``)
  and torch sees one, else cpu.
- ``explain_oom``: a CUDA out-of-memory error becomes one line naming the batch size in frames and a
  smaller value to try.
"""

from __future__ import annotations

import contextlib

import torch

from asr_gr.utils import ConfigError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("cpu", "cuda")


def check_precision(precision: str, source: str = "precision") -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"{source}: unknown precision '{precision}'; known: {', '.join(PRECISIONS)}")
    return precision


def autocast(device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32)."""
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=PRECISIONS[precision])


def pick_device(requested: str | None, ngpu: int = 0) -> torch.device:
    """``requested`` (cpu, cuda, cuda:N) or, when None, cuda if ``ngpu > 0`` and a GPU is visible,
    else cpu. Asking for cuda without a visible GPU is an error."""
    if requested is None:
        return torch.device("cuda" if ngpu > 0 and torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ConfigError(f"--device: '{requested}' is not a device; use cpu or cuda") from None
    if device.type not in DEVICES:
        raise ConfigError(f"--device: '{requested}' is not supported; use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device: '{requested}' asked for, but torch sees no CUDA device; use --device cpu")
    return device


def oom_message(batch_frames: int, option: str = "batch_frames", device=None, suggest: str | None = None) -> str:
    where = f" of {device}" if device is not None else ""
    smaller = max(1, batch_frames // 2)
    hint = (suggest or "--set " + option + "={}").format(smaller)
    return (f"{option}: batches of up to {batch_frames} padded frames do not fit in the memory{where} "
            f"(out of memory); lower it, e.g. {hint}")


@contextlib.contextmanager
def explain_oom(batch_frames: int, option: str = "batch_frames", device=None, suggest: str | None = None):
    """Turn ``torch.OutOfMemoryError`` (CUDA) into a one-line ConfigError naming ``option`` (the config
    key or command-line option that sets the batch size in frames) and half its value, written as
    ``suggest`` ("--set batch_frames={}" by default)."""
    try:
        yield
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise ConfigError(oom_message(batch_frames, option, device, suggest)) from None
