"""Devices, numeric precision and out-of-memory errors, shared by training, decoding and probing.

- ``precision``: ``fp32`` (plain), ``bf16`` or ``fp16`` (``torch.autocast`` on the CPU or the GPU: matrix
  products and convolutions run in the low precision, weights and optimiser state stay fp32). fp16 also
  needs a gradient scaler in training (the trainer keeps one and checkpoints it); bf16 has fp32's range
  and needs none. ``auto`` is bf16 where the hardware computes it natively (a GPU that supports bf16; a
  CPU with AVX512-BF16 or AMX-BF16) and fp32 elsewhere: on a CPU without those instructions PyTorch
  emulates bf16, many times slower than fp32 (``resolve_precision``).
- ``pick_device``: ``--device cpu|cuda``; by default cuda when the config asks for GPUs (``ngpu > 0``)
  and torch sees one, else cpu.
- ``explain_oom``: a CUDA out-of-memory error becomes one line naming the batch size in frames and a
  smaller value to try.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from asr_gr.utils import ConfigError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_CHOICES = (*PRECISIONS, "auto")
DEVICES = ("cpu", "cuda")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 natively


def check_precision(precision: str, source: str = "precision") -> str:
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"{source}: unknown precision '{precision}'; known: {', '.join(PRECISION_CHOICES)}")
    return precision


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The native-bf16 flags (AVX512-BF16, AMX-BF16) of this CPU; () where there are none or the CPU's
    flags cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return tuple(f for f in NATIVE_BF16_FLAGS if f in flags)


def resolve_precision(precision: str, device) -> tuple[str, str]:
    """(the precision to compute in, why) for a requested ``precision`` on ``device``: ``auto`` becomes
    bf16 where the hardware has it natively, else fp32; fp32, bf16 and fp16 stay as they are."""
    check_precision(precision)
    if precision != "auto":
        return precision, "as configured"
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"auto: {torch.cuda.get_device_name(device)} computes bf16 natively"
        return "fp32", f"auto: {torch.cuda.get_device_name(device)} has no native bf16"
    flags = cpu_bf16_flags()
    if flags:
        return "bf16", f"auto: the CPU has {', '.join(f.upper().replace('_', '-') for f in flags)}"
    return "fp32", ("auto: the CPU has neither AVX512-BF16 nor AMX-BF16, so bf16 would be emulated "
                    "(many times slower)")


def autocast(device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32; ``auto`` is
    resolved by ``resolve_precision``)."""
    precision = resolve_precision(precision, device)[0]
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
